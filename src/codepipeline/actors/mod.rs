//! Actors serialise the commands of one pipeline: a [`PipelineActor`] per pipeline, found or
//! started by the [`PipelineRegistry`], which rehydrates it from its event stream.
//!
//! An actor handles one command at a time: the aggregate decides, the events are appended, and
//! only once the store says they are durable does the actor update the views and answer. Other
//! pipelines' actors run meanwhile, and their flushes are shared (group commit). Idle actors stop
//! and are started again from the log when next needed.

pub mod execution;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::pipeline::{self, PipelineCommand, PipelineEvent, PipelineState, Refusal};
use crate::eventstore::{EventStore, Projection, StoreError};

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

/// Owns one pipeline's stream: its aggregate state and the next expected sequence.
pub struct PipelineActor {
    stream: String,
    state: PipelineState,
    sequence: u64,
    store: Arc<dyn EventStore>,
    views: Arc<[Arc<dyn Projection>]>,
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

impl Handler<Execute> for PipelineActor {
    type Result = AtomicResponse<Self, CommandResult>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let ready = |r: CommandResult| AtomicResponse::new(Box::pin(fut::ready(r)));
        let events = match pipeline::handle(&self.state, msg.0) {
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
        let views = self.views.clone();
        AtomicResponse::new(Box::pin(appended.into_actor(self).map(
            move |result, act, ctx| match result {
                Ok(recorded) => {
                    act.sequence += recorded.len() as u64;
                    for record in &recorded {
                        views.iter().for_each(|v| v.apply(record));
                    }
                    Ok(events)
                }
                Err(e) => {
                    log::error!("events of {} were not recorded: {e}", act.stream);
                    ctx.stop();
                    Err(e.into())
                }
            },
        )))
    }
}

/// Finds the actor of a pipeline stream, starting it from the log when it is not running.
pub struct PipelineRegistry {
    actors: Mutex<HashMap<String, Addr<PipelineActor>>>,
    store: Arc<dyn EventStore>,
    views: Arc<[Arc<dyn Projection>]>,
    idle: Duration,
}

impl PipelineRegistry {
    /// A registry whose actors stop after `idle` without commands.
    ///
    /// An actor runs on the thread (an HTTP worker) that first needed it, so the commands of
    /// that worker reach it without crossing threads; the others reach it through its mailbox.
    /// The events its actors make durable are offered to `views`.
    pub fn new(
        store: Arc<dyn EventStore>,
        views: Vec<Arc<dyn Projection>>,
        idle: Duration,
    ) -> Self {
        PipelineRegistry {
            actors: Mutex::new(HashMap::new()),
            store,
            views: views.into(),
            idle,
        }
    }

    /// Runs a command on the pipeline of `stream` and waits until its events are durable.
    ///
    /// In the rare case that the actor stopped for idleness just as the command reached it,
    /// nothing was written and the caller gets `Unavailable` (an HTTP 500 the SDKs retry).
    pub async fn execute(&self, stream: &str, command: PipelineCommand) -> CommandResult {
        let addr = self.actor(stream)?;
        match addr.send(Execute(command)).await {
            Ok(result) => result,
            Err(e) => Err(CommandError::Unavailable(e.to_string())),
        }
    }

    fn actor(&self, stream: &str) -> Result<Addr<PipelineActor>, StoreError> {
        let mut actors = self.actors.lock().expect("registry lock");
        if let Some(addr) = actors.get(stream).filter(|a| a.connected()) {
            return Ok(addr.clone());
        }
        let mut state = PipelineState::default();
        let mut sequence = 0;
        for record in self.store.read_stream(stream, 1)? {
            sequence = record.sequence;
            if let Some(event) = PipelineEvent::from_record(&record) {
                pipeline::apply(&mut state, &event);
            }
        }
        let actor = PipelineActor {
            stream: stream.to_string(),
            state,
            sequence,
            store: self.store.clone(),
            views: self.views.clone(),
            last_used: Instant::now(),
            idle: self.idle,
        };
        let addr = actor.start();
        if actors.len() >= 1024 && actors.len().is_power_of_two() {
            actors.retain(|_, a| a.connected());
        }
        actors.insert(stream.to_string(), addr.clone());
        Ok(addr)
    }
}
