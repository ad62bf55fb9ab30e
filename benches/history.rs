//! History benchmark: how long the history commands take on a large history.
//!
//! A pipeline whose executions run 10 actions each (an S3 source, then 9 S3 deploys side by
//! side) is run 10,000 times (32 at a time): 100,000 action executions in the data dir. Then,
//! timed as a user sees them (the whole `codepipeline-local` command, process start included):
//! `history actions` (its first page) and `history executions`, against the running server and
//! offline (the data dir read directly, after the server stopped); and `replay` of one execution
//! of ~1,000 events (a pipeline of 11 stages and 491 actions).
//!
//! Run: `cargo bench --bench history` (BENCH_EXECUTIONS, default 10000; BENCH_RUNS, the timed
//! runs of each command, default 20). Results go in docs/benchmarks.md.

mod common;

use std::time::Instant;

use common::{call, env_or, time, wait, Conn, Proc};
use serde_json::{json, Value};

fn action(
    name: &str,
    category: &str,
    configuration: Value,
    inputs: &[&str],
    outputs: &[&str],
) -> Value {
    let provider = "S3";
    json!({
        "name": name,
        "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"},
        "runOrder": 1,
        "configuration": configuration,
        "inputArtifacts": inputs.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "outputArtifacts": outputs.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
    })
}

/// A pipeline: an S3 source stage, then `stages` stages of `deploys` S3 deploys each.
fn declaration(name: &str, stages: usize, deploys: usize) -> Value {
    let source = action(
        "source",
        "Source",
        json!({"S3Bucket": "source-bucket", "S3ObjectKey": "file", "PollForSourceChanges": "false"}),
        &[],
        &["src"],
    );
    let mut all = vec![json!({"name": "Source", "actions": [source]})];
    for s in 0..stages {
        let actions: Vec<Value> = (0..deploys)
            .map(|d| {
                action(
                    &format!("deploy-{d}"),
                    "Deploy",
                    json!({"BucketName": "target-bucket", "Extract": "false", "ObjectKey": format!("out-{s}-{d}")}),
                    &["src"],
                    &[],
                )
            })
            .collect();
        all.push(json!({"name": format!("Deploy-{s}"), "actions": actions}));
    }
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "PARALLEL",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": all,
    })
}

fn main() {
    let executions: usize = env_or("BENCH_EXECUTIONS", 10_000);
    let runs: usize = env_or("BENCH_RUNS", 20);
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    let mut conn = Conn::open(&server.addr);
    for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
        assert_eq!(conn.send("PUT", &format!("/{bucket}"), "", b"").0, 200);
    }
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(
        conn.send("PUT", "/source-bucket?versioning", "", versioning)
            .0,
        200
    );
    assert_eq!(
        conn.send("PUT", "/source-bucket/file", "", b"Hello!\n").0,
        200
    );
    for (name, stages, deploys) in [("wide", 1, 9), ("long", 10, 49)] {
        call(
            &server.addr,
            "CreatePipeline",
            &json!({"pipeline": declaration(name, stages, deploys)}).to_string(),
        );
    }

    // The history: `executions` runs of "wide", 32 at a time (its first run came with
    // CreatePipeline).
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|scope| {
        for _ in 0..32 {
            let (next, addr) = (&next, server.addr.clone());
            scope.spawn(move || {
                let mut conn = Conn::open(&addr);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < executions {
                    let (status, e) =
                        conn.call_json("StartPipelineExecution", r#"{"name":"wide"}"#);
                    assert_eq!(status, 200, "{e}");
                    wait(
                        &mut conn,
                        "wide",
                        e["pipelineExecutionId"].as_str().unwrap(),
                    );
                }
            });
        }
    });
    let long = call(
        &server.addr,
        "ListPipelineExecutions",
        r#"{"pipelineName":"long"}"#,
    )["pipelineExecutionSummaries"][0]["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    wait(&mut Conn::open(&server.addr), "long", &long);
    println!(
        "history made: {executions} executions of 10 actions ({} action executions) in {:.1} s; server {}",
        executions * 10,
        started.elapsed().as_secs_f64(),
        server.rss()
    );

    let endpoint = format!("http://{}", server.addr);
    let online = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--endpoint", &endpoint, "--region", "eu-central-1"]);
        time(&all, runs)
    };
    let (p50, max, out) = online(&["history", "actions", "wide"]);
    assert_eq!(out.lines().count(), 21, "a header and a first page of 20");
    println!("history actions wide (first page of 20), online: p50 {p50:.1} ms, max {max:.1} ms");
    let (p50, max, _) = online(&["history", "executions", "wide"]);
    println!("history executions wide (first 20), online: p50 {p50:.1} ms, max {max:.1} ms");
    let (p50, max, out) = online(&["replay", &long]);
    let events = out.lines().count() - 2;
    println!("replay of an execution of {events} events, online: p50 {p50:.1} ms, max {max:.1} ms");
    let (p50, max, _) = online(&["replay", &long, "--at", "500"]);
    println!("replay --at 500 of it, online: p50 {p50:.1} ms, max {max:.1} ms");
    let (p50, max, _) = time(&["--version"], runs);
    println!("(the command alone, --version: p50 {p50:.1} ms, max {max:.1} ms)");

    server.terminate();
    let dir = tmp.path().to_string_lossy().to_string();
    let offline = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &dir, "--region", "eu-central-1"]);
        time(&all, runs.min(5))
    };
    let (p50, max, _) = offline(&["history", "actions", "wide"]);
    println!(
        "history actions wide (first page), offline (views snapshot + events after it): p50 {p50:.1} ms, max {max:.1} ms"
    );
    let (p50, max, _) = offline(&["replay", &long]);
    println!("replay of the {events}-event execution, offline: p50 {p50:.1} ms, max {max:.1} ms");
}
