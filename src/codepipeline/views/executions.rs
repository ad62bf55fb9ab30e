//! Execution views, folded from the execution streams with the aggregate's own `apply`: what
//! ListPipelineExecutions, GetPipelineExecution, ListActionExecutions and GetPipelineState read.
//!
//! Memory stays small however long the history grows: a running execution is kept whole, a
//! finished one only as the summary ListPipelineExecutions shows, and each pipeline keeps the
//! latest run of every stage and action (what GetPipelineState shows). The whole of a finished
//! execution is folded again from its own stream in the event log when a query asks for it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::codepipeline::execution::{
    self, ActionRun, ErrorDetails, Execution, ExecutionEvent, StageRun, Trigger,
};
use crate::codepipeline::model::{ActionStatus, ExecutionMode, ExecutionStatus};
use crate::codepipeline::pipeline::PipelineEvent;
use crate::eventstore::{fold_stream, EventStore, EventType, RecordedEvent, StoreError};

use crate::codepipeline::ids::{EXECUTION_STREAM_PREFIX, PIPELINE_STREAM_PREFIX};

/// An execution as ListPipelineExecutions shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    /// Execution id.
    pub id: String,
    /// How it stands.
    pub status: ExecutionStatus,
    /// Failure summary.
    pub summary: Option<String>,
    /// The reason given to StopPipelineExecution.
    pub stop_reason: Option<String>,
    /// How it was started.
    pub trigger: Option<Trigger>,
    /// How it shares the stages.
    pub execution_mode: ExecutionMode,
    /// Start time.
    pub started: f64,
    /// Last change.
    pub updated: f64,
    /// (action, revision) of every source action that produced a revision.
    pub source_revisions: Vec<(String, String)>,
    /// Stage attempts, in the order they were entered.
    pub stages: Vec<StageRun>,
}

impl ExecutionSummary {
    /// The summary of an execution.
    pub fn of(e: &Execution) -> Self {
        ExecutionSummary {
            id: e.id.clone(),
            status: e.status,
            summary: e.summary.clone(),
            stop_reason: e.stop_reason.clone(),
            trigger: e.trigger.clone(),
            execution_mode: e.execution_mode,
            started: e.started,
            updated: e.updated,
            source_revisions: e
                .runs
                .iter()
                .filter_map(|r| Some((r.action.clone(), r.output.as_ref()?.revision.clone()?)))
                .collect(),
            stages: e.stages.clone(),
        }
    }
}

/// The latest run of an action, as GetPipelineState shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestAction {
    /// The execution it ran in.
    pub execution_id: String,
    /// Action execution id.
    pub id: String,
    /// Its status.
    pub status: ActionStatus,
    /// Last change.
    pub updated: f64,
    /// The id of the work outside the pipeline.
    pub external_execution_id: Option<String>,
    /// A line about what happened.
    pub summary: Option<String>,
    /// Why it failed.
    pub error: Option<ErrorDetails>,
    /// The approval token, for manual approvals.
    pub token: Option<String>,
    /// For a source action that read one: (revision id, revision change id, when it was read).
    pub revision: Option<(String, String, f64)>,
}

impl LatestAction {
    /// The wire shape `ActionState` of GetPipelineState for the action `name` whose latest run
    /// this is: the run, and for source actions the revision it read (`currentRevision`).
    pub fn action_state(&self, name: &str) -> serde_json::Value {
        let mut state = serde_json::json!({"actionName": name, "latestExecution": self.to_json()});
        if let Some((id, change, created)) = &self.revision {
            state["currentRevision"] = serde_json::json!({"revisionId": id, "revisionChangeId": change, "created": created});
        }
        state
    }

    /// The wire shape `ActionExecution` of GetPipelineState (the token while it waits).
    pub fn to_json(&self) -> serde_json::Value {
        let mut latest = serde_json::json!({"actionExecutionId": self.id, "status": self.status, "lastStatusChange": self.updated});
        if let Some(id) = &self.external_execution_id {
            latest["externalExecutionId"] = id.clone().into();
        }
        if let Some(summary) = &self.summary {
            latest["summary"] = summary.clone().into();
        }
        if let Some(error) = &self.error {
            latest["errorDetails"] =
                serde_json::json!({"code": error.code, "message": error.message});
        }
        if let (Some(token), ActionStatus::InProgress) = (&self.token, self.status) {
            latest["token"] = token.clone().into();
        }
        latest
    }

    /// The latest run `run` of execution `e`.
    pub fn of(e: &Execution, run: &ActionRun) -> Self {
        let output = run.output.as_ref();
        LatestAction {
            execution_id: e.id.clone(),
            id: run.id.clone(),
            status: run.status,
            updated: run.updated,
            external_execution_id: output.and_then(|o| o.external_execution_id.clone()),
            summary: output.and_then(|o| o.external_execution_summary.clone()),
            error: run.error.clone(),
            token: run.token.clone(),
            // For S3 sources the revision is the object's version id and its change the ETag.
            revision: output.and_then(|o| {
                let id = o.revision.clone()?;
                let change = o
                    .output_variables
                    .get("ETag")
                    .cloned()
                    .unwrap_or(id.clone());
                Some((id, change, run.updated))
            }),
        }
    }
}

/// The latest run of each stage and action of a pipeline, as GetPipelineState shows them.
#[derive(Debug, Clone, Default)]
pub struct PipelineLatest {
    /// Stage → (execution id, its last attempt at the stage).
    pub stages: HashMap<String, (String, StageRun)>,
    /// (stage, action) → its latest run.
    pub actions: HashMap<(String, String), LatestAction>,
}

/// Which execution last ran each stage and action of a pipeline, by the execution's place in
/// the pipeline's start order: a few bytes a stage, whatever the executions hold.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LatestIndex {
    stages: Vec<(Box<str>, u32)>,
    actions: Vec<(Box<str>, Box<str>, u32)>,
}

impl LatestIndex {
    /// Takes what the execution at `ordinal` did, where no later execution did the same.
    fn record(&mut self, e: &Execution, ordinal: u32) {
        for stage in &e.stages {
            match self.stages.iter_mut().find(|(s, _)| **s == *stage.name) {
                Some((_, o)) => *o = (*o).max(ordinal),
                None => self.stages.push((stage.name.as_str().into(), ordinal)),
            }
        }
        for run in &e.runs {
            let found = self
                .actions
                .iter_mut()
                .find(|(s, a, _)| **s == *run.stage && **a == *run.action);
            match found {
                Some((_, _, o)) => *o = (*o).max(ordinal),
                None => self.actions.push((
                    run.stage.as_str().into(),
                    run.action.as_str().into(),
                    ordinal,
                )),
            }
        }
    }
}

/// An execution as the views keep it.
#[derive(Serialize, Deserialize)]
enum Stored {
    /// Whole, while it runs.
    Running(Box<Execution>),
    /// Only its summary once it ended; the rest is read back from its stream.
    Finished(Box<ExecutionSummary>),
}

#[derive(Default, Serialize, Deserialize)]
struct Inner {
    /// By execution id, with the key of its pipeline.
    executions: HashMap<String, (Arc<str>, Stored)>,
    /// Execution ids by pipeline key, oldest first.
    by_pipeline: HashMap<Arc<str>, Vec<String>>,
    /// (pipeline key, StartPipelineExecution's client request token) → execution id.
    #[serde(with = "pairs")]
    by_token: HashMap<(String, String), String>,
    /// Which execution last ran each stage and action, by pipeline key.
    latest: HashMap<Arc<str>, LatestIndex>,
    /// The last update of each execution, by pipeline key, in `by_pipeline`'s order: what bounds
    /// the runs older executions can add to a page of ListActionExecutions. Rebuilt on restore.
    #[serde(skip)]
    updated: HashMap<Arc<str>, Vec<f64>>,
    /// The executions that have not ended, by pipeline key, oldest first. Rebuilt on restore.
    #[serde(skip)]
    running: HashMap<Arc<str>, Vec<String>>,
}

impl Inner {
    /// Removes finished executions of a pipeline (the history's retention): the others keep
    /// their order, and the latest runs of stages and actions that only removed executions had
    /// are forgotten.
    fn expire(&mut self, key: &str, ids: &[String]) {
        let gone: std::collections::HashSet<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| {
                matches!(
                    self.executions.get(*id),
                    Some((k, Stored::Finished(_))) if &**k == key
                )
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        let Some(list) = self.by_pipeline.get_mut(key) else {
            return;
        };
        let updated = self.updated.get_mut(key);
        let mut remap: Vec<Option<u32>> = Vec::with_capacity(list.len());
        let mut kept_updates = Vec::with_capacity(list.len());
        let mut next = 0u32;
        for (i, id) in list.iter().enumerate() {
            if gone.contains(id.as_str()) {
                remap.push(None);
            } else {
                remap.push(Some(next));
                next += 1;
                if let Some(u) = updated.as_ref().and_then(|u| u.get(i)) {
                    kept_updates.push(*u);
                }
            }
        }
        list.retain(|id| !gone.contains(id.as_str()));
        if let Some(updated) = updated {
            *updated = kept_updates;
        }
        if let Some(index) = self.latest.get_mut(key) {
            let moved = |o: &mut u32| match remap.get(*o as usize).copied().flatten() {
                Some(n) => {
                    *o = n;
                    true
                }
                None => false,
            };
            index.stages.retain_mut(|(_, o)| moved(o));
            index.actions.retain_mut(|(_, _, o)| moved(o));
        }
        self.by_token.retain(|_, id| !gone.contains(id.as_str()));
        for id in gone {
            self.executions.remove(id);
        }
    }

    /// Rebuilds what is derived from the executions and not kept in checkpoints.
    fn derive(&mut self) {
        self.updated.clear();
        self.running.clear();
        for (key, ids) in &self.by_pipeline {
            let mut updated = Vec::with_capacity(ids.len());
            let mut running = Vec::new();
            for id in ids {
                match self.executions.get(id).map(|(_, s)| s) {
                    Some(Stored::Running(e)) => {
                        updated.push(e.updated);
                        running.push(id.clone());
                    }
                    Some(Stored::Finished(s)) => updated.push(s.updated),
                    None => updated.push(0.0),
                }
            }
            self.updated.insert(key.clone(), updated);
            if !running.is_empty() {
                self.running.insert(key.clone(), running);
            }
        }
    }

    /// An execution, as a summary.
    fn summary(&self, id: &str) -> Option<ExecutionSummary> {
        match &self.executions.get(id)?.1 {
            Stored::Running(e) => Some(ExecutionSummary::of(e)),
            Stored::Finished(s) => Some((**s).clone()),
        }
    }
}

/// A map with tuple keys, written into snapshots as a list of entries.
mod pairs {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Map = HashMap<(String, String), String>;

    pub fn serialize<S: Serializer>(map: &Map, s: S) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        Ok(Vec::<((String, String), String)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// Every execution, and each pipeline's executions in start order.
pub struct ExecutionViews {
    inner: RwLock<Inner>,
    /// Where finished executions are read back from.
    store: Arc<dyn EventStore>,
}

impl ExecutionViews {
    /// Empty views over the log in `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        ExecutionViews {
            inner: RwLock::default(),
            store,
        }
    }

    /// Applies one durable event.
    pub fn apply(&self, record: &RecordedEvent) {
        // A deleted pipeline takes its execution history with it, as on AWS: a pipeline created
        // again under the same name starts with none.
        if record.event_type == "PipelineDeleted" {
            if let Some(key) = record.stream.strip_prefix(PIPELINE_STREAM_PREFIX) {
                let mut inner = self.inner.write().expect("execution views lock");
                for id in inner.by_pipeline.remove(key).unwrap_or_default() {
                    inner.executions.remove(&id);
                }
                inner.latest.remove(key);
                inner.updated.remove(key);
                inner.running.remove(key);
                inner.by_token.retain(|(pipeline, _), _| pipeline != key);
            }
            return;
        }
        if record.event_type == "PipelineExecutionsExpired" {
            let key = record.stream.strip_prefix(PIPELINE_STREAM_PREFIX);
            if let (Some(key), Some(PipelineEvent::Expired(e))) =
                (key, PipelineEvent::from_record(record))
            {
                let mut inner = self.inner.write().expect("execution views lock");
                inner.expire(key, &e.expired_executions);
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
        let mut guard = self.inner.write().expect("execution views lock");
        let inner = &mut *guard;
        let key: Arc<str> = match inner.by_pipeline.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        if let ExecutionEvent::Started {
            client_request_token,
            ..
        } = &event
        {
            inner
                .by_pipeline
                .entry(key.clone())
                .or_default()
                .push(id.to_string());
            inner.updated.entry(key.clone()).or_default().push(0.0);
            inner
                .running
                .entry(key.clone())
                .or_default()
                .push(id.to_string());
            if let Some(token) = client_request_token {
                inner
                    .by_token
                    .insert((key.to_string(), token.clone()), id.to_string());
            }
        }
        let (_, stored) = inner
            .executions
            .entry(id.to_string())
            .or_insert_with(|| (key.clone(), Stored::Running(Box::default())));
        if let Stored::Finished(_) = stored {
            // An execution goes on after its end only when it is reopened (a stage retried):
            // it is folded again from its stream, up to this event, and kept whole again.
            let mut reopened = Execution::default();
            let folded = self.store.read_stream(&record.stream, 1).map(|records| {
                for r in records.iter().take_while(|r| r.sequence < record.sequence) {
                    if let Some(e) = ExecutionEvent::from_record(r) {
                        execution::apply(&mut reopened, &e);
                    }
                }
            });
            if let Err(e) = folded {
                log::error!("execution {id} could not be reopened from the log: {e}");
                return;
            }
            *stored = Stored::Running(Box::new(reopened));
            let ids = inner.by_pipeline.get(&key);
            let ordinal_of = |i: &String| ids.and_then(|ids| ids.iter().rposition(|x| x == i));
            let running = inner.running.entry(key.clone()).or_default();
            running.push(id.to_string());
            running.sort_by_key(ordinal_of);
        }
        let Stored::Running(state) = stored else {
            return;
        };
        execution::apply(state, &event);
        // Its place in the pipeline's start order (an execution whose start is not in the
        // views, which only a damaged log could hold, has none and indexes nothing).
        let ordinal = inner
            .by_pipeline
            .get(&key)
            .and_then(|ids| ids.iter().rposition(|i| i == id));
        if let Some(ordinal) = ordinal {
            if let Some(slot) = inner.updated.get_mut(&key).and_then(|u| u.get_mut(ordinal)) {
                *slot = state.updated;
            }
            if matches!(
                event,
                ExecutionEvent::StageStarted { .. } | ExecutionEvent::ActionStarted { .. }
            ) {
                inner
                    .latest
                    .entry(key.clone())
                    .or_default()
                    .record(state, ordinal as u32);
            }
        }
        if !state.status.is_running() {
            *stored = Stored::Finished(Box::new(ExecutionSummary::of(state)));
            if let Some(running) = inner.running.get_mut(&key) {
                running.retain(|i| i != id);
                if running.is_empty() {
                    inner.running.remove(&key);
                }
            }
        }
    }

    /// One execution, whole: from memory while it runs, from its stream once it ended.
    pub fn get(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let stream = {
            let inner = self.inner.read().expect("execution views lock");
            match inner.executions.get(id) {
                None => return Ok(None),
                Some((_, Stored::Running(e))) => return Ok(Some((**e).clone())),
                Some((key, Stored::Finished(_))) => format!("{EXECUTION_STREAM_PREFIX}{key}:{id}"),
            }
        };
        let mut execution = Execution::default();
        fold_stream(
            self.store.as_ref(),
            &stream,
            &mut execution,
            execution::apply,
        )?;
        Ok(Some(execution))
    }

    /// The pipeline an execution belongs to (its key), if the execution exists.
    pub fn pipeline_of(&self, id: &str) -> Option<String> {
        let inner = self.inner.read().expect("execution views lock");
        inner.executions.get(id).map(|(key, _)| key.to_string())
    }

    /// How many executions a pipeline has.
    pub fn count(&self, key: &str) -> usize {
        let inner = self.inner.read().expect("execution views lock");
        inner.by_pipeline.get(key).map_or(0, Vec::len)
    }

    /// Up to `take` of a pipeline's executions as summaries, newest first, after skipping the
    /// `skip` newest: a page costs its own executions, whatever the pipeline's history holds.
    pub fn newest(&self, key: &str, skip: usize, take: usize) -> Vec<ExecutionSummary> {
        let inner = self.inner.read().expect("execution views lock");
        let Some(ids) = inner.by_pipeline.get(key) else {
            return Vec::new();
        };
        ids.iter()
            .rev()
            .skip(skip)
            .take(take)
            .filter_map(|id| inner.summary(id))
            .collect()
    }

    /// Up to `limit` of a pipeline's finished executions last updated before `cutoff` (epoch
    /// seconds), oldest first: what the history's retention removes next.
    pub fn expired(&self, key: &str, cutoff: f64, limit: usize) -> Vec<String> {
        let inner = self.inner.read().expect("execution views lock");
        let (Some(ids), Some(updated)) = (inner.by_pipeline.get(key), inner.updated.get(key))
        else {
            return Vec::new();
        };
        ids.iter()
            .zip(updated)
            .filter(|(id, u)| {
                **u < cutoff && matches!(inner.executions.get(*id), Some((_, Stored::Finished(_))))
            })
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The ids of a pipeline's executions, oldest first.
    pub fn ids(&self, key: &str) -> Vec<String> {
        let inner = self.inner.read().expect("execution views lock");
        inner.by_pipeline.get(key).cloned().unwrap_or_default()
    }

    /// Where an execution stands among its pipeline's, newest first (0 for the newest).
    pub fn index_of(&self, key: &str, id: &str) -> Option<usize> {
        let inner = self.inner.read().expect("execution views lock");
        let ids = inner.by_pipeline.get(key)?;
        ids.iter().rposition(|i| i == id).map(|p| ids.len() - 1 - p)
    }

    /// For each of a pipeline's executions newest first, the latest update among it and every
    /// older one (one number an execution): once a page's runs are all newer than this at some
    /// execution, no execution from there on can add a run to the page.
    pub fn newest_updates(&self, key: &str) -> Vec<f64> {
        let inner = self.inner.read().expect("execution views lock");
        let Some(updated) = inner.updated.get(key) else {
            return Vec::new();
        };
        let mut out: Vec<f64> = Vec::with_capacity(updated.len());
        let mut newest = f64::MIN;
        for u in updated {
            newest = newest.max(*u);
            out.push(newest);
        }
        out.reverse();
        out
    }

    /// Walks `count` of a pipeline's executions newest first from the `first` newest, reading
    /// their summaries a few at a time; `visit` gets each with the latest update among it and
    /// every older execution (nothing older can have changed since), and stops the walk with
    /// `Ok(false)`.
    pub fn walk_newest<E>(
        &self,
        key: &str,
        first: usize,
        count: usize,
        mut visit: impl FnMut(ExecutionSummary, f64) -> Result<bool, E>,
    ) -> Result<(), E> {
        let bounds = self.newest_updates(key);
        let mut index = first;
        while index - first < count {
            let chunk = self.newest(key, index, 16.min(count - (index - first)));
            if chunk.is_empty() {
                return Ok(());
            }
            for summary in chunk {
                let bound = bounds.get(index).copied().unwrap_or(f64::MIN);
                index += 1;
                if !visit(summary, bound)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The latest run of each stage and action of a pipeline; the executions they ran in are
    /// read back (from the log once finished).
    pub fn latest(&self, key: &str) -> Result<PipelineLatest, StoreError> {
        let (stages, actions) = {
            let inner = self.inner.read().expect("execution views lock");
            let (Some(index), Some(ids)) = (inner.latest.get(key), inner.by_pipeline.get(key))
            else {
                return Ok(PipelineLatest::default());
            };
            let id = |o: &u32| ids.get(*o as usize).cloned().unwrap_or_default();
            let stages: Vec<(String, String)> = index
                .stages
                .iter()
                .map(|(s, o)| (s.to_string(), id(o)))
                .collect();
            let actions: Vec<(String, String, String)> = index
                .actions
                .iter()
                .map(|(s, a, o)| (s.to_string(), a.to_string(), id(o)))
                .collect();
            (stages, actions)
        };
        let mut loaded: HashMap<String, Option<Execution>> = HashMap::new();
        let mut latest = PipelineLatest::default();
        for (stage, id) in stages {
            if !loaded.contains_key(&id) {
                loaded.insert(id.clone(), self.get(&id)?);
            }
            if let Some(e) = &loaded[&id] {
                if let Some(run) = e.stage_run(&stage) {
                    latest.stages.insert(stage, (id, run.clone()));
                }
            }
        }
        for (stage, action, id) in actions {
            if !loaded.contains_key(&id) {
                loaded.insert(id.clone(), self.get(&id)?);
            }
            if let Some(e) = &loaded[&id] {
                let run = e
                    .runs
                    .iter()
                    .rev()
                    .find(|r| r.stage == stage && r.action == action);
                if let Some(run) = run {
                    latest
                        .actions
                        .insert((stage, action), LatestAction::of(e, run));
                }
            }
        }
        Ok(latest)
    }

    /// Executions still running, for resuming them at startup: (pipeline key, execution).
    pub fn running(&self) -> Vec<(String, Execution)> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .executions
            .values()
            .filter_map(|(key, stored)| match stored {
                Stored::Running(e) => Some((key.to_string(), (**e).clone())),
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
            .running
            .get(key)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| match &inner.executions.get(id)?.1 {
                Stored::Running(e) => Some((**e).clone()),
                Stored::Finished(_) => None,
            })
            .collect()
    }
}

impl crate::checkpoint::Projection for ExecutionViews {
    fn name(&self) -> &'static str {
        "executions"
    }

    fn apply(&self, record: &RecordedEvent) {
        ExecutionViews::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let inner = self.inner.read().expect("execution views lock");
        serde_json::value::to_raw_value(&*inner).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let mut inner: Inner = serde_json::from_str(json).map_err(|e| e.to_string())?;
        // Each pipeline key was read once per execution: share one copy, as folding does.
        let Inner {
            executions,
            by_pipeline,
            latest,
            ..
        } = &mut inner;
        for (key, _) in executions.values_mut() {
            if let Some((shared, _)) = by_pipeline.get_key_value(key) {
                *key = shared.clone();
            }
        }
        let keys: Vec<Arc<str>> = latest.keys().cloned().collect();
        for key in keys {
            if let Some((shared, _)) = by_pipeline.get_key_value(&key) {
                let index = latest.remove(&key).unwrap_or_default();
                latest.insert(shared.clone(), index);
            }
        }
        inner.derive();
        *self.inner.write().expect("execution views lock") = inner;
        Ok(())
    }

    fn clear(&self) {
        *self.inner.write().expect("execution views lock") = Inner::default();
    }
}
