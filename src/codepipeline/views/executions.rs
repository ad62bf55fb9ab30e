//! Execution views, folded from the execution streams with the aggregate's own `apply`: what
//! ListPipelineExecutions, GetPipelineExecution, ListActionExecutions and GetPipelineState read.
//!
//! Memory stays small however long the history grows: a running execution is kept whole, a
//! finished one only as its id and last update in its pipeline's start order, and each pipeline
//! keeps which execution last ran each stage and action (what GetPipelineState shows). The
//! summary ListPipelineExecutions shows of a finished execution, its pipeline and its client
//! request token are on a shelf beside the log ([`crate::eventstore::shelf`]), read a page at a
//! time; the whole of a finished execution is folded again from its own stream when a query asks
//! for it.
//!
//! Both the live views and the checkpoints' folds write the shelf, each in its own order, so a
//! shelf entry carries the sequence of the last event it holds and a write never replaces a later
//! one; executions that left the history are marked gone by the live views and the mark removed
//! by the checkpoint's fold once it passes their removal ([`Role`]). Only executions that reached
//! the end of a fold without ending are in checkpoints.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::codepipeline::execution::{
    self, ActionRun, ErrorDetails, Execution, ExecutionEvent, StageRun, Trigger,
};
use crate::codepipeline::model::{ActionStatus, ExecutionMode, ExecutionStatus};
use crate::codepipeline::pipeline::PipelineEvent;
pub use crate::eventstore::shelf::Role;
use crate::eventstore::shelf::{Change, Shelf};
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
    /// The summary of each of those revisions, by action (a commit's message and provider).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub revision_summaries: std::collections::BTreeMap<String, String>,
    /// Stage attempts, in the order they were entered.
    pub stages: Vec<StageRun>,
    /// For a rollback execution: the execution it rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_target: Option<String>,
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
                .source_outputs()
                .filter_map(|(action, output, _)| {
                    Some((action.to_string(), output.revision.clone()?))
                })
                .collect(),
            revision_summaries: e
                .source_outputs()
                .filter_map(|(action, output, _)| {
                    output.revision.as_ref()?;
                    Some((
                        action.to_string(),
                        output.external_execution_summary.clone()?,
                    ))
                })
                .collect(),
            stages: e.stages.clone(),
            rollback_target: e.rollback.as_ref().map(|r| r.target.clone()),
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
    /// How far its job worker says it is.
    pub percent_complete: Option<u8>,
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
        if let Some(percent) = self.percent_complete {
            latest["percentComplete"] = percent.into();
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
        // What a job worker reported stands until the action's output says otherwise.
        let progress = run.progress.as_ref();
        LatestAction {
            execution_id: e.id.clone(),
            id: run.id.clone(),
            status: run.status,
            updated: run.updated,
            external_execution_id: output
                .and_then(|o| o.external_execution_id.clone())
                .or_else(|| progress.and_then(|p| p.external_execution_id.clone())),
            summary: output
                .and_then(|o| o.external_execution_summary.clone())
                .or_else(|| progress.and_then(|p| p.summary.clone())),
            percent_complete: progress.and_then(|p| p.percent_complete),
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

#[derive(Default, Serialize, Deserialize)]
struct Inner {
    /// The executions that have not ended, whole, by id, with the key of their pipeline.
    running: HashMap<String, (Arc<str>, Box<Execution>)>,
    /// Execution ids by pipeline key, oldest first.
    by_pipeline: HashMap<Arc<str>, Vec<Box<str>>>,
    /// The last update of each execution, by pipeline key, in `by_pipeline`'s order: what bounds
    /// the runs older executions can add to a page of ListActionExecutions.
    updated: HashMap<Arc<str>, Vec<f64>>,
    /// Which execution last ran each stage and action, by pipeline key.
    latest: HashMap<Arc<str>, LatestIndex>,
    /// The ids in `running`, by pipeline key, oldest first. Rebuilt on restore.
    #[serde(skip)]
    running_order: HashMap<Arc<str>, Vec<String>>,
    /// The execution of every job of the executions in `running`. Rebuilt on restore.
    #[serde(skip)]
    jobs: HashMap<String, String>,
    /// The execution of jobs whose executions ended lately, oldest first: what tells a late
    /// result for a job from a job that never was. Not kept across restarts.
    #[serde(skip)]
    ended_jobs: JobsEnded,
}

/// The last [`ENDED_JOBS`] jobs whose executions ended, with their executions.
#[derive(Default)]
struct JobsEnded {
    order: std::collections::VecDeque<String>,
    execution: HashMap<String, String>,
}

/// How many ended jobs are remembered.
const ENDED_JOBS: usize = 10_000;

impl JobsEnded {
    fn add(&mut self, job: &str, execution: &str) {
        if self
            .execution
            .insert(job.to_string(), execution.to_string())
            .is_none()
        {
            self.order.push_back(job.to_string());
        }
        while self.order.len() > ENDED_JOBS {
            if let Some(old) = self.order.pop_front() {
                self.execution.remove(&old);
            }
        }
    }
}

impl Inner {
    /// Removes finished executions of a pipeline (the history's retention): the others keep
    /// their order, and the latest runs of stages and actions that only removed executions had
    /// are forgotten. Returns the ids removed.
    fn expire(&mut self, key: &str, ids: &[String]) -> Vec<String> {
        let Some(list) = self.by_pipeline.get_mut(key) else {
            return Vec::new();
        };
        let running = &self.running;
        let asked: HashSet<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !running.contains_key(*id))
            .collect();
        let gone: Vec<String> = list
            .iter()
            .filter(|id| asked.contains(&***id))
            .map(|id| id.to_string())
            .collect();
        if gone.is_empty() {
            return gone;
        }
        let updated = self.updated.get_mut(key);
        let mut remap: Vec<Option<u32>> = Vec::with_capacity(list.len());
        let mut kept_updates = Vec::with_capacity(list.len());
        let mut next = 0u32;
        for (i, id) in list.iter().enumerate() {
            if asked.contains(&**id) {
                remap.push(None);
            } else {
                remap.push(Some(next));
                next += 1;
                if let Some(u) = updated.as_ref().and_then(|u| u.get(i)) {
                    kept_updates.push(*u);
                }
            }
        }
        list.retain(|id| !asked.contains(&**id));
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
        gone
    }

    /// Rebuilds what is derived and not kept in checkpoints.
    fn derive(&mut self) {
        self.jobs = self
            .running
            .iter()
            .flat_map(|(id, (_, e))| {
                e.runs
                    .iter()
                    .flat_map(|r| r.job_ids())
                    .map(move |job| (job.to_string(), id.clone()))
            })
            .collect();
        self.running_order.clear();
        for (key, ids) in &self.by_pipeline {
            let running: Vec<String> = ids
                .iter()
                .filter(|id| self.running.contains_key(&***id))
                .map(|id| id.to_string())
                .collect();
            if !running.is_empty() {
                self.running_order.insert(key.clone(), running);
            }
        }
    }
}

/// The sequence a gone execution's shelf entry carries: higher than any a fold can write.
const GONE: u64 = u64::MAX;

/// A finished execution on the shelf, after the sequence of the last event it holds (8 bytes,
/// big-endian).
#[derive(Serialize, Deserialize)]
struct Shelved {
    /// The key of its pipeline.
    key: String,
    /// StartPipelineExecution's client request token.
    #[serde(default)]
    token: Option<String>,
    summary: ExecutionSummary,
}

fn execution_key(id: &str) -> Vec<u8> {
    [b"e", id.as_bytes()].concat()
}

fn token_prefix(key: &str) -> Vec<u8> {
    [b"t", key.as_bytes(), b"\0"].concat()
}

fn token_key(key: &str, token: &str) -> Vec<u8> {
    [token_prefix(key).as_slice(), token.as_bytes()].concat()
}

/// The sequence and (unless gone) the execution of a shelf entry.
fn unshelve(value: &[u8]) -> Option<(u64, Option<Shelved>)> {
    let (seq, rest) = value.split_first_chunk::<8>()?;
    let seq = u64::from_be_bytes(*seq);
    if seq == GONE {
        return Some((seq, None));
    }
    Some((seq, Some(serde_json::from_slice(rest).ok()?)))
}

/// Every execution, and each pipeline's executions in start order.
pub struct ExecutionViews {
    inner: RwLock<Inner>,
    /// Where finished executions are read back from.
    store: Arc<dyn EventStore>,
    /// Finished executions' summaries, client request tokens and pipelines, by id.
    shelf: Arc<dyn Shelf>,
    role: Role,
}

impl ExecutionViews {
    /// Empty views over the log in `store`, for queries.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self::with_role(store, Role::Live)
    }

    /// Empty views over the log in `store`, in `role`.
    pub fn with_role(store: Arc<dyn EventStore>, role: Role) -> Self {
        ExecutionViews {
            inner: RwLock::default(),
            shelf: store.shelf("executions"),
            store,
            role,
        }
    }

    /// Puts a finished execution on the shelf, unless the shelf holds a later state of it (or
    /// knows it gone).
    fn shelve(&self, key: &str, e: &Execution, sequence: u64) {
        let shelved = Shelved {
            key: key.to_string(),
            token: e.client_request_token.clone(),
            summary: ExecutionSummary::of(e),
        };
        let Ok(json) = serde_json::to_vec(&shelved) else {
            return;
        };
        let value = [&sequence.to_be_bytes()[..], &json].concat();
        let mut value = Some(value);
        let written = self.shelf.update(&execution_key(&e.id), &mut |current| {
            let newer = current
                .and_then(<[u8]>::first_chunk::<8>)
                .is_some_and(|s| u64::from_be_bytes(*s) >= sequence);
            match (newer, value.take()) {
                (false, Some(v)) => Change::Put(v),
                _ => Change::Keep,
            }
        });
        if let Err(err) = written {
            log::error!("execution {} could not be shelved: {err}", e.id);
        }
    }

    /// Takes executions that left the history off the shelf, with their tokens (see [`Role`]).
    fn unshelve_gone(&self, ids: &[String]) {
        let result = ids.iter().try_for_each(|id| {
            let ekey = execution_key(id);
            if let Some((_, Some(s))) = self.shelf.get(&ekey)?.as_deref().and_then(unshelve) {
                if let Some(token) = &s.token {
                    self.shelf
                        .update(&token_key(&s.key, token), &mut |_| Change::Remove)?;
                }
            }
            self.shelf.update(&ekey, &mut |_| match self.role {
                Role::Live => Change::Put(GONE.to_be_bytes().to_vec()),
                Role::Checkpoint => Change::Remove,
            })
        });
        if let Err(err) = result {
            log::error!("executions that left the history stay on the shelf: {err}");
        }
    }

    /// A finished execution's shelf entry.
    fn shelved(&self, id: &str) -> Option<Shelved> {
        match self.shelf.get(&execution_key(id)) {
            Ok(value) => value.as_deref().and_then(unshelve)?.1,
            Err(err) => {
                log::error!("execution {id} could not be read from the shelf: {err}");
                None
            }
        }
    }

    /// Applies one durable event.
    pub fn apply(&self, record: &RecordedEvent) {
        // A deleted pipeline takes its execution history with it, as on AWS: a pipeline created
        // again under the same name starts with none.
        if record.event_type == "PipelineDeleted" {
            if let Some(key) = record.stream.strip_prefix(PIPELINE_STREAM_PREFIX) {
                let ids: Vec<String> = {
                    let mut inner = self.inner.write().expect("execution views lock");
                    let ids = inner.by_pipeline.remove(key).unwrap_or_default();
                    for id in &ids {
                        if let Some((_, e)) = inner.running.remove(&**id) {
                            for job in e.runs.iter().flat_map(|r| r.job_ids()) {
                                inner.jobs.remove(job);
                            }
                        }
                    }
                    inner.latest.remove(key);
                    inner.updated.remove(key);
                    inner.running_order.remove(key);
                    ids.iter().map(|id| id.to_string()).collect()
                };
                self.unshelve_gone(&ids);
                if let Err(err) = self.shelf.remove_prefix(&token_prefix(key)) {
                    log::error!("the tokens of a deleted pipeline stay on the shelf: {err}");
                }
            }
            return;
        }
        if record.event_type == "PipelineExecutionsExpired" {
            let key = record.stream.strip_prefix(PIPELINE_STREAM_PREFIX);
            if let (Some(key), Some(PipelineEvent::Expired(e))) =
                (key, PipelineEvent::from_record(record))
            {
                let gone = {
                    let mut inner = self.inner.write().expect("execution views lock");
                    inner.expire(key, &e.expired_executions)
                };
                self.unshelve_gone(&gone);
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
                .push(id.into());
            inner.updated.entry(key.clone()).or_default().push(0.0);
            inner
                .running_order
                .entry(key.clone())
                .or_default()
                .push(id.to_string());
            inner
                .running
                .insert(id.to_string(), (key.clone(), Box::default()));
            if let Some(token) = client_request_token {
                let written = self.shelf.update(&token_key(&key, token), &mut |_| {
                    Change::Put(id.as_bytes().to_vec())
                });
                if let Err(err) = written {
                    log::error!("the token of execution {id} could not be shelved: {err}");
                }
            }
        }
        if !inner.running.contains_key(id) {
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
            inner
                .running
                .insert(id.to_string(), (key.clone(), Box::new(reopened)));
            let ids = inner.by_pipeline.get(&key);
            let ordinal_of = |i: &String| ids.and_then(|ids| ids.iter().rposition(|x| **x == **i));
            let running = inner.running_order.entry(key.clone()).or_default();
            running.push(id.to_string());
            running.sort_by_key(ordinal_of);
        }
        let Some((_, state)) = inner.running.get_mut(id) else {
            return;
        };
        execution::apply(state, &event);
        let job = match &event {
            ExecutionEvent::ActionStarted { job: Some(job), .. } => Some(&job.id),
            ExecutionEvent::JobQueued { job, .. } => Some(&job.id),
            _ => None,
        };
        if let Some(job) = job {
            inner.jobs.insert(job.clone(), id.to_string());
        }
        // A LambdaInvoke rule's job is its rule execution id.
        if let ExecutionEvent::ConditionChecked { check, .. } = &event {
            for rule in check.pending().filter(|r| r.runs_as_job()) {
                inner.jobs.insert(rule.id.clone(), id.to_string());
            }
        }
        // Its place in the pipeline's start order (an execution whose start is not in the
        // views, which only a damaged log could hold, has none and indexes nothing).
        let ordinal = inner
            .by_pipeline
            .get(&key)
            .and_then(|ids| ids.iter().rposition(|i| **i == *id));
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
            if let Some((_, finished)) = inner.running.remove(id) {
                let rule_jobs = finished
                    .stages
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .flat_map(|c| &c.rules)
                    .filter(|r| r.runs_as_job())
                    .map(|r| r.id.as_str());
                for job in finished
                    .runs
                    .iter()
                    .flat_map(|r| r.job_ids())
                    .chain(rule_jobs)
                {
                    inner.jobs.remove(job);
                    inner.ended_jobs.add(job, id);
                }
                self.shelve(&key, &finished, record.sequence);
            }
            if let Some(running) = inner.running_order.get_mut(&key) {
                running.retain(|i| i != id);
                if running.is_empty() {
                    inner.running_order.remove(&key);
                }
            }
        }
    }

    /// One execution, whole: from memory while it runs, from its stream once it ended.
    pub fn get(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        if let Some((_, e)) = self
            .inner
            .read()
            .expect("execution views lock")
            .running
            .get(id)
        {
            return Ok(Some((**e).clone()));
        }
        // Not running: then it is on the shelf (an execution leaves `running` for the shelf in
        // one step, under the views' lock), read without holding that lock.
        let Some(shelved) = self.shelved(id) else {
            return Ok(None);
        };
        let stream = format!("{EXECUTION_STREAM_PREFIX}{}:{id}", shelved.key);
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
        let running = {
            let inner = self.inner.read().expect("execution views lock");
            inner.running.get(id).map(|(key, _)| key.to_string())
        };
        running.or_else(|| self.shelved(id).map(|s| s.key))
    }

    /// How many executions a pipeline has.
    pub fn count(&self, key: &str) -> usize {
        let inner = self.inner.read().expect("execution views lock");
        inner.by_pipeline.get(key).map_or(0, Vec::len)
    }

    /// Up to `take` of a pipeline's executions as summaries, newest first, after skipping the
    /// `skip` newest: a page costs its own executions, whatever the pipeline's history holds.
    pub fn newest(&self, key: &str, skip: usize, take: usize) -> Vec<ExecutionSummary> {
        self.page(key, None, skip, take)
    }

    /// Up to `take` of a pipeline's executions older than `id` as summaries, newest first: the
    /// page after one that ended with `id`, whatever executions started since (which a count
    /// of executions to skip would not see past).
    pub fn older_than(&self, key: &str, id: &str, take: usize) -> Vec<ExecutionSummary> {
        self.page(key, Some(id), 0, take)
    }

    fn page(
        &self,
        key: &str,
        before: Option<&str>,
        skip: usize,
        take: usize,
    ) -> Vec<ExecutionSummary> {
        // Running executions are summed up under the views' lock; finished ones are read from
        // the shelf after it is released, so that a page never holds up the views' writers.
        let page: Vec<Result<ExecutionSummary, Box<str>>> = {
            let inner = self.inner.read().expect("execution views lock");
            let Some(ids) = inner.by_pipeline.get(key) else {
                return Vec::new();
            };
            let end = match before {
                Some(before) => match ids.iter().rposition(|i| **i == *before) {
                    Some(at) => at,
                    None => return Vec::new(),
                },
                None => ids.len(),
            };
            ids[..end]
                .iter()
                .rev()
                .skip(skip)
                .take(take)
                .map(|id| match inner.running.get(&**id) {
                    Some((_, e)) => Ok(ExecutionSummary::of(e)),
                    None => Err(id.clone()),
                })
                .collect()
        };
        page.into_iter()
            .filter_map(|entry| match entry {
                Ok(summary) => Some(summary),
                Err(id) => self.shelved(&id).map(|s| s.summary),
            })
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
            .filter(|(id, u)| **u < cutoff && !inner.running.contains_key(&***id))
            .take(limit)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// The ids of a pipeline's executions, oldest first.
    pub fn ids(&self, key: &str) -> Vec<String> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .by_pipeline
            .get(key)
            .map(|ids| ids.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    /// Where an execution stands among its pipeline's, newest first (0 for the newest).
    pub fn index_of(&self, key: &str, id: &str) -> Option<usize> {
        let inner = self.inner.read().expect("execution views lock");
        let ids = inner.by_pipeline.get(key)?;
        ids.iter()
            .rposition(|i| **i == *id)
            .map(|p| ids.len() - 1 - p)
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
        let mut last: Option<String> = None;
        while index - first < count {
            let take = 16.min(count - (index - first));
            // After the first page, the next is read from the last one seen: executions that
            // start meanwhile neither shift it nor come back.
            let chunk = match &last {
                None => self.newest(key, index, take),
                Some(id) => self.older_than(key, id, take),
            };
            let Some(end) = chunk.last() else {
                return Ok(());
            };
            last = Some(end.id.clone());
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
            let id = |o: &u32| {
                ids.get(*o as usize)
                    .map(|i| i.to_string())
                    .unwrap_or_default()
            };
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
            .running
            .values()
            .map(|(key, e)| (key.to_string(), (**e).clone()))
            .collect()
    }

    /// The execution a job belongs to, with its pipeline's key: a running one, or one that
    /// ended lately.
    pub fn job(&self, job_id: &str) -> Result<Option<(String, Execution)>, StoreError> {
        let ended = {
            let inner = self.inner.read().expect("execution views lock");
            if let Some((key, e)) = inner.jobs.get(job_id).and_then(|id| inner.running.get(id)) {
                return Ok(Some((key.to_string(), (**e).clone())));
            }
            inner.ended_jobs.execution.get(job_id).cloned()
        };
        let Some(id) = ended else {
            return Ok(None);
        };
        let Some(key) = self.pipeline_of(&id) else {
            return Ok(None);
        };
        Ok(self.get(&id)?.map(|e| (key, e)))
    }

    /// Runs `f` over the executions that have not ended, with their pipelines' keys, under the
    /// views' read lock (so `f` should be quick).
    pub fn with_running<R>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = (&str, &Execution)>) -> R,
    ) -> R {
        let inner = self.inner.read().expect("execution views lock");
        let mut all = inner.running.values().map(|(key, e)| (&**key, &**e));
        f(&mut all)
    }

    /// The execution a StartPipelineExecution with this token already started, if any.
    pub fn by_token(&self, key: &str, token: &str) -> Option<String> {
        match self.shelf.get(&token_key(key, token)) {
            Ok(id) => id.map(|id| String::from_utf8_lossy(&id).into_owned()),
            Err(err) => {
                log::error!("a client request token could not be read from the shelf: {err}");
                None
            }
        }
    }

    /// A pipeline's executions that have not ended, newest first (finished ones are not read).
    pub fn running_of(&self, key: &str) -> Vec<Execution> {
        let inner = self.inner.read().expect("execution views lock");
        inner
            .running_order
            .get(key)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| Some((*inner.running.get(id)?.1).clone()))
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
        // Each pipeline key was read once per use: share one copy, as folding does.
        let Inner {
            running,
            by_pipeline,
            updated,
            latest,
            ..
        } = &mut inner;
        for (key, _) in running.values_mut() {
            if let Some((shared, _)) = by_pipeline.get_key_value(key) {
                *key = shared.clone();
            }
        }
        let keys: Vec<Arc<str>> = updated.keys().cloned().collect();
        for key in keys {
            if let Some((shared, _)) = by_pipeline.get_key_value(&key) {
                let value = updated.remove(&key).unwrap_or_default();
                updated.insert(shared.clone(), value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Projection;
    use crate::codepipeline::ids::{execution_stream, pipeline_stream};
    use crate::codepipeline::model::RetryMode;
    use crate::codepipeline::pipeline::{Deleted, Expired};
    use crate::eventstore::memory::MemoryStore;

    const KEY: &str = "000000000000:us-east-1:p";

    fn started(id: &str, token: Option<&str>) -> ExecutionEvent {
        ExecutionEvent::Started {
            execution_id: id.into(),
            pipeline: "p".into(),
            pipeline_version: 1,
            execution_mode: ExecutionMode::Parallel,
            trigger: Trigger {
                trigger_type: "StartPipelineExecution".into(),
                trigger_detail: None,
            },
            variables: Default::default(),
            source_revisions: Default::default(),
            client_request_token: token.map(Into::into),
            region: "us-east-1".into(),
            rollback: None,
            at: 1.0,
        }
    }

    fn finished(status: ExecutionStatus, at: f64) -> ExecutionEvent {
        ExecutionEvent::Finished {
            status,
            summary: None,
            at,
        }
    }

    /// Appends `events` to execution `id`'s stream; returns the records.
    fn run(store: &MemoryStore, id: &str, events: &[ExecutionEvent]) -> Vec<RecordedEvent> {
        let stream = execution_stream("000000000000", "us-east-1", "p", id);
        let at = store.read_stream(&stream, 1).unwrap().len() as u64;
        let new = events.iter().map(ExecutionEvent::to_new_event).collect();
        store.append(&stream, at, new).unwrap()
    }

    fn pipeline_event(store: &MemoryStore, event: PipelineEvent) -> RecordedEvent {
        let stream = pipeline_stream("000000000000", "us-east-1", "p");
        let at = store.read_stream(&stream, 1).unwrap().len() as u64;
        store
            .append(&stream, at, vec![event.to_new_event()])
            .unwrap()
            .remove(0)
    }

    fn views(store: &Arc<MemoryStore>, role: Role) -> ExecutionViews {
        ExecutionViews::with_role(store.clone(), role)
    }

    #[test]
    fn finished_executions_are_read_from_the_shelf_and_running_ones_from_memory() {
        let store = Arc::new(MemoryStore::new());
        let live = views(&store, Role::Live);
        let mut records = run(&store, "a", &[started("a", Some("tok"))]);
        records.extend(run(&store, "b", &[started("b", None)]));
        records.extend(run(
            &store,
            "a",
            &[finished(ExecutionStatus::Succeeded, 2.0)],
        ));
        records.iter().for_each(|r| live.apply(r));

        let page = live.newest(KEY, 0, 10);
        let statuses: Vec<_> = page.iter().map(|s| (s.id.as_str(), s.status)).collect();
        assert_eq!(
            statuses,
            [
                ("b", ExecutionStatus::InProgress),
                ("a", ExecutionStatus::Succeeded)
            ]
        );
        assert_eq!(live.pipeline_of("a").as_deref(), Some(KEY));
        assert_eq!(live.by_token(KEY, "tok").as_deref(), Some("a"));
        assert_eq!(live.get("a").unwrap().unwrap().updated, 2.0);
        // The checkpoint holds the running execution whole and the finished one by id only.
        let exported = live.export().unwrap();
        assert!(exported.get().contains("\"b\""));
        assert!(!exported.get().contains("Succeeded"));
        let restored = views(&store, Role::Live);
        restored.restore(exported.get()).unwrap();
        assert_eq!(restored.newest(KEY, 0, 10), page);
        assert_eq!(restored.running_of(KEY).len(), 1);
    }

    #[test]
    fn a_page_read_from_the_last_one_seen_is_not_shifted_by_new_starts() {
        let store = Arc::new(MemoryStore::new());
        let live = views(&store, Role::Live);
        for id in ["a", "b", "c"] {
            run(&store, id, &[started(id, None)])
                .iter()
                .for_each(|r| live.apply(r));
        }
        let first: Vec<String> = live.newest(KEY, 0, 2).into_iter().map(|s| s.id).collect();
        assert_eq!(first, ["c", "b"]);
        // "d" starts between two pages: the second is still what comes after "b".
        run(&store, "d", &[started("d", None)])
            .iter()
            .for_each(|r| live.apply(r));
        let next: Vec<String> = live
            .older_than(KEY, "b", 2)
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(next, ["a"]);
        assert!(live.older_than(KEY, "nothing", 2).is_empty());
    }

    #[test]
    fn a_fold_behind_neither_undoes_a_later_state_nor_brings_back_what_left() {
        let store = Arc::new(MemoryStore::new());
        let live = views(&store, Role::Live);
        let behind = views(&store, Role::Checkpoint);
        // "a" fails, is retried and succeeds; "b" succeeds; then the pipeline is deleted.
        let mut records = run(&store, "a", &[started("a", Some("tok"))]);
        records.extend(run(&store, "a", &[finished(ExecutionStatus::Failed, 2.0)]));
        records.extend(run(
            &store,
            "a",
            &[ExecutionEvent::StageRetried {
                stage: "Build".into(),
                mode: RetryMode::FailedActions,
                automatic: false,
                at: 3.0,
            }],
        ));
        records.extend(run(
            &store,
            "a",
            &[finished(ExecutionStatus::Succeeded, 4.0)],
        ));
        records.extend(run(&store, "b", &[started("b", None)]));
        records.extend(run(
            &store,
            "b",
            &[finished(ExecutionStatus::Succeeded, 5.0)],
        ));
        records.iter().for_each(|r| live.apply(r));
        assert_eq!(live.newest(KEY, 1, 1)[0].status, ExecutionStatus::Succeeded);

        // The fold behind writes the state "a" had after its failure: the later one stays.
        records[..2].iter().for_each(|r| behind.apply(r));
        assert_eq!(live.newest(KEY, 1, 1)[0].status, ExecutionStatus::Succeeded);
        assert_eq!(live.newest(KEY, 1, 1)[0].updated, 4.0);

        let deleted = pipeline_event(&store, PipelineEvent::Deleted(Deleted { at: 6.0 }));
        live.apply(&deleted);
        assert_eq!(live.pipeline_of("a"), None);
        assert_eq!(live.by_token(KEY, "tok"), None);
        // The fold behind reaches "b"'s end, which the live views already removed: it stays
        // gone; once the fold behind passes the deletion too, nothing of either is left.
        records[2..].iter().for_each(|r| behind.apply(r));
        assert_eq!(live.pipeline_of("b"), None);
        assert_eq!(live.get("b").unwrap(), None);
        behind.apply(&deleted);
        assert!(store.shelf("executions").keys(b"").unwrap().is_empty());
    }

    #[test]
    fn expired_executions_leave_the_shelf() {
        let store = Arc::new(MemoryStore::new());
        let live = views(&store, Role::Live);
        let mut records = run(&store, "a", &[started("a", Some("tok"))]);
        records.extend(run(
            &store,
            "a",
            &[finished(ExecutionStatus::Succeeded, 2.0)],
        ));
        records.extend(run(&store, "b", &[started("b", None)]));
        records.iter().for_each(|r| live.apply(r));
        assert_eq!(live.expired(KEY, 10.0, 10), ["a"]);
        let expired = pipeline_event(
            &store,
            PipelineEvent::Expired(Expired {
                expired_executions: vec!["a".into(), "b".into()],
                at: 10.0,
            }),
        );
        live.apply(&expired);
        // A running execution does not expire.
        assert_eq!(live.ids(KEY), ["b"]);
        assert_eq!(live.pipeline_of("a"), None);
        assert_eq!(live.by_token(KEY, "tok"), None);
        assert_eq!(live.pipeline_of("b").as_deref(), Some(KEY));
    }
}
