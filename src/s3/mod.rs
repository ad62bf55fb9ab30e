//! The embedded S3 service: the part of S3 that pipelines and the CodePipeline tutorial need,
//! on the same endpoint, path-style (`/bucket/key`) and virtual-host style
//! (`Host: bucket.localhost:4566`).
//!
//! s3s speaks the S3 wire protocol (routing, XML, error documents); [`api`] maps its operations to
//! the [`store::LocalStore`], which keeps bytes in files and buckets, keys and versions in the
//! event log, so everything survives restarts.
//!
//! # LIMITATIONS
//! - Signatures are not checked and there are no ACLs or bucket policies: any credentials may do
//!   anything. `CannedACL` and the like are accepted and ignored.
//! - Served: buckets (create with location, head, delete, list, location, versioning), objects
//!   (put, get with range, part and version, head, delete with delete markers, delete many,
//!   copy, tagging), listings (v1, v2, versions), multipart uploads (with UploadPartCopy and
//!   ListMultipartUploads). Other S3 operations answer `NotImplemented`.
//! - `Content-MD5` is verified (`InvalidDigest`, `BadDigest`); the other checksums clients send
//!   (`x-amz-checksum-*`, trailing checksums) are accepted but neither verified nor returned.
//!   ETags are MD5s as on S3 (`<md5 of part md5s>-<n>` for multipart).
//! - A request body that sends nothing for `body_timeout_seconds` is refused with
//!   `RequestTimeout`; a body that keeps trickling is not cut off (as on S3).
//! - ListObjectVersions pages by key: a key's versions are never split across pages.
//! - Bucket names are global to the emulator, as on S3, not per account.

pub mod api;
pub mod bridge;
pub mod events;
pub mod keys;
pub mod objects;
pub mod remote;
pub mod store;

use std::sync::Arc;

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// The owner id shown in listings.
pub const OWNER_ID: &str = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";

/// The region a request was signed for, passed to the S3 handlers.
#[derive(Debug, Clone)]
pub struct RequestRegion(pub String);

/// Virtual-host addressing: `bucket.localhost[:port]` and `bucket.s3.localhost[:port]` name a
/// bucket; any other host is path-style.
struct LocalHosts;

impl S3Host for LocalHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let bucket = [
            "s3.localhost.localstack.cloud",
            "localhost.localstack.cloud",
            "s3.localhost",
            "localhost",
        ]
        .iter()
        .find_map(|domain| name.strip_suffix(domain).and_then(|b| b.strip_suffix('.')))
        .filter(|b| !b.is_empty());
        Ok(match bucket {
            Some(b) => VirtualHost::new(name).with_bucket(b),
            None => VirtualHost::new(name),
        })
    }
}

/// The S3 service as mounted on the endpoint.
pub struct S3Service {
    service: s3s::service::S3Service,
    /// How long a request body may send nothing before it is refused (`RequestTimeout`).
    idle: std::time::Duration,
    /// The store, which pipeline actions use in-process.
    pub store: Arc<store::LocalStore>,
}

impl S3Service {
    /// Serves `store`; `default_region` is used for buckets when a request names none; a body
    /// that sends nothing for `idle` is refused.
    pub fn new(
        store: Arc<store::LocalStore>,
        default_region: String,
        idle: std::time::Duration,
    ) -> Self {
        let mut builder = s3s::service::S3ServiceBuilder::new(api::EmbeddedS3::new(
            store.clone(),
            default_region,
        ));
        builder.set_host(LocalHosts);
        S3Service {
            service: builder.build(),
            idle,
            store,
        }
    }

    /// Serves one request.
    pub async fn handle(
        &self,
        req: &actix_web::HttpRequest,
        payload: actix_web::web::Payload,
        region: Option<String>,
    ) -> actix_web::HttpResponse {
        bridge::serve(&self.service, req, payload, region, self.idle).await
    }
}
