//! CloudFormation with the real AWS CLI: `deploy` (change sets) of a YAML template with
//! parameters, mappings, conditions, GetAtt, Sub and outputs making buckets, a role with a
//! policy, a parameter, a CodeBuild project and a pipeline that then runs; updates (in place,
//! added, replaced), "No changes", a change set described then executed, a failure rolled back
//! with nothing left, delete-stack, and kill -9 during a creation.

use std::path::Path;

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::common::{repo_file, Server};
use crate::engine::{finished, zip_of};

fn cfn(server: &Server, args: &[&str]) -> Result<String, String> {
    let out = server.aws_cli(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn json(server: &Server, args: &[&str]) -> Value {
    let text = cfn(server, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn stack(server: &Server, name: &str) -> Value {
    json(
        server,
        &["cloudformation", "describe-stacks", "--stack-name", name],
    )["Stacks"][0]
        .clone()
}

/// Runs a CloudFormation waiter on a stack; on a failure, the stack's events say why.
fn wait(server: &Server, waiter: &str, name: &str) {
    if let Err(e) = cfn(
        server,
        &["cloudformation", "wait", waiter, "--stack-name", name],
    ) {
        let events = cfn(
            server,
            &[
                "cloudformation",
                "describe-stack-events",
                "--stack-name",
                name,
            ],
        );
        panic!("{waiter} {name}: {e}\n{events:?}");
    }
}

/// Empties a bucket, every version and delete marker too (a bucket is deleted only empty).
fn empty_bucket(server: &Server, bucket: &str) {
    cfn(
        server,
        &["s3", "rm", &format!("s3://{bucket}"), "--recursive"],
    )
    .unwrap();
    let versions = json(
        server,
        &["s3api", "list-object-versions", "--bucket", bucket],
    );
    let all = versions["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(versions["DeleteMarkers"].as_array().into_iter().flatten());
    for v in all {
        let (key, id) = (v["Key"].as_str().unwrap(), v["VersionId"].as_str().unwrap());
        cfn(
            server,
            &[
                "s3api",
                "delete-object",
                "--bucket",
                bucket,
                "--key",
                key,
                "--version-id",
                id,
            ],
        )
        .unwrap();
    }
}

fn output(stack: &Value, key: &str) -> String {
    stack["Outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["OutputKey"] == key)
        .and_then(|o| o["OutputValue"].as_str())
        .unwrap_or_else(|| panic!("no output {key}: {stack}"))
        .to_string()
}

fn physical(server: &Server, stack: &str, logical: &str) -> String {
    json(
        server,
        &[
            "cloudformation",
            "describe-stack-resource",
            "--stack-name",
            stack,
            "--logical-resource-id",
            logical,
        ],
    )["StackResourceDetail"]["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn deploy(server: &Server, template: &Path, overrides: &[&str]) -> Result<String, String> {
    let template = template.to_str().unwrap();
    let mut args = vec![
        "cloudformation",
        "deploy",
        "--template-file",
        template,
        "--stack-name",
        "ci",
        "--capabilities",
        "CAPABILITY_IAM",
    ];
    if !overrides.is_empty() {
        args.push("--parameter-overrides");
        args.extend(overrides);
    }
    cfn(server, &args)
}

fn buckets(server: &Server) -> Vec<String> {
    json(server, &["s3api", "list-buckets"])["Buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_template_deploys_updates_and_deletes_a_pipeline_stack() {
    let server = Server::start();
    let template = repo_file("tests/fixtures/cloudformation/pipeline.yaml");
    let file = template.to_str().unwrap();
    let e = cfn(
        &server,
        &[
            "cloudformation",
            "deploy",
            "--template-file",
            file,
            "--stack-name",
            "ci",
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("Requires capabilities : [CAPABILITY_IAM]")
            || e.contains("InsufficientCapabilities"),
        "{e}"
    );
    let out = cfn(
        &server,
        &[
            "cloudformation",
            "deploy",
            "--template-file",
            template.to_str().unwrap(),
            "--stack-name",
            "ci",
            "--capabilities",
            "CAPABILITY_IAM",
            "--parameter-overrides",
            "RepoName=web",
        ],
    )
    .unwrap();
    assert!(
        out.contains("Successfully created/updated stack - ci"),
        "{out}"
    );
    let made = stack(&server, "ci");
    assert_eq!(made["StackStatus"], "CREATE_COMPLETE");
    assert_eq!(made["Description"], "A pipeline stack");
    let pipeline = output(&made, "PipelineName");
    assert!(pipeline.starts_with("ci-Pipeline-"), "{pipeline}");
    let role = output(&made, "RoleArn");
    assert!(
        role.starts_with("arn:aws:iam::000000000000:role/ci-Role-"),
        "{role}"
    );
    let exports = json(&server, &["cloudformation", "list-exports"]);
    assert_eq!(exports["Exports"][0]["Name"], "ci-pipeline");
    assert_eq!(exports["Exports"][0]["Value"], pipeline.as_str());
    let param = json(
        &server,
        &["ssm", "get-parameter", "--name", &output(&made, "Param")],
    );
    assert_eq!(param["Parameter"]["Value"], "web-eu-central-1");
    let inline = json(
        &server,
        &[
            "iam",
            "list-role-policies",
            "--role-name",
            role.rsplit('/').next().unwrap(),
        ],
    );
    assert_eq!(inline["PolicyNames"], serde_json::json!(["all"]));
    let project = physical(&server, "ci", "Build");
    let projects = json(
        &server,
        &["codebuild", "batch-get-projects", "--names", &project],
    );
    assert_eq!(projects["projects"][0]["timeoutInMinutes"], 10);
    assert_eq!(projects["projects"][0]["serviceRole"], role.as_str());
    // CloudFormation's way with configuration values: `false` is the text "false".
    let declared = json(
        &server,
        &["codepipeline", "get-pipeline", "--name", &pipeline],
    );
    let source = &declared["pipeline"]["stages"][0]["actions"][0];
    assert_eq!(source["configuration"]["PollForSourceChanges"], "false");
    let events = json(
        &server,
        &[
            "cloudformation",
            "describe-stack-events",
            "--stack-name",
            "ci",
        ],
    );
    let first = events["StackEvents"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(first["ResourceStatus"], "REVIEW_IN_PROGRESS");
    assert_eq!(
        events["StackEvents"][0]["ResourceStatus"],
        "CREATE_COMPLETE"
    );
    assert_eq!(
        events["StackEvents"][0]["ResourceType"],
        "AWS::CloudFormation::Stack"
    );

    // The pipeline the stack made runs, once its source object is there.
    let s3 = server.s3();
    s3.put_object()
        .bucket(physical(&server, "ci", "Source"))
        .key("app.zip")
        .body(ByteStream::from(zip_of(&[("index.html", "hi")])))
        .send()
        .await
        .unwrap();
    let cp = server.codepipeline();
    let run = cp
        .start_pipeline_execution()
        .name(&pipeline)
        .send()
        .await
        .unwrap();
    let id = run.pipeline_execution_id().unwrap();
    assert_eq!(
        finished(&cp, &pipeline, id).await,
        PipelineExecutionStatus::Succeeded
    );

    // No change: nothing to deploy.
    // (The CLI ends non-zero when there is nothing to deploy.)
    let out = deploy(&server, &template, &["RepoName=web"]).unwrap_err();
    assert!(out.contains("No changes to deploy"), "{out}");
    let listed = json(
        &server,
        &["cloudformation", "list-change-sets", "--stack-name", "ci"],
    );
    let failed = &listed["Summaries"][0];
    assert_eq!(failed["Status"], "FAILED");
    assert_eq!(failed["StatusReason"], "The submitted information didn't contain changes. Submit different information to create a change set.");
    cfn(
        &server,
        &[
            "cloudformation",
            "delete-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            failed["ChangeSetName"].as_str().unwrap(),
        ],
    )
    .unwrap();
    let listed = json(
        &server,
        &["cloudformation", "list-change-sets", "--stack-name", "ci"],
    );
    assert_eq!(listed["Summaries"], serde_json::json!([]));
    // A change set the stack does not have: deleted all the same, as on AWS.
    cfn(
        &server,
        &[
            "cloudformation",
            "delete-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            "never-made",
        ],
    )
    .unwrap();
    let e = cfn(
        &server,
        &[
            "cloudformation",
            "describe-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            "never-made",
        ],
    )
    .unwrap_err();
    assert!(e.contains("ChangeSet [never-made] does not exist"), "{e}");

    // An update: a resource its condition adds, one updated in place.
    let out = deploy(&server, &template, &["Env=prod"]).unwrap();
    assert!(out.contains("Successfully created/updated stack"), "{out}");
    assert_eq!(stack(&server, "ci")["StackStatus"], "UPDATE_COMPLETE");
    let projects = json(
        &server,
        &["codebuild", "batch-get-projects", "--names", &project],
    );
    assert_eq!(projects["projects"][0]["timeoutInMinutes"], 30);
    let extra = physical(&server, "ci", "Extra");
    assert!(buckets(&server).contains(&extra));

    // A change set that replaces a bucket, described, then executed.
    let replaced = std::fs::read_to_string(&template).unwrap().replace(
        "  Artifacts:\n    Type: AWS::S3::Bucket\n",
        "  Artifacts:\n    Type: AWS::S3::Bucket\n    Properties: {BucketName: ci-artifacts-replaced}\n",
    );
    assert!(replaced.contains("ci-artifacts-replaced"));
    let old_artifacts = physical(&server, "ci", "Artifacts");
    // A bucket is deleted only empty, on AWS as here: the run's artifacts go first.
    cfn(
        &server,
        &["s3", "rm", &format!("s3://{old_artifacts}"), "--recursive"],
    )
    .unwrap();
    let made = json(
        &server,
        &[
            "cloudformation",
            "create-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            "rename",
            "--template-body",
            &replaced,
            "--capabilities",
            "CAPABILITY_IAM",
            "--parameters",
            "ParameterKey=Env,UsePreviousValue=true",
            "ParameterKey=RepoName,UsePreviousValue=true",
        ],
    );
    assert!(made["Id"].as_str().unwrap().contains(":changeSet/rename/"));
    cfn(
        &server,
        &[
            "cloudformation",
            "wait",
            "change-set-create-complete",
            "--stack-name",
            "ci",
            "--change-set-name",
            "rename",
        ],
    )
    .unwrap();
    let described = json(
        &server,
        &[
            "cloudformation",
            "describe-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            "rename",
        ],
    );
    assert_eq!(described["ExecutionStatus"], "AVAILABLE");
    let changes: Vec<(String, String, String)> = described["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let rc = &c["ResourceChange"];
            (
                rc["LogicalResourceId"].as_str().unwrap().into(),
                rc["Action"].as_str().unwrap().into(),
                rc["Replacement"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("Artifacts".into(), "Modify".into(), "True".into())),
        "{changes:?}"
    );
    assert!(changes.iter().all(|(l, _, _)| l != "Build"), "{changes:?}");
    cfn(
        &server,
        &[
            "cloudformation",
            "execute-change-set",
            "--stack-name",
            "ci",
            "--change-set-name",
            "rename",
        ],
    )
    .unwrap();
    cfn(
        &server,
        &[
            "cloudformation",
            "wait",
            "stack-update-complete",
            "--stack-name",
            "ci",
        ],
    )
    .unwrap();
    assert_eq!(
        physical(&server, "ci", "Artifacts"),
        "ci-artifacts-replaced"
    );
    let now = buckets(&server);
    assert!(now.contains(&"ci-artifacts-replaced".to_string()));
    assert!(!now.contains(&old_artifacts), "{now:?}");
    // The cleanup's deletion of the old bucket is in the stack's events.
    let events = json(
        &server,
        &[
            "cloudformation",
            "describe-stack-events",
            "--stack-name",
            "ci",
        ],
    );
    let old_deleted = events["StackEvents"].as_array().unwrap().iter().any(|e| {
        e["PhysicalResourceId"] == old_artifacts.as_str()
            && e["ResourceStatus"] == "DELETE_COMPLETE"
    });
    assert!(old_deleted, "{events}");
    let declared = json(
        &server,
        &["codepipeline", "get-pipeline", "--name", &pipeline],
    );
    assert_eq!(
        declared["pipeline"]["artifactStore"]["location"],
        "ci-artifacts-replaced"
    );
    let e = cfn(
        &server,
        &[
            "cloudformation",
            "update-stack",
            "--stack-name",
            "ci",
            "--use-previous-template",
            "--capabilities",
            "CAPABILITY_IAM",
            "--parameters",
            "ParameterKey=Env,UsePreviousValue=true",
            "ParameterKey=RepoName,UsePreviousValue=true",
        ],
    )
    .unwrap_err();
    assert!(e.contains("No updates are to be performed."), "{e}");

    // Deleting the stack deletes what it made (the source bucket emptied first, as on AWS).
    empty_bucket(&server, &physical(&server, "ci", "Source"));
    empty_bucket(&server, "ci-artifacts-replaced");
    cfn(
        &server,
        &["cloudformation", "delete-stack", "--stack-name", "ci"],
    )
    .unwrap();
    cfn(
        &server,
        &[
            "cloudformation",
            "wait",
            "stack-delete-complete",
            "--stack-name",
            "ci",
        ],
    )
    .unwrap();
    let e = cfn(
        &server,
        &["cloudformation", "describe-stacks", "--stack-name", "ci"],
    )
    .unwrap_err();
    assert!(e.contains("Stack with id ci does not exist"), "{e}");
    assert!(buckets(&server).is_empty(), "{:?}", buckets(&server));
    assert_eq!(
        json(&server, &["codepipeline", "list-pipelines"])["pipelines"],
        serde_json::json!([])
    );
    assert_eq!(
        json(&server, &["iam", "list-roles"])["Roles"],
        serde_json::json!([])
    );
    let listed = json(
        &server,
        &[
            "cloudformation",
            "list-stacks",
            "--stack-status-filter",
            "DELETE_COMPLETE",
        ],
    );
    assert_eq!(listed["StackSummaries"][0]["StackName"], "ci");
}

#[test]
fn a_failing_resource_rolls_the_stack_back_and_bad_templates_are_refused() {
    let server = Server::start();
    let template = "Resources:\n  Ok: {Type: AWS::S3::Bucket, Properties: {BucketName: kept-not}}\n  Queue: {Type: AWS::SQS::Queue, DependsOn: Ok}\n";
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "bad",
            "--template-body",
            template,
        ],
    )
    .unwrap();
    let e = cfn(
        &server,
        &[
            "cloudformation",
            "wait",
            "stack-create-complete",
            "--stack-name",
            "bad",
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("ROLLBACK_COMPLETE") || e.contains("failed"),
        "{e}"
    );
    let made = stack(&server, "bad");
    assert_eq!(made["StackStatus"], "ROLLBACK_COMPLETE");
    let events = json(
        &server,
        &[
            "cloudformation",
            "describe-stack-events",
            "--stack-name",
            "bad",
        ],
    );
    let queue = events["StackEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["LogicalResourceId"] == "Queue")
        .unwrap()
        .clone();
    assert_eq!(queue["ResourceStatus"], "CREATE_FAILED");
    assert!(
        queue["ResourceStatusReason"]
            .as_str()
            .unwrap()
            .contains("AWS::SQS::Queue"),
        "{queue}"
    );
    assert!(buckets(&server).is_empty());
    let e = cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "bad",
            "--template-body",
            template,
        ],
    )
    .unwrap_err();
    assert!(e.contains("AlreadyExistsException"), "{e}");
    for (body, message) in [
        (
            "Resources: {}",
            "At least one Resources member must be defined.",
        ),
        (
            "Resources: {A: {Type: AWS::S3::Bucket, Properties: {BucketName: !Ref Nope}}}",
            "Unresolved resource dependencies [Nope]",
        ),
        (
            "Transform: AWS::Serverless-2016-10-31\nResources: {A: {Type: AWS::S3::Bucket}}",
            "is not served",
        ),
        ("{\"Resources\": ", "JSON not well-formed"),
    ] {
        let e = cfn(
            &server,
            &[
                "cloudformation",
                "validate-template",
                "--template-body",
                body,
            ],
        )
        .unwrap_err();
        assert!(
            e.contains("ValidationError") && e.contains(message),
            "{body}: {e}"
        );
    }
    let validated = json(&server, &["cloudformation", "validate-template", "--template-body",
        "Description: d\nParameters: {P: {Type: String, Default: x, Description: p}}\nResources: {R: {Type: AWS::IAM::Role, Properties: {AssumeRolePolicyDocument: {}}}}"]);
    assert_eq!(validated["Parameters"][0]["ParameterKey"], "P");
    assert_eq!(validated["Parameters"][0]["DefaultValue"], "x");
    assert_eq!(
        validated["Capabilities"],
        serde_json::json!(["CAPABILITY_IAM"])
    );
    let e = cfn(&server, &["cloudformation", "create-stack", "--stack-name", "p", "--template-body",
        "Parameters: {Env: {Type: String, AllowedValues: [a, b]}}\nResources: {R: {Type: AWS::S3::Bucket}}",
        "--parameters", "ParameterKey=Env,ParameterValue=c"]).unwrap_err();
    assert!(
        e.contains("Parameter 'Env' must be one of AllowedValues"),
        "{e}"
    );
    let e = cfn(
        &server,
        &["cloudformation", "describe-stacks", "--stack-name", "nope"],
    )
    .unwrap_err();
    assert!(e.contains("Stack with id nope does not exist"), "{e}");
}

#[test]
fn a_creation_cut_by_kill_9_ends_when_the_server_starts_again() {
    let data = tempfile::tempdir().unwrap();
    // CreateStack answers at once, so that the kill comes during the creation.
    let at_once = [("CODEPIPELINE_LOCAL_CLOUDFORMATION_ANSWER_WITHIN_MS", "0")];
    let server = Server::try_start_with(data.path(), &at_once).unwrap();
    let mut template = String::from("Resources:\n");
    for i in 0..150 {
        template.push_str(&format!("  P{i}: {{Type: AWS::SSM::Parameter, Properties: {{Name: /cut/p{i}, Type: String, Value: v}}}}\n"));
    }
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "cut",
            "--template-body",
            &template,
        ],
    )
    .unwrap();
    server.kill9();
    let server = Server::start_in(data.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let status = stack(&server, "cut")["StackStatus"]
            .as_str()
            .unwrap()
            .to_string();
        if !status.ends_with("_IN_PROGRESS") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stack still {status} after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let left = json(
        &server,
        &[
            "ssm",
            "get-parameters-by-path",
            "--path",
            "/cut",
            "--max-items",
            "1000",
        ],
    );
    let count = left["Parameters"].as_array().map_or(0, Vec::len);
    match status.as_str() {
        // Cut during the creation: rolled back, nothing left.
        "ROLLBACK_COMPLETE" => assert_eq!(count, 0, "{left}"),
        // Done before the kill: everything there.
        "CREATE_COMPLETE" => assert_eq!(count, 150),
        other => panic!("stack ended {other}"),
    }
}

/// The template the deploy action deploys: a parameter whose value is the `Value` parameter.
const ACTION_TEMPLATE: &str = "Parameters:\n  Value: {Type: String}\n  Suffix: {Type: String}\nResources:\n  Param:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: !Sub '/deployed/${Suffix}', Type: String, Value: !Ref Value}\nOutputs:\n  ParamName: {Value: !Ref Param}\n  ParamValue: {Value: !Ref Value}\n";

fn cfn_action(
    name: &str,
    run_order: u32,
    config: Value,
    outputs: &[&str],
    namespace: Option<&str>,
) -> Value {
    let mut action = serde_json::json!({
        "name": name, "runOrder": run_order,
        "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CloudFormation", "version": "1"},
        "configuration": config,
        "inputArtifacts": [{"name": "src"}],
        "outputArtifacts": outputs.iter().map(|o| serde_json::json!({"name": o})).collect::<Vec<_>>(),
    });
    if let Some(ns) = namespace {
        action["namespace"] = ns.into();
    }
    action
}

#[tokio::test]
async fn the_deploy_action_runs_each_mode_with_its_files_overrides_and_outputs() {
    use crate::engine::tutorial_buckets;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let source = zip_of(&[
        ("infra/template.yaml", ACTION_TEMPLATE),
        (
            "infra/config.json",
            r#"{"Parameters": {"Value": "from-config", "Suffix": "x"}, "Tags": {"team": "ci"}}"#,
        ),
        ("infra/params.json", r#"{"value": "from-param-file"}"#),
        ("broken.yaml", "Resources:\n  Q: {Type: AWS::SQS::Queue}\n"),
    ]);
    s3.put_object()
        .bucket("source-bucket")
        .key("infra.zip")
        .body(ByteStream::from(source))
        .send()
        .await
        .unwrap();
    // A stack left failed beforehand, for REPLACE_ON_FAILURE.
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "broken",
            "--template-body",
            "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
        ],
    )
    .unwrap();
    assert_eq!(stack(&server, "broken")["StackStatus"], "ROLLBACK_COMPLETE");
    let config = |mode: &str, stack: &str, extra: Value| {
        let mut c = serde_json::json!({"ActionMode": mode, "StackName": stack});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let template = serde_json::json!({"TemplatePath": "src::infra/template.yaml"});
    let declaration = serde_json::json!({
        "name": "infra", "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "infra.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "src"}]}]},
            {"name": "Create", "actions": [cfn_action("Create", 1, config("CREATE_UPDATE", "app", serde_json::json!({
                "TemplatePath": "src::infra/template.yaml",
                "TemplateConfiguration": "src::infra/config.json",
                "OutputFileName": "outputs.json"})), &["stackout"], Some("Created"))]},
            {"name": "Publish", "actions": [{"name": "Publish",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "#{Created.ParamValue}"},
                "inputArtifacts": [{"name": "stackout"}]}]},
            {"name": "ChangeSet", "actions": [
                cfn_action("Prepare", 1, config("CHANGE_SET_REPLACE", "app", serde_json::json!({
                    "TemplatePath": "src::infra/template.yaml", "ChangeSetName": "next",
                    "ParameterOverrides": "{\"Value\": {\"Fn::GetParam\": [\"src\", \"infra/params.json\", \"value\"]}, \"Suffix\": \"x\"}"})), &[], None),
                cfn_action("Execute", 2, config("CHANGE_SET_EXECUTE", "app", serde_json::json!({"ChangeSetName": "next"})), &[], Some("Executed"))]},
            {"name": "Replace", "actions": [cfn_action("Replace", 1, config("REPLACE_ON_FAILURE", "broken", serde_json::json!({
                "TemplatePath": "src::infra/template.yaml",
                "ParameterOverrides": "{\"Value\": {\"Fn::GetArtifactAtt\": [\"src\", \"BucketName\"]}, \"Suffix\": \"y\"}"})), &[], None)]},
            {"name": "Delete", "actions": [cfn_action("Delete", 1, config("DELETE_ONLY", "app", serde_json::json!({}).clone()), &[], None)]},
        ]
    });
    let _ = template;
    let r = server.call(
        "CreatePipeline",
        serde_json::json!({ "pipeline": declaration }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = crate::engine::latest_execution(&cp, "infra").await;
    let status = finished(&cp, "infra", &id).await;
    let actions = server
        .call(
            "ListActionExecutions",
            serde_json::json!({"pipelineName": "infra"}),
        )
        .json();
    assert_eq!(status, PipelineExecutionStatus::Succeeded, "{actions}");
    let details = actions["actionExecutionDetails"].as_array().unwrap();
    let of = |name: &str| {
        details
            .iter()
            .find(|d| d["actionName"] == name)
            .unwrap()
            .clone()
    };
    let created = of("Create");
    assert_eq!(
        created["output"]["outputVariables"]["ParamValue"],
        "from-config"
    );
    assert_eq!(
        created["output"]["outputVariables"]["ParamName"],
        "/deployed/x"
    );
    assert!(created["output"]["executionResult"]["externalExecutionId"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:cloudformation:"));
    // The outputs file, through the artifact the Publish action deployed under the output's value.
    let published = crate::engine::body(&s3, "target-bucket", "from-config/outputs.json").await;
    let outputs: Value = serde_json::from_slice(&published).unwrap();
    assert_eq!(outputs["ParamName"], "/deployed/x");
    assert_eq!(
        of("Execute")["output"]["outputVariables"]["ParamValue"],
        "from-param-file"
    );
    // REPLACE_ON_FAILURE replaced the failed stack; DELETE_ONLY deleted app (and its parameter).
    let replaced = stack(&server, "broken");
    assert_eq!(replaced["StackStatus"], "CREATE_COMPLETE");
    assert_eq!(output(&replaced, "ParamValue"), "artifact-store-bucket");
    let e = cfn(
        &server,
        &["cloudformation", "describe-stacks", "--stack-name", "app"],
    )
    .unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    let gone = json(
        &server,
        &["ssm", "get-parameters", "--names", "/deployed/x"],
    );
    assert_eq!(
        gone["InvalidParameters"],
        serde_json::json!(["/deployed/x"])
    );

    // A stack that fails fails the action, naming its resource.
    let failing = serde_json::json!({
        "name": "failing", "pipelineType": "V2",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "infra.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "src"}]}]},
            {"name": "Deploy", "actions": [cfn_action("Deploy", 1, config("CREATE_UPDATE", "bad", serde_json::json!({"TemplatePath": "src::broken.yaml"})), &[], None)]}
        ]
    });
    let r = server.call("CreatePipeline", serde_json::json!({ "pipeline": failing }));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = crate::engine::latest_execution(&cp, "failing").await;
    assert_eq!(
        finished(&cp, "failing", &id).await,
        PipelineExecutionStatus::Failed
    );
    let actions = server
        .call(
            "ListActionExecutions",
            serde_json::json!({"pipelineName": "failing"}),
        )
        .json();
    let deploy = actions["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["actionName"] == "Deploy")
        .unwrap()
        .clone();
    let message = deploy["output"]["executionResult"]["externalExecutionSummary"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + deploy["output"]["executionResult"]["errorDetails"]["message"]
            .as_str()
            .unwrap_or_default();
    assert!(
        message.contains("ROLLBACK_COMPLETE") && message.contains("AWS::SQS::Queue"),
        "{deploy}"
    );
}

#[tokio::test]
async fn rules_custom_action_types_and_webhooks_are_made_from_a_template() {
    let server = Server::start();
    let template = r#"
Resources:
  Source: {Type: AWS::S3::Bucket, Properties: {VersioningConfiguration: {Status: Enabled}}}
  Target: {Type: AWS::S3::Bucket}
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      RoleArn: !Sub arn:aws:iam::${AWS::AccountId}:role/role
      ArtifactStore: {Type: S3, Location: !Ref Target}
      Stages:
        - Name: Source
          Actions:
            - Name: Source
              ActionTypeId: {Category: Source, Owner: AWS, Provider: S3, Version: 1}
              Configuration: {S3Bucket: !Ref Source, S3ObjectKey: app.zip, PollForSourceChanges: false}
              OutputArtifacts: [{Name: code}]
        - Name: Deploy
          Actions:
            - Name: Deploy
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: S3, Version: 1}
              Configuration: {BucketName: !Ref Target, Extract: true}
              InputArtifacts: [{Name: code}]
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [acme.release]}
      Targets:
        - Id: pipeline
          Arn: !Sub arn:aws:codepipeline:${AWS::Region}:${AWS::AccountId}:${Pipeline}
  Custom:
    Type: AWS::CodePipeline::CustomActionType
    Properties:
      Category: Build
      Provider: MyTool
      Version: "1"
      Settings: {EntityUrlTemplate: "https://tool.example/{Config:Project}"}
      ConfigurationProperties: [{Name: Project, Required: true, Key: true, Secret: false}]
      InputArtifactDetails: {MinimumCount: 0, MaximumCount: 1}
      OutputArtifactDetails: {MinimumCount: 0, MaximumCount: 1}
  Hook:
    Type: AWS::CodePipeline::Webhook
    Properties:
      Authentication: UNAUTHENTICATED
      AuthenticationConfiguration: {}
      Filters: [{JsonPath: "$.ref", MatchEquals: refs/heads/main}]
      TargetPipeline: !Ref Pipeline
      TargetAction: Source
      TargetPipelineVersion: 1
Outputs:
  Pipeline: {Value: !Ref Pipeline}
  RuleArn: {Value: !GetAtt Rule.Arn}
  HookUrl: {Value: !GetAtt Hook.Url}
"#;
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "wired",
            "--template-body",
            template,
        ],
    )
    .unwrap();
    wait(&server, "stack-create-complete", "wired");
    let made = stack(&server, "wired");
    let (pipeline, rule) = (output(&made, "Pipeline"), output(&made, "RuleArn"));
    assert!(
        rule.starts_with("arn:aws:events:eu-central-1:000000000000:rule/wired-Rule-"),
        "{rule}"
    );
    assert!(
        output(&made, "HookUrl").contains("/_codepipeline_local/webhooks/"),
        "{made}"
    );
    // The rule starts the pipeline on an event that matches.
    let cp = server.codepipeline();
    let first = crate::engine::latest_execution(&cp, &pipeline).await;
    finished(&cp, &pipeline, &first).await;
    let put = json(
        &server,
        &[
            "events",
            "put-events",
            "--entries",
            r#"[{"Source": "acme.release", "DetailType": "Release", "Detail": "{}"}]"#,
        ],
    );
    assert_eq!(put["FailedEntryCount"], 0);
    let runs = crate::git::executions(&server, &pipeline, 2).await;
    assert_eq!(runs[0]["trigger"]["triggerType"], "CloudWatchEvent");
    assert_eq!(runs[0]["trigger"]["triggerDetail"], rule.as_str());
    let types = json(
        &server,
        &[
            "codepipeline",
            "list-action-types",
            "--action-owner-filter",
            "Custom",
        ],
    );
    assert_eq!(types["actionTypes"][0]["id"]["provider"], "MyTool");
    let hooks = json(&server, &["codepipeline", "list-webhooks"]);
    assert_eq!(
        hooks["webhooks"][0]["definition"]["targetPipeline"],
        pipeline.as_str()
    );
    assert_eq!(
        hooks["webhooks"][0]["definition"]["authenticationConfiguration"],
        serde_json::json!({})
    );

    // Deleting the stack takes them away (its buckets emptied first).
    for logical in ["Source", "Target"] {
        empty_bucket(&server, &physical(&server, "wired", logical));
    }
    cfn(
        &server,
        &["cloudformation", "delete-stack", "--stack-name", "wired"],
    )
    .unwrap();
    cfn(
        &server,
        &[
            "cloudformation",
            "wait",
            "stack-delete-complete",
            "--stack-name",
            "wired",
        ],
    )
    .unwrap();
    let name = rule.rsplit('/').next().unwrap();
    let e = cfn(&server, &["events", "describe-rule", "--name", name]).unwrap_err();
    assert!(e.contains("ResourceNotFoundException"), "{e}");
    assert_eq!(
        json(&server, &["codepipeline", "list-webhooks"])["webhooks"],
        serde_json::json!([])
    );
    let types = json(
        &server,
        &[
            "codepipeline",
            "list-action-types",
            "--action-owner-filter",
            "Custom",
        ],
    );
    assert_eq!(types["actionTypes"], serde_json::json!([]));
}

#[test]
fn a_lambda_function_is_made_updated_and_deleted_from_a_template() {
    let server = Server::start();
    let template = |message: &str| {
        format!(
            "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {{Version: '2012-10-17', Statement: [{{Effect: Allow, Principal: {{Service: lambda.amazonaws.com}}, Action: 'sts:AssumeRole'}}]}}\n  Function:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: index.handler\n      Role: !GetAtt Role.Arn\n      Timeout: 30\n      Environment: {{Variables: {{GREETING: hello}}}}\n      Code:\n        ZipFile: |\n          import os\n          def handler(event, context):\n              return {{'message': '{message}', 'greeting': os.environ['GREETING']}}\n  Allow:\n    Type: AWS::Lambda::Permission\n    Properties: {{FunctionName: !Ref Function, Action: 'lambda:InvokeFunction', Principal: events.amazonaws.com}}\nOutputs:\n  Name: {{Value: !Ref Function}}\n  Arn: {{Value: !GetAtt Function.Arn}}\n"
        )
    };
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "fn",
            "--capabilities",
            "CAPABILITY_IAM",
            "--template-body",
            &template("first"),
        ],
    )
    .unwrap();
    wait(&server, "stack-create-complete", "fn");
    let made = stack(&server, "fn");
    let name = output(&made, "Name");
    assert_eq!(
        output(&made, "Arn"),
        format!("arn:aws:lambda:eu-central-1:000000000000:function:{name}")
    );
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("answer.json");
    let invoke = |server: &Server| {
        cfn(
            server,
            &[
                "lambda",
                "invoke",
                "--function-name",
                &name,
                out.to_str().unwrap(),
            ],
        )
        .unwrap();
        serde_json::from_str::<Value>(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    assert_eq!(
        invoke(&server),
        serde_json::json!({"message": "first", "greeting": "hello"})
    );
    cfn(
        &server,
        &[
            "cloudformation",
            "update-stack",
            "--stack-name",
            "fn",
            "--capabilities",
            "CAPABILITY_IAM",
            "--template-body",
            &template("second"),
        ],
    )
    .unwrap();
    wait(&server, "stack-update-complete", "fn");
    assert_eq!(invoke(&server)["message"], "second");
    cfn(
        &server,
        &["cloudformation", "delete-stack", "--stack-name", "fn"],
    )
    .unwrap();
    wait(&server, "stack-delete-complete", "fn");
    let e = cfn(
        &server,
        &["lambda", "get-function", "--function-name", &name],
    )
    .unwrap_err();
    assert!(e.contains("ResourceNotFoundException"), "{e}");
}

#[test]
fn a_replacement_keeps_the_old_resource_when_its_update_replace_policy_retains_it() {
    let server = Server::start();
    let template = |name: &str, policy: &str| {
        format!("Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    UpdateReplacePolicy: {policy}\n    Properties: {{Name: {name}, Type: String, Value: v}}\n")
    };
    cfn(
        &server,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            "keep",
            "--template-body",
            &template("/keep/a", "Retain"),
        ],
    )
    .unwrap();
    wait(&server, "stack-create-complete", "keep");
    cfn(
        &server,
        &[
            "cloudformation",
            "update-stack",
            "--stack-name",
            "keep",
            "--template-body",
            &template("/keep/b", "Retain"),
        ],
    )
    .unwrap();
    wait(&server, "stack-update-complete", "keep");
    cfn(
        &server,
        &[
            "cloudformation",
            "update-stack",
            "--stack-name",
            "keep",
            "--template-body",
            &template("/keep/c", "Delete"),
        ],
    )
    .unwrap();
    wait(&server, "stack-update-complete", "keep");
    let left = json(
        &server,
        &[
            "ssm",
            "get-parameters",
            "--names",
            "/keep/a",
            "/keep/b",
            "/keep/c",
        ],
    );
    let names: Vec<&str> = left["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    // a: replaced while Retain, kept; b: replaced while Delete, deleted; c: the stack's.
    assert_eq!(names, ["/keep/a", "/keep/c"]);
    assert_eq!(physical(&server, "keep", "P"), "/keep/c");
}
