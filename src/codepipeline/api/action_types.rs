//! ListActionTypes, GetActionType, UpdateActionType, CreateCustomActionType and
//! DeleteCustomActionType.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{reply, Reply};
use crate::aws::json::from_value;
use crate::aws::{now_epoch, AwsError, RequestContext};
use crate::codepipeline::action_types::ActionTypeSpec;
use crate::codepipeline::custom_types::{
    ArtifactCounts, ConfigurationProperty, CustomActionType, CustomTypeCommand, CustomTypeFailure,
    CustomTypeRefusal, Definition, Tag, MAX_PER_REGION,
};
use crate::codepipeline::model::ActionTypeId;
use crate::codepipeline::CodePipelineService;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListActionTypesInput {
    action_owner_filter: Option<String>,
    next_token: Option<String>,
    region_filter: Option<String>,
}

/// Lists the AWS action types codepipeline-local runs and the account's custom action types of
/// the region (`regionFilter`, or the request's). One page holds them all.
pub(super) fn handle_list_action_types(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: ListActionTypesInput = from_value(input)?;
    if let Some(token) = input.next_token.as_deref() {
        // No listing here has a second page, so no token we did not give is valid.
        super::token::decode(token)?;
        return reply(&json!({ "actionTypes": [] }));
    }
    let owner = input.action_owner_filter.as_deref();
    let wanted = |o: &str| owner.is_none_or(|w| w == o);
    let region = input.region_filter.as_deref().unwrap_or(&ctx.region);
    let mut types: Vec<Value> = svc
        .actions
        .runnable()
        .filter(|s| wanted(s.owner))
        .map(|s| s.to_wire())
        .collect();
    if wanted("Custom") {
        types.extend(
            svc.custom_types
                .of(&ctx.account_id, region)
                .iter()
                .map(CustomActionType::to_wire),
        );
    }
    reply(&json!({ "actionTypes": types }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    category: String,
    provider: String,
    version: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    configuration_properties: Vec<ConfigurationProperty>,
    input_artifact_details: ArtifactCounts,
    output_artifact_details: ArtifactCounts,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// The rules AWS applies to a custom action type beyond the model's field constraints.
fn check_definition(d: &Definition) -> Result<(), AwsError> {
    for (what, counts) in [
        ("inputArtifactDetails", d.input_artifact_details),
        ("outputArtifactDetails", d.output_artifact_details),
    ] {
        if counts.minimum_count > counts.maximum_count {
            return Err(AwsError::validation(format!(
                "{what}: minimumCount {} is greater than maximumCount {}",
                counts.minimum_count, counts.maximum_count
            )));
        }
    }
    let mut names = HashSet::new();
    for p in &d.configuration_properties {
        if !names.insert(p.name.as_str()) {
            return Err(AwsError::validation(format!(
                "Configuration property '{}' is declared more than once",
                p.name
            )));
        }
        if p.queryable && (!p.required || p.secret) {
            return Err(AwsError::validation(format!(
                "Configuration property '{}' is queryable, so it must be required and not secret",
                p.name
            )));
        }
    }
    if d.configuration_properties
        .iter()
        .filter(|p| p.queryable)
        .count()
        > 1
    {
        return Err(AwsError::validation(
            "A custom action type can have at most one queryable configuration property",
        ));
    }
    Ok(())
}

pub(super) fn custom_failure(e: CustomTypeFailure, id: &ActionTypeId) -> AwsError {
    let named = format!(
        "category: {}, provider: {}, version: {}",
        id.category, id.provider, id.version
    );
    match e {
        CustomTypeFailure::Refused(CustomTypeRefusal::Exists) => AwsError::validation(format!(
            "A custom action type with {named} already exists with another definition"
        )),
        CustomTypeFailure::Refused(CustomTypeRefusal::DeletedVersion) => {
            AwsError::validation(format!(
                "The custom action type with {named} was deleted: create it with a version that was never used, or with its original definition to restore it"
            ))
        }
        CustomTypeFailure::Refused(CustomTypeRefusal::NotFound) => AwsError::validation(format!(
            "There is no custom action type with {named}"
        )),
        CustomTypeFailure::Refused(CustomTypeRefusal::TooManyTags) => AwsError::new(
            "TooManyTagsException",
            format!(
                "Tag limit exceeded: a resource can have at most {} tags",
                crate::codepipeline::pipeline::MAX_TAGS
            ),
        ),
        CustomTypeFailure::Limit => AwsError::new(
            "LimitExceededException",
            format!("An account can have at most {MAX_PER_REGION} custom action types in a region"),
        ),
        CustomTypeFailure::Store(e) => AwsError::internal(e.to_string()),
    }
}

fn custom_id(category: &str, provider: &str, version: &str) -> ActionTypeId {
    ActionTypeId {
        category: category.into(),
        owner: "Custom".into(),
        provider: provider.into(),
        version: version.into(),
    }
}

pub(super) async fn handle_create_custom_action_type(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: CreateInput = from_value(input)?;
    if input.tags.len() > crate::codepipeline::pipeline::MAX_TAGS {
        return Err(AwsError::new(
            "TooManyTagsException",
            format!(
                "Tag limit exceeded: a resource can have at most {} tags",
                crate::codepipeline::pipeline::MAX_TAGS
            ),
        ));
    }
    super::tags::check_tag_keys(input.tags.iter().map(|t| t.key.as_str()))?;
    let definition = Definition {
        category: input.category,
        provider: input.provider,
        version: input.version,
        settings: input.settings,
        configuration_properties: input.configuration_properties,
        input_artifact_details: input.input_artifact_details,
        output_artifact_details: input.output_artifact_details,
    };
    check_definition(&definition)?;
    let id = custom_id(
        &definition.category,
        &definition.provider,
        &definition.version,
    );
    let new = CustomActionType {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        definition,
        tags: input.tags,
        deleted: false,
        created: now_epoch(),
    };
    let created = svc
        .custom_types
        .execute(
            &ctx.account_id,
            &ctx.region,
            &id,
            CustomTypeCommand::Create(Box::new(new)),
        )
        .await
        .map_err(|e| custom_failure(e, &id))?
        .ok_or_else(|| AwsError::internal("the custom action type was not recorded"))?;
    let mut out = json!({ "actionType": created.to_wire() });
    if !created.tags.is_empty() {
        out["tags"] = json!(created.tags);
    }
    reply(&out)
}

#[derive(Deserialize)]
struct DeleteInput {
    category: String,
    provider: String,
    version: String,
}

pub(super) async fn handle_delete_custom_action_type(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let input: DeleteInput = from_value(input)?;
    let id = custom_id(&input.category, &input.provider, &input.version);
    svc.custom_types
        .execute(&ctx.account_id, &ctx.region, &id, CustomTypeCommand::Delete)
        .await
        .map_err(|e| custom_failure(e, &id))?;
    reply(&json!({}))
}

#[derive(Deserialize)]
struct TypeIdentifier {
    category: String,
    owner: String,
    provider: String,
    version: String,
}

fn not_found(id: &TypeIdentifier) -> AwsError {
    AwsError::new(
        "ActionTypeNotFoundException",
        format!(
            "Action type (category: {}, owner: {}, provider: {}, version: {}) was not found",
            id.category, id.owner, id.provider, id.version
        ),
    )
}

/// The AWS-owned or third-party type with this identity that runs here.
fn runnable<'a>(svc: &'a CodePipelineService, id: &TypeIdentifier) -> Option<&'a ActionTypeSpec> {
    (id.version == "1")
        .then(|| {
            svc.actions
                .runnable()
                .find(|s| s.is(&id.category, &id.owner, &id.provider))
        })
        .flatten()
}

/// The integration-model declaration of a type AWS runs (its executor is AWS's own, shown as a
/// job worker polled by the CodePipeline service principal).
fn declaration_of(spec: &ActionTypeSpec) -> Value {
    let properties: Vec<Value> = spec
        .properties
        .iter()
        .map(|(name, required)| {
            json!({"name": name, "optional": !required, "key": *required,
                   "noEcho": *name == "OAuthToken", "queryable": false})
        })
        .collect();
    json!({
        "executor": {
            "configuration": {
                "jobWorkerExecutorConfiguration": {
                    "pollingServicePrincipals": ["codepipeline.amazonaws.com"]
                }
            },
            "type": "JobWorker"
        },
        "id": {"category": spec.category, "owner": spec.owner, "provider": spec.provider, "version": "1"},
        "inputArtifactDetails": {"minimumCount": spec.inputs.0, "maximumCount": spec.inputs.1},
        "outputArtifactDetails": {"minimumCount": spec.outputs.0, "maximumCount": spec.outputs.1},
        "permissions": {"allowedAccounts": ["*"]},
        "properties": properties,
        "urls": {}
    })
}

pub(super) fn handle_get_action_type(svc: &CodePipelineService, input: Value) -> Reply {
    let id: TypeIdentifier = from_value(input)?;
    let spec = runnable(svc, &id).ok_or_else(|| not_found(&id))?;
    reply(&json!({ "actionType": declaration_of(spec) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    action_type: UpdatedDeclaration,
}

#[derive(Deserialize)]
struct UpdatedDeclaration {
    id: TypeIdentifier,
}

/// UpdateActionType changes types that a provider registered with the integration model; the
/// AWS-owned types here are AWS's own and cannot be changed, and there are no others.
pub(super) fn handle_update_action_type(svc: &CodePipelineService, input: Value) -> Reply {
    let input: UpdateInput = from_value(input)?;
    let id = &input.action_type.id;
    if runnable(svc, id).is_some() {
        return Err(AwsError::new(
            "RequestFailedException",
            format!(
                "Action type {}/{}/{} is owned by AWS and cannot be updated",
                id.category, id.owner, id.provider
            ),
        ));
    }
    Err(not_found(id))
}
