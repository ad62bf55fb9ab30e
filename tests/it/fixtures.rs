//! Data dirs written by released formats still open, with the same answers.

use serde_json::{json, Value};

use crate::common::{repo_file, Server};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn expected(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_file(&format!("tests/fixtures/format-1/{name}"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn format_1_opens() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_file("tests/fixtures/format-1/events"),
        &tmp.path().join("events"),
    );
    let server = Server::start_in(tmp.path());
    assert_eq!(
        server
            .call("GetPipeline", json!({"name": "pipeline"}))
            .json(),
        expected("get-pipeline.json")
    );
    assert_eq!(
        server
            .call("GetPipeline", json!({"name": "pipeline", "version": 1}))
            .json(),
        expected("get-pipeline-version-1.json")
    );
    let tags = server.call(
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:codepipeline:eu-central-1:000000000000:pipeline"}),
    );
    assert_eq!(
        tags.json()["tags"],
        json!([{"key": "purpose", "value": "tutorial"}])
    );
    assert_eq!(
        server
            .call("GetPipeline", json!({"name": "deleted"}))
            .error_code(),
        "PipelineNotFoundException"
    );
}

/// The executions of `pipeline`, waiting (at most 30 s) until there is at least one.
fn executions_of(server: &Server, pipeline: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = server
            .call(
                "ListPipelineExecutions",
                json!({ "pipelineName": pipeline }),
            )
            .json();
        let summaries = list["pipelineExecutionSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !summaries.is_empty() {
            return summaries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no execution of {pipeline} after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A pipeline recorded without its first execution (the format-1 data dir predates them, as a
/// process that died just after CreatePipeline answered would leave it) gets it at the next
/// start, once.
#[test]
fn a_pipeline_without_executions_gets_its_first_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_file("tests/fixtures/format-1/events"),
        &tmp.path().join("events"),
    );
    let server = Server::start_in(tmp.path());
    let first = executions_of(&server, "pipeline");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["trigger"]["triggerType"], "CreatePipeline");
    let _tmp = server.kill9();
    let restarted = Server::start_in(tmp.path());
    let again = executions_of(&restarted, "pipeline");
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0]["pipelineExecutionId"],
        first[0]["pipelineExecutionId"]
    );
}

/// `value` without the members named `name`, at any depth.
fn without(mut value: Value, name: &str) -> Value {
    fn strip(v: &mut Value, name: &str) {
        match v {
            Value::Object(map) => {
                map.remove(name);
                map.values_mut().for_each(|v| strip(v, name));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| strip(v, name)),
            _ => {}
        }
    }
    strip(&mut value, name);
    value
}

/// A format-2 data dir written before the declaration was typed (event schema 1: declarations
/// and action type ids as they came, statuses as text) opens with the same answers, and its
/// waiting execution goes on.
#[tokio::test]
async fn format_2_from_the_untyped_model_opens_and_its_waiting_execution_goes_on() {
    opens_and_its_waiting_execution_goes_on("format-2").await;
}

/// A format-3 data dir (compressed appends), written by the build that introduced it, opens
/// with the same answers (its shelves are built by the first fold), and its waiting execution
/// goes on.
#[tokio::test]
async fn format_3_opens_and_its_waiting_execution_goes_on() {
    opens_and_its_waiting_execution_goes_on("format-3").await;
}

async fn opens_and_its_waiting_execution_goes_on(fixture: &str) {
    use aws_sdk_codepipeline::types::{
        ApprovalStatus, PipelineExecutionStatus, StageTransitionType,
    };
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_file(&format!("tests/fixtures/{fixture}/data")),
        tmp.path(),
    );
    let answers: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file(&format!("tests/fixtures/{fixture}/answers.json")))
            .unwrap(),
    )
    .unwrap();
    let server = Server::start_in(tmp.path());
    for name in ["pipeline", "failing", "stopped", "gated"] {
        let expected = &answers[name];
        for (operation, input) in [
            ("GetPipeline", json!({"name": name})),
            ("ListPipelineExecutions", json!({"pipelineName": name})),
            ("ListActionExecutions", json!({"pipelineName": name})),
            ("GetPipelineState", json!({"name": name})),
        ] {
            let mut answer = server.call(operation, input).json();
            // GetPipelineState shows the revision each source read since format 3.
            if fixture == "format-2" {
                answer = without(answer, "currentRevision");
            }
            assert_eq!(answer, expected[operation], "{operation} of {name}");
        }
    }
    // The waiting approval is still answerable, and the execution goes on through the
    // transition once it is enabled.
    let cp = server.codepipeline();
    let state = &answers["gated"]["GetPipelineState"];
    let token = state["stageStates"][1]["actionStates"][0]["latestExecution"]["token"]
        .as_str()
        .unwrap();
    let id = state["stageStates"][1]["latestExecution"]["pipelineExecutionId"]
        .as_str()
        .unwrap();
    cp.put_approval_result()
        .pipeline_name("gated")
        .stage_name("gate")
        .action_name("approve")
        .token(token)
        .result(
            aws_sdk_codepipeline::types::ApprovalResult::builder()
                .summary("fine")
                .status(ApprovalStatus::Approved)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    cp.enable_stage_transition()
        .pipeline_name("gated")
        .stage_name("stage2")
        .transition_type(StageTransitionType::Inbound)
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::engine::finished(&cp, "gated", id).await,
        PipelineExecutionStatus::Succeeded
    );
}
