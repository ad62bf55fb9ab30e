//! The history commands against real pipelines: their JSON and tables match the API's answers,
//! online (through the server) and offline (the data dir read directly), replay and its states,
//! rerun on recorded revisions, diff, export, and one-line errors.

use std::process::Command;

use aws_sdk_codepipeline::types::{ApprovalStatus, PipelineExecutionStatus};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::engine::{
    approval, approval_declaration, approval_token, body, create, finished, latest_execution,
    start, tutorial_buckets,
};

/// Runs the binary with `args`: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("AWS_REGION", "eu-central-1")
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The JSON a command prints, asking `server`.
fn online(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--endpoint", &server.endpoint, "--output", "json"]);
    let (code, out, err) = cli(&all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

/// The JSON a command prints, reading the data dir itself.
fn offline(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let dir = data_dir.to_string_lossy().to_string();
    let mut all = args.to_vec();
    all.extend(["--data-dir", &dir, "--output", "json"]);
    let (code, out, err) = cli(&all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn history_answers_like_the_api_online_and_offline() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    // A failing run: the source object is gone.
    s3.delete_object()
        .bucket("source-bucket")
        .key("file")
        .send()
        .await
        .unwrap();
    let failed = start(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &failed).await,
        PipelineExecutionStatus::Failed
    );

    let api_executions = server
        .call(
            "ListPipelineExecutions",
            json!({"pipelineName": "pipeline"}),
        )
        .json();
    let api_actions = server
        .call("ListActionExecutions", json!({"pipelineName": "pipeline"}))
        .json();

    let commands: Vec<Vec<&str>> = vec![
        vec!["history", "pipelines"],
        vec!["history", "executions", "pipeline"],
        vec!["history", "executions", "pipeline", "--status", "Failed"],
        vec!["history", "actions", "pipeline"],
        vec![
            "history", "actions", "pipeline", "--stage", "stage1", "--since", "1h",
        ],
        vec!["history", "actions", "pipeline", "--execution", &first],
        vec!["replay", &failed],
    ];
    let answers: Vec<Value> = commands.iter().map(|c| online(&server, c)).collect();

    // The pipelines list counts the executions the API lists.
    let pipelines = &answers[0];
    assert_eq!(pipelines[0]["name"], "pipeline");
    assert_eq!(pipelines[0]["executions"], 2);
    assert_eq!(
        pipelines[0]["latestExecution"]["pipelineExecutionId"],
        failed.as_str()
    );
    // Executions: the same ids and statuses, newest first.
    let summaries = &api_executions["pipelineExecutionSummaries"];
    assert_eq!(
        ids(&answers[1], "pipelineExecutionId"),
        ids(summaries, "pipelineExecutionId")
    );
    assert_eq!(ids(&answers[1], "status"), ids(summaries, "status"));
    assert_eq!(
        ids(&answers[2], "pipelineExecutionId"),
        vec![failed.clone()]
    );
    // Actions: the same action executions in the same order.
    let details = &api_actions["actionExecutionDetails"];
    assert_eq!(
        ids(&answers[3], "actionExecutionId"),
        ids(details, "actionExecutionId")
    );
    assert_eq!(ids(&answers[3], "status"), ids(details, "status"));
    let failed_run = &answers[3][0];
    assert_eq!(failed_run["status"], "Failed");
    assert!(failed_run["errorDetails"]["message"].is_string());
    assert!(answers[4]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["stageName"] == "stage1"));
    assert_eq!(answers[4].as_array().unwrap().len(), 2, "{}", answers[4]);
    assert_eq!(answers[5].as_array().unwrap().len(), 2);
    // Replay: the failed execution's events, from its start to its failure.
    let timeline = answers[6].as_array().unwrap();
    assert_eq!(timeline[0]["event"], "ExecutionStarted");
    assert_eq!(timeline.last().unwrap()["event"], "ExecutionFinished");
    assert_eq!(timeline.last().unwrap()["status"], "Failed");
    assert!(timeline
        .iter()
        .any(|e| e["event"] == "ActionFailed" && e["stageName"] == "stage1"));

    // Tables, as people read them: plain text when piped, one row an execution.
    let (code, table, _) = cli(&[
        "history",
        "executions",
        "pipeline",
        "--endpoint",
        &server.endpoint,
    ]);
    assert_eq!(code, 0);
    assert!(table.starts_with("EXECUTION"), "{table}");
    assert!(!table.contains('\x1b'), "colour codes when piped: {table}");
    assert_eq!(table.lines().count(), 3);
    assert!(table.lines().nth(1).unwrap().starts_with(&failed));

    // Offline, with the server gone: the same answers.
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    for (command, online_answer) in commands.iter().zip(&answers) {
        assert_eq!(&offline(&dir, command), online_answer, "{command:?}");
    }
}

#[tokio::test]
async fn replay_at_an_event_shows_the_state_seen_then() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("gated"));
    let id = latest_execution(&cp, "gated").await;
    let token = approval_token(&cp, "gated").await;
    let seen = server
        .call("GetPipelineState", json!({"name": "gated"}))
        .json();
    approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "gated", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let timeline = online(&server, &["replay", &id]);
    let started = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "ActionStarted" && e["actionName"] == "approve")
        .expect("the approval started");
    assert_eq!(started["details"]["token"], token.as_str());
    let n = started["sequence"].as_u64().unwrap().to_string();
    let then = online(&server, &["replay", &id, "--at", &n]);
    assert_eq!(then["status"], "InProgress");
    // The same point named by its time (RFC 3339, to the microsecond).
    let at = started["recordedAt"].as_f64().unwrap();
    let time = chrono::DateTime::from_timestamp_micros((at * 1e6).round() as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(online(&server, &["replay", &id, "--at", &time]), then);
    // Every stage and action the execution had reached, as GetPipelineState showed it then.
    for (stage, observed) in then["stageStates"]
        .as_array()
        .unwrap()
        .iter()
        .zip(seen["stageStates"].as_array().unwrap())
    {
        assert_eq!(stage["stageName"], observed["stageName"]);
        if stage["latestExecution"].is_object() {
            assert_eq!(stage["latestExecution"], observed["latestExecution"]);
            for (action, o) in stage["actionStates"]
                .as_array()
                .unwrap()
                .iter()
                .zip(observed["actionStates"].as_array().unwrap())
            {
                assert_eq!(action["latestExecution"], o["latestExecution"], "{action}");
            }
        }
    }
    assert_eq!(
        then["stageStates"][1]["actionStates"][0]["latestExecution"]["token"],
        token.as_str()
    );
    // The deploy stage had not started then.
    assert!(then["stageStates"][2]["latestExecution"].is_null());
    // And at the end, all succeeded.
    let last = timeline.as_array().unwrap().len().to_string();
    let end = online(&server, &["replay", &id, "--at", &last]);
    assert_eq!(end["status"], "Succeeded");
    // Export: the declaration, then every event, one JSON document a line.
    let (code, out, _) = cli(&["export", &id, "--endpoint", &server.endpoint]);
    assert_eq!(code, 0);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["declaration"]["name"], "gated");
    assert_eq!(lines.len(), timeline.as_array().unwrap().len() + 1);
    assert_eq!(lines[1]["sequence"], 1);
}

#[tokio::test]
async fn rerun_reads_the_recorded_revision_and_diff_shows_what_changed() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    // The source gets a newer version; a plain start reads it.
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"second version\n"))
        .send()
        .await
        .unwrap();
    let second = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &second).await;
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"second version\n"
    );
    // The rerun of the first reads the first version again.
    let (code, out, err) = cli(&[
        "rerun",
        &first,
        "--endpoint",
        &server.endpoint,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rerun: Value = serde_json::from_str(&out).unwrap();
    let rerun_id = rerun["pipelineExecutionId"].as_str().unwrap().to_string();
    assert_eq!(
        finished(&cp, "pipeline", &rerun_id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );
    let executions = server
        .call(
            "ListPipelineExecutions",
            json!({"pipelineName": "pipeline"}),
        )
        .json();
    let summaries = executions["pipelineExecutionSummaries"].as_array().unwrap();
    let revision = |id: &str| {
        summaries
            .iter()
            .find(|s| s["pipelineExecutionId"] == id)
            .unwrap()["sourceRevisions"][0]["revisionId"]
            .clone()
    };
    assert_eq!(revision(&rerun_id), revision(&first));
    assert_ne!(revision(&second), revision(&first));
    let rerun_summary = summaries
        .iter()
        .find(|s| s["pipelineExecutionId"] == rerun_id.as_str())
        .unwrap();
    assert!(rerun_summary["trigger"]["triggerDetail"]
        .as_str()
        .unwrap()
        .contains(&format!("rerun of execution {first}")));

    // Diff: the source revision differs, the rest does not.
    let diff = online(&server, &["diff", &first, &second]);
    let rows = diff["actions"].as_array().unwrap();
    let source = rows.iter().find(|r| r["stageName"] == "stage1").unwrap();
    assert_eq!(source["differs"], json!(["revision", "outputVariables"]));
    assert_eq!(source["a"]["revision"], revision(&first));
    assert_eq!(source["b"]["revision"], revision(&second));
    assert_eq!(diff["differs"], json!([]));
    let (code, table, _) = cli(&["diff", &first, &second, "--endpoint", &server.endpoint]);
    assert_eq!(code, 0);
    assert!(table.contains("revision:"), "{table}");

    // Rerun needs a server; the others do not.
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let (code, _, err) = cli(&["rerun", &first, "--data-dir", &dir.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("needs a running server"), "{err}");
    assert_eq!(offline(&dir, &["diff", &first, &second]), diff);
}

#[test]
fn errors_are_one_line_and_a_non_zero_exit() {
    let server = Server::start();
    let (code, out, err) = cli(&[
        "replay",
        "no-such-execution",
        "--endpoint",
        &server.endpoint,
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("execution no-such-execution does not exist"),
        "{err}"
    );
    let (code, _, err) = cli(&[
        "history",
        "executions",
        "nope",
        "--endpoint",
        &server.endpoint,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("pipeline nope does not exist"), "{err}");
    // Nobody listens on this port once the server is gone.
    let endpoint = server.endpoint.clone();
    let _tmp = server.kill9();
    let (code, _, err) = cli(&["history", "pipelines", "--endpoint", &endpoint]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no codepipeline-local server answers"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(&[
        "history",
        "pipelines",
        "--data-dir",
        &empty.path().to_string_lossy(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no data in"), "{err}");
}

#[tokio::test]
async fn a_stopped_execution_shows_its_stop_in_the_history() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("gated"));
    let id = latest_execution(&cp, "gated").await;
    approval_token(&cp, "gated").await;
    cp.stop_pipeline_execution()
        .pipeline_name("gated")
        .pipeline_execution_id(&id)
        .abandon(true)
        .reason("not today")
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "gated", &id).await,
        PipelineExecutionStatus::Stopped
    );
    let stopped = online(
        &server,
        &["history", "executions", "gated", "--status", "Stopped"],
    );
    assert_eq!(ids(&stopped, "pipelineExecutionId"), vec![id.clone()]);
    let abandoned = online(
        &server,
        &["history", "actions", "gated", "--status", "Abandoned"],
    );
    assert_eq!(ids(&abandoned, "actionName"), vec!["approve".to_string()]);
    let timeline = online(&server, &["replay", &id]);
    let events: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let stop = events.iter().position(|e| *e == "StopRequested").unwrap();
    assert_eq!(timeline[stop]["details"]["reason"], "not today");
    assert_eq!(
        events[stop + 1..],
        ["ActionAbandoned", "StageFinished", "ExecutionFinished"][..]
    );
    assert_eq!(
        timeline.as_array().unwrap().last().unwrap()["status"],
        "Stopped"
    );
}

/// Offline reads start from the snapshot a stopping server writes, fold what came after it, and
/// ignore a snapshot they cannot use: the answers stay those of the server.
#[tokio::test]
async fn offline_reads_use_the_checkpoint_and_what_came_after_it() {
    offline_reads("sled").await;
}

/// The offline reader finds the engine that keeps the log.
#[tokio::test]
async fn offline_reads_use_the_checkpoint_and_what_came_after_it_on_sqlite() {
    offline_reads("sqlite").await;
}

async fn offline_reads(engine: &str) {
    let env = [("CODEPIPELINE_LOCAL_ENGINE", engine)];
    let server = Server::start_with(&env);
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    let dir = server.data_dir.clone();
    let tmp = server.terminate();
    let checkpoint = dir.join("checkpoint.json");
    assert!(
        checkpoint.exists(),
        "a stopping server writes the checkpoint"
    );
    let before = offline(&dir, &["history", "executions", "pipeline"]);
    assert_eq!(ids(&before, "pipelineExecutionId"), vec![first.clone()]);

    // More history after the checkpoint, and no graceful stop this time.
    let server = Server::try_start_with(&dir, &env).unwrap();
    let cp = server.codepipeline();
    let second = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &second).await;
    let online_actions = online(&server, &["history", "actions", "pipeline"]);
    let online_executions = online(&server, &["history", "executions", "pipeline"]);
    drop(server.kill9());
    assert_eq!(
        offline(&dir, &["history", "actions", "pipeline"]),
        online_actions
    );
    assert_eq!(
        offline(&dir, &["history", "executions", "pipeline"]),
        online_executions
    );
    // A checkpoint that is not one is ignored.
    std::fs::write(&checkpoint, b"{not a checkpoint").unwrap();
    assert_eq!(
        offline(&dir, &["history", "actions", "pipeline"]),
        online_actions
    );
    drop(tmp);
}
