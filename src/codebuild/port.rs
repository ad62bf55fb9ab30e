//! What other services ask of CodeBuild, through a trait: a pipeline's CodeBuild action starts
//! a build on its input files, waits for its outcome and packs its artifacts, without knowing
//! CodeBuild's wire JSON, state or files.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::buildspec::Buildspec;
use super::{CodeBuild, StartOptions};

/// Where `PARAMETER_STORE` variables (and a buildspec's `env.parameter-store`) are read: the
/// current value of a parameter, by name.
pub trait ParameterLookup: Send + Sync {
    /// The parameter's value, if it exists.
    fn value(&self, account: &str, region: &str, name: &str) -> Option<String>;
}

/// A build to start.
pub struct BuildRequest {
    /// Account of the project.
    pub account: String,
    /// Region of the project.
    pub region: String,
    /// Project name (or ARN).
    pub project: String,
    /// Environment variables over the project's.
    pub env_overrides: Vec<EnvironmentVariable>,
    /// Who starts it (`codepipeline/<stage>`).
    pub initiator: String,
    /// Input directories by artifact name: the first is the primary source. Their files are
    /// moved into the build's work dir.
    pub sources: Vec<(String, PathBuf)>,
    /// A project given whole (CreateProject's shape), recorded nowhere: what the Commands
    /// action builds with, in place of a project of the account.
    pub inline_project: Option<serde_json::Value>,
    /// The buildspec, over the project's.
    pub buildspec: Option<String>,
}

/// An environment variable, as CodeBuild's `EnvironmentVariable` shape (and the CodeBuild
/// action's `EnvironmentVariables` configuration) write it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnvironmentVariable {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// `PLAINTEXT`, `PARAMETER_STORE` or `SECRETS_MANAGER`.
    #[serde(rename = "type", default = "plaintext")]
    pub kind: String,
}

fn plaintext() -> String {
    "PLAINTEXT".into()
}

/// Why a build did not start.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildError {
    /// No such project.
    ProjectNotFound(String),
    /// The build cannot run as asked (its buildspec, its variables).
    Invalid(String),
    /// Builds are turned off on this server (`run_builds = false`).
    BuildsOff(String),
    /// The store or the file system failed.
    Failed(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::ProjectNotFound(m)
            | BuildError::Invalid(m)
            | BuildError::BuildsOff(m)
            | BuildError::Failed(m) => f.write_str(m),
        }
    }
}

/// How a build ended: the `StatusType` of its `buildStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    /// `SUCCEEDED`.
    Succeeded,
    /// `FAILED`.
    Failed,
    /// `FAULT`.
    Fault,
    /// `TIMED_OUT`.
    TimedOut,
    /// `STOPPED`.
    Stopped,
    /// `IN_PROGRESS` (not ended; a build is never left so once it is waited for).
    InProgress,
}

impl BuildStatus {
    /// The status as the wire writes it.
    pub fn parse(status: &str) -> BuildStatus {
        match status {
            "SUCCEEDED" => BuildStatus::Succeeded,
            "FAILED" => BuildStatus::Failed,
            "TIMED_OUT" => BuildStatus::TimedOut,
            "STOPPED" => BuildStatus::Stopped,
            "IN_PROGRESS" => BuildStatus::InProgress,
            _ => BuildStatus::Fault,
        }
    }

    /// Lower case words, for messages: `failed`, `timed out`.
    pub fn words(self) -> &'static str {
        match self {
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Fault => "faulted",
            BuildStatus::TimedOut => "timed out",
            BuildStatus::Stopped => "stopped",
            BuildStatus::InProgress => "is in progress",
        }
    }
}

/// What a build came to.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutcome {
    /// How it ended.
    pub status: BuildStatus,
    /// The phase that failed, stopped or timed out, if one did.
    pub failed_phase: Option<String>,
    /// The buildspec's exported variables, with their values.
    pub exported: Vec<(String, String)>,
    /// The last lines of its output.
    pub log_tail: String,
}

/// A started build: its id, what resolves when it ends, and its artifacts once it has.
pub struct BuildHandle {
    /// The build id (`project:uuid`).
    pub id: String,
    /// Resolves with the outcome once the build has ended.
    pub outcome: BoxFuture<'static, BuildOutcome>,
    /// Packs the build's artifacts.
    pub artifacts: BuildArtifacts,
}

/// A build's artifacts, packed on demand.
pub struct BuildArtifacts {
    spec: Buildspec,
    src_dir: PathBuf,
}

impl BuildArtifacts {
    /// A zip of the secondary artifact `identifier`, or of the buildspec's `artifacts` when no
    /// secondary artifact has that identifier.
    pub fn pack(&self, identifier: &str) -> Result<Vec<u8>, String> {
        let section = self
            .spec
            .secondary_artifacts
            .iter()
            .find(|(id, _)| id == identifier)
            .map(|(_, a)| a)
            .or(self.spec.artifacts.as_ref());
        super::artifacts::pack(&self.src_dir, section)
    }
}

/// Builds, as other services use them.
pub trait Builds: Send + Sync {
    /// Starts a build.
    fn start(&self, request: BuildRequest) -> BoxFuture<'_, Result<BuildHandle, BuildError>>;
    /// Stops a running build (its processes are ended); nothing for one that has ended.
    fn stop(&self, id: &str);
}

/// [`Builds`] over the embedded CodeBuild.
pub struct LocalBuilds(pub Arc<CodeBuild>);

/// How many lines of output a failed build's outcome carries.
const TAIL_LINES: usize = 5;

impl Builds for LocalBuilds {
    fn start(&self, request: BuildRequest) -> BoxFuture<'_, Result<BuildHandle, BuildError>> {
        Box::pin(async move {
            let codebuild = self.0.clone();
            let (account, region) = (request.account.clone(), request.region.clone());
            let started = codebuild
                .start(StartOptions {
                    account: request.account,
                    region: request.region,
                    project: request.project,
                    inline_project: request.inline_project,
                    buildspec_override: request.buildspec,
                    env_overrides: request
                        .env_overrides
                        .into_iter()
                        .map(|v| serde_json::json!({"name": v.name, "value": v.value, "type": v.kind}))
                        .collect(),
                    timeout_override: None,
                    initiator: request.initiator,
                    sources: request.sources,
                })
                .await?;
            let id = started.id.clone();
            let done = started.done;
            let outcome = {
                let id = id.clone();
                Box::pin(async move {
                    let _ = done.await;
                    codebuild.outcome(&account, &region, &id, TAIL_LINES)
                })
            };
            Ok(BuildHandle {
                id,
                outcome,
                artifacts: BuildArtifacts {
                    spec: started.spec,
                    src_dir: started.src_dir,
                },
            })
        })
    }

    fn stop(&self, id: &str) {
        self.0.stop_running(id);
    }
}
