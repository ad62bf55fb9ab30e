//! CodeBuild benchmark: the overhead of a build, from StartBuild to `SUCCEEDED`, for a buildspec
//! whose build phase runs nothing, against the cost of the shell alone (`bash -c true`), which
//! each of the build's phases starts once.
//!
//! Run: `cargo bench --bench codebuild` (BENCH_RUNS, default 100). Results go in
//! docs/benchmarks.md.

mod common;

use std::time::{Duration, Instant};

use common::{env_or, Conn, Proc};

fn call(conn: &mut Conn, op: &str, body: &str) -> serde_json::Value {
    let (status, body) = conn.call_codebuild(op, body);
    assert_eq!(status, 200, "{op}: {body}");
    body
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 100);
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    let mut conn = Conn::open(&server.addr);
    call(
        &mut conn,
        "CreateProject",
        r#"{"name":"empty","source":{"type":"NO_SOURCE","buildspec":"version: 0.2\nphases:\n  build:\n    commands: []\n"},"artifacts":{"type":"NO_ARTIFACTS"},"environment":{"type":"LINUX_CONTAINER","image":"aws/codebuild/standard:7.0","computeType":"BUILD_GENERAL1_SMALL"},"serviceRole":"arn:aws:iam::000000000000:role/role"}"#,
    );
    let mut shell = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        assert!(std::process::Command::new("bash")
            .args(["-c", "true"])
            .status()
            .unwrap()
            .success());
        shell.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut builds = Vec::new();
    let mut recorded = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let started = call(&mut conn, "StartBuild", r#"{"projectName":"empty"}"#);
        let id = started["build"]["id"].as_str().unwrap().to_string();
        let body = format!(r#"{{"ids":["{id}"]}}"#);
        let deadline = Instant::now() + Duration::from_secs(30);
        let build = loop {
            let b = call(&mut conn, "BatchGetBuilds", &body)["builds"][0].clone();
            if b["buildComplete"] == true {
                break b;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} still running after 30 s"
            );
        };
        builds.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(build["buildStatus"], "SUCCEEDED");
        recorded.push(
            (build["endTime"].as_f64().unwrap() - build["startTime"].as_f64().unwrap()) * 1000.0,
        );
    }
    for v in [&mut shell, &mut builds, &mut recorded] {
        v.sort_by(f64::total_cmp);
    }
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "bash -c true: p50 {:.2} ms, p99 {:.2} ms",
        pct(&shell, 0.5),
        pct(&shell, 0.99)
    );
    println!(
        "empty build, StartBuild → SUCCEEDED seen by the client ({runs} runs): p50 {:.2} ms, p99 {:.2} ms",
        pct(&builds, 0.5),
        pct(&builds, 0.99)
    );
    println!(
        "  the build's own startTime → endTime: p50 {:.2} ms, p99 {:.2} ms",
        pct(&recorded, 0.5),
        pct(&recorded, 0.99)
    );
    println!(
        "  overhead beyond its one shell (p50 build − p50 bash): {:.2} ms",
        pct(&builds, 0.5) - pct(&shell, 0.5)
    );
}
