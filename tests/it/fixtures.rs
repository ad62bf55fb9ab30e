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
