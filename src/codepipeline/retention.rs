//! The history's retention (`history_retention_days`): finished executions older than it leave
//! the history. Each pipeline's go through its actor, the one door: it records
//! `PipelineExecutionsExpired`, which the views fold (so a checkpoint older than it still loses
//! them when the log after it is folded), then removes their streams from the log.

use std::time::Duration;

use crate::codepipeline::actors::PipelineRegistry;
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::pipeline::PipelineCommand;
use crate::codepipeline::views::executions::ExecutionViews;
use crate::codepipeline::views::PipelineViews;

/// Executions one `PipelineExecutionsExpired` event names at most.
const BATCH: usize = 500;

/// How often the history is swept for a retention of `days`: a quarter of it, between 0.2 s and
/// an hour.
pub fn sweep_interval(days: f64) -> Duration {
    Duration::from_secs_f64((days * 86_400.0 / 4.0).clamp(0.2, 3_600.0))
}

/// Removes every finished execution last updated more than `days` ago. Returns how many left.
pub async fn sweep(
    registry: &PipelineRegistry,
    pipelines: &PipelineViews,
    executions: &ExecutionViews,
    days: f64,
) -> usize {
    let now = crate::aws::now_epoch();
    let cutoff = now - days * 86_400.0;
    let mut expired = 0;
    for (key, _, _) in pipelines.current_versions() {
        let Some(pipeline) = PipelineKey::parse(&key) else {
            continue;
        };
        loop {
            let ids = executions.expired(&key, cutoff, BATCH);
            if ids.is_empty() {
                break;
            }
            let count = ids.len();
            let command = PipelineCommand::Expire {
                executions: ids,
                at: now,
            };
            if let Err(e) = registry.execute(&pipeline, command).await {
                log::warn!("executions of {key} could not expire: {e:?}");
                break;
            }
            expired += count;
            if count < BATCH {
                break;
            }
        }
    }
    expired
}
