//! `AWS::IAM::Role`: `RoleName` (made from the stack's name when absent), `Path`,
//! `AssumeRolePolicyDocument`, `Description`, `MaxSessionDuration`, `Policies` (inline),
//! `ManagedPolicyArns`, `Tags`; attributes `Arn`, `RoleId`.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, document, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct IamRole;

fn inline(props: &Value) -> BTreeMap<String, String> {
    props["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((text(p, "PolicyName")?, document(&p["PolicyDocument"]))))
        .collect()
}

fn managed(props: &Value) -> Vec<String> {
    props["ManagedPolicyArns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

async fn made(scope: &Scope<'_>, name: &str) -> Result<Made, String> {
    let role = scope
        .call("iam", "GetRole", json!({ "RoleName": name }))
        .await?;
    Ok(Made {
        physical_id: name.to_string(),
        attributes: [
            ("Arn".to_string(), role["Role"]["Arn"].clone()),
            ("RoleId".to_string(), role["Role"]["RoleId"].clone()),
        ]
        .into(),
    })
}

/// Puts the inline policies and attaches the managed ones `new` has and `old` has not (or has
/// otherwise), and removes those `old` has and `new` has not.
async fn policies(scope: &Scope<'_>, name: &str, old: &Value, new: &Value) -> Result<(), String> {
    let (before, after) = (inline(old), inline(new));
    for (policy, doc) in &after {
        if before.get(policy) != Some(doc) {
            scope
                .call(
                    "iam",
                    "PutRolePolicy",
                    json!({"RoleName": name, "PolicyName": policy, "PolicyDocument": doc}),
                )
                .await?;
        }
    }
    for policy in before.keys().filter(|p| !after.contains_key(*p)) {
        scope
            .call(
                "iam",
                "DeleteRolePolicy",
                json!({"RoleName": name, "PolicyName": policy}),
            )
            .await?;
    }
    let (before, after) = (managed(old), managed(new));
    for arn in after.iter().filter(|a| !before.contains(a)) {
        scope
            .call(
                "iam",
                "AttachRolePolicy",
                json!({"RoleName": name, "PolicyArn": arn}),
            )
            .await?;
    }
    for arn in before.iter().filter(|a| !after.contains(a)) {
        scope
            .call(
                "iam",
                "DetachRolePolicy",
                json!({"RoleName": name, "PolicyArn": arn}),
            )
            .await?;
    }
    Ok(())
}

impl Provider for IamRole {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "RoleName").unwrap_or_else(|| scope.generated_name(64));
            let mut input = json!({
                "RoleName": name,
                "AssumeRolePolicyDocument": document(&props["AssumeRolePolicyDocument"]),
            });
            for key in ["Path", "Description", "MaxSessionDuration"] {
                if let Some(v) = text(props, key) {
                    input[key] = v.into();
                }
            }
            if let Some(tags) = props.get("Tags") {
                input["Tags"] = tags.clone();
            }
            scope.call("iam", "CreateRole", input).await?;
            policies(scope, &name, &Value::Null, props).await?;
            made(scope, &name).await
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
            if changed(old, new, &["AssumeRolePolicyDocument"]) {
                scope
                    .call("iam", "UpdateAssumeRolePolicy", json!({"RoleName": physical_id, "PolicyDocument": document(&new["AssumeRolePolicyDocument"])}))
                    .await?;
            }
            policies(scope, physical_id, old, new).await?;
            Ok(Updated::InPlace(made(scope, physical_id).await?))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Policies attached by other resources of the stack are gone by now; these are the
            // role's own.
            policies(scope, physical_id, props, &Value::Null).await?;
            scope
                .call("iam", "DeleteRole", json!({ "RoleName": physical_id }))
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["RoleName", "Path"])
    }
}
