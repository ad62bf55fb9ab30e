//! The S3 source action: reads a versioned object and makes it the output artifact.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{body_of, config, failed, read_all, store_failure, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::events::Versioning;
use crate::s3::objects::ObjectStore;

/// Reads a source from S3.
pub(super) struct S3Source {
    objects: Arc<dyn ObjectStore>,
}

impl S3Source {
    pub(super) fn new(objects: Arc<dyn ObjectStore>) -> Self {
        S3Source { objects }
    }
}

impl ActionExecutor for S3Source {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }
}

async fn run(ctx: &S3Source, run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let revision = run.source_revision.as_deref();
    let config = config(run);
    let bucket = config
        .get("S3Bucket")
        .ok_or_else(|| failed("S3Bucket is not configured"))?;
    let key = config
        .get("S3ObjectKey")
        .ok_or_else(|| failed("S3ObjectKey is not configured"))?;
    let versioning = ctx
        .objects
        .versioning(bucket)
        .await
        .map_err(|e| store_failure(e, bucket, key))?;
    if versioning != Versioning::Enabled {
        return Err(failed(format!(
            "The source bucket {bucket} does not have versioning enabled; an S3 source action needs a versioned bucket"
        )));
    }
    let (info, body) = ctx
        .objects
        .get(bucket, key, revision)
        .await
        .map_err(|e| store_failure(e, bucket, key))?;
    let bytes = read_all(body).await?;
    for artifact in &run.planned_outputs {
        let location = &artifact.s3location;
        ctx.objects
            .put(
                &location.bucket,
                &location.key,
                &Default::default(),
                body_of(bytes.clone()),
            )
            .await
            .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    }
    let version = info.version_id.clone().unwrap_or_else(|| "null".into());
    Ok(ActionOutput {
        output_artifacts: run.planned_outputs.clone(),
        external_execution_id: Some(version.clone()),
        external_execution_summary: Some(format!("Amazon S3 version id: {version}")),
        output_variables: [
            ("VersionId".to_string(), version.clone()),
            ("ETag".to_string(), info.etag),
        ]
        .into(),
        revision: Some(version),
    })
}
