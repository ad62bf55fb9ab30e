//! The CodePipeline API: each request is parsed once into an [`Operation`], checked against the
//! service model, then dispatched once to its `handle_*` function.
//!
//! Only this layer knows AWS error codes: aggregate refusals, validation failures and store
//! errors are mapped here.

mod action_types;
mod executions;
pub mod jobs;
mod pipelines;
mod tags;
mod webhooks;

pub use webhooks::receive as receive_webhook;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::Value;

use super::actors::CommandError;
use super::pipeline::Refusal;
use super::validate::Invalid;
use super::CodePipelineService;
use crate::aws::service::{self, operations};
use crate::aws::{json, AwsError, RequestContext};

/// What a handler answers: the JSON body, or an AWS error.
pub type Reply = Result<Bytes, AwsError>;

fn reply(value: &Value) -> Reply {
    reply_with(value)
}

fn reply_with(value: &impl serde::Serialize) -> Reply {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| AwsError::internal(e.to_string()))
}

operations!(
    /// Every operation of the CodePipeline model, `2015-07-09`.
    Operation {
    AcknowledgeJob,
    AcknowledgeThirdPartyJob,
    CreateCustomActionType,
    CreatePipeline,
    DeleteCustomActionType,
    DeletePipeline,
    DeleteWebhook,
    DeregisterWebhookWithThirdParty,
    DisableStageTransition,
    EnableStageTransition,
    GetActionType,
    GetJobDetails,
    GetPipeline,
    GetPipelineExecution,
    GetPipelineState,
    GetThirdPartyJobDetails,
    ListActionExecutions,
    ListActionTypes,
    ListDeployActionExecutionTargets,
    ListPipelineExecutions,
    ListPipelines,
    ListRuleExecutions,
    ListRuleTypes,
    ListTagsForResource,
    ListWebhooks,
    OverrideStageCondition,
    PollForJobs,
    PollForThirdPartyJobs,
    PutActionRevision,
    PutApprovalResult,
    PutJobFailureResult,
    PutJobSuccessResult,
    PutThirdPartyJobFailureResult,
    PutThirdPartyJobSuccessResult,
    PutWebhook,
    RegisterWebhookWithThirdParty,
    RetryStageExecution,
    RollbackStage,
    StartPipelineExecution,
    StopPipelineExecution,
    TagResource,
    UntagResource,
    UpdateActionType,
    UpdatePipeline,
    }
);

/// Serves one CodePipeline request: `target` is the `X-Amz-Target` header, `body` the JSON.
pub async fn handle(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    service::respond(ctx, target, serve(svc, ctx, target, body).await)
}

/// One operation called in-process (CloudFormation's providers), with AWS's JSON input: the
/// same path a client's request takes.
pub async fn call(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", svc.model.target_prefix);
    let out = serve(svc, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

async fn serve(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Reply {
    let served = Operation::from_name;
    let op = service::operation("CodePipeline", svc.model, target, served)?;
    let input = json::parse_body(body)?;
    // Tag operations name a malformed ARN with their own code, before the model's pattern check.
    if matches!(
        op,
        Operation::TagResource | Operation::UntagResource | Operation::ListTagsForResource
    ) {
        tags::check_arn(&input)?;
    }
    svc.model.validate_input(op.name(), &input)?;
    use Operation::*;
    match op {
        CreatePipeline => pipelines::handle_create_pipeline(svc, ctx, input).await,
        GetPipeline => pipelines::handle_get_pipeline(svc, ctx, input),
        UpdatePipeline => pipelines::handle_update_pipeline(svc, ctx, input).await,
        DeletePipeline => pipelines::handle_delete_pipeline(svc, ctx, input).await,
        ListPipelines => pipelines::handle_list_pipelines(svc, ctx, input),
        TagResource => tags::handle_tag_resource(svc, input).await,
        RetryStageExecution => executions::handle_retry_stage_execution(svc, ctx, input).await,
        RollbackStage => executions::handle_rollback_stage(svc, ctx, input).await,
        ListRuleTypes => executions::handle_list_rule_types(input),
        ListRuleExecutions => executions::handle_list_rule_executions(svc, ctx, input),
        OverrideStageCondition => {
            executions::handle_override_stage_condition(svc, ctx, input).await
        }
        ListDeployActionExecutionTargets => {
            executions::handle_list_deploy_action_execution_targets(svc, ctx, input)
        }
        UntagResource => tags::handle_untag_resource(svc, input).await,
        ListTagsForResource => tags::handle_list_tags_for_resource(svc, input),
        ListActionTypes => action_types::handle_list_action_types(svc, ctx, input),
        CreateCustomActionType => {
            action_types::handle_create_custom_action_type(svc, ctx, input).await
        }
        DeleteCustomActionType => {
            action_types::handle_delete_custom_action_type(svc, ctx, input).await
        }
        GetActionType => action_types::handle_get_action_type(svc, input),
        PollForJobs => jobs::handle_poll_for_jobs(svc, ctx, input),
        PollForThirdPartyJobs => jobs::handle_poll_for_third_party_jobs(svc, ctx, input),
        AcknowledgeJob => jobs::handle_acknowledge_job(svc, ctx, input).await,
        AcknowledgeThirdPartyJob => jobs::handle_acknowledge_third_party_job(svc, ctx, input).await,
        GetJobDetails => jobs::handle_get_job_details(svc, ctx, input),
        GetThirdPartyJobDetails => jobs::handle_get_third_party_job_details(svc, ctx, input),
        PutJobSuccessResult => jobs::handle_put_job_success_result(svc, ctx, input).await,
        PutJobFailureResult => jobs::handle_put_job_failure_result(svc, ctx, input).await,
        PutThirdPartyJobSuccessResult => {
            jobs::handle_put_third_party_job_success_result(svc, ctx, input).await
        }
        PutThirdPartyJobFailureResult => {
            jobs::handle_put_third_party_job_failure_result(svc, ctx, input).await
        }
        UpdateActionType => action_types::handle_update_action_type(svc, input),
        StartPipelineExecution => {
            executions::handle_start_pipeline_execution(svc, ctx, input).await
        }
        GetPipelineExecution => executions::handle_get_pipeline_execution(svc, ctx, input),
        ListPipelineExecutions => executions::handle_list_pipeline_executions(svc, ctx, input),
        ListActionExecutions => executions::handle_list_action_executions(svc, ctx, input),
        GetPipelineState => executions::handle_get_pipeline_state(svc, ctx, input),
        PutApprovalResult => executions::handle_put_approval_result(svc, ctx, input).await,
        StopPipelineExecution => executions::handle_stop_pipeline_execution(svc, ctx, input).await,
        DisableStageTransition => {
            executions::handle_set_stage_transition(svc, ctx, input, false).await
        }
        EnableStageTransition => {
            executions::handle_set_stage_transition(svc, ctx, input, true).await
        }
        PutActionRevision => executions::handle_put_action_revision(svc, ctx, input).await,
        PutWebhook => webhooks::handle_put_webhook(svc, ctx, input).await,
        ListWebhooks => webhooks::handle_list_webhooks(svc, ctx, input),
        DeleteWebhook => webhooks::handle_delete_webhook(svc, ctx, input).await,
        RegisterWebhookWithThirdParty => {
            webhooks::handle_register_webhook(svc, ctx, input, true).await
        }
        DeregisterWebhookWithThirdParty => {
            webhooks::handle_register_webhook(svc, ctx, input, false).await
        }
    }
}

/// Maps a refused declaration to AWS's error codes.
fn invalid(err: Invalid) -> AwsError {
    match err {
        Invalid::Structure(m) => AwsError::new("InvalidStructureException", m),
        Invalid::Stage(m) => AwsError::new("InvalidStageDeclarationException", m),
        Invalid::Action(m) => AwsError::new("InvalidActionDeclarationException", m),
        Invalid::Field(m) => AwsError::validation(m),
    }
}

/// Maps a command failure; `not_found` is the error this operation answers for a missing pipeline.
fn command_error(err: CommandError, name: &str, account: &str, not_found: &str) -> AwsError {
    match err {
        CommandError::Refused(Refusal::NameInUse) => AwsError::new(
            "PipelineNameInUseException",
            format!("A pipeline with the name '{name}' already exists in account '{account}'"),
        ),
        CommandError::Refused(Refusal::NotFound) => not_found_error(not_found, name, account),
        CommandError::Refused(Refusal::TooManyTags) => AwsError::new(
            "TooManyTagsException",
            format!(
                "Tag limit exceeded: a resource can have at most {} tags",
                super::pipeline::MAX_TAGS
            ),
        ),
        CommandError::Refused(Refusal::StageNotFound(stage)) => AwsError::new(
            "StageNotFoundException",
            format!("Stage {stage} does not exist in pipeline {name}"),
        ),
        CommandError::Refused(Refusal::VariablesOnV1) => {
            AwsError::validation("Pipeline variables can only be given to pipelines of type V2")
        }
        CommandError::Refused(Refusal::UndeclaredVariable(variable)) => AwsError::validation(
            format!("Pipeline variable {variable} is not declared in pipeline {name}"),
        ),
        CommandError::Store(e) => AwsError::internal(e.to_string()),
        CommandError::Unavailable(e) => {
            AwsError::internal(format!("pipeline actor unavailable: {e}"))
        }
        CommandError::ExecutionRefused(refusal) => {
            AwsError::internal(format!("the execution refused the command: {refusal:?}"))
        }
    }
}

fn not_found_error(code: &str, name: &str, account: &str) -> AwsError {
    let message = if code == "PipelineNotFoundException" {
        format!("Account '{account}' does not have a pipeline with name '{name}'")
    } else {
        format!(
            "The account with id '{account}' does not include a pipeline with the name '{name}'"
        )
    };
    AwsError::new(code, message)
}

/// Pagination tokens (`crate::aws::pagination`) with CodePipeline's error for a bad one.
pub mod token {
    use crate::aws::AwsError;

    pub use crate::aws::pagination::encode;

    /// The error for a token this server did not give.
    pub fn invalid() -> AwsError {
        AwsError::new("InvalidNextTokenException", "The next token was specified in an invalid format. Make sure that the next token you provide is the token returned by a previous call.")
    }

    /// The position a token resumes after; `InvalidNextTokenException` for anything else.
    pub fn decode(token: &str) -> Result<String, AwsError> {
        crate::aws::pagination::decode(token).ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn every_operation_of_the_model_is_routed() {
        let model = crate::codepipeline::model();
        assert_eq!(model.operations().len(), Operation::ALL.len());
        for name in model.operations() {
            let op = Operation::from_name(name).unwrap_or_else(|| panic!("{name} is not routed"));
            assert_eq!(op.name(), name);
        }
    }
}
