//! Long-lived benchmark: what a data dir with a long history costs the server.
//!
//! Fill (through the real API, once; it resumes where it stopped): the tutorial pipeline (S3
//! source → S3 deploy, PARALLEL) run BENCH_EXECUTIONS times (default 100,000, about 1.2 M
//! events), 32 at a time, plus CodeBuild builds and S3 objects. Then, measured on that data dir:
//! - the event log's size on disk per event;
//! - a graceful stop (SIGTERM → exit), start-up after it, and RSS after start-up;
//! - start-up after kill -9 with events recorded since the last checkpoint;
//! - ListPipelineExecutions and ListActionExecutions first pages for the pipeline;
//! - `history actions` first page, online and offline.
//!
//! Run: `cargo bench --bench longlived` (BENCH_EXECUTIONS; BENCH_DATA_DIR keeps the data set,
//! default `target/longlived-<executions>`; BENCH_RUNS, timed runs of each read, default 20).
//! Results go in docs/benchmarks.md.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{call, env_or, time, wait, Conn, Proc};
use serde_json::{json, Value};

const PIPELINE: &str = "tutorial";

fn declaration() -> Value {
    json!({
        "name": PIPELINE, "pipelineType": "V2", "executionMode": "PARALLEL",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "file", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "SourceArtifact"}],
            }]},
            {"name": "Deploy", "actions": [{
                "name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": "output"},
                "inputArtifacts": [{"name": "SourceArtifact"}],
            }]},
        ],
    })
}

/// The server's health answer.
fn health(addr: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        b"GET /_codepipeline_local/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer")
        + 4;
    serde_json::from_slice(&raw[at..]).expect("health JSON")
}

/// Starts one execution of the pipeline and waits for its success.
fn run_once(conn: &mut Conn) {
    let body = format!(r#"{{"name":"{PIPELINE}"}}"#);
    let (status, e) = conn.call_json("StartPipelineExecution", &body);
    assert_eq!(status, 200, "{e}");
    wait(conn, PIPELINE, e["pipelineExecutionId"].as_str().unwrap());
}

/// How many executions the fill has run, as recorded next to the data.
fn filled(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("bench-executions"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn fill(dir: &Path, executions: usize) {
    let done = filled(dir);
    if done >= executions {
        return;
    }
    let server = Proc::server(dir);
    let mut conn = Conn::open(&server.addr);
    if done == 0 {
        for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
            assert_eq!(conn.send("PUT", &format!("/{bucket}"), "", b"").0, 200);
        }
        let versioning =
            b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
        assert_eq!(
            conn.send("PUT", "/source-bucket?versioning", "", versioning)
                .0,
            200
        );
        assert_eq!(
            conn.send("PUT", "/source-bucket/file", "", b"Hello!\n").0,
            200
        );
        for i in 0..1000 {
            let path = format!("/target-bucket/objects/{i}");
            assert_eq!(conn.send("PUT", &path, "", b"an object").0, 200);
        }
        call(
            &server.addr,
            "CreatePipeline",
            &json!({"pipeline": declaration()}).to_string(),
        );
        let project = json!({
            "name": "build", "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo built"},
            "artifacts": {"type": "NO_ARTIFACTS"},
            "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"},
            "serviceRole": "arn:aws:iam::000000000000:role/role",
        });
        let (status, e) = conn.call_codebuild("CreateProject", &project.to_string());
        assert_eq!(status, 200, "{e}");
        for _ in 0..200 {
            let (status, e) = conn.call_codebuild("StartBuild", r#"{"projectName":"build"}"#);
            assert_eq!(status, 200, "{e}");
        }
    }
    let started = Instant::now();
    let next = AtomicUsize::new(done.max(1));
    std::thread::scope(|scope| {
        for _ in 0..32 {
            let (next, addr) = (&next, server.addr.clone());
            scope.spawn(move || {
                let mut conn = Conn::open(&addr);
                while next.fetch_add(1, Ordering::Relaxed) < executions {
                    run_once(&mut conn);
                }
            });
        }
    });
    std::fs::write(dir.join("bench-executions"), executions.to_string()).unwrap();
    println!(
        "filled: {} executions in {:.1} s; {} events",
        executions - done,
        started.elapsed().as_secs_f64(),
        health(&server.addr)["events"]
    );
    server.terminate();
}

/// Bytes under `path`.
fn disk_bytes(path: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-sb"])
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Spawn → listening, in milliseconds, and the server.
fn timed_start(dir: &Path) -> (f64, Proc) {
    let t = Instant::now();
    let server = Proc::server(dir);
    (t.elapsed().as_secs_f64() * 1000.0, server)
}

/// (p50, max) milliseconds of `runs` calls of `op` on one keep-alive connection.
fn timed_calls(addr: &str, op: &str, body: &str, runs: usize) -> (f64, f64) {
    let mut conn = Conn::open(addr);
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (status, _) = conn.call(op, body);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{op}");
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let executions: usize = env_or("BENCH_EXECUTIONS", 100_000);
    let runs: usize = env_or("BENCH_RUNS", 20);
    let dir = std::env::var("BENCH_DATA_DIR").unwrap_or_else(|_| {
        format!(
            "{}/target/longlived-{executions}",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    fill(dir, executions);

    // A graceful stop, then starts after it.
    let (_, server) = timed_start(dir);
    let events = health(&server.addr)["events"].as_u64().unwrap_or(0);
    let t = Instant::now();
    server.terminate();
    let stop = t.elapsed().as_secs_f64() * 1000.0;
    let log_bytes = disk_bytes(&dir.join("events"));
    println!(
        "data dir: {events} events, {executions} executions of {PIPELINE}; event log {:.1} MB on disk, {:.0} bytes per event; checkpoint {:.1} MB",
        log_bytes as f64 / 1e6,
        log_bytes as f64 / events.max(1) as f64,
        disk_bytes(&dir.join("checkpoint.json")) as f64 / 1e6
    );
    let mut starts = Vec::new();
    let mut stops = vec![stop];
    let mut rss = String::new();
    for _ in 0..3 {
        let (ms, server) = timed_start(dir);
        starts.push(ms);
        call(&server.addr, "ListPipelines", "{}");
        rss = server.rss();
        let t = Instant::now();
        server.terminate();
        stops.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "start-up after a graceful stop (spawn → listening), 3 runs: median {:.0} ms; RSS after it and a ListPipelines: {rss}",
        median(starts)
    );
    println!(
        "graceful stop (SIGTERM → exit), 4 runs: median {:.0} ms, max {:.0} ms",
        median(stops.clone()),
        stops.iter().cloned().fold(0.0, f64::max)
    );

    // Kill -9 with events after the checkpoint: 20 executions, then SIGKILL.
    let mut starts = Vec::new();
    for _ in 0..3 {
        let (_, server) = timed_start(dir);
        let mut conn = Conn::open(&server.addr);
        for _ in 0..20 {
            let body = format!(r#"{{"name":"{PIPELINE}"}}"#);
            let (status, e) = conn.call_json("StartPipelineExecution", &body);
            assert_eq!(status, 200, "{e}");
            wait(
                &mut conn,
                PIPELINE,
                e["pipelineExecutionId"].as_str().unwrap(),
            );
        }
        drop(server);
        let (ms, server) = timed_start(dir);
        starts.push(ms);
        server.terminate();
    }
    println!(
        "start-up after kill -9 with 20 executions since the checkpoint, 3 runs: median {:.0} ms",
        median(starts)
    );

    let (_, server) = timed_start(dir);
    let body = format!(r#"{{"pipelineName":"{PIPELINE}"}}"#);
    let (p50, max) = timed_calls(&server.addr, "ListPipelineExecutions", &body, runs);
    println!("ListPipelineExecutions, first page: p50 {p50:.2} ms, max {max:.2} ms");
    let (p50, max) = timed_calls(&server.addr, "ListActionExecutions", &body, runs);
    println!("ListActionExecutions, first page: p50 {p50:.2} ms, max {max:.2} ms");
    let endpoint = format!("http://{}", server.addr);
    let (p50, max, _) = time(
        &[
            "history",
            "actions",
            PIPELINE,
            "--endpoint",
            &endpoint,
            "--region",
            "eu-central-1",
        ],
        runs.min(10),
    );
    println!("history actions, first page, online: p50 {p50:.1} ms, max {max:.1} ms");
    server.terminate();
    let data = dir.to_string_lossy().to_string();
    let (p50, max, _) = time(
        &[
            "history",
            "actions",
            PIPELINE,
            "--data-dir",
            &data,
            "--region",
            "eu-central-1",
        ],
        runs.min(5),
    );
    println!("history actions, first page, offline: p50 {p50:.1} ms, max {max:.1} ms");
}
