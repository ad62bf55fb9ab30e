//! Resource providers: one file a resource type, behind one trait, each making its resources
//! through the API of the service that serves them (the [`Services`] port: the same code paths
//! a client's requests take), and one registry that knows them all.

mod cdk_metadata;
mod codebuild_project;
mod codepipeline_pipeline;
mod codepipeline_types;
mod ecr_repository;
mod ecs;
mod events_rule;
mod iam_policy;
mod iam_role;
mod lambda_function;
mod recorded;
mod s3_bucket;
mod s3_bucket_policy;
mod ssm_parameter;

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::aws::RequestContext;

/// Why a service refused a call: AWS's code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// The code.
    pub code: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What providers ask of the other services: one operation of a service's API (`s3`, `iam`,
/// `ssm`, `codebuild`, `codepipeline`, `events`, `lambda`), with its input in AWS's JSON shape; its output in AWS's
/// JSON shape, or its error.
pub trait Services: Send + Sync {
    /// Calls `operation` of `service` as `ctx`'s account and region.
    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        service: &'static str,
        operation: &'static str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, CallError>>;
}

/// What a provider works in.
pub struct Scope<'a> {
    /// The account and region, as a request of the stack's.
    pub ctx: &'a RequestContext,
    /// The services.
    pub services: &'a dyn Services,
    /// The stack's name.
    pub stack: &'a str,
    /// The resource's logical id.
    pub logical: &'a str,
}

impl Scope<'_> {
    /// Calls a service, its error as the resource's failure reason.
    pub async fn call(
        &self,
        service: &'static str,
        operation: &'static str,
        input: Value,
    ) -> Result<Value, String> {
        self.services
            .call(self.ctx, service, operation, input)
            .await
            .map_err(|e| e.to_string())
    }

    /// A name as CloudFormation makes one: `stack-logical-RANDOM`, at most `max` characters.
    pub fn generated_name(&self, max: usize) -> String {
        generated(self.stack, self.logical, max)
    }
}

/// `stack-logical-RANDOM` within `max` characters: the stack and logical ids shortened as
/// needed, the 12-character suffix kept.
pub fn generated(stack: &str, logical: &str, max: usize) -> String {
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_uppercase()
        .chars()
        .take(12)
        .collect();
    let room = max.saturating_sub(suffix.len() + 2);
    let stack_room = room
        .saturating_sub(logical.len().min(room / 2))
        .min(stack.len());
    let logical_room = room.saturating_sub(stack_room).min(logical.len());
    format!(
        "{}-{}-{suffix}",
        &stack[..stack_room],
        &logical[..logical_room]
    )
}

/// A resource as made: its physical id and its attributes (for `Fn::GetAtt`).
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    /// The physical id (what `Ref` gives).
    pub physical_id: String,
    /// The attributes.
    pub attributes: BTreeMap<String, Value>,
}

/// What an update does.
pub enum Updated {
    /// Done in place: the resource as it is now.
    InPlace(Made),
    /// The change needs a new resource (made by the engine with `create`, the old one deleted).
    Replace,
}

/// The provider of one resource type.
pub trait Provider: Send + Sync {
    /// Makes the resource from its resolved properties.
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>>;

    /// Changes the resource from `old` properties to `new` ones (by default: any change
    /// replaces it).
    fn update<'a>(
        &'a self,
        _scope: &'a Scope<'a>,
        _physical_id: &'a str,
        _old: &'a Value,
        _new: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async { Ok(Updated::Replace) })
    }

    /// Deletes the resource.
    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Whether changing `old` properties to `new` ones replaces the resource (a change set's
    /// `Replacement`).
    fn replaces(&self, old: &Value, new: &Value) -> bool;
}

/// The provider of a type, if it is served.
pub fn provider(kind: &str) -> Option<&'static dyn Provider> {
    Some(match kind {
        "AWS::S3::Bucket" => &s3_bucket::Bucket,
        "AWS::S3::BucketPolicy" => &s3_bucket_policy::BucketPolicy,
        "AWS::IAM::Role" => &iam_role::IamRole,
        "AWS::IAM::Policy" => &iam_policy::InlinePolicy,
        "AWS::IAM::ManagedPolicy" => &iam_policy::ManagedPolicy,
        "AWS::SSM::Parameter" => &ssm_parameter::SsmParameter,
        "AWS::CodeBuild::Project" => &codebuild_project::Project,
        "AWS::CodePipeline::Pipeline" => &codepipeline_pipeline::Pipeline,
        "AWS::CodePipeline::CustomActionType" => &codepipeline_types::CustomActionType,
        "AWS::CodePipeline::Webhook" => &codepipeline_types::Webhook,
        "AWS::Events::Rule" => &events_rule::Rule,
        "AWS::Lambda::Function" => &lambda_function::Function,
        "AWS::Lambda::Permission" => &lambda_function::Permission,
        "AWS::CDK::Metadata" => &cdk_metadata::CdkMetadata,
        "AWS::KMS::Key" => &recorded::KMS_KEY,
        "AWS::KMS::Alias" => &recorded::KMS_ALIAS,
        "AWS::ECR::Repository" => &ecr_repository::Repository,
        "AWS::ECS::Cluster" => &ecs::Cluster,
        "AWS::ECS::TaskDefinition" => &ecs::TaskDefinition,
        "AWS::ECS::Service" => &ecs::Service,
        "AWS::CodeDeploy::Application" => &ecs::Application,
        "AWS::CodeDeploy::DeploymentGroup" => &ecs::DeploymentGroup,
        "AWS::IAM::InstanceProfile" => &recorded::INSTANCE_PROFILE,
        _ => return None,
    })
}

/// A property's text.
pub fn text(props: &Value, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether any of `keys` differs between two sets of properties.
pub fn changed(old: &Value, new: &Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| old.get(*k) != new.get(*k))
}

/// A policy document as IAM takes it: JSON text (CloudFormation takes an object or text).
pub fn document(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// CloudFormation's property names (`PascalCase`) as the service API's (`camelCase`),
/// recursively, but for the maps in `verbatim` (configuration maps keep their keys).
pub fn camel(v: &Value, verbatim: &[&str], renames: &[(&str, &str)]) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, item) in map {
                let key = renames
                    .iter()
                    .find(|(from, _)| from == k)
                    .map(|(_, to)| to.to_string())
                    .unwrap_or_else(|| {
                        let mut chars = k.chars();
                        match chars.next() {
                            Some(c) => c.to_lowercase().chain(chars).collect(),
                            None => String::new(),
                        }
                    });
                let value = if verbatim.contains(&k.as_str()) {
                    item.clone()
                } else {
                    camel(item, verbatim, renames)
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| camel(i, verbatim, renames)).collect())
        }
        other => other.clone(),
    }
}

/// Which API members are of which type, for [`typed`].
pub struct Types {
    /// Members that are strings.
    pub strings: &'static [&'static str],
    /// Members that are numbers.
    pub numbers: &'static [&'static str],
    /// Members that are booleans.
    pub booleans: &'static [&'static str],
}

/// Scalars as the API's members are typed, as CloudFormation converts them from its schema
/// (`Version: 1` is the text "1", `TimeoutInMinutes: "10"` the number 10).
pub fn typed(v: &Value, types: &Types) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, item)| {
                    let key = k.as_str();
                    let value = match item {
                        Value::Number(n) if types.strings.contains(&key) => {
                            Value::String(n.to_string())
                        }
                        Value::Bool(b) if types.strings.contains(&key) => {
                            Value::String(b.to_string())
                        }
                        Value::String(s) if types.numbers.contains(&key) => s
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| item.clone()),
                        Value::String(s) if types.booleans.contains(&key) => match s.as_str() {
                            "true" => Value::Bool(true),
                            "false" => Value::Bool(false),
                            _ => item.clone(),
                        },
                        other => typed(other, types),
                    };
                    (k.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| typed(i, types)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_shapes_follow_cloudformation() {
        let name = generated("my-stack", "Bucket", 63);
        assert!(name.starts_with("my-stack-Bucket-"), "{name}");
        assert_eq!(name.len(), "my-stack-Bucket-".len() + 12);
        let long = generated(&"s".repeat(100), &"L".repeat(100), 64);
        assert_eq!(long.len(), 64);
        let types = Types {
            strings: &["version"],
            numbers: &["runOrder"],
            booleans: &["required"],
        };
        assert_eq!(
            typed(
                &json!({"a": [{"version": 1, "runOrder": "2", "required": "true", "other": 3}]}),
                &types
            ),
            json!({"a": [{"version": "1", "runOrder": 2, "required": true, "other": 3}]})
        );
        assert_eq!(
            camel(
                &json!({"Name": "p", "Stages": [{"Actions": [{"Configuration": {"BranchName": "main"}}]}]}),
                &["Configuration"],
                &[]
            ),
            json!({"name": "p", "stages": [{"actions": [{"configuration": {"BranchName": "main"}}]}]})
        );
    }
}
