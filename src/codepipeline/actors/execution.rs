//! An [`ExecutionActor`] per running execution: it records what the execution aggregate decides,
//! runs the actions it starts (as tasks that report back), and stops when the execution ends.
//! The [`ExecutionRegistry`] starts executions and, at startup, resumes every execution the log
//! says is still running: its running actions are run again (executors are idempotent).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::CommandError;
use crate::codepipeline::actions::{self, ActionContext};
use crate::codepipeline::execution::{
    self, ActionOutput, ErrorDetails, Execution, ExecutionCommand, ExecutionEvent,
};
use crate::codepipeline::views::executions::{execution_stream, ExecutionViews};
use crate::eventstore::EventStore;

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

/// Drives one execution.
pub struct ExecutionActor {
    stream: String,
    state: Execution,
    sequence: u64,
    store: Arc<dyn EventStore>,
    views: Arc<ExecutionViews>,
    context: ActionContext,
}

impl Actor for ExecutionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Resumed from the log: run again what was running.
        let running: Vec<String> = self
            .state
            .runs
            .iter()
            .filter(|r| r.status == "InProgress")
            .map(|r| r.id.clone())
            .collect();
        for id in running {
            self.launch(&id, ctx);
        }
    }
}

impl ExecutionActor {
    /// Starts the executor of an action run as a task that reports back to this actor.
    fn launch(&self, action_execution_id: &str, ctx: &mut Context<Self>) {
        let Some(run) = self
            .state
            .runs
            .iter()
            .find(|r| r.id == action_execution_id)
            .cloned()
        else {
            return;
        };
        let revision = self.state.source_revisions.get(&run.action).cloned();
        let context = self.context.clone();
        let me = ctx.address();
        actix::spawn(async move {
            let result = actions::run(&context, &run, revision.as_deref()).await;
            me.do_send(ActionDone {
                action_execution_id: run.id.clone(),
                result,
            });
        });
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
            ExecutionCommand::Stop { .. }
            | ExecutionCommand::Cancel { .. }
            | ExecutionCommand::Complete { .. } => None,
        };
        let mut new_id = || uuid::Uuid::new_v4().to_string();
        let events =
            match execution::handle(&self.state, command, crate::aws::now_epoch(), &mut new_id) {
                Ok(events) if events.is_empty() => return ready(Ok(())),
                Ok(events) => events,
                Err(refusal) => return ready(Err(CommandError::ExecutionRefused(refusal))),
            };
        let new = events.iter().map(ExecutionEvent::to_new_event).collect();
        let recorded = match self.store.append(&self.stream, self.sequence, new) {
            Ok(recorded) => recorded,
            Err(e) => {
                log::error!("append to {} failed: {e}", self.stream);
                ctx.stop();
                return ready(Err(e.into()));
            }
        };
        self.sequence += recorded.len() as u64;
        if let Some(declaration) = declaration {
            self.state.declaration = declaration;
        }
        events
            .iter()
            .for_each(|e| execution::apply(&mut self.state, e));
        let durable = self.store.durable();
        let views = self.views.clone();
        Box::pin(
            durable
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(()) => {
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
                        }
                        if !matches!(act.state.status.as_str(), "InProgress" | "Stopping") {
                            ctx.stop();
                        }
                        Ok(())
                    }
                    Err(e) => {
                        log::error!("events of {} were not made durable: {e}", act.stream);
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
        AtomicResponse::new(self.execute(msg.0, ctx))
    }
}

impl Handler<ActionDone> for ExecutionActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ActionDone, ctx: &mut Self::Context) -> Self::Result {
        let command = ExecutionCommand::Complete {
            action_execution_id: msg.action_execution_id,
            result: msg.result,
        };
        AtomicResponse::new(Box::pin(self.execute(command, ctx).map(|result, _, _| {
            if let Err(e) = result {
                log::error!("recording an action result failed: {e:?}");
            }
        })))
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
    pub declaration: serde_json::Value,
    /// Trigger.
    pub trigger: execution::Trigger,
    /// Pipeline variables given.
    pub variables: BTreeMap<String, String>,
    /// Source revision overrides by action name.
    pub source_revisions: BTreeMap<String, String>,
    /// Idempotency token.
    pub client_request_token: Option<String>,
}

/// Starts and resumes execution actors, spread over arbiters of their own (one per core).
pub struct ExecutionRegistry {
    arbiters: Vec<ArbiterHandle>,
    next: std::sync::atomic::AtomicUsize,
    actors: Mutex<HashMap<String, Addr<ExecutionActor>>>,
    store: Arc<dyn EventStore>,
    views: Arc<ExecutionViews>,
    context: ActionContext,
}

impl ExecutionRegistry {
    /// A registry whose actors run on `arbiters`, taken in turn.
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        store: Arc<dyn EventStore>,
        views: Arc<ExecutionViews>,
        context: ActionContext,
    ) -> Self {
        assert!(!arbiters.is_empty(), "executions need an arbiter");
        ExecutionRegistry {
            arbiters,
            next: std::sync::atomic::AtomicUsize::new(0),
            actors: Mutex::new(HashMap::new()),
            store,
            views,
            context,
        }
    }

    fn spawn(&self, stream: String, state: Execution, sequence: u64) -> Addr<ExecutionActor> {
        let actor = ExecutionActor {
            stream: stream.clone(),
            state,
            sequence,
            store: self.store.clone(),
            views: self.views.clone(),
            context: self.context.clone(),
        };
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let arbiter = &self.arbiters[turn % self.arbiters.len()];
        let addr = ExecutionActor::start_in_arbiter(arbiter, move |_| actor);
        let mut actors = self.actors.lock().expect("execution registry");
        actors.retain(|_, a| a.connected());
        actors.insert(stream, addr.clone());
        addr
    }

    /// Starts a new execution; returns its id once `Started` (and the first actions) are durable.
    pub async fn start(&self, request: StartRequest) -> Result<String, CommandError> {
        let (id, addr, command) = self.prepare(request);
        addr.send(Command(command))
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))??;
        Ok(id)
    }

    fn prepare(&self, request: StartRequest) -> (String, Addr<ExecutionActor>, ExecutionCommand) {
        let id = uuid::Uuid::new_v4().to_string();
        let stream = execution_stream(&request.account, &request.region, &request.pipeline, &id);
        let addr = self.spawn(stream, Execution::default(), 0);
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

    /// Runs a command on a running execution.
    pub async fn command(
        &self,
        stream: &str,
        command: ExecutionCommand,
    ) -> Result<(), CommandError> {
        let addr = self
            .actors
            .lock()
            .expect("execution registry")
            .get(stream)
            .filter(|a| a.connected())
            .cloned()
            .ok_or_else(|| {
                CommandError::Unavailable(format!("execution {stream} is not running"))
            })?;
        addr.send(Command(command))
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?
    }

    /// Resumes every execution the views say is running (at startup).
    pub fn resume_all(&self) -> Result<usize, CommandError> {
        let running = self.views.running();
        let mut resumed = 0;
        for (key, execution) in &running {
            let (account, rest) = key.split_once(':').unwrap_or_default();
            let (region, pipeline) = rest.split_once(':').unwrap_or_default();
            let stream = execution_stream(account, region, pipeline, &execution.id);
            // The declaration the execution runs is the pipeline version's, from its stream.
            let version = crate::codepipeline::views::pipeline_version(
                self.store.as_ref(),
                &crate::codepipeline::views::pipeline_stream(account, region, pipeline),
                execution.pipeline_version,
            )?;
            let Some(declaration) = version
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .map(|mut output| output["pipeline"].take())
            else {
                log::warn!(
                    "execution {} of {pipeline} is not resumed: its pipeline version is gone",
                    execution.id
                );
                continue;
            };
            let mut state = Execution {
                declaration,
                ..Execution::default()
            };
            let mut sequence = 0;
            for record in self.store.read_stream(&stream, 1)? {
                sequence = record.sequence;
                if let Some(event) = ExecutionEvent::from_record(&record) {
                    execution::apply(&mut state, &event);
                }
            }
            log::info!("resuming execution {} of pipeline {pipeline}", execution.id);
            self.spawn(stream, state, sequence);
            resumed += 1;
        }
        Ok(resumed)
    }
}
