//! CodeBuild projects on the endpoint, with the official SDK: create, read, list, update, delete,
//! AWS's error codes, the operations not served yet, and SIGKILL.

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, ProjectArtifacts,
    ProjectEnvironment, ProjectSortByType, ProjectSource, SortOrderType, SourceType,
};
use serde_json::json;

use crate::common::Server;

fn create(
    cb: &aws_sdk_codebuild::Client,
    name: &str,
) -> aws_sdk_codebuild::operation::create_project::builders::CreateProjectFluentBuilder {
    cb.create_project()
        .name(name)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Codepipeline)
                .buildspec("version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello\n")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::Codepipeline)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .environment_variables(
                    EnvironmentVariable::builder()
                        .name("STAGE")
                        .value("test")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::000000000000:role/role")
}

#[tokio::test]
async fn projects_are_created_read_listed_updated_and_deleted() {
    let server = Server::start();
    let cb = server.codebuild();
    let created = create(&cb, "app-build").send().await.unwrap();
    let p = created.project().unwrap();
    assert_eq!(p.name(), Some("app-build"));
    assert_eq!(
        p.arn(),
        Some("arn:aws:codebuild:eu-central-1:000000000000:project/app-build")
    );
    assert_eq!(p.timeout_in_minutes(), Some(60));
    assert_eq!(p.queued_timeout_in_minutes(), Some(480));
    assert_eq!(
        p.environment().unwrap().environment_variables()[0].value(),
        "test"
    );
    assert!(p.created().is_some());
    // A name in use.
    let err = create(&cb, "app-build").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ResourceAlreadyExistsException"));

    create(&cb, "another").send().await.unwrap();
    let got = cb
        .batch_get_projects()
        .names("app-build")
        .names("arn:aws:codebuild:eu-central-1:000000000000:project/another")
        .names("missing")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = got.projects().iter().map(|p| p.name().unwrap()).collect();
    assert_eq!(names, ["app-build", "another"]);
    assert_eq!(got.projects_not_found(), ["missing"]);

    let listed = cb
        .list_projects()
        .sort_by(ProjectSortByType::Name)
        .sort_order(SortOrderType::Descending)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.projects(), ["app-build", "another"]);

    let updated = cb
        .update_project()
        .name("app-build")
        .timeout_in_minutes(5)
        .send()
        .await
        .unwrap();
    let p = updated.project().unwrap();
    assert_eq!(p.timeout_in_minutes(), Some(5));
    assert_eq!(
        p.environment().unwrap().image(),
        "aws/codebuild/standard:7.0"
    );
    let err = cb
        .update_project()
        .name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    cb.delete_project().name("another").send().await.unwrap();
    // Deleting what does not exist succeeds, as on AWS.
    cb.delete_project().name("another").send().await.unwrap();
    let listed = cb.list_projects().send().await.unwrap();
    assert_eq!(listed.projects(), ["app-build"]);

    // Everything acknowledged survives SIGKILL.
    let before = server
        .raw_codebuild(
            "BatchGetProjects",
            json!({"names": ["app-build", "another"]}),
        )
        .text();
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    assert_eq!(
        restarted
            .raw_codebuild(
                "BatchGetProjects",
                json!({"names": ["app-build", "another"]})
            )
            .text(),
        before
    );
}

#[tokio::test]
async fn bad_input_and_operations_not_served_get_aws_errors() {
    let server = Server::start();
    let cb = server.codebuild();
    // The model's limits: a name of 1 character is too short (2 to 150).
    let err = create(&cb, "x").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    assert!(cb
        .list_projects()
        .send()
        .await
        .unwrap()
        .projects()
        .is_empty());
    let r = server.raw_codebuild("CreateWebhook", json!({"projectName": "app-build"}));
    assert_eq!(r.status, 501);
    assert_eq!(r.error_code(), "NotImplementedException");
    assert!(r.text().contains("CreateWebhook"), "{}", r.text());
    // A build of a project that does not exist.
    let r = server.raw_codebuild("StartBuild", json!({"projectName": "nope"}));
    assert_eq!(r.error_code(), "ResourceNotFoundException");
    let r = server.raw_codebuild("NoSuchOperation", json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "UnknownOperationException");
}

/// A project whose inline buildspec is `buildspec`.
pub(crate) async fn project_with(cb: &aws_sdk_codebuild::Client, name: &str, buildspec: &str) {
    cb.create_project()
        .name(name)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::NoSource)
                .buildspec(buildspec)
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .environment_variables(
                    EnvironmentVariable::builder()
                        .name("STAGE")
                        .value("from-project")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::000000000000:role/role")
        .send()
        .await
        .unwrap();
}

/// Waits (at most 60 s) until the build is complete; returns it.
pub(crate) async fn completed(
    cb: &aws_sdk_codebuild::Client,
    id: &str,
) -> aws_sdk_codebuild::types::Build {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = cb.batch_get_builds().ids(id).send().await.unwrap();
        let b = out.builds()[0].clone();
        if b.build_complete() {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "build {id} still running after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn phase_status(b: &aws_sdk_codebuild::types::Build, phase: &str) -> Option<String> {
    b.phases()
        .iter()
        .find(|p| p.phase_type().map(|t| t.as_str()) == Some(phase))
        .and_then(|p| p.phase_status())
        .map(|s| s.as_str().to_string())
}

#[tokio::test]
async fn a_build_runs_its_buildspec_here_and_exports_its_variables() {
    use aws_sdk_codebuild::types::StatusType;
    let server = Server::start();
    let cb = server.codebuild();
    project_with(
        &cb,
        "app-build",
        "version: 0.2\nenv:\n  variables:\n    GREETING: hello\n  exported-variables:\n    - VERSION\nphases:\n  install:\n    commands:\n      - cd \"$CODEBUILD_SRC_DIR\" && mkdir -p out\n  build:\n    commands:\n      - echo \"$GREETING from $STAGE in $CODEBUILD_BUILD_ID\" > out/greeting.txt\n      - cat out/greeting.txt\n      - export VERSION=1.2.$CODEBUILD_BUILD_NUMBER\n",
    )
    .await;
    let started = cb
        .start_build()
        .project_name("app-build")
        .environment_variables_override(
            EnvironmentVariable::builder()
                .name("STAGE")
                .value("from-override")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = started.build_value().unwrap().id().unwrap().to_string();
    assert!(id.starts_with("app-build:"));
    let b = completed(&cb, &id).await;
    assert_eq!(b.build_status(), Some(&StatusType::Succeeded));
    assert_eq!(b.build_number(), Some(1));
    for phase in ["SUBMITTED", "INSTALL", "BUILD", "FINALIZING"] {
        assert_eq!(
            phase_status(&b, phase).as_deref(),
            Some("SUCCEEDED"),
            "{phase}"
        );
    }
    let exported: Vec<_> = b
        .exported_environment_variables()
        .iter()
        .map(|v| (v.name().unwrap(), v.value().unwrap()))
        .collect();
    assert_eq!(exported, [("VERSION", "1.2.1")]);
    // The output is kept, the override won over the project's value.
    let log = std::fs::read_to_string(
        b.logs()
            .unwrap()
            .deep_link()
            .unwrap()
            .trim_start_matches("file://"),
    )
    .unwrap();
    assert!(
        log.contains(&format!("hello from from-override in {id}")),
        "{log}"
    );
    let listed = cb
        .list_builds_for_project()
        .project_name("app-build")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.ids(), std::slice::from_ref(&id));
    let all = cb.list_builds().send().await.unwrap();
    assert_eq!(all.ids(), std::slice::from_ref(&id));
}

#[tokio::test]
async fn a_failing_build_names_its_phase_and_still_runs_finally_and_post_build() {
    use aws_sdk_codebuild::types::StatusType;
    let server = Server::start();
    let cb = server.codebuild();
    project_with(
        &cb,
        "failing",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo before\n      - false\n      - echo never\n    finally:\n      - echo finally-ran\n  post_build:\n    commands:\n      - echo post-build-ran\n",
    )
    .await;
    let id = cb
        .start_build()
        .project_name("failing")
        .send()
        .await
        .unwrap()
        .build_value()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let b = completed(&cb, &id).await;
    assert_eq!(b.build_status(), Some(&StatusType::Failed));
    assert_eq!(phase_status(&b, "BUILD").as_deref(), Some("FAILED"));
    assert_eq!(phase_status(&b, "POST_BUILD").as_deref(), Some("SUCCEEDED"));
    let build_phase = b
        .phases()
        .iter()
        .find(|p| p.phase_type().map(|t| t.as_str()) == Some("BUILD"))
        .unwrap();
    assert!(build_phase.contexts()[0]
        .message()
        .unwrap()
        .contains("exit status 1"));
    let log = std::fs::read_to_string(
        b.logs()
            .unwrap()
            .deep_link()
            .unwrap()
            .trim_start_matches("file://"),
    )
    .unwrap();
    assert!(
        log.contains("finally-ran") && log.contains("post-build-ran"),
        "{log}"
    );
    assert!(!log.contains("\nnever"), "{log}");
}

/// The process ids a build wrote into `pidfile`, once it exists (at most 30 s).
fn pid_in(path: &std::path::Path) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build wrote no pid"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (at most 10 s) until the process is gone.
fn gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        // A killed child of an exited parent may linger as a zombie until reaped by init.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split_whitespace().nth(2) == Some("Z") {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// A build that sleeps in the background and waits for it: (build id, the sleep's pid).
async fn sleeping_build(server: &Server, cb: &aws_sdk_codebuild::Client) -> (String, u32) {
    let pidfile = server.data_dir.join("sleep.pid");
    project_with(
        cb,
        "long",
        &format!(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 300 & echo $! > {} ; wait\n",
            pidfile.display()
        ),
    )
    .await;
    let id = start(cb, "long").await;
    (id, pid_in(&pidfile))
}

#[tokio::test]
async fn a_stopped_build_leaves_no_process_behind() {
    use aws_sdk_codebuild::types::StatusType;
    let server = Server::start();
    let cb = server.codebuild();
    let (id, pid) = sleeping_build(&server, &cb).await;
    let stopped = cb.stop_build().id(&id).send().await.unwrap();
    assert_eq!(
        stopped.build_value().unwrap().build_status(),
        Some(&StatusType::Stopped)
    );
    assert!(gone(pid), "the build's sleep is still running");
    assert_eq!(
        phase_status(&completed(&cb, &id).await, "BUILD").as_deref(),
        Some("STOPPED")
    );
}

#[tokio::test]
async fn a_build_running_when_the_server_dies_fails_at_the_next_start() {
    use aws_sdk_codebuild::types::StatusType;
    let server = Server::start();
    let cb = server.codebuild();
    let (id, pid) = sleeping_build(&server, &cb).await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let cb = restarted.codebuild();
    let b = completed(&cb, &id).await;
    assert_eq!(b.build_status(), Some(&StatusType::Failed));
    let build_phase = b
        .phases()
        .iter()
        .find(|p| p.phase_type().map(|t| t.as_str()) == Some("BUILD"))
        .unwrap();
    assert!(build_phase.contexts()[0]
        .message()
        .unwrap()
        .contains("interrupted"));
    assert!(gone(pid), "the interrupted build's sleep is still running");
}

#[test]
fn builds_on_a_non_loopback_address_need_the_operator_to_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = Server::try_start_with(tmp.path(), &[("CODEPIPELINE_LOCAL_HOST", "0.0.0.0")]);
    let err = refused.err().expect("the server refused to start");
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    let allowed = Server::try_start_with(
        tmp.path(),
        &[
            ("CODEPIPELINE_LOCAL_HOST", "0.0.0.0"),
            ("CODEPIPELINE_LOCAL_ALLOW_BUILDS_ON_NON_LOOPBACK", "true"),
        ],
    );
    assert!(allowed.is_ok());
}

/// S3 source (a zip) → CodeBuild (namespace BuildVariables) → S3 deploy of the build's output
/// under a key made of the build's exported VERSION.
fn build_pipeline(name: &str, project: &str) -> serde_json::Value {
    json!({
        "name": name, "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "src"}]}]},
            {"name": "Build", "actions": [{"name": "build", "namespace": "BuildVariables",
                "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                "configuration": {"ProjectName": project,
                    "EnvironmentVariables": "[{\"name\":\"EXTRA\",\"value\":\"#{codepipeline.PipelineExecutionId}\",\"type\":\"PLAINTEXT\"}]"},
                "inputArtifacts": [{"name": "src"}], "outputArtifacts": [{"name": "built"}, {"name": "docs"}]}]},
            {"name": "Deploy", "actions": [{"name": "deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "release-#{BuildVariables.VERSION}"},
                "inputArtifacts": [{"name": "built"}]},
              {"name": "deploy-docs",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "docs"},
                "inputArtifacts": [{"name": "docs"}]}]}
        ]
    })
}

/// The tutorial's buckets, with a zip of one file as the source object `app.zip`.
async fn source_zip(s3: &aws_sdk_s3::Client) {
    crate::engine::tutorial_buckets(s3).await;
    s3.put_object()
        .bucket("source-bucket")
        .key("app.zip")
        .body(crate::engine::zip_of(&[("app.txt", "the app\n")]).into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pipeline_builds_with_codebuild_and_deploys_what_it_built() {
    use crate::engine::{body, create, finished, latest_execution};
    let server = Server::start();
    let (cp, s3, cb) = (server.codepipeline(), server.s3(), server.codebuild());
    source_zip(&s3).await;
    project_with(
        &cb,
        "app-build",
        "version: 0.2\nenv:\n  exported-variables:\n    - VERSION\nphases:\n  build:\n    commands:\n      - mkdir -p out\n      - cp app.txt out/app.txt\n      - echo \"$EXTRA\" > out/execution.txt\n      - export VERSION=2.0.$CODEBUILD_BUILD_NUMBER\n      - mkdir -p site/guide && echo read me > site/guide/index.txt\nartifacts:\n  files:\n    - '**/*'\n  base-directory: out\n  secondary-artifacts:\n    docs:\n      files:\n        - guide/*\n      base-directory: site\n",
    )
    .await;
    project_with(
        &cb,
        "broken-build",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo about to fail\n      - exit 3\n",
    )
    .await;
    create(&server, build_pipeline("built", "app-build"));
    let id = latest_execution(&cp, "built").await;
    assert_eq!(
        finished(&cp, "built", &id).await,
        aws_sdk_codepipeline::types::PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "release-2.0.1/app.txt").await,
        b"the app\n"
    );
    assert_eq!(
        body(&s3, "target-bucket", "release-2.0.1/execution.txt").await,
        format!("{id}\n").as_bytes()
    );
    // The secondary artifact went its own way.
    assert_eq!(
        body(&s3, "target-bucket", "docs/guide/index.txt").await,
        b"read me\n"
    );
    let actions = server
        .call("ListActionExecutions", json!({"pipelineName": "built"}))
        .json();
    let build = actions["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "build")
        .unwrap()
        .clone();
    assert_eq!(build["output"]["outputVariables"]["VERSION"], "2.0.1");
    let build_id = build["output"]["executionResult"]["externalExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(build_id.starts_with("app-build:"), "{build_id}");
    let listed = cb
        .list_builds_for_project()
        .project_name("app-build")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.ids(), std::slice::from_ref(&build_id));

    // A failing build fails its action with the phase and the last lines of output.
    create(&server, build_pipeline("broken", "broken-build"));
    let id = latest_execution(&cp, "broken").await;
    assert_eq!(
        finished(&cp, "broken", &id).await,
        aws_sdk_codepipeline::types::PipelineExecutionStatus::Failed
    );
    let actions = server
        .call("ListActionExecutions", json!({"pipelineName": "broken"}))
        .json();
    let failed = actions["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "build")
        .unwrap()
        .clone();
    let message = failed["output"]["executionResult"]["errorDetails"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("in phase BUILD"), "{message}");
    assert!(message.contains("about to fail"), "{message}");
}

/// Runs `codepipeline-local logs` with `args`: (exit code, stdout, stderr).
fn logs_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
        .arg("logs")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn start(cb: &aws_sdk_codebuild::Client, project: &str) -> String {
    cb.start_build()
        .project_name(project)
        .send()
        .await
        .unwrap()
        .build_value()
        .unwrap()
        .id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn logs_show_a_build_s_output_while_it_runs_and_after() {
    use std::io::BufRead;
    let server = Server::start();
    let cb = server.codebuild();
    let gate = server.data_dir.join("gate");
    project_with(
        &cb,
        "gated",
        &format!(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first line\n      - while [ ! -f {} ]; do sleep 0.02; done\n      - echo second line\n",
            gate.display()
        ),
    )
    .await;
    let id = start(&cb, "gated").await;
    // Following: the first line arrives while the build waits.
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
        .args(["logs", &id, "--follow", "--endpoint", &server.endpoint])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "first line") {
        seen.push(
            rx.recv_timeout(std::time::Duration::from_secs(30))
                .expect("the first line within 30 s"),
        );
    }
    assert!(!seen.iter().any(|l| l == "second line"));
    std::fs::write(&gate, b"").unwrap();
    // Then the rest, and the follower ends with the build.
    while !seen.iter().any(|l: &String| l == "second line") {
        seen.push(
            rx.recv_timeout(std::time::Duration::from_secs(30))
                .expect("the second line within 30 s"),
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = follower.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "logs --follow did not end with the build"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    completed(&cb, &id).await;
    // After the build, online and offline: the same output.
    let (code, online, _) = logs_cli(&[&id, "--endpoint", &server.endpoint]);
    assert_eq!(code, 0);
    assert!(
        online.contains("first line\n") && online.contains("second line\n"),
        "{online}"
    );
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let (code, offline, _) = logs_cli(&[&id, "--data-dir", &dir.to_string_lossy()]);
    assert_eq!(code, 0);
    assert_eq!(offline, online);
    let (code, _, err) = logs_cli(&["gated:nope", "--data-dir", &dir.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("has no output"), "{err}");
}

#[tokio::test]
async fn a_build_s_kept_output_is_bounded() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_BUILD_LOG_MAX_BYTES", "2000")]);
    let cb = server.codebuild();
    project_with(
        &cb,
        "chatty",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - head -c 100000 /dev/zero | tr '\\\\0' x\n      - echo done\n",
    )
    .await;
    let id = start(&cb, "chatty").await;
    let b = completed(&cb, &id).await;
    assert_eq!(
        b.build_status(),
        Some(&aws_sdk_codebuild::types::StatusType::Succeeded)
    );
    let log = std::fs::read_to_string(
        b.logs()
            .unwrap()
            .deep_link()
            .unwrap()
            .trim_start_matches("file://"),
    )
    .unwrap();
    assert!(log.len() < 2400, "{} bytes kept", log.len());
    assert!(log.contains("the rest is not kept"), "{log}");
}

/// S3 source → CodeBuild (project `project`) → nothing after; for stop and restart checks.
fn build_only_pipeline(name: &str, project: &str) -> serde_json::Value {
    let mut decl = build_pipeline(name, project);
    decl["stages"].as_array_mut().unwrap().truncate(2);
    decl["stages"][1]["actions"][0]["outputArtifacts"] = json!([]);
    decl
}

#[tokio::test]
async fn abandoning_a_pipeline_build_stops_it_and_a_restart_runs_it_again() {
    use crate::engine::{create, finished, latest_execution};
    use aws_sdk_codepipeline::types::PipelineExecutionStatus;
    let server = Server::start();
    let (cp, s3, cb) = (server.codepipeline(), server.s3(), server.codebuild());
    source_zip(&s3).await;
    let pidfile = server.data_dir.join("sleep.pid");
    let gate = server.data_dir.join("gate");
    project_with(
        &cb,
        "waits",
        &format!(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 300 & echo $! > {} ; while [ ! -f {} ]; do sleep 0.02; done\n",
            pidfile.display(),
            gate.display()
        ),
    )
    .await;

    // Stop and abandon: the build is stopped, its processes gone.
    create(&server, build_only_pipeline("abandoned", "waits"));
    let id = latest_execution(&cp, "abandoned").await;
    let pid = pid_in(&pidfile);
    std::fs::remove_file(&pidfile).unwrap();
    cp.stop_pipeline_execution()
        .pipeline_name("abandoned")
        .pipeline_execution_id(&id)
        .abandon(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "abandoned", &id).await,
        PipelineExecutionStatus::Stopped
    );
    assert!(gone(pid), "the abandoned build's sleep is still running");
    let builds = cb
        .list_builds_for_project()
        .project_name("waits")
        .send()
        .await
        .unwrap();
    let stopped = completed(&cb, &builds.ids()[0]).await;
    assert_eq!(
        stopped.build_status(),
        Some(&aws_sdk_codebuild::types::StatusType::Stopped)
    );

    // SIGKILL during a pipeline's build: the build fails as interrupted, the execution runs the
    // action again and completes.
    create(&server, build_only_pipeline("resumed", "waits"));
    let id = latest_execution(&cp, "resumed").await;
    let pid = pid_in(&pidfile);
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let (cp, cb) = (restarted.codepipeline(), restarted.codebuild());
    assert!(gone(pid), "the interrupted build's sleep is still running");
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(
        finished(&cp, "resumed", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let builds = cb
        .list_builds_for_project()
        .project_name("waits")
        .send()
        .await
        .unwrap();
    assert_eq!(
        builds.ids().len(),
        3,
        "the abandoned one, the interrupted one, the re-run"
    );
    let interrupted = completed(&cb, &builds.ids()[1]).await;
    assert_eq!(
        interrupted.build_status(),
        Some(&aws_sdk_codebuild::types::StatusType::Failed)
    );
    let rerun = completed(&cb, &builds.ids()[0]).await;
    assert_eq!(
        rerun.build_status(),
        Some(&aws_sdk_codebuild::types::StatusType::Succeeded)
    );
}

#[tokio::test]
async fn a_build_outside_a_pipeline_uploads_its_artifacts_to_s3() {
    use aws_sdk_codebuild::types::{ArtifactNamespace, ArtifactPackaging};
    let server = Server::start();
    let (cb, s3) = (server.codebuild(), server.s3());
    s3.create_bucket()
        .bucket("build-output")
        .send()
        .await
        .unwrap();
    let buildspec = "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p dist/js && echo app > dist/js/app.js && echo page > dist/index.html\nartifacts:\n  files:\n    - '**/*'\n  base-directory: dist\n";
    for (name, packaging, namespace) in [
        ("zipped", ArtifactPackaging::Zip, ArtifactNamespace::None),
        ("files", ArtifactPackaging::None, ArtifactNamespace::BuildId),
    ] {
        cb.create_project()
            .name(name)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::NoSource)
                    .buildspec(buildspec)
                    .build()
                    .unwrap(),
            )
            .artifacts(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::S3)
                    .location("build-output")
                    .path("out")
                    .name(format!("{name}-artifact"))
                    .packaging(packaging)
                    .namespace_type(namespace)
                    .build()
                    .unwrap(),
            )
            .environment(
                ProjectEnvironment::builder()
                    .r#type(EnvironmentType::LinuxContainer)
                    .image("aws/codebuild/standard:7.0")
                    .compute_type(ComputeType::BuildGeneral1Small)
                    .build()
                    .unwrap(),
            )
            .service_role("arn:aws:iam::000000000000:role/role")
            .send()
            .await
            .unwrap();
    }
    let zipped = completed(&cb, &start(&cb, "zipped").await).await;
    assert_eq!(
        zipped.artifacts().unwrap().location(),
        Some("arn:aws:s3:::build-output/out/zipped-artifact")
    );
    let zip = crate::engine::body(&s3, "build-output", "out/zipped-artifact").await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut names: Vec<String> = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["index.html", "js/app.js"]);

    let id = start(&cb, "files").await;
    let files = completed(&cb, &id).await;
    let uuid = id.rsplit(':').next().unwrap();
    assert_eq!(
        files.artifacts().unwrap().location(),
        Some(format!("arn:aws:s3:::build-output/out/{uuid}/files-artifact").as_str())
    );
    assert_eq!(
        crate::engine::body(
            &s3,
            "build-output",
            &format!("out/{uuid}/files-artifact/js/app.js")
        )
        .await,
        b"app\n"
    );
}

#[tokio::test]
async fn a_pipeline_builds_with_the_project_of_its_own_account() {
    use crate::engine::{finished, latest_execution};
    let server = Server::start();
    source_zip(&server.s3()).await;
    // A 12-digit access key id names the account, as on LocalStack.
    let account = "111111111111";
    let cb = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::Config::builder()
            .behavior_version(aws_sdk_codebuild::config::BehaviorVersion::latest())
            .region(aws_sdk_codebuild::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_codebuild::config::Credentials::new(
                account, "test", None, None, "tests",
            ))
            .endpoint_url(&server.endpoint)
            .build(),
    );
    let cp = aws_sdk_codepipeline::Client::from_conf(
        aws_sdk_codepipeline::Config::builder()
            .behavior_version(aws_sdk_codepipeline::config::BehaviorVersion::latest())
            .region(aws_sdk_codepipeline::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_codepipeline::config::Credentials::new(
                account, "test", None, None, "tests",
            ))
            .endpoint_url(&server.endpoint)
            .build(),
    );
    project_with(
        &cb,
        "own-account",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo built\n",
    )
    .await;
    let r = server.client().call_as(
        account,
        "CreatePipeline",
        json!({"pipeline": build_only_pipeline("own-account", "own-account")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "own-account").await;
    assert_eq!(
        finished(&cp, "own-account", &id).await,
        aws_sdk_codepipeline::types::PipelineExecutionStatus::Succeeded
    );
}

/// The ids of the builds of `project`, newest first, waiting (at most 30 s) until there are
/// `count` of them.
async fn builds_of(cb: &aws_sdk_codebuild::Client, project: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ids = cb
            .list_builds_for_project()
            .project_name(project)
            .send()
            .await
            .unwrap()
            .ids()
            .to_vec();
        if ids.len() >= count {
            return ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{project} has {} builds after 30 s, not {count}",
            ids.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_action_in_flight_at_two_kills_in_a_row_fails_as_interrupted() {
    use crate::engine::{create, finished, latest_execution};
    use aws_sdk_codepipeline::types::PipelineExecutionStatus;
    let server = Server::start();
    let (cp, s3, cb) = (server.codepipeline(), server.s3(), server.codebuild());
    source_zip(&s3).await;
    project_with(
        &cb,
        "hangs",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 300\n",
    )
    .await;
    create(&server, build_only_pipeline("looping", "hangs"));
    let id = latest_execution(&cp, "looping").await;
    builds_of(&cb, "hangs", 1).await;
    // The first kill: the action runs again at the next start (a second build).
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    builds_of(&server.codebuild(), "hangs", 2).await;
    // The second kill while it is still in flight: the next start fails it as interrupted
    // instead of running it a third time.
    let _ = server.kill9();
    let server = Server::start_in(&dir);
    let (cp, cb) = (server.codepipeline(), server.codebuild());
    assert_eq!(
        finished(&cp, "looping", &id).await,
        PipelineExecutionStatus::Failed
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("looping")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let summary = e.pipeline_execution().unwrap().status_summary().unwrap();
    assert!(summary.contains("interrupted"), "{summary}");
    assert_eq!(builds_of(&cb, "hangs", 2).await.len(), 2);
}
