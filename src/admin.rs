//! The local admin surface: routes that are not AWS's (health, the read-only history API, build
//! output) and the names both the server and the command line use for them.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::codebuild::CodeBuild;
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
pub const SERVICES: &[&str] = &["codepipeline", "codebuild", "s3", "iam", "sts", "lambda"];

/// What the admin routes read.
pub struct AdminState {
    /// The history of executions.
    pub history: HistoryReader,
    /// Builds, for their output.
    pub codebuild: Arc<CodeBuild>,
    /// The data dir, for Lambda's invocation logs.
    pub data_dir: std::path::PathBuf,
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
        .route(LAMBDA_LOG_PATH, web::get().to(lambda_log));
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
