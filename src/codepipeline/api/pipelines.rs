//! CreatePipeline, GetPipeline, UpdatePipeline, DeletePipeline, ListPipelines.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{command_error, invalid, not_found_error, reply, reply_with, token, Reply};
use crate::aws::{json::from_value, now_epoch, AwsError, RequestContext};
use crate::codepipeline::ids::{pipeline_stream, PipelineKey};
use crate::codepipeline::model::Declaration;
use crate::codepipeline::pipeline::{PipelineCommand, PipelineEvent, Tag};
use crate::codepipeline::views::pipeline_version;
use crate::codepipeline::{validate, CodePipelineService};

#[derive(Deserialize)]
struct DeclarationInput {
    pipeline: Value,
    #[serde(default)]
    tags: Vec<Tag>,
}

fn pipeline_name(declaration: &Value) -> String {
    declaration["name"].as_str().unwrap_or_default().to_string()
}

/// The ARN of a pipeline.
pub fn pipeline_arn(ctx: &RequestContext, name: &str) -> String {
    format!(
        "arn:aws:codepipeline:{}:{}:{name}",
        ctx.region, ctx.account_id
    )
}

/// Checks a declaration of the caller's account against AWS's action types and its custom ones.
fn check_declaration(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    declaration: Value,
) -> Result<Declaration, AwsError> {
    let custom = |id: &crate::codepipeline::model::ActionTypeId, region: Option<&str>| {
        let region = region.unwrap_or(&ctx.region);
        svc.custom_types.live(&ctx.account_id, region, id)
    };
    let types = validate::Types {
        actions: &svc.actions,
        custom: &custom,
    };
    validate::check_and_normalize(declaration, &types).map_err(invalid)
}

/// With `iam_enforce_roles`, the role must exist and trust CodePipeline, as on AWS.
fn check_role(svc: &CodePipelineService, declaration: &Declaration) -> Result<(), AwsError> {
    if !svc.enforce_roles {
        return Ok(());
    }
    let arn = declaration.role_arn.as_deref().unwrap_or_default();
    let trusted = svc
        .iam
        .role_by_arn(arn)
        .is_some_and(|r| r.trusts("codepipeline.amazonaws.com"));
    if trusted {
        Ok(())
    } else {
        Err(AwsError::new(
            "InvalidStructureException",
            format!("CodePipeline is not authorized to perform AssumeRole on role {arn}"),
        ))
    }
}

pub(super) async fn handle_create_pipeline(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: DeclarationInput = from_value(input)?;
    super::tags::check_tag_keys(input.tags.iter().map(|t| t.key.as_str()))?;
    let declaration = check_declaration(svc, ctx, input.pipeline)?;
    check_role(svc, &declaration)?;
    let name = declaration.name.clone();
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &name);
    let command = PipelineCommand::Create {
        arn: pipeline_arn(ctx, &name),
        declaration,
        tags: input.tags,
        at: now_epoch(),
    };
    // As on AWS, a new pipeline starts running: the actor starts its first execution with it.
    let events = svc
        .registry
        .execute(&key, command)
        .await
        .map_err(|e| command_error(e, &name, &ctx.account_id, "PipelineNotFoundException"))?;
    match events.first() {
        Some(PipelineEvent::Created(c)) => {
            #[derive(Serialize)]
            struct Output<'a> {
                pipeline: &'a Declaration,
                #[serde(skip_serializing_if = "<[Tag]>::is_empty")]
                tags: &'a [Tag],
            }
            reply_with(&Output {
                pipeline: &c.declaration,
                tags: &c.tags,
            })
        }
        _ => Err(AwsError::internal("CreatePipeline recorded no creation")),
    }
}

#[derive(Deserialize)]
struct GetPipelineInput {
    name: String,
    version: Option<u64>,
}

pub(super) fn handle_get_pipeline(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: GetPipelineInput = from_value(input)?;
    let stream = pipeline_stream(&ctx.account_id, &ctx.region, &input.name);
    let not_found = || not_found_error("PipelineNotFoundException", &input.name, &ctx.account_id);
    let (current, bytes) = svc
        .views
        .with(&stream, |v| (v.version, v.get_output.clone()))
        .ok_or_else(not_found)?;
    match input.version {
        None => Ok(bytes),
        Some(v) if v == current => Ok(bytes),
        Some(v) => {
            let version_missing = || {
                AwsError::new(
                    "PipelineVersionNotFoundException",
                    format!("Pipeline '{}' does not have version '{v}'", input.name),
                )
            };
            if v > current {
                return Err(version_missing());
            }
            pipeline_version(svc.store.as_ref(), &stream, v)
                .map_err(|e| AwsError::internal(e.to_string()))?
                .ok_or_else(version_missing)
        }
    }
}

pub(super) async fn handle_update_pipeline(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: DeclarationInput = from_value(input)?;
    let name = pipeline_name(&input.pipeline);
    let stream = pipeline_stream(&ctx.account_id, &ctx.region, &name);
    // A missing pipeline is reported before the declaration's structure, as AWS does.
    if svc.views.with(&stream, |_| ()).is_none() {
        return Err(not_found_error(
            "ResourceNotFoundException",
            &name,
            &ctx.account_id,
        ));
    }
    let declaration = check_declaration(svc, ctx, input.pipeline)?;
    check_role(svc, &declaration)?;
    let command = PipelineCommand::Update {
        declaration,
        at: now_epoch(),
    };
    // The actor cancels the executions running the old structure before it answers.
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &name);
    let events = svc
        .registry
        .execute(&key, command)
        .await
        .map_err(|e| command_error(e, &name, &ctx.account_id, "ResourceNotFoundException"))?;
    match events.first() {
        Some(PipelineEvent::Updated(u)) => {
            #[derive(Serialize)]
            struct Output<'a> {
                pipeline: &'a Declaration,
            }
            reply_with(&Output {
                pipeline: &u.declaration,
            })
        }
        _ => Err(AwsError::internal("UpdatePipeline recorded no update")),
    }
}

#[derive(Deserialize)]
struct NameInput {
    name: String,
}

pub(super) async fn handle_delete_pipeline(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: NameInput = from_value(input)?;
    // The actor cancels the running executions before it records the deletion.
    let key = PipelineKey::new(&ctx.account_id, &ctx.region, &input.name);
    svc.registry
        .execute(&key, PipelineCommand::Delete { at: now_epoch() })
        .await
        .map_err(|e| command_error(e, &input.name, &ctx.account_id, "PipelineNotFoundException"))?;
    reply(&json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPipelinesInput {
    next_token: Option<String>,
    max_results: Option<usize>,
}

/// ListPipelines answers at most this many summaries when `maxResults` is not given.
const DEFAULT_PAGE: usize = 100;

pub(super) fn handle_list_pipelines(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: ListPipelinesInput = from_value(input)?;
    let after = input.next_token.as_deref().map(token::decode).transpose()?;
    let limit = input.max_results.unwrap_or(DEFAULT_PAGE);
    let (pipelines, next) = svc
        .views
        .list(&ctx.account_id, &ctx.region, after.as_deref(), limit);
    let mut out = Vec::with_capacity(pipelines.len() + 64);
    out.extend_from_slice(b"{\"pipelines\":");
    out.extend_from_slice(&pipelines);
    if let Some(last) = next {
        out.extend_from_slice(b",\"nextToken\":");
        out.extend_from_slice(&serde_json::to_vec(&token::encode(&last)).unwrap_or_default());
    }
    out.push(b'}');
    Ok(out.into())
}
