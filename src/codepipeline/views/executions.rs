//! Execution views, folded from the execution streams with the aggregate's own `apply`: what
//! ListPipelineExecutions, GetPipelineExecution, ListActionExecutions and GetPipelineState read.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::codepipeline::execution::{self, Execution, ExecutionEvent};
use crate::eventstore::RecordedEvent;

/// The prefix of every execution stream.
pub const EXECUTION_STREAM_PREFIX: &str = "execution:";

/// The stream of an execution.
pub fn execution_stream(account: &str, region: &str, pipeline: &str, id: &str) -> String {
    format!("{EXECUTION_STREAM_PREFIX}{account}:{region}:{pipeline}:{id}")
}

/// The key of a pipeline's executions: `<account>:<region>:<name>`.
pub fn pipeline_key(account: &str, region: &str, pipeline: &str) -> String {
    format!("{account}:{region}:{pipeline}")
}

/// Every execution, and each pipeline's executions in start order.
#[derive(Default)]
pub struct ExecutionViews {
    inner: RwLock<Inner>,
}

/// An execution as the views keep it: whole while it runs; once finished, serialised into one
/// buffer (read back on the rare query), so that thousands of past executions cost little memory.
enum Stored {
    Running(Box<Execution>),
    Finished(bytes::Bytes),
}

impl Stored {
    fn execution(&self) -> Option<Execution> {
        match self {
            Stored::Running(e) => Some((**e).clone()),
            Stored::Finished(bytes) => serde_json::from_slice(bytes)
                .inspect_err(|e| log::error!("a stored execution is unreadable: {e}"))
                .ok(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// By execution id.
    executions: HashMap<String, Stored>,
    /// Execution ids by pipeline key, oldest first.
    by_pipeline: HashMap<String, Vec<String>>,
    /// (pipeline key, StartPipelineExecution's client request token) → execution id.
    by_token: HashMap<(String, String), String>,
}

impl ExecutionViews {
    /// Empty views.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one durable event.
    pub fn apply(&self, record: &RecordedEvent) {
        // A deleted pipeline takes its execution history with it, as on AWS: a pipeline created
        // again under the same name starts with none.
        if record.event_type == "PipelineDeleted" {
            if let Some(key) = record.stream.strip_prefix(super::PIPELINE_STREAM_PREFIX) {
                let mut inner = self.inner.write().expect("execution views lock");
                for id in inner.by_pipeline.remove(key).unwrap_or_default() {
                    inner.executions.remove(&id);
                }
                inner.by_token.retain(|(pipeline, _), _| pipeline != key);
            }
            return;
        }
        let Some(rest) = record.stream.strip_prefix(EXECUTION_STREAM_PREFIX) else {
            return;
        };
        let Some(event) = ExecutionEvent::from_record(record) else {
            return;
        };
        let Some((key, id)) = rest.rsplit_once(':') else {
            return;
        };
        let mut inner = self.inner.write().expect("execution views lock");
        if let ExecutionEvent::Started {
            client_request_token,
            ..
        } = &event
        {
            inner
                .by_pipeline
                .entry(key.to_string())
                .or_default()
                .push(id.to_string());
            if let Some(token) = client_request_token {
                inner
                    .by_token
                    .insert((key.to_string(), token.clone()), id.to_string());
            }
        }
        let stored = inner
            .executions
            .entry(id.to_string())
            .or_insert_with(|| Stored::Running(Box::default()));
        let Stored::Running(state) = stored else {
            // A finished execution takes no more events.
            return;
        };
        execution::apply(state, &event);
        let ended = !matches!(state.status.as_str(), "InProgress" | "Stopping");
        let compacted = ended.then(|| serde_json::to_vec(&**state));
        if let Some(compacted) = compacted {
            match compacted {
                Ok(bytes) => *stored = Stored::Finished(bytes.into()),
                Err(e) => log::error!("execution {id} could not be compacted: {e}"),
            }
        }
    }

    /// One execution.
    pub fn get(&self, id: &str) -> Option<Execution> {
        self.inner
            .read()
            .expect("execution views lock")
            .executions
            .get(id)
            .and_then(Stored::execution)
    }

    /// A pipeline's executions, newest first.
    pub fn of_pipeline(&self, key: &str) -> Vec<Execution> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_pipeline
            .get(key)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| inner.executions.get(id).and_then(Stored::execution))
            .collect()
    }

    /// Executions still running, for resuming them at startup: (pipeline key, execution).
    pub fn running(&self) -> Vec<(String, Execution)> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_pipeline
            .iter()
            .flat_map(|(key, ids)| ids.iter().map(move |id| (key, id)))
            .filter_map(|(key, id)| match inner.executions.get(id)? {
                Stored::Running(e) => Some((key.clone(), (**e).clone())),
                Stored::Finished(_) => None,
            })
            .collect()
    }

    /// The execution a StartPipelineExecution with this token already started, if any.
    pub fn by_token(&self, key: &str, token: &str) -> Option<String> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_token
            .get(&(key.to_string(), token.to_string()))
            .cloned()
    }

    /// A pipeline's executions that have not ended, newest first (finished ones are not read).
    pub fn running_of(&self, key: &str) -> Vec<Execution> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_pipeline
            .get(key)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| match inner.executions.get(id)? {
                Stored::Running(e) => Some((**e).clone()),
                Stored::Finished(_) => None,
            })
            .collect()
    }
}
