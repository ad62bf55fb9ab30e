//! The console over HTTP: a browser's visit of `/` is sent to it (and no AWS client's request
//! is), its pages show what the API shows, a change runs only from its own pages (JSON, token,
//! same origin) and then through CodePipeline's operation, and its live stream names the
//! streams that changed. The browser itself is driven in `tests/cli/console.sh`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{tutorial_declaration, RawResponse, Server};

fn get(server: &Server, path: &str, extra: &str) -> RawResponse {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
        server.addr
    );
    server.client().exchange(head.as_bytes(), b"")
}

fn post(server: &Server, path: &str, headers: &str, body: &str) -> RawResponse {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    server.client().exchange(head.as_bytes(), body.as_bytes())
}

/// The token the console's pages carry.
fn token(server: &Server) -> String {
    let page = get(server, "/_console/", "").text();
    let (_, rest) = page
        .split_once("name=\"console-token\" content=\"")
        .expect("a token in the page");
    rest.split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_browser_visit_is_sent_to_the_console_and_aws_clients_are_not() {
    let server = Server::start();
    let visit = get(&server, "/", "Accept: text/html,application/xhtml+xml\r\n");
    assert_eq!(visit.status, 302);
    assert_eq!(visit.header("location"), Some("/_console/"));
    // A signed request, or one that does not ask for HTML, is S3's ListBuckets as before.
    let signed = get(
        &server,
        "/",
        "Accept: text/html\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n",
    );
    assert_eq!(signed.status, 200);
    assert!(
        signed.text().contains("<ListAllMyBucketsResult"),
        "{}",
        signed.text()
    );
    let plain = get(&server, "/", "");
    assert!(
        plain.text().contains("<ListAllMyBucketsResult"),
        "{}",
        plain.text()
    );
    // And the SDK lists buckets as it always did.
    server.s3().list_buckets().send().await.unwrap();
}

#[tokio::test]
async fn pages_show_the_pipeline_and_changes_run_only_from_the_console() {
    let server = Server::start();
    let cp = server.codepipeline();
    crate::engine::tutorial_buckets(&server.s3()).await;
    server
        .call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration("shown")}),
        )
        .json();
    let list = get(&server, "/_console/", "");
    assert_eq!(list.status, 200);
    assert_eq!(
        list.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(list.text().contains(">shown</a>"), "{}", list.text());
    let page = get(&server, "/_console/pipeline/shown", "");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Release change"));
    assert!(page.text().contains("aria-label=\"Stage stage1\""));
    // Its content alone, as the page fetches it when the log moves.
    let fragment = get(
        &server,
        "/_console/pipeline/shown",
        "X-Console-Fragment: 1\r\n",
    );
    assert!(fragment
        .text()
        .starts_with("<div data-watch=\":shown\" data-region=\"eu-central-1\">"));
    assert_eq!(get(&server, "/_console/pipeline/nope", "").status, 404);
    assert_eq!(get(&server, "/_console/execution/nope", "").status, 404);
    assert_eq!(get(&server, "/_console/build/nope:1", "").status, 404);
    assert_eq!(get(&server, "/_console/assets/nope.js", "").status, 404);
    // Markup in a name cannot get into a page: names are escaped.
    let odd = get(&server, "/_console/pipeline/%3Cb%3E", "");
    assert!(!odd.text().contains("<b>"), "{}", odd.text());

    let token = token(&server);
    let json_with = |t: &str| format!("Content-Type: application/json\r\nX-Console-Token: {t}\r\n");
    let start = r#"{"name":"shown"}"#;
    let path = "/_console/api/StartPipelineExecution?region=eu-central-1";
    let refused = post(&server, path, "Content-Type: application/json\r\n", start);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "AccessDeniedException");
    let wrong = post(&server, path, &json_with("0000"), start);
    assert_eq!(wrong.status, 403);
    let form = post(
        &server,
        path,
        &format!("Content-Type: text/plain\r\nX-Console-Token: {token}\r\n"),
        start,
    );
    assert_eq!(form.status, 403);
    let elsewhere = post(
        &server,
        path,
        &format!("{}Origin: http://elsewhere.example\r\n", json_with(&token)),
        start,
    );
    assert_eq!(elsewhere.status, 403);
    let unknown = post(
        &server,
        "/_console/api/DeletePipeline",
        &json_with(&token),
        start,
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.error_code(), "UnknownOperationException");
    let bad = post(&server, path, &json_with(&token), "[1]");
    assert_eq!(bad.error_code(), "ValidationException");
    // CodePipeline's own answer to a wrong input.
    let missing = post(&server, path, &json_with(&token), r#"{"name":"nope"}"#);
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_code(), "PipelineNotFoundException");
    // Nothing refused started anything: only the creation's execution.
    let listed = cp
        .list_pipeline_executions()
        .pipeline_name("shown")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.pipeline_execution_summaries().len(), 1);

    let same_origin = format!("{}Origin: http://{}\r\n", json_with(&token), server.addr);
    let started = post(&server, path, &same_origin, start);
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let got = cp
        .get_pipeline_execution()
        .pipeline_name("shown")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let trigger = got.pipeline_execution().unwrap().trigger().unwrap();
    assert_eq!(
        trigger.trigger_type().unwrap().as_str(),
        "StartPipelineExecution"
    );
    // Its page, with the timeline from the log.
    let execution = get(&server, &format!("/_console/execution/{id}"), "");
    assert_eq!(execution.status, 200);
    assert!(
        execution.text().contains("ExecutionStarted"),
        "{}",
        execution.text()
    );
    let history = get(
        &server,
        "/_console/pipeline/shown/executions?trigger=StartPipelineExecution",
        "",
    );
    assert!(history.text().contains(&id));
    assert!(!history.text().contains(
        &listed.pipeline_execution_summaries()[0]
            .pipeline_execution_id()
            .unwrap()
            .to_string()
    ));
}

#[tokio::test]
async fn the_live_stream_names_the_streams_that_changed() {
    let server = Server::start();
    crate::engine::tutorial_buckets(&server.s3()).await;
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET /_console/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut seen = String::new();
    let mut read_until = |stream: &mut TcpStream, wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !seen.contains(wanted) {
            assert!(Instant::now() < deadline, "no {wanted} in {seen}");
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        seen.clone()
    };
    let head = read_until(&mut stream, "retry: 2000");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    server
        .call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration("live")}),
        )
        .json();
    let after = read_until(&mut stream, "pipeline:000000000000:eu-central-1:live");
    assert!(after.contains("event: change"), "{after}");
}

#[tokio::test]
async fn a_functions_logs_have_a_page() {
    let server = Server::start();
    let lambda = server.lambda();
    crate::lambda::create(
        &lambda,
        "talker",
        aws_sdk_lambda::types::Runtime::Python312,
        "app.handler",
        &[(
            "app.py",
            "def handler(event, context):\n    print('said <b>hello</b>')\n    return 1\n",
        )],
    )
    .await;
    crate::lambda::invoke(&lambda, "talker", json!({})).await;
    let page = get(&server, "/_console/lambda/talker", "");
    assert_eq!(page.status, 200);
    // The function's output, escaped.
    assert!(
        page.text().contains("said &lt;b&gt;hello&lt;/b&gt;"),
        "{}",
        page.text()
    );
    assert_eq!(get(&server, "/_console/lambda/silent", "").status, 404);
}

#[tokio::test]
async fn a_page_s_stream_starts_where_the_page_was_made() {
    let server = Server::start();
    let page = get(&server, "/_console/", "").text();
    let (_, rest) = page
        .split_once("name=\"console-position\" content=\"")
        .expect("a position in the page");
    let position = rest.split('"').next().unwrap().to_string();
    // A change between the page and its stream's connection is not missed.
    server
        .call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration("between")}),
        )
        .json();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET /_console/events?from={position} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("pipeline:000000000000:eu-central-1:between") {
        assert!(Instant::now() < deadline, "the change was missed: {seen}");
        if let Ok(n) = stream.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains(&format!("id: {position}\n")), "{seen}");
}

/// A pipeline's history is shown a page of 100 at a time, newest first, with links to the older
/// and newer pages that keep the filters.
#[tokio::test]
async fn a_long_history_is_paged() {
    let server = Server::start();
    // No buckets: each execution fails at its source, at once.
    server
        .call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration("long")}),
        )
        .json();
    let mut started = Vec::new();
    for _ in 0..104 {
        let answer = server
            .call("StartPipelineExecution", json!({"name": "long"}))
            .json();
        started.push(answer["pipelineExecutionId"].as_str().unwrap().to_string());
    }
    let rows = |page: &str| page.matches("href=\"/_console/execution/").count();
    let first = get(&server, "/_console/pipeline/long/executions", "").text();
    assert_eq!(rows(&first), 100);
    assert!(first.contains(&started[103]), "the newest is first");
    assert!(!first.contains(&started[3]));
    assert!(first.contains("rel=\"next\""));
    assert!(!first.contains("rel=\"prev\""));
    let second = get(&server, "/_console/pipeline/long/executions?page=2", "").text();
    assert_eq!(rows(&second), 5, "104 started and the creation's");
    assert!(second.contains(&started[0]) && second.contains(&started[3]));
    assert!(!second.contains("rel=\"next\""));
    assert!(second.contains(
        "href=\"/_console/pipeline/long/executions?region=eu-central-1&amp;page=1\" rel=\"prev\""
    ));
    // A filter is kept from page to page.
    let filtered = "/_console/pipeline/long/executions?trigger=StartPipelineExecution";
    let first = get(&server, filtered, "").text();
    assert!(first.contains(
        "executions?region=eu-central-1&amp;trigger=StartPipelineExecution&amp;page=2\" rel=\"next\""
    ));
    let second = get(&server, &format!("{filtered}&page=2"), "").text();
    assert_eq!(rows(&second), 4);
    // A page past the end, or no page at all, says so.
    let past = get(&server, "/_console/pipeline/long/executions?page=9", "").text();
    assert!(past.contains("No executions match."));
    let odd = get(&server, "/_console/pipeline/long/executions?page=x", "").text();
    assert_eq!(rows(&odd), 100);
}
