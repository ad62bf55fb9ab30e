//! What the benchmarks share: server processes, a keep-alive HTTP/1.1 client, closed-loop load.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A SigV4 header as the SDKs send it (signatures are not checked).
pub const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/codepipeline/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A server process, killed on drop.
pub struct Proc {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, marker: &str) -> Proc {
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

    pub fn server(dir: &std::path::Path) -> Proc {
        Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
                .args(["serve", "--port", "0", "--data-dir"])
                .arg(dir),
            "codepipeline-local listening on ",
        )
    }

    pub fn rss(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        format!(
            "VmRSS {}, peak VmHWM {}, threads {}",
            field("VmRSS:"),
            field("VmHWM:"),
            field("Threads:")
        )
    }

    /// SIGTERM, then wait: a graceful stop.
    pub fn terminate(mut self) {
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

/// Calls a CodePipeline operation on a fresh connection; its JSON answer, which must be a 200.
pub fn call(addr: &str, op: &str, body: &str) -> serde_json::Value {
    let (status, body) = Conn::open(addr).call_json(op, body);
    assert_eq!(status, 200, "{op}: {body}");
    body
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Calls a CodePipeline operation; returns the status and the body's length.
    pub fn call(&mut self, op: &str, body: &str) -> (u16, usize) {
        let head = format!(
            "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: CodePipeline_20150709.{op}\r\nAuthorization: {AUTH}\r\n"
        );
        self.send("POST", "/", &head, body.as_bytes())
    }

    /// Calls a CodePipeline operation and returns the status and the JSON answer.
    pub fn call_json(&mut self, op: &str, body: &str) -> (u16, serde_json::Value) {
        self.call_service("CodePipeline_20150709", AUTH, op, body)
    }

    /// Calls a CodeBuild operation and returns the status and the JSON answer.
    pub fn call_codebuild(&mut self, op: &str, body: &str) -> (u16, serde_json::Value) {
        let auth = AUTH.replace("/codepipeline/", "/codebuild/");
        self.call_service("CodeBuild_20161006", &auth, op, body)
    }

    fn call_service(
        &mut self,
        prefix: &str,
        auth: &str,
        op: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {prefix}.{op}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        let (status, length) = self.head();
        let mut bytes = vec![0; length];
        self.reader.read_exact(&mut bytes).unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sends one request (`headers` are whole lines) and reads the whole answer.
    pub fn send(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, usize) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        self.answer()
    }

    /// Sends one request (`headers` are whole lines); the status and the whole body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let (status, length) = self.head();
        let mut bytes = vec![0; length];
        self.reader.read_exact(&mut bytes).unwrap();
        (status, bytes)
    }

    /// Sends `total` bytes of body in `chunk`-sized writes, never holding more than one chunk.
    pub fn send_streaming(
        &mut self,
        method: &str,
        path: &str,
        total: u64,
        chunk: &[u8],
    ) -> (u16, usize) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n\r\n"
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.writer.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        self.answer()
    }

    fn answer(&mut self) -> (u16, usize) {
        let (status, length) = self.head();
        std::io::copy(
            &mut (&mut self.reader).take(length as u64),
            &mut std::io::sink(),
        )
        .unwrap();
        (status, length)
    }

    /// Reads a status line and headers; returns the status and the body's length.
    fn head(&mut self) -> (u16, usize) {
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
        (status, length)
    }
}

pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    pub fn merge(parts: Vec<LoadResult>) -> LoadResult {
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

    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

pub fn report(name: &str, r: &LoadResult) {
    println!(
        "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests, {} errors)",
        r.throughput(),
        r.percentile(0.50),
        r.percentile(0.99),
        r.requests,
        r.errors
    );
}

/// Runs `clients` connections in a closed loop for `phase`; `request(conn, client, n)` sends the
/// n-th request of a client and returns its status.
pub fn load_with(
    addr: &str,
    phase: Duration,
    clients: usize,
    request: impl Fn(&mut Conn, usize, usize) -> u16 + Sync,
) -> LoadResult {
    let start = Instant::now();
    let results: Vec<(Vec<u32>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let request = &request;
                scope.spawn(move || {
                    let mut conn = Conn::open(addr);
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut n = 0;
                    while start.elapsed() < phase {
                        let t = Instant::now();
                        let status = request(&mut conn, client, n);
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

/// Waits (at most 120 s) for an execution's end; panics unless it succeeded.
pub fn wait(conn: &mut Conn, pipeline: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let body = format!(r#"{{"pipelineName":"{pipeline}","pipelineExecutionId":"{id}"}}"#);
    loop {
        let (status, e) = conn.call_json("GetPipelineExecution", &body);
        assert_eq!(status, 200, "{e}");
        match e["pipelineExecution"]["status"].as_str() {
            Some("InProgress") => {
                assert!(Instant::now() < deadline, "{id} still running after 120 s");
                std::thread::sleep(Duration::from_millis(2));
            }
            Some("Succeeded") => return,
            other => panic!("execution {id} ended {other:?}"),
        }
    }
}

/// Runs the command `runs` times: (p50, max) wall milliseconds, and the last output.
pub fn time(args: &[&str], runs: usize) -> (f64, f64, String) {
    let mut times = Vec::new();
    let mut out = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out = String::from_utf8_lossy(&o.stdout).to_string();
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1], out)
}
