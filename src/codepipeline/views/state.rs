//! GetPipelineState's stage states, built one way for the API and for the history's replays.

use serde_json::{json, Value};

use super::executions::LatestAction;
use crate::codepipeline::model::{Stage, StageStatus};

/// The wire shape `StageState` of a declared stage (less its inbound transition and waiting
/// executions, which only the live pipeline has): its latest execution, as (execution id,
/// status), and the latest run of each of its actions, as `action` finds them.
pub fn stage_state<'a>(
    stage: &Stage,
    latest: Option<(&str, StageStatus)>,
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
    if let Some((id, status)) = latest {
        state["latestExecution"] =
            json!({"pipelineExecutionId": id, "status": status, "type": "STANDARD"});
    }
    state
}
