//! Checkpoints: a start after kill -9 restores the last checkpoint and folds only what came
//! after it, and answers exactly as a start that folds the whole log; a checkpoint that is not
//! one is ignored with a warning.

use serde_json::json;

use crate::common::{tutorial_declaration, Server};
use crate::engine::{create, finished, latest_execution, start, tutorial_buckets};

/// What every projection answers: pipelines, executions, action executions, stage states,
/// buckets and object versions, roles, projects and builds.
fn answers(server: &Server) -> Vec<String> {
    let client = server.client();
    let mut out = Vec::new();
    for (op, body) in [
        ("ListPipelines", json!({})),
        ("GetPipeline", json!({"name": "pipeline"})),
        ("GetPipelineState", json!({"name": "pipeline"})),
        (
            "ListPipelineExecutions",
            json!({"pipelineName": "pipeline"}),
        ),
        ("ListActionExecutions", json!({"pipelineName": "pipeline"})),
    ] {
        let r = client.call(op, body);
        assert_eq!(r.status, 200, "{op}: {}", r.text());
        let mut v = r.json();
        // Only what the log holds: GetPipelineState's `updated` dates are the log's, the
        // answer's own `metadata` is not there.
        if let Some(obj) = v.as_object_mut() {
            obj.remove("metadata");
        }
        out.push(v.to_string());
    }
    let strip = |text: String| {
        let mut text = text;
        while let Some(start) = text.find("<RequestId>") {
            let end = text[start..]
                .find("</RequestId>")
                .map_or(text.len(), |e| start + e + 12);
            text.replace_range(start..end, "");
        }
        text
    };
    out.push(strip(client.http("GET", "/", "localhost", b"").text()));
    out.push(strip(
        client
            .http("GET", "/source-bucket?versions", "localhost", b"")
            .text(),
    ));
    out.push(strip(
        client
            .query("iam", "Action=ListRoles&Version=2010-05-08")
            .text(),
    ));
    let projects = client.raw_for(
        "codebuild",
        Some("CodeBuild_20161006.BatchGetProjects"),
        br#"{"names":["kept"]}"#,
    );
    out.push(projects.text());
    out
}

/// Where a start (logging at `info`) loaded from: the checkpoint's position and how many events
/// it folded after it.
fn loaded_from(server: &Server) -> (u64, u64) {
    let log = server.log();
    let numbers = log
        .split_once("from the checkpoint at event ")
        .and_then(|(_, rest)| {
            let (at, rest) = rest.split_once(" and ")?;
            let (folded, _) = rest.split_once(" events after it")?;
            Some((at.parse().ok()?, folded.parse().ok()?))
        });
    numbers.unwrap_or_else(|| panic!("the start said nothing of where it loaded from: {log}"))
}

/// The position the checkpoint in `dir` holds, if there is one.
fn checkpoint_position(dir: &std::path::Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("checkpoint.json")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["position"].as_u64()
}

/// Waits (at most 60 s) until the checkpoint in `dir` holds at least `position`.
fn wait_for_checkpoint(dir: &std::path::Path, position: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while checkpoint_position(dir).is_none_or(|p| p < position) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint reached position {position} (it holds {:?})",
            checkpoint_position(dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The position of the last event in the log, from the history export.
fn last_position(server: &Server) -> u64 {
    let r = server
        .client()
        .http("GET", "/_codepipeline_local/health", "localhost", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_u64()
        .expect("the health answer counts events")
}

#[tokio::test]
async fn a_start_after_kill_9_between_checkpoints_answers_as_a_full_rebuild() {
    kill_9_between_checkpoints("sled").await;
}

#[tokio::test]
async fn a_start_after_kill_9_between_checkpoints_answers_as_a_full_rebuild_on_sqlite() {
    kill_9_between_checkpoints("sqlite").await;
}

async fn kill_9_between_checkpoints(engine: &str) {
    let often = [
        ("CODEPIPELINE_LOCAL_CHECKPOINT_INTERVAL_SECONDS", "1"),
        ("CODEPIPELINE_LOCAL_CHECKPOINT_MIN_EVENTS", "1"),
        ("CODEPIPELINE_LOCAL_ENGINE", engine),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::try_start_with(dir, &often).unwrap();
    let cp = server.codepipeline();
    one_finished_execution(&server).await;
    create_role(&server);
    wait_for_checkpoint(dir, last_position(&server));

    // More of everything after the checkpoint; then the process dies before the next one could
    // be written (the restarted server writes none: it checkpoints only at a stop).
    let second = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &second).await;
    let project = server.client().raw_for(
        "codebuild",
        Some("CodeBuild_20161006.CreateProject"),
        br#"{"name":"kept","source":{"type":"NO_SOURCE","buildspec":"version: 0.2"},"artifacts":{"type":"NO_ARTIFACTS"},"environment":{"type":"LINUX_CONTAINER","image":"i","computeType":"BUILD_GENERAL1_SMALL"},"serviceRole":"arn:aws:iam::000000000000:role/r"}"#,
    );
    assert_eq!(project.status, 200, "{}", project.text());
    let put = server
        .client()
        .http("PUT", "/source-bucket/after", "localhost", b"later");
    assert_eq!(put.status, 200);
    let before = answers(&server);
    let held = checkpoint_position(dir).unwrap();
    let tmp_kept = server.kill9();
    assert!(tmp_kept.is_none());

    // At `info`, a start says where it loaded from.
    let never = [
        ("CODEPIPELINE_LOCAL_CHECKPOINT_INTERVAL_SECONDS", "0"),
        ("RUST_LOG", "info"),
        ("CODEPIPELINE_LOCAL_ENGINE", engine),
    ];
    let restored = Server::try_start_with(dir, &never).unwrap();
    let from_checkpoint = answers(&restored);
    assert_eq!(
        loaded_from(&restored).0,
        held,
        "the start used the checkpoint"
    );
    drop(restored.kill9());
    assert_eq!(checkpoint_position(dir), Some(held));

    std::fs::remove_file(dir.join("checkpoint.json")).unwrap();
    let rebuilt = Server::try_start_with(dir, &never).unwrap();
    assert_eq!(loaded_from(&rebuilt).0, 0, "the start folded the whole log");
    let from_log = answers(&rebuilt);
    for ((b, c), r) in before.iter().zip(&from_checkpoint).zip(&from_log) {
        assert_eq!(c, b, "restored from the checkpoint");
        assert_eq!(r, b, "folded from the whole log");
    }
    // A graceful stop leaves a checkpoint of the whole log, which the next start uses whole.
    let end = last_position(&rebuilt);
    drop(rebuilt.terminate());
    assert_eq!(checkpoint_position(dir), Some(end));
    let again = Server::try_start_with(dir, &never).unwrap();
    assert_eq!(loaded_from(&again), (end, 0));
    assert_eq!(answers(&again), before);
    // A stop that follows fewer than `checkpoint_min_events` events keeps the checkpoint it has:
    // the next start folds them.
    let put = again
        .client()
        .http("PUT", "/source-bucket/one-more", "localhost", b"1");
    assert_eq!(put.status, 200);
    drop(again.terminate());
    assert_eq!(checkpoint_position(dir), Some(end));
    let last = Server::try_start_with(dir, &never).unwrap();
    assert_eq!(loaded_from(&last), (end, 1));
}

/// The tutorial pipeline, created, and its first execution, finished: returns its id.
async fn one_finished_execution(server: &Server) -> String {
    tutorial_buckets(&server.s3()).await;
    create(server, tutorial_declaration("pipeline"));
    let cp = server.codepipeline();
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    first
}

/// Creates the role `kept`.
fn create_role(server: &Server) {
    let role = server.client().query(
        "iam",
        "Action=CreateRole&Version=2010-05-08&RoleName=kept&AssumeRolePolicyDocument=%7B%22Statement%22%3A%5B%5D%7D",
    );
    assert_eq!(role.status, 200, "{}", role.text());
}

/// A start that had to fold many events (no checkpoint, or one of an older version) writes a
/// checkpoint of what it folded at once, so that the next start, even after kill -9, folds
/// nothing again.
#[tokio::test]
async fn a_start_that_folded_the_log_checkpoints_it_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start_in(dir);
    one_finished_execution(&server).await;
    let end = last_position(&server);
    drop(server.kill9());
    let _ = std::fs::remove_file(dir.join("checkpoint.json"));

    let env = [
        ("CODEPIPELINE_LOCAL_CHECKPOINT_INTERVAL_SECONDS", "0"),
        ("CODEPIPELINE_LOCAL_CHECKPOINT_MIN_EVENTS", "10"),
        ("RUST_LOG", "info"),
    ];
    let folded = Server::try_start_with(dir, &env).unwrap();
    assert_eq!(loaded_from(&folded), (0, end));
    assert_eq!(checkpoint_position(dir), Some(end), "written at the start");
    let before = answers(&folded);
    drop(folded.kill9());
    let again = Server::try_start_with(dir, &env).unwrap();
    assert_eq!(loaded_from(&again), (end, 0));
    assert_eq!(answers(&again), before);
}

#[tokio::test]
async fn a_checkpoint_that_is_not_one_is_ignored_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start_in(dir);
    one_finished_execution(&server).await;
    create_role(&server);
    let before = answers(&server);
    drop(server.terminate());
    let file = dir.join("checkpoint.json");
    let good = std::fs::read(&file).unwrap();

    let mut wrong_event: serde_json::Value = serde_json::from_slice(&good).unwrap();
    wrong_event["recorded_at"] = json!(1.0);
    let mut wrong_log: serde_json::Value = serde_json::from_slice(&good).unwrap();
    wrong_log["log"] = json!("another");
    let mut too_far: serde_json::Value = serde_json::from_slice(&good).unwrap();
    too_far["position"] = json!(too_far["position"].as_u64().unwrap() + 1000);
    let mut missing_part: serde_json::Value = serde_json::from_slice(&good).unwrap();
    missing_part["projections"]
        .as_object_mut()
        .unwrap()
        .remove("iam");
    let mut broken_part: serde_json::Value = serde_json::from_slice(&good).unwrap();
    broken_part["projections"]["s3"] = json!({"buckets": 5});
    let cases = [
        (b"{torn".to_vec(), "unreadable"),
        (wrong_event.to_string().into_bytes(), "is not this log's"),
        (wrong_log.to_string().into_bytes(), "it is of another log"),
        (too_far.to_string().into_bytes(), "the log ends at"),
        (missing_part.to_string().into_bytes(), "it holds no iam"),
        (broken_part.to_string().into_bytes(), "its s3 is unreadable"),
    ];
    for (bytes, why) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let server = Server::start_in(dir);
        let log = server.log();
        assert!(
            log.contains("the checkpoint") && log.contains(why),
            "{why}: {log}"
        );
        assert_eq!(answers(&server), before, "{why}");
        // Killed, so that no new checkpoint replaces the broken one for the next case.
        drop(server.kill9());
    }
}

#[tokio::test]
async fn a_deleted_pipelines_history_leaves_the_log_and_its_name_can_be_used_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let often = [
        ("CODEPIPELINE_LOCAL_CHECKPOINT_INTERVAL_SECONDS", "1"),
        ("CODEPIPELINE_LOCAL_CHECKPOINT_MIN_EVENTS", "1"),
        ("RUST_LOG", "info"),
    ];
    let server = Server::try_start_with(dir, &often).unwrap();
    let cp = server.codepipeline();
    let first = one_finished_execution(&server).await;
    let second = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &second).await;
    // A checkpoint whose last event is the second execution's last, which is about to go.
    let end = last_position(&server);
    wait_for_checkpoint(dir, end);
    let r = server.call("DeletePipeline", json!({"name": "pipeline"}));
    assert_eq!(r.status, 200, "{}", r.text());
    // The history leaves the log in the background; the server says when it is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.log().contains("of 2 of its executions left the log") {
        assert!(
            std::time::Instant::now() < deadline,
            "the history was not removed: {}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let held = checkpoint_position(dir).unwrap();
    drop(server.kill9());
    // The checkpoint is still this log's, though the event it ended at may have left it.
    let never = [
        ("CODEPIPELINE_LOCAL_CHECKPOINT_INTERVAL_SECONDS", "0"),
        ("RUST_LOG", "info"),
    ];
    let restarted = Server::try_start_with(dir, &never).unwrap();
    let log = restarted.log();
    assert!(!log.contains("is ignored"), "{log}");
    assert_eq!(loaded_from(&restarted).0, held);
    assert_eq!(
        restarted.call("ListPipelines", json!({})).json()["pipelines"],
        json!([])
    );
    drop(restarted.terminate());

    let stream = |id: &str| format!("execution:000000000000:eu-central-1:pipeline:{id}");
    {
        let store =
            codepipeline_local::eventstore::open(&dir.join("events"), None, 8 << 20).unwrap();
        for id in [&first, &second] {
            assert!(
                store.read_stream(&stream(id), 1).unwrap().is_empty(),
                "{id}"
            );
        }
        let own = store
            .read_stream("pipeline:000000000000:eu-central-1:pipeline", 1)
            .unwrap();
        let types: Vec<&str> = own.iter().map(|r| r.event_type.as_str()).collect();
        assert_eq!(
            types,
            ["PipelineDeleted"],
            "the deletion stays as the stream's end"
        );
    }

    // Folded whole from what is left, the log answers as before: no pipeline. The name can be
    // used again, and the new pipeline has only its own history.
    std::fs::remove_file(dir.join("checkpoint.json")).unwrap();
    let server = Server::start_in(dir);
    let listed = server.call("ListPipelines", json!({})).json();
    assert_eq!(listed["pipelines"], json!([]));
    create(&server, tutorial_declaration("pipeline"));
    let cp = server.codepipeline();
    let again = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &again).await;
    let executions = server
        .call(
            "ListPipelineExecutions",
            json!({"pipelineName": "pipeline"}),
        )
        .json();
    let ids: Vec<&str> = executions["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pipelineExecutionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [again.as_str()]);
    let got = server
        .call("GetPipeline", json!({"name": "pipeline"}))
        .json();
    assert_eq!(got["pipeline"]["version"], 1);
    let gone = server.call(
        "GetPipelineExecution",
        json!({"pipelineName": "pipeline", "pipelineExecutionId": first}),
    );
    assert_eq!(gone.error_code(), "PipelineExecutionNotFoundException");
}
