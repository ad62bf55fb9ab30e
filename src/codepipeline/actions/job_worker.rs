//! Custom and third-party actions: their work is done by a job worker outside the pipeline,
//! which polls for the action's job (PollForJobs, PollForThirdPartyJobs) and reports its result
//! (PutJobSuccessResult, PutJobFailureResult), completing the action from outside. Here the
//! action only waits: it fails as timed out once `job_timeout_seconds` have passed since it
//! started (AWS: 24 hours), a deadline that a restart keeps.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails, JOB_TIMED_OUT};

/// Waits for a job worker.
pub(super) struct JobWorker {
    /// How long an action waits for its worker.
    pub timeout: Duration,
}

impl ActionExecutor for JobWorker {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(async move {
            let deadline = job.started + self.timeout.as_secs_f64();
            let left = (deadline - crate::aws::now_epoch()).max(0.0);
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
            Err(ErrorDetails {
                code: JOB_TIMED_OUT.into(),
                message: format!(
                    "The job worker did not complete the job of action {} within {} seconds",
                    job.action,
                    self.timeout.as_secs()
                ),
            })
        })
    }
}
