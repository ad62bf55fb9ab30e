//! Execution engine benchmark: the tutorial pipeline from StartPipelineExecution to Succeeded,
//! measured by the execution's own startTime → lastUpdateTime, over many runs.
//!
//! Also: 1,000 executions over 100 pipelines started at once (all must succeed, none lost), and
//! the server's RSS after 10,000 finished executions (run 32 at a time).
//!
//! Run: `cargo bench --bench engine` (BENCH_RUNS, default 200; BENCH_BURST_PIPELINES, default 100;
//! BENCH_BURST_EXECUTIONS, default 1000; BENCH_FINISHED, default 10000). Results go in
//! docs/benchmarks.md.

mod common;

use common::{call, env_or, Conn, Proc};

const DECLARATION: &str = include_str!("../tests/cli/declaration.json");

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
        assert_eq!(
            Conn::open(&server.addr)
                .send("PUT", &format!("/{bucket}"), "", b"")
                .0,
            200
        );
    }
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(
        Conn::open(&server.addr)
            .send("PUT", "/source-bucket?versioning", "", versioning)
            .0,
        200
    );
    assert_eq!(
        Conn::open(&server.addr)
            .send("PUT", "/source-bucket/file", "", b"Hello LocalStack!\n")
            .0,
        200
    );
    call(
        &server.addr,
        "CreatePipeline",
        &format!("{{\"pipeline\":{DECLARATION}}}"),
    );

    let mut durations = Vec::with_capacity(runs);
    let started = std::time::Instant::now();
    for _ in 0..runs {
        let id = call(
            &server.addr,
            "StartPipelineExecution",
            r#"{"name":"pipeline"}"#,
        )["pipelineExecutionId"]
            .as_str()
            .unwrap()
            .to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let body = format!(r#"{{"pipelineName":"pipeline","pipelineExecutionId":"{id}"}}"#);
        loop {
            let e = call(&server.addr, "GetPipelineExecution", &body);
            let status = e["pipelineExecution"]["status"]
                .as_str()
                .unwrap()
                .to_string();
            if status != "InProgress" {
                assert_eq!(status, "Succeeded");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "execution {id} did not finish"
            );
        }
        let list = call(
            &server.addr,
            "ListPipelineExecutions",
            r#"{"pipelineName":"pipeline","maxResults":1}"#,
        );
        let summary = &list["pipelineExecutionSummaries"][0];
        assert_eq!(summary["pipelineExecutionId"], id.as_str());
        let ms = (summary["lastUpdateTime"].as_f64().unwrap()
            - summary["startTime"].as_f64().unwrap())
            * 1000.0;
        durations.push(ms);
    }
    durations.sort_by(f64::total_cmp);
    let pct = |p: f64| durations[((durations.len() - 1) as f64 * p).round() as usize];
    println!(
        "tutorial pipeline, StartPipelineExecution → Succeeded (startTime → lastUpdateTime), {runs} runs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; wall {:.1} s",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        started.elapsed().as_secs_f64()
    );
    println!("  server {}", server.rss());

    // A burst: executions of many pipelines started at once, from 32 clients.
    let pipelines: usize = env_or("BENCH_BURST_PIPELINES", 100);
    let executions: usize = env_or("BENCH_BURST_EXECUTIONS", 1000);
    for p in 0..pipelines {
        // PARALLEL (V2): every execution of the burst runs; in SUPERSEDED mode most would be
        // superseded, as on AWS.
        let decl = DECLARATION
            .replacen(
                "\"name\": \"pipeline\"",
                &format!("\"name\": \"burst-{p}\""),
                1,
            )
            .replacen(
                "\"executionMode\": \"SUPERSEDED\"",
                "\"executionMode\": \"PARALLEL\"",
                1,
            )
            .replacen("\"pipelineType\": \"V1\"", "\"pipelineType\": \"V2\"", 1);
        call(
            &server.addr,
            "CreatePipeline",
            &format!("{{\"pipeline\":{decl}}}"),
        );
    }
    let burst = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ids: Vec<(usize, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let next = &next;
                let addr = server.addr.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= executions {
                            return mine;
                        }
                        let p = n % pipelines;
                        let id = call(
                            &addr,
                            "StartPipelineExecution",
                            &format!(r#"{{"name":"burst-{p}"}}"#),
                        )["pipelineExecutionId"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        mine.push((p, id));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut succeeded = 0;
    for (p, id) in &ids {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let body = format!(r#"{{"pipelineName":"burst-{p}","pipelineExecutionId":"{id}"}}"#);
        loop {
            let status = call(&server.addr, "GetPipelineExecution", &body)["pipelineExecution"]
                ["status"]
                .as_str()
                .unwrap()
                .to_string();
            if status == "Succeeded" {
                succeeded += 1;
                break;
            }
            assert_eq!(status, "InProgress", "execution {id} of burst-{p}");
            assert!(
                std::time::Instant::now() < deadline,
                "execution {id} did not finish"
            );
        }
    }
    println!(
        "{executions} executions over {pipelines} pipelines started at once: {succeeded} succeeded, {} lost; all done in {:.2} s",
        executions - succeeded,
        burst.elapsed().as_secs_f64()
    );

    println!("  server after the burst: {}", server.rss());

    // Many finished executions: what they cost the server in memory. 32 clients each start an
    // execution and wait for its end before starting the next, so that what is measured is the
    // cost of the history rather than of thousands of executions running at once (the burst
    // above measures that).
    let finished: usize = env_or("BENCH_FINISHED", 10_000);
    let already = runs + executions;
    let more = finished.saturating_sub(already);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let phase = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..32 {
            let next = &next;
            let addr = server.addr.clone();
            scope.spawn(move || {
                let mut conn = Conn::open(&addr);
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= more {
                        return;
                    }
                    let pipeline = format!("burst-{}", n % pipelines);
                    let (status, started) = conn.call_json(
                        "StartPipelineExecution",
                        &format!(r#"{{"name":"{pipeline}"}}"#),
                    );
                    assert_eq!(status, 200, "{started}");
                    let id = started["pipelineExecutionId"].as_str().unwrap().to_string();
                    // Wait (at most 60 s) for its end.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    loop {
                        let (status, e) = conn.call_json(
                            "GetPipelineExecution",
                            &format!(
                                r#"{{"pipelineName":"{pipeline}","pipelineExecutionId":"{id}"}}"#
                            ),
                        );
                        assert_eq!(status, 200, "{e}");
                        match e["pipelineExecution"]["status"].as_str() {
                            Some("InProgress") => {
                                assert!(
                                    std::time::Instant::now() < deadline,
                                    "execution {id} still running after 60 s"
                                );
                                std::thread::sleep(std::time::Duration::from_millis(2));
                            }
                            Some("Succeeded") => break,
                            other => panic!("execution {id} ended {other:?}"),
                        }
                    }
                }
            });
        }
    });
    println!(
        "{more} more executions, 32 at a time, all Succeeded in {:.1} s; after {} finished executions: server {}",
        phase.elapsed().as_secs_f64(),
        already + more + pipelines,
        server.rss()
    );
}
