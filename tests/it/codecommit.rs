//! The embedded CodeCommit: repositories made with the AWS CLI, cloned and pushed to with `git`
//! over HTTP, read with the API, and a CodeCommit source whose pushes start its pipeline.

use std::path::Path;

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use serde_json::{json, Value};

use crate::common::Server;
use crate::engine::{body, finished, latest_execution, tutorial_buckets};
use crate::git::{commit_change, git};

fn cli(server: &Server, args: &[&str]) -> Result<Value, String> {
    let out = server.aws_cli(args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    if out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// A clone of `url` in `dir` with one commit pushed to main: its commit id.
pub(crate) fn push_first(url: &str, dir: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["clone", "-q", url])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(dir, &["checkout", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>v1</h1>\n").unwrap();
    std::fs::write(dir.join("src/app.sh"), "echo hi\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "First"]);
    git(dir, &["push", "-q", "origin", "main"]);
    git(dir, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn repositories_are_pushed_to_over_http_read_and_start_their_pipelines() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let made = cli(
        &server,
        &[
            "codecommit",
            "create-repository",
            "--repository-name",
            "app",
        ],
    )
    .unwrap();
    let meta = &made["repositoryMetadata"];
    assert_eq!(
        meta["Arn"],
        "arn:aws:codecommit:eu-central-1:000000000000:app"
    );
    let url = meta["cloneUrlHttp"].as_str().unwrap().to_string();
    assert!(url.starts_with(&server.endpoint), "{url}");
    let again = cli(
        &server,
        &[
            "codecommit",
            "create-repository",
            "--repository-name",
            "app",
        ],
    );
    assert!(again.unwrap_err().contains("RepositoryNameExistsException"));

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("app");
    let first = push_first(&url, &dir);
    let branch = cli(
        &server,
        &[
            "codecommit",
            "get-branch",
            "--repository-name",
            "app",
            "--branch-name",
            "main",
        ],
    )
    .unwrap();
    assert_eq!(branch["branch"]["commitId"], first.as_str());
    let commit = cli(
        &server,
        &[
            "codecommit",
            "get-commit",
            "--repository-name",
            "app",
            "--commit-id",
            &first,
        ],
    )
    .unwrap();
    assert_eq!(commit["commit"]["message"], "First");
    assert_eq!(commit["commit"]["author"]["email"], "dev@example.com");
    let folder = cli(
        &server,
        &[
            "codecommit",
            "get-folder",
            "--repository-name",
            "app",
            "--folder-path",
            "/",
        ],
    )
    .unwrap();
    assert_eq!(folder["files"][0]["absolutePath"], "index.html");
    assert_eq!(folder["subFolders"][0]["absolutePath"], "src");
    let file = cli(
        &server,
        &[
            "codecommit",
            "get-file",
            "--repository-name",
            "app",
            "--file-path",
            "src/app.sh",
        ],
    )
    .unwrap();
    assert_eq!(file["fileSize"], 8);
    assert_eq!(file["commitId"], first.as_str());
    let repo = cli(
        &server,
        &["codecommit", "get-repository", "--repository-name", "app"],
    )
    .unwrap();
    assert_eq!(repo["repositoryMetadata"]["defaultBranch"], "main");
    let listed = cli(&server, &["codecommit", "list-repositories"]).unwrap();
    assert_eq!(listed["repositories"][0]["repositoryName"], "app");
    for (args, code) in [
        (
            vec!["get-repository", "--repository-name", "nope"],
            "RepositoryDoesNotExistException",
        ),
        (
            vec![
                "get-branch",
                "--repository-name",
                "app",
                "--branch-name",
                "dev",
            ],
            "BranchDoesNotExistException",
        ),
        (
            vec![
                "get-file",
                "--repository-name",
                "app",
                "--file-path",
                "missing.txt",
            ],
            "FileDoesNotExistException",
        ),
    ] {
        let mut all = vec!["codecommit"];
        all.extend(args);
        assert!(cli(&server, &all).unwrap_err().contains(code), "{code}");
    }

    // A pipeline on app/main reads the pushed commit; the next push starts it at once.
    let decl = json!({
        "name": "app", "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source", "namespace": "SourceVariables",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"},
                "configuration": {"RepositoryName": "app", "BranchName": "main"},
                "outputArtifacts": [{"name": "code"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "app"},
                "inputArtifacts": [{"name": "code"}]}]}
        ]
    });
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "app").await;
    assert_eq!(
        finished(&cp, "app", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "app/index.html").await,
        b"<h1>v1</h1>\n"
    );
    let second = commit_change(&dir, "<h1>v2</h1>\n", "Second");
    git(&dir, &["push", "-q", "origin", "main"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let listed = server
            .call("ListPipelineExecutions", json!({"pipelineName": "app"}))
            .json();
        let runs = listed["pipelineExecutionSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() == 2 {
            break runs[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run started: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(run["trigger"]["triggerType"], "PollForSourceChanges");
    let id = run["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "app", id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "app/index.html").await,
        b"<h1>v2</h1>\n"
    );
    let variables = &crate::git::source_variables(&server, "app", id);
    assert_eq!(variables["CommitId"], second.as_str());
    assert_eq!(variables["RepositoryName"], "app");
    assert_eq!(variables["BranchName"], "main");
    assert_eq!(variables["CommitMessage"], "Second");

    // A deleted repository answers its id and can no longer be cloned.
    let deleted = cli(
        &server,
        &[
            "codecommit",
            "delete-repository",
            "--repository-name",
            "app",
        ],
    )
    .unwrap();
    assert_eq!(deleted["repositoryId"], meta["repositoryId"]);
    let gone = std::process::Command::new("git")
        .args(["ls-remote", &url])
        .output()
        .unwrap();
    assert!(!gone.status.success());
}
