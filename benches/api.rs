//! API benchmark: throughput and latency of the CodePipeline endpoint against a bare actix-web
//! JSON echo server measured in the same run, durable CreatePipeline, and startup time and memory
//! with 10,000 pipelines in the data dir.
//!
//! Run: `cargo bench --bench api` (BENCH_SECONDS sets the length of each load phase, default 5;
//! BENCH_PIPELINES the size of the startup data set, default 10000; BENCH_DATA_DIR keeps that data
//! set in a directory between runs). Results go in docs/benchmarks.md.

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cores, env_or, load_with, report, Conn, LoadResult, Proc};

const CLIENTS: usize = 32;

/// A closed-loop load of CodePipeline calls made by `make(client, n)`.
fn load(
    addr: &str,
    phase: Duration,
    make: impl Fn(usize, usize) -> (&'static str, String) + Sync,
) -> LoadResult {
    load_with(addr, phase, CLIENTS, |conn, client, n| {
        let (op, body) = make(client, n);
        conn.call(op, &body).0
    })
}

fn request(addr: &str, op: &str, body: &str) -> u16 {
    Conn::open(addr).call(op, body).0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--echo-server") {
        echo_server();
        return;
    }
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let startup_pipelines: usize = env_or("BENCH_PIPELINES", 10_000);
    let phase = Duration::from_secs(seconds);
    println!(
        "codepipeline-local API benchmark: {CLIENTS} clients, {seconds} s a phase, {} cores",
        cores()
    );
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "reads,writes,startup".into());
    if phases.split(',').any(|p| p == "reads") {
        read_phases(phase);
    }
    if phases.split(',').any(|p| p == "writes") {
        write_phases(phase);
    }
    if phases.split(',').any(|p| p == "startup") {
        startup_phase(startup_pipelines);
    }
}

/// Throughput and latency of reads, against the bare echo.
fn read_phases(phase: Duration) {
    let echo = Proc::spawn(
        Command::new(std::env::current_exe().unwrap()).arg("--echo-server"),
        "echo listening on ",
    );
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());

    // Reads: one pipeline to get, 50 to list.
    let decl = |name: &str| declaration(name);
    for i in 0..50 {
        let r = request(
            &server.addr,
            "CreatePipeline",
            &format!("{{\"pipeline\":{}}}", decl(&format!("list-{i:02}"))),
        );
        assert_eq!(r, 200);
    }
    let get_body = r#"{"name":"list-07"}"#.to_string();
    // Echo and GetPipeline alternate in short rounds, so that both see the same machine even
    // when its speed drifts; the ratio of the totals counts.
    let rounds = 10;
    let round = Duration::from_millis(1000);
    let (mut echo_all, mut get_all) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        echo_all.push(load(&echo.addr, round, |_, _| {
            ("GetPipeline", get_body.clone())
        }));
        get_all.push(load(&server.addr, round, |_, _| {
            ("GetPipeline", get_body.clone())
        }));
    }
    let echo_result = LoadResult::merge(echo_all);
    let get_result = LoadResult::merge(get_all);
    report("bare actix-web JSON echo", &echo_result);
    report("GetPipeline", &get_result);
    println!(
        "  GetPipeline throughput / echo throughput: {:.1}% ({rounds} alternating rounds of {} ms)",
        100.0 * get_result.throughput() / echo_result.throughput(),
        round.as_millis()
    );
    let list_result = load(&server.addr, phase, |_, _| {
        ("ListPipelines", "{}".to_string())
    });
    report("ListPipelines (50 pipelines, one page)", &list_result);

    println!("  server RSS after the read phases: {}", server.rss());
    drop(server);
    drop(echo);
}

/// Durable writes: every CreatePipeline is acknowledged after its flush.
fn write_phases(phase: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    let decl = |name: &str| declaration(name);
    let create_result = load(&server.addr, phase, |client, n| {
        (
            "CreatePipeline",
            format!("{{\"pipeline\":{}}}", decl(&format!("c{client}-{n}"))),
        )
    });
    report("CreatePipeline (durable, group commit)", &create_result);
    let sequential = load_with(&server.addr, phase, 1, |conn, _, n| {
        let body = format!("{{\"pipeline\":{}}}", decl(&format!("seq-{n}")));
        conn.call("CreatePipeline", &body).0
    });
    report("CreatePipeline, one client", &sequential);
    println!("  server RSS after the write phases: {}", server.rss());
}

/// Startup time and memory with a large data dir.
fn startup_phase(startup_pipelines: usize) {
    // BENCH_DATA_DIR keeps the data set between runs: it is filled only when it does not exist.
    let kept = std::env::var_os("BENCH_DATA_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let big = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    if kept.as_ref().is_none_or(|d| !d.exists()) {
        let server = Proc::server(&big);
        let made = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addr = server.addr.clone();
                let made = made.clone();
                std::thread::spawn(move || {
                    let mut conn = Conn::open(&addr);
                    loop {
                        let i = made.fetch_add(1, Ordering::Relaxed);
                        if i >= startup_pipelines {
                            break;
                        }
                        let body =
                            format!("{{\"pipeline\":{}}}", declaration(&format!("p{i:05}-{c}")));
                        assert_eq!(conn.call("CreatePipeline", &body).0, 200);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        println!(
            "created {startup_pipelines} pipelines in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        server.terminate();
    }
    let mut startups = Vec::new();
    let mut rss = String::new();
    for _ in 0..3 {
        let t = Instant::now();
        let server = Proc::server(&big);
        startups.push(t.elapsed().as_secs_f64() * 1000.0);
        let (status, _) = Conn::open(&server.addr).call("ListPipelines", r#"{"maxResults":1000}"#);
        assert_eq!(status, 200);
        rss = server.rss();
        server.terminate();
    }
    startups.sort_by(f64::total_cmp);
    println!(
        "startup with {startup_pipelines} pipelines (spawn → listening), 3 runs: median {:.0} ms, max {:.0} ms",
        startups[1], startups[2]
    );
    println!("  RSS after startup and a ListPipelines: {rss}");
}

fn declaration(name: &str) -> String {
    format!(
        r#"{{"name":"{name}","roleArn":"arn:aws:iam::000000000000:role/role","artifactStore":{{"type":"S3","location":"artifact-store-bucket"}},"stages":[{{"name":"stage1","actions":[{{"name":"action1","actionTypeId":{{"category":"Source","owner":"AWS","provider":"S3","version":"1"}},"configuration":{{"S3Bucket":"source-bucket","S3ObjectKey":"file","PollForSourceChanges":"false"}},"outputArtifacts":[{{"name":"intermediate-file"}}]}}]}},{{"name":"stage2","actions":[{{"name":"action1","actionTypeId":{{"category":"Deploy","owner":"AWS","provider":"S3","version":"1"}},"configuration":{{"BucketName":"target-bucket","Extract":"false","ObjectKey":"output-file"}},"inputArtifacts":[{{"name":"intermediate-file"}}]}}]}}]}}"#
    )
}

fn echo_server() {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("echo listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new().default_service(web::to(|body: web::Bytes| async move {
                HttpResponse::Ok()
                    .content_type("application/x-amz-json-1.1")
                    .body(body)
            }))
        })
        .workers(cores())
        .listen(listener)
        .unwrap()
        .run()
        .await
        .unwrap()
    });
}
