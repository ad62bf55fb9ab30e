//! The local admin surface: routes that are not AWS's (health, the read-only history API, build
//! output) and the names both the server and the command line use for them.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::codebuild::CodeBuild;
use crate::connections::pull_requests::PullRequests;
pub use crate::connections::pull_requests::PATH as PULL_REQUESTS_PATH;
use crate::history::HistoryReader;

/// Path of the health check, for scripts that wait for the server.
pub const HEALTH_PATH: &str = "/_codepipeline_local/health";

/// Where a build's output is read (`?id=BUILD_ID&offset=N`), for `codepipeline-local logs`.
pub const BUILD_LOG_PATH: &str = "/_codepipeline_local/builds/log";

/// Where a Lambda function's invocation logs are read (`?name=FUNCTION_OR_REQUEST_ID`), for
/// `codepipeline-local logs`.
pub const LAMBDA_LOG_PATH: &str = "/_codepipeline_local/lambda/logs";

/// Where the server serves the history, read-only, as JSON.
pub const HISTORY_PREFIX: &str = "/_codepipeline_local/history";

/// The header `codepipeline-local rerun` names the execution it runs again with.
pub const RERUN_HEADER: &str = "x-codepipeline-local-rerun-of";

/// The services the endpoint serves, as the health check lists them.
pub const SERVICES: &[&str] = &[
    "codepipeline",
    "codebuild",
    "s3",
    "iam",
    "sts",
    "lambda",
    "cloudwatch",
    "codecommit",
    "codestar-connections",
    "codeconnections",
    "events",
    "ssm",
    "ecr",
    "ecs",
    "codedeploy",
];

/// What the admin routes read.
pub struct AdminState {
    /// The history of executions.
    pub history: HistoryReader,
    /// Builds, for their output.
    pub codebuild: Arc<CodeBuild>,
    /// The data dir, for Lambda's invocation logs.
    pub data_dir: std::path::PathBuf,
    /// Pull requests on the repositories under `git_repos_dir`.
    pub pull_requests: Arc<PullRequests>,
    /// Where those repositories are, if anywhere.
    pub git_repos_dir: Option<std::path::PathBuf>,
}

/// Adds the admin routes to an app.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AdminState>) {
    cfg.app_data(state)
        .route(HEALTH_PATH, web::get().to(health))
        .route(
            &format!("{HISTORY_PREFIX}/{{resource}}"),
            web::get().to(history_api),
        )
        .route(BUILD_LOG_PATH, web::get().to(build_log))
        .route(LAMBDA_LOG_PATH, web::get().to(lambda_log))
        .route(PULL_REQUESTS_PATH, web::get().to(list_pull_requests))
        .route(PULL_REQUESTS_PATH, web::post().to(open_pull_request))
        .route(
            &format!("{PULL_REQUESTS_PATH}/close"),
            web::post().to(close_pull_request),
        );
}

/// `{"pullRequests": [...]}`: the pull requests of `?repository=` (of every repository without
/// it), oldest first.
async fn list_pull_requests(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let params = crate::aws::query::parse_form(req.query_string());
    let list: Vec<serde_json::Value> = match params.get("repository") {
        Some(repository) => state
            .pull_requests
            .of(repository)
            .iter()
            .map(|p| p.to_json(repository))
            .collect(),
        None => state
            .pull_requests
            .all()
            .iter()
            .flat_map(|(r, prs)| prs.values().map(move |p| p.to_json(r)))
            .collect(),
    };
    HttpResponse::Ok().json(serde_json::json!({ "pullRequests": list }))
}

/// The JSON body of a pull-request change. Only `application/json` is taken, so that a web page
/// elsewhere cannot post one (a browser sends that type cross-origin only after asking).
fn pull_request_body(req: &HttpRequest, body: &[u8]) -> Result<serde_json::Value, (u16, String)> {
    let json_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return Err((415, "the body must be application/json".into()));
    }
    serde_json::from_slice(body).map_err(|e| (400, format!("the body is not JSON: {e}")))
}

fn pull_request_answer(
    repository: &str,
    done: Result<crate::connections::pull_requests::PullRequest, (u16, String)>,
) -> HttpResponse {
    match done {
        Ok(pr) => {
            HttpResponse::Ok().json(serde_json::json!({"pullRequest": pr.to_json(repository)}))
        }
        Err((status, message)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .json(serde_json::json!({ "message": message })),
    }
}

/// Opens a pull request: `{"repository", "sourceBranch", "destinationBranch", "title"}`.
async fn open_pull_request(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let body = match pull_request_body(&req, &body) {
        Ok(b) => b,
        Err(refused) => return pull_request_answer("", Err(refused)),
    };
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let repository = text("repository");
    let done = state
        .pull_requests
        .open(
            state.git_repos_dir.as_deref(),
            &repository,
            &text("sourceBranch"),
            &text("destinationBranch"),
            &text("title"),
        )
        .await;
    pull_request_answer(&repository, done)
}

/// Closes a pull request: `{"repository", "pullRequestId"}`.
async fn close_pull_request(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let body = match pull_request_body(&req, &body) {
        Ok(b) => b,
        Err(refused) => return pull_request_answer("", Err(refused)),
    };
    let repository = body["repository"].as_str().unwrap_or_default().to_string();
    let number = match &body["pullRequestId"] {
        serde_json::Value::String(s) => s.parse().ok(),
        n => n.as_u64(),
    };
    let Some(number) = number else {
        return pull_request_answer("", Err((400, "pullRequestId must be a number".into())));
    };
    let done = state
        .pull_requests
        .close(state.git_repos_dir.as_deref(), &repository, number)
        .await;
    pull_request_answer(&repository, done)
}

/// The invocation logs of a function (its last 10) or of one request: `{"text"}`.
async fn lambda_log(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let params = crate::aws::query::parse_form(req.query_string());
    let name = params.get("name").cloned().unwrap_or_default();
    let dir = state.data_dir.clone();
    let found = web::block(move || crate::lambda::find_logs(&dir, &name, 10)).await;
    match found {
        Ok(found) if !found.is_empty() => {
            let text: Vec<u8> = found.into_iter().flat_map(|(_, text)| text).collect();
            HttpResponse::Ok().json(serde_json::json!({"text": String::from_utf8_lossy(&text)}))
        }
        Ok(_) => HttpResponse::NotFound().json(serde_json::json!({
            "message": "no Lambda function or request of that name has output"
        })),
        Err(e) => {
            HttpResponse::InternalServerError().json(serde_json::json!({"message": e.to_string()}))
        }
    }
}

/// The read-only history API (what the `history`, `replay`, `diff` and `export` commands ask).
async fn history_api(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let resource = req
        .path()
        .strip_prefix(HISTORY_PREFIX)
        .unwrap_or_default()
        .to_string();
    let query = req.query_string().to_string();
    // Reading finished executions folds them from the log: off the HTTP worker.
    let answered =
        web::block(move || crate::history::answer(&state.history, &resource, &query)).await;
    match answered {
        Ok((status, body)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .json(body),
        Err(e) => {
            HttpResponse::InternalServerError().json(serde_json::json!({"message": e.to_string()}))
        }
    }
}

/// A build's output from an offset: `{"text", "nextOffset", "complete"}`.
async fn build_log(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let params = crate::aws::query::parse_form(req.query_string());
    let id = params.get("id").cloned().unwrap_or_default();
    let offset = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    match state.codebuild.log_from(&id, offset) {
        Some((text, next, complete)) => HttpResponse::Ok()
            .json(serde_json::json!({"text": text, "nextOffset": next, "complete": complete})),
        None => HttpResponse::NotFound()
            .json(serde_json::json!({"message": format!("build {id} does not exist")})),
    }
}

/// `{"status", "services", "events"}`: every service served, and the position of the last event
/// in the log (how much history the data dir holds).
async fn health(state: web::Data<AdminState>) -> HttpResponse {
    let services: serde_json::Map<String, serde_json::Value> = SERVICES
        .iter()
        .map(|s| (s.to_string(), "running".into()))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({
        "status": "running",
        "services": services,
        "events": state.history.last_position(),
    }))
}
