//! ECS with the official `aws-sdk-ecs` crate: clusters, task definition revisions, services
//! whose deployments reach steady state as ECS reports it (also after kill -9), AWS's errors;
//! and the ECS deploy action in a pipeline ECR source → CodeBuild (writes
//! imagedefinitions.json from the source's ImageURI) → ECS deploy, and its failures.

use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinitionStatus};
use serde_json::{json, Value};

use crate::common::Server;
use crate::engine::{finished, latest_execution, tutorial_buckets};

async fn register(ecs: &aws_sdk_ecs::Client, family: &str, image: &str) -> String {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .memory(512)
                .build(),
        )
        .container_definitions(
            ContainerDefinition::builder()
                .name("sidecar")
                .image("busybox:1")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string()
}

/// The service once its primary deployment completed (at most 30 s).
async fn steady(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> aws_sdk_ecs::types::Service {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .unwrap();
        let s = got.services()[0].clone();
        let done = s.deployments().len() == 1
            && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED");
        if done {
            return s;
        }
        assert!(Instant::now() < deadline, "{service} never steady: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn clusters_task_definitions_and_services_are_kept_as_ecs_keeps_them() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::try_start_in(data.path()).unwrap();
    let ecs = server.ecs();
    let cluster = ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cluster.cluster().unwrap().cluster_arn(),
        Some("arn:aws:ecs:eu-central-1:000000000000:cluster/prod")
    );
    let first = register(&ecs, "web", "nginx:1").await;
    let second = register(&ecs, "web", "nginx:2").await;
    assert_eq!(
        second,
        "arn:aws:ecs:eu-central-1:000000000000:task-definition/web:2"
    );
    let latest = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let latest = latest.task_definition().unwrap();
    assert_eq!(latest.revision(), 2);
    assert_eq!(latest.container_definitions()[0].image(), Some("nginx:2"));
    let bad = ecs
        .register_task_definition()
        .family("web")
        .container_definitions(ContainerDefinition::builder().name("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("ClientException"));

    // A service's first deployment reaches steady state, as its events say.
    ecs.create_service()
        .cluster("prod")
        .service_name("site")
        .task_definition("web:1")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let service = steady(&ecs, "prod", "site").await;
    assert_eq!(service.task_definition(), Some(first.as_str()));
    assert_eq!(service.running_count(), 2);
    assert_eq!(
        service.events()[0].message(),
        Some("(service site) has reached a steady state.")
    );
    let again = ecs
        .create_service()
        .cluster("prod")
        .service_name("site")
        .task_definition("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("InvalidParameterException"));

    // An update is a new primary deployment; the old one goes once it is steady.
    let updated = ecs
        .update_service()
        .cluster("prod")
        .service("site")
        .task_definition(&second)
        .send()
        .await
        .unwrap();
    let deployments = updated.service().unwrap().deployments();
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0].status(), Some("PRIMARY"));
    assert_eq!(
        deployments[0].rollout_state().map(|r| r.as_str()),
        Some("IN_PROGRESS")
    );
    assert_eq!(deployments[1].status(), Some("ACTIVE"));
    let service = steady(&ecs, "prod", "site").await;
    assert_eq!(service.task_definition(), Some(second.as_str()));

    // AWS's errors and failures.
    let none = ecs
        .describe_services()
        .cluster("nope")
        .services("site")
        .send()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some("ClusterNotFoundException"));
    let missing = ecs
        .describe_services()
        .cluster("prod")
        .services("other")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.failures()[0].reason(), Some("MISSING"));
    let gone = ecs
        .update_service()
        .cluster("prod")
        .service("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ServiceNotFoundException"));
    let busy = ecs
        .delete_cluster()
        .cluster("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Some("ClusterContainsServicesException"));
    let scaled = ecs
        .delete_service()
        .cluster("prod")
        .service("site")
        .send()
        .await
        .unwrap_err();
    assert_eq!(scaled.code(), Some("InvalidParameterException"));
    let deregistered = ecs
        .deregister_task_definition()
        .task_definition(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        deregistered.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );
    let listed = ecs.list_task_definitions().send().await.unwrap();
    assert_eq!(listed.task_definition_arns(), std::slice::from_ref(&second));

    // A deployment a kill -9 cut reaches steady state when the server starts again.
    ecs.update_service()
        .cluster("prod")
        .service("site")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    server.kill9();
    let server = Server::start_in(data.path());
    let ecs = server.ecs();
    let service = steady(&ecs, "prod", "site").await;
    assert_eq!(service.task_definition(), Some(second.as_str()));
    ecs.delete_service()
        .cluster("prod")
        .service("site")
        .force(true)
        .send()
        .await
        .unwrap();
    ecs.delete_cluster().cluster("prod").send().await.unwrap();
}

/// ECR source (`Image`) → CodeBuild writing imagedefinitions.json → ECS deploy.
fn deploy_pipeline(name: &str, file: Option<&str>, service: &str) -> Value {
    let mut deploy_config = json!({"ClusterName": "prod", "ServiceName": service});
    if let Some(f) = file {
        deploy_config["FileName"] = f.into();
    }
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Image", "namespace": "Image",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "ECR", "version": "1"},
                "configuration": {"RepositoryName": "web"},
                "outputArtifacts": [{"name": "image"}]}]},
            {"name": "Build", "actions": [{"name": "Definitions",
                "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                "configuration": {"ProjectName": "definitions",
                    "EnvironmentVariables": "[{\"name\":\"IMAGE_URI\",\"value\":\"#{Image.ImageURI}\",\"type\":\"PLAINTEXT\"}]"},
                "inputArtifacts": [{"name": "image"}], "outputArtifacts": [{"name": "defs"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "ECS", "version": "1"},
                "configuration": deploy_config, "inputArtifacts": [{"name": "defs"}]}]}
        ]
    })
}

/// The tutorial's buckets, an image tagged `latest` in repository `web` (its digest), and
/// service `site` of cluster `prod` on task definition `web:1`, deployed by `controller`.
async fn image_and_service(server: &Server, controller: &str) -> String {
    let (ecs, ecr) = (server.ecs(), server.ecr());
    tutorial_buckets(&server.s3()).await;
    ecr.create_repository()
        .repository_name("web")
        .send()
        .await
        .unwrap();
    let digest = ecr
        .put_image()
        .repository_name("web")
        .image_tag("latest")
        .image_manifest("{\"schemaVersion\":2,\"layers\":[]}")
        .send()
        .await
        .unwrap()
        .image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .to_string();
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    register(&ecs, "web", "nginx:1").await;
    ecs.create_service()
        .cluster("prod")
        .service_name("site")
        .task_definition("web")
        .desired_count(1)
        .deployment_controller(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::from(
                    controller,
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    steady(&ecs, "prod", "site").await;
    digest
}

#[tokio::test]
async fn the_ecs_deploy_action_puts_the_pushed_image_into_a_new_task_definition() {
    let server = Server::start();
    let (cp, ecs) = (server.codepipeline(), server.ecs());
    let digest = image_and_service(&server, "ECS").await;
    crate::codebuild::project_with(
        &server.codebuild(),
        "definitions",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - printf '[{\"name\":\"web\",\"imageUri\":\"%s\"}]' \"$IMAGE_URI\" > imagedefinitions.json\nartifacts:\n  files:\n    - imagedefinitions.json\n",
    )
    .await;
    crate::engine::create(&server, deploy_pipeline("release", None, "site"));
    let id = latest_execution(&cp, "release").await;
    assert_eq!(
        finished(&cp, "release", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    // The service runs a new revision naming the pushed image; the other container is as it was.
    let service = steady(&ecs, "prod", "site").await;
    let arn = service.task_definition().unwrap().to_string();
    assert_eq!(
        arn,
        "arn:aws:ecs:eu-central-1:000000000000:task-definition/web:2"
    );
    let described = ecs
        .describe_task_definition()
        .task_definition(&arn)
        .send()
        .await
        .unwrap();
    let containers = described.task_definition().unwrap().container_definitions();
    assert_eq!(
        containers[0].image(),
        Some(format!("000000000000.dkr.ecr.eu-central-1.amazonaws.com/web@{digest}").as_str())
    );
    assert_eq!(containers[0].memory(), Some(512));
    assert_eq!(containers[1].image(), Some("busybox:1"));
    // The deploy action's target is the service, as ListDeployActionExecutionTargets says.
    let deploy = crate::engine::action_run(&cp, "release", None, "Deploy").await;
    let targets = server
        .call(
            "ListDeployActionExecutionTargets",
            json!({"pipelineName": "release", "actionExecutionId": deploy.action_execution_id()}),
        )
        .json();
    let target = &targets["targets"][0];
    assert_eq!(
        target["targetId"],
        "arn:aws:ecs:eu-central-1:000000000000:service/prod/site"
    );
    assert_eq!(target["targetType"], "ECS");
    assert_eq!(target["status"], "Succeeded");
    assert_eq!(target["events"][0]["status"], "Succeeded");
    let none = server
        .call(
            "ListDeployActionExecutionTargets",
            json!({"pipelineName": "release", "actionExecutionId": deploy.action_execution_id(),
                   "filters": [{"name": "TARGET_STATUS", "values": ["Failed"]}]}),
        )
        .json();
    assert_eq!(none["targets"], json!([]));

    // An image pushed through the registry starts the pipeline through a rule; the service
    // then runs it.
    crate::events::rule_for(
        &server,
        "on-push",
        json!({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
               "detail": {"repository-name": ["web"], "image-tag": ["latest"]}}),
        "release",
    );
    let manifest = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}";
    let pushed = crate::ecr::registry(
        &server,
        "PUT",
        "/v2/web/manifests/latest",
        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
        manifest.as_bytes(),
    );
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    let listed = crate::git::executions(&server, "release", 2).await;
    let run = listed[0]["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "release", run).await,
        PipelineExecutionStatus::Succeeded
    );
    let service = steady(&ecs, "prod", "site").await;
    let described = ecs
        .describe_task_definition()
        .task_definition(service.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.task_definition().unwrap().container_definitions()[0].image(),
        Some(
            format!(
                "000000000000.dkr.ecr.eu-central-1.amazonaws.com/web@{}",
                crate::ecr::digest(manifest)
            )
            .as_str()
        )
    );

    // A missing file and a missing service fail the action, saying which.
    crate::engine::create(
        &server,
        deploy_pipeline("nofile", Some("nope.json"), "site"),
    );
    assert_eq!(
        crate::engine::failure_of(&cp, "nofile", 2).await,
        "The file nope.json is not in the input artifact defs"
    );
    crate::engine::create(&server, deploy_pipeline("noservice", None, "absent"));
    assert_eq!(
        crate::engine::failure_of(&cp, "noservice", 2).await,
        "The ECS service absent does not exist in cluster prod"
    );
}

fn codedeploy(server: &Server, operation: &str, body: Value) -> Value {
    let r = server.client().raw_for(
        "codedeploy",
        Some(&format!("CodeDeploy_20141006.{operation}")),
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{operation}: {}", r.text());
    r.json()
}

/// S3 source (taskdef.json, appspec.yaml) and ECR source → CodeDeployToECS.
fn blue_green_pipeline(name: &str, group: &str) -> Value {
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [
                {"name": "Code",
                 "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                 "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "deploy.zip", "PollForSourceChanges": "false"},
                 "outputArtifacts": [{"name": "code"}]},
                {"name": "Image",
                 "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "ECR", "version": "1"},
                 "configuration": {"RepositoryName": "web"},
                 "outputArtifacts": [{"name": "image"}]}]},
            {"name": "Deploy", "actions": [{"name": "BlueGreen",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeployToECS", "version": "1"},
                "configuration": {"ApplicationName": "web-app", "DeploymentGroupName": group,
                    "TaskDefinitionTemplateArtifact": "code", "AppSpecTemplateArtifact": "code",
                    "Image1ArtifactName": "image", "Image1ContainerName": "IMAGE1_NAME"},
                "inputArtifacts": [{"name": "code"}, {"name": "image"}]}]}
        ]
    })
}

#[tokio::test]
async fn a_blue_green_deployment_registers_the_filled_task_definition_through_codedeploy() {
    let server = Server::start();
    let (cp, ecs, s3) = (server.codepipeline(), server.ecs(), server.s3());
    let digest = image_and_service(&server, "CODE_DEPLOY").await;
    codedeploy(
        &server,
        "CreateApplication",
        json!({"applicationName": "web-app", "computePlatform": "ECS"}),
    );
    codedeploy(
        &server,
        "CreateDeploymentGroup",
        json!({"applicationName": "web-app", "deploymentGroupName": "blue-green",
               "serviceRoleArn": "arn:aws:iam::000000000000:role/codedeploy",
               "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
               "ecsServices": [{"clusterName": "prod", "serviceName": "site"}]}),
    );
    let taskdef = json!({"family": "web", "containerDefinitions": [
        {"name": "web", "image": "<IMAGE1_NAME>", "essential": true, "portMappings": [{"containerPort": 80}]}]});
    let appspec = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: web\n          ContainerPort: 80\n";
    s3.put_object()
        .bucket("source-bucket")
        .key("deploy.zip")
        .body(aws_sdk_s3::primitives::ByteStream::from(
            crate::engine::zip_of(&[
                ("taskdef.json", &taskdef.to_string()),
                ("appspec.yaml", appspec),
            ]),
        ))
        .send()
        .await
        .unwrap();
    crate::engine::create(&server, blue_green_pipeline("bluegreen", "blue-green"));
    let id = latest_execution(&cp, "bluegreen").await;
    assert_eq!(
        finished(&cp, "bluegreen", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    // The deployment recorded, with the AppSpec filled with the new revision.
    let listed = codedeploy(
        &server,
        "ListDeployments",
        json!({"applicationName": "web-app", "deploymentGroupName": "blue-green"}),
    );
    let deployment = listed["deployments"][0].as_str().unwrap().to_string();
    let got = codedeploy(
        &server,
        "GetDeployment",
        json!({ "deploymentId": deployment }),
    );
    let info = &got["deploymentInfo"];
    assert_eq!(info["status"], "Succeeded");
    let revision = "arn:aws:ecs:eu-central-1:000000000000:task-definition/web:2";
    let content = info["revision"]["appSpecContent"]["content"]
        .as_str()
        .unwrap();
    assert!(
        content.contains(&format!("TaskDefinition: {revision}")),
        "{content}"
    );
    // The service runs it, with the image from imageDetail.json.
    let service = steady(&ecs, "prod", "site").await;
    assert_eq!(service.task_definition(), Some(revision));
    let described = ecs
        .describe_task_definition()
        .task_definition(revision)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.task_definition().unwrap().container_definitions()[0].image(),
        Some(format!("000000000000.dkr.ecr.eu-central-1.amazonaws.com/web@{digest}").as_str())
    );
    // The action's external id is the deployment.
    let run = crate::engine::action_run(&cp, "bluegreen", None, "BlueGreen").await;
    assert_eq!(
        run.output()
            .unwrap()
            .execution_result()
            .unwrap()
            .external_execution_id(),
        Some(deployment.as_str())
    );

    // An unknown deployment group fails the action with CodeDeploy's words.
    crate::engine::create(&server, blue_green_pipeline("nogroup", "nope"));
    let message = crate::engine::failure_of(&cp, "nogroup", 1).await;
    assert_eq!(
        message,
        "DeploymentGroupDoesNotExistException: No Deployment Group found for name: nope"
    );
}
