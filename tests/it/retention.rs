//! The history's retention: finished executions older than `history_retention_days` leave the
//! views and the log, and stay gone across restarts, with or without a checkpoint.

use serde_json::json;

use crate::common::{tutorial_declaration, Server};
use crate::engine::{create, finished, latest_execution, start, tutorial_buckets};

/// Waits (at most 60 s) for `done`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn listed(server: &Server) -> Vec<String> {
    let r = server.call(
        "ListPipelineExecutions",
        json!({"pipelineName": "pipeline"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pipelineExecutionId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn executions_past_the_retention_leave_the_history_and_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // About 2.6 seconds.
    let short = [
        ("CODEPIPELINE_LOCAL_HISTORY_RETENTION_DAYS", "0.00003"),
        ("RUST_LOG", "info"),
    ];
    let server = Server::try_start_with(dir, &short).unwrap();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    wait_until("the first execution did not expire", || {
        !listed(&server).contains(&first)
    });
    let gone = server.call(
        "GetPipelineExecution",
        json!({"pipelineName": "pipeline", "pipelineExecutionId": first}),
    );
    assert_eq!(gone.error_code(), "PipelineExecutionNotFoundException");
    let actions = server
        .call("ListActionExecutions", json!({"pipelineName": "pipeline"}))
        .json();
    assert_eq!(actions["actionExecutionDetails"], json!([]));
    // The pipeline stays, and runs again.
    let state = server.call("GetPipelineState", json!({"name": "pipeline"}));
    assert_eq!(state.status, 200, "{}", state.text());
    assert!(state.json()["stageStates"][0]
        .get("latestExecution")
        .is_none());
    let second = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &second).await;
    wait_until("the first execution's events did not leave the log", || {
        server.log().contains("of 1 of its executions left the log")
    });
    drop(server.kill9());

    {
        let store =
            codepipeline_local::eventstore::open(&dir.join("events"), None, 8 << 20).unwrap();
        let stream = format!("execution:000000000000:eu-central-1:pipeline:{first}");
        assert!(store.read_stream(&stream, 1).unwrap().is_empty());
    }
    // Without the retention, what expired stays gone and the rest stays: from the checkpoint
    // and from the whole log alike.
    for from_log in [false, true] {
        if from_log {
            let _ = std::fs::remove_file(dir.join("checkpoint.json"));
        }
        let server = Server::start_in(dir);
        let ids = listed(&server);
        assert!(!ids.contains(&first), "{ids:?}");
        assert!(ids.contains(&second), "{ids:?}");
        drop(server.kill9());
    }
}
