//! The S3 operations, served by s3s over the [`LocalStore`]: s3s parses requests and writes S3's
//! XML answers and error documents; this file maps them to the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::events::{Version, Versioning};
use super::keys::Objects;
use super::store::{BodyStream, LocalStore, S3StoreError, BODY_TIMEOUT};
use super::RequestRegion;

mod copy;
mod listing;
mod tags;

use copy::{check_copy_conditions, copy_range};
use listing::{decode_token, encode_token, max_keys, object_entry, prefixes, KeyEncoding};
use tags::{checked_tags, header_tags, tag_set};

/// The S3 API over the embedded store.
pub struct EmbeddedS3 {
    store: Arc<LocalStore>,
    default_region: String,
}

impl EmbeddedS3 {
    /// Serves `store`; buckets made without a location constraint or signed region get `default_region`.
    pub fn new(store: Arc<LocalStore>, default_region: String) -> Self {
        EmbeddedS3 {
            store,
            default_region,
        }
    }
}

impl EmbeddedS3 {
    /// Replaces a version's tags; returns the version id to answer with (none when unversioned).
    async fn tag(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> S3Result<Option<String>> {
        let versioning = self.store.bucket(bucket).map_err(error)?.versioning;
        let id = self
            .store
            .set_tags(bucket, key, version_id, tags)
            .await
            .map_err(error)?;
        Ok((versioning != Versioning::Unversioned).then_some(id))
    }
}

fn error(e: S3StoreError) -> S3Error {
    match e {
        S3StoreError::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        S3StoreError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        S3StoreError::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        S3StoreError::DeleteMarker => {
            s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource.")
        }
        S3StoreError::BucketAlreadyOwnedByYou => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        S3StoreError::BucketNotEmpty => {
            s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty")
        }
        S3StoreError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        S3StoreError::InvalidPart(m) => s3_error!(InvalidPart, "{m}"),
        S3StoreError::InvalidPartOrder => {
            s3_error!(InvalidPartOrder, "The list of parts was not in ascending order.")
        }
        S3StoreError::Io(m) => s3_error!(InternalError, "{m}"),
        S3StoreError::Body(m) if m == BODY_TIMEOUT => s3_error!(RequestTimeout, "{m}"),
        S3StoreError::Body(m) => s3_error!(IncompleteBody, "{m}"),
        S3StoreError::BadDigest => s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ),
        S3StoreError::Store(e) => s3_error!(InternalError, "{e}"),
    }
}

fn timestamp(epoch: f64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(epoch.max(0.0)))
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

fn body(blob: Option<StreamingBlob>) -> BodyStream {
    match blob {
        Some(blob) => blob.map(|chunk| chunk.map_err(|e| e.to_string())).boxed(),
        None => futures_util::stream::empty().boxed(),
    }
}

/// `body`, failing at its end unless it held exactly the `declared` bytes the request said
/// (Content-Length, or for aws-chunked uploads the decoded length): a short or long body is
/// refused, not stored.
fn body_of_length(blob: Option<StreamingBlob>, declared: Option<i64>) -> BodyStream {
    let Some(declared) = declared.and_then(|d| u64::try_from(d).ok()) else {
        return body(blob);
    };
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = counted.clone();
    let chunks = body(blob).inspect(move |chunk| {
        if let Ok(c) = chunk {
            seen.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let end = futures_util::stream::once(async move {
        let got = counted.load(std::sync::atomic::Ordering::Relaxed);
        if got == declared {
            None
        } else {
            Some(Err(format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header: {declared} declared, {got} sent"
            )))
        }
    })
    .filter_map(futures_util::future::ready);
    chunks.chain(end).boxed()
}

/// The digest of a `Content-MD5` header (base64 of 16 bytes); `InvalidDigest` when it is not one.
pub fn content_md5(header: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine;
    let Some(header) = header else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))
}

/// Object attributes given on a write.
fn attributes(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    metadata: Option<Metadata>,
) -> Version {
    Version {
        content_type,
        cache_control,
        content_encoding,
        content_disposition,
        metadata: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        ..Version::blank()
    }
}

/// The attributes of a new object with the tags of its `x-amz-tagging` header.
fn tagged_attributes(attributes: Version, tagging: Option<&str>) -> S3Result<Version> {
    Ok(Version {
        tags: header_tags(tagging)?,
        ..attributes
    })
}

/// A part number as UploadPart and UploadPartCopy take it: 1 to 10,000.
fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

/// The bucket, key and version a copy reads (access points are not served).
fn copy_source(source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((bucket, key, version_id.as_deref())),
        _ => Err(s3_error!(
            NotImplemented,
            "Copying from an access point is not supported"
        )),
    }
}

/// The version id as S3 answers it: absent for the `null` version of an unversioned bucket.
fn shown_version(v: &Version, versioning: Versioning) -> Option<String> {
    (versioning != Versioning::Unversioned || v.version_id != "null").then(|| v.version_id.clone())
}

fn metadata_of(v: &Version) -> Option<Metadata> {
    (!v.metadata.is_empty()).then(|| v.metadata.clone().into_iter().collect())
}

/// A stream of a file's bytes in `range`, read on the runtime as the client consumes it.
fn file_stream(path: std::path::PathBuf, range: std::ops::Range<u64>) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    actix_rt::spawn(async move {
        let result = async {
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(std::io::SeekFrom::Start(range.start)).await?;
            let mut left = range.end - range.start;
            while left > 0 {
                let mut buf = vec![0u8; left.min(256 * 1024) as usize];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "object file is short",
                    ));
                }
                buf.truncate(n);
                left -= n as u64;
                if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tx.send(Err(e)).await;
        }
    });
    StreamingBlob::wrap(super::bridge::ChannelStream::new(rx))
}

static REGION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}$")
        .expect("the region pattern compiles")
});

/// The bytes of part `number` of an object, and how many parts it has: a multipart object's
/// parts as they were uploaded, any other object as one part. `InvalidPartNumber` beyond them.
fn part_of(v: &Version, number: i32) -> S3Result<(std::ops::Range<u64>, usize)> {
    let sizes: Vec<u64> = if v.parts.is_empty() {
        vec![v.size]
    } else {
        v.parts.clone()
    };
    let index = usize::try_from(number)
        .ok()
        .filter(|n| (1..=sizes.len()).contains(n))
        .ok_or_else(|| {
            custom_error(
                "InvalidPartNumber",
                "The requested partnumber is not satisfiable",
                http::StatusCode::RANGE_NOT_SATISFIABLE,
            )
        })?;
    let start: u64 = sizes[..index - 1].iter().sum();
    Ok((start..start + sizes[index - 1], sizes.len()))
}

/// An error of a code s3s does not know (it would answer those with 500).
fn custom_error(code: &'static str, message: &str, status: http::StatusCode) -> S3Error {
    let mut e = S3Error::with_message(s3s::S3ErrorCode::Custom(code.into()), message.to_string());
    e.set_status_code(status);
    e
}

#[async_trait::async_trait]
impl s3s::S3 for EmbeddedS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .buckets()
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created)),
                bucket_region: Some(b.region),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("codepipeline-local".into()),
                id: Some(super::OWNER_ID.into()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let region = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|l| l.as_str().to_string())
            .filter(|l| !l.is_empty());
        // A region name (`eu-central-1`, `us-gov-west-1`) or `EU`, as S3 takes.
        if let Some(constraint) = &region {
            let valid = constraint == "EU" || REGION.is_match(constraint);
            if !valid {
                return Err(s3_error!(
                    InvalidLocationConstraint,
                    "The specified location-constraint is not valid"
                ));
            }
        }
        let region = region
            .or_else(|| req.extensions.get::<RequestRegion>().map(|r| r.0.clone()))
            .unwrap_or_else(|| self.default_region.clone());
        self.store
            .create_bucket(&req.input.bucket, &region)
            .await
            .map_err(error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let b = self.store.bucket(&req.input.bucket).map_err(error)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(b.region),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let b = self.store.bucket(&req.input.bucket).map_err(error)?;
        // us-east-1 is answered as an empty constraint, as S3 does.
        let constraint =
            (b.region != "us-east-1").then(|| BucketLocationConstraint::from(b.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let b = self.store.bucket(&req.input.bucket).map_err(error)?;
        let status = match b.versioning {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let enabled = match req
            .input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => true,
            Some(BucketVersioningStatus::SUSPENDED) => false,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Versioning status must be Enabled or Suspended"
                ))
            }
        };
        self.store
            .set_versioning(&req.input.bucket, enabled)
            .await
            .map_err(error)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let attrs = tagged_attributes(
            attributes(
                input.content_type,
                input.cache_control,
                input.content_encoding,
                input.content_disposition,
                input.metadata,
            ),
            input.tagging.as_deref(),
        )?;
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let v = self
            .store
            .put_object(
                &input.bucket,
                &input.key,
                attrs,
                body_of_length(input.body, input.content_length),
                content_md5(input.content_md5.as_deref())?,
            )
            .await
            .map_err(error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&v.etag)),
            version_id: shown_version(&v, versioning),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let (v, path) = self
            .store
            .get_object(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(error)?;
        let mut parts_count = None;
        let range = match (&input.range, input.part_number) {
            (Some(r), _) => Some(r.check(v.size)?),
            // A part is answered as the range of its bytes (206), with the object's part count.
            (None, Some(number)) => {
                let (range, count) = part_of(&v, number)?;
                parts_count = Some(count as i32);
                Some(range)
            }
            (None, None) => None,
        };
        let content_range = range.as_ref().map(|range| {
            format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                v.size
            )
        });
        let range = range.unwrap_or(0..v.size);
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some((range.end - range.start) as i64),
            content_range,
            parts_count,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&v.etag)),
            last_modified: Some(timestamp(v.last_modified)),
            content_type: v.content_type.clone(),
            cache_control: v.cache_control.clone(),
            content_encoding: v.content_encoding.clone(),
            content_disposition: v.content_disposition.clone(),
            metadata: metadata_of(&v),
            version_id: shown_version(&v, versioning),
            tag_count: (!v.tags.is_empty()).then_some(v.tags.len() as i32),
            body: Some(file_stream(path, range)),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let (v, _) = self
            .store
            .get_object(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(error)?;
        let (length, parts_count, content_range) = match input.part_number {
            Some(number) => {
                let (range, count) = part_of(&v, number)?;
                let content_range = format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    v.size
                );
                (
                    range.end - range.start,
                    Some(count as i32),
                    Some(content_range),
                )
            }
            None => (v.size, None, None),
        };
        let mut response = S3Response::new(HeadObjectOutput {
            content_length: Some(length as i64),
            content_range,
            parts_count,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&v.etag)),
            last_modified: Some(timestamp(v.last_modified)),
            content_type: v.content_type.clone(),
            cache_control: v.cache_control.clone(),
            content_encoding: v.content_encoding.clone(),
            content_disposition: v.content_disposition.clone(),
            metadata: metadata_of(&v),
            version_id: shown_version(&v, versioning),
            ..Default::default()
        });
        // A part is answered as a part of the object: 206, as GetObject does (s3s writes HEAD
        // answers with 200 whatever the status asked, so the bridge is told by a header).
        if parts_count.is_some() {
            response.headers.insert(
                super::bridge::STATUS_HEADER,
                http::HeaderValue::from_static("206"),
            );
        }
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let (version_id, marker) = self
            .store
            .delete_object(&input.bucket, &input.key, input.version_id.as_deref())
            .await
            .map_err(error)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.store.bucket(&input.bucket).map_err(error)?;
        // S3 deletes at most 1,000 keys a request and refuses more whole.
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for object in input.delete.objects {
            match self
                .store
                .delete_object(&input.bucket, &object.key, object.version_id.as_deref())
                .await
            {
                Ok((version_id, marker)) if !quiet => deleted.push(DeletedObject {
                    key: Some(object.key),
                    version_id: object.version_id.clone(),
                    delete_marker: marker.then_some(true),
                    delete_marker_version_id: if marker && object.version_id.is_none() {
                        version_id
                    } else {
                        None
                    },
                }),
                Ok(_) => {}
                Err(e) => {
                    let e = error(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(object.key),
                        message: e.message().map(str::to_string),
                        version_id: object.version_id,
                    })
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (bucket, key, version_id) = copy_source(&input.copy_source)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE)
            .then(|| {
                attributes(
                    input.content_type.clone(),
                    input.cache_control.clone(),
                    input.content_encoding.clone(),
                    input.content_disposition.clone(),
                    input.metadata.clone(),
                )
            });
        let tags = match &input.tagging_directive {
            Some(d) if d.as_str() == TaggingDirective::REPLACE => {
                Some(header_tags(input.tagging.as_deref())?)
            }
            _ => None,
        };
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let (source, _) = self
            .store
            .get_object(bucket, key, version_id)
            .map_err(error)?;
        check_copy_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
        )?;
        let v = self
            .store
            .copy_object(
                (bucket, key, version_id),
                (&input.bucket, &input.key),
                replace,
                tags,
            )
            .await
            .map_err(error)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&v.etag)),
                last_modified: Some(timestamp(v.last_modified)),
                ..Default::default()
            }),
            copy_source_version_id: version_id.map(str::to_string),
            version_id: shown_version(&v, versioning),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys);
        let page = self.page(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            input.marker.as_deref(),
            max,
        )?;
        let next_marker = (page.truncated && input.delimiter.is_some())
            .then(|| page.next.clone())
            .flatten();
        let enc = KeyEncoding::of(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.key(prefix)),
            marker: enc.opt(input.marker),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            contents: Some(
                page.keys
                    .into_iter()
                    .map(|(k, v)| object_entry(enc.key(k), &v))
                    .collect(),
            ),
            common_prefixes: prefixes(page.prefixes.into_iter().map(|p| enc.key(p)).collect()),
            delimiter: enc.opt(input.delimiter),
            next_marker: enc.opt(next_marker),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys);
        let after = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => input.start_after.clone(),
        };
        let page = self.page(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            after.as_deref(),
            max,
        )?;
        let count = page.keys.len() + page.prefixes.len();
        let next = page
            .truncated
            .then(|| page.next.as_deref().map(encode_token))
            .flatten();
        let enc = KeyEncoding::of(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc.key(prefix)),
            max_keys: Some(max as i32),
            key_count: Some(count as i32),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: next,
            contents: Some(
                page.keys
                    .into_iter()
                    .map(|(k, v)| object_entry(enc.key(k), &v))
                    .collect(),
            ),
            common_prefixes: prefixes(page.prefixes.into_iter().map(|p| enc.key(p)).collect()),
            delimiter: enc.opt(input.delimiter),
            encoding_type: input.encoding_type,
            start_after: enc.opt(input.start_after),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys);
        let (versions, markers, truncated, next_key) = self
            .store
            .with_bucket(&input.bucket, |b| {
                let (mut versions, mut markers, mut n) = (Vec::new(), Vec::new(), 0usize);
                let start = input.key_marker.clone().unwrap_or_default();
                let mut truncated = false;
                let mut next_key = None;
                let keys = match start.as_str() {
                    s if s >= prefix.as_str() => b.objects.after(s),
                    _ => b.objects.from(&prefix),
                };
                for (key, list) in keys {
                    if !key.starts_with(&prefix) {
                        if key > prefix {
                            break;
                        }
                        continue;
                    }
                    if n + list.len() > max && n > 0 {
                        truncated = true;
                        break;
                    }
                    for (i, v) in list.iter().enumerate().rev() {
                        let latest = i + 1 == list.len();
                        if v.is_delete_marker() {
                            markers.push(DeleteMarkerEntry {
                                key: Some(key.clone()),
                                version_id: Some(v.version_id.clone()),
                                is_latest: Some(latest),
                                last_modified: Some(timestamp(v.last_modified)),
                                ..Default::default()
                            });
                        } else {
                            versions.push(ObjectVersion {
                                key: Some(key.clone()),
                                version_id: Some(v.version_id.clone()),
                                is_latest: Some(latest),
                                last_modified: Some(timestamp(v.last_modified)),
                                e_tag: Some(etag(&v.etag)),
                                size: Some(v.size as i64),
                                storage_class: Some(ObjectVersionStorageClass::from_static(
                                    ObjectVersionStorageClass::STANDARD,
                                )),
                                ..Default::default()
                            });
                        }
                    }
                    n += list.len();
                    next_key = Some(key.clone());
                }
                (versions, markers, truncated, next_key)
            })
            .map_err(error)?;
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            key_marker: input.key_marker,
            next_key_marker: if truncated { next_key } else { None },
            versions: Some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            delimiter: input.delimiter,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let attrs = tagged_attributes(
            attributes(
                input.content_type,
                input.cache_control,
                input.content_encoding,
                input.content_disposition,
                input.metadata,
            ),
            input.tagging.as_deref(),
        )?;
        let upload_id = self
            .store
            .create_upload(&input.bucket, &input.key, attrs)
            .await
            .map_err(error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        let e = self
            .store
            .upload_part(
                &input.bucket,
                &input.upload_id,
                number,
                body_of_length(input.body, input.content_length),
                content_md5(input.content_md5.as_deref())?,
            )
            .await
            .map_err(error)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&e)),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (upload, parts) = self
            .store
            .list_parts(&input.bucket, &input.upload_id)
            .await
            .map_err(error)?;
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(upload.key),
            upload_id: Some(input.upload_id),
            is_truncated: Some(false),
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| Part {
                        part_number: Some(p.number as i32),
                        e_tag: Some(etag(&p.etag)),
                        size: Some(p.size as i64),
                        last_modified: Some(timestamp(p.last_modified)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts: Vec<(u32, String)> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                (
                    p.part_number.unwrap_or(0).max(0) as u32,
                    p.e_tag.map(|e| e.value().to_string()).unwrap_or_default(),
                )
            })
            .collect();
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let v = self
            .store
            .complete_upload(&input.bucket, &input.upload_id, &parts)
            .await
            .map_err(error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&v.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: shown_version(&v, versioning),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        let (bucket, key, version_id) = copy_source(&input.copy_source)?;
        let (source, path) = self
            .store
            .get_object(bucket, key, version_id)
            .map_err(error)?;
        check_copy_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
        )?;
        let range = copy_range(input.copy_source_range.as_deref(), source.size)?;
        let e = self
            .store
            .upload_part(
                &input.bucket,
                &input.upload_id,
                number,
                body(Some(file_stream(path, range))),
                None,
            )
            .await
            .map_err(error)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&e)),
                last_modified: Some(timestamp(crate::aws::now_epoch())),
                ..Default::default()
            }),
            copy_source_version_id: version_id.map(str::to_string),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let encoding = KeyEncoding::of(input.encoding_type.as_ref());
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input
            .max_uploads
            .map_or(1000, |m| m.clamp(0, 1000) as usize);
        let key_marker = input.key_marker.clone().unwrap_or_default();
        // The upload-id marker counts only with a key marker: uploads of that key after it.
        let id_marker = input
            .upload_id_marker
            .clone()
            .filter(|_| !key_marker.is_empty());
        let uploads = self.store.uploads(&input.bucket).map_err(error)?;
        let mut after_marker = id_marker.is_none();
        let (mut listed, mut common) = (Vec::new(), Vec::<String>::new());
        let mut truncated = false;
        let mut next: Option<(String, String)> = None;
        for (id, upload) in uploads {
            if !upload.key.starts_with(&prefix) {
                continue;
            }
            // Skip what the markers passed: keys before the key marker, and of the key marker's
            // own uploads those up to the upload-id marker (all of them without one).
            let passed = match (&id_marker, upload.key.cmp(&key_marker)) {
                _ if key_marker.is_empty() => false,
                (_, std::cmp::Ordering::Less) | (None, std::cmp::Ordering::Equal) => true,
                (Some(marker), std::cmp::Ordering::Equal) => {
                    let passed = !after_marker;
                    after_marker |= &id == marker;
                    passed
                }
                (_, std::cmp::Ordering::Greater) => false,
            };
            if passed {
                continue;
            }
            let common_prefix = input
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .and_then(|d| {
                    upload.key[prefix.len()..]
                        .find(d)
                        .map(|at| upload.key[..prefix.len() + at + d.len()].to_string())
                });
            if let Some(p) = &common_prefix {
                if common.last() == Some(p) {
                    continue;
                }
            }
            if listed.len() + common.len() == max {
                truncated = true;
                break;
            }
            match common_prefix {
                Some(p) => {
                    next = Some((p.clone(), String::new()));
                    common.push(p);
                }
                None => {
                    next = Some((upload.key.clone(), id.clone()));
                    listed.push((id, upload));
                }
            }
        }
        let (next_key, next_id) = next.filter(|_| truncated).unzip();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix.map(|p| encoding.key(p)),
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            key_marker: Some(encoding.key(key_marker)),
            upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
            next_key_marker: encoding.opt(next_key),
            next_upload_id_marker: next_id.filter(|id| !id.is_empty()),
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            common_prefixes: prefixes(common.into_iter().map(|p| encoding.key(p)).collect()),
            uploads: Some(
                listed
                    .into_iter()
                    .map(|(id, u)| MultipartUpload {
                        key: Some(encoding.key(u.key)),
                        upload_id: Some(id),
                        initiated: Some(timestamp(u.initiated)),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let (v, _) = self
            .store
            .get_object(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(error)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&v.tags),
            version_id: shown_version(&v, versioning),
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let pairs = input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        let tags = checked_tags(pairs)?;
        self.tag(&input.bucket, &input.key, input.version_id.as_deref(), tags)
            .await
            .map(|version_id| S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        self.tag(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            BTreeMap::new(),
        )
        .await
        .map(|version_id| S3Response::new(DeleteObjectTaggingOutput { version_id }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.store
            .abort_upload(&req.input.bucket, &req.input.upload_id)
            .await
            .map_err(error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}
