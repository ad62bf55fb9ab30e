//! Actors serialise the commands of one pipeline: a [`PipelineActor`] per pipeline, found or
//! started by the [`PipelineRegistry`], which rehydrates it from its event stream.
//!
//! The pipeline's actor is the one door for everything that changes the pipeline or its
//! executions: create (with its first execution), update (then the running executions are
//! cancelled), delete (after cancelling them), stage transitions (then the stage gates learn
//! it), starting an execution (the idempotency token and the current version are checked under
//! the actor) and commands for a running execution (stop, an approval's answer). It handles one
//! at a time: the aggregate decides, the events are appended, and only once the store says they
//! are durable, and what follows from them is done, does the actor update the views and answer.
//! So a start and an update of one pipeline cannot interleave, and two starts with one token
//! give one execution. Other pipelines' actors run meanwhile, and their flushes are shared
//! (group commit). Idle actors stop and are started again from the log when next needed.

pub mod execution;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::execution::{ExecutionRegistry, StartRequest};
use super::execution::{ExecutionCommand, Trigger};
use super::ids::PipelineKey;
use super::pipeline::{self, PipelineCommand, PipelineEvent, PipelineState, Refusal};
use crate::eventstore::{fold_stream, EventStore, EventType, Projection, StoreError};

/// Why a command did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandError {
    /// The aggregate refused it.
    Refused(Refusal),
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
    /// The actor could not be reached.
    Unavailable(String),
    /// The execution aggregate refused it.
    ExecutionRefused(crate::codepipeline::execution::ExecutionRefusal),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        CommandError::Store(e)
    }
}

/// The result of a command: the events it made durable.
pub type CommandResult = Result<Vec<PipelineEvent>, CommandError>;

/// Runs one command against the pipeline.
#[derive(Message)]
#[rtype(result = "CommandResult")]
pub struct Execute(pub PipelineCommand);

/// StartPipelineExecution, as the pipeline's actor runs it.
#[derive(Debug, Clone)]
pub struct StartExecution {
    /// How it was started.
    pub trigger: Trigger,
    /// Pipeline variables given at start (checked against the current declaration).
    pub variables: BTreeMap<String, String>,
    /// Source revision overrides by action name.
    pub source_revisions: BTreeMap<String, String>,
    /// The idempotency token: a start with a token already used answers that execution.
    pub client_request_token: Option<String>,
    /// For a rollback (RollbackStage): the stage it runs and what it takes from its target.
    pub rollback: Option<Box<crate::codepipeline::execution::Rollback>>,
}

/// Starts an execution of the pipeline's current version; answers its id once `Started` is
/// durable.
#[derive(Message)]
#[rtype(result = "Result<String, CommandError>")]
pub struct Start(pub StartExecution);

/// Runs a command on one of the pipeline's executions (stop, an approval's answer).
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ToExecution {
    /// The execution.
    pub execution_id: String,
    /// The command.
    pub command: ExecutionCommand,
}

/// The trigger of a pipeline's first execution, which its creation starts.
pub fn creation_trigger(account: &str) -> Trigger {
    Trigger {
        trigger_type: "CreatePipeline".into(),
        trigger_detail: Some(format!(
            "arn:aws:sts::{account}:assumed-role/codepipeline-local"
        )),
    }
}

type Answer<T> = ResponseActFuture<PipelineActor, Result<T, CommandError>>;

fn ready<T: 'static>(r: Result<T, CommandError>) -> Answer<T> {
    Box::pin(fut::ready(r))
}

/// Owns one pipeline's stream: its aggregate state and the next expected sequence.
pub struct PipelineActor {
    key: PipelineKey,
    stream: String,
    state: PipelineState,
    sequence: u64,
    store: Arc<dyn EventStore>,
    views: Arc<[Arc<dyn Projection>]>,
    executions: Arc<ExecutionRegistry>,
    last_used: Instant,
    idle: Duration,
}

impl Actor for PipelineActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.idle / 2).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| {
            if act.last_used.elapsed() >= act.idle {
                ctx.stop();
            }
        });
    }
}

impl PipelineActor {
    /// Decides, appends, and once durable does what follows from the events: a creation starts
    /// the first execution (its `Started` is queued behind the creation, so both are flushed
    /// together and the execution is listed when CreatePipeline answers), an update cancels
    /// the executions running the old structure, a transition opens or closes the stage gate.
    /// Removes executions' streams from the log, in the background, and with `own` the
    /// pipeline's own stream but for its last append (a deleted pipeline's, which stays as the
    /// stream's end: a pipeline created again under the name goes on from its sequence, and a
    /// checkpoint older than the deletion still sees it deleted). The views forgot all of it when
    /// the deletion or expiry was recorded, so no answer changes.
    fn forget(&self, executions: Vec<String>, own: bool) {
        let store = self.store.clone();
        let key = self.key.clone();
        let stream = self.stream.clone();
        let before = self.sequence;
        let forgotten = std::thread::Builder::new()
            .name("forget".into())
            .spawn(move || {
                let mut removed = 0;
                for id in &executions {
                    match store.forget(&key.execution_stream(id), u64::MAX) {
                        Ok(n) => removed += n,
                        Err(e) => log::warn!("execution {id} stays in the log: {e}"),
                    }
                }
                if own {
                    match store.forget(&stream, before) {
                        Ok(n) => removed += n,
                        Err(e) => log::warn!("the history of {stream} stays in the log: {e}"),
                    }
                }
                let durable = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| rt.block_on(store.durable()).map_err(|e| e.to_string()));
                if let Err(e) = durable {
                    log::warn!("the removal of {stream}'s history is not flushed yet: {e}");
                }
                log::info!(
                    "{stream}: {removed} events of {} of its executions left the log{}",
                    executions.len(),
                    if own { ", and its own history" } else { "" }
                );
            });
        if let Err(e) = forgotten {
            log::warn!("the history of {} stays in the log: {e}", self.stream);
        }
    }

    fn record(&mut self, command: PipelineCommand) -> Answer<Vec<PipelineEvent>> {
        let events = match pipeline::handle(&self.state, command) {
            Ok(events) if events.is_empty() => return ready(Ok(events)),
            Ok(events) => events,
            Err(refusal) => return ready(Err(CommandError::Refused(refusal))),
        };
        let new = events.iter().map(PipelineEvent::to_new_event).collect();
        // The actor handles nothing else until the append is durable, so its state may take
        // the events now; a failed append stops the actor and the next one starts from the log.
        events
            .iter()
            .for_each(|e| pipeline::apply(&mut self.state, e));
        let appended = self.store.append_durable(&self.stream, self.sequence, new);
        let first = match (events.first(), &self.state.live) {
            (Some(PipelineEvent::Created(_)), Some(live)) => {
                let request = self.start_request(live, creation_trigger(&self.key.account));
                Some(self.executions.begin(request).1)
            }
            _ => None,
        };
        let first = async move {
            match first {
                Some(started) => started.await,
                None => Ok(()),
            }
        };
        let both = futures_util::future::join(appended, first);
        Box::pin(
            both.into_actor(self)
                .then(move |(appended, first), act, ctx| {
                    let recorded = match appended {
                        Ok(recorded) => recorded,
                        Err(e) => {
                            log::error!("events of {} were not recorded: {e}", act.stream);
                            ctx.stop();
                            return ready(Err(e.into()));
                        }
                    };
                    act.sequence += recorded.len() as u64;
                    for record in &recorded {
                        act.views.iter().for_each(|v| v.apply(record));
                    }
                    if let Err(e) = first {
                        // The next start of the server starts it (a pipeline is owed its first run).
                        log::error!("the first execution of {} did not start: {e:?}", act.stream);
                    }
                    let after = act.after(&events);
                    Box::pin(after.into_actor(act).map(move |(), _, _| Ok(events)))
                }),
        )
    }

    /// What follows from durable pipeline events, before the command is answered.
    fn after(&self, events: &[PipelineEvent]) -> impl std::future::Future<Output = ()> + 'static {
        let mut cancel = None;
        for event in events {
            match event {
                PipelineEvent::Updated(u) => {
                    // As on AWS, executions running the old structure are cancelled.
                    cancel = Some(self.executions.cancel_all(
                        &self.key,
                        format!(
                            "The execution was cancelled because the pipeline was updated to version {}",
                            u.version
                        ),
                    ));
                }
                PipelineEvent::Transition(t) => {
                    self.executions
                        .gates
                        .set_transition(&self.key.key(), &t.stage, t.enabled);
                }
                _ => {}
            }
        }
        async move {
            if let Some(cancel) = cancel {
                cancel.await;
            }
        }
    }

    fn start_request(&self, live: &pipeline::Live, trigger: Trigger) -> StartRequest {
        StartRequest {
            account: self.key.account.clone(),
            region: self.key.region.clone(),
            pipeline: self.key.name.clone(),
            pipeline_version: live.version,
            declaration: live.declaration.clone(),
            trigger,
            variables: BTreeMap::new(),
            source_revisions: BTreeMap::new(),
            client_request_token: None,
            rollback: None,
        }
    }
}

impl Handler<Execute> for PipelineActor {
    type Result = AtomicResponse<Self, CommandResult>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        if matches!(msg.0, PipelineCommand::Delete { .. }) && self.state.live.is_some() {
            // Running executions are cancelled first: a deleted pipeline's executions leave
            // the views with it, and then the log.
            let executions = self.executions.views().ids(&self.key.key());
            let cancel = self.executions.cancel_all(
                &self.key,
                "The execution was cancelled because the pipeline was deleted".into(),
            );
            return AtomicResponse::new(Box::pin(
                cancel
                    .into_actor(self)
                    .then(move |(), act, _| act.record(msg.0))
                    .map(move |recorded, act, _| {
                        if recorded.is_ok() {
                            act.forget(executions, true);
                        }
                        recorded
                    }),
            ));
        }
        if let PipelineCommand::Expire { executions, .. } = &msg.0 {
            let executions = executions.clone();
            return AtomicResponse::new(Box::pin(self.record(msg.0).map(
                move |recorded, act: &mut Self, _| {
                    if recorded.as_ref().is_ok_and(|events| !events.is_empty()) {
                        act.forget(executions, false);
                    }
                    recorded
                },
            )));
        }
        AtomicResponse::new(self.record(msg.0))
    }
}

impl Handler<Start> for PipelineActor {
    type Result = AtomicResponse<Self, Result<String, CommandError>>;

    fn handle(&mut self, msg: Start, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let start = msg.0;
        let Some(live) = &self.state.live else {
            return AtomicResponse::new(ready(Err(CommandError::Refused(Refusal::NotFound))));
        };
        // Starts of one pipeline run one at a time and each is in the views before the next is
        // looked at, so a token is found here once its execution started.
        if let Some(token) = &start.client_request_token {
            if let Some(id) = self.executions.views().by_token(&self.key.key(), token) {
                return AtomicResponse::new(ready(Ok(id)));
            }
        }
        let given = start.variables.keys().map(String::as_str);
        if let Err(refusal) = pipeline::check_start_variables(&live.declaration, given) {
            return AtomicResponse::new(ready(Err(CommandError::Refused(refusal))));
        }
        let mut request = self.start_request(live, start.trigger);
        request.variables = start.variables;
        request.source_revisions = start.source_revisions;
        request.client_request_token = start.client_request_token;
        request.rollback = start.rollback;
        let (id, started) = self.executions.begin(request);
        AtomicResponse::new(Box::pin(
            started.into_actor(self).map(move |r, _, _| r.map(|()| id)),
        ))
    }
}

impl Handler<ToExecution> for PipelineActor {
    type Result = AtomicResponse<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: ToExecution, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let stream = self.key.execution_stream(&msg.execution_id);
        let executions = self.executions.clone();
        let sent = async move { executions.command(&stream, msg.command).await };
        AtomicResponse::new(Box::pin(sent.into_actor(self)))
    }
}

/// Finds the actor of a pipeline, starting it from the log when it is not running.
pub struct PipelineRegistry {
    actors: Mutex<HashMap<String, Addr<PipelineActor>>>,
    store: Arc<dyn EventStore>,
    views: Arc<[Arc<dyn Projection>]>,
    executions: Arc<ExecutionRegistry>,
    idle: Duration,
}

impl PipelineRegistry {
    /// A registry whose actors stop after `idle` without commands and start executions
    /// through `executions`.
    ///
    /// An actor runs on the thread (an HTTP worker) that first needed it, so the commands of
    /// that worker reach it without crossing threads; the others reach it through its mailbox.
    /// The events its actors make durable are offered to `views`.
    pub fn new(
        store: Arc<dyn EventStore>,
        views: Vec<Arc<dyn Projection>>,
        executions: Arc<ExecutionRegistry>,
        idle: Duration,
    ) -> Self {
        PipelineRegistry {
            actors: Mutex::new(HashMap::new()),
            store,
            views: views.into(),
            executions,
            idle,
        }
    }

    /// Runs a command on the pipeline and waits until its events are durable and what follows
    /// from them is done.
    ///
    /// In the rare case that the actor stopped for idleness just as the command reached it,
    /// nothing was written and the caller gets `Unavailable` (an HTTP 500 the SDKs retry).
    pub async fn execute(&self, key: &PipelineKey, command: PipelineCommand) -> CommandResult {
        self.ask(key, Execute(command)).await?
    }

    /// Starts an execution of the pipeline's current version; its id once `Started` is durable.
    pub async fn start(
        &self,
        key: &PipelineKey,
        start: StartExecution,
    ) -> Result<String, CommandError> {
        self.ask(key, Start(start)).await?
    }

    /// Runs a command on one of the pipeline's running executions.
    pub async fn to_execution(
        &self,
        key: &PipelineKey,
        execution_id: &str,
        command: ExecutionCommand,
    ) -> Result<(), CommandError> {
        let msg = ToExecution {
            execution_id: execution_id.to_string(),
            command,
        };
        self.ask(key, msg).await?
    }

    async fn ask<M>(&self, key: &PipelineKey, msg: M) -> Result<M::Result, CommandError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        PipelineActor: Handler<M>,
    {
        let addr = self.actor(key)?;
        addr.send(msg)
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    fn actor(&self, key: &PipelineKey) -> Result<Addr<PipelineActor>, StoreError> {
        let stream = key.stream();
        if let Some(addr) = self.running(&stream) {
            return Ok(addr);
        }
        // Rehydrated outside the registry's lock: other pipelines' commands go on meanwhile.
        let mut state = PipelineState::default();
        let sequence = fold_stream(self.store.as_ref(), &stream, &mut state, pipeline::apply)?;
        let mut actors = self.actors.lock().expect("registry lock");
        // Another request may have started it meanwhile: there is one actor a pipeline.
        if let Some(addr) = actors.get(&stream).filter(|a| a.connected()) {
            return Ok(addr.clone());
        }
        let actor = PipelineActor {
            key: key.clone(),
            stream: stream.clone(),
            state,
            sequence,
            store: self.store.clone(),
            views: self.views.clone(),
            executions: self.executions.clone(),
            last_used: Instant::now(),
            idle: self.idle,
        };
        let addr = actor.start();
        if actors.len() >= 1024 && actors.len().is_power_of_two() {
            actors.retain(|_, a| a.connected());
        }
        actors.insert(stream, addr.clone());
        Ok(addr)
    }

    fn running(&self, stream: &str) -> Option<Addr<PipelineActor>> {
        let actors = self.actors.lock().expect("registry lock");
        actors.get(stream).filter(|a| a.connected()).cloned()
    }
}
