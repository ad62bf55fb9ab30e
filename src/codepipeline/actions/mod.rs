//! Action executors: the side effects of a pipeline, one file per provider, behind one trait.
//!
//! The [`ActionRegistry`] is the one place that knows which action types exist and which run
//! here: declarations are checked against it (a provider AWS does not have is refused, artifact
//! counts and configuration must fit), ListActionTypes lists what it runs, and an action whose
//! type has no executor fails with a message naming it. A new provider is one file and one line
//! in [`ActionRegistry::new`].
//!
//! An executor takes an [`ActionJob`] (its resolved configuration, input artifacts and planned
//! output locations) and reports an output or an error; running one twice has the same effect,
//! so an action interrupted by a restart is run again. Each executor holds what it drives (the
//! object store, CodeBuild through its port) and nothing of the execution.
//!
//! # LIMITATIONS
//! - Run: S3 source, S3 deploy (with `Extract` true or false), manual approval (no notifications
//!   are sent), CodeBuild (builds run here, see `crate::codebuild`). Every other provider fails
//!   its action with a message naming it.

mod codebuild;
mod manual_approval;
mod s3_deploy;
mod s3_source;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use super::action_types::{ActionTypeSpec, CATALOG};
use super::execution::{ActionInput, ActionOutput, ArtifactDetail, ErrorDetails};
use crate::codebuild::port::Builds;
use crate::s3::objects::ObjectStore;
use crate::s3::store::{BodyStream, S3StoreError};

/// One action to run, with everything its executor may use.
#[derive(Debug, Clone)]
pub struct ActionJob {
    /// The account of the pipeline.
    pub account: String,
    /// The pipeline.
    pub pipeline: String,
    /// The stage.
    pub stage: String,
    /// The action.
    pub action: String,
    /// Its action execution id.
    pub action_execution_id: String,
    /// What it runs with: its type, configuration (declared and resolved), region, inputs.
    pub input: ActionInput,
    /// Where its output artifacts go.
    pub planned_outputs: Vec<ArtifactDetail>,
    /// For a source action: the revision to read instead of the latest.
    pub source_revision: Option<String>,
    /// When the action started (epoch seconds), for deadlines that survive a restart.
    pub started: f64,
    /// Its declared `timeoutInMinutes`.
    pub timeout_minutes: Option<u64>,
}

/// The side effects of one provider.
pub trait ActionExecutor: Send + Sync {
    /// Runs the action; resolves with its output, or why it failed.
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>>;

    /// The action was abandoned (a stop, an update): end what it started outside the pipeline.
    fn abandon(&self, _action_execution_id: &str) {}
}

/// An action type and its executor, if it runs here.
struct Entry {
    spec: &'static ActionTypeSpec,
    executor: Option<Arc<dyn ActionExecutor>>,
}

/// Every action type AWS offers, and the executors of those that run here.
pub struct ActionRegistry {
    entries: Vec<Entry>,
}

/// What the executors drive.
#[derive(Clone)]
pub struct Services {
    /// Sources and artifacts.
    pub objects: Arc<dyn ObjectStore>,
    /// Builds, for the CodeBuild action.
    pub builds: Arc<dyn Builds>,
}

impl ActionRegistry {
    /// The catalogue with the executors of the providers that run here.
    pub fn new(services: &Services) -> Self {
        let mut registry = Self::catalogue();
        let objects = services.objects.clone();
        registry.register(
            "Source",
            "AWS",
            "S3",
            s3_source::S3Source::new(objects.clone()),
        );
        registry.register(
            "Deploy",
            "AWS",
            "S3",
            s3_deploy::S3Deploy::new(objects.clone()),
        );
        registry.register("Approval", "AWS", "Manual", manual_approval::ManualApproval);
        let build = Arc::new(codebuild::CodeBuildAction::new(
            objects,
            services.builds.clone(),
        ));
        registry.register_shared("Build", "AWS", "CodeBuild", build.clone());
        registry.register_shared("Test", "AWS", "CodeBuild", build);
        registry
    }

    /// The catalogue alone: every type is known and none runs (for checking declarations).
    pub fn catalogue() -> Self {
        ActionRegistry {
            entries: CATALOG
                .iter()
                .map(|spec| Entry {
                    spec,
                    executor: None,
                })
                .collect(),
        }
    }

    fn register(
        &mut self,
        category: &str,
        owner: &str,
        provider: &str,
        executor: impl ActionExecutor + 'static,
    ) {
        self.register_shared(category, owner, provider, Arc::new(executor));
    }

    fn register_shared(
        &mut self,
        category: &str,
        owner: &str,
        provider: &str,
        executor: Arc<dyn ActionExecutor>,
    ) {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.spec.is(category, owner, provider))
            .unwrap_or_else(|| panic!("{category}/{owner}/{provider} is not in the catalogue"));
        entry.executor = Some(executor);
    }

    /// The action type, if AWS has it (custom action types are not listed here).
    pub fn find(
        &self,
        category: &str,
        owner: &str,
        provider: &str,
    ) -> Option<&'static ActionTypeSpec> {
        self.entries
            .iter()
            .find(|e| e.spec.is(category, owner, provider))
            .map(|e| e.spec)
    }

    /// The action types that run here, in catalogue order.
    pub fn runnable(&self) -> impl Iterator<Item = &'static ActionTypeSpec> + '_ {
        self.entries
            .iter()
            .filter(|e| e.executor.is_some())
            .map(|e| e.spec)
    }

    fn executor(&self, job: &ActionJob) -> Option<&Arc<dyn ActionExecutor>> {
        let id = &job.input.action_type_id;
        self.entries
            .iter()
            .find(|e| e.spec.is(&id.category, &id.owner, &id.provider))?
            .executor
            .as_ref()
    }

    /// Runs one action with its type's executor; one whose type does not run here fails,
    /// naming the type.
    pub async fn run(&self, job: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
        match self.executor(job) {
            Some(executor) => executor.run(job).await,
            None => Err(failed(format!(
                "codepipeline-local does not run actions of type {} yet",
                job.input.action_type_id
            ))),
        }
    }

    /// The action was abandoned: its executor ends what it started.
    pub fn abandon(&self, job: &ActionJob) {
        if let Some(executor) = self.executor(job) {
            executor.abandon(&job.action_execution_id);
        }
    }
}

/// A failed action's error.
fn failed(message: impl Into<String>) -> ErrorDetails {
    ErrorDetails {
        code: "JobFailed".into(),
        message: message.into(),
    }
}

/// The message for an object store failure, naming what was asked.
fn store_failure(e: S3StoreError, bucket: &str, key: &str) -> ErrorDetails {
    failed(match e {
        S3StoreError::NoSuchBucket => format!("The bucket {bucket} does not exist"),
        S3StoreError::NoSuchKey => format!("The object {key} does not exist in bucket {bucket}"),
        S3StoreError::NoSuchVersion | S3StoreError::DeleteMarker => {
            format!("The requested version of object {key} does not exist in bucket {bucket}")
        }
        other => format!("Access to s3://{bucket}/{key} failed: {other:?}"),
    })
}

/// Reads a whole object (artifacts are read once and passed on).
async fn read_all(mut body: BodyStream) -> Result<Bytes, ErrorDetails> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(failed)?);
    }
    Ok(Bytes::from(out))
}

/// The bytes of an input artifact, from the artifact store.
async fn read_artifact(
    objects: &dyn ObjectStore,
    artifact: &ArtifactDetail,
) -> Result<Bytes, ErrorDetails> {
    let location = &artifact.s3location;
    let (_, body) = objects
        .get(&location.bucket, &location.key, None)
        .await
        .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    read_all(body).await
}

fn body_of(bytes: Bytes) -> BodyStream {
    futures_util::stream::iter([Ok(bytes)]).boxed()
}

/// The files of a zip artifact, by their path inside it. An entry whose path would leave the
/// artifact's directory (`../`, an absolute path) fails the action.
fn unzip(bytes: &[u8], artifact: &str) -> Result<Vec<(String, Vec<u8>)>, ErrorDetails> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        failed(format!(
            "The input artifact {artifact} is not a zip file: {e}"
        ))
    })?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            failed(format!(
                "The input artifact {artifact} is not readable: {e}"
            ))
        })?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry.name().map(|n| n.to_string()).map_err(|e| {
            failed(format!(
                "An entry of {artifact} has an unreadable name: {e}"
            ))
        })?;
        let safe = entry
            .enclosed_name()
            .filter(|p| !raw.starts_with('/') && !raw.contains("..") && p.components().count() > 0)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .ok_or_else(|| failed(format!("The input artifact {artifact} has an entry {raw} that would be deployed outside its prefix")))?;
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut content).map_err(|e| {
            failed(format!(
                "The entry {raw} of {artifact} is not readable: {e}"
            ))
        })?;
        files.push((safe, content));
    }
    Ok(files)
}

/// The resolved configuration of a job.
fn config(job: &ActionJob) -> &BTreeMap<String, String> {
    &job.input.resolved_configuration
}
