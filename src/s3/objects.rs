//! The object store as pipeline actions see it: read a source object (by version), write an
//! artifact, check a bucket's versioning. The embedded store implements it in-process; an
//! external S3 (MinIO, LocalStack, AWS) implements it through aws-sdk-s3.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::events::Versioning;
use super::store::{BodyStream, LocalStore, S3StoreError};

/// What a reader or writer learns about an object version.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// The version id; `None` for the `null` version.
    pub version_id: Option<String>,
    /// The ETag without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// Attributes a pipeline action gives an object it writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutAttributes {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
}

/// Object storage for pipeline sources and artifacts.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The bucket's versioning state (an S3 source action needs `Enabled`).
    async fn versioning(&self, bucket: &str) -> Result<Versioning, S3StoreError>;

    /// Metadata of the newest version, or of `version_id`.
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectInfo, S3StoreError>;

    /// The bytes of the newest version, or of `version_id`.
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(ObjectInfo, BodyStream), S3StoreError>;

    /// Writes `body` as the newest version of `key`.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        attributes: &PutAttributes,
        body: BodyStream,
    ) -> Result<ObjectInfo, S3StoreError>;
}

fn info(v: &super::events::Version) -> ObjectInfo {
    ObjectInfo {
        version_id: (v.version_id != "null").then(|| v.version_id.clone()),
        etag: v.etag.clone(),
        size: v.size,
    }
}

#[async_trait]
impl ObjectStore for Arc<LocalStore> {
    async fn versioning(&self, bucket: &str) -> Result<Versioning, S3StoreError> {
        Ok(self.bucket(bucket)?.versioning)
    }

    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectInfo, S3StoreError> {
        Ok(info(&self.get_object(bucket, key, version_id)?.0))
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(ObjectInfo, BodyStream), S3StoreError> {
        let (version, path) = self.get_object(bucket, key, version_id)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| S3StoreError::Io(e.to_string()))?;
        let body = futures_util::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 256 * 1024];
            match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e.to_string()), file)),
            }
        })
        .boxed();
        Ok((info(&version), body))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        attributes: &PutAttributes,
        body: BodyStream,
    ) -> Result<ObjectInfo, S3StoreError> {
        let attributes = super::events::Version {
            content_type: attributes.content_type.clone(),
            cache_control: attributes.cache_control.clone(),
            ..super::events::Version::blank()
        };
        let v = self.put_object(bucket, key, attributes, body, None).await?;
        Ok(info(&v))
    }
}
