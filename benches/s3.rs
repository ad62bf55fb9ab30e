//! Embedded S3 benchmark: PutObject and GetObject of 4 KB and 10 MB objects at 16 concurrent
//! clients, and the server's peak RSS while a 1 GB object is uploaded.
//!
//! Run: `cargo bench --bench s3` (BENCH_SECONDS sets each phase, default 5; BENCH_BIG_MB the size
//! of the large upload, default 1024). Results go in docs/benchmarks.md.

mod common;

use std::time::Duration;

use common::{env_or, load_with, report, Conn, Proc};

const CLIENTS: usize = 16;

fn main() {
    let phase = Duration::from_secs(env_or("BENCH_SECONDS", 5));
    let big_mb: u64 = env_or("BENCH_BIG_MB", 1024);
    println!(
        "codepipeline-local S3 benchmark: {CLIENTS} clients, {} s a phase",
        phase.as_secs()
    );

    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    // Idle keep-alive connections are closed by the server, so each setup call has its own.
    let setup = |method: &str, path: &str, body: &[u8]| {
        Conn::open(&server.addr).send(method, path, "", body).0
    };
    assert_eq!(setup("PUT", "/bench", b""), 200);

    let small = vec![b's'; 4 * 1024];
    let put_small = load_with(&server.addr, phase, CLIENTS, |conn, c, n| {
        conn.send("PUT", &format!("/bench/small-{c}-{n}"), "", &small)
            .0
    });
    report("PutObject 4 KB", &put_small);
    assert_eq!(setup("PUT", "/bench/small", &small), 200);
    let get_small = load_with(&server.addr, phase, CLIENTS, |conn, _, _| {
        conn.send("GET", "/bench/small", "", b"").0
    });
    report("GetObject 4 KB", &get_small);

    // Each client overwrites its own few keys, so old bytes are freed and the disk use stays bounded.
    let big = vec![b'b'; 10 * 1024 * 1024];
    let put_big = load_with(&server.addr, phase, CLIENTS, |conn, c, n| {
        conn.send("PUT", &format!("/bench/big-{c}-{}", n % 2), "", &big)
            .0
    });
    report("PutObject 10 MB", &put_big);
    println!(
        "  PutObject 10 MB throughput: {:.0} MB/s",
        put_big.throughput() * 10.0
    );
    assert_eq!(setup("PUT", "/bench/big", &big), 200);
    let get_big = load_with(&server.addr, phase, CLIENTS, |conn, _, _| {
        conn.send("GET", "/bench/big", "", b"").0
    });
    report("GetObject 10 MB", &get_big);
    println!(
        "  GetObject 10 MB throughput: {:.0} MB/s",
        get_big.throughput() * 10.0
    );
    println!("  server RSS after the load phases: {}", server.rss());
    drop(server);

    // A large upload in a fresh server: the bytes stream to disk, so memory must stay flat.
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    let mut conn = Conn::open(&server.addr);
    assert_eq!(conn.send("PUT", "/large", "", b"").0, 200);
    println!("  server RSS before the large upload: {}", server.rss());
    let chunk = vec![b'x'; 1024 * 1024];
    let started = std::time::Instant::now();
    let (status, _) = conn.send_streaming("PUT", "/large/object", big_mb * 1024 * 1024, &chunk);
    assert_eq!(status, 200);
    println!(
        "{big_mb} MB upload in {:.1} s; server {}",
        started.elapsed().as_secs_f64(),
        server.rss()
    );
}
