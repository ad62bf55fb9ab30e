//! The S3 deploy action: puts the input artifact into a bucket, as one object (`Extract` false,
//! under `ObjectKey`) or as the files of the zip it is (`Extract` true, under the `ObjectKey`
//! prefix when one is given). `CacheControl` is stored on every object written; `CannedACL` is
//! accepted and has no effect (the embedded S3 has no ACLs).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{
    body_of, config, failed, file_body, read_artifact, store_failure, ActionExecutor, ActionJob,
    Unpacking,
};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::objects::{ObjectStore, PutAttributes};

/// Deploys to S3.
pub(super) struct S3Deploy {
    objects: Arc<dyn ObjectStore>,
    unpacking: Unpacking,
}

impl S3Deploy {
    pub(super) fn new(objects: Arc<dyn ObjectStore>, unpacking: Unpacking) -> Self {
        S3Deploy { objects, unpacking }
    }
}

impl ActionExecutor for S3Deploy {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }
}

async fn run(ctx: &S3Deploy, run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let config = config(run);
    let bucket = config
        .get("BucketName")
        .ok_or_else(|| failed("BucketName is not configured"))?;
    let extract = config
        .get("Extract")
        .is_some_and(|e| e.eq_ignore_ascii_case("true"));
    let input = run
        .input
        .input_artifacts
        .first()
        .ok_or_else(|| failed("The S3 deploy action has no input artifact"))?;
    let bytes = read_artifact(ctx.objects.as_ref(), input).await?;
    let cache_control = config.get("CacheControl").cloned();
    if !extract {
        let key = config
            .get("ObjectKey")
            .ok_or_else(|| failed("ObjectKey must be configured when Extract is false"))?;
        let attributes = PutAttributes {
            content_type: None,
            cache_control,
        };
        let put = ctx
            .objects
            .put(bucket, key, &attributes, body_of(bytes))
            .await
            .map_err(|e| store_failure(e, bucket, key))?;
        return Ok(ActionOutput {
            external_execution_id: Some(put.etag.chars().take(8).collect()),
            external_execution_summary: Some("Deployment Succeeded".into()),
            ..Default::default()
        });
    }
    let prefix = config
        .get("ObjectKey")
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty());
    // Unpacked to disk within the limits, then uploaded file by file from there.
    let (_scratch, files) = ctx.unpacking.unpack(bytes, &input.name).await?;
    let count = files.len();
    for unpacked in files {
        let name = unpacked.path;
        let key = match &prefix {
            Some(prefix) => format!("{prefix}/{name}"),
            None => name.clone(),
        };
        let attributes = PutAttributes {
            content_type: Some(content_type_of(&name).to_string()),
            cache_control: cache_control.clone(),
        };
        ctx.objects
            .put(bucket, &key, &attributes, file_body(unpacked.file))
            .await
            .map_err(|e| store_failure(e, bucket, &key))?;
    }
    Ok(ActionOutput {
        external_execution_id: Some(format!("{count} files")),
        external_execution_summary: Some("Deployment Succeeded".into()),
        ..Default::default()
    })
}

/// The Content-Type S3 deploy gives a file, by its extension.
fn content_type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" => "application/json",
        "txt" => "text/plain",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
