//! `AWS::CodePipeline::CustomActionType` (`Category`, `Provider`, `Version`, `Settings`,
//! `ConfigurationProperties`, artifact details, `Tags`; any change replaces it, as on AWS) and
//! `AWS::CodePipeline::Webhook` (`Name`, `TargetPipeline`, `TargetAction`, `Filters`,
//! `Authentication`, `AuthenticationConfiguration`, `RegisterWithThirdParty`; attribute `Url`).

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{camel, changed, text, typed, Made, Provider, Scope, Types, Updated};

/// How CodePipeline's custom action types type the members CloudFormation may write otherwise.
const TYPES: Types = Types {
    strings: &["version", "name", "description"],
    numbers: &["minimumCount", "maximumCount"],
    booleans: &["required", "key", "secret", "queryable"],
};

/// `AWS::CodePipeline::CustomActionType`.
pub struct CustomActionType;

impl Provider for CustomActionType {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let input = typed(&camel(props, &[], &[]), &TYPES);
            scope
                .call("codepipeline", "CreateCustomActionType", input)
                .await?;
            let id = ["Category", "Provider", "Version"]
                .map(|k| text(props, k).unwrap_or_default())
                .join("|");
            Ok(Made {
                physical_id: id,
                attributes: Default::default(),
            })
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        _: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let input = typed(
                &json!({"category": props["Category"], "provider": props["Provider"], "version": props["Version"]}),
                &TYPES,
            );
            scope
                .call("codepipeline", "DeleteCustomActionType", input)
                .await
                .map(drop)
        })
    }

    fn replaces(&self, _: &Value, _: &Value) -> bool {
        true
    }
}

/// `AWS::CodePipeline::Webhook`.
pub struct Webhook;

async fn put(scope: &Scope<'_>, name: &str, props: &Value) -> Result<Made, String> {
    let mut definition = props.clone();
    if let Some(map) = definition.as_object_mut() {
        map.remove("RegisterWithThirdParty");
        map.remove("TargetPipelineVersion");
    }
    // AuthenticationConfiguration's members are PascalCase in the API too.
    let mut webhook = camel(&definition, &["AuthenticationConfiguration"], &[]);
    webhook["name"] = name.into();
    let answer = scope
        .call("codepipeline", "PutWebhook", json!({ "webhook": webhook }))
        .await?;
    if props["RegisterWithThirdParty"].as_bool() == Some(true)
        || text(props, "RegisterWithThirdParty").as_deref() == Some("true")
    {
        scope
            .call(
                "codepipeline",
                "RegisterWebhookWithThirdParty",
                json!({ "webhookName": name }),
            )
            .await?;
    }
    Ok(Made {
        physical_id: name.to_string(),
        attributes: [("Url".to_string(), answer["webhook"]["url"].clone())].into(),
    })
}

impl Provider for Webhook {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "Name").unwrap_or_else(|| scope.generated_name(100));
            put(scope, &name, props).await
        })
    }

    fn update<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        old: &'a Value,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async move {
            if self.replaces(old, new) {
                return Ok(Updated::Replace);
            }
            Ok(Updated::InPlace(put(scope, physical_id, new).await?))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            scope
                .call(
                    "codepipeline",
                    "DeleteWebhook",
                    json!({ "name": physical_id }),
                )
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["Name"])
    }
}
