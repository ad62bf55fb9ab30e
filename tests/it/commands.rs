//! The Commands action: shell commands on the input artifact, an output artifact of the
//! declared files, declared output variables used downstream, its output readable as a build's,
//! and a failing command failing the action with its last lines.

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::Server;
use crate::engine::{body, finished, latest_execution, tutorial_buckets, zip_of};

fn commands_pipeline(name: &str, commands: Value) -> Value {
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "src"}]}]},
            {"name": "Work", "actions": [{"name": "Shell", "namespace": "Shell",
                "actionTypeId": {"category": "Compute", "owner": "AWS", "provider": "Commands", "version": "1"},
                "commands": commands,
                "outputVariables": ["GREETING"],
                "inputArtifacts": [{"name": "src"}],
                "outputArtifacts": [{"name": "made", "files": ["out/**/*"]}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true",
                                  "ObjectKey": "#{Shell.GREETING}"},
                "inputArtifacts": [{"name": "made"}]}]}
        ]
    })
}

async fn shell_run(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    id: &str,
) -> aws_sdk_codepipeline::types::ActionExecutionDetail {
    crate::engine::action_run(cp, pipeline, Some(id), "Shell").await
}

#[tokio::test]
async fn commands_run_on_the_input_and_give_files_and_variables() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    s3.put_object()
        .bucket("source-bucket")
        .key("app.zip")
        .body(ByteStream::from(zip_of(&[("name.txt", "world\n")])))
        .send()
        .await
        .unwrap();
    crate::engine::create(
        &server,
        commands_pipeline(
            "shell",
            json!([
                "mkdir -p out/nested",
                "echo \"hello $(cat name.txt)\" > out/nested/greeting.txt",
                "export GREETING=greetings-$(cat name.txt)",
                "echo 'said: it works'"
            ]),
        ),
    );
    let id = latest_execution(&cp, "shell").await;
    assert_eq!(
        finished(&cp, "shell", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    // The output artifact's files, deployed under the output variable's value.
    assert_eq!(
        body(
            &s3,
            "target-bucket",
            "greetings-world/out/nested/greeting.txt"
        )
        .await,
        b"hello world\n"
    );
    let run = shell_run(&cp, "shell", &id).await;
    let output = run.output().unwrap();
    assert_eq!(
        output.output_variables().unwrap()["GREETING"],
        "greetings-world"
    );
    // Its output reads as a build's.
    let build = output
        .execution_result()
        .unwrap()
        .external_execution_id()
        .unwrap()
        .to_string();
    assert!(build.starts_with("codepipeline-commands:"), "{build}");
    let log = server.run_cli(&["logs", &build]);
    assert!(log.contains("said: it works"), "{log}");

    // A failing command fails the action with its last lines.
    crate::engine::create(
        &server,
        commands_pipeline("broken", json!(["echo 'about to fail'", "exit 7"])),
    );
    let id = latest_execution(&cp, "broken").await;
    assert_eq!(
        finished(&cp, "broken", &id).await,
        PipelineExecutionStatus::Failed
    );
    let run = shell_run(&cp, "broken", &id).await;
    let message = run
        .output()
        .unwrap()
        .execution_result()
        .unwrap()
        .error_details()
        .unwrap()
        .message()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("Build codepipeline-commands:")
            && message.contains("failed in phase BUILD"),
        "{message}"
    );
    assert!(message.contains("about to fail"), "{message}");
}
