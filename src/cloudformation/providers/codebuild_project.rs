//! `AWS::CodeBuild::Project`: CloudFormation's properties (`Name` made from the logical id when
//! absent, `Source`, `Artifacts`, `Environment`, `ServiceRole`, …) as CodeBuild's
//! CreateProject/UpdateProject input; attribute `Arn`.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{camel, changed, text, typed, Made, Provider, Scope, Types, Updated};

/// How CodeBuild's input types the members CloudFormation may write otherwise.
const TYPES: Types = Types {
    strings: &[
        "name",
        "value",
        "buildspec",
        "location",
        "image",
        "sourceVersion",
    ],
    numbers: &[
        "timeoutInMinutes",
        "queuedTimeoutInMinutes",
        "gitCloneDepth",
        "concurrentBuildLimit",
    ],
    booleans: &[
        "privilegedMode",
        "insecureSsl",
        "reportBuildStatus",
        "encryptionDisabled",
        "overrideArtifactName",
        "badgeEnabled",
        "fetchSubmodules",
    ],
};

/// The provider.
pub struct Project;

/// Where CloudFormation's names are not CodeBuild's in lower camel case.
const RENAMES: &[(&str, &str)] = &[("BuildSpec", "buildspec"), ("ServiceRole", "serviceRole")];

/// CloudFormation's own properties, which CodeBuild's API has not.
const CLOUDFORMATION_ONLY: &[&str] = &["Triggers", "Visibility", "ResourceAccessRole"];

fn input(name: &str, props: &Value) -> Value {
    let mut props = props.clone();
    if let Some(map) = props.as_object_mut() {
        for key in CLOUDFORMATION_ONLY {
            map.remove(*key);
        }
    }
    let mut input = typed(&camel(&props, &[], RENAMES), &TYPES);
    input["name"] = name.into();
    input
}

fn made(scope: &Scope<'_>, name: &str) -> Made {
    let arn = format!(
        "arn:aws:codebuild:{}:{}:project/{name}",
        scope.ctx.region, scope.ctx.account_id
    );
    Made {
        physical_id: name.to_string(),
        attributes: [("Arn".to_string(), json!(arn))].into(),
    }
}

impl Provider for Project {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "Name").unwrap_or_else(|| {
                let generated = super::generated("", scope.logical, 64);
                generated.trim_start_matches('-').to_string()
            });
            scope
                .call("codebuild", "CreateProject", input(&name, props))
                .await?;
            Ok(made(scope, &name))
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
            scope
                .call("codebuild", "UpdateProject", input(physical_id, new))
                .await?;
            Ok(Updated::InPlace(made(scope, physical_id)))
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
                .call("codebuild", "DeleteProject", json!({ "name": physical_id }))
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["Name"])
    }
}
