//! An [`ExecutionActor`] per running execution: it records what the execution aggregate decides,
//! runs the actions it starts (as tasks that report back), and stops when the execution ends.
//! The [`ExecutionRegistry`] starts executions and, at startup, resumes every execution the log
//! says is still running: its running actions are run again (executors are idempotent).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::CommandError;
use crate::codepipeline::actions::{ActionJob, ActionRegistry};
use crate::codepipeline::execution::{
    self, ActionOutput, ActionRun, ErrorDetails, Execution, ExecutionCommand, ExecutionEvent,
    ExecutionRefusal,
};
use crate::codepipeline::gates::{Gates, Send, Tell};
use crate::codepipeline::ids::{execution_stream, PipelineKey};
use crate::codepipeline::model::{
    ActionStatus, Declaration, ExecutionMode, ExecutionStatus, StageStatus,
};
use crate::codepipeline::views::executions::ExecutionViews;
use crate::eventstore::{fold_stream, EventStore, EventType};

/// Runs one command on the execution; answers once its events are durable.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Command(pub ExecutionCommand);

/// An executor finished an action.
#[derive(Message)]
#[rtype(result = "()")]
struct ActionDone {
    action_execution_id: String,
    result: Result<ActionOutput, ErrorDetails>,
}

/// A condition rule evaluated outside the execution ended.
#[derive(Message)]
#[rtype(result = "()")]
struct RuleDone {
    rule_id: String,
    outcome: crate::codepipeline::rules::RuleOutcome,
}

/// Drives one execution.
pub struct ExecutionActor {
    stream: String,
    /// `<account>:<region>:<pipeline>`: the pipeline whose stage gates this execution passes.
    pipeline_key: String,
    state: Execution,
    sequence: u64,
    store: Arc<dyn EventStore>,
    views: Arc<ExecutionViews>,
    actions: Arc<ActionRegistry>,
    gates: Arc<StageGates>,
    /// The executors running, by action execution id: ended when their action ends otherwise
    /// (an approval answered, a job completed by its worker), so that no wait outlives it.
    tasks: HashMap<String, SpawnHandle>,
    /// Where a failed stage that rolls back on failure asks for its rollback.
    rollbacks: Option<Rollbacks>,
    /// The timer that checks a waiting condition again.
    recheck: Option<SpawnHandle>,
    /// The evaluations of pending condition rules, by rule execution id.
    rule_tasks: HashMap<String, SpawnHandle>,
}

/// Where automatic rollbacks are asked for.
pub type Rollbacks =
    tokio::sync::mpsc::UnboundedSender<crate::codepipeline::rollback::AutomaticRollback>;

impl Actor for ExecutionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Resumed from the log: what was running runs again, once the execution has recorded
        // that it resumes it (an action in flight at two starts in a row fails instead).
        let approvals: Vec<String> = self
            .state
            .runs
            .iter()
            .filter(|r| r.status == ActionStatus::InProgress && !r.resumes_on_restart())
            .map(|r| r.id.clone())
            .collect();
        for id in approvals {
            self.launch(&id, ctx);
        }
        if self.state.runs.iter().any(ActionRun::resumes_on_restart) {
            ctx.address().do_send(Command(ExecutionCommand::Resume));
        }
        if let Some(stage) = self.state.waiting.clone() {
            if self.state.status == ExecutionStatus::InProgress && self.want(&stage, ctx) {
                ctx.address().do_send(Command(enter(&stage)));
            }
        }
        self.schedule_recheck(ctx);
        self.launch_rules(ctx);
    }
}

impl ExecutionActor {
    /// Asks the pipeline's gates to let this execution into `stage`: `true` when it may enter
    /// at once, otherwise it is sent `EnterStage` when its turn comes.
    fn want(&self, stage: &str, ctx: &mut Context<Self>) -> bool {
        self.gates.want(
            &self.pipeline_key,
            self.state.execution_mode,
            stage,
            &self.state.id,
            ctx.address(),
        )
    }

    /// What a Commands action declares: its commands (variables resolved), output variables and
    /// output artifacts' files.
    fn commands_of(&self, stage: &str, action: &str) -> crate::codepipeline::actions::Commands {
        let declared = self
            .state
            .declaration
            .stages
            .iter()
            .filter(|s| s.name == stage)
            .flat_map(|s| &s.actions)
            .find(|a| a.name == action);
        let Some(a) = declared else {
            return Default::default();
        };
        let resolve = |c: &String| {
            crate::codepipeline::execution::resolve(&self.state, c).unwrap_or_else(|_| c.clone())
        };
        crate::codepipeline::actions::Commands {
            commands: a.commands.iter().flatten().map(resolve).collect(),
            output_variables: a.output_variables.clone().unwrap_or_default(),
            files: a
                .output_artifacts
                .iter()
                .flatten()
                .map(|o| (o.name.clone(), o.files.clone().unwrap_or_default()))
                .collect(),
        }
    }

    /// The job of an action run: what its executor is given.
    fn job(&self, action_execution_id: &str) -> Option<ActionJob> {
        let run = self
            .state
            .runs
            .iter()
            .find(|r| r.id == action_execution_id)?;
        Some(ActionJob {
            account: self
                .pipeline_key
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
            pipeline: self.state.pipeline.clone(),
            stage: run.stage.clone(),
            action: run.action.clone(),
            action_execution_id: run.id.clone(),
            input: run.input.clone(),
            planned_outputs: run.planned_outputs.clone(),
            source_revision: self.state.source_revisions.get(&run.action).cloned(),
            started: run.started,
            timeout_minutes: run.timeout_minutes,
            job: run.job.clone(),
            progress: Default::default(),
            commands: self.commands_of(&run.stage, &run.action),
        })
    }

    /// Starts the executor of an action run as a task that reports back to this actor (in place
    /// of the one it had: a job continued is run again with its new job).
    fn launch(&mut self, action_execution_id: &str, ctx: &mut Context<Self>) {
        let Some(mut job) = self.job(action_execution_id) else {
            return;
        };
        let (me, reporting) = (ctx.address(), job.action_execution_id.clone());
        job.progress = crate::codepipeline::actions::Progress::new(move |details| {
            me.do_send(Command(ExecutionCommand::Progress {
                action_execution_id: reporting.clone(),
                details,
            }));
        });
        self.end_task(action_execution_id, ctx);
        let actions = self.actions.clone();
        let id = job.action_execution_id.clone();
        let run = async move { actions.run(&job).await };
        let task = ctx.spawn(run.into_actor(self).map(move |result, act, ctx| {
            act.tasks.remove(&id);
            ctx.notify(ActionDone {
                action_execution_id: id,
                result,
            });
        }));
        self.tasks.insert(action_execution_id.to_string(), task);
    }

    /// When a condition of the current stage waits (a deployment window), checks it again at
    /// the time it named.
    fn schedule_recheck(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.recheck.take() {
            ctx.cancel_future(timer);
        }
        let at = self
            .state
            .current_stage()
            .into_iter()
            .flat_map(|s| {
                use crate::codepipeline::conditions::ConditionKind::*;
                [BeforeEntry, OnSuccess, OnFailure]
                    .into_iter()
                    .filter_map(|kind| s.condition(kind).and_then(|c| c.again_at))
            })
            .reduce(f64::min);
        let Some(at) = at.filter(|_| self.state.status == ExecutionStatus::InProgress) else {
            return;
        };
        let delay = (at - crate::aws::now_epoch()).max(0.0) + 0.01;
        self.recheck = Some(ctx.run_later(
            std::time::Duration::from_secs_f64(delay),
            |act, ctx| {
                act.recheck = None;
                ctx.address()
                    .do_send(Command(ExecutionCommand::CheckConditions));
            },
        ));
    }

    /// Evaluates the pending rules of the current stage's conditions that are not evaluated yet,
    /// and ends the evaluations of rules no longer pending.
    fn launch_rules(&mut self, ctx: &mut Context<Self>) {
        use crate::codepipeline::conditions::ConditionKind::*;
        let running = self.state.status == ExecutionStatus::InProgress;
        let pending: Vec<(crate::codepipeline::conditions::RuleRun, f64)> = self
            .state
            .current_stage()
            .into_iter()
            .flat_map(|s| {
                [BeforeEntry, OnSuccess, OnFailure]
                    .into_iter()
                    .filter_map(|kind| s.condition(kind))
            })
            .filter(|_| running)
            .flat_map(|c| c.pending().map(|r| (r.clone(), c.at)))
            .collect();
        let ended: Vec<String> = self
            .rule_tasks
            .keys()
            .filter(|id| !pending.iter().any(|(r, _)| r.id == **id))
            .cloned()
            .collect();
        for id in ended {
            if let Some(task) = self.rule_tasks.remove(&id) {
                ctx.cancel_future(task);
            }
        }
        let account = self.pipeline_key.split(':').next().unwrap_or_default();
        for (rule, checked) in pending {
            if self.rule_tasks.contains_key(&rule.id) {
                continue;
            }
            let job = crate::codepipeline::rules::RuleJob {
                account: account.to_string(),
                region: self.state.region.clone(),
                rule,
                checked,
            };
            let actions = self.actions.clone();
            let id = job.rule.id.clone();
            let key = id.clone();
            let evaluate = async move { actions.evaluate_rule(&job).await };
            let task = ctx.spawn(evaluate.into_actor(self).map(move |outcome, act, ctx| {
                act.rule_tasks.remove(&id);
                ctx.notify(RuleDone {
                    rule_id: id,
                    outcome,
                });
            }));
            self.rule_tasks.insert(key, task);
        }
    }

    /// Ends the executor of an action run, if it still runs.
    fn end_task(&mut self, action_execution_id: &str, ctx: &mut Context<Self>) {
        if let Some(task) = self.tasks.remove(action_execution_id) {
            ctx.cancel_future(task);
        }
    }

    /// Decides, appends, and once durable folds the events in and launches the actions they start.
    fn execute(
        &mut self,
        command: ExecutionCommand,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), CommandError>> {
        let ready =
            |r| -> ResponseActFuture<Self, Result<(), CommandError>> { Box::pin(fut::ready(r)) };
        let declaration = match &command {
            ExecutionCommand::Start { declaration, .. } => Some(declaration.clone()),
            _ => None,
        };
        let mut new_id = || uuid::Uuid::new_v4().to_string();
        let now = crate::aws::now_epoch();
        let mut events = match execution::handle(&self.state, command, now, &mut new_id) {
            Ok(events) if events.is_empty() => return ready(Ok(())),
            Ok(events) => events,
            Err(refusal) => return ready(Err(CommandError::ExecutionRefused(refusal))),
        };
        // Fold the decision in at once; when it ends waiting before a stage that is free, enter
        // it in the same write: one flush instead of two.
        if let Some(declaration) = declaration {
            self.state.declaration = declaration;
        }
        let mut folded = 0;
        loop {
            events[folded..]
                .iter()
                .for_each(|e| execution::apply(&mut self.state, e));
            folded = events.len();
            let Some(ExecutionEvent::StageWaiting { stage, .. }) = events.last() else {
                break;
            };
            let stage = stage.clone();
            if self.state.status != ExecutionStatus::InProgress || !self.want(&stage, ctx) {
                break;
            }
            match execution::handle(&self.state, enter(&stage), now, &mut new_id) {
                Ok(more) if !more.is_empty() => events.extend(more),
                _ => break,
            }
        }
        let new = events.iter().map(ExecutionEvent::to_new_event).collect();
        let appended = self.store.append_durable(&self.stream, self.sequence, new);
        let views = self.views.clone();
        Box::pin(
            appended
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(recorded) => {
                        act.sequence += recorded.len() as u64;
                        recorded.iter().for_each(|r| views.apply(r));
                        for event in &events {
                            if let ExecutionEvent::ActionStarted {
                                action_execution_id,
                                unresolved: None,
                                ..
                            } = event
                            {
                                act.launch(action_execution_id, ctx);
                            }
                            if let ExecutionEvent::ActionsResumed {
                                action_execution_ids,
                                ..
                            } = event
                            {
                                for id in action_execution_ids {
                                    act.launch(id, ctx);
                                }
                            }
                            match event {
                                ExecutionEvent::JobQueued {
                                    action_execution_id,
                                    ..
                                } => act.launch(action_execution_id, ctx),
                                ExecutionEvent::ActionSucceeded {
                                    action_execution_id,
                                    ..
                                }
                                | ExecutionEvent::ActionFailed {
                                    action_execution_id,
                                    ..
                                }
                                | ExecutionEvent::ActionAbandoned {
                                    action_execution_id,
                                    ..
                                } => act.end_task(action_execution_id, ctx),
                                _ => {}
                            }
                            // An abandoned action's work stops too (a build is stopped).
                            if let ExecutionEvent::ActionAbandoned {
                                action_execution_id,
                                ..
                            } = event
                            {
                                if let Some(job) = act.job(action_execution_id) {
                                    act.actions.abandon(&job);
                                }
                            }
                        }
                        act.schedule_recheck(ctx);
                        act.launch_rules(ctx);
                        if !act.state.status.is_running() {
                            act.gates.left(&act.pipeline_key, &act.state.id);
                            let finished = events
                                .iter()
                                .any(|e| matches!(e, ExecutionEvent::Finished { .. }));
                            let asked = crate::codepipeline::rollback::asked_by(
                                &act.state,
                                &act.pipeline_key,
                            );
                            if let (true, Some(ask), Some(rollbacks)) =
                                (finished, asked, &act.rollbacks)
                            {
                                let _ = rollbacks.send(ask);
                            }
                            ctx.stop();
                        }
                        Ok(())
                    }
                    Err(e) => {
                        log::error!("events of {} were not recorded: {e}", act.stream);
                        act.gates.left(&act.pipeline_key, &act.state.id);
                        ctx.stop();
                        Err(e.into())
                    }
                }),
        )
    }
}

impl Handler<Command> for ExecutionActor {
    type Result = AtomicResponse<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: Command, ctx: &mut Self::Context) -> Self::Result {
        // An execution reopened for a command (rehydrated from the log) that did not go on
        // stops again once the command is answered.
        AtomicResponse::new(Box::pin(self.execute(msg.0, ctx).map(
            |result, act, ctx| {
                if !act.state.status.is_running() {
                    ctx.stop();
                }
                result
            },
        )))
    }
}

impl Handler<ActionDone> for ExecutionActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ActionDone, ctx: &mut Self::Context) -> Self::Result {
        let id = msg.action_execution_id.clone();
        let command = ExecutionCommand::Complete {
            action_execution_id: msg.action_execution_id,
            result: msg.result,
        };
        AtomicResponse::new(Box::pin(self.execute(command, ctx).map(
            move |result, act, _| match result {
                Ok(()) => {}
                Err(CommandError::ExecutionRefused(ExecutionRefusal::LateResult)) => log::info!(
                    "the result of action execution {id} of {} came after the action ended; it is not recorded",
                    act.stream
                ),
                Err(e) => log::error!("recording the result of action execution {id} failed: {e:?}"),
            },
        )))
    }
}

impl Handler<RuleDone> for ExecutionActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: RuleDone, ctx: &mut Self::Context) -> Self::Result {
        let id = msg.rule_id.clone();
        let command = ExecutionCommand::RuleDone {
            rule_id: msg.rule_id,
            succeeded: msg.outcome.succeeded,
            summary: msg.outcome.summary,
        };
        AtomicResponse::new(Box::pin(self.execute(command, ctx).map(
            move |result, act, _| match result {
                Ok(()) => {}
                // Its outcome came another way first (a function's PutJob*Result, an override).
                Err(CommandError::ExecutionRefused(ExecutionRefusal::RuleNotPending(_))) => {}
                Err(e) => log::error!(
                    "recording the outcome of rule execution {id} of {} failed: {e:?}",
                    act.stream
                ),
            },
        )))
    }
}

/// What starting an execution needs besides the pipeline itself.
pub struct StartRequest {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline version.
    pub pipeline_version: u64,
    /// Declaration snapshot.
    pub declaration: Arc<Declaration>,
    /// Trigger.
    pub trigger: execution::Trigger,
    /// Pipeline variables given.
    pub variables: BTreeMap<String, String>,
    /// Source revision overrides by action name.
    pub source_revisions: BTreeMap<String, String>,
    /// Idempotency token.
    pub client_request_token: Option<String>,
    /// For a rollback execution: what it runs.
    pub rollback: Option<Box<execution::Rollback>>,
}

/// Starts and resumes execution actors, spread over arbiters of their own (one per core).
pub struct ExecutionRegistry {
    /// The stage gates of every pipeline.
    pub gates: Arc<StageGates>,
    arbiters: Vec<ArbiterHandle>,
    next: std::sync::atomic::AtomicUsize,
    actors: Mutex<HashMap<String, Addr<ExecutionActor>>>,
    store: Arc<dyn EventStore>,
    views: Arc<ExecutionViews>,
    actions: Arc<ActionRegistry>,
    rollbacks: std::sync::OnceLock<Rollbacks>,
}

impl ExecutionRegistry {
    /// Where failed stages declared to roll back ask for their rollback (set once, at startup).
    pub fn ask_rollbacks_at(&self, rollbacks: Rollbacks) {
        let _ = self.rollbacks.set(rollbacks);
    }

    /// A registry whose actors run on `arbiters`, taken in turn.
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        store: Arc<dyn EventStore>,
        views: Arc<ExecutionViews>,
        actions: Arc<ActionRegistry>,
    ) -> Self {
        assert!(!arbiters.is_empty(), "executions need an arbiter");
        ExecutionRegistry {
            gates: Arc::new(StageGates::default()),
            arbiters,
            next: std::sync::atomic::AtomicUsize::new(0),
            actors: Mutex::new(HashMap::new()),
            store,
            views,
            actions,
            rollbacks: std::sync::OnceLock::new(),
        }
    }

    fn spawn(
        &self,
        pipeline_key: String,
        stream: String,
        state: Execution,
        sequence: u64,
    ) -> Addr<ExecutionActor> {
        let actor = ExecutionActor {
            stream: stream.clone(),
            pipeline_key,
            gates: self.gates.clone(),
            state,
            sequence,
            store: self.store.clone(),
            views: self.views.clone(),
            actions: self.actions.clone(),
            tasks: HashMap::new(),
            rollbacks: self.rollbacks.get().cloned(),
            recheck: None,
            rule_tasks: HashMap::new(),
        };
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let arbiter = &self.arbiters[turn % self.arbiters.len()];
        let addr = ExecutionActor::start_in_arbiter(arbiter, move |_| actor);
        let mut actors = self.actors.lock().expect("execution registry");
        // Ended executions' entries are swept now and then, not at every start.
        if actors.len() >= 64 && actors.len().is_power_of_two() {
            actors.retain(|_, a| a.connected());
        }
        actors.insert(stream, addr.clone());
        addr
    }

    /// Starts a new execution; returns its id once `Started` (and the first actions) are durable.
    pub async fn start(&self, request: StartRequest) -> Result<String, CommandError> {
        let (id, started) = self.begin(request);
        started.await?;
        Ok(id)
    }

    /// Starts a new execution: its id, and what resolves once `Started` (and the first actions)
    /// are durable. The start is handed to the execution's actor before this returns, so its
    /// events are appended after whatever the caller appended before calling.
    pub fn begin(
        &self,
        request: StartRequest,
    ) -> (
        String,
        impl std::future::Future<Output = Result<(), CommandError>> + 'static,
    ) {
        let (id, addr, command) = self.prepare(request);
        let sent = addr.send(Command(command));
        let started = async move {
            sent.await
                .map_err(|e| CommandError::Unavailable(e.to_string()))?
        };
        (id, started)
    }

    /// Starts an execution without waiting for its start to be recorded; returns its id.
    pub fn start_detached(&self, request: StartRequest) -> String {
        let (id, addr, command) = self.prepare(request);
        addr.do_send(Command(command));
        id
    }

    /// The views executions are folded into.
    pub fn views(&self) -> &ExecutionViews {
        &self.views
    }

    /// Cancels every running execution of a pipeline (it was updated or deleted): what resolves
    /// once each has recorded its cancellation. The commands are sent before this returns.
    pub fn cancel_all(
        &self,
        pipeline: &PipelineKey,
        reason: String,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let sent: Vec<_> = {
            let running = self.views.running_of(&pipeline.key());
            let actors = self.actors.lock().expect("execution registry");
            running
                .iter()
                .filter_map(|e| {
                    let addr = actors
                        .get(&pipeline.execution_stream(&e.id))
                        .filter(|a| a.connected())?;
                    let cancel = ExecutionCommand::Cancel {
                        reason: reason.clone(),
                    };
                    Some((e.id.clone(), addr.send(Command(cancel))))
                })
                .collect()
        };
        async move {
            for (id, cancelled) in sent {
                match cancelled.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::error!("execution {id} was not cancelled: {e:?}"),
                    Err(e) => log::error!("execution {id} was not cancelled: {e}"),
                }
            }
        }
    }

    /// Starts the first execution of every pipeline that has none: CreatePipeline answers once
    /// the pipeline is recorded and starts its first execution just after, so a process that
    /// died in between owes it one.
    pub fn start_missing_first(
        &self,
        pipelines: &crate::codepipeline::views::PipelineViews,
    ) -> usize {
        let mut started = 0;
        for (key, version, output) in pipelines.current_versions() {
            if self.views.count(&key) > 0 {
                continue;
            }
            let Some(PipelineKey {
                account,
                region,
                name: pipeline,
            }) = PipelineKey::parse(&key)
            else {
                continue;
            };
            let Some(declaration) = crate::codepipeline::views::declaration_of_output(&output)
            else {
                continue;
            };
            log::info!("starting the first execution of pipeline {pipeline}");
            self.start_detached(StartRequest {
                trigger: super::creation_trigger(&account),
                account,
                region,
                pipeline,
                pipeline_version: version,
                declaration: declaration.into(),
                variables: BTreeMap::new(),
                source_revisions: BTreeMap::new(),
                client_request_token: None,
                rollback: None,
            });
            started += 1;
        }
        started
    }

    fn prepare(&self, request: StartRequest) -> (String, Addr<ExecutionActor>, ExecutionCommand) {
        let id = uuid::Uuid::new_v4().to_string();
        let stream = execution_stream(&request.account, &request.region, &request.pipeline, &id);
        let key = crate::codepipeline::ids::pipeline_key(
            &request.account,
            &request.region,
            &request.pipeline,
        );
        let addr = self.spawn(key, stream, Execution::default(), 0);
        let command = ExecutionCommand::Start {
            execution_id: id.clone(),
            pipeline: request.pipeline,
            pipeline_version: request.pipeline_version,
            declaration: request.declaration,
            trigger: request.trigger,
            variables: request.variables,
            source_revisions: request.source_revisions,
            client_request_token: request.client_request_token,
            region: request.region,
            rollback: request.rollback,
        };
        (id, addr, command)
    }

    /// Reports the result of an action of a running execution from outside (PutApprovalResult).
    pub async fn complete(
        &self,
        stream: &str,
        action_execution_id: &str,
        result: Result<ActionOutput, ErrorDetails>,
    ) -> Result<(), CommandError> {
        let command = ExecutionCommand::Complete {
            action_execution_id: action_execution_id.to_string(),
            result,
        };
        self.command(stream, command).await
    }

    /// Runs a command on an execution: its actor, or for one that ended, an actor rehydrated
    /// from its stream (a retry reopens it; other commands are refused by it as they would be).
    pub async fn command(
        &self,
        stream: &str,
        command: ExecutionCommand,
    ) -> Result<(), CommandError> {
        let addr = match self.running(stream) {
            Some(addr) => addr,
            None => self.rehydrate(stream)?,
        };
        addr.send(Command(command))
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?
    }

    fn running(&self, stream: &str) -> Option<Addr<ExecutionActor>> {
        let actors = self.actors.lock().expect("execution registry");
        actors.get(stream).filter(|a| a.connected()).cloned()
    }

    /// Starts the actor of an execution that has none, from its stream.
    fn rehydrate(&self, stream: &str) -> Result<Addr<ExecutionActor>, CommandError> {
        let unknown = || CommandError::Unavailable(format!("there is no execution {stream}"));
        let (pipeline, id) = stream
            .strip_prefix(crate::codepipeline::ids::EXECUTION_STREAM_PREFIX)
            .and_then(|rest| rest.rsplit_once(':'))
            .ok_or_else(unknown)?;
        let key = PipelineKey::parse(pipeline).ok_or_else(unknown)?;
        let (state, sequence) = self.load(&key, id)?.ok_or_else(unknown)?;
        Ok(self.spawn(key.key(), stream.to_string(), state, sequence))
    }

    /// An execution as its stream built it, with the declaration of the version it runs, and
    /// the stream's last sequence; `None` when it or its pipeline version is gone.
    fn load(&self, key: &PipelineKey, id: &str) -> Result<Option<(Execution, u64)>, CommandError> {
        // One read of the stream: the state, which names the pipeline version it runs.
        let mut state = Execution::default();
        let stream = key.execution_stream(id);
        let sequence = fold_stream(self.store.as_ref(), &stream, &mut state, execution::apply)?;
        if state.id.is_empty() {
            return Ok(None);
        }
        let recorded = crate::codepipeline::views::recorded_version(
            self.store.as_ref(),
            &key.stream(),
            state.pipeline_version,
        )?;
        let Some(declaration) = recorded.map(|v| v.declaration) else {
            return Ok(None);
        };
        state.declaration = declaration;
        Ok(Some((state, sequence)))
    }

    /// Resumes every execution the views say is running (at startup).
    pub fn resume_all(&self) -> Result<usize, CommandError> {
        let mut running = self.views.running();
        // Waiting executions ask for their stage in the order they started.
        running.sort_by(|a, b| a.1.started.total_cmp(&b.1.started));
        let mut resumed = 0;
        for (key, execution) in &running {
            let Some(pipeline) = PipelineKey::parse(key) else {
                continue;
            };
            let Some((state, sequence)) = self.load(&pipeline, &execution.id)? else {
                log::warn!(
                    "execution {} of {} is not resumed: its pipeline version is gone",
                    execution.id,
                    pipeline.name
                );
                continue;
            };
            let stream = pipeline.execution_stream(&execution.id);
            let pipeline = &pipeline.name;
            log::info!("resuming execution {} of pipeline {pipeline}", execution.id);
            // It is in the stage it entered last, unless that is done and it waits for the next.
            if let Some(stage) = state
                .current_stage()
                .filter(|s| s.status == StageStatus::InProgress)
            {
                self.gates.hold(key, &stage.name, &state.id);
            }
            self.spawn(key.clone(), stream, state, sequence);
            resumed += 1;
        }
        Ok(resumed)
    }
}

/// The stage gates of every pipeline ([`crate::codepipeline::gates`]), shared by the execution
/// actors: what they decide is delivered once the lock is let go. Kept in memory and rebuilt
/// from the views at startup.
#[derive(Default)]
pub struct StageGates {
    gates: Mutex<Gates<Addr<ExecutionActor>>>,
}

fn enter(stage: &str) -> ExecutionCommand {
    ExecutionCommand::EnterStage {
        stage: stage.to_string(),
    }
}

fn deliver(sends: Vec<Send<Addr<ExecutionActor>>>) {
    for (addr, tell) in sends {
        let command = match tell {
            Tell::Enter(stage) => ExecutionCommand::EnterStage { stage },
            Tell::Supersede { by } => ExecutionCommand::Supersede { by },
        };
        addr.do_send(Command(command));
    }
}

impl StageGates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gates<Addr<ExecutionActor>>> {
        self.gates.lock().expect("stage gates")
    }

    /// Opens or closes a stage's inbound transition; opening lets waiting executions in.
    pub fn set_transition(&self, pipeline: &str, stage: &str, enabled: bool) {
        let sends = self.lock().set_transition(pipeline, stage, enabled);
        deliver(sends);
    }

    /// Records that `execution` is in `stage` (resuming at startup).
    pub fn hold(&self, pipeline: &str, stage: &str, execution: &str) {
        self.lock().hold(pipeline, stage, execution);
    }

    /// `execution` asks to enter `stage`: `true` when it is let in at once (it may enter in the
    /// same write), otherwise it is sent `EnterStage` when its turn comes.
    pub fn want(
        &self,
        pipeline: &str,
        mode: ExecutionMode,
        stage: &str,
        execution: &str,
        addr: Addr<ExecutionActor>,
    ) -> bool {
        let (granted, sends) = self.lock().want(pipeline, mode, stage, execution, addr);
        deliver(sends);
        granted
    }

    /// `execution` ended: it leaves its stage and every queue.
    pub fn left(&self, pipeline: &str, execution: &str) {
        let sends = self.lock().left(pipeline, execution);
        deliver(sends);
    }
}
