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
use super::store::{BodyStream, LocalStore, S3StoreError};
use super::RequestRegion;

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
        S3StoreError::Body(m) => s3_error!(IncompleteBody, "{m}"),
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

/// Keys and common prefixes of a listing page.
struct Page {
    keys: Vec<(String, Version)>,
    prefixes: Vec<String>,
    truncated: bool,
    next: Option<String>,
}

/// Lists the newest version of each key that is not deleted, S3's way: keys after `after`, with
/// `prefix`, rolled up at `delimiter`, at most `max` entries.
fn list_keys(
    objects: &BTreeMap<String, Vec<Version>>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let mut page = Page {
        keys: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: None,
    };
    let start = after.unwrap_or("");
    for (key, versions) in
        objects.range::<str, _>((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
    {
        if !key.starts_with(prefix) {
            if key.as_str() > prefix {
                break;
            }
            continue;
        }
        let Some(latest) = versions.last().filter(|v| !v.is_delete_marker()) else {
            continue;
        };
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(common) = &rolled {
            if page.prefixes.last() == Some(common) {
                continue;
            }
        }
        if page.keys.len() + page.prefixes.len() >= max {
            page.truncated = true;
            break;
        }
        match rolled {
            Some(common) => {
                page.next = Some(common.clone());
                page.prefixes.push(common);
            }
            None => {
                page.next = Some(key.clone());
                page.keys.push((key.clone(), latest.clone()));
            }
        }
    }
    // A rolled-up prefix resumes after every key under it.
    if let Some(next) = &mut page.next {
        if page.prefixes.last() == Some(next) {
            next.push(char::MAX);
        }
    }
    page
}

impl EmbeddedS3 {
    /// A listing page of a bucket; see [`list_keys`].
    fn page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> S3Result<Page> {
        self.store
            .with_bucket(bucket, |b| {
                list_keys(&b.objects, prefix, delimiter, after, max)
            })
            .map_err(error)
    }
}

fn object_entry(key: String, v: &Version) -> Object {
    Object {
        key: Some(key),
        e_tag: Some(etag(&v.etag)),
        last_modified: Some(timestamp(v.last_modified)),
        size: Some(v.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn prefixes(list: Vec<String>) -> Option<CommonPrefixList> {
    (!list.is_empty()).then(|| {
        list.into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect()
    })
}

/// What a bucket's LocationConstraint may be besides `EU`: a region name.
static REGION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}$")
        .expect("the region pattern compiles")
});

/// How a listing writes keys: as they are, or (`EncodingType=url`) percent-encoded, as S3 does
/// so that keys with characters XML cannot carry (or `+`, `%`) reach the client intact.
#[derive(Clone, Copy)]
struct KeyEncoding(bool);

impl KeyEncoding {
    fn of(encoding: Option<&EncodingType>) -> Self {
        KeyEncoding(encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }

    fn key(self, key: String) -> String {
        if !self.0 {
            return key;
        }
        let mut out = String::with_capacity(key.len());
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn opt(self, key: Option<String>) -> Option<String> {
        key.map(|k| self.key(k))
    }
}

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
            let mut e = S3Error::with_message(
                s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            e
        })?;
    let start: u64 = sizes[..index - 1].iter().sum();
    Ok((start..start + sizes[index - 1], sizes.len()))
}

fn max_keys(max: Option<i32>) -> usize {
    max.map_or(1000, |m| m.clamp(0, 1000) as usize)
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
        let attrs = attributes(
            input.content_type,
            input.cache_control,
            input.content_encoding,
            input.content_disposition,
            input.metadata,
        );
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let v = self
            .store
            .put_object(
                &input.bucket,
                &input.key,
                attrs,
                body_of_length(input.body, input.content_length),
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
        let (length, parts_count) = match input.part_number {
            Some(number) => {
                let (range, count) = part_of(&v, number)?;
                (range.end - range.start, Some(count as i32))
            }
            None => (v.size, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(length as i64),
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
        }))
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
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "Copying from an access point is not supported"
            ));
        };
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
        let versioning = self.store.bucket(&input.bucket).map_err(error)?.versioning;
        let v = self
            .store
            .copy_object(
                (bucket, key, version_id.as_deref()),
                (&input.bucket, &input.key),
                replace,
            )
            .await
            .map_err(error)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&v.etag)),
                last_modified: Some(timestamp(v.last_modified)),
                ..Default::default()
            }),
            copy_source_version_id: version_id.as_deref().map(str::to_string),
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
                for (key, list) in b.objects.range::<str, _>((
                    std::ops::Bound::Excluded(start.as_str()),
                    std::ops::Bound::Unbounded,
                )) {
                    if !key.starts_with(&prefix) {
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
        let attrs = attributes(
            input.content_type,
            input.cache_control,
            input.content_encoding,
            input.content_disposition,
            input.metadata,
        );
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
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let e = self
            .store
            .upload_part(
                &input.bucket,
                &input.upload_id,
                input.part_number as u32,
                body(input.body),
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

fn encode_token(key: &str) -> String {
    crate::aws::pagination::hex(key.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    crate::aws::pagination::unhex(token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}
