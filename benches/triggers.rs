//! Trigger latency: the time from a source change to the `startTime` of the execution it
//! starts, for the three ways a change is noticed — a `git commit` in a repository under
//! `git_repos_dir` (a connection source, polled every `source_poll_interval_ms`, 500 by
//! default), a PutObject to the embedded S3 (an S3 source that polls: noticed at once) and a
//! `git push` to the embedded CodeCommit over HTTP (noticed at once). `startTime` is the
//! server's clock and the change's time this process's, on the same machine.
//!
//! Run: `cargo bench --bench triggers` (BENCH_RUNS, default 30). Results go in
//! docs/benchmarks.md.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{env_or, Conn, Proc};
use serde_json::json;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The newest execution's `startTime` once the pipeline has `n` executions (at most 30 s).
fn started(conn: &mut Conn, pipeline: &str, n: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, listed) = conn.call_json(
            "ListPipelineExecutions",
            &json!({ "pipelineName": pipeline }).to_string(),
        );
        let runs = listed["pipelineExecutionSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= n {
            return runs[0]["startTime"].as_f64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{pipeline}: no execution {n}: {listed}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, v: &mut [f64]) {
    println!(
        "{what} ({} runs): p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        v.len(),
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 1.0)
    );
}

fn pipeline(conn: &mut Conn, name: &str, source: serde_json::Value) {
    let body = json!({"pipeline": {"name": name, "pipelineType": "V2", "executionMode": "PARALLEL",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [source]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": name},
                "inputArtifacts": [{"name": "code"}]}]}]}});
    let (status, answer) = conn.call_json("CreatePipeline", &body.to_string());
    assert_eq!(status, 200, "{answer}");
    started(conn, name, 1);
    // Changes come once the first run has read its source.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, listed) = conn.call_json(
            "ListPipelineExecutions",
            &json!({ "pipelineName": name }).to_string(),
        );
        let status = listed["pipelineExecutionSummaries"][0]["status"].clone();
        if status == "Succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{name}: {listed}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 30);
    let data = tempfile::tempdir().unwrap();
    let repos = tempfile::tempdir().unwrap();
    let server = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data.path())
            .arg("--git-repos-dir")
            .arg(repos.path()),
        "codepipeline-local listening on ",
    );
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
    assert_eq!(conn.send("PUT", "/source-bucket/file", "", b"v0\n").0, 200);

    // A connection source on a local repository.
    let dir = repos.path().join("acme").join("web");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("f"), "0\n").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "0"]);
    let auth = common::AUTH.replace("/codepipeline/", "/codestar-connections/");
    let headers = format!(
        "Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: com.amazonaws.codestar.connections.CodeStar_connections_20191201.CreateConnection\r\nAuthorization: {auth}\r\n"
    );
    let (status, made) = conn.request(
        "POST",
        "/",
        &headers,
        br#"{"ProviderType": "GitHub", "ConnectionName": "bench"}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&made));
    let made: serde_json::Value = serde_json::from_slice(&made).unwrap();
    pipeline(
        &mut conn,
        "git",
        json!({"name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS",
            "provider": "CodeStarSourceConnection", "version": "1"},
            "configuration": {"ConnectionArn": made["ConnectionArn"], "FullRepositoryId": "acme/web",
                              "BranchName": "main"},
            "outputArtifacts": [{"name": "code"}]}),
    );
    let mut commits = Vec::new();
    // Commits come at any moment of the poll interval: a pseudo-random pause before each.
    let mut seed = (now() * 1e6) as u64;
    for i in 1..=runs {
        std::fs::write(dir.join("f"), format!("{i}\n")).unwrap();
        git(&dir, &["add", "."]);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 500));
        let t = now();
        git(&dir, &["commit", "-q", "-m", &i.to_string()]);
        commits.push((started(&mut conn, "git", i + 1) - t) * 1000.0);
    }
    report(
        "git commit to startTime, connection source (500 ms poll)",
        &mut commits,
    );

    // An S3 source that polls.
    pipeline(
        &mut conn,
        "s3",
        json!({"name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS",
            "provider": "S3", "version": "1"},
            "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "file"},
            "outputArtifacts": [{"name": "code"}]}),
    );
    let mut puts = Vec::new();
    for i in 1..=runs {
        let t = now();
        assert_eq!(
            conn.send(
                "PUT",
                "/source-bucket/file",
                "",
                format!("v{i}\n").as_bytes()
            )
            .0,
            200
        );
        puts.push((started(&mut conn, "s3", i + 1) - t) * 1000.0);
    }
    report("PutObject to startTime, S3 source", &mut puts);

    // A CodeCommit source, pushed to over HTTP.
    let auth = common::AUTH.replace("/codepipeline/", "/codecommit/");
    let headers = format!(
        "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: CodeCommit_20150413.CreateRepository\r\nAuthorization: {auth}\r\n"
    );
    let (status, made) = conn.request("POST", "/", &headers, br#"{"repositoryName": "app"}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&made));
    let url = format!("http://{}/v1/repos/eu-central-1/app", server.addr);
    let clone = repos.path().join("clone");
    let out = Command::new("git")
        .args(["clone", "-q", &url])
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(&clone, &["checkout", "-q", "-b", "main"]);
    std::fs::write(clone.join("f"), "0\n").unwrap();
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "0"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    pipeline(
        &mut conn,
        "codecommit",
        json!({"name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS",
            "provider": "CodeCommit", "version": "1"},
            "configuration": {"RepositoryName": "app", "BranchName": "main"},
            "outputArtifacts": [{"name": "code"}]}),
    );
    let (mut from_start, mut from_end) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        std::fs::write(clone.join("f"), format!("{i}\n")).unwrap();
        git(&clone, &["commit", "-q", "-am", &i.to_string()]);
        let t = now();
        git(&clone, &["push", "-q", "origin", "main"]);
        let pushed = now();
        let start = started(&mut conn, "codecommit", i + 1);
        from_start.push((start - t) * 1000.0);
        from_end.push((start - pushed) * 1000.0);
    }
    report(
        "git push (its start) to startTime, CodeCommit source",
        &mut from_start,
    );
    report(
        "git push (its return) to startTime, CodeCommit source",
        &mut from_end,
    );
}
