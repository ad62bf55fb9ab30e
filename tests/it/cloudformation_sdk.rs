//! CloudFormation with the official `aws-sdk-cloudformation` crate: stacks made, changed and
//! deleted through the SDK and its waiters, AWS's error codes, exports in use by another stack
//! (neither deleted nor changed, ListImports), and an update cut by kill -9 rolled back when the
//! server starts again; instance profiles recorded under the IAM capability.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{ChangeSetType, Replacement, StackStatus};
use aws_sdk_cloudformation::Client;

use serde_json::json;

use crate::common::Server;
use crate::ssm::ssm;

/// How long a waiter may wait.
const WAIT: Duration = Duration::from_secs(60);

/// A template with one parameter (`Name`, `Value`) whose name is exported as `shared-name`.
fn producer(name: &str, value: &str) -> String {
    format!(
        "Resources:\n  Param:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: {name}, Type: String, Value: {value}}}\nOutputs:\n  ParamName:\n    Value: !Ref Param\n    Export: {{Name: shared-name}}\n"
    )
}

/// A template whose parameter's value is the `shared-name` export.
const CONSUMER: &str = "Resources:\n  Copy:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /consumer/copy, Type: String, Value: !ImportValue shared-name}\n";

fn parameter(server: &Server, name: &str) -> Option<String> {
    let got = ssm(server, &["get-parameter", "--name", name]).ok()?;
    got["Parameter"]["Value"].as_str().map(str::to_string)
}

async fn status(cf: &Client, stack: &str) -> (StackStatus, Option<String>) {
    let got = cf.describe_stacks().stack_name(stack).send().await.unwrap();
    let s = &got.stacks()[0];
    (
        s.stack_status().unwrap().clone(),
        s.stack_status_reason().map(str::to_string),
    )
}

/// Polls a stack until its status is no longer an `_IN_PROGRESS` one (bounded).
async fn settled(cf: &Client, stack: &str) -> StackStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let (now, _) = status(cf, stack).await;
        if !now.as_str().ends_with("_IN_PROGRESS") {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{stack} still {now:?} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a stack and waits for it with the SDK's waiter.
async fn create(cf: &Client, stack: &str, template: impl Into<String>) {
    cf.create_stack()
        .stack_name(stack)
        .template_body(template)
        .send()
        .await
        .unwrap();
    cf.wait_until_stack_create_complete()
        .stack_name(stack)
        .wait(WAIT)
        .await
        .unwrap();
}

/// Deletes a stack and waits for it with the SDK's waiter.
async fn delete(cf: &Client, stack: &str) {
    cf.delete_stack().stack_name(stack).send().await.unwrap();
    cf.wait_until_stack_delete_complete()
        .stack_name(stack)
        .wait(WAIT)
        .await
        .unwrap();
}

async fn newest_event_reason(cf: &Client, stack: &str) -> String {
    let events = cf
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .unwrap();
    events.stack_events()[0]
        .resource_status_reason()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_sdk_makes_changes_and_deletes_stacks_and_exports_in_use_are_kept() {
    let server = Server::start();
    let cf = server.cloudformation();
    create(&cf, "producer", producer("/shared/one", "one")).await;
    create(&cf, "consumer", CONSUMER).await;
    assert_eq!(parameter(&server, "/consumer/copy").unwrap(), "/shared/one");

    // AWS's error codes.
    let again = cf
        .create_stack()
        .stack_name("producer")
        .template_body(producer("/shared/one", "one"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("AlreadyExistsException"), "{again:?}");
    assert_eq!(again.message(), Some("Stack [producer] already exists"));
    let none = cf
        .describe_stacks()
        .stack_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some("ValidationError"));
    assert_eq!(none.message(), Some("Stack with id nope does not exist"));
    let same = cf
        .update_stack()
        .stack_name("producer")
        .template_body(producer("/shared/one", "one"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(same.code(), Some("ValidationError"));
    assert_eq!(same.message(), Some("No updates are to be performed."));

    // The export and who imports it.
    let exports = cf.list_exports().send().await.unwrap();
    let export = &exports.exports()[0];
    assert_eq!(export.name(), Some("shared-name"));
    assert_eq!(export.value(), Some("/shared/one"));
    let imports = cf
        .list_imports()
        .export_name("shared-name")
        .send()
        .await
        .unwrap();
    assert_eq!(imports.imports(), ["consumer"]);
    let unused = cf
        .list_imports()
        .export_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(unused.code(), Some("ValidationError"));
    assert_eq!(
        unused.message(),
        Some("Export 'other' is not imported by any stack.")
    );

    // Deleting the producer is refused in its events; it stays as it was.
    cf.delete_stack()
        .stack_name("producer")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&cf, "producer").await.0, StackStatus::CreateComplete);
    assert_eq!(
        newest_event_reason(&cf, "producer").await,
        "Export shared-name cannot be deleted as it is in use by consumer"
    );
    assert_eq!(parameter(&server, "/shared/one").unwrap(), "one");

    // Changing the exported value rolls the update back: the replacement is gone again.
    cf.update_stack()
        .stack_name("producer")
        .template_body(producer("/shared/two", "two"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&cf, "producer").await,
        StackStatus::UpdateRollbackComplete
    );
    let events = cf
        .describe_stack_events()
        .stack_name("producer")
        .send()
        .await
        .unwrap();
    let rollback = events
        .stack_events()
        .iter()
        .find(|e| {
            e.resource_status()
                == Some(&aws_sdk_cloudformation::types::ResourceStatus::UpdateRollbackInProgress)
        })
        .unwrap();
    assert_eq!(
        rollback.resource_status_reason(),
        Some("Export shared-name cannot be updated as it is in use by consumer")
    );
    assert_eq!(parameter(&server, "/shared/one").unwrap(), "one");
    assert_eq!(parameter(&server, "/shared/two"), None);
    let template = cf
        .get_template()
        .stack_name("producer")
        .send()
        .await
        .unwrap();
    assert!(template.template_body().unwrap().contains("/shared/one"));

    // Removing the export is refused the same way.
    cf.update_stack()
        .stack_name("producer")
        .template_body("Resources:\n  Param:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /shared/one, Type: String, Value: one}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&cf, "producer").await,
        StackStatus::UpdateRollbackComplete
    );
    let exports = cf.list_exports().send().await.unwrap();
    assert_eq!(exports.exports().len(), 1);

    // A change set of the consumer, through the SDK's waiter: the parameter is replaced.
    let consumer_changed = CONSUMER.replace("/consumer/copy", "/consumer/renamed");
    cf.create_change_set()
        .stack_name("consumer")
        .change_set_name("rename")
        .change_set_type(ChangeSetType::Update)
        .template_body(consumer_changed)
        .send()
        .await
        .unwrap();
    cf.wait_until_change_set_create_complete()
        .stack_name("consumer")
        .change_set_name("rename")
        .wait(WAIT)
        .await
        .unwrap();
    let described = cf
        .describe_change_set()
        .stack_name("consumer")
        .change_set_name("rename")
        .send()
        .await
        .unwrap();
    let change = described.changes()[0].resource_change().unwrap();
    assert_eq!(change.logical_resource_id(), Some("Copy"));
    assert_eq!(change.replacement(), Some(&Replacement::True));
    cf.execute_change_set()
        .stack_name("consumer")
        .change_set_name("rename")
        .send()
        .await
        .unwrap();
    cf.wait_until_stack_update_complete()
        .stack_name("consumer")
        .wait(WAIT)
        .await
        .unwrap();
    assert_eq!(parameter(&server, "/consumer/copy"), None);
    assert_eq!(
        parameter(&server, "/consumer/renamed").unwrap(),
        "/shared/one"
    );

    // Once nothing imports it, the producer goes.
    delete(&cf, "consumer").await;
    delete(&cf, "producer").await;
    assert_eq!(parameter(&server, "/shared/one"), None);
    assert!(cf.list_exports().send().await.unwrap().exports().is_empty());
}

/// A stack of `count` parameters `/cut/p<i>` with the value `value`.
fn parameters(count: usize, value: &str) -> String {
    let mut template = String::from("Resources:\n");
    for i in 0..count {
        template.push_str(&format!(
            "  P{i}: {{Type: AWS::SSM::Parameter, Properties: {{Name: /cut/p{i}, Type: String, Value: {value}}}}}\n"
        ));
    }
    template
}

#[tokio::test]
async fn an_update_cut_by_kill_9_is_rolled_back_when_the_server_starts_again() {
    let data = tempfile::tempdir().unwrap();
    // UpdateStack answers at once, so that the kill comes during the update.
    let at_once = [("CODEPIPELINE_LOCAL_CLOUDFORMATION_ANSWER_WITHIN_MS", "0")];
    let server = Server::try_start_with(data.path(), &at_once).unwrap();
    let cf = server.cloudformation();
    cf.create_stack()
        .stack_name("cut")
        .template_body(parameters(100, "v1"))
        .send()
        .await
        .unwrap();
    // (The SDK's stack waiters poll every 30 s at least; this test polls faster.)
    assert_eq!(settled(&cf, "cut").await, StackStatus::CreateComplete);
    // Every value changes and 50 parameters are added.
    cf.update_stack()
        .stack_name("cut")
        .template_body(parameters(150, "v2"))
        .send()
        .await
        .unwrap();
    // Killed once the update has changed some parameters (P10 is the eleventh it changes).
    let deadline = Instant::now() + WAIT;
    loop {
        let p10 = cf
            .describe_stack_resource()
            .stack_name("cut")
            .logical_resource_id("P10")
            .send()
            .await
            .unwrap();
        let detail = p10.stack_resource_detail().unwrap();
        if detail.resource_status().unwrap().as_str() == "UPDATE_COMPLETE" {
            break;
        }
        assert!(Instant::now() < deadline, "P10 not updated after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill9();

    let server = Server::start_in(data.path());
    let cf = server.cloudformation();
    let ended = settled(&cf, "cut").await;
    let listed = ssm(
        &server,
        &[
            "get-parameters-by-path",
            "--path",
            "/cut",
            "--max-items",
            "1000",
        ],
    )
    .unwrap();
    let values: BTreeMap<&str, &str> = listed["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["Name"].as_str().unwrap(), p["Value"].as_str().unwrap()))
        .collect();
    match ended {
        // Cut during the update: every value back to v1, nothing added left.
        StackStatus::UpdateRollbackComplete => {
            // Every parameter the stack had is back to v1 and every one it added is gone, but
            // for one whose creation was under way at the kill, and so not recorded.
            let events = cf
                .describe_stack_events()
                .stack_name("cut")
                .send()
                .await
                .unwrap();
            let with = |status: &str| -> BTreeSet<String> {
                events
                    .stack_events()
                    .iter()
                    .filter(|e| e.resource_status().unwrap().as_str() == status)
                    .map(|e| e.logical_resource_id().unwrap().to_string())
                    .collect()
            };
            let cut: Vec<String> = with("CREATE_IN_PROGRESS")
                .difference(&with("CREATE_COMPLETE"))
                .map(|l| format!("/cut/p{}", &l[1..]))
                .collect();
            assert!(cut.len() <= 1, "{cut:?}");
            for i in 0..150 {
                let name = format!("/cut/p{i}");
                match values.get(name.as_str()) {
                    Some(v) if i < 100 => assert_eq!(*v, "v1", "{name}"),
                    Some(_) => assert!(cut.contains(&name), "{name} left: {listed}"),
                    None => assert!(i >= 100, "{name} gone"),
                }
            }
            let template = cf.get_template().stack_name("cut").send().await.unwrap();
            assert_eq!(template.template_body().unwrap(), parameters(100, "v1"));
            let resources = cf
                .list_stack_resources()
                .stack_name("cut")
                .send()
                .await
                .unwrap();
            assert_eq!(resources.stack_resource_summaries().len(), 100);
            let (_, reason) = status(&cf, "cut").await;
            assert_eq!(reason, None);
        }
        // Done before the kill: everything updated.
        StackStatus::UpdateComplete => {
            assert_eq!(values.len(), 150, "{listed}");
            assert!(values.values().all(|v| *v == "v2"), "{listed}");
        }
        other => panic!("stack ended {other:?}"),
    }
    // The stack takes the next update.
    cf.update_stack()
        .stack_name("cut")
        .template_body(parameters(3, "v3"))
        .send()
        .await
        .unwrap();
    assert_eq!(settled(&cf, "cut").await, StackStatus::UpdateComplete);
    assert_eq!(parameter(&server, "/cut/p2").unwrap(), "v3");
    assert_eq!(parameter(&server, "/cut/p3"), None);
}

#[tokio::test]
async fn an_instance_profile_is_recorded_with_its_arn_under_the_iam_capability() {
    let server = Server::start();
    let cf = server.cloudformation();
    let template = "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Principal: {Service: ec2.amazonaws.com}, Action: 'sts:AssumeRole'}]}\n  Profile:\n    Type: AWS::IAM::InstanceProfile\n    Properties: {Path: /ci/, Roles: [!Ref Role]}\nOutputs:\n  ProfileArn: {Value: !GetAtt Profile.Arn}\n";
    let refused = cf
        .create_stack()
        .stack_name("profile")
        .template_body(template)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InsufficientCapabilitiesException"));
    assert_eq!(
        refused.message(),
        Some("Requires capabilities : [CAPABILITY_IAM]")
    );
    cf.create_stack()
        .stack_name("profile")
        .template_body(template)
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    assert_eq!(settled(&cf, "profile").await, StackStatus::CreateComplete);
    let got = cf
        .describe_stacks()
        .stack_name("profile")
        .send()
        .await
        .unwrap();
    let output = &got.stacks()[0].outputs()[0];
    let profile = cf
        .describe_stack_resource()
        .stack_name("profile")
        .logical_resource_id("Profile")
        .send()
        .await
        .unwrap();
    let name = profile
        .stack_resource_detail()
        .unwrap()
        .physical_resource_id()
        .unwrap();
    assert!(name.starts_with("profile-Profile-"), "{name}");
    assert_eq!(
        output.output_value().unwrap(),
        format!("arn:aws:iam::000000000000:instance-profile/ci/{name}")
    );
}

#[tokio::test]
async fn an_ecr_repository_is_made_and_deleted_with_its_stack() {
    let server = Server::start();
    let (cf, ecr) = (server.cloudformation(), server.ecr());
    let template = "Resources:\n  Images:\n    Type: AWS::ECR::Repository\n    Properties: {RepositoryName: stacked/web, ImageTagMutability: IMMUTABLE, EmptyOnDelete: true}\n  Generated:\n    Type: AWS::ECR::Repository\nOutputs:\n  Uri: {Value: !GetAtt Images.RepositoryUri}\n  Arn: {Value: !GetAtt Images.Arn}\n";
    create(&cf, "images", template).await;
    let got = cf
        .describe_stacks()
        .stack_name("images")
        .send()
        .await
        .unwrap();
    let outputs = got.stacks()[0].outputs();
    let value = |k: &str| {
        outputs
            .iter()
            .find(|o| o.output_key() == Some(k))
            .and_then(|o| o.output_value())
            .unwrap()
            .to_string()
    };
    assert_eq!(
        value("Uri"),
        "000000000000.dkr.ecr.eu-central-1.amazonaws.com/stacked/web"
    );
    assert_eq!(
        value("Arn"),
        "arn:aws:ecr:eu-central-1:000000000000:repository/stacked/web"
    );
    let repositories = ecr.describe_repositories().send().await.unwrap();
    let names: Vec<&str> = repositories
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"stacked/web"));
    // The generated name is the stack's and the resource's, in lower case.
    assert!(
        names.iter().any(|n| n.starts_with("images-generated-")),
        "{names:?}"
    );
    let made =
        &repositories.repositories()[names.iter().position(|n| *n == "stacked/web").unwrap()];
    assert_eq!(
        made.image_tag_mutability().map(|m| m.as_str()),
        Some("IMMUTABLE")
    );
    ecr.put_image()
        .repository_name("stacked/web")
        .image_tag("1")
        .image_manifest("{\"schemaVersion\":2}")
        .send()
        .await
        .unwrap();
    // EmptyOnDelete: the repository goes with its images.
    delete(&cf, "images").await;
    let left = ecr.describe_repositories().send().await.unwrap();
    assert!(left.repositories().is_empty(), "{left:?}");
}

/// A cluster, a task definition running `image`, a service on it, and CodeDeploy's application
/// and deployment group for it.
fn containers_template(image: &str) -> String {
    format!(
        "Resources:
  Cluster:
    Type: AWS::ECS::Cluster
    Properties: {{ClusterName: stacked}}
  TaskDef:
    Type: AWS::ECS::TaskDefinition
    Properties:
      Family: web
      Cpu: 256
      Memory: 512
      RequiresCompatibilities: [FARGATE]
      ContainerDefinitions:
        - {{Name: web, Image: {image}, Memory: 512, PortMappings: [{{ContainerPort: 80}}]}}
  Service:
    Type: AWS::ECS::Service
    Properties:
      Cluster: !Ref Cluster
      ServiceName: site
      TaskDefinition: !Ref TaskDef
      DesiredCount: 2
      DeploymentController: {{Type: CODE_DEPLOY}}
  App:
    Type: AWS::CodeDeploy::Application
    Properties: {{ComputePlatform: ECS}}
  Group:
    Type: AWS::CodeDeploy::DeploymentGroup
    Properties:
      ApplicationName: !Ref App
      DeploymentGroupName: blue-green
      ServiceRoleArn: arn:aws:iam::000000000000:role/codedeploy
      DeploymentStyle: {{DeploymentType: BLUE_GREEN, DeploymentOption: WITH_TRAFFIC_CONTROL}}
      ECSServices: [{{ClusterName: !Ref Cluster, ServiceName: !GetAtt Service.Name}}]
Outputs:
  App: {{Value: !Ref App}}
"
    )
}

#[tokio::test]
async fn ecs_and_codedeploy_resources_are_made_updated_and_deleted_with_their_stack() {
    let server = Server::start();
    let (cf, ecs) = (server.cloudformation(), server.ecs());
    create(&cf, "containers", containers_template("nginx:1")).await;
    let described = ecs
        .describe_services()
        .cluster("stacked")
        .services("site")
        .send()
        .await
        .unwrap();
    let service = &described.services()[0];
    assert_eq!(
        service.task_definition(),
        Some("arn:aws:ecs:eu-central-1:000000000000:task-definition/web:1")
    );
    assert_eq!(service.desired_count(), 2);
    let task = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    let task = task.task_definition().unwrap();
    assert_eq!(task.memory(), Some("512"));
    assert_eq!(task.container_definitions()[0].memory(), Some(512));
    let got = cf
        .describe_stacks()
        .stack_name("containers")
        .send()
        .await
        .unwrap();
    let app = got.stacks()[0].outputs()[0]
        .output_value()
        .unwrap()
        .to_string();
    assert!(app.starts_with("containers-App-"), "{app}");
    let group = server.client().raw_for(
        "codedeploy",
        Some("CodeDeploy_20141006.GetDeploymentGroup"),
        json!({"applicationName": app, "deploymentGroupName": "blue-green"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(group.status, 200, "{}", group.text());
    assert_eq!(
        group.json()["deploymentGroupInfo"]["ecsServices"][0],
        json!({"clusterName": "stacked", "serviceName": "site"})
    );

    // A new image is a new revision; the service moves to it in place; the old one goes.
    cf.update_stack()
        .stack_name("containers")
        .template_body(containers_template("nginx:2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&cf, "containers").await,
        StackStatus::UpdateComplete
    );
    let described = ecs
        .describe_services()
        .cluster("stacked")
        .services("site")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.services()[0].task_definition(),
        Some("arn:aws:ecs:eu-central-1:000000000000:task-definition/web:2")
    );
    let old = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.task_definition().unwrap().status().map(|s| s.as_str()),
        Some("INACTIVE")
    );

    delete(&cf, "containers").await;
    let clusters = ecs
        .describe_clusters()
        .clusters("stacked")
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.failures()[0].reason(), Some("MISSING"));
    let app_gone = server.client().raw_for(
        "codedeploy",
        Some("CodeDeploy_20141006.GetApplication"),
        json!({ "applicationName": app }).to_string().as_bytes(),
    );
    assert_eq!(app_gone.error_code(), "ApplicationDoesNotExistException");
}
