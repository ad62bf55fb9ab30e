//! StartPipelineExecution, GetPipelineExecution, ListPipelineExecutions, ListActionExecutions,
//! GetPipelineState.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{not_found_error, reply, token, Reply};
use crate::aws::{json::from_value, AwsError, RequestContext};
use crate::codepipeline::actors::StartExecution;
use crate::codepipeline::execution::{ActionRun, Execution, Trigger};
use crate::codepipeline::ids::{pipeline_key, pipeline_stream, PipelineKey};
use crate::codepipeline::model::{
    ActionStatus, Declaration, ExecutionStatus, RetryMode, StageStatus,
};
use crate::codepipeline::views::declaration_of_output;
use crate::codepipeline::views::executions::ExecutionSummary;
use crate::codepipeline::views::state::stage_state;
use crate::codepipeline::CodePipelineService;

/// `PipelineNotFoundException` unless the pipeline exists.
fn exists(svc: &CodePipelineService, ctx: &RequestContext, name: &str) -> Result<(), AwsError> {
    let stream = pipeline_stream(&ctx.account_id, &ctx.region, name);
    svc.views
        .with(&stream, |_| ())
        .ok_or_else(|| not_found_error("PipelineNotFoundException", name, &ctx.account_id))
}

/// The current declaration of a pipeline with its version, creation and update times, or
/// `PipelineNotFoundException`.
pub(super) fn current(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    name: &str,
) -> Result<(Declaration, u64, f64, f64), AwsError> {
    let stream = pipeline_stream(&ctx.account_id, &ctx.region, name);
    let (bytes, version, created, updated) = svc
        .views
        .with(&stream, |v| {
            (v.get_output.clone(), v.version, v.created, v.updated)
        })
        .ok_or_else(|| not_found_error("PipelineNotFoundException", name, &ctx.account_id))?;
    let declaration = declaration_of_output(&bytes)
        .ok_or_else(|| AwsError::internal("the stored declaration is unreadable"))?;
    Ok((declaration, version, created, updated))
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionOverride {
    action_name: String,
    revision_type: String,
    revision_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInput {
    name: String,
    client_request_token: Option<String>,
    #[serde(default)]
    variables: Vec<NameValue>,
    #[serde(default)]
    source_revisions: Vec<RevisionOverride>,
}

pub(super) async fn handle_start_pipeline_execution(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: StartInput = from_value(input)?;
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.name);
    let mut revisions = BTreeMap::new();
    if !input.source_revisions.is_empty() {
        let (declaration, ..) = current(svc, ctx, &input.name)?;
        for r in input.source_revisions {
            let action = declaration
                .stages
                .iter()
                .flat_map(|s| &s.actions)
                .find(|a| a.name == r.action_name && a.action_type_id.category == "Source")
                .ok_or_else(|| {
                    AwsError::validation(format!(
                        "Pipeline {} has no source action named {}",
                        input.name, r.action_name
                    ))
                })?;
            let expected = match action.action_type_id.provider.as_str() {
                "S3" => "S3_OBJECT_VERSION_ID",
                "CodeStarSourceConnection" | "CodeCommit" => "COMMIT_ID",
                "ECR" => "IMAGE_DIGEST",
                _ => "",
            };
            if r.revision_type != expected {
                return Err(AwsError::validation(format!(
                    "Source action {} ({}) takes a revision of type {}, not {}",
                    r.action_name,
                    action.action_type_id.provider,
                    if expected.is_empty() {
                        "none"
                    } else {
                        expected
                    },
                    r.revision_type
                )));
            }
            revisions.insert(r.action_name, r.revision_value);
        }
    }
    let caller = format!(
        "arn:aws:sts::{}:assumed-role/codepipeline-local",
        ctx.account_id
    );
    let trigger_detail = match &ctx.rerun_of {
        Some(original) => {
            if svc.execution_views.pipeline_of(original).as_deref() != Some(key.key().as_str()) {
                return Err(execution_not_found(original, &input.name));
            }
            format!("{caller} (rerun of execution {original})")
        }
        None => caller,
    };
    // The pipeline's actor checks the token and the variables against its current version and
    // starts the execution, one start at a time.
    let start = StartExecution {
        trigger: Trigger {
            trigger_type: "StartPipelineExecution".into(),
            trigger_detail: Some(trigger_detail),
        },
        variables: input
            .variables
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect(),
        source_revisions: revisions,
        client_request_token: input.client_request_token,
        rollback: None,
    };
    let id = svc.registry.start(&key, start).await.map_err(|e| {
        super::command_error(e, &input.name, &ctx.account_id, "PipelineNotFoundException")
    })?;
    reply(&json!({ "pipelineExecutionId": id }))
}

fn stage_not_found(stage: &str, pipeline: &str) -> AwsError {
    AwsError::new(
        "StageNotFoundException",
        format!("Stage {stage} does not exist in pipeline {pipeline}"),
    )
}

fn execution_not_found(id: &str, pipeline: &str) -> AwsError {
    AwsError::new(
        "PipelineExecutionNotFoundException",
        format!("Pipeline execution {id} does not exist in pipeline {pipeline}"),
    )
}

/// The execution `id` of `pipeline`, or the errors AWS gives.
fn execution_of(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    pipeline: &str,
    id: &str,
) -> Result<Execution, AwsError> {
    exists(svc, ctx, pipeline)?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, pipeline);
    if svc.execution_views.pipeline_of(id).as_deref() != Some(key.as_str()) {
        return Err(execution_not_found(id, pipeline));
    }
    load(svc, id)?.ok_or_else(|| execution_not_found(id, pipeline))
}

/// An execution, whole (a finished one is read back from the event log).
fn load(svc: &CodePipelineService, id: &str) -> Result<Option<Execution>, AwsError> {
    svc.execution_views
        .get(id)
        .map_err(|e| AwsError::internal(format!("the execution could not be read: {e:?}")))
}

fn artifact_revisions(e: &Execution) -> Vec<Value> {
    e.source_outputs()
        .filter_map(|(_, output, at)| {
            let revision = output.revision.clone()?;
            Some(
                output
                    .output_artifacts
                    .iter()
                    .map(move |a| json!({"name": a.name, "revisionId": revision, "created": at}))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

fn source_revisions(e: &ExecutionSummary) -> Vec<Value> {
    e.source_revisions
        .iter()
        .map(|(action, revision)| {
            let summary = e
                .revision_summaries
                .get(action)
                .cloned()
                .unwrap_or_else(|| format!("Amazon S3 version id: {revision}"));
            json!({"actionName": action, "revisionId": revision, "revisionSummary": summary})
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetExecutionInput {
    pipeline_name: String,
    pipeline_execution_id: String,
}

pub(super) fn handle_get_pipeline_execution(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: GetExecutionInput = from_value(input)?;
    let e = execution_of(svc, ctx, &input.pipeline_name, &input.pipeline_execution_id)?;
    let mut out = json!({
        "pipelineName": e.pipeline,
        "pipelineVersion": e.pipeline_version,
        "pipelineExecutionId": e.id,
        "status": e.status,
        "artifactRevisions": artifact_revisions(&e),
        "variables": e.variables.iter().map(|(k, v)| json!({"name": k, "resolvedValue": v})).collect::<Vec<_>>(),
        "trigger": e.trigger,
        "executionMode": e.execution_mode,
    });
    crate::codepipeline::rollback::execution_type(&mut out, e.rollback.as_ref().map(|r| &r.target));
    if let Some(summary) = &e.summary {
        out["statusSummary"] = summary.clone().into();
    }
    reply(&json!({ "pipelineExecution": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListExecutionsInput {
    pipeline_name: String,
    max_results: Option<usize>,
    next_token: Option<String>,
    filter: Option<Value>,
}

pub(super) fn handle_list_pipeline_executions(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: ListExecutionsInput = from_value(input)?;
    exists(svc, ctx, &input.pipeline_name)?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let stage = input
        .filter
        .as_ref()
        .and_then(|f| f["succeededInStage"]["stageName"].as_str());
    let keep = |e: &ExecutionSummary| {
        stage.is_none_or(|stage| {
            e.stages
                .iter()
                .any(|s| s.name == stage && s.status == StageStatus::Succeeded)
        })
    };
    let max = input.max_results.unwrap_or(100);
    // Executions are read newest first a page at a time, from just after the token's.
    // Executions are read newest first a page at a time, from just after the token's.
    let mut last = match input.next_token.as_deref() {
        Some(t) => {
            let after = token::decode(t)?;
            svc.execution_views
                .index_of(&key, &after)
                .ok_or_else(token::invalid)?;
            Some(after)
        }
        None => None,
    };
    let (mut executions, mut more) = (Vec::new(), false);
    let take = max.saturating_add(1).clamp(1, 1000);
    while !more {
        // After the first page, the next is read from the last execution seen: executions that
        // start meanwhile neither shift it nor come back.
        let chunk = match &last {
            None => svc.execution_views.newest(&key, 0, take),
            Some(id) => svc.execution_views.older_than(&key, id, take),
        };
        let Some(end) = chunk.last() else {
            break;
        };
        last = Some(end.id.clone());
        for e in chunk.into_iter().filter(|e| keep(e)) {
            if executions.len() == max {
                more = true;
                break;
            }
            executions.push(e);
        }
    }
    let next = more
        .then(|| {
            executions
                .last()
                .map(|e: &ExecutionSummary| token::encode(&e.id))
        })
        .flatten();
    let summaries: Vec<Value> = executions
        .iter()
        .map(|e| {
            let mut s = json!({
                "pipelineExecutionId": e.id,
                "status": e.status,
                "startTime": e.started,
                "lastUpdateTime": e.updated,
                "sourceRevisions": source_revisions(e),
                "trigger": e.trigger,
                "executionMode": e.execution_mode,
            });
            crate::codepipeline::rollback::execution_type(&mut s, e.rollback_target.as_ref());
            if let Some(summary) = &e.summary {
                s["statusSummary"] = summary.clone().into();
            }
            if matches!(
                e.status,
                ExecutionStatus::Stopped | ExecutionStatus::Stopping
            ) {
                s["stopTrigger"] = json!({ "reason": e.stop_reason.clone().unwrap_or_default() });
            }
            s
        })
        .collect();
    let mut out = json!({ "pipelineExecutionSummaries": summaries });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    reply(&out)
}

fn action_detail(e: &Execution, r: &ActionRun) -> Value {
    let mut detail = json!({
        "pipelineExecutionId": e.id,
        "actionExecutionId": r.id,
        "pipelineVersion": e.pipeline_version,
        "stageName": r.stage,
        "actionName": r.action,
        "startTime": r.started,
        "lastUpdateTime": r.updated,
        "status": r.status,
        "input": r.input,
    });
    let mut result = json!({});
    let mut output = json!({"outputArtifacts": [], "outputVariables": {}});
    if let Some(o) = &r.output {
        output["outputArtifacts"] = json!(o.output_artifacts);
        output["outputVariables"] = json!(o.output_variables);
        if let Some(id) = &o.external_execution_id {
            result["externalExecutionId"] = id.clone().into();
        }
        if let Some(summary) = &o.external_execution_summary {
            result["externalExecutionSummary"] = summary.clone().into();
        }
    }
    if let Some(p) = &r.progress {
        // What a job worker reported, unless the action's output says otherwise.
        if let (Some(id), None) = (&p.external_execution_id, result.get("externalExecutionId")) {
            result["externalExecutionId"] = id.clone().into();
        }
        if let (Some(s), None) = (&p.summary, result.get("externalExecutionSummary")) {
            result["externalExecutionSummary"] = s.clone().into();
        }
    }
    if let Some(error) = &r.error {
        result["errorDetails"] = json!({"code": error.code, "message": error.message});
    }
    if r.status == ActionStatus::InProgress && r.progress.is_some() {
        output["executionResult"] = result.clone();
        detail["output"] = output.clone();
    }
    if r.status != ActionStatus::InProgress {
        output["executionResult"] = result;
        detail["output"] = output;
    }
    detail
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListActionsInput {
    pipeline_name: String,
    filter: Option<Value>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

pub(super) fn handle_list_action_executions(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: ListActionsInput = from_value(input)?;
    exists(svc, ctx, &input.pipeline_name)?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let max = input.max_results.unwrap_or(100);
    let after = input.next_token.as_deref().map(token::decode).transpose()?;
    // Runs are listed newest first across executions. Executions are read (finished ones from
    // the log) newest first until the page is certain: an execution can add no run newer than
    // its last update, so once the run after the page is newer than the latest update of every
    // execution not read yet, the rest cannot change the page.
    let views = &svc.execution_views;
    let (first, count) = match input
        .filter
        .as_ref()
        .and_then(|f| f["pipelineExecutionId"].as_str())
    {
        Some(id) => {
            let index = views
                .index_of(&key, id)
                .ok_or_else(|| execution_not_found(id, &input.pipeline_name))?;
            (index, 1)
        }
        None => (0, usize::MAX),
    };
    let mut runs: Vec<(f64, Value)> = Vec::new();
    let mut start = after.is_none().then_some(0);
    views.walk_newest(&key, first, count, |summary, unread_newest| {
        if let Some(first_run) = start {
            if runs
                .get(first_run + max)
                .is_some_and(|(t, _)| *t > unread_newest)
            {
                return Ok(false);
            }
        }
        let Some(e) = load(svc, &summary.id)? else {
            return Ok(true);
        };
        runs.extend(e.runs.iter().map(|r| (r.started, action_detail(&e, r))));
        runs.sort_by(|a, b| b.0.total_cmp(&a.0));
        start = match &after {
            None => Some(0),
            Some(after) => runs
                .iter()
                .position(|(_, d)| d["actionExecutionId"] == after.as_str())
                .map(|p| p + 1),
        };
        Ok(true)
    })?;
    let Some(start) = start else {
        return Err(token::invalid());
    };
    let more = runs.len() > start + max;
    let page: Vec<Value> = runs
        .into_iter()
        .skip(start)
        .take(max)
        .map(|(_, d)| d)
        .collect();
    let mut out = json!({ "actionExecutionDetails": page });
    if more {
        if let Some(last) = page.last().and_then(|d| d["actionExecutionId"].as_str()) {
            out["nextToken"] = token::encode(last).into();
        }
    }
    reply(&out)
}

#[derive(Deserialize)]
struct NameInput {
    name: String,
}

pub(super) fn handle_get_pipeline_state(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: NameInput = from_value(input)?;
    let (declaration, version, created, updated) = current(svc, ctx, &input.name)?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, &input.name);
    let latest_runs = svc
        .execution_views
        .latest(&key)
        .map_err(|e| AwsError::internal(format!("the executions could not be read: {e:?}")))?;
    let running = svc.execution_views.running_of(&key);
    let transitions = svc
        .views
        .with(
            &pipeline_stream(&ctx.account_id, &ctx.region, &input.name),
            |v| v.transitions.clone(),
        )
        .unwrap_or_default();
    let stages: Vec<Value> = declaration
        .stages
        .iter()
        .map(|stage| {
            let name = stage.name.as_str();
            let latest = latest_runs
                .stages
                .get(name)
                .map(|(id, run)| (id.as_str(), run));
            let mut state = stage_state(stage, latest, |action| {
                latest_runs
                    .actions
                    .get(&(name.to_string(), action.to_string()))
            });
            // A custom action links to its entity and its runs, from its type's URL templates.
            for (declared, action_state) in stage.actions.iter().zip(
                state["actionStates"]
                    .as_array_mut()
                    .into_iter()
                    .flatten(),
            ) {
                let id = &declared.action_type_id;
                if id.owner != "Custom" {
                    continue;
                }
                let region = declared.region.as_deref().unwrap_or(&ctx.region);
                let Some(custom) = svc.custom_types.find(&ctx.account_id, region, id) else {
                    continue;
                };
                let config = declared.configuration.clone().unwrap_or_default();
                if let Some(url) = custom.url("entityUrlTemplate", &config, None) {
                    action_state["entityUrl"] = url.into();
                }
                let external = action_state["latestExecution"]["externalExecutionId"]
                    .as_str()
                    .map(str::to_string);
                if let Some(url) = external
                    .as_deref()
                    .and_then(|e| custom.url("executionUrlTemplate", &config, Some(e)))
                {
                    action_state["latestExecution"]["externalExecutionUrl"] = url.into();
                }
            }
            let changed_by = format!("arn:aws:iam::{}:root", ctx.account_id);
            state["inboundTransitionState"] = match transitions.get(name) {
                Some(t) if !t.enabled => json!({
                    "enabled": false,
                    "disabledReason": t.reason.clone().unwrap_or_default(),
                    "lastChangedAt": t.at,
                    "lastChangedBy": changed_by,
                }),
                Some(t) => json!({"enabled": true, "lastChangedAt": t.at, "lastChangedBy": changed_by}),
                None => json!({"enabled": true}),
            };
            // Executions waiting before the stage (its lock, or a disabled transition), oldest first.
            let inbound: Vec<Value> = running
                .iter()
                .rev()
                .filter(|e| {
                    e.status == ExecutionStatus::InProgress && e.waiting.as_deref() == Some(name)
                })
                .map(|e| json!({"pipelineExecutionId": e.id, "status": "InProgress", "type": "STANDARD"}))
                .collect();
            if let Some(first) = inbound.first() {
                state["inboundExecution"] = first.clone();
                state["inboundExecutions"] = inbound.clone().into();
            }
            state
        })
        .collect();
    reply(&json!({
        "pipelineName": input.name,
        "pipelineVersion": version,
        "stageStates": stages,
        "created": created,
        "updated": updated,
    }))
}

#[derive(Deserialize)]
struct ApprovalResult {
    summary: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutApprovalInput {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    result: ApprovalResult,
    token: String,
}

pub(super) async fn handle_put_approval_result(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: PutApprovalInput = from_value(input)?;
    let (declaration, _, _, _) = current(svc, ctx, &input.pipeline_name)?;
    let stage = declaration
        .stage(&input.stage_name)
        .ok_or_else(|| stage_not_found(&input.stage_name, &input.pipeline_name))?;
    let declared = stage.actions.iter().any(|a| a.name == input.action_name);
    if !declared {
        return Err(AwsError::new(
            "ActionNotFoundException",
            format!(
                "Action {} does not exist in stage {}",
                input.action_name, input.stage_name
            ),
        ));
    }
    let key = pipeline_key(&ctx.account_id, &ctx.region, &input.pipeline_name);
    // A waiting approval belongs to a running execution; a token of one already answered is
    // still the latest run of its action.
    let is_it = |r: &ActionRun| {
        r.stage == input.stage_name
            && r.action == input.action_name
            && r.token.as_deref() == Some(input.token.as_str())
    };
    let found = svc
        .execution_views
        .running_of(&key)
        .into_iter()
        .find_map(|e| {
            let run = e.runs.iter().find(|r| is_it(r))?;
            Some((e.id.clone(), run.id.clone(), run.status))
        })
        .or_else(|| {
            let latest = svc.execution_views.latest(&key).ok()?;
            let run = latest
                .actions
                .get(&(input.stage_name.clone(), input.action_name.clone()))
                .filter(|r| r.token.as_deref() == Some(input.token.as_str()))?;
            Some((run.execution_id.clone(), run.id.clone(), run.status))
        });
    let Some((execution_id, action_execution_id, status)) = found else {
        return Err(AwsError::new(
            "InvalidApprovalTokenException",
            format!(
                "The approval token {} is not valid for action {}",
                input.token, input.action_name
            ),
        ));
    };
    if status != ActionStatus::InProgress {
        return Err(AwsError::new(
            "ApprovalAlreadyCompletedException",
            format!(
                "The approval of action {} has already been answered or has ended",
                input.action_name
            ),
        ));
    }
    let result = match input.result.status.as_str() {
        "Approved" => Ok(crate::codepipeline::execution::ActionOutput {
            external_execution_summary: Some(format!("Approved: {}", input.result.summary)),
            ..Default::default()
        }),
        _ => Err(crate::codepipeline::execution::ErrorDetails {
            code: "JobFailed".into(),
            message: format!("Rejected: {}", input.result.summary),
        }),
    };
    let command = crate::codepipeline::execution::ExecutionCommand::Complete {
        action_execution_id,
        result,
    };
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let answered = svc
        .registry
        .to_execution(&key, &execution_id, command)
        .await;
    match answered {
        Ok(()) => {}
        // It ended meanwhile (abandoned, or its execution was stopped).
        Err(crate::codepipeline::actors::CommandError::ExecutionRefused(_)) => {
            return Err(AwsError::new(
                "ApprovalAlreadyCompletedException",
                format!(
                    "The approval of action {} has already been answered or has ended",
                    input.action_name
                ),
            ))
        }
        Err(e) => {
            return Err(AwsError::internal(format!(
                "the approval could not be recorded: {e:?}"
            )))
        }
    }
    reply(&json!({ "approvedAt": crate::aws::now_epoch() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopInput {
    pipeline_name: String,
    pipeline_execution_id: String,
    #[serde(default)]
    abandon: bool,
    reason: Option<String>,
}

pub(super) async fn handle_stop_pipeline_execution(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    use crate::codepipeline::actors::CommandError;
    use crate::codepipeline::execution::{ExecutionCommand, ExecutionRefusal};
    let input: StopInput = from_value(input)?;
    let execution = execution_of(svc, ctx, &input.pipeline_name, &input.pipeline_execution_id)?;
    let not_stoppable = || {
        AwsError::new(
            "PipelineExecutionNotStoppableException",
            format!(
                "Pipeline execution {} is {} and cannot be stopped",
                execution.id, execution.status
            ),
        )
    };
    if !execution.status.is_running() {
        return Err(not_stoppable());
    }
    let command = ExecutionCommand::Stop {
        abandon: input.abandon,
        reason: input.reason,
    };
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let stopped = svc
        .registry
        .to_execution(&key, &input.pipeline_execution_id, command)
        .await;
    match stopped {
        Ok(()) => reply(&json!({ "pipelineExecutionId": input.pipeline_execution_id })),
        Err(CommandError::ExecutionRefused(ExecutionRefusal::DuplicatedStop)) => {
            Err(AwsError::new(
                "DuplicatedStopRequestException",
                format!(
                    "Pipeline execution {} is already being stopped",
                    input.pipeline_execution_id
                ),
            ))
        }
        Err(CommandError::ExecutionRefused(_)) => Err(not_stoppable()),
        Err(e) => Err(AwsError::internal(format!(
            "the stop could not be recorded: {e:?}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransitionInput {
    pipeline_name: String,
    stage_name: String,
    transition_type: String,
    reason: Option<String>,
}

/// DisableStageTransition and EnableStageTransition.
pub(super) async fn handle_set_stage_transition(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
    enabled: bool,
) -> Reply {
    let input: TransitionInput = from_value(input)?;
    if input.transition_type != "Inbound" {
        return Err(AwsError::validation(format!(
            "Transition type {} is not supported by codepipeline-local yet; Inbound is",
            input.transition_type
        )));
    }
    // The actor checks the stage against the current declaration and, once the change is
    // durable, opens or closes the stage's gate.
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let command = crate::codepipeline::pipeline::PipelineCommand::SetTransition {
        stage: input.stage_name.clone(),
        enabled,
        reason: input.reason,
        at: crate::aws::now_epoch(),
    };
    svc.registry.execute(&key, command).await.map_err(|e| {
        super::command_error(
            e,
            &input.pipeline_name,
            &ctx.account_id,
            "PipelineNotFoundException",
        )
    })?;
    reply(&json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetryInput {
    pipeline_name: String,
    stage_name: String,
    pipeline_execution_id: String,
    retry_mode: RetryMode,
}

pub(super) async fn handle_retry_stage_execution(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    use crate::codepipeline::actors::CommandError;
    use crate::codepipeline::execution::{ExecutionCommand, ExecutionRefusal};
    let input: RetryInput = from_value(input)?;
    let (declaration, version, _, _) = current(svc, ctx, &input.pipeline_name)?;
    if declaration.stage(&input.stage_name).is_none() {
        return Err(stage_not_found(&input.stage_name, &input.pipeline_name));
    }
    let not_retryable = |message: String| AwsError::new("StageNotRetryableException", message);
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    // The pipeline is busy while it rolls a stage back.
    if rolling_back(svc, &key) {
        return Err(AwsError::new(
            "ConflictException",
            format!(
                "A rollback of pipeline {} is in progress; retry once it ends",
                input.pipeline_name
            ),
        ));
    }
    // Only the execution that ran the stage last may retry it.
    let latest = svc
        .execution_views
        .latest(&key.key())
        .map_err(|e| AwsError::internal(format!("the executions could not be read: {e:?}")))?;
    let Some((latest_id, run)) = latest.stages.get(&input.stage_name) else {
        return Err(not_retryable(format!(
            "Stage {} has not run yet",
            input.stage_name
        )));
    };
    if *latest_id != input.pipeline_execution_id {
        return Err(AwsError::new(
            "NotLatestPipelineExecutionException",
            format!(
                "Pipeline execution {} is not the latest to run stage {}; {latest_id} is",
                input.pipeline_execution_id, input.stage_name
            ),
        ));
    }
    if !matches!(run.status, StageStatus::Failed | StageStatus::Stopped) {
        return Err(not_retryable(format!(
            "Stage {} of pipeline execution {latest_id} is {}, not Failed or Stopped",
            input.stage_name, run.status
        )));
    }
    let execution = execution_of(svc, ctx, &input.pipeline_name, latest_id)?;
    if execution.pipeline_version != version {
        return Err(not_retryable(format!(
            "Pipeline execution {latest_id} ran version {} of the pipeline, which has been updated to version {version}",
            execution.pipeline_version
        )));
    }
    let command = ExecutionCommand::Retry {
        stage: input.stage_name.clone(),
        mode: input.retry_mode,
    };
    // Through the pipeline's door: a retry is ordered with updates, starts and stops.
    match svc.registry.to_execution(&key, latest_id, command).await {
        Ok(()) => reply(&json!({ "pipelineExecutionId": latest_id })),
        Err(CommandError::ExecutionRefused(ExecutionRefusal::NotRetryable(message))) => {
            Err(not_retryable(message))
        }
        Err(e) => Err(AwsError::internal(format!(
            "the retry could not be recorded: {e:?}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionRevisionInput {
    revision_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutActionRevisionInput {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    action_revision: ActionRevisionInput,
}

/// PutActionRevision: a revision of a source action that it did not read last starts an
/// execution with it (trigger `PutActionRevision`); the one it read last starts nothing.
pub(super) async fn handle_put_action_revision(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: PutActionRevisionInput = from_value(input)?;
    let (declaration, ..) = current(svc, ctx, &input.pipeline_name)?;
    let stage = declaration
        .stage(&input.stage_name)
        .ok_or_else(|| stage_not_found(&input.stage_name, &input.pipeline_name))?;
    if !stage.actions.iter().any(|a| a.name == input.action_name) {
        return Err(AwsError::new(
            "ActionNotFoundException",
            format!(
                "Action {} does not exist in stage {} of pipeline {}",
                input.action_name, input.stage_name, input.pipeline_name
            ),
        ));
    }
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let latest = svc
        .execution_views
        .latest(&key.key())
        .map_err(|e| AwsError::internal(format!("the executions could not be read: {e:?}")))?;
    let read = latest
        .actions
        .get(&(input.stage_name.clone(), input.action_name.clone()))
        .and_then(|a| a.revision.as_ref())
        .map(|(id, ..)| id.clone());
    let revision = input.action_revision.revision_id;
    if read.as_deref() == Some(revision.as_str()) {
        return reply(&json!({ "newRevision": false }));
    }
    let start = StartExecution {
        trigger: Trigger {
            trigger_type: "PutActionRevision".into(),
            trigger_detail: Some(format!(
                "arn:aws:sts::{}:assumed-role/codepipeline-local",
                ctx.account_id
            )),
        },
        variables: BTreeMap::new(),
        source_revisions: [(input.action_name, revision)].into(),
        client_request_token: None,
        rollback: None,
    };
    let id = svc.registry.start(&key, start).await.map_err(|e| {
        super::command_error(
            e,
            &input.pipeline_name,
            &ctx.account_id,
            "PipelineNotFoundException",
        )
    })?;
    reply(&json!({ "newRevision": true, "pipelineExecutionId": id }))
}

/// Whether a rollback of the pipeline runs.
fn rolling_back(svc: &CodePipelineService, key: &PipelineKey) -> bool {
    svc.execution_views
        .running_of(&key.key())
        .iter()
        .any(|e| e.rollback.is_some())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RollbackInput {
    pipeline_name: String,
    stage_name: String,
    target_pipeline_execution_id: String,
}

/// RollbackStage: a new execution (`ROLLBACK`, trigger `ManualRollback`) runs the stage again
/// with what the target execution ran it with: its source revisions, variables and artifacts.
pub(super) async fn handle_rollback_stage(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: RollbackInput = from_value(input)?;
    let (declaration, version, _, _) = current(svc, ctx, &input.pipeline_name)?;
    let stage = &input.stage_name;
    let Some(index) = declaration.stages.iter().position(|s| s.name == *stage) else {
        return Err(stage_not_found(stage, &input.pipeline_name));
    };
    let unable = |message: String| AwsError::new("UnableToRollbackStageException", message);
    if index == 0 {
        return Err(unable(format!(
            "Stage {stage} is the source stage of pipeline {}: a source stage cannot be rolled back",
            input.pipeline_name
        )));
    }
    if declaration.execution_mode() == crate::codepipeline::model::ExecutionMode::Parallel {
        return Err(unable(format!(
            "Pipeline {} runs in PARALLEL mode, where stages cannot be rolled back",
            input.pipeline_name
        )));
    }
    let target_id = &input.target_pipeline_execution_id;
    let target = execution_of(svc, ctx, &input.pipeline_name, target_id)?;
    if target.pipeline_version != version {
        return Err(AwsError::new(
            "PipelineExecutionOutdatedException",
            format!(
                "Pipeline execution {target_id} ran version {} of pipeline {}, which is now at version {version}",
                target.pipeline_version, input.pipeline_name
            ),
        ));
    }
    if target.rollback.is_some() {
        return Err(unable(format!(
            "Pipeline execution {target_id} is a rollback: it cannot be the target of one"
        )));
    }
    let succeeded = target
        .stage_run(stage)
        .is_some_and(|s| s.status == StageStatus::Succeeded);
    if !succeeded {
        return Err(unable(format!(
            "Stage {stage} did not succeed in pipeline execution {target_id}"
        )));
    }
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    if rolling_back(svc, &key) {
        return Err(AwsError::new(
            "ConflictException",
            format!(
                "A rollback of pipeline {} is in progress; try again once it ends",
                input.pipeline_name
            ),
        ));
    }
    let trigger = Trigger {
        trigger_type: "ManualRollback".into(),
        trigger_detail: Some(format!(
            "arn:aws:sts::{}:assumed-role/codepipeline-local",
            ctx.account_id
        )),
    };
    let start = crate::codepipeline::rollback::start(&declaration, &target, stage, trigger);
    let id = svc.registry.start(&key, start).await.map_err(|e| {
        super::command_error(
            e,
            &input.pipeline_name,
            &ctx.account_id,
            "PipelineNotFoundException",
        )
    })?;
    reply(&json!({ "pipelineExecutionId": id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeployTargetsInput {
    pipeline_name: Option<String>,
    action_execution_id: String,
    next_token: Option<String>,
    #[serde(default)]
    filters: Vec<DeployTargetFilter>,
}

#[derive(Deserialize)]
struct DeployTargetFilter {
    name: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

/// The deploy targets of an action run: for the ECS deploy actions, the ECS service (or the
/// CodeDeploy deployment group) the action deployed to; none for the others (S3 deploy has no
/// targets on AWS either).
fn deploy_targets(
    ctx: &RequestContext,
    run: &crate::codepipeline::execution::ActionRun,
) -> Vec<Value> {
    let config = &run.input.resolved_configuration;
    let get = |k: &str| config.get(k).cloned().unwrap_or_default();
    let (account, region) = (&ctx.account_id, &run.input.region);
    let target = match run.input.action_type_id.provider.as_str() {
        "ECS" => format!(
            "arn:aws:ecs:{region}:{account}:service/{}/{}",
            get("ClusterName"),
            get("ServiceName")
        ),
        "CodeDeployToECS" => format!(
            "arn:aws:codedeploy:{region}:{account}:deploymentgroup:{}/{}",
            get("ApplicationName"),
            get("DeploymentGroupName")
        ),
        _ => return Vec::new(),
    };
    let status = run.status.as_str().to_string();
    let message = run
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .or_else(|| {
            run.output
                .as_ref()
                .and_then(|o| o.external_execution_summary.clone())
        })
        .unwrap_or_default();
    let mut event = json!({"name": "Deployment", "status": status, "startTime": run.started,
                           "context": {"message": message}});
    let mut out = json!({"targetId": target, "targetType": "ECS", "status": status,
                         "startTime": run.started, "events": []});
    if status != "InProgress" {
        event["endTime"] = run.updated.into();
        out["endTime"] = run.updated.into();
    }
    out["events"] = json!([event]);
    vec![out]
}

/// How many of a pipeline's newest executions ListDeployActionExecutionTargets looks through
/// for the action execution.
const DEPLOY_TARGETS_LOOKBACK: usize = 1000;

/// ListDeployActionExecutionTargets: the deploy actions that run here (S3 deploy) have no
/// targets on AWS either (targets are EC2 instances and ECS tasks), so a known action execution
/// lists none.
pub(super) fn handle_list_deploy_action_execution_targets(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: DeployTargetsInput = from_value(input)?;
    if let Some(token) = input.next_token.as_deref() {
        // No list here has a second page, so no token we did not give is valid.
        token::decode(token)?;
    }
    let not_found = || {
        AwsError::new(
            "ActionExecutionNotFoundException",
            format!(
                "The action execution {} was not found",
                input.action_execution_id
            ),
        )
    };
    let Some(pipeline) = input.pipeline_name.as_deref() else {
        // Without a pipeline, only the running executions are looked through.
        let found = svc.execution_views.with_running(
            |all: &mut dyn Iterator<Item = (&str, &Execution)>| {
                let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
                all.filter(|(key, _)| key.starts_with(&prefix))
                    .find_map(|(_, e)| {
                        e.runs
                            .iter()
                            .find(|r| r.id == input.action_execution_id)
                            .map(|r| deploy_targets(ctx, r))
                    })
            },
        );
        return match found {
            Some(targets) => reply(&json!({ "targets": filtered(targets, &input.filters) })),
            None => Err(not_found()),
        };
    };
    exists(svc, ctx, pipeline)?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, pipeline);
    let mut found = None;
    svc.execution_views
        .walk_newest(&key, 0, DEPLOY_TARGETS_LOOKBACK, |summary, _| {
            let execution = load(svc, &summary.id)?;
            found = execution.and_then(|e| {
                e.runs
                    .iter()
                    .find(|r| r.id == input.action_execution_id)
                    .map(|r| deploy_targets(ctx, r))
            });
            Ok::<bool, AwsError>(found.is_none())
        })?;
    let targets = found.ok_or_else(not_found)?;
    reply(&json!({ "targets": filtered(targets, &input.filters) }))
}

/// Targets whose status a `TARGET_STATUS` filter names.
fn filtered(targets: Vec<Value>, filters: &[DeployTargetFilter]) -> Vec<Value> {
    targets
        .into_iter()
        .filter(|t| {
            filters
                .iter()
                .filter(|f| f.name.as_deref() == Some("TARGET_STATUS"))
                .all(|f| f.values.iter().any(|v| t["status"] == v.as_str()))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRuleTypesInput {
    rule_owner_filter: Option<String>,
}

/// ListRuleTypes: the rule types that run here.
pub(super) fn handle_list_rule_types(input: Value) -> Reply {
    let input: ListRuleTypesInput = from_value(input)?;
    let types = if input
        .rule_owner_filter
        .as_deref()
        .is_none_or(|o| o == "AWS")
    {
        crate::codepipeline::conditions::rule_types()
    } else {
        Vec::new()
    };
    reply(&json!({ "ruleTypes": types }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFilter {
    pipeline_execution_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRulesInput {
    pipeline_name: String,
    filter: Option<RuleFilter>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

/// The rule executions of an execution, newest first, as ListRuleExecutions shows them.
fn rule_details(e: &Execution) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    // A rule evaluated outside the execution is in every check from the one that started it to
    // the one that recorded its outcome: the newest tells.
    let mut seen = std::collections::HashSet::new();
    // When each rule execution started: the first check that holds it.
    let mut started = std::collections::HashMap::new();
    for check in e.stages.iter().flat_map(|s| &s.conditions) {
        for r in &check.rules {
            started.entry(r.id.as_str()).or_insert(check.at);
        }
    }
    for stage in e.stages.iter().rev() {
        for check in stage.conditions.iter().rev() {
            for r in check.rules.iter().rev() {
                if !seen.insert(r.id.as_str()) {
                    continue;
                }
                let mut result = json!({
                    "externalExecutionId": r.id,
                    "externalExecutionSummary": r.summary,
                });
                if r.status() == "Failed" {
                    result["errorDetails"] = json!({"code": "RuleFailed", "message": r.summary});
                }
                out.push((
                    r.id.clone(),
                    json!({
                        "pipelineExecutionId": e.id,
                        "ruleExecutionId": r.id,
                        "pipelineVersion": e.pipeline_version,
                        "stageName": stage.name,
                        "ruleName": r.name,
                        "startTime": started.get(r.id.as_str()).copied().unwrap_or(check.at),
                        "lastUpdateTime": check.at,
                        "status": r.status(),
                        "input": {
                            "ruleTypeId": r.rule_type_id,
                            "configuration": r.configuration,
                            "resolvedConfiguration": r.resolved_configuration,
                            "region": e.region,
                        },
                        "output": {"executionResult": result},
                    }),
                ));
            }
        }
    }
    out
}

/// ListRuleExecutions: the rules a pipeline's conditions ran, newest first, paged.
pub(super) fn handle_list_rule_executions(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: ListRulesInput = from_value(input)?;
    exists(svc, ctx, &input.pipeline_name)?;
    let limit = input.max_results.unwrap_or(100).clamp(1, 100);
    let after = input.next_token.as_deref().map(token::decode).transpose()?;
    let key = pipeline_key(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let mut details: Vec<(String, Value)> = Vec::new();
    let wanted = input.filter.and_then(|f| f.pipeline_execution_id);
    if let Some(id) = &wanted {
        let e = execution_of(svc, ctx, &input.pipeline_name, id)?;
        details = rule_details(&e);
    } else {
        // Executions newest first, until a page past the token is full.
        let mut passed = after.is_none();
        svc.execution_views
            .walk_newest(&key, 0, usize::MAX, |summary, _| {
                if let Some(e) = load(svc, &summary.id)? {
                    for (id, d) in rule_details(&e) {
                        if passed {
                            details.push((id, d));
                        } else if after.as_deref() == Some(id.as_str()) {
                            passed = true;
                        }
                    }
                }
                Ok::<bool, AwsError>(details.len() <= limit)
            })?;
        if !passed {
            return Err(token::invalid());
        }
    }
    if wanted.is_some() {
        if let Some(after) = &after {
            let at = details
                .iter()
                .position(|(id, _)| id == after)
                .ok_or_else(token::invalid)?;
            details.drain(..=at);
        }
    }
    let more = details.len() > limit;
    details.truncate(limit);
    let mut out = json!({
        "ruleExecutionDetails": details.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
    });
    if more {
        if let Some((id, _)) = details.last() {
            out["nextToken"] = token::encode(id).into();
        }
    }
    reply(&out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverrideInput {
    pipeline_name: String,
    stage_name: String,
    pipeline_execution_id: String,
    condition_type: String,
}

/// OverrideStageCondition: a condition still being checked (a deployment window not open yet)
/// ends as met, and the stage goes on; any other is not overridable.
pub(super) async fn handle_override_stage_condition(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    use crate::codepipeline::actors::CommandError;
    use crate::codepipeline::conditions::ConditionKind;
    use crate::codepipeline::execution::{ExecutionCommand, ExecutionRefusal};
    let input: OverrideInput = from_value(input)?;
    let (declaration, _, _, _) = current(svc, ctx, &input.pipeline_name)?;
    if declaration.stage(&input.stage_name).is_none() {
        return Err(stage_not_found(&input.stage_name, &input.pipeline_name));
    }
    let e = execution_of(svc, ctx, &input.pipeline_name, &input.pipeline_execution_id)?;
    let kind = match input.condition_type.as_str() {
        "BEFORE_ENTRY" => ConditionKind::BeforeEntry,
        _ => ConditionKind::OnSuccess,
    };
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.pipeline_name);
    let command = ExecutionCommand::OverrideCondition {
        stage: input.stage_name.clone(),
        kind,
    };
    match svc.registry.to_execution(&key, &e.id, command).await {
        Ok(()) => reply(&json!({})),
        Err(CommandError::ExecutionRefused(ExecutionRefusal::NotOverridable(message))) => {
            Err(AwsError::new("ConditionNotOverridableException", message))
        }
        Err(e) => Err(AwsError::internal(format!(
            "the override could not be recorded: {e:?}"
        ))),
    }
}
