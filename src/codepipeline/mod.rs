//! The emulated AWS CodePipeline service.
//!
//! # LIMITATIONS
//! Where codepipeline-local differs from AWS CodePipeline today:
//! - Pipelines run with the S3 source, S3 deploy, manual approval, CodeBuild and Lambda invoke
//!   actions, and custom and third-party actions through job workers; other providers fail their
//!   action with a message naming them (see `actions`). Stop, approvals, execution modes, inbound
//!   stage transitions, UpdatePipeline's cancelling of running executions, RetryStageExecution,
//!   RollbackStage, `onFailure` results (automatic retry and rollback), stage conditions with
//!   VariableCheck and DeploymentWindow rules (see `conditions`), custom action types and job
//!   workers work; webhooks
//!   and PutActionRevision answer `NotImplementedException` (HTTP 501) naming the operation.
//!   Only inbound transitions can be disabled.
//! - Job workers: which jobs a poll handed out is kept in memory (after a restart an unacknowledged
//!   job is offered again); artifact credentials are not checked; jobs of ended executions are
//!   remembered for the last 10,000 jobs. UpdateActionType has no integration-model types to
//!   update.
//! - The stage locks of SUPERSEDED and QUEUED modes are kept in memory and rebuilt from the log at
//!   startup; waiting executions ask again in the order they started.
//! - The IAM role in `roleArn` is checked for existence and trust only when `iam_enforce_roles`
//!   is on (off by default, as in LocalStack).
//! - Pipelines and custom action types are the taggable resources; webhook ARNs are not found.
//! - ListActionTypes lists the AWS action types codepipeline-local runs, not all of AWS's.
//! - RetryStageExecution retries stages that failed on their own; a retry never meets a stage
//!   still running actions, since a stage fails only once its running actions have finished.

pub mod action_types;
pub mod actions;
pub mod actors;
pub mod api;
pub mod conditions;
pub mod cron;
pub mod custom_types;
pub mod execution;
pub mod gates;
pub mod ids;
pub mod model;
pub mod pipeline;
pub mod retention;
pub mod rollback;
pub mod rules;
pub mod triggers;
pub mod validate;
pub mod views;
pub mod webhooks;

use std::sync::{Arc, LazyLock};

use crate::aws::model::ServiceModel;
use crate::eventstore::EventStore;

static MODEL: LazyLock<ServiceModel> = LazyLock::new(|| {
    ServiceModel::parse(include_str!("../../models/codepipeline-2015-07-09.json"))
});

/// AWS's CodePipeline service model, compiled into the binary.
pub fn model() -> &'static ServiceModel {
    &MODEL
}

/// Everything the CodePipeline API needs: the model, the actors for writes, the views for reads.
pub struct CodePipelineService {
    /// The service model requests are checked against.
    pub model: &'static ServiceModel,
    /// Finds the actor of a pipeline.
    pub registry: actors::PipelineRegistry,
    /// Read views.
    pub views: Arc<views::PipelineViews>,
    /// The event log, for reads the views do not keep (older pipeline versions).
    pub store: Arc<dyn EventStore>,
    /// IAM, for the role check of CreatePipeline and UpdatePipeline.
    pub iam: Arc<crate::iam::Iam>,
    /// Whether a pipeline's role must exist and trust CodePipeline (`iam_enforce_roles`).
    pub enforce_roles: bool,
    /// Starts and resumes executions.
    pub executions: Arc<actors::execution::ExecutionRegistry>,
    /// Executions as their events built them.
    pub execution_views: Arc<views::executions::ExecutionViews>,
    /// The action types: which exist (declarations are checked against it), which run here.
    pub actions: Arc<actions::ActionRegistry>,
    /// Custom action types (CreateCustomActionType).
    pub custom_types: Arc<custom_types::CustomActionTypes>,
    /// The jobs polls handed out that no worker acknowledged yet.
    pub dispatched: api::jobs::Dispatched,
    /// Webhooks (PutWebhook).
    pub webhooks: Arc<webhooks::Webhooks>,
}
