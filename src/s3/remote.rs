//! An external S3 (MinIO, LocalStack, AWS) as the object store, through aws-sdk-s3.

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use futures_util::StreamExt;

use super::events::Versioning;
use super::objects::{ObjectInfo, ObjectStore, PutAttributes};
use super::store::{BodyStream, S3StoreError};

/// Where the external S3 is and how to sign for it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Region to sign for.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// The object store on an external S3.
pub struct RemoteStore {
    client: aws_sdk_s3::Client,
    /// Where uploads are staged before they are sent (their length must be known).
    staging: std::path::PathBuf,
}

impl RemoteStore {
    /// A store on the S3 at `config.endpoint`, path-style; `staging` is a directory of ours.
    pub fn new(config: &RemoteConfig, staging: std::path::PathBuf) -> Self {
        let sdk = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(config.region.clone()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
                None,
                None,
                "codepipeline-local configuration",
            ))
            .endpoint_url(&config.endpoint)
            .force_path_style(true)
            .build();
        RemoteStore {
            client: aws_sdk_s3::Client::from_conf(sdk),
            staging,
        }
    }
}

fn remote_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: aws_sdk_s3::error::SdkError<E>,
) -> S3StoreError {
    match e.code() {
        Some("NoSuchBucket") => S3StoreError::NoSuchBucket,
        Some("NoSuchKey") | Some("NotFound") => S3StoreError::NoSuchKey,
        Some("NoSuchVersion") => S3StoreError::NoSuchVersion,
        _ => S3StoreError::Io(format!("external S3: {e:?}")),
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_string()
}

/// What an answer's headers say of the object.
fn object_info(version_id: Option<&str>, etag: Option<&str>, length: Option<i64>) -> ObjectInfo {
    ObjectInfo {
        version_id: version_id.filter(|v| *v != "null").map(str::to_string),
        etag: unquote(etag),
        size: length.unwrap_or(0).max(0) as u64,
    }
}

#[async_trait]
impl ObjectStore for RemoteStore {
    async fn versioning(&self, bucket: &str) -> Result<Versioning, S3StoreError> {
        let status = match self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out.status().map(|s| s.as_str().to_string()),
            // Some S3-compatible servers answer with another XML root than S3's
            // `VersioningConfiguration`, which the SDK refuses to parse; their `Status` is read here.
            Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => {
                let body = e
                    .raw_response()
                    .and_then(|r| r.body().bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(body);
                text.split_once("<Status>")
                    .and_then(|(_, rest)| rest.split_once("</Status>"))
                    .map(|(status, _)| status.to_string())
            }
            Err(e) => return Err(remote_error(e)),
        };
        Ok(match status.as_deref() {
            Some(s) if s == BucketVersioningStatus::Enabled.as_str() => Versioning::Enabled,
            Some(_) => Versioning::Suspended,
            None => Versioning::Unversioned,
        })
    }

    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectInfo, S3StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map_err(remote_error)?;
        Ok(object_info(
            out.version_id(),
            out.e_tag(),
            out.content_length(),
        ))
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(ObjectInfo, BodyStream), S3StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map_err(remote_error)?;
        let info = object_info(out.version_id(), out.e_tag(), out.content_length());
        let body = futures_util::stream::unfold(out.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(|e| e.to_string()), body))
        })
        .boxed();
        Ok((info, body))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        attributes: &PutAttributes,
        mut body: BodyStream,
    ) -> Result<ObjectInfo, S3StoreError> {
        let io = |e: std::io::Error| S3StoreError::Io(e.to_string());
        tokio::fs::create_dir_all(&self.staging).await.map_err(io)?;
        let path = self.staging.join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(S3StoreError::Io)?;
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                    .await
                    .map_err(io)?;
            }
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(io)?;
            let stream = ByteStream::from_path(&path)
                .await
                .map_err(|e| S3StoreError::Io(e.to_string()))?;
            let out = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_content_type(attributes.content_type.clone())
                .set_cache_control(attributes.cache_control.clone())
                .body(stream)
                .send()
                .await
                .map_err(remote_error)?;
            let size = tokio::fs::metadata(&path).await.map_err(io)?.len();
            Ok(ObjectInfo {
                version_id: out
                    .version_id()
                    .filter(|v| *v != "null")
                    .map(str::to_string),
                etag: unquote(out.e_tag()),
                size,
            })
        }
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        result
    }
}
