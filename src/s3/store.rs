//! The embedded object store: object bytes in files under the data dir, buckets, keys and
//! versions in the event log.
//!
//! Bytes are streamed to a temporary file (never held whole in memory), fsynced, then renamed to
//! a name of our own (a UUID): keys never become paths, so no key can reach outside the data dir.
//! Only then is the version recorded in the log; a crash before that leaves an unreferenced
//! temporary file, which the next start deletes, and no half object is ever visible.
//!
//! Writes to one bucket are serialised by that bucket's lock and acknowledged after their events
//! are durable; reads come from the state folded from the log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::events::{self, bucket_stream, BucketState, S3Event, Upload, Version, Versioning};
use super::keys::Objects;
use crate::aws::pagination::hex;
use crate::eventstore::shelf::{Role, Shelf};
use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError};

/// A request body: chunks of bytes, or the error that cut it short.
pub type BodyStream = BoxStream<'static, Result<Bytes, String>>;

/// The error a body stream ends with when its client stopped sending (S3's `RequestTimeout`).
pub const BODY_TIMEOUT: &str = "Your socket connection to the server was not read from or written to within the timeout period.";

/// Why an object-store operation failed; the S3 API maps these to S3's error codes.
#[derive(Debug, Clone, PartialEq)]
pub enum S3StoreError {
    /// The bucket does not exist.
    NoSuchBucket,
    /// The key does not exist (or its newest version is a delete marker).
    NoSuchKey,
    /// The version does not exist.
    NoSuchVersion,
    /// The named version is a delete marker, which has no bytes.
    DeleteMarker,
    /// CreateBucket of a bucket that exists.
    BucketAlreadyOwnedByYou,
    /// DeleteBucket of a bucket that holds objects.
    BucketNotEmpty,
    /// The multipart upload does not exist.
    NoSuchUpload,
    /// CompleteMultipartUpload named a part that was not uploaded, or with another ETag.
    InvalidPart(String),
    /// CompleteMultipartUpload listed parts out of order.
    InvalidPartOrder,
    /// The body could not be written.
    Io(String),
    /// The client's body broke off, was framed wrongly, or was not as long as it said
    /// ([`BODY_TIMEOUT`] when the client stopped sending).
    Body(String),
    /// The body's MD5 is not the `Content-MD5` the client sent.
    BadDigest,
    /// The event log failed.
    Store(StoreError),
}

impl From<StoreError> for S3StoreError {
    fn from(e: StoreError) -> Self {
        S3StoreError::Store(e)
    }
}

fn io(e: impl std::fmt::Display) -> S3StoreError {
    S3StoreError::Io(e.to_string())
}

/// A bucket, as listings show it.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Creation time.
    pub created: f64,
    /// Versioning state.
    pub versioning: Versioning,
}

/// Everything the S3 events built.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct S3State {
    buckets: BTreeMap<String, BucketState>,
    /// The last sequence of every bucket stream, also of deleted buckets (a name can come back).
    heads: HashMap<String, u64>,
}

/// A part of a multipart upload.
#[derive(Debug, Clone, PartialEq)]
pub struct PartInfo {
    /// Part number, 1–10,000.
    pub number: u32,
    /// MD5 hex.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub last_modified: f64,
}

/// The embedded object store.
pub struct LocalStore {
    root: PathBuf,
    log: Arc<dyn EventStore>,
    /// Where buckets' keys are.
    shelf: Arc<dyn Shelf>,
    /// How this store's folds write the shelf.
    role: Role,
    state: RwLock<S3State>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Told when an object version is taken, so that S3 sources that poll learn at once.
    objects_changed: Arc<tokio::sync::Notify>,
}

impl LocalStore {
    /// Opens the store under `root` (`<data_dir>/s3`), deleting what a crash left half written.
    pub fn open(root: &Path, log: Arc<dyn EventStore>) -> Result<Self, S3StoreError> {
        for dir in ["objects", "tmp", "uploads"] {
            std::fs::create_dir_all(root.join(dir)).map_err(io)?;
        }
        for entry in std::fs::read_dir(root.join("tmp")).map_err(io)? {
            let _ = std::fs::remove_file(entry.map_err(io)?.path());
        }
        Ok(Self::state_only(root, log, Role::Live))
    }

    /// The store's state alone, touching no file but the log's shelf, which it writes in `role`:
    /// what checkpoints ([`Role::Checkpoint`]) fold into.
    pub fn state_only(root: &Path, log: Arc<dyn EventStore>, role: Role) -> Self {
        LocalStore {
            root: root.to_path_buf(),
            shelf: log.shelf("s3"),
            role,
            log,
            state: RwLock::new(S3State::default()),
            locks: Mutex::new(HashMap::new()),
            objects_changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// What is told when an object version is taken.
    pub fn objects_changed(&self) -> Arc<tokio::sync::Notify> {
        self.objects_changed.clone()
    }

    /// Folds one event of the log (at startup, all of them in order).
    pub fn apply(&self, record: &RecordedEvent) {
        let Some(bucket) = record.stream.strip_prefix(events::BUCKET_STREAM_PREFIX) else {
            return;
        };
        let Some(event) = S3Event::from_record(record) else {
            return;
        };
        let mut state = self.state.write().expect("s3 state lock");
        state.heads.insert(bucket.to_string(), record.sequence);
        events::apply(
            &mut state.buckets,
            Some((&self.shelf, self.role)),
            bucket,
            record.sequence,
            event,
        );
    }

    fn blob_path(&self, blob: &str) -> PathBuf {
        self.root.join("objects").join(blob)
    }

    fn part_path(&self, upload_id: &str, number: u32) -> PathBuf {
        self.root
            .join("uploads")
            .join(upload_id)
            .join(number.to_string())
    }

    fn lock_of(&self, bucket: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("bucket locks")
            .entry(bucket.to_string())
            .or_default()
            .clone()
    }

    /// Decides events from the bucket's state under its lock, appends them, waits until they are
    /// durable and folds them in. Blobs no version refers to any more are deleted afterwards.
    async fn commit<T>(
        &self,
        bucket: &str,
        decide: impl FnOnce(Option<&BucketState>) -> Result<(Vec<S3Event>, T), S3StoreError>,
    ) -> Result<T, S3StoreError> {
        let lock = self.lock_of(bucket);
        let _guard = lock.lock().await;
        self.catch_up(bucket).await?;
        let (events, out, head) = {
            let state = self.state.read().expect("s3 state lock");
            let (events, out) = decide(state.buckets.get(bucket))?;
            (events, out, state.heads.get(bucket).copied().unwrap_or(0))
        };
        if events.is_empty() {
            return Ok(out);
        }
        let new = events.iter().map(S3Event::to_new_event).collect();
        let recorded = self.log.append(&bucket_stream(bucket), head, new)?;
        // Folded in once durable: what the fold puts on the shelf must never be on disk before
        // the event it comes from (the bucket's lock keeps other writers out meanwhile).
        self.log.durable().await?;
        let mut freed = Vec::new();
        let object_put = events
            .iter()
            .any(|e| matches!(e, S3Event::ObjectPut { .. }));
        {
            let mut state = self.state.write().expect("s3 state lock");
            for (record, event) in recorded.iter().zip(events) {
                state.heads.insert(bucket.to_string(), record.sequence);
                freed.extend(events::apply(
                    &mut state.buckets,
                    Some((&self.shelf, self.role)),
                    bucket,
                    record.sequence,
                    event,
                ));
            }
        }
        if object_put {
            self.objects_changed.notify_one();
        }
        for blob in freed {
            let _ = tokio::fs::remove_file(self.blob_path(&blob)).await;
        }
        Ok(out)
    }

    /// Folds the events of the bucket's stream that its state has not seen: those of a commit
    /// whose caller went away (a stopped action, a closed connection) after its append and
    /// before its fold. Under the bucket's lock; nothing to do, and one short read, otherwise.
    async fn catch_up(&self, bucket: &str) -> Result<(), S3StoreError> {
        let head = {
            let state = self.state.read().expect("s3 state lock");
            state.heads.get(bucket).copied().unwrap_or(0)
        };
        let missed = self.log.read_stream(&bucket_stream(bucket), head + 1)?;
        if missed.is_empty() {
            return Ok(());
        }
        self.log.durable().await?;
        let mut freed = Vec::new();
        {
            let mut state = self.state.write().expect("s3 state lock");
            for record in &missed {
                state.heads.insert(bucket.to_string(), record.sequence);
                if let Some(event) = S3Event::from_record(record) {
                    freed.extend(events::apply(
                        &mut state.buckets,
                        Some((&self.shelf, self.role)),
                        bucket,
                        record.sequence,
                        event,
                    ));
                }
            }
        }
        log::info!(
            "bucket {bucket}: folded {} event(s) a cancelled write had recorded",
            missed.len()
        );
        for blob in freed {
            let _ = tokio::fs::remove_file(self.blob_path(&blob)).await;
        }
        Ok(())
    }

    /// Streams a body to a new blob file: returns its id, size and MD5. A body whose MD5 is not
    /// `expected_md5` is refused and not kept.
    async fn write_blob(
        &self,
        mut body: BodyStream,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<(String, u64, [u8; 16]), S3StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tmp = self.root.join("tmp").join(&id);
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(S3StoreError::Body)?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io)?;
            }
            let md5: [u8; 16] = md5.finalize().into();
            if expected_md5.is_some_and(|e| e != md5) {
                return Err(S3StoreError::BadDigest);
            }
            file.sync_all().await.map_err(io)?;
            Ok::<_, S3StoreError>((size, md5))
        }
        .await;
        match result {
            Ok((size, md5)) => {
                tokio::fs::rename(&tmp, self.blob_path(&id))
                    .await
                    .map_err(io)?;
                Ok((id, size, md5))
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// CreateBucket.
    pub async fn create_bucket(&self, bucket: &str, region: &str) -> Result<(), S3StoreError> {
        let at = crate::aws::now_epoch();
        self.commit(bucket, |state| match state {
            Some(_) => Err(S3StoreError::BucketAlreadyOwnedByYou),
            None => Ok((
                vec![S3Event::BucketCreated {
                    region: region.to_string(),
                    at,
                }],
                (),
            )),
        })
        .await
    }

    /// DeleteBucket: only an empty bucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), S3StoreError> {
        let at = crate::aws::now_epoch();
        self.commit(bucket, |state| match state {
            None => Err(S3StoreError::NoSuchBucket),
            Some(b) if !b.is_empty() => Err(S3StoreError::BucketNotEmpty),
            Some(_) => Ok((vec![S3Event::BucketDeleted { deleted_at: at }], ())),
        })
        .await
    }

    /// PutBucketVersioning.
    pub async fn set_versioning(&self, bucket: &str, enabled: bool) -> Result<(), S3StoreError> {
        self.commit(bucket, |state| {
            let b = state.ok_or(S3StoreError::NoSuchBucket)?;
            let versioning = match (enabled, b.versioning) {
                (true, _) => Versioning::Enabled,
                (false, Versioning::Unversioned) => Versioning::Unversioned,
                (false, _) => Versioning::Suspended,
            };
            Ok((vec![S3Event::VersioningSet { versioning }], ()))
        })
        .await
    }

    /// A bucket's attributes.
    pub fn bucket(&self, bucket: &str) -> Result<BucketInfo, S3StoreError> {
        let state = self.state.read().expect("s3 state lock");
        let b = state
            .buckets
            .get(bucket)
            .ok_or(S3StoreError::NoSuchBucket)?;
        Ok(BucketInfo {
            name: bucket.to_string(),
            region: b.region.clone(),
            created: b.created,
            versioning: b.versioning,
        })
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Vec<BucketInfo> {
        let state = self.state.read().expect("s3 state lock");
        state
            .buckets
            .iter()
            .map(|(name, b)| BucketInfo {
                name: name.clone(),
                region: b.region.clone(),
                created: b.created,
                versioning: b.versioning,
            })
            .collect()
    }

    /// Runs `f` over a bucket's state, for listings.
    pub fn with_bucket<R>(
        &self,
        bucket: &str,
        f: impl FnOnce(&BucketState) -> R,
    ) -> Result<R, S3StoreError> {
        let state = self.state.read().expect("s3 state lock");
        state
            .buckets
            .get(bucket)
            .map(f)
            .ok_or(S3StoreError::NoSuchBucket)
    }

    /// PutObject: stores the body as the key's newest version (if its MD5 is `expected_md5`).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        attributes: Version,
        body: BodyStream,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<Version, S3StoreError> {
        self.bucket(bucket)?;
        let (blob, size, md5) = self.write_blob(body, expected_md5).await?;
        let version = Version {
            blob: Some(blob.clone()),
            size,
            etag: hex(&md5),
            ..attributes
        };
        self.put_version(bucket, key, version)
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(self.blob_path(&blob));
            })
    }

    /// Records a version whose blob is written: its id follows the bucket's versioning.
    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        version: Version,
    ) -> Result<Version, S3StoreError> {
        let last_modified = crate::aws::now_epoch();
        self.commit(bucket, |state| {
            let b = state.ok_or(S3StoreError::NoSuchBucket)?;
            let version = Version {
                version_id: new_version_id(b.versioning),
                last_modified,
                ..version
            };
            Ok((
                vec![S3Event::ObjectPut {
                    key: key.to_string(),
                    version: version.clone(),
                }],
                version,
            ))
        })
        .await
    }

    /// Finds the version GetObject and HeadObject serve, and the path of its bytes.
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Version, PathBuf), S3StoreError> {
        let state = self.state.read().expect("s3 state lock");
        let b = state
            .buckets
            .get(bucket)
            .ok_or(S3StoreError::NoSuchBucket)?;
        let version = match version_id {
            Some(id) => b.version(key, id).ok_or(S3StoreError::NoSuchVersion)?,
            None => b.latest(key).ok_or(S3StoreError::NoSuchKey)?,
        };
        match &version.blob {
            Some(blob) => Ok((version.clone(), self.blob_path(blob))),
            None if version_id.is_some() => Err(S3StoreError::DeleteMarker),
            None => Err(S3StoreError::NoSuchKey),
        }
    }

    /// DeleteObject: without a version id, a delete marker in a versioned bucket, else the
    /// object is gone; with one, that version is gone. Returns the version id the answer names
    /// and whether it is a delete marker.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, bool), S3StoreError> {
        let at = crate::aws::now_epoch();
        self.commit(bucket, |state| {
            let b = state.ok_or(S3StoreError::NoSuchBucket)?;
            let removed = |id: &str| S3Event::VersionRemoved {
                key: key.to_string(),
                removed_version: id.to_string(),
            };
            if let Some(id) = version_id {
                let marker = b.version(key, id).map(|v| v.is_delete_marker());
                let events = if marker.is_some() {
                    vec![removed(id)]
                } else {
                    vec![]
                };
                return Ok((events, (Some(id.to_string()), marker.unwrap_or(false))));
            }
            match b.versioning {
                Versioning::Unversioned => {
                    let events = if b.latest(key).is_some() {
                        vec![removed("null")]
                    } else {
                        vec![]
                    };
                    Ok((events, (None, false)))
                }
                versioning => {
                    let marker = Version {
                        version_id: new_version_id(versioning),
                        last_modified: at,
                        ..Version::blank()
                    };
                    let id = marker.version_id.clone();
                    Ok((
                        vec![S3Event::ObjectPut {
                            key: key.to_string(),
                            version: marker,
                        }],
                        (Some(id), true),
                    ))
                }
            }
        })
        .await
    }

    /// CopyObject: the source version's bytes become a new version of the target key.
    /// `replace` gives new attributes (MetadataDirective REPLACE), `tags` new tags
    /// (TaggingDirective REPLACE); otherwise the source's are copied.
    pub async fn copy_object(
        &self,
        source: (&str, &str, Option<&str>),
        target: (&str, &str),
        replace: Option<Version>,
        tags: Option<BTreeMap<String, String>>,
    ) -> Result<Version, S3StoreError> {
        let (from, path) = self.get_object(source.0, source.1, source.2)?;
        self.bucket(target.0)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tmp = self.root.join("tmp").join(&id);
        tokio::fs::copy(&path, &tmp).await.map_err(io)?;
        tokio::fs::File::open(&tmp)
            .await
            .map_err(io)?
            .sync_all()
            .await
            .map_err(io)?;
        tokio::fs::rename(&tmp, self.blob_path(&id))
            .await
            .map_err(io)?;
        let attributes = replace.unwrap_or_else(|| from.clone());
        let version = Version {
            blob: Some(id.clone()),
            size: from.size,
            etag: from.etag.clone(),
            parts: Vec::new(),
            tags: tags.unwrap_or_else(|| from.tags.clone()),
            ..attributes
        };
        self.put_version(target.0, target.1, version)
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(self.blob_path(&id));
            })
    }

    /// PutObjectTagging and DeleteObjectTagging: replaces the tags of a version (the newest
    /// without `version_id`); returns the version id tagged.
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<String, S3StoreError> {
        self.commit(bucket, |state| {
            let b = state.ok_or(S3StoreError::NoSuchBucket)?;
            let version = match version_id {
                Some(id) => b.version(key, id).ok_or(S3StoreError::NoSuchVersion)?,
                None => b.latest(key).ok_or(S3StoreError::NoSuchKey)?,
            };
            if version.is_delete_marker() {
                return Err(match version_id {
                    Some(_) => S3StoreError::DeleteMarker,
                    None => S3StoreError::NoSuchKey,
                });
            }
            let id = version.version_id.clone();
            Ok((
                vec![S3Event::TagsSet {
                    key: key.to_string(),
                    tagged_version: id.clone(),
                    tags,
                }],
                id,
            ))
        })
        .await
    }

    /// ListMultipartUploads: the uploads in progress, by key then by initiation, with their ids.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<(String, Upload)>, S3StoreError> {
        self.with_bucket(bucket, |b| {
            let mut uploads: Vec<(String, Upload)> = b
                .uploads
                .iter()
                .map(|(id, u)| (id.clone(), u.clone()))
                .collect();
            uploads.sort_by(|a, b| {
                (&a.1.key, a.1.initiated, &a.0)
                    .partial_cmp(&(&b.1.key, b.1.initiated, &b.0))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            uploads
        })
    }

    /// CreateMultipartUpload: returns the upload id.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        attributes: Version,
    ) -> Result<String, S3StoreError> {
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let initiated = crate::aws::now_epoch();
        std::fs::create_dir_all(self.root.join("uploads").join(&upload_id)).map_err(io)?;
        self.commit(bucket, |state| {
            state.ok_or(S3StoreError::NoSuchBucket)?;
            Ok((
                vec![S3Event::UploadCreated {
                    upload_id: upload_id.clone(),
                    upload: Upload {
                        key: key.to_string(),
                        attributes,
                        initiated,
                    },
                }],
                upload_id.clone(),
            ))
        })
        .await
    }

    fn upload(&self, bucket: &str, upload_id: &str) -> Result<Upload, S3StoreError> {
        let state = self.state.read().expect("s3 state lock");
        let b = state
            .buckets
            .get(bucket)
            .ok_or(S3StoreError::NoSuchBucket)?;
        b.uploads
            .get(upload_id)
            .cloned()
            .ok_or(S3StoreError::NoSuchUpload)
    }

    /// UploadPart: returns the part's ETag (MD5 hex).
    pub async fn upload_part(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
        body: BodyStream,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<String, S3StoreError> {
        self.upload(bucket, upload_id)?;
        let (blob, _, md5) = self.write_blob(body, expected_md5).await?;
        // Parts live in the upload's directory until the upload completes or is aborted.
        tokio::fs::rename(self.blob_path(&blob), self.part_path(upload_id, number))
            .await
            .map_err(io)?;
        Ok(hex(&md5))
    }

    /// ListParts: the parts uploaded so far, by number.
    pub async fn list_parts(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<(Upload, Vec<PartInfo>), S3StoreError> {
        let upload = self.upload(bucket, upload_id)?;
        let mut parts = Vec::new();
        let dir = self.root.join("uploads").join(upload_id);
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(number) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let meta = entry.metadata().map_err(io)?;
            let mut file = tokio::fs::File::open(entry.path()).await.map_err(io)?;
            let (md5, _) = digest_file(&mut file, None).await?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            parts.push(PartInfo {
                number,
                etag: hex(&md5),
                size: meta.len(),
                last_modified: modified,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok((upload, parts))
    }

    /// CompleteMultipartUpload: joins the named parts, in order, into the object.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<Version, S3StoreError> {
        let upload = self.upload(bucket, upload_id)?;
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(S3StoreError::InvalidPartOrder);
        }
        if parts.is_empty() {
            return Err(S3StoreError::InvalidPart(
                "the upload names no parts".into(),
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tmp = self.root.join("tmp").join(&id);
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut digests = Vec::with_capacity(parts.len() * 16);
        let mut size = 0u64;
        let mut sizes = Vec::with_capacity(parts.len());
        for (number, etag) in parts {
            let before = size;
            let path = self.part_path(upload_id, *number);
            let mut file = tokio::fs::File::open(&path).await.map_err(|_| {
                S3StoreError::InvalidPart(format!("part {number} was not uploaded"))
            })?;
            let (digest, length) = digest_file(&mut file, Some(&mut out)).await?;
            size += length;
            if hex(&digest) != etag.trim_matches('"') {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(S3StoreError::InvalidPart(format!(
                    "part {number} has another ETag"
                )));
            }
            digests.extend_from_slice(&digest);
            sizes.push(size - before);
        }
        out.sync_all().await.map_err(io)?;
        drop(out);
        tokio::fs::rename(&tmp, self.blob_path(&id))
            .await
            .map_err(io)?;
        let etag = format!("{}-{}", hex(&Md5::digest(&digests)), parts.len());
        let version = Version {
            blob: Some(id.clone()),
            size,
            etag,
            parts: sizes,
            ..upload.attributes.clone()
        };
        let last_modified = crate::aws::now_epoch();
        let key = upload.key.clone();
        let version = self
            .commit(bucket, |state| {
                let b = state.ok_or(S3StoreError::NoSuchBucket)?;
                if !b.uploads.contains_key(upload_id) {
                    return Err(S3StoreError::NoSuchUpload);
                }
                let version = Version {
                    version_id: new_version_id(b.versioning),
                    last_modified,
                    ..version
                };
                Ok((
                    vec![
                        S3Event::ObjectPut {
                            key: key.clone(),
                            version: version.clone(),
                        },
                        S3Event::UploadEnded {
                            ended_upload: upload_id.to_string(),
                        },
                    ],
                    version,
                ))
            })
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(self.blob_path(&id));
            })?;
        let _ = tokio::fs::remove_dir_all(self.root.join("uploads").join(upload_id)).await;
        Ok(version)
    }

    /// AbortMultipartUpload.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), S3StoreError> {
        self.commit(bucket, |state| {
            let b = state.ok_or(S3StoreError::NoSuchBucket)?;
            if !b.uploads.contains_key(upload_id) {
                return Err(S3StoreError::NoSuchUpload);
            }
            Ok((
                vec![S3Event::UploadEnded {
                    ended_upload: upload_id.to_string(),
                }],
                (),
            ))
        })
        .await?;
        let _ = tokio::fs::remove_dir_all(self.root.join("uploads").join(upload_id)).await;
        Ok(())
    }
}

/// Reads `file` to its end in pieces, copying them to `out` when given: its MD5 and size.
async fn digest_file(
    file: &mut tokio::fs::File,
    mut out: Option<&mut tokio::fs::File>,
) -> Result<([u8; 16], u64), S3StoreError> {
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = tokio::io::AsyncReadExt::read(file, &mut buf)
            .await
            .map_err(io)?;
        if n == 0 {
            return Ok((md5.finalize().into(), size));
        }
        md5.update(&buf[..n]);
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&buf[..n]).await.map_err(io)?;
        }
        size += n as u64;
    }
}

/// The id a new version gets: a fresh one when versioning is enabled, else `null`.
fn new_version_id(versioning: Versioning) -> String {
    match versioning {
        Versioning::Enabled => uuid::Uuid::new_v4().simple().to_string(),
        Versioning::Unversioned | Versioning::Suspended => "null".to_string(),
    }
}

impl crate::checkpoint::Projection for LocalStore {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn apply(&self, record: &RecordedEvent) {
        LocalStore::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let state = self.state.read().expect("s3 state lock");
        serde_json::value::to_raw_value(&*state).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let mut state: S3State = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for (name, b) in &mut state.buckets {
            b.objects = Objects::on_shelf(self.shelf.clone(), name, self.role, b.created_sequence);
        }
        *self.state.write().expect("s3 state lock") = state;
        Ok(())
    }

    fn clear(&self) {
        *self.state.write().expect("s3 state lock") = S3State::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &'static str) -> BodyStream {
        Box::pin(futures_util::stream::once(async move {
            Ok(Bytes::from_static(text.as_bytes()))
        }))
    }

    #[tokio::test]
    async fn a_write_recorded_but_not_folded_is_folded_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventStore> = Arc::new(crate::eventstore::memory::MemoryStore::new());
        let store = LocalStore::open(dir.path(), log.clone()).unwrap();
        store.create_bucket("b", "eu-central-1").await.unwrap();
        let first = store
            .put_object("b", "first", placeholder(), body("1"), None)
            .await
            .unwrap();
        // A commit whose caller went away between its append and its fold left this behind:
        // an object put in the log that the state has not seen.
        let stream = bucket_stream("b");
        let recorded = log.read_stream(&stream, 1).unwrap();
        let last = recorded.last().unwrap();
        let mut data = last.data.clone();
        data["key"] = "ghost".into();
        let ghost = crate::eventstore::NewEvent {
            event_type: last.event_type.clone(),
            schema_version: last.schema_version,
            data,
        };
        log.append(&stream, last.sequence, vec![ghost]).unwrap();
        // The next write is not refused, and the ghost's object is there.
        store
            .put_object("b", "second", first.clone(), body("2"), None)
            .await
            .unwrap();
        assert!(store.get_object("b", "ghost", None).is_ok());
        assert!(store.get_object("b", "second", None).is_ok());
    }

    fn placeholder() -> Version {
        serde_json::from_value(serde_json::json!({
            "version_id": "null", "last_modified": 0.0, "size": 0, "etag": "",
        }))
        .unwrap_or_else(|e| panic!("a version's shape changed: {e}"))
    }
}
