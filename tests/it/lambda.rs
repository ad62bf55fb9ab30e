//! The embedded Lambda: functions created and managed with aws-sdk-lambda, run here as local
//! processes (python and node), and the Lambda invoke action of pipelines.

use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, InvocationType, LogType, Runtime};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::declarations::failure;
use crate::engine::{body, finished, latest_execution, tutorial_buckets, zip_of};

const ROLE: &str = "arn:aws:iam::000000000000:role/role";

/// CreateFunction from a zip's bytes.
async fn try_create(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    zip: Vec<u8>,
) -> Result<
    aws_sdk_lambda::operation::create_function::CreateFunctionOutput,
    aws_sdk_lambda::error::SdkError<
        aws_sdk_lambda::operation::create_function::CreateFunctionError,
    >,
> {
    lambda
        .create_function()
        .function_name(name)
        .runtime(runtime)
        .handler(handler)
        .role(ROLE)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
}

pub(crate) async fn create(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    files: &[(&str, &str)],
) {
    try_create(lambda, name, runtime, handler, zip_of(files))
        .await
        .unwrap();
}

/// Invokes synchronously; returns (function error, payload as JSON, log).
pub(crate) async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    payload: Value,
) -> (Option<String>, Value, String) {
    let out = lambda
        .invoke()
        .function_name(name)
        .payload(Blob::new(payload.to_string()))
        .log_type(LogType::Tail)
        .send()
        .await
        .unwrap();
    use base64::Engine;
    let log = out
        .log_result()
        .map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap())
        .unwrap_or_default();
    let payload = out
        .payload()
        .map(|p| p.as_ref().to_vec())
        .unwrap_or_default();
    (
        out.function_error().map(str::to_string),
        serde_json::from_slice(&payload).unwrap_or(Value::Null),
        String::from_utf8_lossy(&log).into_owned(),
    )
}

const PYTHON_APP: &str = r#"
import json, os, time
def handler(event, context):
    print("event", json.dumps(event))
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"pid": os.getpid(), "name": context.function_name, "greeting": os.environ.get("GREETING"),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"), "region": os.environ.get("AWS_REGION"),
            "request": context.aws_request_id}
"#;

#[tokio::test]
async fn functions_are_created_read_updated_listed_and_deleted() {
    let server = Server::start();
    let lambda = server.lambda();
    create(
        &lambda,
        "notify",
        Runtime::Python312,
        "app.handler",
        &[("app.py", PYTHON_APP)],
    )
    .await;
    let got = lambda
        .get_function()
        .function_name("notify")
        .send()
        .await
        .unwrap();
    let config = got.configuration().unwrap();
    assert_eq!(
        config.function_arn(),
        Some("arn:aws:lambda:eu-central-1:000000000000:function:notify")
    );
    assert_eq!(config.timeout(), Some(3));
    assert_eq!(config.runtime(), Some(&Runtime::Python312));
    assert!(config.code_sha256().is_some_and(|s| s.len() == 44));
    // The code can be downloaded where GetFunction says.
    let location = got.code().unwrap().location().unwrap().to_string();
    let path = location
        .split_once("//")
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .1;
    let zip = server
        .client()
        .http("GET", &format!("/{path}"), "localhost", b"");
    assert_eq!(zip.status, 200);
    assert_eq!(&zip.body[..2], b"PK");

    let (code, _, status) = failure(
        try_create(
            &lambda,
            "notify",
            Runtime::Python312,
            "app.handler",
            zip_of(&[("a.py", "")]),
        )
        .await,
    );
    assert_eq!((code.as_str(), status), ("ResourceConflictException", 409));
    let (code, _, _) = failure(
        try_create(
            &lambda,
            "bad",
            Runtime::Python312,
            "app.handler",
            b"not a zip".to_vec(),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValueException");
    let (code, _, _) = failure(
        try_create(
            &lambda,
            "java",
            Runtime::Java21,
            "a::b",
            zip_of(&[("a", "")]),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValueException");

    let updated = lambda
        .update_function_configuration()
        .function_name("notify")
        .timeout(10)
        .environment(Environment::builder().variables("GREETING", "hi").build())
        .send()
        .await
        .unwrap();
    assert_eq!(updated.timeout(), Some(10));
    assert_ne!(updated.revision_id(), config.revision_id());
    let (code, _, status) = failure(
        lambda
            .update_function_configuration()
            .function_name("notify")
            .revision_id(config.revision_id().unwrap())
            .timeout(5)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), status),
        ("PreconditionFailedException", 412)
    );
    let (_, answer, _) = invoke(&lambda, "notify", json!({})).await;
    assert_eq!(answer["greeting"], "hi");
    let recoded = lambda
        .update_function_code()
        .function_name("notify")
        .zip_file(Blob::new(zip_of(&[(
            "app.py",
            "def handler(e, c):\n    return 'v2'\n",
        )])))
        .send()
        .await
        .unwrap();
    assert_ne!(recoded.code_sha256(), config.code_sha256());
    // The new code answers at once: instances of the old revision are not reused.
    let (_, answer, _) = invoke(&lambda, "notify", json!({})).await;
    assert_eq!(answer, json!("v2"));

    let listed = lambda.list_functions().send().await.unwrap();
    assert_eq!(listed.functions().len(), 1);
    lambda
        .delete_function()
        .function_name("notify")
        .send()
        .await
        .unwrap();
    let (code, message, status) =
        failure(lambda.get_function().function_name("notify").send().await);
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));
    assert!(message.contains("function:notify"), "{message}");
    let (code, _, status) = failure(lambda.list_aliases().function_name("notify").send().await);
    assert_eq!((code.as_str(), status), ("NotImplementedException", 501));
}

#[tokio::test]
async fn a_python_function_runs_warm_fails_times_out_and_logs() {
    let server = Server::start();
    let lambda = server.lambda();
    create(
        &lambda,
        "py",
        Runtime::Python312,
        "app.handler",
        &[("app.py", PYTHON_APP)],
    )
    .await;
    let (error, first, log) = invoke(&lambda, "py", json!({"x": 1})).await;
    assert_eq!(error, None, "{first}");
    assert_eq!(first["name"], "py");
    assert_eq!(first["region"], "eu-central-1");
    assert_eq!(first["endpoint"], server.endpoint.as_str());
    assert!(log.contains("event {\"x\": 1}"), "{log}");
    assert!(log.starts_with("START RequestId: "), "{log}");
    assert!(log.contains("REPORT RequestId: "), "{log}");
    // Warm: the same process serves the next invocation.
    let (_, second, _) = invoke(&lambda, "py", json!({})).await;
    assert_eq!(second["pid"], first["pid"]);
    assert_ne!(second["request"], first["request"]);

    let (error, payload, log) = invoke(&lambda, "py", json!({"fail": true})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "ValueError");
    assert_eq!(payload["errorMessage"], "asked to fail");
    assert!(payload["stackTrace"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(payload["requestId"].as_str().map(str::len), Some(36));
    assert!(log.contains("asked to fail"), "{log}");

    lambda
        .update_function_configuration()
        .function_name("py")
        .timeout(1)
        .send()
        .await
        .unwrap();
    let (error, payload, _) = invoke(&lambda, "py", json!({"sleep": 30})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    let message = payload["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Task timed out after 1.00 seconds"),
        "{message}"
    );
    // The timed-out process was ended; the next invocation gets a new one.
    let (error, after, _) = invoke(&lambda, "py", json!({})).await;
    assert_eq!(error, None);
    assert_ne!(after["pid"], first["pid"]);

    let event = lambda
        .invoke()
        .function_name("py")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(event.status_code(), 202);
    let dry = lambda
        .invoke()
        .function_name("py")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status_code(), 204);
    let (code, _, _) = failure(
        lambda
            .invoke()
            .function_name("py")
            .payload(Blob::new("{not json"))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidRequestContentException");
    let (code, _, status) = failure(lambda.invoke().function_name("missing").send().await);
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));

    // Its output is kept, readable by request id or function name.
    let request = first["request"].as_str().unwrap();
    let logs = server.run_cli(&["logs", request]);
    assert!(logs.contains("event {\"x\": 1}"), "{logs}");
}

#[tokio::test]
async fn a_node_function_and_a_custom_runtime_are_invoked_directly() {
    let server = Server::start();
    let lambda = server.lambda();
    let js = "exports.handler = async (event, context) => ({ doubled: event.n * 2, fn: context.functionName });";
    create(
        &lambda,
        "node",
        Runtime::Nodejs20x,
        "index.handler",
        &[("index.js", js)],
    )
    .await;
    let (error, payload, _) = invoke(&lambda, "node", json!({"n": 21})).await;
    assert_eq!(error, None, "{payload}");
    assert_eq!(payload, json!({"doubled": 42, "fn": "node"}));
    let mjs = "export const handler = async () => { throw new TypeError('bad input'); };";
    create(
        &lambda,
        "esm",
        Runtime::Nodejs20x,
        "index.handler",
        &[("index.mjs", mjs)],
    )
    .await;
    let (error, payload, _) = invoke(&lambda, "esm", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "TypeError");
    assert_eq!(payload["errorMessage"], "bad input");

    // provided.*: the code's own bootstrap speaks the Runtime API.
    let bootstrap = r#"#!/usr/bin/env python3
import os, urllib.request
base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
while True:
    r = opener.open(base + "/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    body = r.read()
    opener.open(urllib.request.Request(base + "/invocation/" + rid + "/response", data=b'{"echo":' + body + b'}', method="POST"))
"#;
    create(
        &lambda,
        "custom",
        Runtime::Providedal2023,
        "unused",
        &[("bootstrap", bootstrap)],
    )
    .await;
    let (error, payload, _) = invoke(&lambda, "custom", json!({"a": 1})).await;
    assert_eq!(error, None, "{payload}");
    assert_eq!(payload, json!({"echo": {"a": 1}}));
}

#[tokio::test]
async fn code_comes_from_s3_too() {
    let server = Server::start();
    let (lambda, s3) = (server.lambda(), server.s3());
    s3.create_bucket().bucket("code").send().await.unwrap();
    s3.put_object()
        .bucket("code")
        .key("fn.zip")
        .body(ByteStream::from(zip_of(&[(
            "app.py",
            "def handler(e, c):\n    return 's3'\n",
        )])))
        .send()
        .await
        .unwrap();
    lambda
        .create_function()
        .function_name("from-s3")
        .runtime(Runtime::Python312)
        .handler("app.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .s3_bucket("code")
                .s3_key("fn.zip")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(invoke(&lambda, "from-s3", json!({})).await.1, json!("s3"));
    let (code, message, _) = failure(
        lambda
            .create_function()
            .function_name("nokey")
            .runtime(Runtime::Python312)
            .handler("app.handler")
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .s3_bucket("code")
                    .s3_key("missing.zip")
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("NoSuchKey"), "{message}");
}

/// A function for the Lambda invoke action: reads its input artifact through the emulator's S3
/// with boto3, and reports with PutJobSuccessResult (a continuation first, when asked).
const PIPELINE_APP: &str = r#"
import boto3, json
def handler(event, context):
    job = event["CodePipeline.job"]
    data = job["data"]
    params = json.loads(data["actionConfiguration"]["configuration"].get("UserParameters") or "{}")
    cp = boto3.client("codepipeline")
    if params.get("silent"):
        return "nothing reported"
    if params.get("continue") and "continuationToken" not in data:
        cp.put_job_success_result(jobId=job["id"], continuationToken="again")
        return "continued"
    location = data["inputArtifacts"][0]["location"]["s3Location"]
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=location["bucketName"], Key=location["objectKey"])["Body"].read()
    cp.put_job_success_result(jobId=job["id"], outputVariables={
        "SIZE": str(len(body)), "TOKEN": data.get("continuationToken", "none")})
    return "done"
"#;

fn lambda_declaration(name: &str, params: &str) -> Value {
    let mut decl = tutorial_declaration(name);
    let invoke = json!({"name": "notify", "namespace": "Fn",
        "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
        "configuration": {"FunctionName": "pipefn", "UserParameters": params},
        "inputArtifacts": [{"name": "intermediate-file"}]});
    decl["stages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"name": "invoke", "actions": [invoke]}));
    decl["stages"][2]["actions"][0]["configuration"]["ObjectKey"] =
        "out-#{Fn.SIZE}-#{Fn.TOKEN}".into();
    decl
}

async fn pipeline_with_function(server: &Server, params: &str) -> String {
    let (cp, s3, lambda) = (server.codepipeline(), server.s3(), server.lambda());
    tutorial_buckets(&s3).await;
    lambda
        .create_function()
        .function_name("pipefn")
        .runtime(Runtime::Python312)
        .handler("app.handler")
        .role(ROLE)
        .timeout(30)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", PIPELINE_APP)])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": lambda_declaration("pipeline", params)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    latest_execution(&cp, "pipeline").await
}

#[tokio::test]
async fn a_python_function_in_a_pipeline_reads_its_artifact_and_reports_with_boto3() {
    let server = Server::start();
    let cp = server.codepipeline();
    let execution = pipeline_with_function(&server, "{}").await;
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Succeeded
    );
    // The source file is 18 bytes; the output variables reached the deploy's key.
    let s3 = server.s3();
    assert_eq!(
        body(&s3, "target-bucket", "out-18-none").await,
        b"Hello LocalStack!\n"
    );
    let actions = server.call("ListActionExecutions", json!({"pipelineName": "pipeline"}));
    let notify = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "notify")
        .cloned()
        .unwrap();
    assert_eq!(notify["status"], "Succeeded");
    assert_eq!(notify["output"]["outputVariables"]["SIZE"], "18");
    // The request id of the invocation is the action's external execution id.
    let external = notify["output"]["executionResult"]["externalExecutionId"]
        .as_str()
        .unwrap();
    let logs = server.run_cli(&["logs", external]);
    assert!(
        logs.contains(&format!("START RequestId: {external}")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_continuation_invokes_the_function_again_with_its_token() {
    let server = Server::start();
    let cp = server.codepipeline();
    let execution = pipeline_with_function(&server, r#"{"continue": true}"#).await;
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&server.s3(), "target-bucket", "out-18-again").await,
        b"Hello LocalStack!\n"
    );
}

#[tokio::test]
async fn a_function_that_never_reports_times_the_action_out() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_LAMBDA_JOB_TIMEOUT_SECONDS", "2")]);
    let cp = server.codepipeline();
    let execution = pipeline_with_function(&server, r#"{"silent": true}"#).await;
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Failed
    );
    let state = cp
        .get_pipeline_state()
        .name("pipeline")
        .send()
        .await
        .unwrap();
    let latest = state.stage_states()[1].action_states()[0]
        .latest_execution()
        .unwrap();
    assert_eq!(latest.error_details().unwrap().code(), Some("JobTimedOut"));
}

#[test]
fn malformed_lambda_requests_get_json_errors_and_change_nothing() {
    use crate::bad_input::{check_json, wrong_values, NOT_JSON};
    use base64::Engine;
    let server = Server::start();
    let client = server.client();
    let zip = base64::engine::general_purpose::STANDARD
        .encode(zip_of(&[("app.py", "def handler(e, c):\n    return 1\n")]));
    let created = client.http(
        "POST",
        "/2015-03-31/functions",
        "localhost",
        json!({"FunctionName": "kept", "Runtime": "python3.12", "Handler": "app.handler",
               "Role": ROLE, "Code": {"ZipFile": zip}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    // What a refused request must not change (an accepted one that changes nothing still marks
    // the function updated, as on AWS).
    let state = || {
        let r = client.http("GET", "/2015-03-31/functions/", "localhost", b"");
        assert_eq!(r.status, 200);
        let mut functions = r.json()["Functions"].clone();
        for f in functions.as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            f.remove("LastModified");
            f.remove("RevisionId");
        }
        functions
    };
    let before = state();
    let members = [
        "FunctionName",
        "Runtime",
        "Role",
        "Code",
        "Timeout",
        "MemorySize",
        "Environment",
        "ZipFile",
        "S3Bucket",
        "S3Key",
        "RevisionId",
        "Tags",
        "Architectures",
    ];
    let mut sent = 0;
    for (method, path) in [
        ("POST", "/2015-03-31/functions"),
        ("PUT", "/2015-03-31/functions/kept/code"),
        ("PUT", "/2015-03-31/functions/kept/configuration"),
    ] {
        for body in NOT_JSON {
            let r = client.http(method, path, "localhost", body);
            check_json(
                &format!("{method} {path} {:?}", String::from_utf8_lossy(body)),
                &r,
            );
            sent += 1;
        }
        for member in members {
            for value in wrong_values() {
                let body = json!({ member: value }).to_string();
                let r = client.http(method, path, "localhost", body.as_bytes());
                let shown: String = body.chars().take(60).collect();
                check_json(&format!("{method} {path} {shown}"), &r);
                sent += 1;
            }
        }
    }
    for (method, path) in [
        ("GET", "/2015-03-31/functions/%ZZ"),
        ("GET", "/2015-03-31/functions/a%00b/configuration"),
        ("DELETE", "/2015-03-31/functions/"),
        (
            "DELETE",
            &format!("/2015-03-31/functions/{}", "x".repeat(5000)),
        ),
        ("GET", "/2015-03-31/functions/?MaxItems=abc"),
        ("GET", "/2015-03-31/functions/?MaxItems=-5"),
        ("GET", "/2015-03-31/functions/?Marker=zzz"),
        (
            "POST",
            "/2015-03-31/functions/kept/invocations?Qualifier=%FF",
        ),
        ("PATCH", "/2015-03-31/functions/kept"),
    ] {
        for body in [&b""[..], b"{", b"\xff"] {
            let r = client.http(method, path, "localhost", body);
            check_json(&format!("{method} {path}"), &r);
            sent += 1;
        }
    }
    assert!(sent > 500, "{sent}");
    assert_eq!(state(), before);
}

#[tokio::test]
async fn functions_survive_sigkill_and_run_after_it() {
    let server = Server::start();
    create(
        &server.lambda(),
        "kept",
        Runtime::Python312,
        "app.handler",
        &[("app.py", PYTHON_APP)],
    )
    .await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    let lambda = server.lambda();
    let config = lambda
        .get_function_configuration()
        .function_name("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(config.handler(), Some("app.handler"));
    let (error, payload, _) = invoke(&lambda, "kept", json!({})).await;
    assert_eq!(error, None, "{payload}");
    assert_eq!(payload["name"], "kept");
}

/// Waits (at most 30 s) until the process `pid` is gone.
fn gone(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie is gone too: it runs nothing.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.split_whitespace().nth(2) == Some("Z") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still runs after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn an_idle_instance_is_ended_and_functions_do_not_run_when_builds_are_off() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_LAMBDA_IDLE_SECONDS", "1")]);
    let lambda = server.lambda();
    create(
        &lambda,
        "idle",
        Runtime::Python312,
        "app.handler",
        &[("app.py", PYTHON_APP)],
    )
    .await;
    let (_, first, _) = invoke(&lambda, "idle", json!({})).await;
    let pid = first["pid"].as_u64().unwrap();
    gone(pid);
    let (error, again, _) = invoke(&lambda, "idle", json!({})).await;
    assert_eq!(error, None);
    assert_ne!(again["pid"], first["pid"]);

    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_RUN_BUILDS", "false")]);
    let lambda = server.lambda();
    create(
        &lambda,
        "off",
        Runtime::Python312,
        "app.handler",
        &[("app.py", PYTHON_APP)],
    )
    .await;
    let (error, payload, _) = invoke(&lambda, "off", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    let message = payload["errorMessage"].as_str().unwrap();
    assert!(message.contains("run_builds = false"), "{message}");
}

#[tokio::test]
async fn a_timed_out_invocation_ends_everything_its_function_started() {
    let server = Server::start();
    let lambda = server.lambda();
    let app = r#"
import json, subprocess, time
def handler(event, context):
    child = subprocess.Popen(["sleep", "300"])
    with open(event["pidfile"], "w") as f:
        f.write(str(child.pid))
    time.sleep(30)
"#;
    lambda
        .create_function()
        .function_name("spawner")
        .runtime(Runtime::Python312)
        .handler("app.handler")
        .role(ROLE)
        .timeout(1)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", app)])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let (error, payload, _) = invoke(
        &lambda,
        "spawner",
        json!({"pidfile": pidfile.display().to_string()}),
    )
    .await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert!(
        payload["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out"),
        "{payload}"
    );
    let pid: u64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The function's whole process group was ended, its child with it.
    gone(pid);
}

#[tokio::test]
async fn a_function_that_cannot_start_answers_its_import_error() {
    let server = Server::start();
    let lambda = server.lambda();
    create(
        &lambda,
        "broken",
        Runtime::Python312,
        "app.handler",
        &[("app.py", "import no_such_module\n")],
    )
    .await;
    let (error, payload, log) = invoke(&lambda, "broken", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(
        payload["errorType"], "Runtime.ImportModuleError",
        "{payload}"
    );
    let message = payload["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Unable to import module 'app'"),
        "{message}"
    );
    assert!(message.contains("no_such_module"), "{message}");
    assert!(log.contains("ModuleNotFoundError"), "{log}");
}
