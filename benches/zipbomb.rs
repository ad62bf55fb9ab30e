//! Zip bomb benchmark: the server's peak RSS while an S3 deploy with `Extract` unpacks a deflate
//! bomb (a 2 GiB file of zeros, about 2 MB compressed) and fails. The archive is streamed to disk
//! within the zip limits, so memory stays flat whichever limit stops it.
//!
//! Two servers, each fresh: one with the default limits (the entry's inflation ratio stops it
//! early), one whose ratio limit is lifted (the 1 GiB `zip_max_bytes` stops it, after 1 GiB has
//! been written to disk).
//!
//! Run: `cargo bench --bench zipbomb` (BENCH_BOMB_MB, the bomb's uncompressed size, default
//! 2048). Results go in docs/benchmarks.md.

mod common;

use std::io::Write;
use std::process::Command;

use common::{call, env_or, Conn, Proc};

const DECLARATION: &str = include_str!("../tests/cli/declaration.json");

/// A zip of one deflated file of `mb` MiB of zeros.
fn bomb(mb: usize) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    writer.start_file("zeros.bin", options).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..mb {
        writer.write_all(&chunk).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn run(label: &str, env: &[(&str, &str)], zip: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"));
    cmd.args(["serve", "--port", "0", "--data-dir"])
        .arg(tmp.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Proc::spawn(&mut cmd, "codepipeline-local listening on ");
    let addr = server.addr.clone();
    for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
        assert_eq!(
            Conn::open(&addr)
                .send("PUT", &format!("/{bucket}"), "", b"")
                .0,
            200
        );
    }
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let put = |path: &str, body: &[u8]| Conn::open(&addr).send("PUT", path, "", body).0;
    assert_eq!(put("/source-bucket?versioning", versioning), 200);
    assert_eq!(put("/source-bucket/file", zip), 200);
    let before = server.rss();
    let declaration = DECLARATION.replace("\"Extract\": \"false\"", "\"Extract\": \"true\"");
    let started = std::time::Instant::now();
    call(
        &addr,
        "CreatePipeline",
        &format!("{{\"pipeline\":{declaration}}}"),
    );
    let deadline = started + std::time::Duration::from_secs(600);
    let summary = loop {
        let list = call(
            &addr,
            "ListPipelineExecutions",
            r#"{"pipelineName":"pipeline"}"#,
        );
        let e = &list["pipelineExecutionSummaries"][0];
        if e["status"] != "InProgress" {
            assert_eq!(e["status"], "Failed", "{e}");
            break e["statusSummary"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    println!(
        "{label}: failed after {:.1} s: {summary}",
        started.elapsed().as_secs_f64()
    );
    println!("  server before the deploy: {before}");
    println!("  server after it: {}", server.rss());
    server.terminate();
}

fn main() {
    let mb: usize = env_or("BENCH_BOMB_MB", 2048);
    let zip = bomb(mb);
    println!(
        "bomb: {mb} MiB of zeros in a {:.2} MB zip",
        zip.len() as f64 / 1e6
    );
    run("default limits", &[], &zip);
    run(
        "ratio limit lifted (zip_max_bytes stops it)",
        &[("CODEPIPELINE_LOCAL_ZIP_MAX_RATIO", "100000000")],
        &zip,
    );
}
