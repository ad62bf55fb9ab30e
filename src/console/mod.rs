//! The console: pipelines watched and steered in a browser, at `/_console/` on the server's own
//! address (a browser's plain `GET /` is sent there).
//!
//! Pages are HTML made with `maud`: the markup is Rust, checked by the compiler, and every value
//! put in it is escaped, so a pipeline's names, summaries and logs cannot inject markup. One
//! stylesheet and one script are embedded in the binary; nothing is fetched from a network.
//!
//! Everything a page shows is read through the CodePipeline API's own operations (in-process,
//! [`PipelineApi`]) and the history (timelines, diffs); everything it changes goes through the
//! same operations (StartPipelineExecution, StopPipelineExecution, PutApprovalResult,
//! Enable/DisableStageTransition, RetryStageExecution), so it shows in history and replay like a
//! client's call. A change must be a JSON POST carrying the page's token (`X-Console-Token`,
//! made at each start and written only into the console's pages) from the same origin: a page
//! of another site can neither read the token nor send the header.
//!
//! Pages follow the event log: `/_console/events` is a stream of server-sent events, one when
//! the log has grown, naming the streams that changed; a page fetches its content again when a
//! stream it shows changed.
//!
//! # LIMITATIONS
//! - The console serves the account `000000000000`; the region is the server's unless a page's
//!   `?region=` names another.
//! - Times are drawn in UTC; the page's script shows them in the browser's zone (UTC stays in
//!   each time's tooltip), so a browser without scripts sees UTC.

mod pages;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::codebuild::CodeBuild;
use crate::eventstore::EventStore;
use crate::history::HistoryReader;

/// Where the console is served.
pub const PREFIX: &str = "/_console";

/// The operations a page may ask for.
pub const CHANGES: &[&str] = &[
    "StartPipelineExecution",
    "StopPipelineExecution",
    "PutApprovalResult",
    "EnableStageTransition",
    "DisableStageTransition",
    "RetryStageExecution",
];

/// The header a page's changes carry the token in.
pub const TOKEN_HEADER: &str = "x-console-token";

/// The header a page's fetch of its own content carries (the answer is the content only).
const FRAGMENT_HEADER: &str = "x-console-fragment";

/// An AWS error as a page shows it: (code, message).
pub type ApiError = (String, String);

/// CodePipeline's operations, called in-process as a client's request would run them.
pub trait PipelineApi: Send + Sync {
    /// Runs `operation` with `input` (AWS's JSON shape) in `region`.
    fn call<'a>(
        &'a self,
        region: &'a str,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ApiError>>;
}

/// What the console reads and where it sends changes.
pub struct ConsoleState {
    /// CodePipeline's API.
    pub api: Arc<dyn PipelineApi>,
    /// The history (timelines, diffs, executions by status).
    pub history: HistoryReader,
    /// Builds, for their logs.
    pub codebuild: Arc<CodeBuild>,
    /// The data dir, for Lambda functions' invocation logs.
    pub data_dir: std::path::PathBuf,
    /// The log, to say what changed.
    pub store: Arc<dyn EventStore>,
    /// The position of the log's last event, moved by every append.
    pub appended: watch::Receiver<u64>,
    /// Becomes true when the server stops: live streams end.
    pub stopping: watch::Receiver<bool>,
    /// The token a change must carry.
    pub token: String,
    /// The server's region.
    pub region: String,
}

/// A fresh token: 32 random hexadecimal digits.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Adds the console's routes to an app.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<ConsoleState>) {
    cfg.app_data(state)
        .route(PREFIX, web::get().to(to_console))
        .route(&format!("{PREFIX}/"), web::get().to(page))
        .route(&format!("{PREFIX}/pipeline/{{name}}"), web::get().to(page))
        .route(
            &format!("{PREFIX}/pipeline/{{name}}/executions"),
            web::get().to(page),
        )
        .route(&format!("{PREFIX}/execution/{{id}}"), web::get().to(page))
        .route(&format!("{PREFIX}/build/{{id}}"), web::get().to(page))
        .route(&format!("{PREFIX}/lambda/{{name}}"), web::get().to(page))
        .route(&format!("{PREFIX}/assets/{{file}}"), web::get().to(asset))
        .route(&format!("{PREFIX}/events"), web::get().to(events))
        .route(
            &format!("{PREFIX}/api/{{operation}}"),
            web::post().to(change),
        );
}

/// Whether a request is a browser's plain visit of `/`: a GET asking for HTML, with no AWS
/// signature (every AWS client signs, or names its operation).
pub fn is_browser_visit(req: &HttpRequest) -> bool {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    req.method() == actix_web::http::Method::GET
        && req.path() == "/"
        && req.query_string().is_empty()
        && header("authorization").is_none()
        && header("x-amz-date").is_none()
        && header("x-amz-target").is_none()
        && header("accept").is_some_and(|a| a.contains("text/html"))
}

/// The answer to a browser's visit of `/`: the console.
pub fn redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", format!("{PREFIX}/")))
        .finish()
}

async fn to_console() -> HttpResponse {
    redirect()
}

/// The region a request names, or the server's.
fn region_of(req: &HttpRequest, state: &ConsoleState) -> String {
    crate::aws::query::parse_form(req.query_string())
        .into_iter()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v)
        .filter(|r| {
            !r.is_empty()
                && r.len() <= 32
                && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or_else(|| state.region.clone())
}

async fn page(req: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let region = region_of(&req, &state);
    let query: Vec<(String, String)> = crate::aws::query::parse_form(req.query_string())
        .into_iter()
        .collect();
    let path = req.path().strip_prefix(PREFIX).unwrap_or("/").to_string();
    let view = pages::View {
        state: &state,
        region: &region,
        query: &query,
    };
    let (status, title, content) = view.render(&path).await;
    let fragment = req.headers().contains_key(FRAGMENT_HEADER);
    // The log's position the page was made at: its live stream starts there, so nothing that
    // happens between this answer and the stream's connection is missed.
    let position = *state.appended.borrow();
    let body = if fragment {
        content.into_string()
    } else {
        pages::layout(&title, &state.token, &region, position, content).into_string()
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

async fn asset(req: HttpRequest) -> HttpResponse {
    let file = req.match_info().get("file").unwrap_or_default();
    let (kind, body): (&str, &'static str) = match file {
        "console.css" => (
            "text/css; charset=utf-8",
            include_str!("assets/console.css"),
        ),
        "console.js" => (
            "text/javascript; charset=utf-8",
            include_str!("assets/console.js"),
        ),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// Whether a change comes from one of the console's own pages: JSON, the token, and (when the
/// browser says where the page is) the same origin.
fn from_console(req: &HttpRequest, token: &str) -> Result<(), &'static str> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err("a change must be sent as application/json");
    }
    if header(TOKEN_HEADER) != Some(token) {
        return Err("a change must carry the console's token");
    }
    if let Some(origin) = header("origin") {
        let host = req.connection_info().host().to_string();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o == host);
        if !same {
            return Err("a change must come from the console's own origin");
        }
    }
    Ok(())
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"__type": code, "message": message}))
}

/// The largest change a page sends.
const MAX_CHANGE_BYTES: usize = 64 * 1024;

async fn change(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    if let Err(why) = from_console(&req, &state.token) {
        return error(403, "AccessDeniedException", why);
    }
    let operation = req.match_info().get("operation").unwrap_or_default();
    let Some(operation) = CHANGES.iter().find(|o| **o == operation) else {
        return error(
            400,
            "UnknownOperationException",
            &format!("the console does not change anything with {operation}"),
        );
    };
    let bytes = match body.to_bytes_limited(MAX_CHANGE_BYTES).await {
        Ok(Ok(b)) => b,
        _ => {
            return error(
                413,
                "ValidationException",
                "the change is too large or was not received",
            )
        }
    };
    let input: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error(
                400,
                "ValidationException",
                "the change is not a JSON object",
            )
        }
    };
    let region = region_of(&req, &state);
    match state.api.call(&region, operation, input).await {
        Ok(answer) => HttpResponse::Ok().json(answer),
        Err((code, message)) => error(400, &code, &message),
    }
}

/// How long a live stream stays quiet before it says it is still there.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// How many events one announcement reads to name the streams that changed.
const READ_AT_ONCE: usize = 500;

/// Server-sent events: `change` with `{"position", "streams"}` whenever the log grows after the
/// position the browser last saw (`Last-Event-ID` when it reconnects, else the page's `from`),
/// a comment every [`KEEPALIVE`] otherwise; the stream ends when the server stops.
async fn events(req: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let now = *state.appended.borrow();
    let query = crate::aws::query::parse_form(req.query_string());
    let from = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("from").map(String::as_str))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|p| *p <= now)
        .unwrap_or(now);
    let start = Live {
        appended: state.appended.clone(),
        stopping: state.stopping.clone(),
        store: state.store.clone(),
        seen: from,
        greeted: false,
    };
    let stream = futures_util::stream::unfold(start, |mut live| async move {
        let chunk = live.next().await?;
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), live))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .streaming(stream)
}

/// One browser's live stream.
struct Live {
    appended: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    store: Arc<dyn EventStore>,
    seen: u64,
    greeted: bool,
}

impl Live {
    /// The next piece of the stream; `None` when the server stops.
    async fn next(&mut self) -> Option<String> {
        if !self.greeted {
            self.greeted = true;
            return Some(format!("retry: 2000\nid: {}\n\n", self.seen));
        }
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            let now = *self.appended.borrow_and_update();
            if now > self.seen {
                let events = self
                    .store
                    .read_all(self.seen + 1, READ_AT_ONCE)
                    .unwrap_or_default();
                let mut streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
                streams.sort_unstable();
                streams.dedup();
                let position = events.last().map_or(now, |e| e.position);
                let data = json!({"position": position, "streams": streams});
                self.seen = position;
                return Some(format!("id: {position}\nevent: change\ndata: {data}\n\n"));
            }
            tokio::select! {
                changed = self.appended.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.stopping.changed() => {}
                _ = tokio::time::sleep(KEEPALIVE) => return Some(": still here\n\n".into()),
            }
        }
    }
}
