//! The history of pipelines, read from the event log: what the `history`, `replay`, `diff` and
//! `export` commands show.
//!
//! [`HistoryReader`] answers every question from the same views the server keeps (summaries and
//! indexes in memory, whole executions folded from their streams), so the two ways in give the
//! same answers: the server serves it read-only (the admin module's history routes), and the
//! commands build one over the data dir themselves when no server holds it
//! ([`HistoryReader::open`]).
//!
//! # LIMITATIONS
//! `replay --at` shows the stages and actions of the replayed execution as GetPipelineState
//! showed them at that point; stages it had not reached then are shown without a latest
//! execution, where GetPipelineState would have shown an older execution's.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::codepipeline::execution::{self, ActionRun, Execution, ExecutionEvent};
use crate::codepipeline::ids::{pipeline_key, pipeline_stream, EXECUTION_STREAM_PREFIX};
use crate::codepipeline::model::Declaration;
use crate::codepipeline::views::executions::{ExecutionSummary, ExecutionViews, LatestAction};
use crate::codepipeline::views::state::stage_state;
use crate::codepipeline::views::{pipeline_version, PipelineViews};
use crate::eventstore::{EventStore, EventType, StoreError};

/// The account every resource belongs to.
pub const ACCOUNT: &str = "000000000000";

/// Why a history question has no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryError {
    /// No such pipeline or execution (the message names it).
    NotFound(String),
    /// The log could not be read.
    Storage(String),
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HistoryError::NotFound(m) | HistoryError::Storage(m) => f.write_str(m),
        }
    }
}

impl From<StoreError> for HistoryError {
    fn from(e: StoreError) -> Self {
        HistoryError::Storage(e.to_string())
    }
}

/// Which action runs `actions` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionFilter {
    /// Only runs of this execution.
    pub execution: Option<String>,
    /// Only runs in this stage.
    pub stage: Option<String>,
    /// Only runs of this action.
    pub action: Option<String>,
    /// Only runs with this status (`Succeeded`, `Failed`, …).
    pub status: Option<String>,
    /// Only runs started at or after this time (epoch seconds).
    pub since: Option<f64>,
}

/// Answers history questions from the views and the log.
pub struct HistoryReader {
    store: Arc<dyn EventStore>,
    pipelines: Arc<PipelineViews>,
    executions: Arc<ExecutionViews>,
}

impl HistoryReader {
    /// The position of the last event in the log (0 when it is empty or cannot be read).
    pub fn last_position(&self) -> u64 {
        self.store.last_position().unwrap_or(0)
    }

    /// A reader over a running server's views.
    pub fn new(
        store: Arc<dyn EventStore>,
        pipelines: Arc<PipelineViews>,
        executions: Arc<ExecutionViews>,
    ) -> Self {
        HistoryReader {
            store,
            pipelines,
            executions,
        }
    }

    /// A reader over a data dir that no server holds: the views come from the data dir's
    /// checkpoint with the events recorded since folded in (the checkpoint is then brought up to
    /// date); nothing else is written and nothing runs.
    pub fn open(data_dir: &Path, cache_mb: u64) -> Result<Self, String> {
        let events = data_dir.join("events");
        if !events.exists() {
            return Err(format!("no data in {}", data_dir.display()));
        }
        let store = crate::eventstore::open(&events, None, cache_mb << 20)?;
        let file = crate::checkpoint::file(data_dir);
        let projections = crate::projections::Projections::detached(
            &store,
            data_dir,
            crate::codepipeline::views::executions::Role::Live,
        );
        let loaded = crate::checkpoint::load(store.as_ref(), &file, &projections.all())
            .map_err(|e| e.to_string())?;
        if loaded.folded > 0 {
            if let Err(e) =
                crate::checkpoint::save(store.as_ref(), &file, &projections.all(), loaded.position)
            {
                log::warn!("{e}");
            }
        }
        Ok(HistoryReader::new(
            store,
            projections.pipelines,
            projections.executions,
        ))
    }

    /// The key of a pipeline that exists.
    fn pipeline_key(&self, region: &str, pipeline: &str) -> Result<String, HistoryError> {
        let stream = pipeline_stream(ACCOUNT, region, pipeline);
        if self.pipelines.with(&stream, |_| ()).is_none() {
            return Err(HistoryError::NotFound(format!(
                "pipeline {pipeline} does not exist in {region}"
            )));
        }
        Ok(pipeline_key(ACCOUNT, region, pipeline))
    }

    /// Every pipeline, with its number of executions and its latest one.
    pub fn pipelines(&self) -> Value {
        let mut out = Vec::new();
        for (key, version, declared) in self.pipelines.current_versions() {
            let mut parts = key.splitn(3, ':');
            let (Some(_), Some(region), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let stages: Vec<Value> = serde_json::from_slice::<Value>(&declared)
                .ok()
                .and_then(|d| d["pipeline"]["stages"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|s| s["name"].clone())
                .collect();
            let mut p = json!({
                "name": name,
                "region": region,
                "version": version,
                "executions": self.executions.count(&key),
                "stages": stages,
            });
            if let Some(latest) = self.executions.newest(&key, 0, 1).first() {
                p["latestExecution"] = summary_json(latest);
            }
            out.push(p);
        }
        Value::Array(out)
    }

    /// A pipeline's executions, newest first, optionally of one status, at most `limit`.
    pub fn executions(
        &self,
        region: &str,
        pipeline: &str,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Value, HistoryError> {
        self.executions_matching(region, pipeline, status, &|_| true, 0, limit)
            .map(Value::Array)
    }

    /// Like [`Self::executions`], keeping only the summaries `keep` accepts, after skipping the
    /// first `skip` of those (newest first): one page of a filtered list.
    pub fn executions_matching(
        &self,
        region: &str,
        pipeline: &str,
        status: Option<&str>,
        keep: &dyn Fn(&Value) -> bool,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Value>, HistoryError> {
        let key = self.pipeline_key(region, pipeline)?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut skipped = 0;
        self.executions.walk_newest(&key, 0, usize::MAX, |s, _| {
            if status.is_none_or(|st| s.status.as_str().eq_ignore_ascii_case(st)) {
                let mut v = summary_json(&s);
                if !keep(&v) {
                    return Ok(true);
                }
                if skipped < skip {
                    skipped += 1;
                    return Ok(true);
                }
                if s.status == crate::codepipeline::model::ExecutionStatus::InProgress {
                    if let Some(why) = self.waits_for(&key, &s.id)? {
                        v["waitingFor"] = why.into();
                    }
                }
                out.push(v);
            }
            Ok::<_, HistoryError>(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Why a running execution of pipeline `key` does not move on, if it waits: an approval, a
    /// condition being checked, a disabled transition, or a stage another execution holds.
    pub fn waits_for(&self, key: &str, id: &str) -> Result<Option<String>, HistoryError> {
        let Some(e) = self.executions.get(id)? else {
            return Ok(None);
        };
        if let Some(run) = e.runs.iter().find(|r| {
            r.status == crate::codepipeline::model::ActionStatus::InProgress
                && r.input.action_type_id.category == "Approval"
        }) {
            return Ok(Some(format!("approval {}/{}", run.stage, run.action)));
        }
        if let Some(stage) = e.current_stage() {
            if let Some(c) = stage.conditions.iter().rev().find(|c| c.waiting()) {
                return Ok(Some(format!(
                    "{} condition of stage {}",
                    c.kind.field(),
                    stage.name
                )));
            }
        }
        let Some(stage) = &e.waiting else {
            return Ok(None);
        };
        let stream = format!("{}{key}", crate::codepipeline::ids::PIPELINE_STREAM_PREFIX);
        let disabled = self
            .pipelines
            .with(&stream, |p| {
                p.transitions
                    .get(stage)
                    .filter(|t| !t.enabled)
                    .map(|t| t.reason.clone().unwrap_or_default())
            })
            .flatten();
        if let Some(reason) = disabled {
            return Ok(Some(format!(
                "transition into stage {stage} disabled: {reason}"
            )));
        }
        // The execution in that stage now.
        let mut holder = None;
        self.executions.walk_newest(key, 0, usize::MAX, |s, _| {
            if s.id != id && s.status.is_running() {
                if let Some(other) = self.executions.get(&s.id)? {
                    let inside = other.current_stage().is_some_and(|c| {
                        &c.name == stage
                            && c.status == crate::codepipeline::model::StageStatus::InProgress
                    });
                    if inside {
                        holder = Some(s.id.clone());
                        return Ok(false);
                    }
                }
            }
            Ok::<_, HistoryError>(true)
        })?;
        Ok(Some(match holder {
            Some(other) => format!("stage {stage}, held by execution {other}"),
            None => format!("stage {stage}"),
        }))
    }

    /// A pipeline's action runs, newest first, at most `limit`. Executions are read newest
    /// first and reading stops as soon as the page is full and no older execution can add a
    /// newer run, so a first page costs a few executions whatever the history holds.
    pub fn actions(
        &self,
        region: &str,
        pipeline: &str,
        filter: &ActionFilter,
        limit: usize,
    ) -> Result<Value, HistoryError> {
        let key = self.pipeline_key(region, pipeline)?;
        let (first, count) = match &filter.execution {
            Some(id) => {
                let index = self.executions.index_of(&key, id).ok_or_else(|| {
                    HistoryError::NotFound(format!(
                        "execution {id} does not exist in pipeline {pipeline}"
                    ))
                })?;
                (index, 1)
            }
            None => (0, usize::MAX),
        };
        let mut runs: Vec<(f64, Value)> = Vec::new();
        self.executions
            .walk_newest(&key, first, count, |summary, unread_newest| {
                if runs.len() >= limit && runs[limit - 1].0 > unread_newest {
                    return Ok(false);
                }
                if filter.since.is_some_and(|since| summary.updated < since) {
                    return Ok(true);
                }
                let Some(e) = self.executions.get(&summary.id)? else {
                    return Ok(true);
                };
                runs.extend(
                    e.runs
                        .iter()
                        .filter(|r| filter.stage.as_ref().is_none_or(|s| &r.stage == s))
                        .filter(|r| filter.action.as_ref().is_none_or(|a| &r.action == a))
                        .filter(|r| {
                            filter
                                .status
                                .as_ref()
                                .is_none_or(|s| r.status.as_str().eq_ignore_ascii_case(s))
                        })
                        .filter(|r| filter.since.is_none_or(|since| r.started >= since))
                        .map(|r| (r.started, run_json(&e, r))),
                );
                runs.sort_by(|a, b| b.0.total_cmp(&a.0));
                Ok::<_, HistoryError>(true)
            })?;
        Ok(Value::Array(
            runs.into_iter().take(limit).map(|(_, v)| v).collect(),
        ))
    }

    /// An execution's own events, with the declaration of the pipeline version it ran.
    pub fn execution(&self, id: &str) -> Result<Value, HistoryError> {
        let not_found = || HistoryError::NotFound(format!("execution {id} does not exist"));
        let key = self.executions.pipeline_of(id).ok_or_else(not_found)?;
        let stream = format!("{EXECUTION_STREAM_PREFIX}{key}:{id}");
        let events = self.store.read_stream(&stream, 1)?;
        let mut parts = key.splitn(3, ':');
        let (Some(account), Some(region), Some(pipeline)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(not_found());
        };
        let version = events
            .iter()
            .find_map(|r| match ExecutionEvent::from_record(r)? {
                ExecutionEvent::Started {
                    pipeline_version, ..
                } => Some(pipeline_version),
                _ => None,
            })
            .ok_or_else(not_found)?;
        let declaration = pipeline_version(
            self.store.as_ref(),
            &pipeline_stream(account, region, pipeline),
            version,
        )?
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .map(|mut o| o["pipeline"].take())
        .unwrap_or(Value::Null);
        let mut record = json!({
            "pipelineExecutionId": id,
            "pipeline": pipeline,
            "region": region,
            "pipelineVersion": version,
            "declaration": declaration,
            "events": events,
        });
        if let Some(why) = self.waits_for(&key, id)? {
            record["waitingFor"] = why.into();
        }
        Ok(record)
    }
}

/// The admin API's answer to a history question, for the server: (status, JSON body).
pub fn answer(reader: &HistoryReader, path: &str, query_string: &str) -> (u16, Value) {
    let params: std::collections::HashMap<String, String> =
        crate::aws::query::parse_form(query_string)
            .into_iter()
            .collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    let region = get("region").unwrap_or("");
    let limit = get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let result = match path {
        "/pipelines" => Ok(reader.pipelines()),
        "/executions" => {
            reader.executions(region, get("pipeline").unwrap_or(""), get("status"), limit)
        }
        "/actions" => {
            let filter = ActionFilter {
                execution: get("execution").map(str::to_string),
                stage: get("stage").map(str::to_string),
                action: get("action").map(str::to_string),
                status: get("status").map(str::to_string),
                since: get("since").and_then(|s| s.parse().ok()),
            };
            reader.actions(region, get("pipeline").unwrap_or(""), &filter, limit)
        }
        "/execution" => reader.execution(get("id").unwrap_or("")),
        other => Err(HistoryError::NotFound(format!(
            "no history resource {other}"
        ))),
    };
    match result {
        Ok(v) => (200, v),
        Err(HistoryError::NotFound(m)) => (404, json!({"message": m})),
        Err(HistoryError::Storage(m)) => (500, json!({"message": m})),
    }
}

/// An execution summary as the history shows it.
fn summary_json(s: &ExecutionSummary) -> Value {
    let mut v = json!({
        "pipelineExecutionId": s.id,
        "status": s.status,
        "startTime": s.started,
        "lastUpdateTime": s.updated,
        "trigger": s.trigger,
        "executionMode": s.execution_mode,
        "sourceRevisions": s.source_revisions.iter().map(|(a, r)| json!({"actionName": a, "revisionId": r})).collect::<Vec<_>>(),
    });
    if let Some(summary) = &s.summary {
        v["statusSummary"] = summary.clone().into();
    }
    crate::codepipeline::rollback::execution_type(&mut v, s.rollback_target.as_ref());
    v
}

/// An action run as the history shows it.
fn run_json(e: &Execution, r: &ActionRun) -> Value {
    let mut v = json!({
        "pipelineExecutionId": e.id,
        "actionExecutionId": r.id,
        "stageName": r.stage,
        "actionName": r.action,
        "status": r.status,
        "startTime": r.started,
        "lastUpdateTime": r.updated,
        "provider": r.input.action_type_id.provider,
    });
    if let Some(o) = &r.output {
        if let Some(summary) = &o.external_execution_summary {
            v["summary"] = summary.clone().into();
        }
    }
    // The id of the work outside the pipeline (a build's id), also while it runs.
    let external = r
        .output
        .as_ref()
        .and_then(|o| o.external_execution_id.clone())
        .or_else(|| {
            r.progress
                .as_ref()
                .and_then(|p| p.external_execution_id.clone())
        });
    if let Some(id) = external {
        v["externalExecutionId"] = id.into();
    }
    if let Some(error) = &r.error {
        v["errorDetails"] = json!({"code": error.code, "message": error.message});
    }
    v
}

/// One event of an execution as `replay` lists it: its offset from the first event, where it
/// happened, the status it changed to, and its details.
pub fn describe(events: &[crate::eventstore::RecordedEvent]) -> Vec<Value> {
    let first = events.first().map_or(0.0, |r| r.recorded_at);
    // Action names by action execution id, for the events that name only the id.
    let mut actions: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for record in events {
        let Some(event) = ExecutionEvent::from_record(record) else {
            continue;
        };
        let mut line = json!({
            "sequence": record.sequence,
            "offsetSeconds": record.recorded_at - first,
            "recordedAt": record.recorded_at,
        });
        let (kind, stage, action, status, details) = match &event {
            ExecutionEvent::Started {
                trigger,
                variables,
                source_revisions,
                pipeline_version,
                rollback,
                ..
            } => {
                let mut d = json!({"trigger": trigger, "pipelineVersion": pipeline_version, "variables": variables, "sourceRevisions": source_revisions});
                if let Some(rollback) = rollback {
                    d["rollback"] = json!({"stage": rollback.stage, "targetPipelineExecutionId": rollback.target});
                }
                (
                    "ExecutionStarted",
                    None,
                    None,
                    Some("InProgress".to_string()),
                    d,
                )
            }
            ExecutionEvent::StageWaiting { stage, .. } => {
                ("StageWaiting", Some(stage.clone()), None, None, json!({}))
            }
            ExecutionEvent::StageStarted { stage, .. } => (
                "StageStarted",
                Some(stage.clone()),
                None,
                Some("InProgress".to_string()),
                json!({}),
            ),
            ExecutionEvent::ActionStarted {
                stage,
                action,
                action_execution_id,
                input,
                unresolved,
                token,
                job,
                ..
            } => {
                actions.insert(action_execution_id.clone(), (stage.clone(), action.clone()));
                let mut d = json!({
                    "actionExecutionId": action_execution_id,
                    "provider": input.action_type_id.provider,
                    "resolvedConfiguration": input.resolved_configuration,
                    "inputArtifacts": input.input_artifacts,
                });
                if let Some(u) = unresolved {
                    d["unresolved"] = u.clone().into();
                }
                if let Some(t) = token {
                    d["token"] = t.clone().into();
                }
                if let Some(job) = job {
                    d["jobId"] = job.id.clone().into();
                }
                (
                    "ActionStarted",
                    Some(stage.clone()),
                    Some(action.clone()),
                    Some("InProgress".to_string()),
                    d,
                )
            }
            ExecutionEvent::ActionSucceeded {
                action_execution_id,
                output,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "ActionSucceeded",
                    stage,
                    action,
                    Some("Succeeded".to_string()),
                    json!({"actionExecutionId": action_execution_id, "outputArtifacts": output.output_artifacts, "outputVariables": output.output_variables, "externalExecutionId": output.external_execution_id, "summary": output.external_execution_summary}),
                )
            }
            ExecutionEvent::ActionFailed {
                action_execution_id,
                error,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "ActionFailed",
                    stage,
                    action,
                    Some("Failed".to_string()),
                    json!({"actionExecutionId": action_execution_id, "errorDetails": {"code": error.code, "message": error.message}}),
                )
            }
            ExecutionEvent::JobAcknowledged {
                action_execution_id,
                job_id,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "JobAcknowledged",
                    stage,
                    action,
                    None,
                    json!({"actionExecutionId": action_execution_id, "jobId": job_id}),
                )
            }
            ExecutionEvent::JobProgressed {
                action_execution_id,
                details,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "JobProgressed",
                    stage,
                    action,
                    None,
                    json!({"actionExecutionId": action_execution_id, "executionDetails": details}),
                )
            }
            ExecutionEvent::JobQueued {
                action_execution_id,
                job,
                continuation_token,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "JobQueued",
                    stage,
                    action,
                    None,
                    json!({"actionExecutionId": action_execution_id, "jobId": job.id, "continuationToken": continuation_token}),
                )
            }
            ExecutionEvent::ActionAbandoned {
                action_execution_id,
                ..
            } => {
                let (stage, action) = actions.get(action_execution_id).cloned().unzip();
                (
                    "ActionAbandoned",
                    stage,
                    action,
                    Some("Abandoned".to_string()),
                    json!({"actionExecutionId": action_execution_id}),
                )
            }
            ExecutionEvent::StageFinished { stage, status, .. } => (
                "StageFinished",
                Some(stage.clone()),
                None,
                Some(status.to_string()),
                json!({}),
            ),
            ExecutionEvent::ActionsResumed {
                action_execution_ids,
                ..
            } => (
                "ActionsResumed",
                None,
                None,
                None,
                json!({"actionExecutionIds": action_execution_ids}),
            ),
            ExecutionEvent::ConditionChecked { stage, check } => (
                "ConditionChecked",
                Some(stage.clone()),
                None,
                None,
                json!({"condition": check.kind.field(), "met": check.met, "result": check.result,
                       "rules": check.rules.iter().map(|r| json!({"ruleName": r.name, "ruleExecutionId": r.id,
                           "succeeded": r.succeeded, "summary": r.summary})).collect::<Vec<_>>()}),
            ),
            ExecutionEvent::StageRetried {
                stage,
                mode,
                automatic,
                ..
            } => (
                "StageRetried",
                Some(stage.clone()),
                None,
                Some("InProgress".to_string()),
                json!({"retryMode": mode, "trigger": if *automatic { "AutomatedStageRetry" } else { "ManualStageRetry" }}),
            ),
            ExecutionEvent::StopRequested {
                abandon, reason, ..
            } => (
                "StopRequested",
                None,
                None,
                Some("Stopping".to_string()),
                json!({"abandon": abandon, "reason": reason}),
            ),
            ExecutionEvent::Finished {
                status, summary, ..
            } => (
                "ExecutionFinished",
                None,
                None,
                Some(status.to_string()),
                json!({"summary": summary}),
            ),
        };
        line["event"] = kind.into();
        if let Some(s) = stage {
            line["stageName"] = s.into();
        }
        if let Some(a) = action {
            line["actionName"] = a.into();
        }
        if let Some(s) = status {
            line["status"] = s.into();
        }
        line["details"] = details;
        out.push(line);
    }
    out
}

/// The last event sequence `--at` names: a number, or the last event recorded at or before a
/// time (RFC 3339 or epoch seconds).
pub fn sequence_at(events: &[crate::eventstore::RecordedEvent], at: &str) -> Result<u64, String> {
    let last = events.last().map_or(0, |e| e.sequence);
    if let Ok(n) = at.parse::<u64>() {
        if n == 0 || n > last {
            return Err(format!("--at {n}: the execution has events 1 to {last}"));
        }
        return Ok(n);
    }
    let time = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .or_else(|_| at.parse::<f64>())
        .map_err(|_| format!("--at {at}: give an event number or a time (RFC 3339)"))?;
    events
        .iter()
        .rev()
        // Half a microsecond of slack: the time may be written from the recorded one.
        .find(|e| e.recorded_at <= time + 5e-7)
        .map(|e| e.sequence)
        .ok_or_else(|| format!("--at {at}: the execution had not started then"))
}

/// The StartPipelineExecution input that runs an execution again: its recorded variables and
/// the source revisions it read.
pub fn rerun_input(record: &Value) -> Result<Value, String> {
    let events: Vec<crate::eventstore::RecordedEvent> =
        serde_json::from_value(record["events"].clone()).map_err(|e| e.to_string())?;
    let e = fold(&record["declaration"], &events, None);
    let mut input = json!({"name": record["pipeline"]});
    let revisions: Vec<Value> = e
        .runs
        .iter()
        .filter_map(|r| {
            let revision = r.output.as_ref()?.revision.clone()?;
            Some(json!({"actionName": r.action, "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": revision}))
        })
        .collect();
    if !revisions.is_empty() {
        input["sourceRevisions"] = revisions.into();
    }
    if !e.variables.is_empty() {
        input["variables"] = e
            .variables
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect::<Vec<_>>()
            .into();
    }
    Ok(input)
}

/// What differs between two executions, action by action.
pub fn diff(a: &Value, b: &Value) -> Result<Value, String> {
    let fold_of = |r: &Value| -> Result<crate::codepipeline::execution::Execution, String> {
        let events: Vec<crate::eventstore::RecordedEvent> =
            serde_json::from_value(r["events"].clone()).map_err(|e| e.to_string())?;
        Ok(fold(&r["declaration"], &events, None))
    };
    let (ea, eb) = (fold_of(a)?, fold_of(b)?);
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for e in [&ea, &eb] {
        for r in &e.runs {
            if !seen.contains(&(r.stage.clone(), r.action.clone())) {
                seen.push((r.stage.clone(), r.action.clone()));
            }
        }
    }
    let side = |e: &crate::codepipeline::execution::Execution, stage: &str, action: &str| {
        let r = e
            .runs
            .iter()
            .rev()
            .find(|r| r.stage == stage && r.action == action)?;
        Some(json!({
            "status": r.status,
            "revision": r.output.as_ref().and_then(|o| o.revision.clone()),
            "resolvedConfiguration": r.input.resolved_configuration,
            "outputVariables": r.output.as_ref().map(|o| o.output_variables.clone()).unwrap_or_default(),
            "error": r.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)),
        }))
    };
    for (stage, action) in seen {
        let (sa, sb) = (side(&ea, &stage, &action), side(&eb, &stage, &action));
        let mut differs = Vec::new();
        match (&sa, &sb) {
            (Some(x), Some(y)) => {
                for field in [
                    "status",
                    "revision",
                    "resolvedConfiguration",
                    "outputVariables",
                    "error",
                ] {
                    if x[field] != y[field] {
                        differs.push(field);
                    }
                }
            }
            _ => differs.push("ran"),
        }
        rows.push(
            json!({"stageName": stage, "actionName": action, "a": sa, "b": sb, "differs": differs}),
        );
    }
    let execution = |e: &crate::codepipeline::execution::Execution| {
        json!({
            "pipelineExecutionId": e.id,
            "status": e.status,
            "pipelineVersion": e.pipeline_version,
            "variables": e.variables,
            "startTime": e.started,
            "lastUpdateTime": e.updated,
            "statusSummary": e.summary,
        })
    };
    let (xa, xb) = (execution(&ea), execution(&eb));
    let differs: Vec<&str> = ["status", "pipelineVersion", "variables", "statusSummary"]
        .into_iter()
        .filter(|f| xa[*f] != xb[*f])
        .collect();
    Ok(json!({"a": xa, "b": xb, "differs": differs, "actions": rows}))
}

/// The declaration an execution record carries (an unreadable one reads as empty).
fn declaration_of(record_declaration: &Value) -> Declaration {
    Declaration::from_value(record_declaration)
        .inspect_err(|e| log::warn!("a recorded declaration is unreadable: {e}"))
        .unwrap_or_default()
}

/// The execution as its first `upto` events built it (all when `None`), folded with the same
/// aggregate code the server uses.
pub fn fold(
    declaration: &Value,
    events: &[crate::eventstore::RecordedEvent],
    upto: Option<u64>,
) -> Execution {
    let mut e = Execution {
        declaration: Arc::new(declaration_of(declaration)),
        ..Execution::default()
    };
    for record in events {
        if upto.is_some_and(|n| record.sequence > n) {
            break;
        }
        if let Some(event) = ExecutionEvent::from_record(record) {
            execution::apply(&mut e, &event);
        }
    }
    e
}

/// The stage states of a pipeline as GetPipelineState shows them, for one execution's state.
pub fn stage_states(e: &Execution) -> Value {
    let stages: Vec<Value> = e
        .declaration
        .stages
        .iter()
        .map(|stage| {
            let latest: Vec<(&str, LatestAction)> = stage
                .actions
                .iter()
                .filter_map(|a| {
                    let run = e
                        .runs
                        .iter()
                        .rev()
                        .find(|r| r.stage == stage.name && r.action == a.name)?;
                    Some((a.name.as_str(), LatestAction::of(e, run)))
                })
                .collect();
            let run = e.stage_run(&stage.name);
            stage_state(stage, run.map(|s| (e.id.as_str(), s)), |action| {
                latest.iter().find(|(a, _)| *a == action).map(|(_, l)| l)
            })
        })
        .collect();
    json!({"pipelineExecutionId": e.id, "status": e.status, "stageStates": stages})
}
