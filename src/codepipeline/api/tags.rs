//! TagResource, UntagResource, ListTagsForResource.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{command_error, not_found_error, reply, token, Reply};
use crate::aws::{json::from_value, AwsError};
use crate::codepipeline::custom_types::CustomTypeCommand;
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::model::ActionTypeId;
use crate::codepipeline::pipeline::{PipelineCommand, Tag};
use crate::codepipeline::CodePipelineService;

/// A pipeline named by its ARN.
struct PipelineArn {
    region: String,
    account: String,
    name: String,
}

fn invalid_arn(arn: &str) -> AwsError {
    AwsError::new(
        "InvalidArnException",
        format!("The Amazon Resource Name (ARN) {arn} is not valid"),
    )
}

fn parse_arn(arn: &str) -> Result<PipelineArn, AwsError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "codepipeline"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty();
    if !valid {
        return Err(invalid_arn(arn));
    }
    Ok(PipelineArn {
        region: parts[3].to_string(),
        account: parts[4].to_string(),
        name: parts[5].to_string(),
    })
}

/// Refuses a malformed `resourceArn` with `InvalidArnException`.
pub(super) fn check_arn(input: &Value) -> Result<(), AwsError> {
    match input.get("resourceArn") {
        Some(Value::String(arn)) => parse_arn(arn).map(|_| ()),
        _ => Ok(()),
    }
}

/// Refuses tag keys in the `aws:` namespace, which AWS reserves for itself.
pub(super) fn check_tag_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), AwsError> {
    for key in keys {
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::new(
                "InvalidTagsException",
                format!(
                    "Tag key '{key}' is not valid: keys starting with 'aws:' are reserved for AWS"
                ),
            ));
        }
    }
    Ok(())
}

/// A custom action type named by its ARN (`…:actiontype:Custom/CATEGORY/PROVIDER/VERSION`), if
/// the ARN names one; `ResourceNotFoundException` when it does not exist.
fn custom_type_of(
    svc: &CodePipelineService,
    arn: &str,
) -> Result<Option<(PipelineArn, ActionTypeId)>, AwsError> {
    let parsed = parse_arn(arn)?;
    let Some(rest) = parsed.name.strip_prefix("actiontype:") else {
        return Ok(None);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let id = match parts.as_slice() {
        [owner, category, provider, version] => ActionTypeId {
            category: category.to_string(),
            owner: owner.to_string(),
            provider: provider.to_string(),
            version: version.to_string(),
        },
        _ => return Err(invalid_arn(arn)),
    };
    let exists = svc
        .custom_types
        .live(&parsed.account, &parsed.region, &id)
        .is_some();
    if !exists {
        return Err(AwsError::new(
            "ResourceNotFoundException",
            format!("The action type {arn} does not exist"),
        ));
    }
    Ok(Some((parsed, id)))
}

/// A webhook named by its ARN (`…:webhook:NAME`), if the ARN names one;
/// `ResourceNotFoundException` when it does not exist.
fn webhook_of(
    svc: &CodePipelineService,
    arn: &str,
) -> Result<Option<(PipelineArn, crate::codepipeline::webhooks::Webhook)>, AwsError> {
    let parsed = parse_arn(arn)?;
    let Some(name) = parsed.name.strip_prefix("webhook:") else {
        return Ok(None);
    };
    let hook = svc
        .webhooks
        .read(&parsed.account, &parsed.region, |all| {
            all.get(name).cloned()
        })
        .ok_or_else(|| {
            AwsError::new(
                "ResourceNotFoundException",
                format!("The webhook {arn} does not exist"),
            )
        })?;
    Ok(Some((parsed, hook)))
}

/// Records a tag change of a webhook.
async fn change_webhook_tags(
    svc: &CodePipelineService,
    arn: &PipelineArn,
    event: crate::codepipeline::webhooks::WebhookEvent,
) -> Reply {
    svc.webhooks
        .record(&arn.account, &arn.region, |_| Ok::<_, ()>(vec![event]))
        .await
        .map_err(|e| AwsError::internal(format!("the tags were not recorded: {e:?}")))?;
    reply(&json!({}))
}

/// Tags or untags a custom action type.
async fn change_custom_tags(
    svc: &CodePipelineService,
    arn: &PipelineArn,
    id: &ActionTypeId,
    command: CustomTypeCommand,
) -> Reply {
    svc.custom_types
        .execute(&arn.account, &arn.region, id, command)
        .await
        .map_err(|e| super::action_types::custom_failure(e, id))?;
    reply(&json!({}))
}

fn key_of(svc: &CodePipelineService, arn: &str) -> Result<(PipelineArn, PipelineKey), AwsError> {
    let parsed = parse_arn(arn)?;
    let key = PipelineKey::new(&parsed.account, &parsed.region, &parsed.name);
    if svc.views.with(&key.stream(), |_| ()).is_none() {
        return Err(not_found_error(
            "ResourceNotFoundException",
            &parsed.name,
            &parsed.account,
        ));
    }
    Ok((parsed, key))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagInput {
    resource_arn: String,
    tags: Vec<Tag>,
}

pub(super) async fn handle_tag_resource(svc: &CodePipelineService, input: Value) -> Reply {
    let input: TagInput = from_value(input)?;
    check_tag_keys(input.tags.iter().map(|t| t.key.as_str()))?;
    if let Some((arn, id)) = custom_type_of(svc, &input.resource_arn)? {
        return change_custom_tags(svc, &arn, &id, CustomTypeCommand::Tag(input.tags)).await;
    }
    if let Some((arn, hook)) = webhook_of(svc, &input.resource_arn)? {
        if crate::codepipeline::pipeline::merged(&hook.tags, &input.tags).len()
            > crate::codepipeline::pipeline::MAX_TAGS
        {
            return Err(AwsError::new(
                "TooManyTagsException",
                format!(
                    "Tag limit exceeded: a resource can have at most {} tags",
                    crate::codepipeline::pipeline::MAX_TAGS
                ),
            ));
        }
        let event = crate::codepipeline::webhooks::WebhookEvent::Tagged(
            hook.name().to_string(),
            input.tags,
        );
        return change_webhook_tags(svc, &arn, event).await;
    }
    let (arn, key) = key_of(svc, &input.resource_arn)?;
    svc.registry
        .execute(&key, PipelineCommand::Tag(input.tags))
        .await
        .map_err(|e| command_error(e, &arn.name, &arn.account, "ResourceNotFoundException"))?;
    reply(&json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub(super) async fn handle_untag_resource(svc: &CodePipelineService, input: Value) -> Reply {
    let input: UntagInput = from_value(input)?;
    check_tag_keys(input.tag_keys.iter().map(String::as_str))?;
    if let Some((arn, id)) = custom_type_of(svc, &input.resource_arn)? {
        return change_custom_tags(svc, &arn, &id, CustomTypeCommand::Untag(input.tag_keys)).await;
    }
    if let Some((arn, hook)) = webhook_of(svc, &input.resource_arn)? {
        let event = crate::codepipeline::webhooks::WebhookEvent::Untagged(
            hook.name().to_string(),
            input.tag_keys,
        );
        return change_webhook_tags(svc, &arn, event).await;
    }
    let (arn, key) = key_of(svc, &input.resource_arn)?;
    svc.registry
        .execute(&key, PipelineCommand::Untag(input.tag_keys))
        .await
        .map_err(|e| command_error(e, &arn.name, &arn.account, "ResourceNotFoundException"))?;
    reply(&json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTagsInput {
    resource_arn: String,
    next_token: Option<String>,
    max_results: Option<usize>,
}

pub(super) fn handle_list_tags_for_resource(svc: &CodePipelineService, input: Value) -> Reply {
    let input: ListTagsInput = from_value(input)?;
    let webhook = webhook_of(svc, &input.resource_arn)?;
    let tags = match custom_type_of(svc, &input.resource_arn)? {
        Some((arn, id)) => svc
            .custom_types
            .live(&arn.account, &arn.region, &id)
            .map(|t| t.tags)
            .unwrap_or_default(),
        None if webhook.is_some() => webhook.map(|(_, h)| h.tags).unwrap_or_default(),
        None => {
            let (_, key) = key_of(svc, &input.resource_arn)?;
            svc.views
                .with(&key.stream(), |v| v.tags.clone())
                .unwrap_or_default()
        }
    };
    let start = match input.next_token.as_deref().map(token::decode).transpose()? {
        Some(after) => tags
            .iter()
            .position(|t| t.key == after)
            .map(|i| i + 1)
            .ok_or_else(token::invalid)?,
        None => 0,
    };
    let limit = input.max_results.unwrap_or(usize::MAX);
    let page: Vec<&Tag> = tags.iter().skip(start).take(limit).collect();
    let mut out = json!({ "tags": page });
    if start + page.len() < tags.len() {
        if let Some(last) = page.last() {
            out["nextToken"] = token::encode(&last.key).into();
        }
    }
    reply(&out)
}
