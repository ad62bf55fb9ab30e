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
use crate::lambda::Lambda;

/// Invokes functions of the embedded Lambda.
pub(super) struct LambdaInvoke {
    /// The functions.
    pub lambda: Arc<Lambda>,
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
        let name = crate::lambda::api::function_name(&given);
        let function = self
            .lambda
            .function(&run.account, &run.input.region, &name)
            .ok_or_else(|| ErrorDetails {
                code: "ConfigurationError".into(),
                message: format!(
                    "Function not found: arn:aws:lambda:{}:{}:function:{name}",
                    run.input.region, run.account
                ),
            })?;
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
            let lambda = self.lambda.clone();
            let request_id = job_id.clone();
            actix_rt::spawn(async move {
                let ran = lambda
                    .invoke(&function, &request_id, event.to_string().into())
                    .await;
                if let crate::lambda::runtime::Outcome::Error(e) = ran.outcome {
                    log::info!(
                        "the function {} failed on job {request_id}: {}",
                        function.name,
                        String::from_utf8_lossy(&e)
                    );
                }
            });
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
        Err(ErrorDetails {
            code: JOB_TIMED_OUT.into(),
            message: format!(
                "The Lambda function {name} did not report the result of job {job_id} within {} seconds",
                self.job_timeout.as_secs()
            ),
        })
    }
}
