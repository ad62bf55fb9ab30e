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
//! - Run: S3 source, S3 deploy (with `Extract` true or false), CloudFormation deploy (on the
//!   embedded CloudFormation), manual approval (no notifications are sent), CodeBuild (builds run here, see `crate::codebuild`), the Lambda invoke action
//!   (functions run here, in the embedded Lambda), and custom and third-party actions (their job
//!   workers do the work). Every other provider fails its action with a
//!   message naming it.

pub mod archive;
mod cloudformation;
mod codebuild;
mod ecr_source;
mod ecs_deploy;
mod git_source;
mod job_worker;
mod lambda_invoke;
mod manual_approval;
mod s3_deploy;
mod s3_source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

pub use self::cloudformation::{StackRequest, StackResult, Stacks};
pub use self::ecr_source::{ImageInfo, Images};
pub use self::ecs_deploy::Containers;
pub use self::git_source::{
    commit, git, repository_dir, CommitInfo, ConnectionLookup, RepositoryLookup,
};
pub use self::lambda_invoke::Functions;
use super::action_types::{ActionTypeSpec, CATALOG};
use super::execution::{
    ActionInput, ActionOutput, ArtifactDetail, CurrentJob, ErrorDetails, ExecutionDetails,
};
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
    /// Its current job, for an action run by a job worker or a Lambda function.
    pub job: Option<CurrentJob>,
    /// Where its executor reports how it goes.
    pub progress: Progress,
    /// For the Commands action: its shell commands (variables resolved), the output variables
    /// it exports, and the files of each output artifact.
    pub commands: Commands,
}

/// What a Commands action declares beside its configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commands {
    /// Its shell commands, variables resolved.
    pub commands: Vec<String>,
    /// The environment variables it exports as output variables.
    pub output_variables: Vec<String>,
    /// The files (globs) of each output artifact, by name.
    pub files: BTreeMap<String, Vec<String>>,
}

/// Where an executor reports how its running action goes (the id of the build it started),
/// recorded as the action's progress: GetPipelineState shows it before the action ends.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(ExecutionDetails) + Send + Sync>>);

impl Progress {
    /// Reports through `report`.
    pub fn new(report: impl Fn(ExecutionDetails) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(report)))
    }

    /// Reports `details` (nowhere, for a job no execution runs).
    pub fn report(&self, details: ExecutionDetails) {
        if let Some(report) = &self.0 {
            report(details);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress"
        } else {
            "Progress(none)"
        })
    }
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
    /// What runs custom actions (their types are the accounts' own, not in the catalogue).
    custom: Option<Arc<dyn ActionExecutor>>,
    /// What evaluates the condition rules decided outside the execution.
    rules: Option<super::rules::RuleEvaluators>,
}

/// What the executors drive.
#[derive(Clone)]
pub struct Services {
    /// Sources and artifacts.
    pub objects: Arc<dyn ObjectStore>,
    /// Builds, for the CodeBuild action.
    pub builds: Arc<dyn Builds>,
    /// Where artifacts are unpacked while an action uses them (under the data dir).
    pub scratch: PathBuf,
    /// What an artifact may unpack to.
    pub zip_limits: archive::ZipLimits,
    /// How long a custom or third-party action waits for its job worker.
    pub job_timeout: std::time::Duration,
    /// Lambda, for the Lambda invoke action.
    pub lambda: Arc<dyn Functions>,
    /// How long a job of the Lambda invoke action waits for its function's result.
    pub lambda_job_timeout: std::time::Duration,
    /// CloudWatch's alarms, for the CloudWatchAlarm rule.
    pub alarms: Arc<dyn super::rules::AlarmStates>,
    /// The connections, for the connection source action.
    pub connections: Arc<dyn ConnectionLookup>,
    /// Where that action's repositories are.
    pub git_repos_dir: Option<PathBuf>,
    /// CodeCommit's repositories, for the CodeCommit source action.
    pub repositories: Arc<dyn RepositoryLookup>,
    /// CloudFormation, for the CloudFormation deploy action.
    pub stacks: Arc<dyn Stacks>,
    /// ECR's images, for the ECR source action.
    pub images: Arc<dyn Images>,
    /// ECS, for the ECS deploy action.
    pub containers: Arc<dyn Containers>,
}

/// Where and within which limits an executor unpacks artifacts.
#[derive(Debug, Clone)]
struct Unpacking {
    scratch: PathBuf,
    limits: archive::ZipLimits,
}

impl Unpacking {
    /// Unpacks the artifact `bytes` into a fresh scratch directory, off the async threads.
    async fn unpack(
        &self,
        bytes: Bytes,
        artifact: &str,
    ) -> Result<(archive::Scratch, Vec<archive::Unpacked>), ErrorDetails> {
        let scratch = archive::Scratch::new(&self.scratch)
            .map_err(|e| failed(format!("No room to unpack {artifact}: {e}")))?;
        let dir = scratch.path().to_path_buf();
        let (limits, name) = (self.limits, artifact.to_string());
        let files =
            tokio::task::spawn_blocking(move || archive::unpack(&bytes, &name, &dir, &limits))
                .await
                .map_err(|e| failed(format!("Unpacking {artifact} failed: {e}")))??;
        Ok((scratch, files))
    }
}

impl Services {
    fn unpacking(&self) -> Unpacking {
        Unpacking {
            scratch: self.scratch.clone(),
            limits: self.zip_limits,
        }
    }
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
            s3_deploy::S3Deploy::new(objects.clone(), services.unpacking()),
        );
        registry.register("Approval", "AWS", "Manual", manual_approval::ManualApproval);
        registry.register(
            "Deploy",
            "AWS",
            "ECS",
            ecs_deploy::EcsDeploy {
                ecs: services.containers.clone(),
                objects: objects.clone(),
            },
        );
        registry.register(
            "Deploy",
            "AWS",
            "CodeDeployToECS",
            ecs_deploy::CodeDeployToEcs {
                ecs: services.containers.clone(),
                objects: objects.clone(),
            },
        );
        registry.register(
            "Source",
            "AWS",
            "ECR",
            ecr_source::EcrSource {
                images: services.images.clone(),
                objects: objects.clone(),
            },
        );
        registry.register(
            "Deploy",
            "AWS",
            "CloudFormation",
            cloudformation::CloudFormationDeploy {
                objects: objects.clone(),
                stacks: services.stacks.clone(),
            },
        );
        registry.register(
            "Source",
            "AWS",
            "CodeCommit",
            git_source::CodeCommitSource {
                repositories: services.repositories.clone(),
                objects: objects.clone(),
                max_bytes: services.zip_limits.max_bytes,
            },
        );
        registry.register(
            "Source",
            "AWS",
            "CodeStarSourceConnection",
            git_source::GitSource {
                connections: services.connections.clone(),
                repos_dir: services.git_repos_dir.clone(),
                objects: objects.clone(),
                max_bytes: services.zip_limits.max_bytes,
            },
        );
        let build = Arc::new(codebuild::CodeBuildAction::new(
            objects,
            services.builds.clone(),
            services.unpacking(),
        ));
        registry.register_shared("Build", "AWS", "CodeBuild", build.clone());
        registry.register_shared("Test", "AWS", "CodeBuild", build.clone());
        registry.register(
            "Compute",
            "AWS",
            "Commands",
            codebuild::CommandsAction(build),
        );
        let worker: Arc<dyn ActionExecutor> = Arc::new(job_worker::JobWorker {
            timeout: services.job_timeout,
        });
        for spec in CATALOG.iter().filter(|s| s.owner == "ThirdParty") {
            registry.register_shared(spec.category, spec.owner, spec.provider, worker.clone());
        }
        registry.custom = Some(worker);
        registry.register(
            "Invoke",
            "AWS",
            "Lambda",
            lambda_invoke::LambdaInvoke {
                lambda: services.lambda.clone(),
                job_timeout: services.lambda_job_timeout,
            },
        );
        registry.rules = Some(super::rules::RuleEvaluators {
            alarms: services.alarms.clone(),
            lambda: services.lambda.clone(),
            lambda_timeout: services.lambda_job_timeout,
        });
        registry
    }

    /// Evaluates a pending condition rule (see `super::rules`).
    pub async fn evaluate_rule(&self, job: &super::rules::RuleJob) -> super::rules::RuleOutcome {
        match &self.rules {
            Some(rules) => rules.evaluate(job).await,
            None => super::rules::RuleOutcome {
                succeeded: false,
                summary: "Rules are not evaluated by this registry".into(),
            },
        }
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
            custom: None,
            rules: None,
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
        if id.owner == "Custom" {
            return self.custom.as_ref();
        }
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
            // An executor that panics fails its action with the panic's message; the execution
            // and the server go on.
            Some(executor) => std::panic::AssertUnwindSafe(executor.run(job))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    log::error!(
                        "the executor of {} panicked: {message}",
                        job.input.action_type_id
                    );
                    Err(failed(format!(
                        "The action's executor failed unexpectedly: {message}"
                    )))
                }),
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

/// A body that streams a file from disk.
fn file_body(path: PathBuf) -> BodyStream {
    use tokio::io::AsyncReadExt;
    let state = (path, None::<tokio::fs::File>);
    futures_util::stream::unfold(state, |(path, file)| async move {
        let mut file = match file {
            Some(f) => f,
            None => match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => return Some((Err(e.to_string()), (path, None))),
            },
        };
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), (path, Some(file))))
            }
            Err(e) => Some((Err(e.to_string()), (path, None))),
        }
    })
    .boxed()
}

/// The resolved configuration of a job.
fn config(job: &ActionJob) -> &BTreeMap<String, String> {
    &job.input.resolved_configuration
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codepipeline::model::ActionTypeId;

    struct Panics;

    impl ActionExecutor for Panics {
        fn run<'a>(
            &'a self,
            _: &'a ActionJob,
        ) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
            Box::pin(async { panic!("boom at {}", 42) })
        }
    }

    fn job(provider: &str) -> ActionJob {
        ActionJob {
            account: "000000000000".into(),
            pipeline: "p".into(),
            stage: "s".into(),
            action: "a".into(),
            action_execution_id: "id".into(),
            input: ActionInput {
                action_type_id: ActionTypeId {
                    category: "Deploy".into(),
                    owner: "AWS".into(),
                    provider: provider.into(),
                    version: "1".into(),
                },
                configuration: BTreeMap::new(),
                resolved_configuration: BTreeMap::new(),
                region: "eu-central-1".into(),
                input_artifacts: vec![],
                namespace: None,
            },
            planned_outputs: vec![],
            source_revision: None,
            started: 0.0,
            timeout_minutes: None,
            job: None,
            progress: Progress::default(),
            commands: Commands::default(),
        }
    }

    #[test]
    fn a_panicking_executor_fails_its_action_and_a_missing_one_names_the_type() {
        let mut registry = ActionRegistry::catalogue();
        registry.register("Deploy", "AWS", "S3", Panics);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(registry.run(&job("S3"))).unwrap_err();
        assert!(e.message.contains("boom at 42"), "{}", e.message);
        let e = rt
            .block_on(registry.run(&job("CloudFormation")))
            .unwrap_err();
        assert!(
            e.message.contains("Deploy/AWS/CloudFormation"),
            "{}",
            e.message
        );
        assert_eq!(
            registry.runnable().map(|s| s.provider).collect::<Vec<_>>(),
            ["S3"]
        );
    }
}
