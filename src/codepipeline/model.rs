//! The pipeline declaration and the statuses, typed: parsed once when a declaration is accepted
//! (or read back from the log), then shared by the aggregates, the executors and the views.
//!
//! The serde form of every type is AWS's wire shape (`PipelineDeclaration` and the shapes under
//! it, the status enums), so a declaration read from a request, stored in an event and
//! answered by GetPipeline keeps its fields; members this model does not name yet are kept in
//! `extra` and written back as they came.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `PipelineDeclaration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Declaration {
    /// The pipeline name.
    pub name: String,
    /// The role CodePipeline acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The artifact store (one region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<ArtifactStore>,
    /// Artifact stores by region (cross-region actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_stores: Option<BTreeMap<String, ArtifactStore>>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The version (set by CreatePipeline and UpdatePipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// How executions share the stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_mode: Option<ExecutionMode>,
    /// V1 or V2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_type: Option<PipelineType>,
    /// Pipeline variables (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<VariableDeclaration>>,
    /// Triggers (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<TriggerDeclaration>>,
    /// Members not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ArtifactStore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStore {
    /// `S3`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bucket.
    pub location: String,
    /// The KMS key artifacts are encrypted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<Value>,
}

/// `StageDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// The stage name.
    pub name: String,
    /// Reserved by AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<Value>>,
    /// The actions.
    pub actions: Vec<Action>,
    /// What happens when the stage fails (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureConditions>,
    /// Conditions checked once the stage succeeded (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Conditions>,
    /// Conditions checked before the stage is entered (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_entry: Option<Conditions>,
    /// Members not named above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ActionDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The action name.
    pub name: String,
    /// What runs it.
    pub action_type_id: ActionTypeId,
    /// Actions of a stage run in groups of equal run order, lowest first (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_order: Option<u16>,
    /// Provider configuration (values may hold `#{…}` references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<BTreeMap<String, String>>,
    /// Shell commands (the Commands action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Artifacts it produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_artifacts: Option<Vec<OutputArtifact>>,
    /// Artifacts it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_artifacts: Option<Vec<InputArtifact>>,
    /// Variables it exports (the Commands action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_variables: Option<Vec<String>>,
    /// The role it acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The region it runs in (the pipeline's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The namespace its output variables are known by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How long it may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<u64>,
    /// Environment variables (the Commands action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variables: Option<Vec<Value>>,
    /// Members not named above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Action {
    /// The run order, 1 when not declared.
    pub fn run_order(&self) -> u16 {
        self.run_order.unwrap_or(1)
    }

    /// The configuration (empty when not declared).
    pub fn configuration(&self) -> BTreeMap<String, String> {
        self.configuration.clone().unwrap_or_default()
    }

    /// The names of its input artifacts.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.input_artifacts
            .iter()
            .flatten()
            .map(|a| a.name.as_str())
    }

    /// The names of its output artifacts.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.output_artifacts
            .iter()
            .flatten()
            .map(|a| a.name.as_str())
    }
}

/// `ActionTypeId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionTypeId {
    /// `Source`, `Build`, `Test`, `Deploy`, `Invoke`, `Approval` or `Compute`.
    pub category: String,
    /// `AWS`, `ThirdParty` or `Custom`.
    pub owner: String,
    /// The provider, e.g. `S3`.
    pub provider: String,
    /// The version, e.g. `1`.
    pub version: String,
}

impl std::fmt::Display for ActionTypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.category, self.owner, self.provider)
    }
}

/// `OutputArtifact`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputArtifact {
    /// Its name.
    pub name: String,
    /// The files it holds (the Commands action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
}

/// `InputArtifact`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputArtifact {
    /// Its name.
    pub name: String,
}

/// `PipelineVariableDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariableDeclaration {
    /// Its name.
    pub name: String,
    /// Its value when a start gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PipelineTriggerDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerDeclaration {
    /// `CodeStarSourceConnection`.
    pub provider_type: String,
    /// Which pushes and pull requests start the pipeline.
    pub git_configuration: GitConfiguration,
}

/// `GitConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitConfiguration {
    /// The source action the trigger feeds.
    pub source_action_name: String,
    /// Push filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Vec<GitPushFilter>>,
    /// Pull request filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<Vec<GitPullRequestFilter>>,
}

/// `GitPushFilter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitPushFilter {
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Patterns>,
    /// Branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Patterns>,
    /// File paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_paths: Option<Patterns>,
}

/// `GitPullRequestFilter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitPullRequestFilter {
    /// `OPEN`, `UPDATED`, `CLOSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Patterns>,
    /// File paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_paths: Option<Patterns>,
}

/// Include and exclude glob patterns (`GitTagFilterCriteria` and its siblings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patterns {
    /// Patterns that match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<String>>,
    /// Patterns that exclude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Vec<String>>,
}

/// `FailureConditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureConditions {
    /// `ROLLBACK`, `FAIL`, `RETRY` or `SKIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// How a retry runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_configuration: Option<RetryConfiguration>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// `RetryConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfiguration {
    /// `FAILED_ACTIONS` or `ALL_ACTIONS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_mode: Option<String>,
}

/// `SuccessConditions` and `BeforeEntryConditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Conditions.
    pub conditions: Vec<Condition>,
}

/// `Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// What happens when it is not met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Its rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleDeclaration>>,
}

/// `RuleDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDeclaration {
    /// Its name.
    pub name: String,
    /// What checks it.
    pub rule_type_id: RuleTypeId,
    /// Rule configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<BTreeMap<String, String>>,
    /// Shell commands (the Commands rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Artifacts it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_artifacts: Option<Vec<InputArtifact>>,
    /// The role it acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The region it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How long it may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<u64>,
}

/// `RuleTypeId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTypeId {
    /// `Rule`.
    pub category: String,
    /// `AWS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The provider, e.g. `LambdaInvoke`.
    pub provider: String,
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Declaration {
    /// Parses a declaration in its wire shape.
    pub fn from_value(value: &Value) -> Result<Declaration, String> {
        Declaration::deserialize(value).map_err(|e| e.to_string())
    }

    /// The declaration in its wire shape.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("declarations serialise")
    }

    /// The stage of that name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The execution mode (SUPERSEDED when not declared).
    pub fn execution_mode(&self) -> ExecutionMode {
        self.execution_mode.unwrap_or_default()
    }

    /// The pipeline type (V1 when not declared).
    pub fn pipeline_type(&self) -> PipelineType {
        self.pipeline_type.unwrap_or_default()
    }

    /// The artifact store bucket for `region`: the single store, or that region's.
    pub fn artifact_bucket(&self, region: &str) -> String {
        self.artifact_store
            .as_ref()
            .or_else(|| self.artifact_stores.as_ref()?.get(region))
            .map(|s| s.location.clone())
            .unwrap_or_default()
    }

    /// Default values of the pipeline variables.
    pub fn variable_defaults(&self) -> BTreeMap<String, String> {
        self.variables
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.default_value.clone().unwrap_or_default()))
            .collect()
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// The value as AWS writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `ExecutionMode`: how executions share the stages.
    #[derive(Default)]
    ExecutionMode {
        /// One execution per stage; a newer one waiting takes the place of an older one.
        #[default]
        Superseded = "SUPERSEDED",
        /// One execution per stage; the others wait in turn.
        Queued = "QUEUED",
        /// Executions run side by side.
        Parallel = "PARALLEL",
    }
);

wire_enum!(
    /// `PipelineType`.
    #[derive(Default)]
    PipelineType {
        /// V1.
        #[default]
        V1 = "V1",
        /// V2: variables, triggers, execution modes, conditions.
        V2 = "V2",
    }
);

wire_enum!(
    /// `PipelineExecutionStatus`.
    #[derive(Default)]
    ExecutionStatus {
        /// Running.
        #[default]
        InProgress = "InProgress",
        /// Stop asked; running actions finish or are abandoned.
        Stopping = "Stopping",
        /// Stopped.
        Stopped = "Stopped",
        /// Every stage succeeded.
        Succeeded = "Succeeded",
        /// A newer execution took its place.
        Superseded = "Superseded",
        /// A stage failed.
        Failed = "Failed",
        /// The pipeline was updated or deleted while it ran.
        Cancelled = "Cancelled",
    }
);

impl ExecutionStatus {
    /// Whether the execution still runs (in progress or stopping).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            ExecutionStatus::InProgress | ExecutionStatus::Stopping
        )
    }
}

wire_enum!(
    /// `StageExecutionStatus`.
    StageStatus {
        /// Cancelled with its execution.
        Cancelled = "Cancelled",
        /// Running.
        InProgress = "InProgress",
        /// An action failed.
        Failed = "Failed",
        /// Stopped.
        Stopped = "Stopped",
        /// Stopping.
        Stopping = "Stopping",
        /// Every action succeeded.
        Succeeded = "Succeeded",
        /// Skipped (a condition's result).
        Skipped = "Skipped",
    }
);

wire_enum!(
    /// `ActionExecutionStatus`.
    ActionStatus {
        /// Running.
        InProgress = "InProgress",
        /// Abandoned by a stop or an update.
        Abandoned = "Abandoned",
        /// Succeeded.
        Succeeded = "Succeeded",
        /// Failed.
        Failed = "Failed",
    }
);

wire_enum!(
    /// `StageRetryMode`: which actions of a failed stage a retry runs again.
    RetryMode {
        /// The failed ones; those that succeeded keep their results.
        FailedActions = "FAILED_ACTIONS",
        /// All of them, from the first run order.
        AllActions = "ALL_ACTIONS",
    }
);

wire_enum!(
    /// `ExecutionType`.
    #[derive(Default)]
    ExecutionType {
        /// A run of the pipeline.
        #[default]
        Standard = "STANDARD",
        /// A rollback of a stage.
        Rollback = "ROLLBACK",
    }
);

wire_enum!(
    /// `TriggerType`: what started an execution.
    TriggerType {
        /// The pipeline was created.
        CreatePipeline = "CreatePipeline",
        /// StartPipelineExecution.
        StartPipelineExecution = "StartPipelineExecution",
        /// A source change found by polling.
        PollForSourceChanges = "PollForSourceChanges",
        /// A webhook.
        Webhook = "Webhook",
        /// An event rule.
        CloudWatchEvent = "CloudWatchEvent",
        /// PutActionRevision.
        PutActionRevision = "PutActionRevision",
        /// A V2 trigger.
        WebhookV2 = "WebhookV2",
        /// RollbackStage.
        ManualRollback = "ManualRollback",
        /// A rollback on failure.
        AutomatedRollback = "AutomatedRollback",
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wire_shape_round_trips_with_unknown_members() {
        let wire = json!({
            "name": "p", "roleArn": "arn:aws:iam::000000000000:role/r",
            "artifactStore": {"type": "S3", "location": "b"},
            "stages": [
                {"name": "Source", "actions": [{"name": "s", "runOrder": 1,
                    "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"},
                    "outputArtifacts": [{"name": "out"}], "inputArtifacts": [],
                    "futureActionMember": {"x": 1}}]},
                {"name": "Deploy", "actions": [{"name": "d",
                    "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                    "inputArtifacts": [{"name": "out"}]}],
                 "onFailure": {"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}},
                 "beforeEntry": {"conditions": [{"result": "FAIL", "rules": [{"name": "r",
                     "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "LambdaInvoke", "version": "1"},
                     "configuration": {"FunctionName": "f"}}]}]}}
            ],
            "version": 3, "executionMode": "QUEUED", "pipelineType": "V2",
            "variables": [{"name": "v", "defaultValue": "1"}],
            "triggers": [{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
                "sourceActionName": "s", "push": [{"branches": {"includes": ["main"]}}]}}],
            "futurePipelineMember": true
        });
        let typed = Declaration::from_value(&wire).unwrap();
        assert_eq!(typed.execution_mode(), ExecutionMode::Queued);
        assert_eq!(typed.stages[0].actions[0].run_order(), 1);
        assert_eq!(typed.stages[1].actions[0].run_order(), 1);
        assert_eq!(typed.artifact_bucket("any"), "b");
        assert_eq!(typed.variable_defaults()["v"], "1");
        assert_eq!(typed.to_value(), wire);
    }

    #[test]
    fn statuses_are_written_as_aws_writes_them() {
        assert_eq!(
            serde_json::to_value(ExecutionStatus::InProgress).unwrap(),
            "InProgress"
        );
        assert_eq!(ExecutionMode::Parallel.as_str(), "PARALLEL");
        assert_eq!(
            serde_json::from_value::<StageStatus>(json!("Skipped")).unwrap(),
            StageStatus::Skipped
        );
        assert!(ExecutionStatus::Stopping.is_running());
        assert!(!ExecutionStatus::Cancelled.is_running());
    }
}
