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
