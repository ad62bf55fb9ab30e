//! `AWS::IAM::Policy` (`PolicyName`, `PolicyDocument`, `Roles`: put inline on each role) and
//! `AWS::IAM::ManagedPolicy` (`ManagedPolicyName`, `PolicyDocument`, `Roles`: recorded as a
//! policy ARN attached to each role; IAM here keeps no managed policy documents).

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, document, text, Made, Provider, Scope, Updated};

fn roles(props: &Value) -> Vec<String> {
    props["Roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// `AWS::IAM::Policy`.
pub struct InlinePolicy;

async fn put_inline(scope: &Scope<'_>, props: &Value) -> Result<(), String> {
    let name = text(props, "PolicyName").ok_or("Property PolicyName cannot be empty.")?;
    let doc = document(&props["PolicyDocument"]);
    for role in roles(props) {
        scope
            .call(
                "iam",
                "PutRolePolicy",
                json!({"RoleName": role, "PolicyName": name, "PolicyDocument": doc}),
            )
            .await?;
    }
    Ok(())
}

async fn delete_inline(scope: &Scope<'_>, props: &Value, keep: &[String]) -> Result<(), String> {
    let Some(name) = text(props, "PolicyName") else {
        return Ok(());
    };
    for role in roles(props).into_iter().filter(|r| !keep.contains(r)) {
        let gone = scope
            .call(
                "iam",
                "DeleteRolePolicy",
                json!({"RoleName": role, "PolicyName": name}),
            )
            .await;
        // A role deleted before its policy took the policy with it.
        if let Err(e) = gone {
            if !e.contains("NoSuchEntity") {
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Provider for InlinePolicy {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            put_inline(scope, props).await?;
            Ok(Made {
                physical_id: scope.generated_name(64),
                attributes: Default::default(),
            })
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
            let keep = if changed(old, new, &["PolicyName"]) {
                Vec::new()
            } else {
                roles(new)
            };
            delete_inline(scope, old, &keep).await?;
            put_inline(scope, new).await?;
            Ok(Updated::InPlace(Made {
                physical_id: physical_id.to_string(),
                attributes: Default::default(),
            }))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        _: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { delete_inline(scope, props, &[]).await })
    }

    fn replaces(&self, _: &Value, _: &Value) -> bool {
        false
    }
}

/// `AWS::IAM::ManagedPolicy`.
pub struct ManagedPolicy;

fn policy_arn(scope: &Scope<'_>, props: &Value) -> String {
    let name = text(props, "ManagedPolicyName").unwrap_or_else(|| scope.generated_name(128));
    let path = text(props, "Path").unwrap_or_else(|| "/".into());
    format!("arn:aws:iam::{}:policy{path}{name}", scope.ctx.account_id)
}

async fn attach(
    scope: &Scope<'_>,
    arn: &str,
    roles: &[String],
    attach: bool,
) -> Result<(), String> {
    let operation = if attach {
        "AttachRolePolicy"
    } else {
        "DetachRolePolicy"
    };
    for role in roles {
        let done = scope
            .call(
                "iam",
                operation,
                json!({"RoleName": role, "PolicyArn": arn}),
            )
            .await;
        if let Err(e) = done {
            if attach || !e.contains("NoSuchEntity") {
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Provider for ManagedPolicy {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let arn = policy_arn(scope, props);
            let _ = document(&props["PolicyDocument"]);
            attach(scope, &arn, &roles(props), true).await?;
            Ok(Made {
                physical_id: arn.clone(),
                attributes: [("PolicyArn".to_string(), json!(arn))].into(),
            })
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
            let (before, after) = (roles(old), roles(new));
            let gone: Vec<String> = before
                .iter()
                .filter(|r| !after.contains(r))
                .cloned()
                .collect();
            let added: Vec<String> = after
                .iter()
                .filter(|r| !before.contains(r))
                .cloned()
                .collect();
            attach(scope, physical_id, &gone, false).await?;
            attach(scope, physical_id, &added, true).await?;
            Ok(Updated::InPlace(Made {
                physical_id: physical_id.to_string(),
                attributes: [("PolicyArn".to_string(), json!(physical_id))].into(),
            }))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { attach(scope, physical_id, &roles(props), false).await })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["ManagedPolicyName", "Path"])
    }
}
