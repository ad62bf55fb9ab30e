//! Connections (`codestar-connections`, `codeconnections`) with the AWS CLI, and the connection
//! source action reading real Git repositories made here with the `git` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use serde_json::{json, Value};

use crate::common::Server;
use crate::engine::{body, finished, latest_execution, tutorial_buckets};

/// Runs git in `dir`; its standard output, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git must be installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository `<root>/acme/web` on branch main with `index.html` and `css/site.css`.
pub(crate) fn repository(root: &Path) -> PathBuf {
    let dir = root.join("acme").join("web");
    std::fs::create_dir_all(dir.join("css")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("index.html"), "<h1>v1</h1>\n").unwrap();
    std::fs::write(dir.join("css/site.css"), "h1 { color: red }\n").unwrap();
    git(&dir, &["add", "."]);
    git(
        &dir,
        &["commit", "-q", "-m", "First version\n\nWith a body."],
    );
    dir
}

/// Commits `content` as `index.html`; the new commit id.
pub(crate) fn commit_change(dir: &Path, content: &str, message: &str) -> String {
    std::fs::write(dir.join("index.html"), content).unwrap();
    git(dir, &["commit", "-q", "-am", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn aws(server: &Server, args: &[&str]) -> Value {
    let out = server.aws_cli(args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A connection made with the AWS CLI; its ARN.
pub(crate) fn connection(server: &Server) -> String {
    let made = aws(
        server,
        &[
            "codestar-connections",
            "create-connection",
            "--provider-type",
            "GitHub",
            "--connection-name",
            "local",
        ],
    );
    made["ConnectionArn"].as_str().unwrap().to_string()
}

/// A V2 pipeline: the connection source on acme/web `branch`, then an S3 deploy that extracts
/// the tree under `site/`.
pub(crate) fn git_declaration(name: &str, arn: &str, branch: &str) -> Value {
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source", "namespace": "SourceVariables",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
                "configuration": {"ConnectionArn": arn, "FullRepositoryId": "acme/web", "BranchName": branch,
                                  "OutputArtifactFormat": "CODE_ZIP"},
                "outputArtifacts": [{"name": "code"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "site"},
                "inputArtifacts": [{"name": "code"}]}]}
        ]
    })
}

pub(crate) fn server_for(repos: &Path) -> Server {
    Server::start_with(&[("CODEPIPELINE_LOCAL_GIT_REPOS_DIR", repos.to_str().unwrap())])
}

#[test]
fn connections_are_created_read_listed_tagged_and_deleted_under_both_names() {
    let server = Server::start();
    let arn = connection(&server);
    assert!(
        arn.starts_with("arn:aws:codestar-connections:eu-central-1:000000000000:connection/"),
        "{arn}"
    );
    let got = aws(
        &server,
        &[
            "codestar-connections",
            "get-connection",
            "--connection-arn",
            &arn,
        ],
    );
    assert_eq!(got["Connection"]["ConnectionStatus"], "AVAILABLE");
    assert_eq!(got["Connection"]["ProviderType"], "GitHub");
    assert_eq!(got["Connection"]["OwnerAccountId"], "000000000000");
    // The same connection under the other service name.
    let other = arn.replace("codestar-connections", "codeconnections");
    let got = aws(
        &server,
        &[
            "codeconnections",
            "get-connection",
            "--connection-arn",
            &other,
        ],
    );
    assert_eq!(got["Connection"]["ConnectionName"], "local");
    let made = aws(
        &server,
        &[
            "codeconnections",
            "create-connection",
            "--provider-type",
            "GitLab",
            "--connection-name",
            "lab",
            "--tags",
            "Key=team,Value=web",
        ],
    );
    let lab = made["ConnectionArn"].as_str().unwrap().to_string();
    assert!(lab.starts_with("arn:aws:codeconnections:"), "{lab}");
    let listed = aws(&server, &["codestar-connections", "list-connections"]);
    assert_eq!(listed["Connections"].as_array().unwrap().len(), 2);
    let gitlab = aws(
        &server,
        &[
            "codestar-connections",
            "list-connections",
            "--provider-type-filter",
            "GitLab",
        ],
    );
    assert_eq!(gitlab["Connections"][0]["ConnectionArn"], lab.as_str());
    aws(
        &server,
        &[
            "codeconnections",
            "tag-resource",
            "--resource-arn",
            &lab,
            "--tags",
            "Key=env,Value=dev",
        ],
    );
    let tags = aws(
        &server,
        &[
            "codeconnections",
            "list-tags-for-resource",
            "--resource-arn",
            &lab,
        ],
    );
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 2);
    aws(
        &server,
        &[
            "codestar-connections",
            "delete-connection",
            "--connection-arn",
            &arn,
        ],
    );
    let raw = server.client().raw_for(
        "codestar-connections",
        Some("com.amazonaws.codestar.connections.CodeStar_connections_20191201.GetConnection"),
        json!({ "ConnectionArn": arn }).to_string().as_bytes(),
    );
    assert_eq!(
        raw.error_code(),
        "ResourceNotFoundException",
        "{}",
        raw.text()
    );
    let bad = server.client().raw_for(
        "codestar-connections",
        Some("com.amazonaws.codestar.connections.CodeStar_connections_20191201.CreateConnection"),
        json!({ "ConnectionName": "x", "ProviderType": "Nowhere" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(bad.error_code(), "ValidationException", "{}", bad.text());
    let hosts = server.client().raw_for(
        "codestar-connections",
        Some("com.amazonaws.codestar.connections.CodeStar_connections_20191201.ListHosts"),
        b"{}",
    );
    assert_eq!(hosts.status, 501);
    assert!(hosts.text().contains("ListHosts"), "{}", hosts.text());
}

#[tokio::test]
async fn a_connection_source_deploys_the_tree_of_the_branch_head_with_its_commit_variables() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repository(repos.path());
    let server = server_for(repos.path());
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let arn = connection(&server);
    // Only the starts this test makes: a push must not start a run of its own meanwhile.
    let mut declaration = git_declaration("web", &arn, "main");
    declaration["stages"][0]["actions"][0]["configuration"]["DetectChanges"] = json!("false");
    let first = run_first(&server, declaration).await;
    let head = git(&dir, &["rev-parse", "HEAD"]);
    // The tree, as git archive has it, extracted under site/.
    assert_eq!(
        body(&s3, "target-bucket", "site/index.html").await,
        b"<h1>v1</h1>\n"
    );
    assert_eq!(
        body(&s3, "target-bucket", "site/css/site.css").await,
        b"h1 { color: red }\n"
    );
    let variables = &source_variables(&server, "web", &first);
    assert_eq!(variables["CommitId"], head.as_str());
    assert_eq!(
        variables["CommitMessage"],
        git(&dir, &["log", "-1", "--format=%B"]).as_str()
    );
    assert_eq!(
        variables["AuthorDate"],
        git(&dir, &["log", "-1", "--format=%aI"]).as_str()
    );
    assert_eq!(variables["BranchName"], "main");
    assert_eq!(variables["FullRepositoryName"], "acme/web");
    assert_eq!(variables["ProviderType"], "GitHub");
    assert_eq!(variables["ConnectionArn"], arn.as_str());
    let state = server
        .call("GetPipelineState", json!({"name": "web"}))
        .json();
    assert_eq!(
        state["stageStates"][0]["actionStates"][0]["currentRevision"]["revisionId"],
        head.as_str()
    );
    let listed = server
        .call("ListPipelineExecutions", json!({"pipelineName": "web"}))
        .json();
    let revision = &listed["pipelineExecutionSummaries"][0]["sourceRevisions"][0];
    assert_eq!(revision["revisionId"], head.as_str());
    let summary: Value =
        serde_json::from_str(revision["revisionSummary"].as_str().unwrap()).unwrap();
    assert_eq!(summary["ProviderType"], "GitHub");
    assert_eq!(summary["CommitMessage"], "First version\n\nWith a body.");

    // A second commit is deployed by the next start; the first one again by its COMMIT_ID.
    commit_change(&dir, "<h1>v2</h1>\n", "Second version");
    let second = server
        .call("StartPipelineExecution", json!({"name": "web"}))
        .json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "web", &second).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "site/index.html").await,
        b"<h1>v2</h1>\n"
    );
    let again = server
        .call(
            "StartPipelineExecution",
            json!({"name": "web", "sourceRevisions": [
                {"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": head}]}),
        )
        .json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "web", &again).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "site/index.html").await,
        b"<h1>v1</h1>\n"
    );
    let wrong = server.call(
        "StartPipelineExecution",
        json!({"name": "web", "sourceRevisions": [
            {"actionName": "Source", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": head}]}),
    );
    assert_eq!(
        wrong.error_code(),
        "ValidationException",
        "{}",
        wrong.text()
    );
}

#[tokio::test]
async fn an_unknown_branch_repository_or_connection_fails_the_source_as_aws_words_it() {
    let repos = tempfile::tempdir().unwrap();
    repository(repos.path());
    let server = server_for(repos.path());
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let arn = connection(&server);
    let failure = |pipeline: &'static str| {
        let server = &server;
        async move {
            let r = server
                .call("ListActionExecutions", json!({ "pipelineName": pipeline }))
                .json();
            r["actionExecutionDetails"][0]["output"]["executionResult"]["errorDetails"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let mut other_repo = git_declaration("norepo", &arn, "main");
    other_repo["stages"][0]["actions"][0]["configuration"]["FullRepositoryId"] = "acme/api".into();
    let mut no_connection = git_declaration("noconn", &arn, "main");
    no_connection["stages"][0]["actions"][0]["configuration"]["ConnectionArn"] = arn
        .replace(
            crate::git::tail(&arn),
            "00000000-0000-0000-0000-000000000000",
        )
        .into();
    for (name, decl, message) in [
        (
            "nobranch",
            git_declaration("nobranch", &arn, "nope"),
            "[GitHub] No Branch [nope] found for FullRepositoryName [acme/web]".to_string(),
        ),
        (
            "norepo",
            other_repo,
            "[GitHub] Repository [acme/api] not found".to_string(),
        ),
        ("noconn", no_connection, "does not exist".to_string()),
    ] {
        let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
        assert_eq!(r.status, 200, "{}", r.text());
        let id = latest_execution(&cp, name).await;
        assert_eq!(
            finished(&cp, name, &id).await,
            PipelineExecutionStatus::Failed
        );
        let got = failure(name).await;
        assert!(got.contains(&message), "{name}: {got}");
    }
}

/// The id at the end of a connection ARN.
pub(crate) fn tail(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// The pipeline's executions, newest first, once there are `n` (waits at most 30 s).
pub(crate) async fn executions(server: &Server, pipeline: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listed = server
            .call(
                "ListPipelineExecutions",
                json!({ "pipelineName": pipeline }),
            )
            .json();
        let all = listed["pipelineExecutionSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if all.len() >= n {
            assert_eq!(all.len(), n, "more executions than expected: {listed}");
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pipeline} never had {n} executions: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The newest execution once it finished, as ListPipelineExecutions shows it then.
async fn newest_finished(server: &Server, pipeline: &str, n: usize) -> Value {
    let runs = executions(server, pipeline, n).await;
    let id = runs[0]["pipelineExecutionId"].as_str().unwrap().to_string();
    assert_eq!(
        finished(&server.codepipeline(), pipeline, &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let all = executions(server, pipeline, n).await;
    all[0].clone()
}

fn watching_server(repos: &Path, data: Option<&Path>) -> Server {
    let env = [
        ("CODEPIPELINE_LOCAL_GIT_REPOS_DIR", repos.to_str().unwrap()),
        ("CODEPIPELINE_LOCAL_SOURCE_POLL_INTERVAL_MS", "50"),
    ];
    match data {
        Some(dir) => Server::try_start_with(dir, &env).expect("the server starts"),
        None => Server::start_with(&env),
    }
}

#[tokio::test]
async fn pushes_start_the_pipeline_as_its_trigger_filters_select() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repository(repos.path());
    let server = watching_server(repos.path(), None);
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let arn = connection(&server);
    let mut decl = git_declaration("web", &arn, "main");
    decl["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
    "sourceActionName": "Source",
    "push": [
        {"branches": {"includes": ["main", "release/*"]}, "filePaths": {"excludes": ["docs/**"]}},
        {"tags": {"includes": ["v*"]}}
    ]}}]);
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "web").await;
    assert_eq!(
        finished(&cp, "web", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    // A push to main after the first run read its head starts a run.
    executions(&server, "web", 1).await;
    let pushed = commit_change(&dir, "<h1>v2</h1>\n", "Second version");
    let run = newest_finished(&server, "web", 2).await;
    assert_eq!(run["trigger"]["triggerType"], "WebhookV2");
    assert_eq!(run["trigger"]["triggerDetail"], arn.as_str());
    assert_eq!(run["sourceRevisions"][0]["revisionId"], pushed.as_str());

    // Only docs changed: excluded. A branch nobody selects: nothing. A release branch: a run.
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/guide.md"), "read me\n").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "Docs only"]);
    git(&dir, &["checkout", "-q", "-b", "dev"]);
    commit_change(&dir, "<h1>dev</h1>\n", "On dev");
    // The release branch is made at its commit: a new branch at main's head would be a push
    // of its own (its files unknown, it passes the file filter).
    git(&dir, &["checkout", "-q", "--detach", "main"]);
    let release = commit_change(&dir, "<h1>release</h1>\n", "Release");
    git(&dir, &["branch", "release/1"]);
    let run = newest_finished(&server, "web", 3).await;
    assert_eq!(run["sourceRevisions"][0]["revisionId"], release.as_str());
    // A tag that does not match, then one that does.
    git(&dir, &["tag", "x1"]);
    git(&dir, &["tag", "-a", "v1", "-m", "version 1", "main"]);
    let tagged = git(&dir, &["rev-parse", "main"]);
    let run = newest_finished(&server, "web", 4).await;
    assert_eq!(run["sourceRevisions"][0]["revisionId"], tagged.as_str());
}

#[tokio::test]
async fn a_commit_made_while_the_server_was_down_starts_exactly_one_execution() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repository(repos.path());
    let data = tempfile::tempdir().unwrap();
    let server = watching_server(repos.path(), Some(data.path()));
    tutorial_buckets(&server.s3()).await;
    let arn = connection(&server);
    run_first(&server, git_declaration("web", &arn, "main")).await;
    // A first push: its start proves the watcher has recorded what it saw.
    commit_change(&dir, "<h1>v2</h1>\n", "Second version");
    executions(&server, "web", 2).await;
    server.kill9();
    let down = commit_change(&dir, "<h1>v3</h1>\n", "Made while down");
    let server = watching_server(repos.path(), Some(data.path()));
    let run = newest_finished(&server, "web", 3).await;
    assert_eq!(run["sourceRevisions"][0]["revisionId"], down.as_str());
    // And only once: the next push is the fourth run.
    let next = commit_change(&dir, "<h1>v4</h1>\n", "After the restart");
    let run = newest_finished(&server, "web", 4).await;
    assert_eq!(run["sourceRevisions"][0]["revisionId"], next.as_str());
}

#[tokio::test]
async fn a_clone_ref_source_gives_the_build_a_clone_with_its_history() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repository(repos.path());
    let second = commit_change(&dir, "<h1>v2</h1>\n", "Second version");
    let server = server_for(repos.path());
    let (cp, s3, cb) = (server.codepipeline(), server.s3(), server.codebuild());
    tutorial_buckets(&s3).await;
    let arn = connection(&server);
    crate::codebuild::project_with(
        &cb,
        "history",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out\n      - git log --format=%H > out/log.txt\n      - git rev-parse --abbrev-ref HEAD > out/branch.txt\nartifacts:\n  files:\n    - '**/*'\n  base-directory: out\n",
    )
    .await;
    let mut decl = git_declaration("cloned", &arn, "main");
    decl["stages"][0]["actions"][0]["configuration"]["OutputArtifactFormat"] =
        "CODEBUILD_CLONE_REF".into();
    decl["stages"][1]["actions"][0]["inputArtifacts"] = json!([{"name": "built"}]);
    decl["stages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"name": "Build", "actions": [{"name": "Build",
            "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
            "configuration": {"ProjectName": "history"},
            "inputArtifacts": [{"name": "code"}], "outputArtifacts": [{"name": "built"}]}]}));
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "cloned").await;
    assert_eq!(
        finished(&cp, "cloned", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let log = String::from_utf8(body(&s3, "target-bucket", "site/log.txt").await).unwrap();
    assert_eq!(log, git(&dir, &["log", "--format=%H"]) + "\n");
    assert!(log.starts_with(&second));
    assert_eq!(
        body(&s3, "target-bucket", "site/branch.txt").await,
        b"main\n"
    );
}

/// Creates the pipeline; its first execution's id once it succeeded.
pub(crate) async fn run_first(server: &Server, declaration: Value) -> String {
    let name = declaration["name"].as_str().unwrap().to_string();
    let cp = server.codepipeline();
    let r = server.call("CreatePipeline", json!({ "pipeline": declaration }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, &name).await;
    assert_eq!(
        finished(&cp, &name, &first).await,
        PipelineExecutionStatus::Succeeded
    );
    first
}

/// The output variables of a source action `Source` in an execution.
pub(crate) fn source_variables(server: &Server, pipeline: &str, id: &str) -> Value {
    let actions = server
        .call(
            "ListActionExecutions",
            json!({"pipelineName": pipeline, "filter": {"pipelineExecutionId": id}}),
        )
        .json();
    actions["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "Source")
        .unwrap()["output"]["outputVariables"]
        .clone()
}

#[test]
fn triggers_are_declared_as_aws_allows() {
    let server = Server::start();
    let arn = "arn:aws:codestar-connections:eu-central-1:000000000000:connection/x";
    let refused = |trigger: Value| {
        let mut decl = git_declaration("web", arn, "main");
        decl["triggers"] = trigger;
        let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
        (
            r.error_code(),
            r.json()["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let trigger = |action: &str, push: Value| {
        json!({"providerType": "CodeStarSourceConnection",
               "gitConfiguration": {"sourceActionName": action, "push": [push]}})
    };
    let main = json!({"branches": {"includes": ["main"]}});
    for (triggers, words) in [
        (
            json!([trigger("Deploy", main.clone())]),
            "sourceActionName Deploy",
        ),
        (
            json!([
                trigger("Source", main.clone()),
                trigger("Source", main.clone())
            ]),
            "more than one trigger",
        ),
        (
            json!([trigger(
                "Source",
                json!({"tags": {"includes": ["v*"]}, "branches": {"includes": ["main"]}})
            )]),
            "with tags",
        ),
        (
            json!([trigger(
                "Source",
                json!({"filePaths": {"includes": ["src/**"]}})
            )]),
            "branches or tags",
        ),
        (
            json!([trigger(
                "Source",
                json!({"branches": {"includes": ["{main"]}})
            )]),
            "not a valid glob",
        ),
    ] {
        let (code, message) = refused(triggers);
        assert_eq!(code, "ValidationException", "{message}");
        assert!(message.contains(words), "{message}");
    }
    assert_eq!(
        server.call("ListPipelines", json!({})).json()["pipelines"],
        json!([])
    );
}

#[tokio::test]
async fn pull_requests_start_the_pipeline_as_its_pull_request_filters_select() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repository(repos.path());
    let server = watching_server(repos.path(), None);
    let cp = server.codepipeline();
    tutorial_buckets(&server.s3()).await;
    let arn = connection(&server);
    let mut decl = git_declaration("web", &arn, "main");
    decl["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
        "sourceActionName": "Source",
        "pullRequest": [{"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]},
                         "filePaths": {"includes": ["index.html"]}}]}}]);
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "web").await;
    assert_eq!(
        finished(&cp, "web", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    executions(&server, "web", 1).await;

    // A push to main is no pull request: no run. A pull request into a branch no filter
    // selects: no run either.
    commit_change(&dir, "<h1>main</h1>\n", "On main");
    git(&dir, &["checkout", "-q", "-b", "feature"]);
    let feature = commit_change(&dir, "<h1>feature</h1>\n", "Feature");
    git(&dir, &["branch", "-q", "dev", "main"]);
    let cli = |args: &[&str]| server.run_cli(args);
    let opened = cli(&[
        "pull-request",
        "open",
        "acme/web",
        "--source",
        "feature",
        "--destination",
        "dev",
        "--title",
        "Into dev",
        "--output",
        "json",
    ]);
    let opened: Value = serde_json::from_str(&opened).unwrap();
    assert_eq!(opened["pullRequest"]["pullRequestId"], "1");
    assert_eq!(opened["pullRequest"]["pullRequestStatus"], "OPEN");
    assert_eq!(opened["pullRequest"]["sourceCommit"], feature.as_str());

    // Into main: OPEN starts a run of the source branch's commit.
    let opened = cli(&[
        "pull-request",
        "open",
        "acme/web",
        "--source",
        "feature",
        "--destination",
        "main",
    ]);
    assert!(
        opened.contains("acme/web #2 OPEN feature -> main"),
        "{opened}"
    );
    let run = newest_finished(&server, "web", 2).await;
    assert_eq!(run["trigger"]["triggerType"], "WebhookV2");
    assert_eq!(run["trigger"]["triggerDetail"], arn.as_str());
    assert_eq!(run["sourceRevisions"][0]["revisionId"], feature.as_str());

    // A commit on the source branch: UPDATED, a run of it (and the pull request into dev,
    // updated too, still starts nothing).
    let updated = commit_change(&dir, "<h1>feature 2</h1>\n", "Feature, again");
    let run = newest_finished(&server, "web", 3).await;
    assert_eq!(
        run["sourceRevisions"][0]["revisionId"],
        updated.as_str(),
        "{run}"
    );

    // CLOSED is not among the filter's events; a pull request that changes no selected file
    // starts nothing when opened; then one that does.
    cli(&["pull-request", "close", "acme/web", "2"]);
    git(&dir, &["checkout", "-q", "-b", "docs", "main"]);
    std::fs::write(dir.join("README.md"), "docs\n").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "Docs"]);
    cli(&[
        "pull-request",
        "open",
        "acme/web",
        "--source",
        "docs",
        "--destination",
        "main",
    ]);
    git(&dir, &["checkout", "-q", "-b", "fix", "main"]);
    let fix = commit_change(&dir, "<h1>fix</h1>\n", "Fix");
    cli(&[
        "pull-request",
        "open",
        "acme/web",
        "--source",
        "fix",
        "--destination",
        "main",
    ]);
    let run = newest_finished(&server, "web", 4).await;
    assert_eq!(run["sourceRevisions"][0]["revisionId"], fix.as_str());

    let listed = cli(&["pull-request", "list", "acme/web", "--output", "json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let states: Vec<&str> = listed["pullRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pullRequestStatus"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["OPEN", "CLOSED", "OPEN", "OPEN"]);
}

#[test]
fn pull_requests_are_refused_as_their_repository_and_branches_require() {
    let repos = tempfile::tempdir().unwrap();
    repository(repos.path());
    let server = server_for(repos.path());
    let post = |path: &str, content_type: &str, body: Value| {
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        server.client().exchange(head.as_bytes(), body.as_bytes())
    };
    let path = "/_codepipeline_local/pull-requests";
    let open = |repository: &str, source: &str, destination: &str| {
        post(
            path,
            "application/json",
            json!({"repository": repository, "sourceBranch": source, "destinationBranch": destination}),
        )
    };
    let r = open("acme/nothing", "main", "main");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        format!(
            "repository acme/nothing does not exist under {}",
            repos.path().display()
        )
    );
    let r = open("acme/web", "nope", "main");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "branch nope does not exist in acme/web"
    );
    let r = open("acme/web", "main", "main");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "the source and destination branches are the same"
    );
    let r = open("../etc", "main", "x");
    assert_eq!(r.status, 404);
    // A form post (what a page elsewhere could send) is refused.
    let r = post(path, "text/plain", json!({"repository": "acme/web"}));
    assert_eq!(r.status, 415);
    let r = post(
        &format!("{path}/close"),
        "application/json",
        json!({"repository": "acme/web", "pullRequestId": 9}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "pull request 9 of acme/web does not exist"
    );
    let listed = server.client().http("GET", path, "localhost", b"");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), json!({"pullRequests": []}));
}
