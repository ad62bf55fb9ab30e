//! Rollbacks: what a rollback execution runs (one stage again, with what its target's earlier
//! stages produced), for RollbackStage and for a stage declared to roll back on failure
//! (`onFailure: {result: ROLLBACK}`), which asks for one when it fails.

use super::actors::StartExecution;
use super::execution::{Execution, Inherited, Rollback, Trigger};
use super::model::{ActionStatus, Declaration, StageStatus};

/// A failed stage whose declaration asks for an automatic rollback.
#[derive(Debug, Clone)]
pub struct AutomaticRollback {
    /// The pipeline's key.
    pub pipeline_key: String,
    /// The execution that failed.
    pub execution_id: String,
    /// The pipeline version it ran.
    pub pipeline_version: u64,
    /// The stage that failed.
    pub stage: String,
}

/// Whether `target` may be rolled back to in `stage`: a standard execution of `version` in which
/// the stage succeeded.
pub fn is_target(target: &Execution, version: u64, stage: &str) -> bool {
    target.rollback.is_none()
        && target.pipeline_version == version
        && target
            .stage_run(stage)
            .is_some_and(|s| s.status == StageStatus::Succeeded)
}

/// The start of an execution that runs `stage` of `declaration` again as `target` ran it.
pub fn start(
    declaration: &Declaration,
    target: &Execution,
    stage: &str,
    trigger: Trigger,
) -> StartExecution {
    let index = declaration
        .stages
        .iter()
        .position(|s| s.name == stage)
        .unwrap_or(0);
    let earlier: Vec<&str> = declaration.stages[..index]
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let inherited = target
        .runs
        .iter()
        .filter(|r| earlier.contains(&r.stage.as_str()) && r.status == ActionStatus::Succeeded)
        .filter_map(Inherited::of)
        .collect();
    let trigger_type = trigger.trigger_type.clone();
    StartExecution {
        trigger,
        variables: target.variables.clone(),
        source_revisions: target.source_revisions.clone(),
        client_request_token: None,
        rollback: Some(Box::new(Rollback {
            target: target.id.clone(),
            stage: stage.to_string(),
            trigger_type,
            inherited,
        })),
    }
}

/// The automatic rollback a just-finished execution asks for, if its failed stage is declared
/// to roll back (a rollback that fails asks for none).
pub fn asked_by(state: &Execution, pipeline_key: &str) -> Option<AutomaticRollback> {
    if state.rollback.is_some() || state.status != super::model::ExecutionStatus::Failed {
        return None;
    }
    let failed = state
        .current_stage()
        .filter(|s| s.status == StageStatus::Failed)?;
    let declared = state.declaration.stage(&failed.name)?;
    use super::conditions::ConditionKind;
    let engaged = |kind| {
        failed
            .condition(kind)
            .is_some_and(|c| c.engaged() == Some("ROLLBACK"))
    };
    // onFailure rolls back by its result, or by its condition's when it has one; onSuccess by
    // its condition's.
    let on_failure = declared.on_failure.as_ref().is_some_and(|f| {
        let declared_conditions = f.conditions.as_ref().is_some_and(|c| !c.is_empty());
        if declared_conditions {
            engaged(ConditionKind::OnFailure)
        } else {
            f.result.as_deref() == Some("ROLLBACK")
        }
    });
    let rolls_back = on_failure || engaged(ConditionKind::OnSuccess);
    rolls_back.then(|| AutomaticRollback {
        pipeline_key: pipeline_key.to_string(),
        execution_id: state.id.clone(),
        pipeline_version: state.pipeline_version,
        stage: failed.name.clone(),
    })
}

/// How many of a pipeline's newest executions an automatic rollback looks through for its
/// target.
const LOOKBACK: usize = 1000;

/// Starts the automatic rollback a failed stage asked for, through the pipeline's actor: to the
/// newest execution of the same pipeline version in which the stage succeeded. Without one (the
/// stage never succeeded, or the pipeline was updated since), nothing is rolled back.
pub async fn run_automatic(svc: &super::CodePipelineService, ask: AutomaticRollback) {
    let Some(key) = super::ids::PipelineKey::parse(&ask.pipeline_key) else {
        return;
    };
    let Some((output, version)) = svc
        .views
        .with(&key.stream(), |v| (v.get_output.clone(), v.version))
    else {
        return;
    };
    let declaration = match super::views::declaration_of_output(&output) {
        Some(d) if version == ask.pipeline_version => d,
        _ => return,
    };
    if declaration.execution_mode() == super::model::ExecutionMode::Parallel {
        return;
    }
    let mut target = None;
    let walked = svc
        .execution_views
        .walk_newest(&key.key(), 0, LOOKBACK, |summary, _| {
            let candidate = summary.id != ask.execution_id
                && summary.rollback_target.is_none()
                && summary
                    .stages
                    .iter()
                    .rev()
                    .find(|s| s.name == ask.stage)
                    .is_some_and(|s| s.status == StageStatus::Succeeded);
            if !candidate {
                return Ok::<bool, crate::eventstore::StoreError>(true);
            }
            let execution = svc.execution_views.get(&summary.id)?;
            match execution.filter(|e| is_target(e, version, &ask.stage)) {
                Some(e) => {
                    target = Some(e);
                    Ok(false)
                }
                None => Ok(true),
            }
        });
    if let Err(e) = walked {
        log::error!(
            "the automatic rollback of {} found no target: {e}",
            key.name
        );
        return;
    }
    let Some(target) = target else {
        log::info!(
            "stage {} of pipeline {} failed and rolls back, but it never succeeded in version {version}: nothing to roll back to",
            ask.stage,
            key.name
        );
        return;
    };
    let trigger = Trigger {
        trigger_type: "AutomatedRollback".into(),
        trigger_detail: Some(format!(
            "Stage {} failed in pipeline execution {}",
            ask.stage, ask.execution_id
        )),
    };
    let started = svc
        .registry
        .start(&key, start(&declaration, &target, &ask.stage, trigger))
        .await;
    match started {
        Ok(id) => log::info!(
            "stage {} of pipeline {} failed: rollback execution {id} runs it as execution {} did",
            ask.stage,
            key.name,
            target.id
        ),
        Err(e) => log::error!(
            "the automatic rollback of stage {} of pipeline {} did not start: {e:?}",
            ask.stage,
            key.name
        ),
    }
}

/// Sets an execution's `executionType` and, for a rollback (to `rollback_target`),
/// `rollbackMetadata`, as GetPipelineExecution, ListPipelineExecutions and the history show them.
pub fn execution_type(out: &mut serde_json::Value, rollback_target: Option<&String>) {
    match rollback_target {
        Some(target) => {
            out["executionType"] = "ROLLBACK".into();
            out["rollbackMetadata"] =
                serde_json::json!({ "rollbackTargetPipelineExecutionId": target });
        }
        None => out["executionType"] = "STANDARD".into(),
    }
}
