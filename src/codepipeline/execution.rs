//! The execution aggregate: one run of a pipeline as a state machine, decided without I/O.
//!
//! Stages run in order; inside a stage, actions run in groups of equal `runOrder`, lowest first,
//! the actions of a group in parallel. A stage succeeds when all its actions succeed; the first
//! failed action fails its stage and the execution. [`handle`] turns a command into the events
//! that follow from it (starting whatever can start next); [`apply`] folds an event and cannot
//! fail. The actor runs the actions these events start and reports their results back.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::{
    Action, ActionStatus, ActionTypeId, Declaration, ExecutionMode, ExecutionStatus, RetryMode,
    StageStatus,
};
use crate::eventstore::EventType;

/// Where an artifact is, as the wire shape `ArtifactDetail` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactDetail {
    /// Artifact name.
    pub name: String,
    /// Its location in the artifact store.
    pub s3location: S3Location,
}

impl ArtifactDetail {
    /// The wire shape `Artifact` of job data: the artifact and where it is.
    pub fn job_json(&self, revision: Option<&str>) -> serde_json::Value {
        let l = &self.s3location;
        let mut a = serde_json::json!({
            "name": self.name,
            "location": {"type": "S3", "s3Location": {"bucketName": l.bucket, "objectKey": l.key}}
        });
        if let Some(revision) = revision {
            a["revision"] = revision.into();
        }
        a
    }
}

/// The artifact credentials of a job (the wire shape `AWSSessionCredentials`): AWS's shape; the
/// embedded S3 takes any credentials.
pub fn artifact_credentials(job_id: &str, action_execution_id: &str) -> serde_json::Value {
    let id_part: String = job_id
        .replace('-', "")
        .to_uppercase()
        .chars()
        .take(16)
        .collect();
    serde_json::json!({
        "accessKeyId": format!("ASIA{id_part}"),
        "secretAccessKey": format!("codepipeline-local/{action_execution_id}"),
        "sessionToken": format!("codepipeline-local-job-session/{job_id}"),
    })
}

/// An object in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
}

/// What an action ran with: the wire shape `ActionExecutionInput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionInput {
    /// The action type.
    pub action_type_id: ActionTypeId,
    /// Configuration as declared.
    pub configuration: BTreeMap<String, String>,
    /// Configuration with variables resolved.
    pub resolved_configuration: BTreeMap<String, String>,
    /// Region.
    pub region: String,
    /// Input artifacts with their locations.
    pub input_artifacts: Vec<ArtifactDetail>,
    /// The action's variable namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What an action produced: the wire shape `ActionExecutionOutput` less its error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutput {
    /// Output artifacts with their locations.
    pub output_artifacts: Vec<ArtifactDetail>,
    /// The id of the work outside the pipeline (an object version, a build id).
    #[serde(default)]
    pub external_execution_id: Option<String>,
    /// A line about what happened.
    #[serde(default)]
    pub external_execution_summary: Option<String>,
    /// Output variables.
    #[serde(default)]
    pub output_variables: BTreeMap<String, String>,
    /// For source actions: the revision they read (an S3 object version id).
    #[serde(default)]
    pub revision: Option<String>,
}

/// A job handed out for an action: to a job worker (custom and third-party actions) or to a
/// Lambda function (the Lambda invoke action). An action has one job at a time; a success with a
/// continuation token queues the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job id.
    pub id: String,
    /// What the worker acknowledges it with.
    pub nonce: String,
}

/// The job an action run has now, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentJob {
    /// The job.
    pub job: Job,
    /// The continuation token it carries (none for the first job of an action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Whether a worker acknowledged it (AcknowledgeJob).
    #[serde(default)]
    pub acknowledged: bool,
    /// The client token a third-party worker acknowledged it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// When it was queued.
    pub queued: f64,
}

/// A job's status: the wire enum `JobStatus` (`Dispatched` is known only to the polls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Acknowledged by a worker.
    InProgress,
    /// Completed with success.
    Succeeded,
    /// Failed, or its action ended otherwise.
    Failed,
    /// Not completed within its time.
    TimedOut,
}

impl JobStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "Queued",
            JobStatus::InProgress => "InProgress",
            JobStatus::Succeeded => "Succeeded",
            JobStatus::Failed => "Failed",
            JobStatus::TimedOut => "TimedOut",
        }
    }
}

/// The error code of an action whose job was not completed in time.
pub const JOB_TIMED_OUT: &str = "JobTimedOut";

/// What a worker reported about its work: the wire shape `ExecutionDetails`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetails {
    /// A summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The id of the work in the worker's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_execution_id: Option<String>,
    /// How far it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<u8>,
}

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// A code: `JobFailed`, `ConfigurationError`, …
    pub code: String,
    /// The message.
    pub message: String,
}

/// How an execution was started: the wire shape `ExecutionTrigger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `CreatePipeline`, `StartPipelineExecution`, …
    pub trigger_type: String,
    /// Details (who or what).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_detail: Option<String>,
}

/// What a rollback execution (RollbackStage) runs: one stage again, with what the target
/// execution's earlier stages produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// The execution whose run of the stage is deployed again.
    pub target: String,
    /// The stage rolled back.
    pub stage: String,
    /// How it was asked for: `ManualRollback` or `AutomatedRollback`.
    pub trigger_type: String,
    /// The outputs of the target's actions before the stage: its inputs and variables.
    pub inherited: Vec<Inherited>,
}

/// An action's output a rollback execution takes from its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inherited {
    /// The action.
    pub action: String,
    /// Its variable namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// What it produced.
    pub output: ActionOutput,
    /// When it produced it.
    pub at: f64,
}

impl Inherited {
    /// What a succeeded run of the target leaves to a rollback.
    pub fn of(run: &ActionRun) -> Option<Self> {
        Some(Inherited {
            action: run.action.clone(),
            namespace: run.input.namespace.clone(),
            output: run.output.clone()?,
            at: run.updated,
        })
    }
}

/// Everything that happens to an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecutionEvent {
    /// The execution began, running a version of the pipeline (whose declaration is in the
    /// pipeline's stream, so it is not copied here).
    Started {
        /// Execution id.
        execution_id: String,
        /// Pipeline name.
        pipeline: String,
        /// Pipeline version the execution runs.
        pipeline_version: u64,
        /// The version's execution mode (SUPERSEDED for executions recorded without one).
        #[serde(default)]
        execution_mode: ExecutionMode,
        /// How it was started.
        trigger: Trigger,
        /// Pipeline variables (V2), resolved.
        variables: BTreeMap<String, String>,
        /// Source revision overrides by action name.
        source_revisions: BTreeMap<String, String>,
        /// Idempotency token of StartPipelineExecution.
        client_request_token: Option<String>,
        /// The region the pipeline is in.
        region: String,
        /// For a rollback execution: the stage it runs and what it takes from its target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback: Option<Box<Rollback>>,
        /// When.
        at: f64,
    },
    /// The execution wants to enter a stage and waits until the pipeline lets it (a stage runs one
    /// execution at a time in SUPERSEDED and QUEUED modes).
    StageWaiting {
        /// Stage name.
        stage: String,
        /// When.
        at: f64,
    },
    /// A stage was entered.
    StageStarted {
        /// Stage name.
        stage: String,
        /// When.
        at: f64,
    },
    /// An action started; a configuration that could not be resolved fails it at once.
    ActionStarted {
        /// Stage name.
        stage: String,
        /// Action name.
        action: String,
        /// Action execution id.
        action_execution_id: String,
        /// What it runs with.
        input: ActionInput,
        /// Where its output artifacts go.
        planned_outputs: Vec<ArtifactDetail>,
        /// Set when a `#{…}` reference in the configuration could not be resolved.
        unresolved: Option<String>,
        /// The token a manual approval is answered with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The action's `timeoutInMinutes`, when declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_minutes: Option<u64>,
        /// The job queued for an action run by a job worker or a Lambda function.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<Box<Job>>,
        /// When.
        at: f64,
    },
    /// A worker acknowledged a job (AcknowledgeJob, AcknowledgeThirdPartyJob).
    JobAcknowledged {
        /// Action execution id.
        action_execution_id: String,
        /// The job.
        job_id: String,
        /// The client token of a third-party worker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_token: Option<String>,
        /// When.
        at: f64,
    },
    /// A worker reported on its work (with a continuation, or with its failure).
    JobProgressed {
        /// Action execution id.
        action_execution_id: String,
        /// What it reported.
        details: ExecutionDetails,
        /// When.
        at: f64,
    },
    /// A job succeeded with a continuation token: the next job of the action is queued with it.
    JobQueued {
        /// Action execution id.
        action_execution_id: String,
        /// The new job.
        job: Job,
        /// The token it carries.
        continuation_token: String,
        /// When.
        at: f64,
    },
    /// An action succeeded.
    ActionSucceeded {
        /// Action execution id.
        action_execution_id: String,
        /// What it produced.
        output: ActionOutput,
        /// When.
        at: f64,
    },
    /// An action failed.
    ActionFailed {
        /// Action execution id.
        action_execution_id: String,
        /// Why.
        error: ErrorDetails,
        /// When.
        at: f64,
    },
    /// A stage ended.
    StageFinished {
        /// Stage name.
        stage: String,
        /// How it ended.
        status: StageStatus,
        /// When.
        at: f64,
    },
    /// StopPipelineExecution: nothing new starts; with `abandon`, running actions are abandoned.
    StopRequested {
        /// Whether running actions are abandoned rather than waited for.
        abandon: bool,
        /// The reason given.
        reason: Option<String>,
        /// When.
        at: f64,
    },
    /// A running action was abandoned by a stop; a late result of it is ignored.
    ActionAbandoned {
        /// Action execution id.
        action_execution_id: String,
        /// When.
        at: f64,
    },
    /// The server started again with these actions in flight: they run again.
    ActionsResumed {
        /// Their action execution ids.
        action_execution_ids: Vec<String>,
        /// When.
        at: f64,
    },
    /// A condition of the stage the execution is in was checked.
    ConditionChecked {
        /// The stage.
        stage: String,
        /// The check, with its rules'.
        check: Box<super::conditions::ConditionRun>,
    },
    /// RetryStageExecution: a finished execution whose stage failed runs that stage again, in
    /// a new attempt that it waits to enter as it would a stage it reaches.
    StageRetried {
        /// The stage.
        stage: String,
        /// Which actions run again.
        mode: RetryMode,
        /// Retried by the stage's `onFailure` (`RETRY`), not by RetryStageExecution.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        automatic: bool,
        /// When.
        at: f64,
    },
    /// The execution ended.
    Finished {
        /// How it ended.
        status: ExecutionStatus,
        /// A summary for failures.
        summary: Option<String>,
        /// When.
        at: f64,
    },
}

impl EventType for ExecutionEvent {
    fn type_name(&self) -> &'static str {
        "ExecutionEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "ExecutionEvent"
    }

    fn decode(_: &str, data: &serde_json::Value) -> Result<Self, serde_json::Error> {
        ExecutionEvent::deserialize(data)
    }
}

/// One action's run in an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    /// Stage.
    pub stage: String,
    /// Action.
    pub action: String,
    /// Action execution id.
    pub id: String,
    /// Its status.
    pub status: ActionStatus,
    /// The attempt of its stage it ran in (1 for the first).
    #[serde(default = "first_attempt")]
    pub stage_attempt: u32,
    /// Input.
    pub input: ActionInput,
    /// Where outputs go.
    pub planned_outputs: Vec<ArtifactDetail>,
    /// The approval token, for manual approvals.
    #[serde(default)]
    pub token: Option<String>,
    /// The declared `timeoutInMinutes`.
    #[serde(default)]
    pub timeout_minutes: Option<u64>,
    /// Its current job, for an action run by a job worker or a Lambda function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<CurrentJob>,
    /// The ids of its earlier jobs, each succeeded with a continuation token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_jobs: Vec<String>,
    /// What its worker last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ExecutionDetails>,
    /// How often a start of the server found it in flight and ran it again.
    #[serde(default)]
    pub resumed: u32,
    /// Output, once succeeded.
    pub output: Option<ActionOutput>,
    /// Error, once failed.
    pub error: Option<ErrorDetails>,
    /// Start time.
    pub started: f64,
    /// Last change.
    pub updated: f64,
}

fn first_attempt() -> u32 {
    1
}

/// One attempt at a stage: entered, and how it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    /// The stage.
    pub name: String,
    /// How it stands.
    pub status: StageStatus,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// For a retried attempt: which actions it runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryMode>,
    /// Whether this attempt is an automatic retry (the stage's `onFailure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
    /// How many of the attempts up to this one were automatic retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub automatic_retries: u32,
    /// The checks of its conditions, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<super::conditions::ConditionRun>,
}

impl StageRun {
    /// The check of its condition of this kind, if it was checked.
    pub fn condition(
        &self,
        kind: super::conditions::ConditionKind,
    ) -> Option<&super::conditions::ConditionRun> {
        self.conditions.iter().rev().find(|c| c.kind == kind)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The execution as its events built it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Execution id (empty before it started).
    pub id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline version.
    pub pipeline_version: u64,
    /// The declaration it runs: given with the Start command or loaded from the pipeline's
    /// stream by version, never stored in the execution's own events. Shared, since deciding a
    /// command works on a clone of the state. Not part of the views' snapshots.
    #[serde(skip)]
    pub declaration: Arc<Declaration>,
    /// How it shares the stages with other executions.
    pub execution_mode: ExecutionMode,
    /// How it stands.
    pub status: ExecutionStatus,
    /// Failure summary.
    pub summary: Option<String>,
    /// The reason given to StopPipelineExecution.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stage the execution waits to enter.
    #[serde(default)]
    pub waiting: Option<String>,
    /// The retry the stage it waits for is entered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<RetryMode>,
    /// Whether that retry is automatic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrying_automatic: bool,
    /// Trigger.
    pub trigger: Option<Trigger>,
    /// Pipeline variables.
    pub variables: BTreeMap<String, String>,
    /// Source revision overrides.
    pub source_revisions: BTreeMap<String, String>,
    /// Idempotency token.
    pub client_request_token: Option<String>,
    /// Region.
    pub region: String,
    /// Start time.
    pub started: f64,
    /// Last change.
    pub updated: f64,
    /// Stage attempts, in the order they were entered.
    pub stages: Vec<StageRun>,
    /// Action runs, in start order.
    pub runs: Vec<ActionRun>,
    /// For a rollback execution: the stage it runs and what it takes from its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Box<Rollback>>,
}

impl ActionRun {
    /// Whether a restart that finds it in flight runs it again through
    /// [`ExecutionCommand::Resume`] (a manual approval, and a job waiting for its worker, just
    /// go on waiting; a Lambda function is invoked again with its job).
    pub fn resumes_on_restart(&self) -> bool {
        let id = &self.input.action_type_id;
        self.status == ActionStatus::InProgress
            && id.category != "Approval"
            && !matches!(id.owner.as_str(), "Custom" | "ThirdParty")
    }

    /// The status of one of its jobs, if it has that job.
    pub fn job_status(&self, job_id: &str) -> Option<JobStatus> {
        if self.earlier_jobs.iter().any(|j| j == job_id) {
            return Some(JobStatus::Succeeded);
        }
        let current = self.job.as_ref().filter(|j| j.job.id == job_id)?;
        Some(match self.status {
            ActionStatus::InProgress if current.acknowledged => JobStatus::InProgress,
            ActionStatus::InProgress => JobStatus::Queued,
            ActionStatus::Succeeded => JobStatus::Succeeded,
            ActionStatus::Failed
                if self.error.as_ref().is_some_and(|e| e.code == JOB_TIMED_OUT) =>
            {
                JobStatus::TimedOut
            }
            ActionStatus::Failed | ActionStatus::Abandoned => JobStatus::Failed,
        })
    }

    /// Every job id it had, the current one last.
    pub fn job_ids(&self) -> impl Iterator<Item = &str> {
        self.earlier_jobs
            .iter()
            .map(String::as_str)
            .chain(self.job.as_ref().map(|j| j.job.id.as_str()))
    }
}

/// Whether actions of this type are run as jobs: by a job worker (custom and third-party types)
/// or by a Lambda function (the Lambda invoke action).
pub fn runs_as_job(id: &ActionTypeId) -> bool {
    matches!(id.owner.as_str(), "Custom" | "ThirdParty")
        || (id.category == "Invoke" && id.owner == "AWS" && id.provider == "Lambda")
}

impl Execution {
    /// The stage attempt entered last, if any.
    pub fn current_stage(&self) -> Option<&StageRun> {
        self.stages.last()
    }

    /// The last attempt at a stage, if it was entered.
    pub fn stage_run(&self, stage: &str) -> Option<&StageRun> {
        self.stages.iter().rev().find(|s| s.name == stage)
    }

    /// The outputs of its actions, with their action names and times: a rollback's inherited
    /// ones first, then its own runs' (where source revisions are found).
    pub fn source_outputs(&self) -> impl Iterator<Item = (&str, &ActionOutput, f64)> {
        let inherited = self
            .rollback
            .iter()
            .flat_map(|r| r.inherited.iter())
            .map(|i| (i.action.as_str(), &i.output, i.at));
        let own = self
            .runs
            .iter()
            .filter_map(|r| Some((r.action.as_str(), r.output.as_ref()?, r.updated)));
        inherited.chain(own)
    }

    /// Whether an action of the execution is running.
    pub fn has_running_actions(&self) -> bool {
        self.runs
            .iter()
            .any(|r| r.status == ActionStatus::InProgress)
    }
}

/// What can be asked of an execution.
#[derive(Debug, Clone)]
pub enum ExecutionCommand {
    /// Start it.
    Start {
        /// Execution id.
        execution_id: String,
        /// Pipeline name.
        pipeline: String,
        /// Pipeline version.
        pipeline_version: u64,
        /// Declaration snapshot (shared: the execution's state keeps it, and states are cloned).
        declaration: Arc<Declaration>,
        /// Trigger.
        trigger: Trigger,
        /// Pipeline variables given at start.
        variables: BTreeMap<String, String>,
        /// Source revision overrides by action name.
        source_revisions: BTreeMap<String, String>,
        /// Idempotency token.
        client_request_token: Option<String>,
        /// Region.
        region: String,
        /// For a rollback execution (RollbackStage): what it runs.
        rollback: Option<Box<Rollback>>,
    },
    /// The pipeline lets the execution into the stage it waits for.
    EnterStage {
        /// Stage name.
        stage: String,
    },
    /// A newer execution took the waiting place: this one ends as `Superseded`.
    Supersede {
        /// The newer execution.
        by: String,
    },
    /// The pipeline was updated: a running execution ends as `Cancelled`, its running actions
    /// abandoned.
    Cancel {
        /// Why, for `statusSummary`.
        reason: String,
    },
    /// StopPipelineExecution.
    Stop {
        /// Abandon running actions instead of waiting for them.
        abandon: bool,
        /// The reason given.
        reason: Option<String>,
    },
    /// The server started again while the execution ran: its actions in flight run again,
    /// except those that were in flight at the previous start too (a crash loop), which fail as
    /// interrupted. Manual approvals are not its business: they wait on whatever the restarts.
    Resume,
    /// RetryStageExecution.
    Retry {
        /// The stage that failed.
        stage: String,
        /// Which actions run again.
        mode: RetryMode,
    },
    /// The conditions of the current stage that wait (a deployment window) are checked again.
    CheckConditions,
    /// A rule evaluated outside the execution (`super::rules`) ended.
    RuleDone {
        /// Its rule execution id.
        rule_id: String,
        /// Whether it succeeded.
        succeeded: bool,
        /// Why, in a line.
        summary: String,
    },
    /// OverrideStageCondition: a waiting condition of the stage ends as met.
    OverrideCondition {
        /// The stage.
        stage: String,
        /// Which condition.
        kind: super::conditions::ConditionKind,
    },
    /// A job's worker acknowledged it or reported its result.
    Job {
        /// The job.
        job_id: String,
        /// What the worker did.
        op: JobOp,
    },
    /// An action finished.
    Complete {
        /// Action execution id.
        action_execution_id: String,
        /// Its result.
        result: Result<ActionOutput, ErrorDetails>,
    },
    /// A running action's executor reports how it goes (the id of the build it started).
    Progress {
        /// Action execution id.
        action_execution_id: String,
        /// What it reports.
        details: ExecutionDetails,
    },
}

/// What a job's worker does.
#[derive(Debug, Clone)]
pub enum JobOp {
    /// AcknowledgeJob.
    Acknowledge {
        /// The nonce the poll gave.
        nonce: String,
        /// A third-party worker's client token.
        client_token: Option<String>,
    },
    /// PutJobSuccessResult.
    Succeed {
        /// What it reports.
        details: Option<ExecutionDetails>,
        /// The action goes on with a new job carrying this token.
        continuation_token: Option<String>,
        /// Output variables.
        output_variables: BTreeMap<String, String>,
        /// For a source action: the revision it read.
        revision: Option<String>,
        /// A third-party worker's client token.
        client_token: Option<String>,
    },
    /// PutJobFailureResult.
    Fail {
        /// The failure's type and message.
        error: ErrorDetails,
        /// The id of the work in the worker's system.
        external_execution_id: Option<String>,
        /// A third-party worker's client token.
        client_token: Option<String>,
    },
}

/// Why a job command was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum JobRefusal {
    /// The execution has no such job.
    NotFound,
    /// The nonce is not the job's.
    InvalidNonce,
    /// The job is not waiting for a result (its status).
    InvalidState(JobStatus),
    /// The client token is not the one the job was acknowledged with.
    InvalidClientToken,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionRefusal {
    /// A job command was refused.
    Job(JobRefusal),
    /// OverrideStageCondition of a condition that is not waiting.
    NotOverridable(String),
    /// The outcome of a rule that is not pending (any more).
    RuleNotPending(String),
    /// Start of an execution that already started.
    AlreadyStarted,
    /// A command for an execution that has not started.
    NotStarted,
    /// Stop of an execution that is not running.
    NotStoppable,
    /// Stop (and wait) of an execution already stopping.
    DuplicatedStop,
    /// The result of an action that no longer runs (abandoned, or its execution ended): it is
    /// not recorded.
    LateResult,
    /// A retry of a stage that did not fail last, or of an execution that did not end failed.
    NotRetryable(String),
}

/// Decides the events a command leads to. `now` is the time; `new_id` makes fresh ids (action
/// execution ids, artifact key suffixes), so that this stays free of I/O.
pub fn handle(
    state: &Execution,
    command: ExecutionCommand,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Vec<ExecutionEvent>, ExecutionRefusal> {
    let first = match command {
        ExecutionCommand::Start {
            execution_id,
            pipeline,
            pipeline_version,
            declaration,
            trigger,
            variables,
            source_revisions,
            client_request_token,
            region,
            rollback,
        } => {
            if !state.id.is_empty() {
                return Err(ExecutionRefusal::AlreadyStarted);
            }
            let mut all_variables = declaration.variable_defaults();
            all_variables.extend(variables);
            let started = ExecutionEvent::Started {
                execution_id,
                pipeline,
                pipeline_version,
                execution_mode: declaration.execution_mode(),
                trigger,
                variables: all_variables,
                source_revisions,
                client_request_token,
                region,
                rollback,
                at: now,
            };
            let mut s = Execution {
                declaration,
                ..Execution::default()
            };
            apply(&mut s, &started);
            return Ok(advance(s, started, now, new_id));
        }
        ExecutionCommand::EnterStage { stage } => {
            if state.status != ExecutionStatus::InProgress
                || state.waiting.as_deref() != Some(stage.as_str())
            {
                return Ok(vec![]);
            }
            ExecutionEvent::StageStarted { stage, at: now }
        }
        ExecutionCommand::Supersede { by } => {
            if state.status != ExecutionStatus::InProgress || state.waiting.is_none() {
                return Ok(vec![]);
            }
            return Ok(vec![ExecutionEvent::Finished {
                status: ExecutionStatus::Superseded,
                summary: Some(format!("Superseded by a newer execution, {by}")),
                at: now,
            }]);
        }
        ExecutionCommand::Cancel { reason } => {
            if !state.status.is_running() {
                return Ok(vec![]);
            }
            let mut events: Vec<ExecutionEvent> = state
                .runs
                .iter()
                .filter(|r| r.status == ActionStatus::InProgress)
                .map(|r| ExecutionEvent::ActionAbandoned {
                    action_execution_id: r.id.clone(),
                    at: now,
                })
                .collect();
            if let Some(stage) = state
                .current_stage()
                .filter(|s| s.status == StageStatus::InProgress)
            {
                events.push(ExecutionEvent::StageFinished {
                    stage: stage.name.clone(),
                    status: StageStatus::Cancelled,
                    at: now,
                });
            }
            events.push(ExecutionEvent::Finished {
                status: ExecutionStatus::Cancelled,
                summary: Some(reason),
                at: now,
            });
            return Ok(events);
        }
        ExecutionCommand::Stop { abandon, reason } => {
            if state.id.is_empty() {
                return Err(ExecutionRefusal::NotStarted);
            }
            match state.status {
                ExecutionStatus::InProgress => {}
                ExecutionStatus::Stopping if abandon => {}
                ExecutionStatus::Stopping => return Err(ExecutionRefusal::DuplicatedStop),
                _ => return Err(ExecutionRefusal::NotStoppable),
            }
            let mut s = state.clone();
            let first = ExecutionEvent::StopRequested {
                abandon,
                reason,
                at: now,
            };
            apply(&mut s, &first);
            let mut events = vec![first];
            if abandon {
                let running: Vec<String> = s
                    .runs
                    .iter()
                    .filter(|r| r.status == ActionStatus::InProgress)
                    .map(|r| r.id.clone())
                    .collect();
                for id in running {
                    let e = ExecutionEvent::ActionAbandoned {
                        action_execution_id: id,
                        at: now,
                    };
                    apply(&mut s, &e);
                    events.push(e);
                }
            }
            return Ok(settle(s, events, now, new_id));
        }
        ExecutionCommand::Resume => {
            if !state.status.is_running() {
                return Ok(vec![]);
            }
            let mut s = state.clone();
            let mut events = Vec::new();
            let mut resumed = Vec::new();
            for run in state.runs.iter().filter(|r| r.resumes_on_restart()) {
                if run.resumed == 0 {
                    resumed.push(run.id.clone());
                    continue;
                }
                let failed = ExecutionEvent::ActionFailed {
                    action_execution_id: run.id.clone(),
                    error: ErrorDetails {
                        code: "JobFailed".into(),
                        message: format!(
                            "The action was interrupted: the server stopped while it ran, {} times in a row",
                            run.resumed + 1
                        ),
                    },
                    at: now,
                };
                apply(&mut s, &failed);
                events.push(failed);
            }
            if !resumed.is_empty() {
                let e = ExecutionEvent::ActionsResumed {
                    action_execution_ids: resumed,
                    at: now,
                };
                apply(&mut s, &e);
                events.push(e);
            }
            return Ok(settle(s, events, now, new_id));
        }
        ExecutionCommand::Retry { stage, mode } => {
            if state.id.is_empty() {
                return Err(ExecutionRefusal::NotStarted);
            }
            if !matches!(
                state.status,
                ExecutionStatus::Failed | ExecutionStatus::Stopped
            ) {
                return Err(ExecutionRefusal::NotRetryable(format!(
                    "Pipeline execution {} is {}; only a failed or stopped one can be retried",
                    state.id, state.status
                )));
            }
            let failed_here = state.current_stage().is_some_and(|s| {
                s.name == stage && matches!(s.status, StageStatus::Failed | StageStatus::Stopped)
            });
            if !failed_here {
                return Err(ExecutionRefusal::NotRetryable(format!(
                    "Stage {stage} is not the stage that failed in pipeline execution {}",
                    state.id
                )));
            }
            let mut s = state.clone();
            let retried = ExecutionEvent::StageRetried {
                stage: stage.clone(),
                mode,
                automatic: false,
                at: now,
            };
            apply(&mut s, &retried);
            return Ok(advance(s, retried, now, new_id));
        }
        ExecutionCommand::CheckConditions => {
            let Some(current) = state.current_stage() else {
                return Ok(vec![]);
            };
            let waiting = [
                super::conditions::ConditionKind::BeforeEntry,
                super::conditions::ConditionKind::OnSuccess,
                super::conditions::ConditionKind::OnFailure,
            ]
            .into_iter()
            .filter_map(|kind| current.condition(kind))
            .find(|c| c.again_at.is_some_and(|at| at <= now));
            let declared = state.declaration.stage(&current.name);
            let (Some(waiting), Some(declared), true) = (
                waiting,
                declared,
                state.status == ExecutionStatus::InProgress,
            ) else {
                return Ok(vec![]);
            };
            let Some(condition) = waiting.kind.of(declared) else {
                return Ok(vec![]);
            };
            let run = super::conditions::check(
                state,
                waiting.kind,
                condition,
                now,
                new_id,
                Some(waiting),
            );
            let checked = ExecutionEvent::ConditionChecked {
                stage: current.name.clone(),
                check: Box::new(run),
            };
            let mut s = state.clone();
            apply(&mut s, &checked);
            return Ok(advance(s, checked, now, new_id));
        }
        ExecutionCommand::RuleDone {
            rule_id,
            succeeded,
            summary,
        } => {
            let done = state
                .current_stage()
                .filter(|_| state.status == ExecutionStatus::InProgress)
                .and_then(|current| {
                    let check = [
                        super::conditions::ConditionKind::BeforeEntry,
                        super::conditions::ConditionKind::OnSuccess,
                        super::conditions::ConditionKind::OnFailure,
                    ]
                    .into_iter()
                    .filter_map(|kind| current.condition(kind))
                    .find_map(|c| c.with_outcome(&rule_id, succeeded, &summary, now))?;
                    Some((current.name.clone(), check))
                });
            let Some((stage, check)) = done else {
                return Err(ExecutionRefusal::RuleNotPending(rule_id));
            };
            let checked = ExecutionEvent::ConditionChecked {
                stage,
                check: Box::new(check),
            };
            let mut s = state.clone();
            apply(&mut s, &checked);
            return Ok(advance(s, checked, now, new_id));
        }
        ExecutionCommand::OverrideCondition { stage, kind } => {
            let waiting = state
                .current_stage()
                .filter(|s| s.name == stage && s.status == StageStatus::InProgress)
                .and_then(|s| s.condition(kind))
                .filter(|c| c.waiting() && state.status == ExecutionStatus::InProgress);
            let Some(waiting) = waiting else {
                return Err(ExecutionRefusal::NotOverridable(format!(
                    "The {} condition of stage {stage} is not being checked in pipeline execution {}",
                    kind.field(),
                    state.id
                )));
            };
            let checked = ExecutionEvent::ConditionChecked {
                stage,
                check: Box::new(waiting.overridden(now)),
            };
            let mut s = state.clone();
            apply(&mut s, &checked);
            return Ok(advance(s, checked, now, new_id));
        }
        ExecutionCommand::Progress {
            action_execution_id,
            details,
        } => {
            // Only a running action's report is recorded; a late one changes nothing.
            let running = state
                .runs
                .iter()
                .any(|r| r.id == action_execution_id && r.status == ActionStatus::InProgress);
            if !running {
                return Err(ExecutionRefusal::LateResult);
            }
            let events = vec![ExecutionEvent::JobProgressed {
                action_execution_id,
                details,
                at: now,
            }];
            let mut s = state.clone();
            events.iter().for_each(|e| apply(&mut s, e));
            return Ok(settle(s, events, now, new_id));
        }
        ExecutionCommand::Job { job_id, op } => {
            let events = job_events(state, &job_id, op, now, new_id)?;
            let mut s = state.clone();
            events.iter().for_each(|e| apply(&mut s, e));
            return Ok(settle(s, events, now, new_id));
        }
        ExecutionCommand::Complete {
            action_execution_id,
            result,
        } => {
            if state.id.is_empty() {
                return Err(ExecutionRefusal::NotStarted);
            }
            // A late result for an action that is no longer running is not recorded; the
            // refusal lets the caller say so.
            if !state
                .runs
                .iter()
                .any(|r| r.id == action_execution_id && r.status == ActionStatus::InProgress)
            {
                return Err(ExecutionRefusal::LateResult);
            }
            match result {
                Ok(output) => ExecutionEvent::ActionSucceeded {
                    action_execution_id,
                    output,
                    at: now,
                },
                Err(error) => ExecutionEvent::ActionFailed {
                    action_execution_id,
                    error,
                    at: now,
                },
            }
        }
    };
    let mut s = state.clone();
    apply(&mut s, &first);
    Ok(advance(s, first, now, new_id))
}

/// The events of a job command: an acknowledgement, a continuation, or the end of the action.
fn job_events(
    state: &Execution,
    job_id: &str,
    op: JobOp,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Vec<ExecutionEvent>, ExecutionRefusal> {
    let refused = |r| Err(ExecutionRefusal::Job(r));
    let Some(run) = state.runs.iter().find(|r| r.job_ids().any(|j| j == job_id)) else {
        return refused(JobRefusal::NotFound);
    };
    let status = run.job_status(job_id).unwrap_or(JobStatus::Failed);
    let current = run.job.as_ref().filter(|j| j.job.id == job_id);
    let action_execution_id = run.id.clone();
    let bound =
        |given: &Option<String>| match (current.and_then(|c| c.client_token.as_ref()), given) {
            (Some(bound), Some(given)) => bound == given,
            _ => true,
        };
    // A result is taken from the worker the job was acknowledged by, while the job waits for one.
    let awaits_result = |client_token: &Option<String>| {
        if !matches!(status, JobStatus::Queued | JobStatus::InProgress) {
            return Err(ExecutionRefusal::Job(JobRefusal::InvalidState(status)));
        }
        if !bound(client_token) {
            return Err(ExecutionRefusal::Job(JobRefusal::InvalidClientToken));
        }
        Ok(())
    };
    match op {
        JobOp::Acknowledge {
            nonce,
            client_token,
        } => {
            let Some(current) = current.filter(|c| c.job.nonce == nonce) else {
                // An earlier job's nonce was that job's; any other is wrong.
                return if current.is_none() {
                    Ok(vec![])
                } else {
                    refused(JobRefusal::InvalidNonce)
                };
            };
            if !bound(&client_token) {
                return refused(JobRefusal::InvalidClientToken);
            }
            if status != JobStatus::Queued || current.acknowledged {
                return Ok(vec![]);
            }
            Ok(vec![ExecutionEvent::JobAcknowledged {
                action_execution_id,
                job_id: job_id.to_string(),
                client_token,
                at: now,
            }])
        }
        JobOp::Succeed {
            details,
            continuation_token,
            output_variables,
            revision,
            client_token,
        } => {
            awaits_result(&client_token)?;
            if let Some(token) = continuation_token {
                let mut events = Vec::new();
                if let Some(details) = details {
                    events.push(ExecutionEvent::JobProgressed {
                        action_execution_id: action_execution_id.clone(),
                        details,
                        at: now,
                    });
                }
                events.push(ExecutionEvent::JobQueued {
                    action_execution_id,
                    job: Job {
                        id: new_id(),
                        nonce: new_id(),
                    },
                    continuation_token: token,
                    at: now,
                });
                return Ok(events);
            }
            let mut reported = details.or_else(|| run.progress.clone()).unwrap_or_default();
            // A Lambda function's job is its invocation's request id.
            if run.input.action_type_id.owner == "AWS" && reported.external_execution_id.is_none() {
                reported.external_execution_id = Some(job_id.to_string());
            }
            Ok(vec![ExecutionEvent::ActionSucceeded {
                action_execution_id,
                output: ActionOutput {
                    output_artifacts: run.planned_outputs.clone(),
                    external_execution_id: reported.external_execution_id,
                    external_execution_summary: reported.summary,
                    output_variables,
                    revision,
                },
                at: now,
            }])
        }
        JobOp::Fail {
            error,
            external_execution_id,
            client_token,
        } => {
            awaits_result(&client_token)?;
            let mut events = Vec::new();
            if external_execution_id.is_some() {
                let details = ExecutionDetails {
                    external_execution_id,
                    ..run.progress.clone().unwrap_or_default()
                };
                events.push(ExecutionEvent::JobProgressed {
                    action_execution_id: action_execution_id.clone(),
                    details,
                    at: now,
                });
            }
            events.push(ExecutionEvent::ActionFailed {
                action_execution_id,
                error,
                at: now,
            });
            Ok(events)
        }
    }
}

/// `first` (already applied to `s`) and every event that follows from it.
fn advance(
    s: Execution,
    first: ExecutionEvent,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<ExecutionEvent> {
    settle(s, vec![first], now, new_id)
}

/// `events` (already applied to `s`) and every event that follows from them.
fn settle(
    mut s: Execution,
    mut events: Vec<ExecutionEvent>,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<ExecutionEvent> {
    while let Some(next) = next_event(&s, now, new_id) {
        apply(&mut s, &next);
        events.push(next);
    }
    events
}

/// The one event that moves the execution on from `s`, if any.
fn next_event(
    s: &Execution,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> Option<ExecutionEvent> {
    if s.status == ExecutionStatus::Stopping {
        // Nothing new starts; once nothing runs, the stage and the execution are stopped.
        if s.has_running_actions() {
            return None;
        }
        if let Some(stage) = s
            .current_stage()
            .filter(|st| st.status == StageStatus::InProgress)
        {
            return Some(ExecutionEvent::StageFinished {
                stage: stage.name.clone(),
                status: StageStatus::Stopped,
                at: now,
            });
        }
        return Some(ExecutionEvent::Finished {
            status: ExecutionStatus::Stopped,
            summary: s.stop_reason.clone(),
            at: now,
        });
    }
    if s.status != ExecutionStatus::InProgress {
        return None;
    }
    let declared = &s.declaration.stages;
    // Entering a stage is asked for, then granted by the pipeline (EnterStage).
    let enter = |stage: &str| {
        (s.waiting.as_deref() != Some(stage)).then(|| ExecutionEvent::StageWaiting {
            stage: stage.to_string(),
            at: now,
        })
    };
    let Some(current) = s.current_stage() else {
        // A rollback runs its one stage; any other execution starts at the first.
        return match &s.rollback {
            Some(rollback) => enter(&rollback.stage),
            None => enter(&declared.first()?.name),
        };
    };
    if s.retrying.is_some() {
        // A retried stage is entered again, as a stage reached for the first time.
        return enter(&current.name);
    }
    let index = declared.iter().position(|st| st.name == current.name)?;
    match current.status {
        StageStatus::Failed => {
            use super::conditions::{check, ConditionKind};
            // Its onFailure condition is checked once the stage failed.
            if let Some(condition) = ConditionKind::OnFailure.of(&declared[index]) {
                if current
                    .condition(ConditionKind::OnFailure)
                    .is_some_and(|c| c.waiting())
                {
                    return None;
                }
                if current.condition(ConditionKind::OnFailure).is_none() {
                    let run = check(s, ConditionKind::OnFailure, condition, now, new_id, None);
                    return Some(ExecutionEvent::ConditionChecked {
                        stage: current.name.clone(),
                        check: Box::new(run),
                    });
                }
            }
            // A stage declared to retry on failure is retried once, automatically.
            let retry = declared[index]
                .on_failure
                .as_ref()
                .filter(|f| f.result.as_deref() == Some("RETRY"));
            if let Some(retry) = retry.filter(|_| current.automatic_retries == 0) {
                let mode = match retry
                    .retry_configuration
                    .as_ref()
                    .and_then(|c| c.retry_mode.as_deref())
                {
                    Some("ALL_ACTIONS") => RetryMode::AllActions,
                    _ => RetryMode::FailedActions,
                };
                return Some(ExecutionEvent::StageRetried {
                    stage: current.name.clone(),
                    mode,
                    automatic: true,
                    at: now,
                });
            }
            let failed = attempt_runs(s, current)
                .into_iter()
                .find(|r| r.status == ActionStatus::Failed);
            let summary = failed.map(|r| {
                let message = r
                    .error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or_default();
                format!("Action {} in stage {} failed: {message}", r.action, r.stage)
            });
            // A stage can also fail by a condition (no action failed then).
            let summary = summary.or_else(|| {
                current
                    .conditions
                    .iter()
                    .find(|c| c.engaged().is_some())
                    .map(|c| format!("Stage {} failed: {}", current.name, c.failure()))
            });
            return Some(ExecutionEvent::Finished {
                status: ExecutionStatus::Failed,
                summary,
                at: now,
            });
        }
        StageStatus::Succeeded | StageStatus::Skipped => {
            let next = declared.get(index + 1).filter(|_| s.rollback.is_none());
            return match next {
                Some(next) => enter(&next.name),
                None => Some(ExecutionEvent::Finished {
                    status: ExecutionStatus::Succeeded,
                    summary: None,
                    at: now,
                }),
            };
        }
        StageStatus::InProgress => {}
        _ => return None,
    }
    let stage = &declared[index];
    let runs = attempt_runs(s, current);
    {
        use super::conditions::{check, ConditionKind};
        // Its beforeEntry condition is checked as the stage is entered, before any action starts.
        if let Some(condition) = ConditionKind::BeforeEntry.of(stage) {
            match current.condition(ConditionKind::BeforeEntry) {
                None if runs.is_empty() => {
                    let run = check(s, ConditionKind::BeforeEntry, condition, now, new_id, None);
                    return Some(ExecutionEvent::ConditionChecked {
                        stage: current.name.clone(),
                        check: Box::new(run),
                    });
                }
                Some(checked) if runs.is_empty() => {
                    if checked.waiting() {
                        return None;
                    }
                    let status = match checked.engaged() {
                        Some("SKIP") => Some(StageStatus::Skipped),
                        Some(_) => Some(StageStatus::Failed),
                        None => None,
                    };
                    if let Some(status) = status {
                        return Some(ExecutionEvent::StageFinished {
                            stage: current.name.clone(),
                            status,
                            at: now,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    if runs.iter().any(|r| r.status == ActionStatus::Failed) {
        // As on AWS, actions already running in the failed stage finish and their results are
        // recorded; nothing new starts, and the stage fails once nothing runs.
        if runs.iter().any(|r| r.status == ActionStatus::InProgress) {
            return None;
        }
        return Some(ExecutionEvent::StageFinished {
            stage: current.name.clone(),
            status: StageStatus::Failed,
            at: now,
        });
    }
    let ran = |a: &Action| runs.iter().find(|r| r.action == a.name);
    let waiting: Vec<&Action> = stage.actions.iter().filter(|a| ran(a).is_none()).collect();
    let Some(next_order) = waiting.iter().map(|a| a.run_order()).min() else {
        if runs.iter().all(|r| r.status == ActionStatus::Succeeded) {
            use super::conditions::{check, ConditionKind};
            // Its onSuccess condition is checked once all its actions succeeded.
            let mut status = StageStatus::Succeeded;
            if let Some(condition) = ConditionKind::OnSuccess.of(stage) {
                match current.condition(ConditionKind::OnSuccess) {
                    None => {
                        let run = check(s, ConditionKind::OnSuccess, condition, now, new_id, None);
                        return Some(ExecutionEvent::ConditionChecked {
                            stage: current.name.clone(),
                            check: Box::new(run),
                        });
                    }
                    Some(checked) if checked.waiting() => return None,
                    Some(checked) if checked.engaged().is_some() => status = StageStatus::Failed,
                    Some(_) => {}
                }
            }
            return Some(ExecutionEvent::StageFinished {
                stage: current.name.clone(),
                status,
                at: now,
            });
        }
        return None;
    };
    // A group starts when every earlier group has succeeded.
    let earlier_running = stage.actions.iter().any(|a| {
        a.run_order() < next_order && ran(a).is_some_and(|r| r.status != ActionStatus::Succeeded)
    });
    if earlier_running {
        return None;
    }
    let action = waiting.iter().find(|a| a.run_order() == next_order)?;
    Some(start_action(s, &current.name, action, now, new_id))
}

/// The runs that count for a stage attempt: its own, and for a retry of the failed actions only,
/// the last successful run of every action it does not run again.
fn attempt_runs<'a>(s: &'a Execution, attempt: &StageRun) -> Vec<&'a ActionRun> {
    let of_stage = |r: &&ActionRun| r.stage == attempt.name;
    let mut runs: Vec<&ActionRun> = s
        .runs
        .iter()
        .filter(of_stage)
        .filter(|r| r.stage_attempt == attempt.attempt)
        .collect();
    if attempt.retry == Some(RetryMode::FailedActions) {
        let kept: Vec<&ActionRun> = s
            .runs
            .iter()
            .filter(of_stage)
            .filter(|r| r.stage_attempt < attempt.attempt && r.status == ActionStatus::Succeeded)
            .filter(|r| !runs.iter().any(|n| n.action == r.action))
            .collect();
        runs.extend(kept);
    }
    runs
}

fn start_action(
    s: &Execution,
    stage: &str,
    action: &Action,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
) -> ExecutionEvent {
    let configuration = action.configuration();
    let mut unresolved = None;
    let resolved_configuration = configuration
        .iter()
        .map(|(k, v)| match resolve(s, v) {
            Ok(value) => (k.clone(), value),
            Err(reference) => {
                unresolved.get_or_insert(format!(
                    "The action configuration {k} refers to the variable {reference}, which could not be resolved"
                ));
                (k.clone(), v.clone())
            }
        })
        .collect();
    let artifacts = produced_artifacts(s);
    let input_artifacts = action
        .inputs()
        .filter_map(|name| artifacts.get(name).cloned())
        .collect();
    let store = s.declaration.artifact_bucket(&s.region);
    let planned_outputs = action
        .outputs()
        .map(|name| ArtifactDetail {
            name: name.to_string(),
            s3location: S3Location {
                bucket: store.clone(),
                key: artifact_key(&s.pipeline, name, &new_id()),
            },
        })
        .collect();
    let token = (action.action_type_id.category == "Approval").then(&mut *new_id);
    let job = (unresolved.is_none() && runs_as_job(&action.action_type_id)).then(|| {
        Box::new(Job {
            id: new_id(),
            nonce: new_id(),
        })
    });
    ExecutionEvent::ActionStarted {
        job,
        stage: stage.to_string(),
        action: action.name.clone(),
        action_execution_id: new_id(),
        token,
        timeout_minutes: action.timeout_in_minutes,
        input: ActionInput {
            action_type_id: action.action_type_id.clone(),
            configuration,
            resolved_configuration,
            region: action.region.clone().unwrap_or_else(|| s.region.clone()),
            input_artifacts,
            namespace: action.namespace.clone(),
        },
        planned_outputs,
        unresolved,
        at: now,
    }
}

/// AWS's artifact key shape: `<pipeline name, first 20>/<artifact name, first 10>/<7 characters>`.
pub fn artifact_key(pipeline: &str, artifact: &str, id: &str) -> String {
    let suffix: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(7)
        .collect();
    format!(
        "{}/{}/{suffix}",
        pipeline.chars().take(20).collect::<String>(),
        artifact.chars().take(10).collect::<String>()
    )
}

/// Artifacts produced so far, by name.
fn produced_artifacts(s: &Execution) -> BTreeMap<String, ArtifactDetail> {
    let inherited = s
        .rollback
        .iter()
        .flat_map(|r| r.inherited.iter().map(|i| &i.output));
    inherited
        .chain(s.runs.iter().filter_map(|r| r.output.as_ref()))
        .flat_map(|o| o.output_artifacts.iter())
        .map(|a| (a.name.clone(), a.clone()))
        .collect()
}

/// Resolves `#{namespace.variable}` references: `codepipeline.PipelineExecutionId`,
/// `variables.NAME` (pipeline variables), and the output variables of actions with a namespace.
/// The error is the first reference that could not be resolved.
pub fn resolve(s: &Execution, text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let value = reference.split_once('.').and_then(|(ns, var)| match ns {
            "codepipeline" if var == "PipelineExecutionId" => Some(s.id.clone()),
            "variables" => s.variables.get(var).cloned(),
            // The latest run of the action with that namespace (a retry runs it again), or
            // for a rollback, what its target's run left.
            ns => s
                .runs
                .iter()
                .rev()
                .filter(|r| r.input.namespace.as_deref() == Some(ns))
                .find_map(|r| r.output.as_ref()?.output_variables.get(var).cloned())
                .or_else(|| {
                    s.rollback
                        .iter()
                        .flat_map(|r| r.inherited.iter())
                        .filter(|i| i.namespace.as_deref() == Some(ns))
                        .find_map(|i| i.output.output_variables.get(var).cloned())
                }),
        });
        match value {
            Some(v) => out.push_str(&v),
            None => return Err(format!("#{{{reference}}}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Changes the action run `id` (if the execution has it) and marks it and the execution updated
/// at `at`.
fn change_run(s: &mut Execution, id: &str, at: f64, change: impl FnOnce(&mut ActionRun)) {
    if let Some(run) = s.runs.iter_mut().find(|r| r.id == id) {
        change(run);
        run.updated = at;
    }
    s.updated = at;
}

/// Folds one event into the execution.
pub fn apply(s: &mut Execution, event: &ExecutionEvent) {
    match event {
        ExecutionEvent::Started {
            execution_id,
            pipeline,
            pipeline_version,
            execution_mode,
            trigger,
            variables,
            source_revisions,
            client_request_token,
            region,
            rollback,
            at,
        } => {
            *s = Execution {
                id: execution_id.clone(),
                pipeline: pipeline.clone(),
                pipeline_version: *pipeline_version,
                declaration: std::mem::take(&mut s.declaration),
                execution_mode: *execution_mode,
                status: ExecutionStatus::InProgress,
                trigger: Some(trigger.clone()),
                variables: variables.clone(),
                source_revisions: source_revisions.clone(),
                client_request_token: client_request_token.clone(),
                region: region.clone(),
                started: *at,
                updated: *at,
                rollback: rollback.clone(),
                ..Default::default()
            };
        }
        ExecutionEvent::StageWaiting { stage, at } => {
            s.waiting = Some(stage.clone());
            s.updated = *at;
        }
        ExecutionEvent::StageStarted { stage, at } => {
            s.waiting = None;
            let attempt = s.stages.iter().filter(|st| st.name == *stage).count() as u32 + 1;
            let retry = s.retrying.take();
            let automatic = retry.is_some() && std::mem::take(&mut s.retrying_automatic);
            let before = s.stage_run(stage).map_or(0, |st| st.automatic_retries);
            s.stages.push(StageRun {
                name: stage.clone(),
                status: StageStatus::InProgress,
                attempt,
                retry,
                automatic,
                automatic_retries: before + u32::from(automatic),
                conditions: Vec::new(),
            });
            s.updated = *at;
        }
        // Bookkeeping of this server's restarts: no change AWS would show.
        ExecutionEvent::ActionsResumed {
            action_execution_ids,
            ..
        } => {
            for run in s
                .runs
                .iter_mut()
                .filter(|r| action_execution_ids.contains(&r.id))
            {
                run.resumed += 1;
            }
        }
        ExecutionEvent::ConditionChecked { stage, check } => {
            if let Some(entry) = s.stages.iter_mut().rev().find(|st| st.name == *stage) {
                entry.conditions.push((**check).clone());
            }
            s.updated = check.at;
        }
        ExecutionEvent::StageRetried {
            mode,
            automatic,
            at,
            ..
        } => {
            s.status = ExecutionStatus::InProgress;
            s.summary = None;
            s.stop_reason = None;
            s.retrying = Some(*mode);
            s.retrying_automatic = *automatic;
            s.updated = *at;
        }
        ExecutionEvent::ActionStarted {
            stage,
            action,
            action_execution_id,
            input,
            planned_outputs,
            unresolved,
            token,
            timeout_minutes,
            job,
            at,
        } => {
            let error = unresolved.as_ref().map(|m| ErrorDetails {
                code: "ConfigurationError".into(),
                message: m.clone(),
            });
            let stage_attempt = s
                .stages
                .iter()
                .rev()
                .find(|st| st.name == *stage)
                .map_or(1, |st| st.attempt);
            s.runs.push(ActionRun {
                stage: stage.clone(),
                action: action.clone(),
                id: action_execution_id.clone(),
                status: if error.is_some() {
                    ActionStatus::Failed
                } else {
                    ActionStatus::InProgress
                },
                stage_attempt,
                input: input.clone(),
                planned_outputs: planned_outputs.clone(),
                token: token.clone(),
                timeout_minutes: *timeout_minutes,
                job: job.as_ref().map(|job| CurrentJob {
                    job: (**job).clone(),
                    continuation_token: None,
                    acknowledged: false,
                    client_token: None,
                    queued: *at,
                }),
                earlier_jobs: Vec::new(),
                progress: None,
                resumed: 0,
                output: None,
                error,
                started: *at,
                updated: *at,
            });
            s.updated = *at;
        }
        ExecutionEvent::JobAcknowledged {
            action_execution_id,
            job_id,
            client_token,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                if let Some(current) = run.job.as_mut().filter(|j| &j.job.id == job_id) {
                    current.acknowledged = true;
                    current.client_token = client_token.clone();
                }
            });
        }
        ExecutionEvent::JobProgressed {
            action_execution_id,
            details,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                run.progress = Some(details.clone());
            });
        }
        ExecutionEvent::JobQueued {
            action_execution_id,
            job,
            continuation_token,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                if let Some(done) = run.job.take() {
                    run.earlier_jobs.push(done.job.id);
                }
                run.job = Some(CurrentJob {
                    job: job.clone(),
                    continuation_token: Some(continuation_token.clone()),
                    acknowledged: false,
                    client_token: None,
                    queued: *at,
                });
            });
        }
        ExecutionEvent::ActionSucceeded {
            action_execution_id,
            output,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                run.status = ActionStatus::Succeeded;
                run.output = Some(output.clone());
            });
        }
        ExecutionEvent::ActionFailed {
            action_execution_id,
            error,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                run.status = ActionStatus::Failed;
                run.error = Some(error.clone());
            });
        }
        ExecutionEvent::StageFinished { stage, status, at } => {
            if let Some(entry) = s.stages.iter_mut().rev().find(|st| st.name == *stage) {
                entry.status = *status;
            }
            s.updated = *at;
        }
        ExecutionEvent::StopRequested { reason, at, .. } => {
            s.status = ExecutionStatus::Stopping;
            if reason.is_some() {
                s.stop_reason = reason.clone();
            }
            s.updated = *at;
        }
        ExecutionEvent::ActionAbandoned {
            action_execution_id,
            at,
        } => {
            change_run(s, action_execution_id, *at, |run| {
                run.status = ActionStatus::Abandoned;
            });
        }
        ExecutionEvent::Finished {
            status,
            summary,
            at,
        } => {
            s.status = *status;
            s.summary = summary.clone();
            s.updated = *at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn typed(value: Value) -> Declaration {
        Declaration::from_value(&value).unwrap()
    }

    /// Fresh ids, unique across the calls of a test.
    fn ids() -> impl FnMut() -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        || format!("id{:07}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn declaration() -> Declaration {
        typed(json!({
            "name": "p", "artifactStore": {"type": "S3", "location": "store"},
            "stages": [
                {"name": "source", "actions": [
                    {"name": "src", "runOrder": 1, "namespace": "SourceVariables",
                     "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                     "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"},
                     "outputArtifacts": [{"name": "out"}], "inputArtifacts": []}]},
                {"name": "deploy", "actions": [
                    {"name": "a", "runOrder": 1,
                     "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                     "configuration": {"BucketName": "t", "ObjectKey": "#{SourceVariables.VersionId}/#{codepipeline.PipelineExecutionId}"},
                     "outputArtifacts": [], "inputArtifacts": [{"name": "out"}]},
                    {"name": "b", "runOrder": 1,
                     "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                     "configuration": {"BucketName": "t", "ObjectKey": "b"},
                     "outputArtifacts": [], "inputArtifacts": [{"name": "out"}]},
                    {"name": "c", "runOrder": 2,
                     "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                     "configuration": {"BucketName": "t", "ObjectKey": "#{variables.missing}"},
                     "outputArtifacts": [], "inputArtifacts": [{"name": "out"}]}
                ]}
            ]
        }))
    }

    fn start() -> ExecutionCommand {
        ExecutionCommand::Start {
            execution_id: "exec".into(),
            pipeline: "pipeline-with-a-very-long-name".into(),
            pipeline_version: 1,
            declaration: declaration().into(),
            trigger: Trigger {
                trigger_type: "StartPipelineExecution".into(),
                trigger_detail: None,
            },
            variables: BTreeMap::new(),
            source_revisions: BTreeMap::new(),
            client_request_token: None,
            region: "eu-central-1".into(),
            rollback: None,
        }
    }

    /// Given these past events, when this command: the events. The state knows its declaration
    /// as the actor's does (from the Start command, or loaded by version).
    fn given_when(
        given: &[ExecutionEvent],
        when: ExecutionCommand,
    ) -> (Execution, Vec<ExecutionEvent>) {
        given_when_with(declaration(), given, when)
    }

    fn given_when_with(
        decl: Declaration,
        given: &[ExecutionEvent],
        when: ExecutionCommand,
    ) -> (Execution, Vec<ExecutionEvent>) {
        let mut state = Execution {
            declaration: decl.into(),
            ..Execution::default()
        };
        given.iter().for_each(|e| apply(&mut state, e));
        let mut events = handle(&state, when, 5.0, &mut ids()).unwrap();
        events.iter().for_each(|e| apply(&mut state, e));
        // The pipeline lets it into every stage it asks for at once (as in PARALLEL mode).
        while let (Some(stage), "InProgress") = (state.waiting.clone(), state.status.as_str()) {
            let entered = handle(
                &state,
                ExecutionCommand::EnterStage { stage },
                5.0,
                &mut ids(),
            )
            .unwrap();
            entered.iter().for_each(|e| apply(&mut state, e));
            events.extend(entered);
        }
        (state, events)
    }

    fn succeed(id: &str, output: ActionOutput) -> ExecutionCommand {
        ExecutionCommand::Complete {
            action_execution_id: id.into(),
            result: Ok(output),
        }
    }

    /// The source, then one custom build action run by a job worker.
    fn custom_declaration() -> Declaration {
        typed(json!({
            "name": "p", "artifactStore": {"type": "S3", "location": "store"},
            "stages": [
                {"name": "source", "actions": [
                    {"name": "src", "runOrder": 1,
                     "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                     "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"},
                     "outputArtifacts": [{"name": "out"}], "inputArtifacts": []}]},
                {"name": "build", "actions": [
                    {"name": "b", "runOrder": 1,
                     "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "My", "version": "1"},
                     "configuration": {}, "outputArtifacts": [], "inputArtifacts": [{"name": "out"}]}]}
            ]
        }))
    }

    fn job_op(job: &str, op: JobOp) -> ExecutionCommand {
        ExecutionCommand::Job {
            job_id: job.into(),
            op,
        }
    }

    fn job_success(token: Option<&str>) -> JobOp {
        JobOp::Succeed {
            details: Some(ExecutionDetails {
                summary: Some("half".into()),
                external_execution_id: Some("r1".into()),
                percent_complete: Some(50),
            }),
            continuation_token: token.map(str::to_string),
            output_variables: BTreeMap::new(),
            revision: None,
            client_token: None,
        }
    }

    #[test]
    fn a_closed_deployment_window_waits_and_lets_the_stage_in_once_it_opens() {
        // Open at 10:00 UTC only.
        let mut value = declaration().to_value();
        value["stages"][1]["beforeEntry"] = json!({"conditions": [{"result": "FAIL", "rules": [
            {"name": "w", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "DeploymentWindow", "version": "1"},
             "configuration": {"Cron": "0 0 10 ? * * *"}}]}]});
        let decl = typed(value);
        let nine = chrono::DateTime::parse_from_rfc3339("2026-12-02T09:59:30Z")
            .unwrap()
            .timestamp() as f64;
        let ten = nine + 30.0;
        let mut state = Execution {
            declaration: decl.into(),
            ..Execution::default()
        };
        let step = |state: &mut Execution, command, now| {
            let mut events = handle(state, command, now, &mut ids()).unwrap();
            events.iter().for_each(|e| apply(state, e));
            while let (Some(stage), "InProgress") = (state.waiting.clone(), state.status.as_str()) {
                let entered = handle(
                    state,
                    ExecutionCommand::EnterStage { stage },
                    now,
                    &mut ids(),
                )
                .unwrap();
                entered.iter().for_each(|e| apply(state, e));
                events.extend(entered);
            }
            events
        };
        step(&mut state, start(), nine);
        let src = state.runs[0].clone();
        let output = ActionOutput {
            output_artifacts: src.planned_outputs.clone(),
            output_variables: [("VersionId".to_string(), "v1".to_string())].into(),
            ..Default::default()
        };
        step(&mut state, succeed(&src.id, output), nine);
        let deploy = state.current_stage().unwrap().clone();
        assert_eq!(deploy.name, "deploy");
        let checked = deploy
            .condition(super::super::conditions::ConditionKind::BeforeEntry)
            .unwrap();
        assert!(checked.waiting());
        assert_eq!(checked.again_at, Some(ten));
        assert!(state.runs.iter().all(|r| r.stage != "deploy"));
        // Too early: nothing happens; at ten, the window is open and the actions start.
        assert!(step(&mut state, ExecutionCommand::CheckConditions, nine + 10.0).is_empty());
        let events = step(&mut state, ExecutionCommand::CheckConditions, ten);
        assert!(events.iter().any(
            |e| matches!(e, ExecutionEvent::ActionStarted { stage, .. } if stage == "deploy")
        ));
        let checked = state
            .current_stage()
            .unwrap()
            .condition(super::super::conditions::ConditionKind::BeforeEntry)
            .unwrap();
        assert_eq!(checked.status(), "Succeeded");
    }

    #[test]
    fn a_job_is_acknowledged_continued_and_failed_and_refuses_what_does_not_fit() {
        let decl = custom_declaration;
        let (state, mut log) = given_when_with(decl(), &[], start());
        let src = state.runs[0].clone();
        let output = ActionOutput {
            output_artifacts: src.planned_outputs.clone(),
            ..Default::default()
        };
        let (state, events) = given_when_with(decl(), &log, succeed(&src.id, output));
        log.extend(events);
        let run = state.runs.iter().find(|r| r.action == "b").unwrap().clone();
        let job = run.job.clone().expect("a custom action has a job").job;
        assert_eq!(run.job_status(&job.id), Some(JobStatus::Queued));
        let refused = |log: &[ExecutionEvent], job: &str, op| {
            let mut state = Execution {
                declaration: decl().into(),
                ..Execution::default()
            };
            log.iter().for_each(|e| apply(&mut state, e));
            handle(&state, job_op(job, op), 6.0, &mut ids()).unwrap_err()
        };
        let ack = |nonce: &str| JobOp::Acknowledge {
            nonce: nonce.into(),
            client_token: None,
        };
        assert_eq!(
            refused(&log, &job.id, ack("wrong")),
            ExecutionRefusal::Job(JobRefusal::InvalidNonce)
        );
        assert_eq!(
            refused(&log, "unknown", ack(&job.nonce)),
            ExecutionRefusal::Job(JobRefusal::NotFound)
        );
        let (state, events) = given_when_with(decl(), &log, job_op(&job.id, ack(&job.nonce)));
        log.extend(events);
        let b = |s: &Execution| s.runs.iter().find(|r| r.action == "b").unwrap().clone();
        assert_eq!(b(&state).job_status(&job.id), Some(JobStatus::InProgress));

        // A continuation: the job succeeds, the action goes on with a new job carrying the token.
        let (state, events) =
            given_when_with(decl(), &log, job_op(&job.id, job_success(Some("step2"))));
        log.extend(events);
        let run = b(&state);
        assert_eq!(run.status, ActionStatus::InProgress);
        assert_eq!(run.job_status(&job.id), Some(JobStatus::Succeeded));
        assert_eq!(run.progress.as_ref().unwrap().percent_complete, Some(50));
        let next = run.job.clone().unwrap();
        assert_eq!(next.continuation_token.as_deref(), Some("step2"));
        assert_ne!(next.job.id, job.id);
        assert_eq!(
            refused(&log, &job.id, job_success(None)),
            ExecutionRefusal::Job(JobRefusal::InvalidState(JobStatus::Succeeded))
        );

        let fail = JobOp::Fail {
            error: ErrorDetails {
                code: "ConfigurationError".into(),
                message: "no Makefile".into(),
            },
            external_execution_id: Some("r2".into()),
            client_token: None,
        };
        let (state, events) = given_when_with(decl(), &log, job_op(&next.job.id, fail));
        log.extend(events);
        let run = b(&state);
        assert_eq!(run.status, ActionStatus::Failed);
        assert_eq!(run.error.as_ref().unwrap().code, "ConfigurationError");
        assert_eq!(
            run.progress
                .as_ref()
                .unwrap()
                .external_execution_id
                .as_deref(),
            Some("r2")
        );
        assert_eq!(run.job_status(&next.job.id), Some(JobStatus::Failed));
        assert_eq!(state.status, ExecutionStatus::Failed);
        assert_eq!(
            refused(&log, &next.job.id, job_success(None)),
            ExecutionRefusal::Job(JobRefusal::InvalidState(JobStatus::Failed))
        );
    }

    #[test]
    fn start_enters_the_first_stage_and_starts_its_first_group() {
        let (state, events) = given_when(&[], start());
        assert!(
            matches!(&events[1], ExecutionEvent::StageWaiting { stage, .. } if stage == "source")
        );
        let ExecutionEvent::ActionStarted {
            action,
            planned_outputs,
            ..
        } = &events[3]
        else {
            panic!("{events:?}")
        };
        assert_eq!(action, "src");
        assert_eq!(planned_outputs[0].s3location.bucket, "store");
        let key = &planned_outputs[0].s3location.key;
        assert!(key.starts_with("pipeline-with-a-very/out/id"), "{key}");
        assert_eq!(key.rsplit('/').next().unwrap().len(), 7);
        assert_eq!(events.len(), 4);
        assert_eq!(state.status, ExecutionStatus::InProgress);
    }

    #[test]
    fn equal_run_orders_start_together_and_later_ones_wait() {
        let (state, started) = given_when(&[], start());
        let src = state.runs[0].clone();
        let output = ActionOutput {
            output_artifacts: src.planned_outputs.clone(),
            output_variables: [("VersionId".to_string(), "v7".to_string())].into(),
            ..Default::default()
        };
        let (state, events) = given_when(&started, succeed(&src.id, output));
        let names: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ExecutionEvent::ActionStarted { action, .. } => Some(action.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
        let a = state.runs.iter().find(|r| r.action == "a").unwrap();
        assert_eq!(a.input.resolved_configuration["ObjectKey"], "v7/exec");
        assert_eq!(
            a.input.configuration["ObjectKey"],
            "#{SourceVariables.VersionId}/#{codepipeline.PipelineExecutionId}"
        );
        assert_eq!(a.input.input_artifacts, src.planned_outputs);
        // c (runOrder 2) waits for a and b.
        assert!(state.runs.iter().all(|r| r.action != "c"));
    }

    #[test]
    fn an_unresolvable_reference_fails_the_action_stage_and_execution() {
        let mut state = Execution {
            declaration: declaration().into(),
            ..Execution::default()
        };
        failed_in_deploy().iter().for_each(|e| apply(&mut state, e));
        let c = state.runs.iter().find(|r| r.action == "c").unwrap();
        assert_eq!(c.status, ActionStatus::Failed);
        assert!(c
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("#{variables.missing}"));
        assert_eq!(state.status, ExecutionStatus::Failed);
        assert_eq!(state.stages.last().unwrap().status, StageStatus::Failed);
        assert!(state
            .summary
            .as_ref()
            .unwrap()
            .contains("Action c in stage deploy failed"));
    }

    #[test]
    fn a_failed_action_fails_the_execution_and_late_results_are_ignored() {
        let (state, started) = given_when(&[], start());
        let id = state.runs[0].id.clone();
        let failure = ExecutionCommand::Complete {
            action_execution_id: id.clone(),
            result: Err(ErrorDetails {
                code: "JobFailed".into(),
                message: "no such object".into(),
            }),
        };
        let (state, events) = given_when(&started, failure);
        assert_eq!(state.status, ExecutionStatus::Failed);
        assert!(
            matches!(events.last(), Some(ExecutionEvent::Finished { status, .. }) if *status == ExecutionStatus::Failed)
        );
        assert_eq!(
            handle(
                &state,
                succeed(&id, ActionOutput::default()),
                6.0,
                &mut ids()
            ),
            Err(ExecutionRefusal::LateResult)
        );
    }

    #[test]
    fn a_failed_action_lets_its_running_siblings_finish_and_starts_nothing_new() {
        let (state, mut history) = given_when(&[], start());
        let src = state.runs[0].clone();
        let output = ActionOutput {
            output_artifacts: src.planned_outputs.clone(),
            output_variables: [("VersionId".to_string(), "v7".to_string())].into(),
            ..Default::default()
        };
        let (state, events) = given_when(&history, succeed(&src.id, output));
        history.extend(events);
        let id_of = |s: &Execution, name: &str| {
            s.runs.iter().find(|r| r.action == name).unwrap().id.clone()
        };
        let failure = ExecutionCommand::Complete {
            action_execution_id: id_of(&state, "a"),
            result: Err(ErrorDetails {
                code: "JobFailed".into(),
                message: "no such bucket".into(),
            }),
        };
        let (state, events) = given_when(&history, failure);
        history.extend(events.clone());
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(state.status, ExecutionStatus::InProgress);
        assert_eq!(state.stages.last().unwrap().status, StageStatus::InProgress);
        let (state, events) = given_when(
            &history,
            succeed(&id_of(&state, "b"), ActionOutput::default()),
        );
        let b = state.runs.iter().find(|r| r.action == "b").unwrap();
        assert_eq!(b.status, ActionStatus::Succeeded);
        assert!(state.runs.iter().all(|r| r.action != "c"));
        assert_eq!(state.stages.last().unwrap().status, StageStatus::Failed);
        assert_eq!(state.status, ExecutionStatus::Failed);
        assert!(state
            .summary
            .as_ref()
            .unwrap()
            .contains("Action a in stage deploy failed"));
        assert!(matches!(&events[0], ExecutionEvent::ActionSucceeded { .. }));
        assert!(!events
            .iter()
            .any(|e| matches!(e, ExecutionEvent::ActionStarted { .. })));
    }

    /// The events of an execution whose deploy stage failed: a and b succeeded, c (runOrder 2)
    /// failed on its unresolvable variable.
    fn failed_in_deploy() -> Vec<ExecutionEvent> {
        let (state, mut history) = given_when(&[], start());
        let src = state.runs[0].clone();
        let output = ActionOutput {
            output_artifacts: src.planned_outputs.clone(),
            output_variables: [("VersionId".to_string(), "v7".to_string())].into(),
            ..Default::default()
        };
        let (mut state, events) = given_when(&history, succeed(&src.id, output));
        history.extend(events);
        for name in ["a", "b"] {
            let id = state
                .runs
                .iter()
                .find(|r| r.action == name)
                .unwrap()
                .id
                .clone();
            let (s, events) = given_when(&history, succeed(&id, ActionOutput::default()));
            history.extend(events);
            state = s;
        }
        assert_eq!(state.status, ExecutionStatus::Failed);
        history
    }

    fn started_in_attempt(state: &Execution, attempt: u32) -> Vec<&str> {
        state
            .runs
            .iter()
            .filter(|r| r.stage == "deploy" && r.stage_attempt == attempt)
            .map(|r| r.action.as_str())
            .collect()
    }

    #[test]
    fn retrying_the_failed_actions_runs_them_alone_in_a_new_attempt() {
        let history = failed_in_deploy();
        let retry = ExecutionCommand::Retry {
            stage: "deploy".into(),
            mode: RetryMode::FailedActions,
        };
        let (state, events) = given_when(&history, retry);
        assert!(
            matches!(&events[0], ExecutionEvent::StageRetried { stage, .. } if stage == "deploy")
        );
        // a and b keep their results: only c runs again (and fails again on its variable).
        assert_eq!(started_in_attempt(&state, 2), ["c"]);
        let last = state.stages.last().unwrap();
        assert_eq!(
            (last.attempt, last.retry),
            (2, Some(RetryMode::FailedActions))
        );
        assert_eq!(last.status, StageStatus::Failed);
        assert_eq!(state.status, ExecutionStatus::Failed);
        assert!(state.summary.as_ref().unwrap().contains("Action c"));
    }

    #[test]
    fn retrying_all_actions_starts_the_stage_again_from_its_first_group() {
        let history = failed_in_deploy();
        let retry = ExecutionCommand::Retry {
            stage: "deploy".into(),
            mode: RetryMode::AllActions,
        };
        let (state, _) = given_when(&history, retry);
        assert_eq!(started_in_attempt(&state, 2), ["a", "b"]);
        assert_eq!(state.status, ExecutionStatus::InProgress);
        assert_eq!(state.stages.last().unwrap().status, StageStatus::InProgress);
    }

    #[test]
    fn only_the_failed_stage_of_a_failed_execution_can_be_retried() {
        let retry = |stage: &str| ExecutionCommand::Retry {
            stage: stage.into(),
            mode: RetryMode::FailedActions,
        };
        let (running, _) = given_when(&[], start());
        assert!(matches!(
            handle(&running, retry("source"), 1.0, &mut ids()),
            Err(ExecutionRefusal::NotRetryable(_))
        ));
        let mut failed = Execution {
            declaration: declaration().into(),
            ..Execution::default()
        };
        failed_in_deploy()
            .iter()
            .for_each(|e| apply(&mut failed, e));
        assert!(matches!(
            handle(&failed, retry("source"), 1.0, &mut ids()),
            Err(ExecutionRefusal::NotRetryable(m)) if m.contains("source")
        ));
        assert!(handle(&failed, retry("deploy"), 1.0, &mut ids()).is_ok());
    }

    #[test]
    fn an_action_in_flight_at_two_starts_in_a_row_fails_as_interrupted() {
        let (_, started) = given_when(&[], start());
        let (resumed, events) = given_when(&started, ExecutionCommand::Resume);
        assert!(matches!(
            &events[..],
            [ExecutionEvent::ActionsResumed { action_execution_ids, .. }] if action_execution_ids.len() == 1
        ));
        assert_eq!(resumed.runs[0].resumed, 1);
        let mut history = started.clone();
        history.extend(events);
        let (state, events) = given_when(&history, ExecutionCommand::Resume);
        assert!(
            matches!(&events[0], ExecutionEvent::ActionFailed { error, .. } if error.message.contains("interrupted"))
        );
        assert_eq!(state.status, ExecutionStatus::Failed);
        // Nothing to resume in an execution that ended.
        assert_eq!(
            handle(&state, ExecutionCommand::Resume, 1.0, &mut ids()),
            Ok(vec![])
        );
    }

    #[test]
    fn the_last_stage_succeeding_ends_the_execution() {
        let decl = typed(
            json!({"name": "p", "artifactStore": {"type": "S3", "location": "s"}, "stages": [
            {"name": "one", "actions": [{"name": "x",
                "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                "configuration": {}, "outputArtifacts": [], "inputArtifacts": []}]}]}),
        );
        let mut cmd = start();
        if let ExecutionCommand::Start { declaration, .. } = &mut cmd {
            *declaration = decl.clone().into();
        }
        let (state, started) = given_when_with(decl.clone(), &[], cmd);
        let (state, events) = given_when_with(
            decl,
            &started,
            succeed(&state.runs[0].id, ActionOutput::default()),
        );
        assert_eq!(state.status, ExecutionStatus::Succeeded);
        assert!(
            matches!(events.last(), Some(ExecutionEvent::Finished { status, .. }) if *status == ExecutionStatus::Succeeded)
        );
        assert_eq!(
            state.stages,
            vec![StageRun {
                name: "one".into(),
                status: StageStatus::Succeeded,
                attempt: 1,
                retry: None,
                automatic: false,
                automatic_retries: 0,
                conditions: vec![],
            }]
        );
    }

    #[test]
    fn stop_and_wait_waits_for_running_actions_then_stops() {
        let (state, started) = given_when(&[], start());
        let stop = |abandon| ExecutionCommand::Stop {
            abandon,
            reason: Some("why".into()),
        };
        let (stopping, events) = given_when(&started, stop(false));
        assert_eq!(stopping.status, ExecutionStatus::Stopping);
        assert_eq!(events.len(), 1);
        let mut history = started.clone();
        history.extend(events);
        let mut s = Execution {
            declaration: declaration().into(),
            ..Execution::default()
        };
        history.iter().for_each(|e| apply(&mut s, e));
        assert_eq!(
            handle(&s, stop(false), 1.0, &mut ids()),
            Err(ExecutionRefusal::DuplicatedStop)
        );
        let (done, events) = given_when(
            &history,
            succeed(&state.runs[0].id, ActionOutput::default()),
        );
        assert_eq!(done.status, ExecutionStatus::Stopped);
        assert_eq!(done.stop_reason.as_deref(), Some("why"));
        assert!(!events
            .iter()
            .any(|e| matches!(e, ExecutionEvent::ActionStarted { .. })));
        assert_eq!(done.stages.last().unwrap().status, StageStatus::Stopped);
    }

    #[test]
    fn stop_and_abandon_ends_at_once_and_finished_executions_cannot_stop() {
        let (_, started) = given_when(&[], start());
        let abandon = ExecutionCommand::Stop {
            abandon: true,
            reason: None,
        };
        let (stopped, _) = given_when(&started, abandon.clone());
        assert_eq!(stopped.status, ExecutionStatus::Stopped);
        assert_eq!(stopped.runs[0].status, ActionStatus::Abandoned);
        assert_eq!(
            handle(&stopped, abandon, 1.0, &mut ids()),
            Err(ExecutionRefusal::NotStoppable)
        );
    }

    #[test]
    fn an_execution_waits_for_each_stage_and_a_waiting_one_can_be_superseded() {
        let mut state = Execution {
            declaration: declaration().into(),
            ..Execution::default()
        };
        let events = handle(&state, start(), 1.0, &mut ids()).unwrap();
        events.iter().for_each(|e| apply(&mut state, e));
        assert_eq!(state.waiting.as_deref(), Some("source"));
        assert!(state.runs.is_empty());
        // Entering another stage than the one it waits for does nothing.
        let wrong = ExecutionCommand::EnterStage {
            stage: "deploy".into(),
        };
        assert_eq!(handle(&state, wrong, 1.0, &mut ids()), Ok(vec![]));
        let superseded = handle(
            &state,
            ExecutionCommand::Supersede { by: "newer".into() },
            1.0,
            &mut ids(),
        )
        .unwrap();
        superseded.iter().for_each(|e| apply(&mut state, e));
        assert_eq!(state.status, ExecutionStatus::Superseded);
        assert!(state.summary.as_ref().unwrap().contains("newer"));
    }

    #[test]
    fn starting_twice_is_refused() {
        let (_, started) = given_when(&[], start());
        let mut state = Execution::default();
        started.iter().for_each(|e| apply(&mut state, e));
        assert_eq!(
            handle(&state, start(), 1.0, &mut ids()),
            Err(ExecutionRefusal::AlreadyStarted)
        );
    }
}
