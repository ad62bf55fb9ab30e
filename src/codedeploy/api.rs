//! CodeDeploy's JSON 1.1 API (`CodeDeploy_20141006`), checked against AWS's model.

use std::sync::{Arc, LazyLock};

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{Application, CodeDeploy, CodeDeployEvent, Deployment, Group, Region};
use crate::aws::model::ServiceModel;
use crate::aws::pagination;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::regional::RegionalFailure;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/codedeploy-2014-10-06.json")));

const SERVED: &[&str] = &[
    "CreateApplication",
    "GetApplication",
    "DeleteApplication",
    "CreateDeploymentGroup",
    "GetDeploymentGroup",
    "DeleteDeploymentGroup",
    "CreateDeployment",
    "GetDeployment",
    "ListDeployments",
    "StopDeployment",
];

/// Whether a request is CodeDeploy's: the SigV4 scope `codedeploy`, or (unsigned) its target.
pub fn is_codedeploy(service: &str, target: &str) -> bool {
    service == "codedeploy"
        || (service.is_empty() && target.starts_with(&format!("{}.", MODEL.target_prefix)))
}

/// Answers a CodeDeploy request.
pub async fn handle(
    codedeploy: &Arc<CodeDeploy>,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(codedeploy, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

/// One operation called in-process, with AWS's JSON input: the path a client's request takes.
pub async fn call(
    codedeploy: &Arc<CodeDeploy>,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", MODEL.target_prefix);
    let out = run(codedeploy, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

fn no_application(name: &str) -> AwsError {
    AwsError::new(
        "ApplicationDoesNotExistException",
        format!("No application found for name: {name}"),
    )
}

fn no_group(name: &str) -> AwsError {
    AwsError::new(
        "DeploymentGroupDoesNotExistException",
        format!("No Deployment Group found for name: {name}"),
    )
}

fn no_deployment(id: &str) -> AwsError {
    AwsError::new(
        "DeploymentDoesNotExistException",
        format!("Deployment {id} does not exist"),
    )
}

fn deployment_json(d: &Deployment) -> Value {
    let mut out = json!({
        "applicationName": d.application, "deploymentGroupName": d.group,
        "deploymentId": d.id, "revision": d.revision, "status": d.status,
        "createTime": d.created, "creator": "user", "computePlatform": "ECS",
        "deploymentConfigName": "CodeDeployDefault.ECSAllAtOnce",
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    });
    if let Some(t) = d.started {
        out["startTime"] = t.into();
    }
    if let Some(t) = d.completed {
        out["completeTime"] = t.into();
    }
    if let Some(desc) = &d.description {
        out["description"] = desc.clone().into();
    }
    if let Some((code, message)) = &d.error {
        out["errorInformation"] = json!({"code": code, "message": message});
    }
    out
}

async fn run(
    codedeploy: &Arc<CodeDeploy>,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("CodeDeploy", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    MODEL.validate_input(&operation, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let app = input["applicationName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let group_name = input["deploymentGroupName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let read = |f: &dyn Fn(&Region) -> Result<Value, AwsError>| {
        codedeploy.regions.read(account, region, f)
    };
    let now = crate::aws::now_epoch();
    let out = match operation.as_str() {
        "CreateApplication" => {
            let platform = input["computePlatform"]
                .as_str()
                .unwrap_or("Server")
                .to_string();
            if platform != "ECS" {
                return Err(AwsError::new(
                    "InvalidComputePlatformException",
                    format!("The compute platform {platform} is not served by codepipeline-local: only ECS"),
                ));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let made = Application {
                id: id.clone(),
                platform,
                created: now,
            };
            codedeploy
                .regions
                .record(account, region, |r| {
                    if r.applications.contains_key(&app) {
                        return Err(AwsError::new(
                            "ApplicationAlreadyExistsException",
                            format!("{app} already exists in your account"),
                        ));
                    }
                    Ok(vec![CodeDeployEvent::ApplicationCreated {
                        name: app.clone(),
                        application: made,
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({ "applicationId": id })
        }
        "GetApplication" => read(&|r| {
            let a = r
                .applications
                .get(&app)
                .ok_or_else(|| no_application(&app))?;
            Ok(
                json!({"application": {"applicationId": a.id, "applicationName": app,
                "createTime": a.created, "linkedToGitHub": false, "computePlatform": a.platform}}),
            )
        })?,
        "DeleteApplication" => {
            // Deleting an application that is not there succeeds, as on AWS.
            codedeploy
                .regions
                .record(account, region, |r| {
                    Ok(if r.applications.contains_key(&app) {
                        vec![CodeDeployEvent::ApplicationDeleted { name: app.clone() }]
                    } else {
                        vec![]
                    })
                })
                .await
                .map_err(recorded)?;
            json!({})
        }
        "DeleteDeploymentGroup" => {
            codedeploy
                .regions
                .record(account, region, |r| {
                    if !r.applications.contains_key(&app) {
                        return Err(no_application(&app));
                    }
                    Ok(
                        if r.groups
                            .get(&app)
                            .is_some_and(|g| g.contains_key(&group_name))
                        {
                            vec![CodeDeployEvent::GroupDeleted {
                                application: app.clone(),
                                name: group_name.clone(),
                            }]
                        } else {
                            vec![]
                        },
                    )
                })
                .await
                .map_err(recorded)?;
            json!({ "hooksNotCleanedUp": [] })
        }
        "CreateDeploymentGroup" => {
            let id = uuid::Uuid::new_v4().to_string();
            let group = Group {
                id: id.clone(),
                body: input.clone(),
            };
            codedeploy
                .regions
                .record(account, region, |r| {
                    if !r.applications.contains_key(&app) {
                        return Err(no_application(&app));
                    }
                    if r.groups.get(&app).is_some_and(|g| g.contains_key(&group_name)) {
                        return Err(AwsError::new(
                            "DeploymentGroupAlreadyExistsException",
                            format!("A deployment group with the name {group_name} already exists for the application {app}"),
                        ));
                    }
                    if input["ecsServices"].as_array().is_none_or(Vec::is_empty) {
                        return Err(AwsError::new(
                            "ECSServiceMappingLimitExceededException",
                            "An ECS deployment group names one ECS service (ecsServices)",
                        ));
                    }
                    Ok(vec![CodeDeployEvent::GroupCreated {
                        application: app.clone(),
                        name: group_name.clone(),
                        group: group.clone(),
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({ "deploymentGroupId": id })
        }
        "GetDeploymentGroup" => read(&|r| {
            if !r.applications.contains_key(&app) {
                return Err(no_application(&app));
            }
            let g = r
                .groups
                .get(&app)
                .and_then(|g| g.get(&group_name))
                .ok_or_else(|| no_group(&group_name))?;
            let mut info = g.body.clone();
            info["deploymentGroupId"] = g.id.clone().into();
            info["computePlatform"] = "ECS".into();
            if info.get("deploymentConfigName").is_none() {
                info["deploymentConfigName"] = "CodeDeployDefault.ECSAllAtOnce".into();
            }
            let last = r
                .deployments
                .values()
                .filter(|d| d.application == app && d.group == group_name)
                .max_by(|a, b| a.created.total_cmp(&b.created));
            if let Some(d) = last {
                info["lastAttemptedDeployment"] =
                    json!({"deploymentId": d.id, "status": d.status, "createTime": d.created});
            }
            Ok(json!({ "deploymentGroupInfo": info }))
        })?,
        "CreateDeployment" => {
            let revision = input["revision"].clone();
            if revision.is_null() {
                return Err(AwsError::new(
                    "RevisionRequiredException",
                    "Revision must be specified.",
                ));
            }
            let content = revision["appSpecContent"]["content"]
                .as_str()
                .or_else(|| revision["string"]["content"].as_str())
                .unwrap_or_default();
            if super::appspec_task_definition(content).is_none() {
                return Err(AwsError::new(
                    "InvalidRevisionException",
                    "The AppSpec (AppSpecContent) must name a TargetService with a TaskDefinition: only inline AppSpec revisions for ECS are served",
                ));
            }
            let id = format!(
                "d-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..9].to_uppercase()
            );
            let deployment = Deployment {
                id: id.clone(),
                application: app.clone(),
                group: group_name.clone(),
                revision,
                description: input["description"].as_str().map(str::to_string),
                status: "Created".into(),
                error: None,
                created: now,
                started: None,
                completed: None,
            };
            codedeploy
                .regions
                .record(account, region, |r| {
                    if !r.applications.contains_key(&app) {
                        return Err(no_application(&app));
                    }
                    if !r
                        .groups
                        .get(&app)
                        .is_some_and(|g| g.contains_key(&group_name))
                    {
                        return Err(no_group(&group_name));
                    }
                    Ok(vec![CodeDeployEvent::DeploymentCreated(Box::new(
                        deployment.clone(),
                    ))])
                })
                .await
                .map_err(recorded)?;
            codedeploy.run(account, region, &id);
            json!({ "deploymentId": id })
        }
        "GetDeployment" => {
            let id = input["deploymentId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            read(&|r| {
                let d = r.deployments.get(&id).ok_or_else(|| no_deployment(&id))?;
                Ok(json!({ "deploymentInfo": deployment_json(d) }))
            })?
        }
        "ListDeployments" => {
            let statuses: Vec<String> = input["includeOnlyStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            let token = input["nextToken"].as_str();
            read(&|r| {
                if !app.is_empty() && !r.applications.contains_key(&app) {
                    return Err(no_application(&app));
                }
                let mut chosen: Vec<&Deployment> = r
                    .deployments
                    .values()
                    .filter(|d| app.is_empty() || d.application == app)
                    .filter(|d| group_name.is_empty() || d.group == group_name)
                    .filter(|d| statuses.is_empty() || statuses.contains(&d.status))
                    .collect();
                chosen.sort_by(|a, b| b.created.total_cmp(&a.created));
                let start = pagination::start_after(chosen.iter().map(|d| d.id.as_str()), token)
                    .ok_or_else(|| {
                        AwsError::new("InvalidNextTokenException", "The next token is not valid.")
                    })?;
                let page: Vec<&&Deployment> = chosen.iter().skip(start).take(100).collect();
                let mut out =
                    json!({"deployments": page.iter().map(|d| d.id.clone()).collect::<Vec<_>>()});
                if start + page.len() < chosen.len() {
                    if let Some(last) = page.last() {
                        out["nextToken"] = pagination::encode(&last.id).into();
                    }
                }
                Ok(out)
            })?
        }
        "StopDeployment" => {
            let id = input["deploymentId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            codedeploy
                .regions
                .record(account, region, |r| {
                    let d = r.deployments.get(&id).ok_or_else(|| no_deployment(&id))?;
                    if matches!(d.status.as_str(), "Succeeded" | "Failed" | "Stopped") {
                        return Err(AwsError::new(
                            "DeploymentAlreadyCompletedException",
                            format!("Deployment {id} has already completed"),
                        ));
                    }
                    Ok(vec![CodeDeployEvent::DeploymentStatus {
                        id: id.clone(),
                        status: "Stopped".into(),
                        error: Some((
                            "DEPLOYMENT_STOPPED".into(),
                            "The deployment was stopped by the user".into(),
                        )),
                        at: now,
                    }])
                })
                .await
                .map_err(recorded)?;
            json!({"status": "Succeeded", "statusMessage": "The deployment was stopped."})
        }
        other => {
            return Err(AwsError::internal(format!(
                "{other} is listed but not served"
            )))
        }
    };
    Ok(Bytes::from(out.to_string()))
}
