//! The command line that follows and steers a server: `wait` (exit codes), `watch` (piped
//! lines), `approve` / `reject` / `retry`, `completions`, the region and endpoint from the
//! user's AWS configuration, and the history's tables (one line a row, running durations,
//! build ids, why an execution waits, checked filters, zones, NO_COLOR, diff across pipelines).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::engine::{
    approval_declaration, approval_token, create, finished, latest_execution, start,
    tutorial_buckets, zip_of,
};

/// Runs the binary with `args` and `env`, AWS_* variables of this process removed: (exit code,
/// stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `run` against `server`.
fn cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend(["--endpoint", &server.endpoint]);
    run(&all, &[("AWS_REGION", "eu-central-1")])
}

#[tokio::test]
async fn wait_watch_approve_reject_and_retry_steer_an_execution() {
    let server = Server::start();
    let cp = server.codepipeline();
    tutorial_buckets(&server.s3()).await;
    create(&server, approval_declaration("gated"));
    let id = latest_execution(&cp, "gated").await;
    approval_token(&cp, "gated").await;

    // Still waiting when --timeout runs out: 124.
    let (code, out, _) = cli(&server, &["wait", &id, "--timeout", "1"]);
    assert_eq!(code, 124, "{out}");
    assert_eq!(
        out,
        format!("execution {id} of gated is still InProgress\n")
    );
    // Why it waits, in the history's table and in replay.
    let (_, table, _) = cli(&server, &["history", "executions", "gated"]);
    assert!(table.contains("waits for approval gate/approve"), "{table}");
    let (_, replay, _) = cli(&server, &["replay", &id]);
    assert!(
        replay.contains("\nwaits for approval gate/approve\n"),
        "{replay}"
    );

    // `watch`, piped, until the execution ends.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
        .args([
            "watch",
            "gated",
            "--until-finished",
            "--endpoint",
            &server.endpoint,
        ])
        .env("AWS_REGION", "eu-central-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        stdout.read_to_string(&mut all).unwrap();
        all
    });

    // Nothing to approve at a stage that is not waiting.
    let (code, _, err) = cli(&server, &["approve", "gated", "stage2", "action1"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "codepipeline-local: no approval waits at stage2/action1 of pipeline gated\n"
    );
    let (code, out, err) = cli(
        &server,
        &[
            "approve",
            "gated",
            "gate",
            "approve",
            "--summary",
            "ok from the CLI",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "approved gate/approve of gated\n");
    let (code, out, _) = cli(&server, &["wait", &id]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("execution {id} of gated: Succeeded\n"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "watch did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let watched = reader.join().unwrap();
    assert!(watched.starts_with("gated: execution "), "{watched}");
    for line in [
        " gate/approve InProgress ",
        " gate/approve Succeeded ",
        " stage2/action1 Succeeded ",
    ] {
        assert!(watched.contains(line), "{line:?} in {watched}");
    }
    let runs = cp
        .list_action_executions()
        .pipeline_name("gated")
        .send()
        .await
        .unwrap();
    let approved = runs
        .action_execution_details()
        .iter()
        .find(|r| r.action_name() == Some("approve"))
        .unwrap();
    let result = approved.output().unwrap().execution_result().unwrap();
    assert_eq!(
        result.external_execution_summary(),
        Some("Approved: ok from the CLI")
    );

    // Rejected: Failed, exit 2; the stage retried, approved again: Succeeded.
    let second = start(&cp, "gated").await;
    approval_token(&cp, "gated").await;
    let (code, out, _) = cli(&server, &["reject", "gated", "gate", "approve"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "rejected gate/approve of gated\n")
    );
    let (code, _, _) = cli(&server, &["wait", &second]);
    assert_eq!(code, 2);
    let (code, out, err) = cli(&server, &["retry", "gated", "gate"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("retrying stage gate of execution {second} (FAILED_ACTIONS)\n")
    );
    approval_token(&cp, "gated").await;
    cli(&server, &["approve", "gated", "gate", "approve"]);
    assert_eq!(
        finished(&cp, "gated", &second).await,
        aws_sdk_codepipeline::types::PipelineExecutionStatus::Succeeded
    );
    let (code, _, err) = cli(&server, &["retry", "gated", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("pipeline gated has no stage nope"), "{err}");
    let (code, _, err) = cli(&server, &["wait", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("execution nope does not exist"), "{err}");
}

#[test]
fn completions_are_written_for_each_shell() {
    let (code, bash, _) = run(&["completions", "bash"], &[]);
    assert_eq!(code, 0);
    assert!(bash.contains("_codepipeline__local()"), "{bash}");
    assert!(bash.contains("complete -F _codepipeline__local"), "{bash}");
    assert!(bash.contains("approve"));
    let (_, zsh, _) = run(&["completions", "zsh"], &[]);
    assert!(zsh.starts_with("#compdef codepipeline-local"), "{zsh}");
    let (_, fish, _) = run(&["completions", "fish"], &[]);
    assert!(fish.contains("complete -c codepipeline-local"), "{fish}");
    let (code, _, err) = run(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[tokio::test]
async fn the_region_and_endpoint_come_from_the_aws_configuration() {
    let server = Server::start();
    tutorial_buckets(&server.s3()).await;
    create(&server, tutorial_declaration("configured"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(
        &file,
        format!(
            "[default]\nregion = us-west-2\n[profile lab]\nregion = eu-central-1\nendpoint_url = {}\n",
            server.endpoint
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let listed = |env: &[(&str, &str)], extra: &[&str]| -> Value {
        let mut args = vec!["history", "pipelines", "--output", "json"];
        args.extend(extra);
        let mut all: Vec<(&str, &str)> = vec![("AWS_CONFIG_FILE", config)];
        all.extend(env);
        let (code, out, err) = run(&args, &all);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    // The profile's region and endpoint: the pipeline is found without --endpoint or --region.
    let found = listed(&[("AWS_PROFILE", "lab")], &[]);
    assert_eq!(found[0]["name"], "configured", "{found}");
    // --region is honoured: another region lists none.
    let none = listed(&[("AWS_PROFILE", "lab")], &["--region", "us-west-2"]);
    assert_eq!(none, json!([]));
    // The environment's region comes before the profile's.
    let none = listed(&[("AWS_PROFILE", "lab"), ("AWS_REGION", "ap-south-1")], &[]);
    assert_eq!(none, json!([]));
    // The default profile's region (us-west-2) with the endpoint from the environment.
    let none = listed(&[("AWS_ENDPOINT_URL", &server.endpoint)], &[]);
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn history_tables_are_one_line_a_row_and_their_filters_are_checked() {
    let server = Server::start();
    let (cp, s3, cb) = (server.codepipeline(), server.s3(), server.codebuild());
    tutorial_buckets(&s3).await;
    s3.put_object()
        .bucket("source-bucket")
        .key("app.zip")
        .body(ByteStream::from(zip_of(&[("index.html", "<h1>x</h1>\n")])))
        .send()
        .await
        .unwrap();
    crate::codebuild::project_with(
        &cb,
        "failing",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first\n      - echo second\n      - exit 3\n",
    )
    .await;
    let mut decl = tutorial_declaration("built");
    decl["stages"][0]["actions"][0]["configuration"]["S3ObjectKey"] = json!("app.zip");
    decl["stages"][1] = json!({"name": "build", "actions": [{"name": "compile",
        "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
        "configuration": {"ProjectName": "failing"}, "inputArtifacts": [{"name": "intermediate-file"}]}]});
    create(&server, decl);
    let id = latest_execution(&cp, "built").await;
    assert_eq!(
        finished(&cp, "built", &id).await,
        aws_sdk_codepipeline::types::PipelineExecutionStatus::Failed
    );

    // The build's id, in the table and the JSON; the multi-line error on one line of the table.
    let (code, json_out, err) = cli(
        &server,
        &["history", "actions", "built", "--output", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let runs: Value = serde_json::from_str(&json_out).unwrap();
    let build = &runs[0];
    let build_id = build["externalExecutionId"].as_str().unwrap().to_string();
    assert!(build_id.starts_with("failing:"), "{build}");
    let message = build["errorDetails"]["message"].as_str().unwrap();
    assert!(message.lines().count() > 1, "{message}");
    let (_, table, _) = cli(&server, &["history", "actions", "built"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[0].contains("EXTERNAL ID"), "{table}");
    assert!(rows[1].contains(&build_id), "{table}");
    assert!(rows[1].ends_with(" …"), "{table}");
    // Times carry their zone.
    let zoned = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d ").unwrap();
    assert!(zoned.is_match(rows[1]), "{table}");

    // Filters are checked: an unknown value is an error, not an empty table.
    for (args, wanted) in [
        (
            vec!["history", "executions", "built", "--status", "Bogus"],
            "--status Bogus: give one of Cancelled, InProgress",
        ),
        (
            vec!["history", "actions", "built", "--status", "Stopped"],
            "--status Stopped: give one of InProgress, Abandoned, Succeeded, Failed",
        ),
        (
            vec!["history", "actions", "built", "--stage", "nope"],
            "--stage nope: pipeline built has no such stage (its stages: stage1, build)",
        ),
        (
            vec!["history", "executions", "built", "--limit", "0"],
            "--limit 0: give 1 to 10000",
        ),
    ] {
        let (code, _, err) = cli(&server, &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
    let (code, _, _) = cli(
        &server,
        &[
            "history", "actions", "built", "--status", "failed", "--stage", "build",
        ],
    );
    assert_eq!(code, 0);

    // A diff of executions of two pipelines says so.
    create(&server, tutorial_declaration("other"));
    let other = latest_execution(&cp, "other").await;
    finished(&cp, "other", &other).await;
    let (code, _, err) = cli(&server, &["diff", &id, &other]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("warning: {id} is an execution of built (eu-central-1) and {other} of other (eu-central-1)")),
        "{err}"
    );
}

#[tokio::test]
async fn a_running_execution_shows_the_time_so_far_and_colours_follow_no_color() {
    let server = Server::start();
    let cp = server.codepipeline();
    tutorial_buckets(&server.s3()).await;
    create(&server, approval_declaration("slow"));
    let id = latest_execution(&cp, "slow").await;
    approval_token(&cp, "slow").await;
    // A running execution's DURATION is the time so far: once it has waited over a second, it
    // is no longer counted in milliseconds (its last change stays at the approval's start).
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, table, _) = cli(&server, &["history", "executions", "slow"]);
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with(&id), "{table}");
    let duration = row.split_whitespace().nth(5).unwrap();
    assert!(
        !duration.ends_with("ms") && duration.ends_with('s'),
        "{table}"
    );
    // On a terminal, statuses are coloured unless NO_COLOR is set.
    let on_terminal = |no_color: bool| -> String {
        let command = format!(
            "{} history executions slow --endpoint {}",
            env!("CARGO_BIN_EXE_codepipeline-local"),
            server.endpoint
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .env("AWS_REGION", "eu-central-1")
            .env("RUST_LOG", "warn")
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).to_string()
    };
    assert!(on_terminal(false).contains("\x1b[36mInProgress\x1b[0m"));
    let plain = on_terminal(true);
    assert!(
        plain.contains("InProgress") && !plain.contains("\x1b["),
        "{plain:?}"
    );
}

/// Polls `history executions PIPELINE` (at most 30 s) until `id` is said to wait for `wanted`.
fn waits_for(server: &Server, pipeline: &str, id: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = cli(
            server,
            &["history", "executions", pipeline, "--output", "json"],
        );
        let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let found = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["pipelineExecutionId"] == id)
            .map(|e| e["waitingFor"].clone());
        if found.as_ref().and_then(Value::as_str) == Some(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never waited for {wanted}: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn what_a_running_execution_waits_for_is_said() {
    let server = Server::start();
    let cp = server.codepipeline();
    tutorial_buckets(&server.s3()).await;
    create(&server, approval_declaration("held"));
    let first = latest_execution(&cp, "held").await;
    let token = approval_token(&cp, "held").await;
    waits_for(&server, "held", &first, "approval gate/approve");
    // A second execution waits to enter the stage the first holds.
    let second = start(&cp, "held").await;
    waits_for(
        &server,
        "held",
        &second,
        &format!("stage gate, held by execution {first}"),
    );
    // A disabled transition stops the first once approved; the second then reaches the approval.
    cp.disable_stage_transition()
        .pipeline_name("held")
        .stage_name("stage2")
        .transition_type(aws_sdk_codepipeline::types::StageTransitionType::Inbound)
        .reason("release freeze")
        .send()
        .await
        .unwrap();
    crate::engine::approval(
        &cp,
        "held",
        &token,
        aws_sdk_codepipeline::types::ApprovalStatus::Approved,
    )
    .send()
    .await
    .unwrap();
    waits_for(
        &server,
        "held",
        &first,
        "transition into stage stage2 disabled: release freeze",
    );
    waits_for(&server, "held", &second, "approval gate/approve");
    let (_, replay, _) = cli(&server, &["replay", &first]);
    assert!(
        replay.contains("\nwaits for transition into stage stage2 disabled: release freeze\n"),
        "{replay}"
    );
}
