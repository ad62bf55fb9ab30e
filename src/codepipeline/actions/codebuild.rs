//! The CodeBuild action (`Build` and `Test` categories): runs a build of `ProjectName` on the
//! action's input artifacts (unzipped into `CODEBUILD_SRC_DIR`, the others into
//! `CODEBUILD_SRC_DIR_<artifact>`), with `EnvironmentVariables` (a JSON array, already resolved),
//! packs the buildspec's `artifacts` into the output artifact as a zip, and gives the build's
//! exported variables as the action's output variables. `externalExecutionId` is the build id.
//! The project is looked up in the pipeline's account and the action's region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{
    body_of, config, failed, read_artifact, store_failure, ActionExecutor, ActionJob, Unpacking,
};
use crate::codebuild::port::{BuildRequest, BuildStatus, Builds, EnvironmentVariable};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::objects::{ObjectStore, PutAttributes};

/// Runs builds for pipeline actions.
pub(super) struct CodeBuildAction {
    objects: Arc<dyn ObjectStore>,
    builds: Arc<dyn Builds>,
    unpacking: Unpacking,
    /// The build each running action waits for, by action execution id (to stop it when the
    /// action is abandoned).
    waiting: Mutex<HashMap<String, String>>,
}

impl CodeBuildAction {
    pub(super) fn new(
        objects: Arc<dyn ObjectStore>,
        builds: Arc<dyn Builds>,
        unpacking: Unpacking,
    ) -> Self {
        CodeBuildAction {
            objects,
            builds,
            unpacking,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn waits(&self, action_execution_id: &str, build: Option<&str>) {
        let mut waiting = self.waiting.lock().expect("codebuild action builds");
        match build {
            Some(id) => waiting.insert(action_execution_id.to_string(), id.to_string()),
            None => waiting.remove(action_execution_id),
        };
    }
}

impl ActionExecutor for CodeBuildAction {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }

    fn abandon(&self, action_execution_id: &str) {
        let build = self
            .waiting
            .lock()
            .expect("codebuild action builds")
            .remove(action_execution_id);
        if let Some(build) = build {
            self.builds.stop(&build);
        }
    }
}

/// The reference a `CODEBUILD_CLONE_REF` artifact unpacked in `dir` holds, if it is one.
fn clone_reference(dir: &std::path::Path) -> Option<serde_json::Value> {
    let file = dir.join(super::git_source::CLONE_REF_FILE);
    let only = std::fs::read_dir(dir).ok()?.count() == 1;
    let text = std::fs::read_to_string(file).ok().filter(|_| only)?;
    serde_json::from_str(&text).ok()
}

impl CodeBuildAction {
    /// A clone, with its `.git`, of the repository a clone reference names, on its branch at
    /// its commit: what CodeBuild gives a build whose source is `CODEBUILD_CLONE_REF`.
    async fn clone_of(
        &self,
        reference: &serde_json::Value,
        artifact: &str,
    ) -> Result<super::archive::Scratch, ErrorDetails> {
        let text = |k: &str| reference[k].as_str().unwrap_or_default().to_string();
        let (repository, commit, branch) = (text("repository"), text("commitId"), text("branch"));
        let scratch = super::archive::Scratch::new(&self.unpacking.scratch)
            .map_err(|e| failed(format!("No room to clone {artifact}: {e}")))?;
        let dir = scratch.path().to_path_buf();
        let fail = |e: String| {
            failed(format!(
                "CLIENT_ERROR in DOWNLOAD_SOURCE: git clone of {repository} failed: {e}"
            ))
        };
        super::git(&dir, &["clone", "-q", "--no-checkout", &repository, "."])
            .await
            .map_err(fail)?;
        let checkout = if branch.is_empty() {
            vec!["checkout", "-q", commit.as_str()]
        } else {
            vec!["checkout", "-q", "-B", branch.as_str(), commit.as_str()]
        };
        super::git(&dir, &checkout).await.map_err(fail)?;
        Ok(scratch)
    }
}

/// The build an action runs: a project of the account, or (the Commands action) one given
/// whole with its buildspec.
struct Build {
    project: String,
    inline_project: Option<serde_json::Value>,
    buildspec: Option<String>,
    env_overrides: Vec<EnvironmentVariable>,
}

async fn run(ctx: &CodeBuildAction, job: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
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
    let env_overrides: Vec<EnvironmentVariable> = match config.get("EnvironmentVariables") {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).map_err(|e| {
            failed(format!(
                "EnvironmentVariables is not a JSON array of name, value and type: {e}"
            ))
        })?,
        _ => Vec::new(),
    };
    let build = Build {
        project: project.clone(),
        inline_project: None,
        buildspec: None,
        env_overrides,
    };
    run_build(ctx, job, build).await
}

/// Runs `build` on the action's input artifacts; its output artifacts and variables.
async fn run_build(
    ctx: &CodeBuildAction,
    job: &ActionJob,
    build: Build,
) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
    let project = &build.project;
    // The primary source first.
    let mut inputs = job.input.input_artifacts.clone();
    if let Some(primary) = config.get("PrimarySource") {
        if let Some(i) = inputs.iter().position(|a| &a.name == primary) {
            let p = inputs.remove(i);
            inputs.insert(0, p);
        }
    }
    // CodeBuild reads its input artifacts as zip archives, unpacked within the limits; the
    // scratch dirs go when the action ends (their files have moved into the build's).
    let mut sources = Vec::new();
    let mut scratches = Vec::new();
    for artifact in &inputs {
        let bytes = read_artifact(ctx.objects.as_ref(), artifact).await?;
        let (scratch, _) = ctx
            .unpacking
            .unpack(bytes, &artifact.name)
            .await
            .map_err(|e| failed(format!("CLIENT_ERROR in DOWNLOAD_SOURCE: {}", e.message)))?;
        let scratch = match clone_reference(scratch.path()) {
            Some(reference) => ctx.clone_of(&reference, &artifact.name).await?,
            None => scratch,
        };
        sources.push((artifact.name.clone(), scratch.path().to_path_buf()));
        scratches.push(scratch);
    }
    let handle = ctx
        .builds
        .start(BuildRequest {
            account: job.account.clone(),
            region: job.input.region.clone(),
            project: project.clone(),
            env_overrides: build.env_overrides,
            initiator: format!("codepipeline/{}", job.stage),
            sources,
            inline_project: build.inline_project,
            buildspec: build.buildspec,
        })
        .await
        .map_err(|e| failed(format!("The build of {project} did not start: {e}")))?;
    let id = handle.id.clone();
    ctx.waits(&job.action_execution_id, Some(&id));
    // The build's id shows while it runs, as on AWS.
    job.progress
        .report(crate::codepipeline::execution::ExecutionDetails {
            external_execution_id: Some(id.clone()),
            ..Default::default()
        });
    let outcome = handle.outcome.await;
    ctx.waits(&job.action_execution_id, None);
    if outcome.status != BuildStatus::Succeeded {
        let phase = outcome.failed_phase.as_deref().unwrap_or("BUILD");
        return Err(failed(format!(
            "Build {id} {} in phase {phase}. Last lines of its output:\n{}",
            outcome.status.words(),
            outcome.log_tail
        )));
    }
    // Output artifacts, each a zip: one named like a secondary artifact's identifier gets that
    // one's files; the others (the only one, usually) the buildspec's `artifacts`.
    for output in &job.planned_outputs {
        let zip = handle
            .artifacts
            .pack(&output.name)
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
    Ok(ActionOutput {
        output_artifacts: job.planned_outputs.clone(),
        external_execution_id: Some(id),
        external_execution_summary: Some("Build succeeded".into()),
        output_variables: outcome.exported.into_iter().collect(),
        revision: None,
    })
}

/// The Commands action (`Compute/AWS/Commands/1`): its shell commands run as a build of their
/// own (no project: the build is named `codepipeline-commands`), with the input artifacts in
/// its work dir; its output artifact holds the declared `files`, and its declared
/// `outputVariables` are exported from the shell as output variables. The build's output reads
/// like a build's (`codepipeline-local logs BUILD_ID`, the console's build page).
pub(super) struct CommandsAction(pub(super) Arc<CodeBuildAction>);

/// The name of the Commands action's builds.
pub const COMMANDS_BUILD: &str = "codepipeline-commands";

/// A YAML scalar: JSON's double-quoted string, which YAML reads as is.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The buildspec of a Commands action.
fn commands_buildspec(commands: &super::Commands, output: Option<&str>) -> String {
    let mut spec = String::from("version: 0.2\n");
    if !commands.output_variables.is_empty() {
        spec.push_str("env:\n  exported-variables:\n");
        for v in &commands.output_variables {
            spec.push_str(&format!("    - {}\n", quoted(v)));
        }
    }
    spec.push_str("phases:\n  build:\n    commands:\n");
    for c in &commands.commands {
        spec.push_str(&format!("      - {}\n", quoted(c)));
    }
    let files = output
        .and_then(|o| commands.files.get(o))
        .filter(|f| !f.is_empty());
    if let Some(files) = files {
        spec.push_str("artifacts:\n  files:\n");
        for f in files {
            spec.push_str(&format!("    - {}\n", quoted(f)));
        }
    }
    spec
}

impl ActionExecutor for CommandsAction {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(async move {
            if job.commands.commands.is_empty() {
                return Err(failed("The Commands action declares no commands"));
            }
            let output = job.planned_outputs.first().map(|o| o.name.as_str());
            let project = serde_json::json!({
                "name": COMMANDS_BUILD,
                "environment": {"type": "LINUX_CONTAINER", "computeType": "BUILD_GENERAL1_SMALL",
                                "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0"},
                "timeoutInMinutes": job.timeout_minutes.unwrap_or(55),
                "artifacts": {"type": "CODEPIPELINE"},
                "source": {"type": "CODEPIPELINE"},
            });
            let build = Build {
                project: COMMANDS_BUILD.to_string(),
                inline_project: Some(project),
                buildspec: Some(commands_buildspec(&job.commands, output)),
                env_overrides: Vec::new(),
            };
            run_build(&self.0, job, build).await
        })
    }

    fn abandon(&self, action_execution_id: &str) {
        self.0.abandon(action_execution_id);
    }
}
