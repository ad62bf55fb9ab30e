//! The Amazon ECS deploy action: the image definitions file of its input artifact (`FileName`,
//! `imagedefinitions.json` by default: `[{"name": CONTAINER, "imageUri": IMAGE}]`) makes a new
//! revision of the service's task definition with those containers' images replaced; the
//! service (`ClusterName`, `ServiceName`) is updated to it, and the action waits for the
//! deployment to reach steady state, within `DeploymentTimeout` minutes (60 by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::cloudformation::Files;
use super::{config, failed, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::objects::ObjectStore;

/// ECS's and CodeDeploy's operations, as the deploy actions call them (AWS's JSON shapes).
pub trait Containers: Send + Sync {
    /// Runs `operation` of `service` (`ecs` or `codedeploy`) in the account and region: its
    /// answer, or `Code: message`.
    fn call<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        service: &'a str,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, String>>;
}

/// How often the action looks at the deployment.
const EVERY: Duration = Duration::from_millis(200);

/// What a task definition's description has that a registration does not take.
const DESCRIBED_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "compatibilities",
    "requiresAttributes",
];

/// The action.
pub(super) struct EcsDeploy {
    pub(super) ecs: Arc<dyn Containers>,
    pub(super) objects: Arc<dyn ObjectStore>,
}

impl ActionExecutor for EcsDeploy {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }
}

/// The service's current task definition's body, or why there is none.
pub(super) async fn service_task_definition(
    ecs: &dyn Containers,
    job: &ActionJob,
    cluster: &str,
    service: &str,
) -> Result<Value, ErrorDetails> {
    let (account, region) = (job.account.as_str(), job.input.region.as_str());
    let described = ecs
        .call(
            account,
            region,
            "ecs",
            "DescribeServices",
            json!({"cluster": cluster, "services": [service]}),
        )
        .await
        .map_err(failed)?;
    let task_definition = described["services"][0]["taskDefinition"]
        .as_str()
        .ok_or_else(|| {
            failed(format!(
                "The ECS service {service} does not exist in cluster {cluster}"
            ))
        })?
        .to_string();
    let described = ecs
        .call(
            account,
            region,
            "ecs",
            "DescribeTaskDefinition",
            json!({ "taskDefinition": task_definition }),
        )
        .await
        .map_err(failed)?;
    Ok(described["taskDefinition"].clone())
}

/// Registers `body` (a task definition as described) as a new revision: its ARN.
pub(super) async fn register(
    ecs: &dyn Containers,
    job: &ActionJob,
    mut body: Value,
) -> Result<String, ErrorDetails> {
    if let Some(o) = body.as_object_mut() {
        for k in DESCRIBED_ONLY {
            o.remove(*k);
        }
    }
    let made = ecs
        .call(
            &job.account,
            &job.input.region,
            "ecs",
            "RegisterTaskDefinition",
            body,
        )
        .await
        .map_err(failed)?;
    made["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| failed("ECS registered no task definition"))
}

async fn run(action: &EcsDeploy, job: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
    let required = |k: &str| {
        config
            .get(k)
            .cloned()
            .ok_or_else(|| failed(format!("{k} is not configured")))
    };
    let (cluster, service) = (required("ClusterName")?, required("ServiceName")?);
    let file = config
        .get("FileName")
        .cloned()
        .unwrap_or_else(|| "imagedefinitions.json".into());
    let minutes: u64 = match config.get("DeploymentTimeout") {
        Some(m) => m
            .parse()
            .ok()
            .filter(|m| (1..=60).contains(m))
            .ok_or_else(|| failed(format!("DeploymentTimeout {m} is not 1 to 60 minutes")))?,
        None => 60,
    };
    let artifact = job
        .input
        .input_artifacts
        .first()
        .ok_or_else(|| failed("The action has no input artifact"))?;
    let mut files = Files::new(action.objects.as_ref(), &job.input.input_artifacts);
    let text = files.file(&artifact.name, &file).await?;
    let definitions: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        failed(format!(
            "The image definitions file {file} is not a JSON list: {e}"
        ))
    })?;
    let ecs = action.ecs.as_ref();
    let mut body = service_task_definition(ecs, job, &cluster, &service).await?;
    let arn = body["taskDefinitionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let containers = body["containerDefinitions"]
        .as_array_mut()
        .ok_or_else(|| failed(format!("The task definition {arn} has no containers")))?;
    for d in &definitions {
        let (Some(name), Some(image)) = (d["name"].as_str(), d["imageUri"].as_str()) else {
            return Err(failed(format!(
                "Each entry of {file} needs a name and an imageUri: {d}"
            )));
        };
        let container = containers
            .iter_mut()
            .find(|c| c["name"] == name)
            .ok_or_else(|| {
                failed(format!(
                    "The container {name} of {file} is not in the task definition {arn}"
                ))
            })?;
        container["image"] = image.into();
    }
    let revision = register(ecs, job, body).await?;
    deploy(ecs, job, &cluster, &service, &revision, minutes).await?;
    Ok(ActionOutput {
        output_artifacts: Vec::new(),
        external_execution_id: Some(revision.clone()),
        external_execution_summary: Some(format!(
            "Deployed {revision} to service {service} of cluster {cluster}"
        )),
        output_variables: Default::default(),
        revision: None,
    })
}

/// Updates the service to `task_definition` and waits (at most `minutes`) for its deployment to
/// reach steady state.
pub(super) async fn deploy(
    ecs: &dyn Containers,
    job: &ActionJob,
    cluster: &str,
    service: &str,
    task_definition: &str,
    minutes: u64,
) -> Result<(), ErrorDetails> {
    let (account, region) = (job.account.as_str(), job.input.region.as_str());
    let updated = ecs
        .call(
            account,
            region,
            "ecs",
            "UpdateService",
            json!({"cluster": cluster, "service": service, "taskDefinition": task_definition}),
        )
        .await
        .map_err(failed)?;
    let id = updated["service"]["deployments"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    loop {
        let described = ecs
            .call(
                account,
                region,
                "ecs",
                "DescribeServices",
                json!({"cluster": cluster, "services": [service]}),
            )
            .await
            .map_err(failed)?;
        let primary = &described["services"][0]["deployments"][0];
        if primary["id"] != id.as_str() {
            return Err(failed(format!(
                "The deployment {id} of service {service} was replaced by another before it completed"
            )));
        }
        if primary["rolloutState"] == "COMPLETED" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(failed(format!(
                "The ECS service {service} did not reach a steady state within {minutes} minutes"
            )));
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// The ECS blue/green action (`CodeDeployToECS`): the task definition template
/// (`TaskDefinitionTemplateArtifact`/`TaskDefinitionTemplatePath`, `taskdef.json` by default)
/// with its `<IMAGE1_NAME>` … placeholders (`Image1ContainerName` … name them) filled from the
/// `imageDetail.json` of `Image1ArtifactName` …, registered as a new revision; the AppSpec
/// template (`AppSpecTemplateArtifact`/`AppSpecTemplatePath`, `appspec.yaml` by default) with
/// `<TASK_DEFINITION>` filled with it, deployed through CodeDeploy (`ApplicationName`,
/// `DeploymentGroupName`); the action waits for the deployment to end.
pub(super) struct CodeDeployToEcs {
    pub(super) ecs: Arc<dyn Containers>,
    pub(super) objects: Arc<dyn ObjectStore>,
}

impl ActionExecutor for CodeDeployToEcs {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(blue_green(self, job))
    }
}

/// How long the action waits for its deployment (the action's own timeout ends it sooner).
const DEPLOYMENT_WITHIN: Duration = Duration::from_secs(3600);

async fn blue_green(
    action: &CodeDeployToEcs,
    job: &ActionJob,
) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
    let required = |k: &str| {
        config
            .get(k)
            .cloned()
            .ok_or_else(|| failed(format!("{k} is not configured")))
    };
    let (application, group) = (
        required("ApplicationName")?,
        required("DeploymentGroupName")?,
    );
    let (taskdef_artifact, appspec_artifact) = (
        required("TaskDefinitionTemplateArtifact")?,
        required("AppSpecTemplateArtifact")?,
    );
    let taskdef_path = config
        .get("TaskDefinitionTemplatePath")
        .cloned()
        .unwrap_or_else(|| "taskdef.json".into());
    let appspec_path = config
        .get("AppSpecTemplatePath")
        .cloned()
        .unwrap_or_else(|| "appspec.yaml".into());
    let mut files = Files::new(action.objects.as_ref(), &job.input.input_artifacts);
    let mut taskdef = files.file(&taskdef_artifact, &taskdef_path).await?;
    for n in 1..=4 {
        let Some(artifact) = config.get(&format!("Image{n}ArtifactName")) else {
            continue;
        };
        let placeholder = config
            .get(&format!("Image{n}ContainerName"))
            .cloned()
            .unwrap_or_else(|| format!("IMAGE{n}_NAME"));
        let detail = files.file(artifact, "imageDetail.json").await?;
        let detail: Value = serde_json::from_str(&detail).map_err(|e| {
            failed(format!(
                "The imageDetail.json of {artifact} is not JSON: {e}"
            ))
        })?;
        let uri = detail["ImageURI"].as_str().ok_or_else(|| {
            failed(format!(
                "The imageDetail.json of {artifact} has no ImageURI"
            ))
        })?;
        taskdef = taskdef.replace(&format!("<{placeholder}>"), uri);
    }
    let body: Value = serde_json::from_str(&taskdef).map_err(|e| {
        failed(format!(
            "The task definition {taskdef_path} is not valid JSON: {e}"
        ))
    })?;
    let ecs = action.ecs.as_ref();
    let arn = register(ecs, job, body).await?;
    let appspec = files
        .file(&appspec_artifact, &appspec_path)
        .await?
        .replace("<TASK_DEFINITION>", &arn);
    let (account, region) = (job.account.as_str(), job.input.region.as_str());
    let created = ecs
        .call(
            account,
            region,
            "codedeploy",
            "CreateDeployment",
            json!({"applicationName": application, "deploymentGroupName": group,
                   "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}}}),
        )
        .await
        .map_err(failed)?;
    let id = created["deploymentId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    job.progress
        .report(crate::codepipeline::execution::ExecutionDetails {
            external_execution_id: Some(id.clone()),
            ..Default::default()
        });
    let deadline = Instant::now() + DEPLOYMENT_WITHIN;
    loop {
        let got = ecs
            .call(
                account,
                region,
                "codedeploy",
                "GetDeployment",
                json!({ "deploymentId": id }),
            )
            .await
            .map_err(failed)?;
        let info = &got["deploymentInfo"];
        match info["status"].as_str().unwrap_or_default() {
            "Succeeded" => break,
            "Failed" | "Stopped" => {
                return Err(failed(format!(
                    "The CodeDeploy deployment {id} {}: {}",
                    info["status"].as_str().unwrap_or_default().to_lowercase(),
                    info["errorInformation"]["message"]
                        .as_str()
                        .unwrap_or_default()
                )))
            }
            _ if Instant::now() >= deadline => {
                return Err(failed(format!(
                    "The CodeDeploy deployment {id} did not end"
                )))
            }
            _ => tokio::time::sleep(EVERY).await,
        }
    }
    Ok(ActionOutput {
        output_artifacts: Vec::new(),
        external_execution_id: Some(id.clone()),
        external_execution_summary: Some(format!("Deployment {id} of {arn} succeeded")),
        output_variables: Default::default(),
        revision: None,
    })
}
