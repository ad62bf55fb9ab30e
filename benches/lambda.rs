//! Lambda benchmark: the overhead of invoking an empty python function, warm (a process that
//! served the previous invocation) and cold (a new process: the function's configuration changed
//! just before), against the interpreter's own start (`python3` importing what our bootstrap
//! imports); and a pipeline whose Lambda invoke action succeeds at once, from
//! StartPipelineExecution to `Succeeded`, against the tutorial pipeline (S3 source, S3 deploy) in
//! the same server.
//!
//! Run: `cargo bench --bench lambda` (BENCH_RUNS, default 200; BENCH_COLD_RUNS, default 30).
//! Results go in docs/benchmarks.md.

mod common;

use std::time::Instant;

use common::{env_or, wait, Conn, Proc};
use serde_json::json;

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The Authorization header of a Lambda request in the region of the pipelines.
fn lambda_auth() -> String {
    format!(
        "Authorization: {}\r\n",
        common::AUTH.replace("/codepipeline/", "/lambda/")
    )
}

fn lambda(conn: &mut Conn, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let headers = format!("Content-Type: application/json\r\n{}", lambda_auth());
    let (status, bytes) = conn.request(method, path, &headers, body.as_bytes());
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn create_function(conn: &mut Conn, name: &str, code: &str) {
    use base64::Engine;
    let zip = base64::engine::general_purpose::STANDARD.encode(zip_of(&[("app.py", code)]));
    let body = json!({"FunctionName": name, "Runtime": "python3.12", "Handler": "app.handler",
        "Role": "arn:aws:iam::000000000000:role/role", "Timeout": 30, "Code": {"ZipFile": zip}});
    let (status, answer) = lambda(conn, "POST", "/2015-03-31/functions", &body.to_string());
    assert_eq!(status, 201, "{answer}");
}

fn invoke(conn: &mut Conn, name: &str) -> f64 {
    let t = Instant::now();
    let (status, body) = conn.request(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &lambda_auth(),
        b"{}",
    );
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        body,
        b"null",
        "the function failed: {}",
        String::from_utf8_lossy(&body)
    );
    ms
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A function that completes its job with a PutJobSuccessResult sent straight to the endpoint.
const JOB_FUNCTION: &str = r#"
import json, os, urllib.request
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def handler(event, context):
    job = event["CodePipeline.job"]["id"]
    request = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"], method="POST",
        data=json.dumps({"jobId": job}).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": "CodePipeline_20150709.PutJobSuccessResult"})
    OPENER.open(request).read()
"#;

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let cold_runs: usize = env_or("BENCH_COLD_RUNS", 30);
    let tmp = tempfile::tempdir().unwrap();
    let server = Proc::server(tmp.path());
    let mut conn = Conn::open(&server.addr);
    create_function(
        &mut conn,
        "empty",
        "def handler(event, context):\n    return None\n",
    );

    // The interpreter's own start, importing what the bootstrap imports.
    let mut interpreter = Vec::new();
    for _ in 0..cold_runs {
        let t = Instant::now();
        let ok = std::process::Command::new("python3")
            .args([
                "-u",
                "-c",
                "import importlib, json, os, sys, time, traceback, urllib.request",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        interpreter.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    invoke(&mut conn, "empty");
    let mut warm: Vec<f64> = (0..runs).map(|_| invoke(&mut conn, "empty")).collect();
    let mut cold = Vec::new();
    for i in 0..cold_runs {
        let body = json!({"Description": format!("revision {i}")}).to_string();
        let (status, answer) = lambda(
            &mut conn,
            "PUT",
            "/2015-03-31/functions/empty/configuration",
            &body,
        );
        assert_eq!(status, 200, "{answer}");
        cold.push(invoke(&mut conn, "empty"));
    }
    println!(
        "python3 start with the bootstrap's imports: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut interpreter, 0.5),
        pct(&mut interpreter, 0.99)
    );
    println!(
        "warm Invoke of an empty python function ({runs} runs): p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut warm, 0.5),
        pct(&mut warm, 0.99)
    );
    println!(
        "cold Invoke ({cold_runs} runs): p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut cold, 0.5),
        pct(&mut cold, 0.99)
    );

    // Pipelines: the tutorial, and a source followed by the Lambda invoke action.
    for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
        assert_eq!(conn.send("PUT", &format!("/{bucket}"), "", b"").0, 200);
    }
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(
        conn.send("PUT", "/source-bucket?versioning", "", versioning)
            .0,
        200
    );
    assert_eq!(
        conn.send("PUT", "/source-bucket/file", "", b"Hello!\n").0,
        200
    );
    create_function(&mut conn, "job", JOB_FUNCTION);
    let source = json!({"name": "source", "actions": [{"name": "source",
        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
        "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "file", "PollForSourceChanges": "false"},
        "outputArtifacts": [{"name": "src"}]}]});
    let deploy = json!({"name": "deploy", "actions": [{"name": "deploy",
        "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
        "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": "out"},
        "inputArtifacts": [{"name": "src"}]}]});
    let invoke_stage = json!({"name": "invoke", "actions": [{"name": "invoke",
        "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
        "configuration": {"FunctionName": "job"}}]});
    let mut results = Vec::new();
    for (name, second) in [("tutorial", deploy), ("lambda", invoke_stage)] {
        let pipeline = json!({"pipeline": {"name": name, "roleArn": "arn:aws:iam::000000000000:role/role",
            "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
            "stages": [source.clone(), second]}});
        let (status, answer) = conn.call_json("CreatePipeline", &pipeline.to_string());
        assert_eq!(status, 200, "{answer}");
        let mut times = Vec::new();
        for i in 0..runs.min(100) + 1 {
            let t = Instant::now();
            let (status, e) =
                conn.call_json("StartPipelineExecution", &json!({"name": name}).to_string());
            assert_eq!(status, 200, "{e}");
            let id = e["pipelineExecutionId"].as_str().unwrap();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait(&mut conn, name, id)))
                .is_err()
            {
                let body = json!({"pipelineName": name, "pipelineExecutionId": id}).to_string();
                let (_, e) = conn.call_json("GetPipelineExecution", &body);
                panic!("{name}: {e}");
            }
            // The first run warms the function.
            if i > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        results.push((
            name,
            pct(&mut times, 0.5),
            pct(&mut times, 0.99),
            times.len(),
        ));
    }
    for (name, p50, p99, n) in results {
        println!(
            "{name} pipeline, StartPipelineExecution → Succeeded ({n} runs): p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
    }
    server.terminate();
}
