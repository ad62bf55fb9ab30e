//! The registry itself: the OCI distribution API (`/v2/…`) that `docker push`, `oras`, `crane`
//! and `skopeo` speak, over the same repositories as ECR's API. Blobs are stored by digest
//! (`<data dir>/ecr/blobs/sha256/<hex>`), streamed to disk as they arrive and checked against
//! their digest; a manifest put is an image put, through PutImage's own path (so it shows in
//! DescribeImages and starts the pipelines a rule names), after its blobs are checked to exist.
//!
//! # LIMITATIONS
//! - The registry serves the default account (a registry address names none here): a repository
//!   of the server's region, else the one region that has a repository of that name; it asks for
//!   no credentials.
//! - Uploads in progress are kept only until the server stops; cross-repository mounts are
//!   answered by a plain upload; catalog listing (`/v2/_catalog`) and referrers are not served.
//! - An unsigned request whose path starts with `/v2/` is the registry's, so a bucket named `v2`
//!   is reached only with signed (or presigned) requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::Ecr;
use crate::aws::RequestContext;

/// The largest blob a push may upload (as S3's largest single object: 5 GiB).
pub const MAX_BLOB_BYTES: u64 = 5 << 30;

/// The largest manifest (ECR's).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Where blobs and uploads live.
pub struct Registry {
    /// The repositories.
    pub ecr: Arc<Ecr>,
    /// `<data dir>/ecr`.
    pub dir: PathBuf,
    /// The account and region the registry serves.
    pub account: String,
    /// The region.
    pub region: String,
}

/// Whether a request is the registry's: an unsigned (not presigned) request under `/v2/`.
pub fn is_registry(req: &HttpRequest) -> bool {
    let path = req.path();
    let signed = req.headers().get("authorization").is_some_and(|a| {
        a.to_str()
            .is_ok_and(|a| a.starts_with("AWS4-HMAC-SHA256") || a.starts_with("AWS "))
    }) || req.query_string().contains("X-Amz-Signature");
    (path == "/v2" || path.starts_with("/v2/")) && !signed
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header(("Docker-Distribution-API-Version", "registry/2.0"))
        .json(json!({"errors": [{"code": code, "message": message}]}))
}

fn valid_digest(d: &str) -> Option<&str> {
    let hex = d.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

impl Registry {
    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = valid_digest(digest)?;
        Some(self.dir.join("blobs").join("sha256").join(hex))
    }

    fn upload_path(&self, id: &str) -> Option<PathBuf> {
        uuid::Uuid::parse_str(id).ok()?;
        Some(self.dir.join("uploads").join(id))
    }

    /// The region whose repository `name` the registry serves: the server's when it has one,
    /// else the one region that has it.
    fn region_of(&self, name: &str) -> Option<String> {
        if self
            .ecr
            .repository(&self.account, &self.region, name)
            .is_some()
        {
            return Some(self.region.clone());
        }
        let found: Vec<String> = self
            .ecr
            .registries
            .keys()
            .into_iter()
            .filter(|(account, region)| {
                *account == self.account && self.ecr.repository(account, region, name).is_some()
            })
            .map(|(_, region)| region)
            .collect();
        match found.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    /// The id and file of an upload in progress named by `uploads/<id>`.
    fn upload_in_progress<'a>(&self, upload: &'a str) -> Option<(&'a str, PathBuf)> {
        let id = upload.strip_prefix("uploads/")?;
        let path = self.upload_path(id).filter(|p| p.exists())?;
        Some((id, path))
    }

    /// Answers a registry request.
    pub async fn serve(&self, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
        let path = req.path().trim_start_matches("/v2").trim_start_matches('/');
        let method = req.method().as_str();
        if path.is_empty() {
            return HttpResponse::Ok()
                .insert_header(("Docker-Distribution-API-Version", "registry/2.0"))
                .json(json!({}));
        }
        // <name>/<kind>/<rest>: the name may hold slashes.
        let Some((name, kind, rest)) = split(path) else {
            return error(404, "NAME_UNKNOWN", "the path names no repository resource");
        };
        let Some(region) = self.region_of(name) else {
            return error(404, "NAME_UNKNOWN", &format!("repository {name} is not known to the registry (create it with CreateRepository)"));
        };
        match (method, kind, rest) {
            ("GET", "tags", "list") => self.tags(&region, name),
            ("GET" | "HEAD", "manifests", reference) => {
                self.manifest(&region, name, reference, method == "HEAD")
            }
            ("PUT", "manifests", reference) => {
                self.put_manifest(req, &region, name, reference, payload)
                    .await
            }
            ("GET" | "HEAD", "blobs", digest) => self.blob(digest, method == "HEAD").await,
            ("POST", "blobs", "uploads/" | "uploads") => {
                self.start_upload(req, name, payload).await
            }
            ("PATCH", "blobs", upload) => self.patch(name, upload, payload).await,
            ("PUT", "blobs", upload) => self.finish(req, name, upload, payload).await,
            ("DELETE", "blobs", upload) if upload.starts_with("uploads/") => {
                if let Some(p) = upload
                    .strip_prefix("uploads/")
                    .and_then(|id| self.upload_path(id))
                {
                    let _ = std::fs::remove_file(p);
                }
                HttpResponse::NoContent().finish()
            }
            _ => error(
                405,
                "UNSUPPORTED",
                &format!("{method} is not served on {kind}"),
            ),
        }
    }

    fn tags(&self, region: &str, name: &str) -> HttpResponse {
        let tags: Vec<String> = self
            .ecr
            .repository(&self.account, region, name)
            .map(|r| r.images.values().flat_map(|i| i.tags.clone()).collect())
            .unwrap_or_default();
        let mut tags = tags;
        tags.sort();
        HttpResponse::Ok().json(json!({"name": name, "tags": tags}))
    }

    fn manifest(&self, region: &str, name: &str, reference: &str, head: bool) -> HttpResponse {
        let Some(r) = self.ecr.repository(&self.account, region, name) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        let image = if reference.starts_with("sha256:") {
            r.images.get(reference)
        } else {
            r.tagged(reference)
        };
        let Some(image) = image else {
            return error(
                404,
                "MANIFEST_UNKNOWN",
                &format!("manifest {reference} is unknown"),
            );
        };
        let mut answer = HttpResponse::Ok();
        answer
            .content_type(image.media_type.clone())
            .insert_header(("Docker-Content-Digest", image.digest.clone()))
            .insert_header(("Docker-Distribution-API-Version", "registry/2.0"));
        if head {
            answer.body(sized_nothing(image.manifest.len() as u64))
        } else {
            answer.body(image.manifest.clone())
        }
    }

    async fn put_manifest(
        &self,
        req: &HttpRequest,
        region: &str,
        name: &str,
        reference: &str,
        mut payload: web::Payload,
    ) -> HttpResponse {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else {
                return error(400, "MANIFEST_INVALID", "the manifest was not received");
            };
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return error(413, "SIZE_INVALID", "the manifest is larger than 4 MiB");
            }
            body.extend_from_slice(&chunk);
        }
        let Ok(text) = String::from_utf8(body) else {
            return error(400, "MANIFEST_INVALID", "the manifest is not UTF-8 JSON");
        };
        let Ok(manifest) = serde_json::from_str::<Value>(&text) else {
            return error(400, "MANIFEST_INVALID", "the manifest is not JSON");
        };
        // Every blob it names must have been pushed (an index names manifests, not blobs).
        let named = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&manifest["config"]))
            .filter_map(|b| b["digest"].as_str());
        for digest in named {
            let present = self.blob_path(digest).is_some_and(|p| p.exists());
            if !present {
                return error(
                    400,
                    "MANIFEST_BLOB_UNKNOWN",
                    &format!("blob {digest} is unknown to the registry"),
                );
            }
        }
        let media_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| manifest["mediaType"].as_str().map(str::to_string));
        let digest = super::digest_of(text.as_bytes());
        if reference.starts_with("sha256:") && reference != digest {
            return error(
                400,
                "DIGEST_INVALID",
                "the manifest's digest is not the one named",
            );
        }
        let mut input = json!({"repositoryName": name, "imageManifest": text});
        if let Some(m) = media_type {
            input["imageManifestMediaType"] = m.into();
        }
        if !reference.starts_with("sha256:") {
            input["imageTag"] = reference.into();
        }
        let mut ctx = RequestContext::new(None, region);
        ctx.account_id = self.account.clone();
        match super::api::call(&self.ecr, &ctx, "PutImage", &input).await {
            // The same manifest under the same tag again is no error for a registry.
            Ok(_) => {}
            Err(e) if e.code == "ImageAlreadyExistsException" => {}
            Err(e) if e.code == "ImageTagAlreadyExistsException" => {
                return error(400, "TAG_INVALID", &e.message)
            }
            Err(e) => return error(400, "MANIFEST_INVALID", &e.message),
        }
        HttpResponse::Created()
            .insert_header(("Location", format!("/v2/{name}/manifests/{digest}")))
            .insert_header(("Docker-Content-Digest", digest))
            .finish()
    }

    async fn blob(&self, digest: &str, head: bool) -> HttpResponse {
        let Some(path) = self.blob_path(digest) else {
            return error(
                400,
                "DIGEST_INVALID",
                "the digest is not sha256:<64 hex digits>",
            );
        };
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            return error(
                404,
                "BLOB_UNKNOWN",
                &format!("blob {digest} is unknown to the registry"),
            );
        };
        let mut answer = HttpResponse::Ok();
        answer
            .content_type("application/octet-stream")
            .insert_header(("Docker-Content-Digest", digest.to_string()));
        if head {
            return answer.body(sized_nothing(meta.len()));
        }
        match tokio::fs::File::open(&path).await {
            Ok(file) => answer.body(actix_web::body::SizedStream::new(
                meta.len(),
                tokio_util_stream(file),
            )),
            Err(_) => error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
        }
    }

    async fn start_upload(
        &self,
        req: &HttpRequest,
        name: &str,
        payload: web::Payload,
    ) -> HttpResponse {
        let id = uuid::Uuid::new_v4().to_string();
        let Some(path) = self.upload_path(&id) else {
            return error(500, "UNKNOWN", "no upload could be made");
        };
        if let Some(parent) = path.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                return error(500, "UNKNOWN", "the upload directory cannot be made");
            }
        }
        if std::fs::File::create(&path).is_err() {
            return error(500, "UNKNOWN", "the upload cannot be made");
        }
        // A monolithic upload: POST with ?digest= and the whole blob.
        if let Some(digest) = query(req, "digest") {
            return self.finish_at(name, &path, &digest, payload).await;
        }
        HttpResponse::Accepted()
            .insert_header(("Location", format!("/v2/{name}/blobs/uploads/{id}")))
            .insert_header(("Docker-Upload-UUID", id))
            .insert_header(("Range", "0-0"))
            .finish()
    }

    async fn patch(&self, name: &str, upload: &str, payload: web::Payload) -> HttpResponse {
        let Some((id, path)) = self.upload_in_progress(upload) else {
            return unknown_upload();
        };
        match append(&path, payload).await {
            Ok(size) => HttpResponse::Accepted()
                .insert_header(("Location", format!("/v2/{name}/blobs/uploads/{id}")))
                .insert_header(("Docker-Upload-UUID", id.to_string()))
                .insert_header(("Range", format!("0-{}", size.saturating_sub(1))))
                .finish(),
            Err(e) => e,
        }
    }

    async fn finish(
        &self,
        req: &HttpRequest,
        name: &str,
        upload: &str,
        payload: web::Payload,
    ) -> HttpResponse {
        let Some((_, path)) = self.upload_in_progress(upload) else {
            return unknown_upload();
        };
        let Some(digest) = query(req, "digest") else {
            return error(400, "DIGEST_INVALID", "the upload's end names no digest");
        };
        self.finish_at(name, &path, &digest, payload).await
    }

    /// Appends the last part, checks the digest, and moves the upload to its blob.
    async fn finish_at(
        &self,
        name: &str,
        path: &Path,
        digest: &str,
        payload: web::Payload,
    ) -> HttpResponse {
        let Some(blob) = self.blob_path(digest) else {
            let _ = std::fs::remove_file(path);
            return error(
                400,
                "DIGEST_INVALID",
                "the digest is not sha256:<64 hex digits>",
            );
        };
        if let Err(e) = append(path, payload).await {
            let _ = std::fs::remove_file(path);
            return e;
        }
        let computed = match file_digest(path).await {
            Ok(d) => d,
            Err(_) => return error(500, "UNKNOWN", "the upload cannot be read"),
        };
        if computed != digest {
            let _ = std::fs::remove_file(path);
            return error(
                400,
                "DIGEST_INVALID",
                &format!("the upload's digest is {computed}, not {digest}"),
            );
        }
        if let Some(parent) = blob.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::rename(path, &blob).is_err() {
            return error(500, "UNKNOWN", "the blob cannot be stored");
        }
        HttpResponse::Created()
            .insert_header(("Location", format!("/v2/{name}/blobs/{digest}")))
            .insert_header(("Docker-Content-Digest", digest.to_string()))
            .finish()
    }
}

/// `<name>/<kind>/<rest>` of a registry path (the name may hold slashes).
fn split(path: &str) -> Option<(&str, &str, &str)> {
    for kind in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some(at) = path.rfind(kind) {
            let name = &path[..at];
            let rest = &path[at + kind.len()..];
            return Some((name, &kind[1..kind.len() - 1], rest));
        }
    }
    None
}

fn query(req: &HttpRequest, key: &str) -> Option<String> {
    crate::aws::query::parse_form(req.query_string())
        .get(key)
        .cloned()
}

/// Streams a request's body onto the end of `path` (at most [`MAX_BLOB_BYTES`] in all), made
/// durable: the file's size after it.
async fn append(path: &Path, mut payload: web::Payload) -> Result<u64, HttpResponse> {
    let failed = |_| error(500, "UNKNOWN", "the upload cannot be written");
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(failed)?;
    let mut size = file.metadata().await.map_err(failed)?.len();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| error(400, "BLOB_UPLOAD_INVALID", "the upload was not received"))?;
        size += chunk.len() as u64;
        if size > MAX_BLOB_BYTES {
            return Err(error(413, "SIZE_INVALID", "a blob may be at most 5 GiB"));
        }
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.sync_all().await.map_err(failed)?;
    Ok(size)
}

async fn file_digest(path: &Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!(
        "sha256:{}",
        crate::aws::pagination::hex(&hasher.finalize())
    ))
}

/// A file as a stream of chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt;
        let mut file = state?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), Some(file)))
            }
            // An error ends the stream after it is told.
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    })
}

/// The body of an answer to HEAD: the length of what GET would send, and nothing (a HEAD
/// answer carries no body).
fn sized_nothing(
    len: u64,
) -> actix_web::body::SizedStream<futures_util::stream::Empty<Result<web::Bytes, actix_web::Error>>>
{
    actix_web::body::SizedStream::new(len, futures_util::stream::empty())
}

fn unknown_upload() -> HttpResponse {
    error(
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "blob upload unknown to registry",
    )
}
