//! API benchmark: throughput and latency of the CodePipeline endpoint against a bare actix-web
//! JSON echo server measured in the same run, durable CreatePipeline, and startup time and memory
//! with 10,000 pipelines in the data dir.
//!
//! Run: `cargo bench --bench api` (BENCH_SECONDS sets the length of each load phase, default 5;
//! BENCH_PIPELINES the size of the startup data set, default 10000). Results go in docs/benchmarks.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/codepipeline/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";

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
    let sequential = load_with(&server.addr, phase, 1, |_, n| {
        (
            "CreatePipeline",
            format!("{{\"pipeline\":{}}}", decl(&format!("seq-{n}"))),
        )
    });
    report("CreatePipeline, one client", &sequential);
    println!("  server RSS after the write phases: {}", server.rss());
}

/// Startup time and memory with a large data dir.
fn startup_phase(startup_pipelines: usize) {
    let big = tempfile::tempdir().unwrap();
    {
        let server = Proc::server(big.path());
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
        let server = Proc::server(big.path());
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn declaration(name: &str) -> String {
    format!(
        r#"{{"name":"{name}","roleArn":"arn:aws:iam::000000000000:role/role","artifactStore":{{"type":"S3","location":"artifact-store-bucket"}},"stages":[{{"name":"stage1","actions":[{{"name":"action1","actionTypeId":{{"category":"Source","owner":"AWS","provider":"S3","version":"1"}},"configuration":{{"S3Bucket":"source-bucket","S3ObjectKey":"file","PollForSourceChanges":"false"}},"outputArtifacts":[{{"name":"intermediate-file"}}]}}]}},{{"name":"stage2","actions":[{{"name":"action1","actionTypeId":{{"category":"Deploy","owner":"AWS","provider":"S3","version":"1"}},"configuration":{{"BucketName":"target-bucket","Extract":"false","ObjectKey":"output-file"}},"inputArtifacts":[{{"name":"intermediate-file"}}]}}]}}]}}"#
    )
}

/// A server process, killed on drop.
struct Proc {
    child: Child,
    addr: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, marker: &str) -> Proc {
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix(marker) {
                break rest.trim_start_matches("http://").to_string();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Proc { child, addr }
    }

    fn server(dir: &std::path::Path) -> Proc {
        Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
                .args(["serve", "--port", "0", "--data-dir"])
                .arg(dir),
            "codepipeline-local listening on ",
        )
    }

    fn rss(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        format!("VmRSS {}, peak VmHWM {}", field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, then wait: a graceful stop.
    fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn call(&mut self, op: &str, body: &str) -> (u16, usize) {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: CodePipeline_20150709.{op}\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, length)
    }
}

fn request(addr: &str, op: &str, body: &str) -> u16 {
    Conn::open(addr).call(op, body).0
}

struct LoadResult {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl LoadResult {
    fn merge(parts: Vec<LoadResult>) -> LoadResult {
        let mut latencies_us: Vec<u32> = parts
            .iter()
            .flat_map(|p| p.latencies_us.iter().copied())
            .collect();
        latencies_us.sort_unstable();
        LoadResult {
            requests: parts.iter().map(|p| p.requests).sum(),
            errors: parts.iter().map(|p| p.errors).sum(),
            elapsed: parts.iter().map(|p| p.elapsed).sum(),
            latencies_us,
        }
    }

    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

fn report(name: &str, r: &LoadResult) {
    println!(
        "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests, {} errors)",
        r.throughput(),
        r.percentile(0.50),
        r.percentile(0.99),
        r.requests,
        r.errors
    );
}

fn load(
    addr: &str,
    phase: Duration,
    make: impl Fn(usize, usize) -> (&'static str, String) + Sync,
) -> LoadResult {
    load_with(addr, phase, CLIENTS, make)
}

fn load_with(
    addr: &str,
    phase: Duration,
    clients: usize,
    make: impl Fn(usize, usize) -> (&'static str, String) + Sync,
) -> LoadResult {
    let start = Instant::now();
    let results: Vec<(Vec<u32>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let make = &make;
                scope.spawn(move || {
                    let mut conn = Conn::open(addr);
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut n = 0;
                    while start.elapsed() < phase {
                        let (op, body) = make(client, n);
                        let t = Instant::now();
                        let (status, _) = conn.call(op, &body);
                        latencies.push(t.elapsed().as_micros() as u32);
                        if status != 200 {
                            errors += 1;
                        }
                        n += 1;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    let mut latencies_us: Vec<u32> = results
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    latencies_us.sort_unstable();
    LoadResult {
        requests: latencies_us.len(),
        errors: results.iter().map(|(_, e)| e).sum(),
        elapsed,
        latencies_us,
    }
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
