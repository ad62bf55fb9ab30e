//! The CodeBuild action (`Build` and `Test` categories): runs a build of `ProjectName` on the
//! action's input artifacts (unzipped into `CODEBUILD_SRC_DIR`, the others into
//! `CODEBUILD_SRC_DIR_<artifact>`), with `EnvironmentVariables` (a JSON array, already resolved),
//! packs the buildspec's `artifacts` into the output artifact as a zip, and gives the build's
//! exported variables as the action's output variables. `externalExecutionId` is the build id.

use std::io::Write;
use std::path::Path;

use super::{body_of, failed, read_all, store_failure, ActionContext};
use crate::codebuild::buildspec::Artifacts;
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
        let location = &artifact.s3location;
        let (_, body) = ctx
            .objects
            .get(&location.bucket, &location.key, None)
            .await
            .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
        let bytes = read_all(body).await?;
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

/// A buildspec `files` pattern as a regular expression over paths relative to the base dir.
fn pattern(glob: &str) -> Result<regex::Regex, String> {
    let glob = glob.trim_start_matches("./");
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("the files pattern {glob} is not valid: {e}"))
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, base, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// An output artifact: the files an `artifacts` section names, zipped.
fn pack(src_dir: &Path, section: Option<&Artifacts>) -> Result<Vec<u8>, String> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        if let Some(artifacts) = section {
            let base = match &artifacts.base_directory {
                Some(b) => src_dir.join(b),
                None => src_dir.to_path_buf(),
            };
            let patterns = artifacts
                .files
                .iter()
                .map(|f| pattern(f))
                .collect::<Result<Vec<_>, _>>()?;
            let mut files = Vec::new();
            walk(&base, &base, &mut files);
            files.sort();
            let mut written = std::collections::BTreeSet::new();
            for rel in files
                .iter()
                .filter(|f| patterns.iter().any(|p| p.is_match(f)))
            {
                let name = if artifacts.discard_paths {
                    rel.rsplit('/').next().unwrap_or(rel).to_string()
                } else {
                    rel.clone()
                };
                if !written.insert(name.clone()) {
                    continue;
                }
                let content = std::fs::read(base.join(rel)).map_err(|e| e.to_string())?;
                zip.start_file(name, zip::write::SimpleFileOptions::default())
                    .map_err(|e| e.to_string())?;
                zip.write_all(&content).map_err(|e| e.to_string())?;
            }
        }
        zip.finish().map_err(|e| e.to_string())?;
    }
    Ok(buffer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::pattern;

    #[test]
    fn files_patterns_match_as_codebuild_reads_them() {
        assert!(pattern("**/*").unwrap().is_match("a/b/c.txt"));
        assert!(pattern("**/*").unwrap().is_match("c.txt"));
        assert!(pattern("out/*").unwrap().is_match("out/a.txt"));
        assert!(!pattern("out/*").unwrap().is_match("out/x/a.txt"));
        assert!(pattern("*.txt").unwrap().is_match("a.txt"));
        assert!(!pattern("*.txt").unwrap().is_match("dir/a.txt"));
        assert!(pattern("dist/**/*.js").unwrap().is_match("dist/x/y/app.js"));
    }
}
