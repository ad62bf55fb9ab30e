//! Action executors: the side effects of a pipeline. Each takes an action run (its resolved
//! configuration, input artifacts and planned output locations) and reports an output or an
//! error; running one twice has the same effect, so an action interrupted by a restart is run
//! again.
//!
//! # LIMITATIONS
//! - Run: S3 source, S3 deploy (with `Extract` true or false), manual approval (no notifications
//!   are sent), CodeBuild (builds run here, see `crate::codebuild`). Every other provider fails
//!   its action with a message naming it.
//! - The CodeBuild action finds its project in the default account (000000000000).

mod codebuild;
mod manual_approval;
mod s3_deploy;
mod s3_source;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::execution::{ActionOutput, ActionRun, ErrorDetails};
use crate::s3::objects::ObjectStore;
use crate::s3::store::{BodyStream, S3StoreError};

/// What executors may use.
#[derive(Clone)]
pub struct ActionContext {
    /// Sources and artifacts.
    pub objects: Arc<dyn ObjectStore>,
    /// Projects and builds, for the CodeBuild action.
    pub codebuild: Arc<crate::codebuild::CodeBuild>,
}

/// A failed action's error.
fn failed(message: impl Into<String>) -> ErrorDetails {
    ErrorDetails {
        code: "JobFailed".into(),
        message: message.into(),
    }
}

/// The message for an object store failure, naming what was asked.
fn store_failure(e: S3StoreError, bucket: &str, key: &str) -> ErrorDetails {
    failed(match e {
        S3StoreError::NoSuchBucket => format!("The bucket {bucket} does not exist"),
        S3StoreError::NoSuchKey => format!("The object {key} does not exist in bucket {bucket}"),
        S3StoreError::NoSuchVersion | S3StoreError::DeleteMarker => {
            format!("The requested version of object {key} does not exist in bucket {bucket}")
        }
        other => format!("Access to s3://{bucket}/{key} failed: {other:?}"),
    })
}

/// Reads a whole object (artifacts are read once and passed on).
async fn read_all(mut body: BodyStream) -> Result<Bytes, ErrorDetails> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(failed)?);
    }
    Ok(Bytes::from(out))
}

/// The bytes of an input artifact, from the artifact store.
async fn read_artifact(
    ctx: &ActionContext,
    artifact: &super::execution::ArtifactDetail,
) -> Result<Bytes, ErrorDetails> {
    let location = &artifact.s3location;
    let (_, body) = ctx
        .objects
        .get(&location.bucket, &location.key, None)
        .await
        .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    read_all(body).await
}

fn body_of(bytes: Bytes) -> BodyStream {
    futures_util::stream::iter([Ok(bytes)]).boxed()
}

/// Runs one action. `source_revision` overrides the revision a source action reads.
pub async fn run(
    ctx: &ActionContext,
    run: &ActionRun,
    source_revision: Option<&str>,
) -> Result<ActionOutput, ErrorDetails> {
    let id = &run.input.action_type_id;
    let kind = (
        id["category"].as_str().unwrap_or_default(),
        id["owner"].as_str().unwrap_or_default(),
        id["provider"].as_str().unwrap_or_default(),
    );
    match kind {
        ("Source", "AWS", "S3") => s3_source::run(ctx, run, source_revision).await,
        ("Deploy", "AWS", "S3") => s3_deploy::run(ctx, run).await,
        ("Approval", "AWS", "Manual") => manual_approval::run(run).await,
        ("Build" | "Test", "AWS", "CodeBuild") => codebuild::run(ctx, run).await,
        (category, owner, provider) => Err(failed(format!(
            "codepipeline-local does not run actions of type {category}/{owner}/{provider} yet"
        ))),
    }
}
