//! The job workers' operations: PollForJobs, AcknowledgeJob, GetJobDetails,
//! PutJobSuccessResult, PutJobFailureResult, and their third-party counterparts.
//!
//! A job belongs to a running action (see `execution::Job`): what a worker reports goes through
//! the pipeline's actor to the execution, like every other change. Which jobs a poll handed out
//! (`Dispatched`) is known only here, in memory: after a restart a job not yet acknowledged is
//! offered to the next poll again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{reply, Reply};
use crate::aws::json::from_value;
use crate::aws::{AwsError, RequestContext};
use crate::codepipeline::actors::CommandError;
use crate::codepipeline::execution::{
    artifact_credentials, ActionRun, ErrorDetails, Execution, ExecutionCommand, ExecutionDetails,
    ExecutionRefusal, JobOp, JobRefusal, JobStatus,
};
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::model::{ActionStatus, ActionTypeId};
use crate::codepipeline::CodePipelineService;

/// The combined size AWS allows a job's output variables, in bytes.
pub const MAX_OUTPUT_VARIABLES_BYTES: usize = 122_880;

/// The jobs polls have handed out and no worker acknowledged yet.
#[derive(Default)]
pub struct Dispatched {
    jobs: Mutex<HashSet<String>>,
}

/// Which family of operations a job is reached through.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    /// PollForJobs and the others: custom actions, and the Lambda invoke action's function.
    Job,
    /// PollForThirdPartyJobs and the others: third-party actions.
    ThirdParty,
}

impl Family {
    fn of(id: &ActionTypeId) -> Self {
        if id.owner == "ThirdParty" {
            Family::ThirdParty
        } else {
            Family::Job
        }
    }
}

fn job_not_found(job_id: &str) -> AwsError {
    AwsError::new(
        "JobNotFoundException",
        format!("The job {job_id} was not found"),
    )
}

/// A job, the execution and pipeline it belongs to, and its action run.
struct Found {
    key: PipelineKey,
    execution: Execution,
    run: ActionRun,
}

fn find(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    job_id: &str,
    family: Family,
) -> Result<Found, AwsError> {
    let (key, execution) = svc
        .execution_views
        .job(job_id)
        .map_err(|e| AwsError::internal(e.to_string()))?
        .ok_or_else(|| job_not_found(job_id))?;
    let key = PipelineKey::parse(&key).ok_or_else(|| job_not_found(job_id))?;
    let run = execution
        .runs
        .iter()
        .find(|r| r.job_ids().any(|j| j == job_id))
        .cloned()
        .ok_or_else(|| job_not_found(job_id))?;
    // Jobs are the account's own, and each family sees only its own.
    if key.account != ctx.account_id || Family::of(&run.input.action_type_id) != family {
        return Err(job_not_found(job_id));
    }
    Ok(Found {
        key,
        execution,
        run,
    })
}

/// A LambdaInvoke rule's job: its pipeline, execution and rule run.
struct RuleFound {
    key: PipelineKey,
    execution_id: String,
    rule: crate::codepipeline::conditions::RuleRun,
}

/// The LambdaInvoke rule whose job this is, if it is one (of the caller's account).
fn find_rule(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    job_id: &str,
) -> Result<Option<RuleFound>, AwsError> {
    let Some((key, execution)) = svc
        .execution_views
        .job(job_id)
        .map_err(|e| AwsError::internal(e.to_string()))?
    else {
        return Ok(None);
    };
    let rule = execution
        .stages
        .iter()
        .flat_map(|s| &s.conditions)
        .flat_map(|c| &c.rules)
        .rev()
        .find(|r| r.id == job_id && r.runs_as_job())
        .cloned();
    let key = PipelineKey::parse(&key).filter(|k| k.account == ctx.account_id);
    Ok(match (rule, key) {
        (Some(rule), Some(key)) => Some(RuleFound {
            key,
            execution_id: execution.id,
            rule,
        }),
        _ => None,
    })
}

/// Records a LambdaInvoke rule's outcome, as its function reported it.
async fn rule_outcome(
    svc: &CodePipelineService,
    found: RuleFound,
    succeeded: bool,
    summary: String,
) -> Result<(), AwsError> {
    let job_id = found.rule.id.clone();
    let command = ExecutionCommand::RuleDone {
        rule_id: found.rule.id,
        succeeded,
        summary,
    };
    match svc
        .registry
        .to_execution(&found.key, &found.execution_id, command)
        .await
    {
        Ok(()) => Ok(()),
        Err(CommandError::ExecutionRefused(_)) => Err(AwsError::new(
            "InvalidJobStateException",
            format!("The job {job_id} is not waiting for a result"),
        )),
        Err(e) => Err(AwsError::internal(format!(
            "the job's result was not recorded: {e:?}"
        ))),
    }
}

/// The job's data (the wire shape `JobData`): what the worker needs to do the action's work.
fn job_data(svc: &CodePipelineService, found: &Found) -> Value {
    let Found {
        key,
        execution,
        run,
    } = found;
    // An input artifact's revision is that of the source action that produced it.
    let revision_of = |name: &str| {
        execution
            .runs
            .iter()
            .filter_map(|r| r.output.as_ref())
            .find(|o| o.output_artifacts.iter().any(|a| a.name == name))
            .and_then(|o| o.revision.as_ref())
    };
    let inputs: Vec<Value> = run
        .input
        .input_artifacts
        .iter()
        .map(|a| a.job_json(revision_of(&a.name).map(String::as_str)))
        .collect();
    let outputs: Vec<Value> = run
        .planned_outputs
        .iter()
        .map(|a| a.job_json(None))
        .collect();
    let arn = format!(
        "arn:aws:codepipeline:{}:{}:{}",
        key.region, key.account, key.name
    );
    let job = run.job.as_ref();
    let job_id = job.map(|j| j.job.id.as_str()).unwrap_or_default();
    let mut data = json!({
        "actionTypeId": run.input.action_type_id,
        "actionConfiguration": {"configuration": run.input.resolved_configuration},
        "pipelineContext": {
            "pipelineName": key.name,
            "stage": {"name": run.stage},
            "action": {"name": run.action, "actionExecutionId": run.id},
            "pipelineArn": arn,
            "pipelineExecutionId": execution.id,
        },
        "inputArtifacts": inputs,
        "outputArtifacts": outputs,
        "artifactCredentials": artifact_credentials(job_id, &run.id),
    });
    if let Some(token) = job.and_then(|j| j.continuation_token.as_ref()) {
        data["continuationToken"] = token.clone().into();
    }
    if let Some(key) = encryption_key(svc, key, &run.input.region) {
        data["encryptionKey"] = key;
    }
    data
}

/// The encryption key of the pipeline's artifact store in `region`, if one is set.
fn encryption_key(svc: &CodePipelineService, key: &PipelineKey, region: &str) -> Option<Value> {
    let output = svc.views.with(&key.stream(), |p| p.get_output.clone())?;
    let output: Value = serde_json::from_slice(&output).ok()?;
    let pipeline = &output["pipeline"];
    let store = if pipeline["artifactStore"].is_object() {
        &pipeline["artifactStore"]
    } else {
        &pipeline["artifactStores"][region]
    };
    Some(store["encryptionKey"].clone()).filter(Value::is_object)
}

/// A job as PollForJobs answers it (the wire shape `Job`).
fn job_json(svc: &CodePipelineService, found: &Found) -> Value {
    let job = found.run.job.as_ref().map(|j| &j.job);
    json!({
        "id": job.map(|j| j.id.as_str()),
        "data": job_data(svc, found),
        "nonce": job.map(|j| j.nonce.as_str()),
        "accountId": found.key.account,
    })
}

/// The queued jobs of action type `id` in the account and region that no poll handed out,
/// oldest first, whose configuration has the values `query` asks for.
fn queued(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    id: &ActionTypeId,
    query: &BTreeMap<String, String>,
    wanted: usize,
) -> Vec<Found> {
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let mut dispatched = svc.dispatched.jobs.lock().expect("dispatched jobs");
    let mut still_queued = HashSet::new();
    let mut found: Vec<(f64, String, Execution, ActionRun)> = Vec::new();
    svc.execution_views
        .with_running(&mut |all: &mut dyn Iterator<Item = (&str, &Execution)>| {
            for (key, execution) in all {
                for run in &execution.runs {
                    let Some(job) = run.job.as_ref() else {
                        continue;
                    };
                    if run.status != ActionStatus::InProgress || job.acknowledged {
                        continue;
                    }
                    still_queued.insert(job.job.id.clone());
                    let matches = key.starts_with(&prefix)
                        && run.input.action_type_id == *id
                        && !dispatched.contains(&job.job.id)
                        && query
                            .iter()
                            .all(|(k, v)| run.input.resolved_configuration.get(k) == Some(v));
                    if matches {
                        found.push((job.queued, key.to_string(), execution.clone(), run.clone()));
                    }
                }
            }
        });
    dispatched.retain(|j| still_queued.contains(j));
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found
        .into_iter()
        .take(wanted)
        .filter_map(|(_, key, execution, run)| {
            if let Some(job) = &run.job {
                dispatched.insert(job.job.id.clone());
            }
            Some(Found {
                key: PipelineKey::parse(&key)?,
                execution,
                run,
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollInput {
    action_type_id: ActionTypeId,
    max_batch_size: Option<usize>,
    #[serde(default)]
    query_param: BTreeMap<String, String>,
}

fn type_not_found(id: &ActionTypeId) -> AwsError {
    AwsError::new(
        "ActionTypeNotFoundException",
        format!(
            "Action type (category: {}, owner: {}, provider: {}, version: {}) was not found",
            id.category, id.owner, id.provider, id.version
        ),
    )
}

pub(super) fn handle_poll_for_jobs(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: PollInput = from_value(input)?;
    let id = &input.action_type_id;
    if id.owner != "Custom" {
        return Err(AwsError::validation(format!(
            "PollForJobs is only for action types owned by Custom, not {}",
            id.owner
        )));
    }
    let custom = svc
        .custom_types
        .live(&ctx.account_id, &ctx.region, id)
        .ok_or_else(|| type_not_found(id))?;
    for name in input.query_param.keys() {
        if !custom.property(name).is_some_and(|p| p.queryable) {
            return Err(AwsError::validation(format!(
                "queryParam {name} is not a queryable configuration property of the action type"
            )));
        }
    }
    let wanted = input.max_batch_size.unwrap_or(1);
    let jobs: Vec<Value> = queued(svc, ctx, id, &input.query_param, wanted)
        .iter()
        .map(|f| job_json(svc, f))
        .collect();
    reply(&json!({ "jobs": jobs }))
}

pub(super) fn handle_poll_for_third_party_jobs(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: PollInput = from_value(input)?;
    let id = &input.action_type_id;
    if id.owner != "ThirdParty" {
        return Err(AwsError::validation(format!(
            "PollForThirdPartyJobs is only for action types owned by ThirdParty, not {}",
            id.owner
        )));
    }
    if svc
        .actions
        .find(&id.category, &id.owner, &id.provider)
        .is_none()
        || id.version != "1"
    {
        return Err(type_not_found(id));
    }
    let wanted = input.max_batch_size.unwrap_or(1);
    let jobs: Vec<Value> = queued(svc, ctx, id, &BTreeMap::new(), wanted)
        .iter()
        .filter_map(|f| {
            let job = f.run.job.as_ref()?;
            Some(json!({"clientId": uuid::Uuid::new_v4().to_string(), "jobId": job.job.id}))
        })
        .collect();
    reply(&json!({ "jobs": jobs }))
}

/// Sends a job command to the job's execution, through its pipeline's actor.
async fn send(
    svc: &CodePipelineService,
    found: &Found,
    job_id: &str,
    op: JobOp,
) -> Result<(), AwsError> {
    let command = ExecutionCommand::Job {
        job_id: job_id.to_string(),
        op,
    };
    let sent = svc
        .registry
        .to_execution(&found.key, &found.execution.id, command)
        .await;
    match sent {
        Ok(()) => Ok(()),
        Err(CommandError::ExecutionRefused(ExecutionRefusal::Job(refusal))) => {
            Err(job_refusal(refusal, job_id))
        }
        // The execution ended while the command was on its way.
        Err(CommandError::ExecutionRefused(_)) => Err(AwsError::new(
            "InvalidJobStateException",
            format!("The job {job_id} is not waiting for a result"),
        )),
        Err(e) => Err(AwsError::internal(format!(
            "the job's result was not recorded: {e:?}"
        ))),
    }
}

fn job_refusal(refusal: JobRefusal, job_id: &str) -> AwsError {
    match refusal {
        JobRefusal::NotFound => job_not_found(job_id),
        JobRefusal::InvalidNonce => AwsError::new(
            "InvalidNonceException",
            format!("The nonce is not the one of job {job_id}"),
        ),
        JobRefusal::InvalidState(status) => AwsError::new(
            "InvalidJobStateException",
            format!(
                "The job {job_id} is {}; it takes no more results",
                status.as_str()
            ),
        ),
        JobRefusal::InvalidClientToken => AwsError::new(
            "InvalidClientTokenException",
            format!("The client token is not the one job {job_id} was acknowledged with"),
        ),
    }
}

/// The status of a job after a command (Dispatched while a poll holds it, unacknowledged).
fn status_after(svc: &CodePipelineService, job_id: &str) -> Result<&'static str, AwsError> {
    let status = svc
        .execution_views
        .job(job_id)
        .map_err(|e| AwsError::internal(e.to_string()))?
        .and_then(|(_, e)| e.runs.iter().find_map(|r| r.job_status(job_id)))
        .ok_or_else(|| job_not_found(job_id))?;
    let dispatched = svc
        .dispatched
        .jobs
        .lock()
        .expect("dispatched jobs")
        .contains(job_id);
    Ok(match status {
        JobStatus::Queued if dispatched => "Dispatched",
        other => other.as_str(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcknowledgeInput {
    job_id: String,
    nonce: String,
    client_token: Option<String>,
}

async fn acknowledge(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
    family: Family,
) -> Reply {
    let input: AcknowledgeInput = from_value(input)?;
    if family == Family::Job {
        if let Some(rule) = find_rule(svc, ctx, &input.job_id)? {
            let status = match (rule.rule.pending, rule.rule.succeeded) {
                (true, _) => "InProgress",
                (false, true) => "Succeeded",
                (false, false) => "Failed",
            };
            return reply(&json!({ "status": status }));
        }
    }
    let found = find(svc, ctx, &input.job_id, family)?;
    let op = JobOp::Acknowledge {
        nonce: input.nonce,
        client_token: input.client_token,
    };
    send(svc, &found, &input.job_id, op).await?;
    reply(&json!({ "status": status_after(svc, &input.job_id)? }))
}

pub(super) async fn handle_acknowledge_job(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    acknowledge(svc, ctx, input, Family::Job).await
}

pub(super) async fn handle_acknowledge_third_party_job(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    acknowledge(svc, ctx, input, Family::ThirdParty).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobIdInput {
    job_id: String,
    client_token: Option<String>,
}

pub(super) fn handle_get_job_details(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: JobIdInput = from_value(input)?;
    if let Some(rule) = find_rule(svc, ctx, &input.job_id)? {
        return reply(&json!({"jobDetails": {
            "id": input.job_id,
            "data": crate::codepipeline::rules::job_data(&rule.rule),
            "accountId": rule.key.account,
        }}));
    }
    let found = find(svc, ctx, &input.job_id, Family::Job)?;
    reply(&json!({"jobDetails": {
        "id": input.job_id,
        "data": job_data(svc, &found),
        "accountId": found.key.account,
    }}))
}

pub(super) fn handle_get_third_party_job_details(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: JobIdInput = from_value(input)?;
    let found = find(svc, ctx, &input.job_id, Family::ThirdParty)?;
    let current = found.run.job.as_ref();
    let bound = current.and_then(|j| j.client_token.as_ref());
    if let (Some(bound), Some(given)) = (bound, input.client_token.as_ref()) {
        if bound != given {
            return Err(job_refusal(JobRefusal::InvalidClientToken, &input.job_id));
        }
    }
    let nonce = current
        .filter(|j| j.job.id == input.job_id)
        .map(|j| j.job.nonce.clone());
    reply(&json!({"jobDetails": {
        "id": input.job_id,
        "data": job_data(svc, &found),
        "nonce": nonce,
    }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CurrentRevision {
    revision: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuccessInput {
    job_id: String,
    current_revision: Option<CurrentRevision>,
    continuation_token: Option<String>,
    execution_details: Option<ExecutionDetails>,
    #[serde(default)]
    output_variables: BTreeMap<String, String>,
    client_token: Option<String>,
}

async fn succeed(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
    family: Family,
) -> Reply {
    let input: SuccessInput = from_value(input)?;
    if input.continuation_token.is_some() && !input.output_variables.is_empty() {
        return Err(AwsError::validation(
            "Output variables can be given only with the job's final result, not with a continuation token",
        ));
    }
    let size: usize = input
        .output_variables
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_OUTPUT_VARIABLES_BYTES {
        return Err(AwsError::new(
            "OutputVariablesSizeExceededException",
            format!(
                "The output variables take {size} bytes; at most {MAX_OUTPUT_VARIABLES_BYTES} are allowed"
            ),
        ));
    }
    if family == Family::Job {
        if let Some(rule) = find_rule(svc, ctx, &input.job_id)? {
            let summary = input
                .execution_details
                .and_then(|d| d.summary)
                .unwrap_or_else(|| "The function reported success".into());
            rule_outcome(svc, rule, true, summary).await?;
            return reply(&json!({}));
        }
    }
    let found = find(svc, ctx, &input.job_id, family)?;
    let op = JobOp::Succeed {
        details: input.execution_details,
        continuation_token: input.continuation_token,
        output_variables: input.output_variables,
        revision: input.current_revision.map(|r| r.revision),
        client_token: input.client_token,
    };
    send(svc, &found, &input.job_id, op).await?;
    reply(&json!({}))
}

pub(super) async fn handle_put_job_success_result(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    succeed(svc, ctx, input, Family::Job).await
}

pub(super) async fn handle_put_third_party_job_success_result(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    succeed(svc, ctx, input, Family::ThirdParty).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureDetails {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    external_execution_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureInput {
    job_id: String,
    failure_details: FailureDetails,
    client_token: Option<String>,
}

async fn fail(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
    family: Family,
) -> Reply {
    let input: FailureInput = from_value(input)?;
    if family == Family::Job {
        if let Some(rule) = find_rule(svc, ctx, &input.job_id)? {
            let summary = input.failure_details.message;
            rule_outcome(svc, rule, false, summary).await?;
            return reply(&json!({}));
        }
    }
    let found = find(svc, ctx, &input.job_id, family)?;
    let details = input.failure_details;
    let op = JobOp::Fail {
        error: ErrorDetails {
            code: details.kind,
            message: details.message,
        },
        external_execution_id: details.external_execution_id,
        client_token: input.client_token,
    };
    send(svc, &found, &input.job_id, op).await?;
    reply(&json!({}))
}

pub(super) async fn handle_put_job_failure_result(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    fail(svc, ctx, input, Family::Job).await
}

pub(super) async fn handle_put_third_party_job_failure_result(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    fail(svc, ctx, input, Family::ThirdParty).await
}
