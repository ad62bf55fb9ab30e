//! One door per pipeline: what changes a pipeline or starts its executions goes through its
//! actor, so concurrent calls see each other as if they came one after another.

use futures_util::future::join_all;
use serde_json::json;

use crate::common::{tutorial_declaration, Server};
use crate::engine::{approval_declaration, approval_token, create, tutorial_buckets};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_with_one_token_start_one_execution() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("tokens"));
    for trial in 0..100 {
        let token = format!("token-{trial}");
        let starts = (0..4).map(|_| {
            cp.start_pipeline_execution()
                .name("tokens")
                .client_request_token(&token)
                .send()
        });
        let ids: Vec<String> = join_all(starts)
            .await
            .into_iter()
            .map(|r| r.unwrap().pipeline_execution_id().unwrap().to_string())
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "trial {trial}: one token gave {ids:?}"
        );
    }
    // The first execution, and one for each token.
    let mut listed = 0;
    let mut next = None;
    loop {
        let page = cp
            .list_pipeline_executions()
            .pipeline_name("tokens")
            .set_next_token(next)
            .send()
            .await
            .unwrap();
        listed += page.pipeline_execution_summaries().len();
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(listed, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_racing_an_update_runs_no_old_version_past_it() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    // Executions wait at the approval for ever: one of an old version can only end by being
    // cancelled (or superseded by a newer one).
    let mut decl = approval_declaration("raced");
    decl["pipelineType"] = "V2".into();
    decl["executionMode"] = "PARALLEL".into();
    create(&server, decl.clone());
    approval_token(&cp, "raced").await;
    for trial in 0..20 {
        // Both requests leave together; whichever the pipeline takes first, no execution of the
        // version the update replaced may still run once both are answered.
        let barrier = std::sync::Barrier::new(2);
        let (start, update) = std::thread::scope(|scope| {
            let start = scope.spawn(|| {
                let client = server.client();
                barrier.wait();
                client.call("StartPipelineExecution", json!({"name": "raced"}))
            });
            let update = scope.spawn(|| {
                let client = server.client();
                barrier.wait();
                client.call("UpdatePipeline", json!({"pipeline": decl}))
            });
            (start.join().unwrap(), update.join().unwrap())
        });
        assert_eq!(start.status, 200, "{}", start.text());
        assert_eq!(update.status, 200, "{}", update.text());
        let version = update.json()["pipeline"]["version"].as_u64().unwrap();
        assert_eq!(version, trial + 2);
        for (id, status, _) in executions(&server, "raced") {
            if status != "InProgress" {
                continue;
            }
            let e = server.call(
                "GetPipelineExecution",
                json!({"pipelineName": "raced", "pipelineExecutionId": id}),
            );
            let ran = e.json()["pipelineExecution"]["pipelineVersion"].as_u64();
            assert_eq!(
                ran,
                Some(version),
                "trial {trial}: execution {id} of an old version still runs"
            );
        }
    }
}

/// ListPipelineExecutions answered with every execution of `pipeline`, newest first:
/// (id, status, start time).
fn executions(server: &Server, pipeline: &str) -> Vec<(String, String, f64)> {
    let r = server.call(
        "ListPipelineExecutions",
        json!({"pipelineName": pipeline, "maxResults": 100}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["pipelineExecutionId"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["startTime"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_first_execution_is_listed_when_create_pipeline_answers() {
    let server = Server::start();
    tutorial_buckets(&server.s3()).await;
    for i in 0..50 {
        let name = format!("listed-{i}");
        create(&server, tutorial_declaration(&name));
        let listed = executions(&server, &name);
        assert_eq!(listed.len(), 1, "try {i}: {listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_are_listed_in_start_time_order() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("ordered"));
    let starts = (0..31).map(|_| cp.start_pipeline_execution().name("ordered").send());
    for started in join_all(starts).await {
        started.unwrap();
    }
    let listed = executions(&server, "ordered");
    assert_eq!(listed.len(), 32);
    for pair in listed.windows(2) {
        assert!(
            pair[0].2 >= pair[1].2,
            "listed newest first, but {:?} is before {:?}",
            pair[0],
            pair[1]
        );
    }
}
