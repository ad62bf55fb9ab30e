//! The manual approval action: waits for PutApprovalResult with its token, or fails when its
//! `timeoutInMinutes` (7 days unless declared) has passed. The wait is measured from the action's
//! recorded start, so an approval resumed after a restart keeps its deadline (and its token).

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};

/// AWS's default: an approval waits 7 days.
const DEFAULT_TIMEOUT_MINUTES: u64 = 7 * 24 * 60;

/// Waits for its answer (PutApprovalResult completes the action from outside).
pub(super) struct ManualApproval;

impl ActionExecutor for ManualApproval {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(job))
    }
}

async fn run(run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let minutes = run.timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    let deadline = run.started + minutes as f64 * 60.0;
    let left = (deadline - crate::aws::now_epoch()).max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(left)).await;
    Err(ErrorDetails {
        code: "JobFailed".into(),
        message: format!("The approval was not answered within {minutes} minutes"),
    })
}
