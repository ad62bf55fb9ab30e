//! The AWS JSON 1.1 envelope below the SDKs: error shapes, unknown and unsupported operations,
//! malformed and oversized bodies.

use serde_json::{json, Value};

use crate::common::{repo_file, Server};

#[test]
fn errors_have_the_shape_botocore_parses() {
    let server = Server::start();
    let r = server.call("GetPipeline", json!({"name": "missing"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("PipelineNotFoundException")
    );
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r
        .header("x-amzn-requestid")
        .is_some_and(|id| id.len() == 36));
    assert_eq!(
        r.json(),
        json!({"__type": "PipelineNotFoundException",
               "message": "Account '000000000000' does not have a pipeline with name 'missing'"})
    );
    let ok = server.call("ListPipelines", json!({}));
    assert_eq!(ok.status, 200);
    assert!(ok.header("x-amzn-requestid").is_some());
    assert_eq!(ok.json(), json!({"pipelines": []}));
}

#[test]
fn malformed_json_is_a_serialization_exception() {
    let server = Server::start();
    let r = server.raw(Some("CodePipeline_20150709.GetPipeline"), b"{\"name\": ");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SerializationException")
    );
    let r = server.raw(Some("CodePipeline_20150709.GetPipeline"), b"[1, 2]");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SerializationException")
    );
    // A value of the wrong type.
    let r = server.call("GetPipeline", json!({"name": 12}));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SerializationException")
    );
    // An empty body is an empty object, as on AWS: then the required name is missing.
    let r = server.raw(Some("CodePipeline_20150709.GetPipeline"), b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "ValidationException")
    );
}

#[test]
fn unknown_targets_and_services_are_named() {
    let server = Server::start();
    let r = server.raw(Some("CodePipeline_20150709.MakeCoffee"), b"{}");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "UnknownOperationException")
    );
    assert!(r.json()["message"].as_str().unwrap().contains("MakeCoffee"));
    let r = server.raw(Some("CodePipeline_20990101.ListPipelines"), b"{}");
    assert_eq!(r.error_code(), "UnknownOperationException");
    let r = server.raw(None, b"{}");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "UnknownOperationException")
    );
}

#[test]
fn an_oversized_body_is_refused_quickly() {
    let server = Server::start();
    let body = vec![b' '; 17 * 1024 * 1024];
    let r = server.raw(Some("CodePipeline_20150709.ListPipelines"), &body);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "RequestEntityTooLargeException")
    );
}

/// Every operation of the model is served: none answers "not supported".
#[test]
fn every_operation_of_the_model_is_routed() {
    let server = Server::start();
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("models/codepipeline-2015-07-09.json")).unwrap(),
    )
    .unwrap();
    let operations = model["operations"].as_object().unwrap();
    assert_eq!(operations.len(), 44);
    let mut implemented = 0;
    for name in operations.keys() {
        let r = server.call(name, json!({}));
        assert_ne!(r.status, 404, "{name}");
        let code = r.error_code();
        assert_ne!(code, "UnknownOperationException", "{name}");
        if r.status == 501 {
            assert_eq!(code, "NotImplementedException", "{name}");
            let message = r.json()["message"].as_str().unwrap().to_string();
            assert!(message.contains(name.as_str()), "{name}: {message}");
        } else {
            assert!(r.status == 200 || r.status == 400, "{name}: {}", r.status);
            implemented += 1;
        }
    }
    assert_eq!(implemented, 44, "every CodePipeline operation is served");
}

#[test]
fn health_answers() {
    let server = Server::start();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /_codepipeline_local/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body: serde_json::Value =
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], "running");
    for service in ["codepipeline", "codebuild", "s3", "iam", "sts"] {
        assert_eq!(body["services"][service], "running", "{out}");
    }
}

/// A service the endpoint does not serve answers in the error shape its clients parse, naming it.
#[test]
fn unknown_services_answer_in_their_protocol() {
    let server = Server::start();
    // Query protocol (SNS): <ErrorResponse>.
    let r = server.query("sns", "Action=ListTopics&Version=2010-03-31");
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(text.contains("<ErrorResponse"), "{text}");
    assert!(
        text.contains("<Code>UnknownServiceException</Code>"),
        "{text}"
    );
    assert!(text.contains("sns"), "{text}");
    // JSON 1.0/1.1 (a target): __type.
    let r = server
        .client()
        .raw_for("dynamodb", Some("DynamoDB_20120810.ListTables"), b"{}");
    assert_eq!(r.error_code(), "UnknownServiceException");
    assert!(r.json()["message"].as_str().unwrap().contains("dynamodb"));
    // REST-XML: <Error>.
    let r = server
        .client()
        .http_signed("route53", "GET", "/2013-04-01/hostedzone");
    let text = r.text();
    assert!(
        text.contains("<Error><Code>UnknownServiceException</Code>"),
        "{text}"
    );
    // REST-JSON (API Gateway): JSON.
    let r = server
        .client()
        .http_signed("apigateway", "GET", "/restapis");
    assert_eq!(r.error_code(), "UnknownServiceException");
    // Lambda is served: its operations we do not serve yet are named.
    let r = server
        .client()
        .http_signed("lambda", "GET", "/2015-03-31/functions/f/aliases");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (501, "NotImplementedException")
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("ListAliases"));
}

/// The AWS CLI reads the query error of an unknown service as an error, not as unparseable XML.
#[test]
fn the_aws_cli_reads_an_unknown_query_service_s_error() {
    let server = Server::start();
    let out = std::process::Command::new("aws")
        .args(["--endpoint-url", &server.endpoint, "sns", "list-topics"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .output()
        .expect("the AWS CLI must be installed (pip install awscli)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("UnknownServiceException"), "{stderr}");
    assert!(!stderr.contains("Unable to parse"), "{stderr}");
}

/// A body that trickles in is answered 408 once `body_timeout_seconds` has passed, and its
/// connection closed; the server goes on serving.
#[test]
fn a_slow_body_times_out() {
    use std::io::{Read, Write};
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_BODY_TIMEOUT_SECONDS", "1")]);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\n\
                X-Amz-Target: CodePipeline_20150709.ListPipelines\r\nContent-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeoutException"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(server.call("ListPipelines", json!({})).status, 200);
}

/// A connection opened ahead of need, as browsers do, and left quiet for longer than a browser
/// keeps such a connection (Chromium: 10 s) still serves the request it finally carries: it is
/// not answered 408 meanwhile.
#[test]
fn a_connection_opened_ahead_serves_its_request_later() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    // Nothing is sent for 11 s: a read that returns before then means the server answered or
    // closed the quiet connection.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(11)))
        .unwrap();
    let mut early = [0u8; 64];
    let quiet = stream.read(&mut early);
    assert!(
        matches!(&quiet, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the quiet connection was answered or closed: {quiet:?} {:?}",
        String::from_utf8_lossy(&early)
    );
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head =
        "GET /_codepipeline_local/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A request that asks `Expect: 100-continue` for a body over the limit is refused at once, in
/// its protocol's shape, and never invited to send it; one within the limit is invited.
#[test]
fn an_oversized_body_is_refused_before_it_is_invited() {
    use std::io::{BufRead, BufReader, Read, Write};
    let server = Server::start();
    let ask = |head: &str| {
        let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        (stream, reader, first)
    };
    let oversized = 64 * 1024 * 1024;
    let json_head = |length: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: CodePipeline_20150709.ListPipelines\r\nExpect: 100-continue\r\n\
             Connection: close\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let (_, mut reader, first) = ask(&json_head(oversized));
    assert!(first.starts_with("HTTP/1.1 413"), "{first}");
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(
        rest.contains("\"__type\":\"RequestEntityTooLargeException\""),
        "{rest}"
    );

    let (_, mut reader, first) = ask(&format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Expect: 100-continue\r\nConnection: close\r\nContent-Length: {oversized}\r\n\r\n"
    ));
    assert!(first.starts_with("HTTP/1.1 413"), "{first}");
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("<ErrorResponse"), "{rest}");
    assert!(
        rest.contains("<Code>RequestEntityTooLargeException</Code>"),
        "{rest}"
    );

    let body = b"{}";
    let (mut stream, mut reader, first) = ask(&json_head(body.len()));
    assert!(first.starts_with("HTTP/1.1 100"), "{first}");
    stream.write_all(body).unwrap();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("\"pipelines\""), "{rest}");
}
