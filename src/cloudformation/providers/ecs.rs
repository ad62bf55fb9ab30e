//! ECS and CodeDeploy resources, made through their APIs:
//! - `AWS::ECS::Cluster` (`ClusterName`, `Tags`; attribute `Arn`; the name is its physical id);
//! - `AWS::ECS::TaskDefinition` (`Family`, `ContainerDefinitions`, `Cpu`, `Memory`,
//!   `NetworkMode`, `RequiresCompatibilities`, roles…; any change registers a new revision and
//!   deregisters the old, as on AWS; its ARN is its physical id, attribute `TaskDefinitionArn`);
//! - `AWS::ECS::Service` (`Cluster`, `ServiceName`, `TaskDefinition`, `DesiredCount`,
//!   `LaunchType`, `DeploymentController`; a new task definition or desired count updates it in
//!   place; attributes `Name`, `ServiceArn`; its ARN is its physical id);
//! - `AWS::CodeDeploy::Application` (`ApplicationName`, `ComputePlatform`) and
//!   `AWS::CodeDeploy::DeploymentGroup` (`ApplicationName`, `DeploymentGroupName`,
//!   `ServiceRoleArn`, `DeploymentStyle`, `ECSServices`, …; any change replaces it).

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{camel, changed, text, Made, Provider, Scope, Updated};

fn tags(props: &Value) -> Value {
    json!(props["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| json!({"key": t["Key"], "value": t["Value"]}))
        .collect::<Vec<_>>())
}

fn made(physical_id: String, attributes: &[(&str, String)]) -> Made {
    Made {
        physical_id,
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    }
}

/// Deletion of what is already gone succeeds.
fn gone_ok(result: Result<Value, String>, missing: &[&str]) -> Result<(), String> {
    match result {
        Err(e) if missing.iter().any(|m| e.contains(m)) => Ok(()),
        other => other.map(drop),
    }
}

/// `AWS::ECS::Cluster`.
pub struct Cluster;

impl Provider for Cluster {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "ClusterName").unwrap_or_else(|| scope.generated_name(255));
            let out = scope
                .call(
                    "ecs",
                    "CreateCluster",
                    json!({"clusterName": name, "tags": tags(props)}),
                )
                .await?;
            let arn = out["cluster"]["clusterArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok(made(name, &[("Arn", arn)]))
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
            let arn =
                crate::ecs::cluster_arn(&scope.ctx.account_id, &scope.ctx.region, physical_id);
            Ok(Updated::InPlace(made(
                physical_id.to_string(),
                &[("Arn", arn)],
            )))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let result = scope
                .call("ecs", "DeleteCluster", json!({ "cluster": physical_id }))
                .await;
            gone_ok(result, &["ClusterNotFoundException"])
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["ClusterName"])
    }
}

/// `AWS::ECS::TaskDefinition`.
pub struct TaskDefinition;

/// Container members ECS takes as numbers.
const CONTAINER_NUMBERS: &[&str] = &[
    "cpu",
    "memory",
    "memoryReservation",
    "containerPort",
    "hostPort",
    "startTimeout",
    "stopTimeout",
];

/// ECS's types for CloudFormation's values: a container's numbers numbers, the task's `cpu`
/// and `memory` text.
fn task_definition_input(scope: &Scope<'_>, props: &Value) -> Value {
    fn numbers(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if CONTAINER_NUMBERS.contains(&k.as_str()) {
                        if let Some(n) = item.as_str().and_then(|s| s.parse::<i64>().ok()) {
                            *item = n.into();
                        }
                    } else {
                        numbers(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(numbers),
            _ => {}
        }
    }
    let mut input = camel(props, &[], &[]);
    if let Some(o) = input.as_object_mut() {
        o.remove("tags");
    }
    for k in ["cpu", "memory"] {
        if let Some(n) = input[k].as_i64() {
            input[k] = n.to_string().into();
        }
    }
    numbers(&mut input["containerDefinitions"]);
    if input["family"].is_null() {
        input["family"] = scope.generated_name(255).into();
    }
    input["tags"] = tags(props);
    input
}

impl Provider for TaskDefinition {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let out = scope
                .call(
                    "ecs",
                    "RegisterTaskDefinition",
                    task_definition_input(scope, props),
                )
                .await?;
            let arn = out["taskDefinition"]["taskDefinitionArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok(made(arn.clone(), &[("TaskDefinitionArn", arn)]))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let result = scope
                .call(
                    "ecs",
                    "DeregisterTaskDefinition",
                    json!({ "taskDefinition": physical_id }),
                )
                .await;
            gone_ok(result, &["does not exist"])
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        old != new
    }
}

/// `AWS::ECS::Service`.
pub struct Service;

fn cluster_of(props: &Value) -> String {
    text(props, "Cluster")
        .map(|c| crate::ecs::plain(&c).to_string())
        .unwrap_or_else(|| "default".into())
}

impl Provider for Service {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "ServiceName").unwrap_or_else(|| scope.generated_name(255));
            let cluster = cluster_of(props);
            let mut input = json!({
                "cluster": cluster, "serviceName": name,
                "taskDefinition": props["TaskDefinition"],
                "desiredCount": text(props, "DesiredCount").and_then(|d| d.parse::<u64>().ok()).unwrap_or(1),
            });
            if let Some(l) = text(props, "LaunchType") {
                input["launchType"] = l.into();
            }
            if let Some(t) = text(&props["DeploymentController"], "Type") {
                input["deploymentController"] = json!({ "type": t });
            }
            let out = scope.call("ecs", "CreateService", input).await?;
            let arn = out["service"]["serviceArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok(made(arn.clone(), &[("Name", name), ("ServiceArn", arn)]))
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
            let name = crate::ecs::plain(physical_id).to_string();
            let mut input = json!({"cluster": cluster_of(new), "service": name, "taskDefinition": new["TaskDefinition"]});
            if let Some(d) = text(new, "DesiredCount").and_then(|d| d.parse::<u64>().ok()) {
                input["desiredCount"] = d.into();
            }
            scope.call("ecs", "UpdateService", input).await?;
            Ok(Updated::InPlace(made(
                physical_id.to_string(),
                &[("Name", name), ("ServiceArn", physical_id.to_string())],
            )))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let input = json!({"cluster": cluster_of(props), "service": crate::ecs::plain(physical_id), "force": true});
            let result = scope.call("ecs", "DeleteService", input).await;
            gone_ok(
                result,
                &["ServiceNotFoundException", "ClusterNotFoundException"],
            )
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(
            old,
            new,
            &[
                "ServiceName",
                "Cluster",
                "LaunchType",
                "DeploymentController",
            ],
        )
    }
}

/// `AWS::CodeDeploy::Application`.
pub struct Application;

impl Provider for Application {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "ApplicationName").unwrap_or_else(|| scope.generated_name(100));
            let platform = text(props, "ComputePlatform").unwrap_or_else(|| "Server".into());
            scope
                .call(
                    "codedeploy",
                    "CreateApplication",
                    json!({"applicationName": name, "computePlatform": platform}),
                )
                .await?;
            Ok(made(name, &[]))
        })
    }

    fn update<'a>(
        &'a self,
        _: &'a Scope<'a>,
        physical_id: &'a str,
        old: &'a Value,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async move {
            if self.replaces(old, new) {
                return Ok(Updated::Replace);
            }
            Ok(Updated::InPlace(made(physical_id.to_string(), &[])))
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
                    "codedeploy",
                    "DeleteApplication",
                    json!({ "applicationName": physical_id }),
                )
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["ApplicationName", "ComputePlatform"])
    }
}

/// `AWS::CodeDeploy::DeploymentGroup`.
pub struct DeploymentGroup;

impl Provider for DeploymentGroup {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let mut input = camel(props, &[], &[("ECSServices", "ecsServices")]);
            let name =
                text(props, "DeploymentGroupName").unwrap_or_else(|| scope.generated_name(100));
            input["deploymentGroupName"] = name.clone().into();
            scope
                .call("codedeploy", "CreateDeploymentGroup", input)
                .await?;
            Ok(made(name, &[]))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let input = json!({"applicationName": props["ApplicationName"], "deploymentGroupName": physical_id});
            let result = scope
                .call("codedeploy", "DeleteDeploymentGroup", input)
                .await;
            gone_ok(result, &["ApplicationDoesNotExistException"])
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        old != new
    }
}
