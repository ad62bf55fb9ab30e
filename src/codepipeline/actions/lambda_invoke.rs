//! The Lambda invoke action (`Invoke/AWS/Lambda/1`): invokes the function named by
//! `FunctionName` with AWS's `CodePipeline.job` event (its `UserParameters`, the input and output
//! artifacts, artifact credentials, the continuation token). The function reports the action's
//! result itself, with PutJobSuccessResult or PutJobFailureResult on its job; a success with a
//! continuation token invokes it again with the token. A job whose function reports nothing fails
//! the action once `lambda_job_timeout_seconds` have passed (AWS: 20 minutes).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::{config, failed, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{
    artifact_credentials, ActionOutput, ErrorDetails, JOB_TIMED_OUT,
};
/// What the Lambda invoke action asks of Lambda.
pub trait Functions: Send + Sync {
    /// Whether the function (a name or an ARN) exists in the account and region.
    fn exists(&self, account: &str, region: &str, function: &str) -> bool;

    /// Invokes the function in the background with `event` as request `request_id`: the action
    /// learns its result from the function's own PutJobSuccessResult or PutJobFailureResult.
    fn invoke_detached(
        &self,
        account: &str,
        region: &str,
        function: &str,
        request_id: &str,
        event: String,
    );
}

/// Invokes functions of the embedded Lambda.
pub(super) struct LambdaInvoke {
    /// The functions.
    pub lambda: Arc<dyn Functions>,
    /// How long a job waits for its function's result.
    pub job_timeout: Duration,
}

impl ActionExecutor for LambdaInvoke {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(self.invoke(job))
    }
}

impl LambdaInvoke {
    async fn invoke(&self, run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
        let current = run
            .job
            .as_ref()
            .ok_or_else(|| failed("The action has no job to hand to its function"))?;
        let given = config(run).get("FunctionName").cloned().unwrap_or_default();
        if !self.lambda.exists(&run.account, &run.input.region, &given) {
            return Err(ErrorDetails {
                code: "ConfigurationError".into(),
                message: format!(
                    "Function not found: {given} in account {} and region {}",
                    run.account, run.input.region
                ),
            });
        }
        let job_id = current.job.id.clone();
        let mut configuration = json!({ "FunctionName": given });
        if let Some(user) = config(run).get("UserParameters") {
            configuration["UserParameters"] = user.clone().into();
        }
        let mut data = json!({
            "actionConfiguration": {"configuration": configuration},
            "inputArtifacts": run.input.input_artifacts.iter().map(|a| a.job_json(None)).collect::<Vec<_>>(),
            "outputArtifacts": run.planned_outputs.iter().map(|a| a.job_json(None)).collect::<Vec<_>>(),
            "artifactCredentials": artifact_credentials(&job_id, &run.action_execution_id),
        });
        if let Some(token) = &current.continuation_token {
            data["continuationToken"] = token.clone().into();
        }
        let event =
            json!({"CodePipeline.job": {"id": job_id, "accountId": run.account, "data": data}});
        let deadline = current.queued + self.job_timeout.as_secs_f64();
        let left = deadline - crate::aws::now_epoch();
        if left > 0.0 {
            // The invocation goes on by itself: the function may still run after it reported.
            self.lambda.invoke_detached(
                &run.account,
                &run.input.region,
                &given,
                &job_id,
                event.to_string(),
            );
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
        Err(ErrorDetails {
            code: JOB_TIMED_OUT.into(),
            message: format!(
                "The Lambda function {given} did not report the result of job {job_id} within {} seconds",
                self.job_timeout.as_secs()
            ),
        })
    }
}
