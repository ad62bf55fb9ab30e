//! The CodeBuild action (`Build` and `Test` categories): runs a build of `ProjectName` on the
//! action's input artifacts (unzipped into `CODEBUILD_SRC_DIR`, the others into
//! `CODEBUILD_SRC_DIR_<artifact>`), with `EnvironmentVariables` (a JSON array, already resolved),
//! packs the buildspec's `artifacts` into the output artifact as a zip, and gives the build's
//! exported variables as the action's output variables. `externalExecutionId` is the build id.

use std::path::Path;

use super::{body_of, failed, read_artifact, store_failure, ActionContext};
use crate::codebuild::artifacts::pack;
use crate::codebuild::StartOptions;
use crate::codepipeline::execution::{ActionOutput, ActionRun, ErrorDetails};
use crate::s3::objects::PutAttributes;

pub(super) async fn run(
    ctx: &ActionContext,
    run: &ActionRun,
) -> Result<ActionOutput, ErrorDetails> {
    let config = &run.input.resolved_configuration;
    let project = config
        .get("ProjectName")
        .ok_or_else(|| failed("ProjectName is not configured"))?;
    if config
        .get("BatchEnabled")
        .is_some_and(|b| b.eq_ignore_ascii_case("true"))
    {
        return Err(failed(
            "Batch builds (BatchEnabled) are not supported by codepipeline-local yet",
        ));
    }
    let env_overrides: Vec<serde_json::Value> = match config.get("EnvironmentVariables") {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).map_err(|e| {
            failed(format!(
                "EnvironmentVariables is not a JSON array of name, value and type: {e}"
            ))
        })?,
        _ => Vec::new(),
    };
    // The primary source first.
    let mut inputs = run.input.input_artifacts.clone();
    if let Some(primary) = config.get("PrimarySource") {
        if let Some(i) = inputs.iter().position(|a| &a.name == primary) {
            let p = inputs.remove(i);
            inputs.insert(0, p);
        }
    }
    let mut sources = Vec::new();
    for artifact in &inputs {
        let bytes = read_artifact(ctx, artifact).await?;
        // CodeBuild reads its input artifacts as zip archives.
        let files = super::s3_deploy::unzip(&bytes, &artifact.name)
            .map_err(|e| failed(format!("CLIENT_ERROR in DOWNLOAD_SOURCE: {}", e.message)))?;
        sources.push((artifact.name.clone(), files));
    }
    let started = ctx
        .codebuild
        .start(StartOptions {
            account: crate::aws::scope::DEFAULT_ACCOUNT.to_string(),
            region: run.input.region.clone(),
            project: project.clone(),
            buildspec_override: None,
            env_overrides,
            timeout_override: None,
            initiator: format!("codepipeline/{}", run.stage),
            sources,
        })
        .await
        .map_err(|e| {
            failed(format!(
                "The build of {project} did not start: {}",
                e.message
            ))
        })?;
    let id = started.id.clone();
    ctx.codebuild.serve_action(&run.id, Some(&id));
    let _ = started.done.await;
    ctx.codebuild.serve_action(&run.id, None);
    let build = ctx
        .codebuild
        .build_in(&run.input.region, &id)
        .ok_or_else(|| failed(format!("The build {id} was lost")))?;
    let status = build["buildStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if status != "SUCCEEDED" {
        let phase = build["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                matches!(
                    p["phaseStatus"].as_str(),
                    Some("FAILED" | "STOPPED" | "TIMED_OUT")
                )
            })
            .and_then(|p| p["phaseType"].as_str())
            .unwrap_or("BUILD")
            .to_string();
        let tail = last_lines(&ctx.codebuild.log_file(&id), 5);
        return Err(ErrorDetails {
            code: "JobFailed".into(),
            message: format!(
                "Build {id} {} in phase {phase}. Last lines of its output:\n{tail}",
                status.to_lowercase()
            ),
        });
    }
    // Output artifacts, each a zip: one named like a secondary artifact's identifier gets that
    // one's files; the others (the only one, usually) the buildspec's `artifacts`.
    for output in &run.planned_outputs {
        let section = started
            .spec
            .secondary_artifacts
            .iter()
            .find(|(id, _)| *id == output.name)
            .map(|(_, a)| a)
            .or(started.spec.artifacts.as_ref());
        let zip = pack(&started.src_dir, section)
            .map_err(|e| failed(format!("UPLOAD_ARTIFACTS: {e}")))?;
        let location = &output.s3location;
        ctx.objects
            .put(
                &location.bucket,
                &location.key,
                &PutAttributes::default(),
                body_of(zip.into()),
            )
            .await
            .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    }
    let output_variables = build["exportedEnvironmentVariables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_string(),
                v["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    Ok(ActionOutput {
        output_artifacts: run.planned_outputs.clone(),
        external_execution_id: Some(id),
        external_execution_summary: Some("Build succeeded".into()),
        output_variables,
        revision: None,
    })
}

/// The last `n` lines of a file.
fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
