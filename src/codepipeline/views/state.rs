//! GetPipelineState's stage states, built one way for the API and for the history's replays.

use serde_json::{json, Value};

use super::executions::LatestAction;
use crate::codepipeline::execution::StageRun;
use crate::codepipeline::model::Stage;

/// The wire shape `StageState` of a declared stage (less its inbound transition and waiting
/// executions, which only the live pipeline has): its latest execution, as (execution id, its
/// last attempt at the stage), and the latest run of each of its actions, as `action` finds
/// them. A stage retried shows how often in `retryStageMetadata`.
pub fn stage_state<'a>(
    stage: &Stage,
    latest: Option<(&str, &StageRun)>,
    action: impl Fn(&str) -> Option<&'a LatestAction>,
) -> Value {
    let actions: Vec<Value> = stage
        .actions
        .iter()
        .map(|a| match action(&a.name) {
            Some(run) => run.action_state(&a.name),
            None => json!({"actionName": a.name}),
        })
        .collect();
    let mut state = json!({"stageName": stage.name, "actionStates": actions});
    if let Some((id, run)) = latest {
        state["latestExecution"] =
            json!({"pipelineExecutionId": id, "status": run.status, "type": "STANDARD"});
        use crate::codepipeline::conditions::ConditionKind;
        for (kind, field) in [
            (ConditionKind::BeforeEntry, "beforeEntryConditionState"),
            (ConditionKind::OnSuccess, "onSuccessConditionState"),
            (ConditionKind::OnFailure, "onFailureConditionState"),
        ] {
            if let Some(check) = run.condition(kind) {
                state[field] = check.state();
            }
        }
        if run.attempt > 1 {
            state["retryStageMetadata"] = json!({
                "autoStageRetryAttempt": run.automatic_retries,
                "manualStageRetryAttempt": run.attempt - 1 - run.automatic_retries.min(run.attempt - 1),
                "latestRetryTrigger": if run.automatic { "AutomatedStageRetry" } else { "ManualStageRetry" },
            });
        }
    }
    state
}
