//! The CodeBuild API: each request is parsed once into an [`Operation`], checked against the
//! service model, then dispatched once to its `handle_*` function. Only this layer knows AWS
//! error codes: project refusals, build failures and store errors are mapped here.

use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::port::BuildError;
use super::project::{ProjectCommand, Refusal};
use super::{model, project_name, CodeBuild, ProjectFailure, StartOptions};
use crate::aws::service::{self, operations};
use crate::aws::{json, pagination, AwsError, RequestContext};

operations!(
    /// The CodeBuild operations served; the model's others answer `NotImplementedException`.
    Operation {
        CreateProject,
        UpdateProject,
        BatchGetProjects,
        ListProjects,
        DeleteProject,
        StartBuild,
        BatchGetBuilds,
        ListBuilds,
        ListBuildsForProject,
        StopBuild,
    }
);

type Reply = Result<Value, AwsError>;

/// Serves one CodeBuild request: `target` is the `X-Amz-Target` header, `body` the JSON.
pub async fn handle(
    cb: &Arc<CodeBuild>,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let answer = serve(cb, ctx, target, body).await.and_then(|value| {
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| AwsError::internal(e.to_string()))
    });
    service::respond(ctx, target, answer)
}

/// One operation called in-process (CloudFormation's providers), with AWS's JSON input: the
/// same path a client's request takes.
pub async fn call(
    cb: &Arc<CodeBuild>,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Reply {
    let target = format!("{}.{operation}", model().target_prefix);
    serve(cb, ctx, &target, input.to_string().as_bytes()).await
}

async fn serve(cb: &Arc<CodeBuild>, ctx: &RequestContext, target: &str, body: &[u8]) -> Reply {
    let model = model();
    let op = service::operation("CodeBuild", model, target, Operation::from_name)?;
    let input = json::parse_body(body)?;
    // CodeBuild names every malformed input InvalidInputException.
    model.validate_input(op.name(), &input).map_err(|e| {
        if e.code == "ValidationException" {
            AwsError::new("InvalidInputException", e.message)
        } else {
            e
        }
    })?;
    use Operation::*;
    match op {
        CreateProject => handle_create_project(cb, ctx, input).await,
        UpdateProject => handle_update_project(cb, ctx, input).await,
        DeleteProject => handle_delete_project(cb, ctx, input).await,
        BatchGetProjects => Ok(handle_batch_get_projects(cb, ctx, &input)),
        ListProjects => handle_list_projects(cb, ctx, &input),
        StartBuild => handle_start_build(cb, ctx, &input).await,
        BatchGetBuilds => Ok(handle_batch_get_builds(cb, ctx, &input)),
        ListBuilds => handle_list_builds(cb, ctx, &input, None),
        ListBuildsForProject => {
            let name = input["projectName"].as_str().unwrap_or_default();
            if cb.project(ctx, name).is_none() {
                return Err(AwsError::new(
                    "ResourceNotFoundException",
                    format!("Project cannot be found: {}", CodeBuild::arn(ctx, name)),
                ));
            }
            handle_list_builds(cb, ctx, &input, Some(project_name(name)))
        }
        StopBuild => handle_stop_build(cb, ctx, &input).await,
    }
}

/// Maps a project command's failure to AWS's codes.
fn project_failure(e: ProjectFailure, ctx: &RequestContext, name: &str) -> AwsError {
    match e {
        ProjectFailure::Refused(Refusal::Exists(_)) => AwsError::new(
            "ResourceAlreadyExistsException",
            format!("Project already exists: {}", CodeBuild::arn(ctx, name)),
        ),
        ProjectFailure::Refused(Refusal::Missing(_)) => AwsError::new(
            "ResourceNotFoundException",
            format!("Project not found: {}", CodeBuild::arn(ctx, name)),
        ),
        ProjectFailure::Store(e) => AwsError::internal(e.to_string()),
    }
}

/// Maps a build that did not start to AWS's codes.
fn build_error(e: BuildError) -> AwsError {
    match e {
        BuildError::ProjectNotFound(m) => AwsError::new("ResourceNotFoundException", m),
        BuildError::Invalid(m) => AwsError::new("InvalidInputException", m),
        BuildError::BuildsOff(m) => AwsError::new("AccountLimitExceededException", m),
        BuildError::Failed(m) => AwsError::internal(m),
    }
}

async fn execute(
    cb: &CodeBuild,
    ctx: &RequestContext,
    name: &str,
    command: ProjectCommand,
) -> Result<Option<Value>, AwsError> {
    cb.execute(&ctx.account_id, &ctx.region, name, command)
        .await
        .map_err(|e| project_failure(e, ctx, name))
}

async fn handle_create_project(cb: &CodeBuild, ctx: &RequestContext, input: Value) -> Reply {
    let name = input["name"].as_str().unwrap_or_default().to_string();
    let command = ProjectCommand::Create {
        arn: CodeBuild::arn(ctx, &name),
        encryption_key: format!("arn:aws:kms:{}:{}:alias/aws/s3", ctx.region, ctx.account_id),
        input,
        at: crate::aws::now_epoch(),
    };
    let project = execute(cb, ctx, &name, command).await?;
    Ok(json!({ "project": project }))
}

async fn handle_update_project(cb: &CodeBuild, ctx: &RequestContext, input: Value) -> Reply {
    let name = project_name(input["name"].as_str().unwrap_or_default()).to_string();
    let command = ProjectCommand::Update {
        input,
        at: crate::aws::now_epoch(),
    };
    let project = execute(cb, ctx, &name, command).await?;
    Ok(json!({ "project": project }))
}

async fn handle_delete_project(cb: &CodeBuild, ctx: &RequestContext, input: Value) -> Reply {
    let name = project_name(input["name"].as_str().unwrap_or_default()).to_string();
    let command = ProjectCommand::Delete {
        at: crate::aws::now_epoch(),
    };
    execute(cb, ctx, &name, command).await?;
    Ok(json!({}))
}

fn handle_batch_get_projects(cb: &CodeBuild, ctx: &RequestContext, input: &Value) -> Value {
    let mut found = Vec::new();
    let mut not_found = Vec::new();
    for name in input["names"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        match cb.project(ctx, name) {
            Some(p) => found.push(p),
            None => not_found.push(Value::from(name)),
        }
    }
    json!({"projects": found, "projectsNotFound": not_found})
}

/// A page of at most 100 `names` after the one the request's `nextToken` names, under `field`.
fn page(names: &[String], input: &Value, field: &str) -> Reply {
    let start = pagination::start_after(
        names.iter().map(String::as_str),
        input["nextToken"].as_str(),
    )
    .ok_or_else(|| AwsError::new("InvalidInputException", "Invalid next token"))?;
    let page: Vec<&String> = names.iter().skip(start).take(100).collect();
    let mut out = json!({ field: page });
    if start + page.len() < names.len() {
        if let Some(last) = page.last() {
            out["nextToken"] = pagination::encode(last).into();
        }
    }
    Ok(out)
}

fn handle_list_projects(cb: &CodeBuild, ctx: &RequestContext, input: &Value) -> Reply {
    let mut projects = cb.projects_in(&ctx.account_id, &ctx.region);
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
    page(&names, input, "projects")
}

async fn handle_start_build(cb: &Arc<CodeBuild>, ctx: &RequestContext, input: &Value) -> Reply {
    let started = cb
        .start(StartOptions {
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            project: input["projectName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            inline_project: None,
            buildspec_override: input["buildspecOverride"].as_str().map(str::to_string),
            env_overrides: input["environmentVariablesOverride"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            timeout_override: input["timeoutInMinutesOverride"].as_u64(),
            initiator: input["initiator"]
                .as_str()
                .unwrap_or("codepipeline-local")
                .to_string(),
            sources: Vec::new(),
        })
        .await
        .map_err(build_error)?;
    Ok(json!({ "build": started.build }))
}

fn handle_batch_get_builds(cb: &CodeBuild, ctx: &RequestContext, input: &Value) -> Value {
    let mut found = Vec::new();
    let mut not_found = Vec::new();
    for id in input["ids"].as_array().into_iter().flatten() {
        let id = id.as_str().unwrap_or_default();
        match cb.build(ctx, id) {
            Some(b) => found.push(b),
            None => not_found.push(Value::from(id)),
        }
    }
    json!({"builds": found, "buildsNotFound": not_found})
}

fn handle_list_builds(
    cb: &CodeBuild,
    ctx: &RequestContext,
    input: &Value,
    project: Option<&str>,
) -> Reply {
    let mut ids = cb.build_ids(&ctx.account_id, &ctx.region, project);
    // Newest first unless asked otherwise, as CodeBuild lists them.
    if input["sortOrder"] != "ASCENDING" {
        ids.reverse();
    }
    page(&ids, input, "ids")
}

async fn handle_stop_build(cb: &CodeBuild, ctx: &RequestContext, input: &Value) -> Reply {
    let id = input["id"].as_str().unwrap_or_default();
    let build = cb.stop(ctx, id).await.ok_or_else(|| {
        AwsError::new(
            "ResourceNotFoundException",
            format!("Build {id} cannot be found"),
        )
    })?;
    Ok(json!({ "build": build }))
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn every_operation_served_is_one_of_the_model() {
        let model = super::model();
        for op in Operation::ALL {
            assert!(
                model.operations().iter().any(|o| o == op.name()),
                "{op:?} is not in the CodeBuild model"
            );
        }
    }
}
