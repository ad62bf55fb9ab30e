//! AWS CodeBuild on the same endpoint (JSON 1.1, `CodeBuild_20161006`): build projects, as the
//! CodeBuild action of pipelines will need them. Requests are checked against AWS's own model
//! (`models/codebuild-2016-10-06.json`); projects are event-sourced like pipelines.
//!
//! # LIMITATIONS
//! - Served: CreateProject, UpdateProject, BatchGetProjects, ListProjects, DeleteProject. Every
//!   other CodeBuild operation (builds among them, for now) answers `NotImplementedException`
//!   naming it.
//! - Project settings are stored and returned as given; none is evaluated yet (no builds run).

pub mod project;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, RwLock};

use actix_web::HttpResponse;
use serde_json::{json, Value};

use self::project::{project_stream, ProjectCommand, ProjectEvent, Refusal, PROJECT_STREAM_PREFIX};
use crate::aws::model::ServiceModel;
use crate::aws::{json, AwsError, RequestContext};
use crate::eventstore::{EventStore, RecordedEvent};

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/codebuild-2016-10-06.json")));

/// AWS's CodeBuild service model, compiled into the binary.
pub fn model() -> &'static ServiceModel {
    &MODEL
}

/// The operations served; the model's others answer `NotImplementedException`.
const SERVED: &[&str] = &[
    "CreateProject",
    "UpdateProject",
    "BatchGetProjects",
    "ListProjects",
    "DeleteProject",
];

/// CodeBuild projects, event-sourced.
pub struct CodeBuild {
    log: Arc<dyn EventStore>,
    /// Projects by stream.
    projects: RwLock<BTreeMap<String, Value>>,
    /// Serialises writes, so each append names the stream's current sequence.
    writes: tokio::sync::Mutex<()>,
}

impl CodeBuild {
    /// Projects from `log` (fed by [`CodeBuild::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        CodeBuild {
            log,
            projects: RwLock::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if !record.stream.starts_with(PROJECT_STREAM_PREFIX) {
            return;
        }
        if let Some(event) = ProjectEvent::from_record(record) {
            let mut projects = self.projects.write().expect("codebuild lock");
            let mut state = projects.remove(&record.stream);
            project::apply(&mut state, &event);
            if let Some(p) = state {
                projects.insert(record.stream.clone(), p);
            }
        }
    }

    /// A project by account, region and name (or ARN).
    pub fn project(&self, ctx: &RequestContext, name_or_arn: &str) -> Option<Value> {
        let name = name_or_arn.rsplit("project/").next().unwrap_or(name_or_arn);
        self.projects
            .read()
            .expect("codebuild lock")
            .get(&project_stream(&ctx.account_id, &ctx.region, name))
            .cloned()
    }

    /// Serves one CodeBuild request: `target` is the `X-Amz-Target` header, `body` the JSON.
    pub async fn handle(&self, ctx: &RequestContext, target: &str, body: &[u8]) -> HttpResponse {
        match self.serve(ctx, target, body).await {
            Ok(value) => match serde_json::to_vec(&value) {
                Ok(bytes) => json::ok(ctx, actix_web::web::Bytes::from(bytes)),
                Err(e) => json::error(ctx, &AwsError::internal(e.to_string())),
            },
            Err(err) => {
                if err.status >= 500 {
                    log::error!("{target}: {err}");
                }
                json::error(ctx, &err)
            }
        }
    }

    async fn serve(
        &self,
        ctx: &RequestContext,
        target: &str,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let model = model();
        let op = target
            .strip_prefix(model.target_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|op| model.operations().iter().any(|o| o == op))
            .ok_or_else(|| {
                AwsError::new(
                    "UnknownOperationException",
                    format!("Operation {target} is not known to CodeBuild"),
                )
            })?;
        if !SERVED.contains(&op) {
            return Err(AwsError::not_supported("CodeBuild", op));
        }
        let input = json::parse_body(body)?;
        // CodeBuild names every malformed input InvalidInputException.
        model.validate_input(op, &input).map_err(|e| {
            if e.code == "ValidationException" {
                AwsError::new("InvalidInputException", e.message)
            } else {
                e
            }
        })?;
        match op {
            "CreateProject" => self.create_project(ctx, input).await,
            "UpdateProject" => self.update_project(ctx, input).await,
            "DeleteProject" => self.delete_project(ctx, input).await,
            "BatchGetProjects" => Ok(self.batch_get_projects(ctx, &input)),
            "ListProjects" => self.list_projects(ctx, &input),
            other => Err(AwsError::not_supported("CodeBuild", other)),
        }
    }

    fn arn(ctx: &RequestContext, name: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:project/{name}",
            ctx.region, ctx.account_id
        )
    }

    /// Decides and records a command on a project's stream; returns its state after.
    async fn execute(
        &self,
        ctx: &RequestContext,
        name: &str,
        command: ProjectCommand,
    ) -> Result<Option<Value>, AwsError> {
        let stream = project_stream(&ctx.account_id, &ctx.region, name);
        let _writes = self.writes.lock().await;
        let mut state = self
            .projects
            .read()
            .expect("codebuild lock")
            .get(&stream)
            .cloned();
        let events = project::handle(&state, command).map_err(|refusal| match refusal {
            Refusal::Exists(_) => AwsError::new(
                "ResourceAlreadyExistsException",
                format!("Project already exists: {}", Self::arn(ctx, name)),
            ),
            Refusal::Missing(_) => AwsError::new(
                "ResourceNotFoundException",
                format!("Project not found: {}", Self::arn(ctx, name)),
            ),
        })?;
        if events.is_empty() {
            return Ok(state);
        }
        let internal = |e: crate::eventstore::StoreError| AwsError::internal(e.to_string());
        let head = self
            .log
            .read_stream(&stream, 1)
            .map_err(internal)?
            .last()
            .map_or(0, |r| r.sequence);
        let recorded = self
            .log
            .append_durable(
                &stream,
                head,
                events.iter().map(ProjectEvent::to_new_event).collect(),
            )
            .await
            .map_err(internal)?;
        recorded.iter().for_each(|r| self.apply(r));
        events.iter().for_each(|e| project::apply(&mut state, e));
        Ok(state)
    }

    async fn create_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = input["name"].as_str().unwrap_or_default().to_string();
        let command = ProjectCommand::Create {
            arn: Self::arn(ctx, &name),
            encryption_key: format!("arn:aws:kms:{}:{}:alias/aws/s3", ctx.region, ctx.account_id),
            input,
            at: crate::aws::now_epoch(),
        };
        let project = self.execute(ctx, &name, command).await?;
        Ok(json!({ "project": project }))
    }

    async fn update_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = input["name"].as_str().unwrap_or_default();
        let name = name.rsplit("project/").next().unwrap_or(name).to_string();
        let command = ProjectCommand::Update {
            input,
            at: crate::aws::now_epoch(),
        };
        let project = self.execute(ctx, &name, command).await?;
        Ok(json!({ "project": project }))
    }

    async fn delete_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = input["name"].as_str().unwrap_or_default();
        let name = name.rsplit("project/").next().unwrap_or(name).to_string();
        let command = ProjectCommand::Delete {
            at: crate::aws::now_epoch(),
        };
        self.execute(ctx, &name, command).await?;
        Ok(json!({}))
    }

    fn batch_get_projects(&self, ctx: &RequestContext, input: &Value) -> Value {
        let mut found = Vec::new();
        let mut not_found = Vec::new();
        for name in input["names"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            match self.project(ctx, name) {
                Some(p) => found.push(p),
                None => not_found.push(Value::from(name)),
            }
        }
        json!({"projects": found, "projectsNotFound": not_found})
    }

    fn list_projects(&self, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
        let prefix = project_stream(&ctx.account_id, &ctx.region, "");
        let mut projects: Vec<Value> = self
            .projects
            .read()
            .expect("codebuild lock")
            .range(prefix.clone()..)
            .take_while(|(stream, _)| stream.starts_with(&prefix))
            .map(|(_, p)| p.clone())
            .collect();
        let key = match input["sortBy"].as_str().unwrap_or("NAME") {
            "CREATED_TIME" => "created",
            "LAST_MODIFIED_TIME" => "lastModified",
            _ => "name",
        };
        projects.sort_by(|a, b| match key {
            "name" => a["name"].as_str().cmp(&b["name"].as_str()),
            k => a[k]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b[k].as_f64().unwrap_or(0.0)),
        });
        if input["sortOrder"] == "DESCENDING" {
            projects.reverse();
        }
        let names: Vec<String> = projects
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .collect();
        let start = match input["nextToken"].as_str() {
            Some(token) => {
                let after = crate::codepipeline::api::token::decode(token)
                    .map_err(|_| AwsError::new("InvalidInputException", "Invalid next token"))?;
                names
                    .iter()
                    .position(|n| *n == after)
                    .map(|p| p + 1)
                    .ok_or_else(|| AwsError::new("InvalidInputException", "Invalid next token"))?
            }
            None => 0,
        };
        let page: Vec<&String> = names.iter().skip(start).take(100).collect();
        let mut out = json!({ "projects": page });
        if start + page.len() < names.len() {
            if let Some(last) = page.last() {
                out["nextToken"] = crate::codepipeline::api::token::encode(last).into();
            }
        }
        Ok(out)
    }
}
