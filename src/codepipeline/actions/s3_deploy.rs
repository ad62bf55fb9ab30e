//! The S3 deploy action: puts the input artifact into a bucket.

use super::{body_of, failed, read_all, store_failure, ActionContext};
use crate::codepipeline::execution::{ActionOutput, ActionRun, ErrorDetails};

pub(super) async fn run(
    ctx: &ActionContext,
    run: &ActionRun,
) -> Result<ActionOutput, ErrorDetails> {
    let config = &run.input.resolved_configuration;
    let bucket = config
        .get("BucketName")
        .ok_or_else(|| failed("BucketName is not configured"))?;
    let extract = config
        .get("Extract")
        .is_some_and(|e| e.eq_ignore_ascii_case("true"));
    if extract {
        return Err(failed(
            "S3 deploy with Extract=true is not supported by codepipeline-local yet",
        ));
    }
    let key = config
        .get("ObjectKey")
        .ok_or_else(|| failed("ObjectKey must be configured when Extract is false"))?;
    let input = run
        .input
        .input_artifacts
        .first()
        .ok_or_else(|| failed("The S3 deploy action has no input artifact"))?;
    let location = &input.s3location;
    let (_, body) = ctx
        .objects
        .get(&location.bucket, &location.key, None)
        .await
        .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    let bytes = read_all(body).await?;
    let put = ctx
        .objects
        .put(bucket, key, None, body_of(bytes))
        .await
        .map_err(|e| store_failure(e, bucket, key))?;
    Ok(ActionOutput {
        external_execution_id: Some(put.etag.chars().take(8).collect()),
        external_execution_summary: Some("Deployment Succeeded".into()),
        ..Default::default()
    })
}
