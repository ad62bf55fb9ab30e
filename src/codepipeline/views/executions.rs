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

#[derive(Default)]
struct Inner {
    /// By execution id.
    executions: HashMap<String, Execution>,
    /// Execution ids by pipeline key, oldest first.
    by_pipeline: HashMap<String, Vec<String>>,
}

impl ExecutionViews {
    /// Empty views.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one durable event.
    pub fn apply(&self, record: &RecordedEvent) {
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
        if matches!(event, ExecutionEvent::Started { .. }) {
            inner
                .by_pipeline
                .entry(key.to_string())
                .or_default()
                .push(id.to_string());
        }
        let state = inner.executions.entry(id.to_string()).or_default();
        execution::apply(state, &event);
        if matches!(event, ExecutionEvent::Started { .. }) {
            // Reads need only the execution mode of the declaration the execution ran; the
            // stages come from the runs. Keeping less keeps many executions cheap.
            let mode = state.declaration["executionMode"].clone();
            state.declaration = serde_json::json!({ "executionMode": mode });
        }
    }

    /// One execution.
    pub fn get(&self, id: &str) -> Option<Execution> {
        self.inner
            .read()
            .expect("execution views lock")
            .executions
            .get(id)
            .cloned()
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
            .filter_map(|id| inner.executions.get(id).cloned())
            .collect()
    }

    /// Executions still running, for resuming them at startup: (pipeline key, execution).
    pub fn running(&self) -> Vec<(String, Execution)> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_pipeline
            .iter()
            .flat_map(|(key, ids)| ids.iter().map(move |id| (key, id)))
            .filter_map(|(key, id)| {
                let e = inner.executions.get(id)?;
                (e.status == "InProgress").then(|| (key.clone(), e.clone()))
            })
            .collect()
    }

    /// The execution a StartPipelineExecution with this token already started, if any.
    pub fn by_token(&self, key: &str, token: &str) -> Option<String> {
        let inner = self.inner.read().expect("execution views lock");
        inner.by_pipeline.get(key)?.iter().find_map(|id| {
            let e = inner.executions.get(id)?;
            (e.client_request_token.as_deref() == Some(token)).then(|| id.clone())
        })
    }
}
