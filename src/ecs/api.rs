//! ECS's JSON 1.1 API (`AmazonEC2ContainerServiceV20141113`), checked against AWS's model.

use std::sync::{Arc, LazyLock};

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{
    cluster_arn, plain, service_arn, task_definition_arn, Cluster, Deployment, Ecs, EcsEvent,
    EcsRegion, Service, TaskDefinition,
};
use crate::aws::model::ServiceModel;
use crate::aws::pagination;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::regional::RegionalFailure;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/ecs-2014-11-13.json")));

const SERVED: &[&str] = &[
    "CreateCluster",
    "DescribeClusters",
    "DeleteCluster",
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "DeregisterTaskDefinition",
    "CreateService",
    "UpdateService",
    "DescribeServices",
    "ListServices",
    "DeleteService",
];

/// Whether a request is ECS's: the SigV4 scope `ecs`, or (unsigned) its target.
pub fn is_ecs(service: &str, target: &str) -> bool {
    service == "ecs"
        || (service.is_empty() && target.starts_with(&format!("{}.", MODEL.target_prefix)))
}

/// Answers an ECS request.
pub async fn handle(
    ecs: &Arc<Ecs>,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(ecs, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

/// One operation called in-process, with AWS's JSON input: the path a client's request takes.
pub async fn call(
    ecs: &Arc<Ecs>,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", MODEL.target_prefix);
    let out = run(ecs, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

fn cluster_missing() -> AwsError {
    AwsError::new("ClusterNotFoundException", "Cluster not found.")
}

fn service_missing() -> AwsError {
    AwsError::new("ServiceNotFoundException", "Service not found.")
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterException", message)
}

fn tags_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["key"].as_str()?.to_string(),
                t["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn tags_json(tags: &[(String, String)]) -> Value {
    json!(tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect::<Vec<_>>())
}

fn cluster_json(account: &str, region: &str, c: &Cluster) -> Value {
    json!({
        "clusterArn": cluster_arn(account, region, &c.name),
        "clusterName": c.name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": c.services.values().map(|s| s.desired).sum::<u64>(),
        "pendingTasksCount": 0,
        "activeServicesCount": c.services.len(),
        "tags": tags_json(&c.tags),
    })
}

fn task_definition_json(account: &str, region: &str, t: &TaskDefinition) -> Value {
    let mut out = t.body.clone();
    out["taskDefinitionArn"] = task_definition_arn(account, region, &t.family, t.revision).into();
    out["family"] = t.family.clone().into();
    out["revision"] = t.revision.into();
    out["status"] = t.status.clone().into();
    out["registeredAt"] = t.registered.into();
    out["registeredBy"] = format!("arn:aws:iam::{account}:root").into();
    out["compatibilities"] = json!(["EC2", "FARGATE"]);
    if let Some(at) = t.deregistered {
        out["deregisteredAt"] = at.into();
    }
    out
}

fn deployment_json(d: &Deployment, launch_type: &str) -> Value {
    json!({
        "id": d.id, "status": d.status, "taskDefinition": d.task_definition,
        "desiredCount": d.desired, "pendingCount": 0, "runningCount": d.running, "failedTasks": 0,
        "createdAt": d.created, "updatedAt": d.updated, "launchType": launch_type,
        "rolloutState": d.rollout,
        "rolloutStateReason": if d.rollout == "COMPLETED" {
            "ECS deployment ecs-svc completed."
        } else {
            "ECS deployment detected."
        },
    })
}

fn service_json(account: &str, region: &str, cluster: &str, s: &Service) -> Value {
    json!({
        "serviceArn": service_arn(account, region, cluster, &s.name),
        "serviceName": s.name,
        "clusterArn": cluster_arn(account, region, cluster),
        "status": s.status,
        "desiredCount": s.desired,
        "runningCount": s.deployments.first().map_or(0, |d| d.running),
        "pendingCount": 0,
        "launchType": s.launch_type,
        "taskDefinition": s.task_definition,
        "deployments": s.deployments.iter().map(|d| deployment_json(d, &s.launch_type)).collect::<Vec<_>>(),
        "events": s.events.iter().map(|e| json!({"id": e.id, "createdAt": e.at, "message": e.message})).collect::<Vec<_>>(),
        "createdAt": s.created,
        "deploymentController": {"type": s.controller},
        "schedulingStrategy": "REPLICA",
    })
}

fn new_deployment(task_definition: &str, desired: u64, at: f64) -> Deployment {
    Deployment {
        id: format!(
            "ecs-svc/{}",
            uuid::Uuid::new_v4().as_u128() % 10u128.pow(19)
        ),
        status: "PRIMARY".into(),
        task_definition: task_definition.to_string(),
        desired,
        running: 0,
        rollout: "IN_PROGRESS".into(),
        created: at,
        updated: at,
    }
}

async fn run(
    ecs: &Arc<Ecs>,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("ECS", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    MODEL.validate_input(&operation, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let cluster = plain(input["cluster"].as_str().unwrap_or("default")).to_string();
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let read =
        |f: &dyn Fn(&EcsRegion) -> Result<Value, AwsError>| ecs.regions.read(account, region, f);
    let now = crate::aws::now_epoch();
    let out = match operation.as_str() {
        "CreateCluster" => {
            let name = input["clusterName"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let made = Cluster {
                name: name.clone(),
                created: now,
                tags: tags_of(&input["tags"]),
                services: Default::default(),
            };
            let out = cluster_json(account, region, &made);
            // Creating a cluster that exists answers it, as on AWS.
            let existing = ecs
                .regions
                .read(account, region, |r| r.clusters.get(&name).cloned());
            match existing {
                Some(c) => json!({ "cluster": cluster_json(account, region, &c) }),
                None => {
                    ecs.regions
                        .record(account, region, |_| {
                            Ok(vec![EcsEvent::ClusterCreated(Box::new(made))])
                        })
                        .await
                        .map_err(recorded)?;
                    json!({ "cluster": out })
                }
            }
        }
        "DescribeClusters" => {
            let wanted: Vec<String> = match input["clusters"].as_array() {
                Some(a) => a
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
                None => vec!["default".into()],
            };
            read(&|r| {
                let (mut clusters, mut failures) = (Vec::new(), Vec::new());
                for w in &wanted {
                    match r.clusters.get(plain(w)) {
                        Some(c) => clusters.push(cluster_json(account, region, c)),
                        None => failures.push(json!({"arn": cluster_arn(account, region, plain(w)), "reason": "MISSING"})),
                    }
                }
                Ok(json!({"clusters": clusters, "failures": failures}))
            })?
        }
        "DeleteCluster" => {
            let mut gone = Value::Null;
            ecs.regions
                .record(account, region, |r| {
                    let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                    if !c.services.is_empty() {
                        return Err(AwsError::new(
                            "ClusterContainsServicesException",
                            "The Cluster cannot be deleted while Services are active.",
                        ));
                    }
                    gone = cluster_json(account, region, c);
                    gone["status"] = "INACTIVE".into();
                    Ok(vec![EcsEvent::ClusterDeleted {
                        cluster: cluster.clone(),
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({ "cluster": gone })
        }
        "RegisterTaskDefinition" => {
            let family = input["family"].as_str().unwrap_or_default().to_string();
            let containers = input["containerDefinitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if containers.is_empty() {
                return Err(invalid("Container list cannot be empty."));
            }
            for c in &containers {
                if c["name"].as_str().is_none_or(str::is_empty)
                    || c["image"].as_str().is_none_or(str::is_empty)
                {
                    return Err(AwsError::new(
                        "ClientException",
                        "Container.name and Container.image should not be null or empty.",
                    ));
                }
            }
            let mut body = input.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("tags");
            }
            let mut made = None;
            ecs.regions
                .record(account, region, |r| {
                    let revision = r.families.get(&family).map_or(0, |f| f.len() as u64) + 1;
                    let t = TaskDefinition {
                        family: family.clone(),
                        revision,
                        body: body.clone(),
                        status: "ACTIVE".into(),
                        registered: now,
                        deregistered: None,
                    };
                    made = Some(t.clone());
                    Ok(vec![EcsEvent::Registered(Box::new(t))])
                })
                .await
                .map_err(recorded)?;
            let t = made.ok_or_else(|| AwsError::internal("no revision was registered"))?;
            json!({"taskDefinition": task_definition_json(account, region, &t), "tags": input["tags"].as_array().cloned().unwrap_or_default()})
        }
        "DescribeTaskDefinition" => {
            let name = input["taskDefinition"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            read(&|r| {
                let t = r.task_definition(&name).ok_or_else(|| {
                    AwsError::new("ClientException", "Unable to describe task definition.")
                })?;
                Ok(json!({"taskDefinition": task_definition_json(account, region, t)}))
            })?
        }
        "ListTaskDefinitions" => {
            let prefix = input["familyPrefix"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let status = input["status"].as_str().unwrap_or("ACTIVE").to_string();
            let descending = input["sort"].as_str() == Some("DESC");
            let max = input["maxResults"].as_u64().unwrap_or(100) as usize;
            let token = input["nextToken"].as_str();
            read(&|r| {
                let mut arns: Vec<String> = r
                    .families
                    .iter()
                    .filter(|(f, _)| f.starts_with(&prefix))
                    .flat_map(|(_, revisions)| revisions.iter())
                    .filter(|t| status == "ALL" || t.status == status)
                    .map(|t| task_definition_arn(account, region, &t.family, t.revision))
                    .collect();
                if descending {
                    arns.reverse();
                }
                let start = pagination::start_after(arns.iter().map(String::as_str), token)
                    .ok_or_else(|| invalid("Invalid nextToken"))?;
                let page: Vec<&String> = arns.iter().skip(start).take(max).collect();
                let mut out = json!({ "taskDefinitionArns": page });
                if start + page.len() < arns.len() {
                    if let Some(last) = page.last() {
                        out["nextToken"] = pagination::encode(last).into();
                    }
                }
                Ok(out)
            })?
        }
        "DeregisterTaskDefinition" => {
            let name = input["taskDefinition"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut out = Value::Null;
            ecs.regions
                .record(account, region, |r| {
                    if !name.contains(':') {
                        return Err(AwsError::new(
                            "ClientException",
                            "The specified task definition does not exist.",
                        ));
                    }
                    let t = r.task_definition(&name).ok_or_else(|| {
                        AwsError::new(
                            "ClientException",
                            "The specified task definition does not exist.",
                        )
                    })?;
                    let mut gone = t.clone();
                    gone.status = "INACTIVE".into();
                    gone.deregistered = Some(now);
                    out = task_definition_json(account, region, &gone);
                    Ok(vec![EcsEvent::Deregistered {
                        family: t.family.clone(),
                        revision: t.revision,
                        at: now,
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({ "taskDefinition": out })
        }
        "CreateService" => {
            let name = input["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let desired = input["desiredCount"].as_u64().unwrap_or(0);
            let controller = input["deploymentController"]["type"]
                .as_str()
                .unwrap_or("ECS")
                .to_string();
            let launch_type = input["launchType"]
                .as_str()
                .unwrap_or("FARGATE")
                .to_string();
            let wanted = input["taskDefinition"].as_str().map(str::to_string);
            let mut out = Value::Null;
            let mut started = None;
            ecs.regions
                .record(account, region, |r| {
                    let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                    if c.services.contains_key(&name) {
                        return Err(invalid("Creation of service was not idempotent."));
                    }
                    let wanted = wanted
                        .clone()
                        .ok_or_else(|| invalid("TaskDefinition is required."))?;
                    let t = r
                        .task_definition(&wanted)
                        .filter(|t| t.status == "ACTIVE")
                        .ok_or_else(|| {
                            AwsError::new("ClientException", "TaskDefinition not found.")
                        })?;
                    let arn = task_definition_arn(account, region, &t.family, t.revision);
                    let deployment = new_deployment(&arn, desired, now);
                    started = Some(deployment.id.clone());
                    let service = Service {
                        name: name.clone(),
                        task_definition: arn,
                        desired,
                        status: "ACTIVE".into(),
                        controller: controller.clone(),
                        launch_type: launch_type.clone(),
                        created: now,
                        deployments: vec![deployment],
                        events: Vec::new(),
                    };
                    out = service_json(account, region, &cluster, &service);
                    Ok(vec![EcsEvent::ServiceCreated {
                        cluster: cluster.clone(),
                        service: Box::new(service),
                    }])
                })
                .await
                .map_err(recorded)?;
            if let Some(id) = started {
                ecs.settle(account, region, &cluster, &name, &id);
            }
            json!({ "service": out })
        }
        "UpdateService" => {
            let name = plain(input["service"].as_str().unwrap_or_default()).to_string();
            let force = input["forceNewDeployment"].as_bool().unwrap_or(false);
            let mut out = Value::Null;
            let mut started = None;
            ecs.regions
                .record(account, region, |r| {
                    let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                    let s = c.services.get(&name).ok_or_else(service_missing)?;
                    let arn = match input["taskDefinition"].as_str() {
                        Some(w) => {
                            let t = r
                                .task_definition(w)
                                .filter(|t| t.status == "ACTIVE")
                                .ok_or_else(|| {
                                    AwsError::new("ClientException", "TaskDefinition not found.")
                                })?;
                            task_definition_arn(account, region, &t.family, t.revision)
                        }
                        None => s.task_definition.clone(),
                    };
                    let desired = input["desiredCount"].as_u64().unwrap_or(s.desired);
                    let deployment = (force || arn != s.task_definition)
                        .then(|| new_deployment(&arn, desired, now));
                    started = deployment.as_ref().map(|d| d.id.clone());
                    let mut after = s.clone();
                    after.task_definition = arn.clone();
                    after.desired = desired;
                    if let Some(d) = &deployment {
                        for old in &mut after.deployments {
                            old.status = "ACTIVE".into();
                        }
                        after.deployments.insert(0, d.clone());
                    }
                    out = service_json(account, region, &cluster, &after);
                    Ok(vec![EcsEvent::ServiceUpdated {
                        cluster: cluster.clone(),
                        service: name.clone(),
                        task_definition: arn,
                        desired,
                        deployment,
                        at: now,
                    }])
                })
                .await
                .map_err(recorded)?;
            if let Some(id) = started {
                ecs.settle(account, region, &cluster, &name, &id);
            }
            json!({ "service": out })
        }
        "DescribeServices" => {
            let wanted: Vec<String> = input["services"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            read(&|r| {
                let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                let (mut services, mut failures) = (Vec::new(), Vec::new());
                for w in &wanted {
                    match c.services.get(plain(w)) {
                        Some(s) => services.push(service_json(account, region, &cluster, s)),
                        None => failures.push(json!({"arn": service_arn(account, region, &cluster, plain(w)), "reason": "MISSING"})),
                    }
                }
                Ok(json!({"services": services, "failures": failures}))
            })?
        }
        "ListServices" => {
            let max = input["maxResults"].as_u64().unwrap_or(10) as usize;
            let token = input["nextToken"].as_str();
            read(&|r| {
                let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                let arns: Vec<String> = c
                    .services
                    .keys()
                    .map(|n| service_arn(account, region, &cluster, n))
                    .collect();
                let start = pagination::start_after(arns.iter().map(String::as_str), token)
                    .ok_or_else(|| invalid("Invalid nextToken"))?;
                let page: Vec<&String> = arns.iter().skip(start).take(max).collect();
                let mut out = json!({ "serviceArns": page });
                if start + page.len() < arns.len() {
                    if let Some(last) = page.last() {
                        out["nextToken"] = pagination::encode(last).into();
                    }
                }
                Ok(out)
            })?
        }
        "DeleteService" => {
            let name = plain(input["service"].as_str().unwrap_or_default()).to_string();
            let force = input["force"].as_bool().unwrap_or(false);
            let mut out = Value::Null;
            ecs.regions
                .record(account, region, |r| {
                    let c = r.clusters.get(&cluster).ok_or_else(cluster_missing)?;
                    let s = c.services.get(&name).ok_or_else(service_missing)?;
                    if s.desired > 0 && !force {
                        return Err(invalid(
                            "The service cannot be stopped while it is scaled above 0.",
                        ));
                    }
                    out = service_json(account, region, &cluster, s);
                    out["status"] = "DRAINING".into();
                    Ok(vec![EcsEvent::ServiceDeleted {
                        cluster: cluster.clone(),
                        service: name.clone(),
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({ "service": out })
        }
        other => {
            return Err(AwsError::internal(format!(
                "{other} is listed but not served"
            )))
        }
    };
    Ok(Bytes::from(out.to_string()))
}
