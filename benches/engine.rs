//! Execution engine benchmark: the tutorial pipeline from StartPipelineExecution to Succeeded,
//! measured by the execution's own startTime → lastUpdateTime, over many runs.
//!
//! Run: `cargo bench --bench engine` (BENCH_RUNS, default 200). Results go in docs/benchmarks.md.

mod common;

use common::{env_or, Conn, Proc};

const DECLARATION: &str = include_str!("../tests/cli/declaration.json");

fn call(addr: &str, op: &str, body: &str) -> serde_json::Value {
    let mut conn = Conn::open(addr);
    let (status, body) = conn.call_json(op, body);
    assert_eq!(status, 200, "{op}: {body}");
    body
}

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
}
