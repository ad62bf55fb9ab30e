//! The Amazon ECR source action: the image a tag names (`ImageTag`, `latest` by default) in a
//! repository (`RepositoryName`), or the one an `IMAGE_DIGEST` source revision names. Its
//! output artifact holds `imageDetail.json`; its output variables are `RegistryId`,
//! `RepositoryName`, `ImageTag` (not with a digest override, as on AWS), `ImageDigest` and
//! `ImageURI`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::git_source::zip_of;
use super::{body_of, config, failed, store_failure, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::objects::ObjectStore;

/// An image as the action reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// The registry (the account).
    pub registry_id: String,
    /// The repository's URI (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`).
    pub repository_uri: String,
    /// `sha256:…`.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was pushed (epoch seconds).
    pub pushed: f64,
    /// Its size.
    pub size: u64,
}

/// What the action asks of ECR.
pub trait Images: Send + Sync {
    /// The image `tag` or `digest` names in a repository of the account and region, or ECR's
    /// words for why there is none.
    fn image(
        &self,
        account: &str,
        region: &str,
        repository: &str,
        tag: &str,
        digest: Option<&str>,
    ) -> Result<ImageInfo, String>;
}

/// The action.
pub(super) struct EcrSource {
    pub(super) images: Arc<dyn Images>,
    pub(super) objects: Arc<dyn ObjectStore>,
}

impl ActionExecutor for EcrSource {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }
}

async fn run(ctx: &EcrSource, job: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
    let repository = config
        .get("RepositoryName")
        .ok_or_else(|| failed("RepositoryName is not configured"))?;
    let tag = config.get("ImageTag").map_or("latest", String::as_str);
    let digest = job.source_revision.as_deref();
    let image = ctx
        .images
        .image(&job.account, &job.input.region, repository, tag, digest)
        .map_err(failed)?;
    let uri = format!("{}@{}", image.repository_uri, image.digest);
    let pushed = chrono::DateTime::from_timestamp_millis((image.pushed * 1000.0) as i64)
        .unwrap_or_default()
        .format("%a %b %d %H:%M:%S UTC %Y")
        .to_string();
    let detail = json!({
        "ImageSizeInBytes": image.size.to_string(),
        "ImageDigest": image.digest,
        "Version": "1.0",
        "ImagePushedAt": pushed,
        "RegistryId": image.registry_id,
        "RepositoryName": repository,
        "ImageURI": uri,
        "ImageTags": image.tags,
    });
    let zip = zip_of("imageDetail.json", detail.to_string().as_bytes())?;
    for artifact in &job.planned_outputs {
        let location = &artifact.s3location;
        ctx.objects
            .put(
                &location.bucket,
                &location.key,
                &Default::default(),
                body_of(zip.clone().into()),
            )
            .await
            .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    }
    let mut variables: std::collections::BTreeMap<String, String> = [
        ("RegistryId".to_string(), image.registry_id.clone()),
        ("RepositoryName".to_string(), repository.clone()),
        ("ImageDigest".to_string(), image.digest.clone()),
        ("ImageURI".to_string(), uri),
    ]
    .into();
    if digest.is_none() {
        variables.insert("ImageTag".into(), tag.to_string());
    }
    Ok(ActionOutput {
        output_artifacts: job.planned_outputs.clone(),
        external_execution_id: Some(image.digest.clone()),
        external_execution_summary: Some(format!("Image digest: {}", image.digest)),
        output_variables: variables,
        revision: Some(image.digest),
    })
}
