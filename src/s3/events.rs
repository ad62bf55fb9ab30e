//! The S3 event types and how they fold into the bucket state. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::keys::Objects;
use crate::eventstore::shelf::{Role, Shelf};
use crate::eventstore::EventType;

/// The prefix of every bucket stream: `s3:<bucket>`.
pub const BUCKET_STREAM_PREFIX: &str = "s3:";

/// The stream of a bucket.
pub fn bucket_stream(bucket: &str) -> String {
    format!("{BUCKET_STREAM_PREFIX}{bucket}")
}

/// A bucket's versioning state, as S3 has three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Versioning {
    /// Never enabled: every key has one version, `null`.
    #[default]
    Unversioned,
    /// New writes get a fresh version id.
    Enabled,
    /// New writes get the `null` version id again; older versions stay.
    Suspended,
}

/// One version of a key: an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The version id, `null` in unversioned and suspended buckets.
    pub version_id: String,
    /// The file holding the bytes; `None` for a delete marker.
    pub blob: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The ETag, without quotes: MD5 hex, or `<md5 of part md5s>-<parts>` for multipart uploads.
    pub etag: String,
    /// Content-Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Cache-Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Content-Encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys in lower case.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When it was written, epoch seconds.
    pub last_modified: f64,
    /// For an object of a multipart upload: the size of each part, in order (what GetObject
    /// and HeadObject with `partNumber` answer from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
    /// The object's tags (at most 10).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Version {
    /// A version with nothing set yet: the base that writes fill in.
    pub fn blank() -> Version {
        Version {
            version_id: String::new(),
            blob: None,
            size: 0,
            etag: String::new(),
            content_type: None,
            cache_control: None,
            content_encoding: None,
            content_disposition: None,
            metadata: BTreeMap::new(),
            last_modified: 0.0,
            parts: Vec::new(),
            tags: BTreeMap::new(),
        }
    }

    /// Whether this version is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        self.blob.is_none()
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// The key the object will have.
    pub key: String,
    /// Object attributes given at creation.
    pub attributes: Version,
    /// When it was created.
    pub initiated: f64,
}

/// Everything that can happen to a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum S3Event {
    /// `S3BucketCreated`.
    BucketCreated {
        /// The bucket's region.
        region: String,
        /// When.
        at: f64,
    },
    /// `S3BucketDeleted`.
    BucketDeleted {
        /// When.
        deleted_at: f64,
    },
    /// `S3VersioningSet`.
    VersioningSet {
        /// The new state.
        versioning: Versioning,
    },
    /// `S3ObjectPut`: a version (object or delete marker) became the newest of its key; a `null`
    /// version replaces the previous `null` version.
    ObjectPut {
        /// The key.
        key: String,
        /// The version.
        version: Version,
    },
    /// `S3VersionRemoved`: one version is gone for good.
    VersionRemoved {
        /// The key.
        key: String,
        /// The version id removed.
        removed_version: String,
    },
    /// `S3TagsSet`: one version's tags were replaced (emptied by DeleteObjectTagging).
    TagsSet {
        /// The key.
        key: String,
        /// The version id tagged.
        tagged_version: String,
        /// The new tags.
        tags: BTreeMap<String, String>,
    },
    /// `S3UploadCreated`.
    UploadCreated {
        /// The upload id.
        upload_id: String,
        /// The upload.
        upload: Upload,
    },
    /// `S3UploadEnded`: completed or aborted.
    UploadEnded {
        /// The upload id.
        ended_upload: String,
    },
}

impl EventType for S3Event {
    fn type_name(&self) -> &'static str {
        match self {
            S3Event::BucketCreated { .. } => "S3BucketCreated",
            S3Event::BucketDeleted { .. } => "S3BucketDeleted",
            S3Event::VersioningSet { .. } => "S3VersioningSet",
            S3Event::ObjectPut { .. } => "S3ObjectPut",
            S3Event::VersionRemoved { .. } => "S3VersionRemoved",
            S3Event::TagsSet { .. } => "S3TagsSet",
            S3Event::UploadCreated { .. } => "S3UploadCreated",
            S3Event::UploadEnded { .. } => "S3UploadEnded",
        }
    }

    fn owns(type_name: &str) -> bool {
        type_name.starts_with("S3")
    }

    fn decode(type_name: &str, data: &serde_json::Value) -> Result<Self, serde_json::Error> {
        let event = S3Event::deserialize(data)?;
        if event.type_name() != type_name {
            return Err(serde::de::Error::custom(format!(
                "a {} payload is stored as {type_name}",
                event.type_name()
            )));
        }
        Ok(event)
    }
}

/// One bucket as its events built it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketState {
    /// Region.
    pub region: String,
    /// Creation time.
    pub created: f64,
    /// Versioning state.
    pub versioning: Versioning,
    /// Versions of each key, oldest first: on the log's shelf in the server, so not in
    /// checkpoints.
    #[serde(skip)]
    pub objects: Objects,
    /// The sequence of the bucket's creation in its stream.
    #[serde(default)]
    pub created_sequence: u64,
    /// Multipart uploads in progress.
    pub uploads: HashMap<String, Upload>,
    /// The stream sequence the state is at.
    pub sequence: u64,
}

impl BucketState {
    /// The newest version of a key, which may be a delete marker.
    pub fn latest(&self, key: &str) -> Option<Version> {
        self.objects.get(key)?.pop()
    }

    /// A given version of a key.
    pub fn version(&self, key: &str, version_id: &str) -> Option<Version> {
        self.objects
            .get(key)?
            .into_iter()
            .find(|v| v.version_id == version_id)
    }

    /// Whether the bucket holds no versions (S3 refuses to delete a bucket that does).
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Folds an event into the buckets, their keys on `shelf` (written in the given role) when there
/// is one. Returns the blobs no version refers to any more.
pub fn apply(
    buckets: &mut BTreeMap<String, BucketState>,
    shelf: Option<(&Arc<dyn Shelf>, Role)>,
    bucket: &str,
    sequence: u64,
    event: S3Event,
) -> Vec<String> {
    let mut freed = Vec::new();
    match event {
        S3Event::BucketCreated { region, at } => {
            let objects = match shelf {
                Some((shelf, role)) => Objects::on_shelf(shelf.clone(), bucket, role, sequence),
                None => Objects::default(),
            };
            buckets.insert(
                bucket.to_string(),
                BucketState {
                    region,
                    created: at,
                    objects,
                    created_sequence: sequence,
                    ..Default::default()
                },
            );
        }
        S3Event::BucketDeleted { .. } => {
            if let Some(mut b) = buckets.remove(bucket) {
                b.objects.clear(sequence);
            }
            return freed;
        }
        S3Event::VersioningSet { versioning } => {
            if let Some(b) = buckets.get_mut(bucket) {
                b.versioning = versioning;
            }
        }
        S3Event::ObjectPut { key, version } => {
            if let Some(b) = buckets.get_mut(bucket) {
                freed = b.objects.change(&key, sequence, |versions| {
                    let mut freed = Vec::new();
                    if version.version_id == "null" {
                        versions.retain(|v| {
                            let replaced = v.version_id == "null";
                            if replaced {
                                freed.extend(v.blob.clone());
                            }
                            !replaced
                        });
                    }
                    versions.push(version.clone());
                    freed
                });
            }
        }
        S3Event::VersionRemoved {
            key,
            removed_version,
        } => {
            if let Some(b) = buckets.get_mut(bucket) {
                freed = b.objects.change(&key, sequence, |versions| {
                    let mut freed = Vec::new();
                    versions.retain(|v| {
                        let removed = v.version_id == removed_version;
                        if removed {
                            freed.extend(v.blob.clone());
                        }
                        !removed
                    });
                    freed
                });
            }
        }
        S3Event::TagsSet {
            key,
            tagged_version,
            tags,
        } => {
            if let Some(b) = buckets.get_mut(bucket) {
                b.objects.change(&key, sequence, |versions| {
                    if let Some(v) = versions.iter_mut().find(|v| v.version_id == tagged_version) {
                        v.tags = tags.clone();
                    }
                    Vec::new()
                });
            }
        }
        S3Event::UploadCreated { upload_id, upload } => {
            if let Some(b) = buckets.get_mut(bucket) {
                b.uploads.insert(upload_id, upload);
            }
        }
        S3Event::UploadEnded { ended_upload } => {
            if let Some(b) = buckets.get_mut(bucket) {
                b.uploads.remove(&ended_upload);
            }
        }
    }
    if let Some(b) = buckets.get_mut(bucket) {
        b.sequence = sequence;
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstore::RecordedEvent;

    fn version(id: &str, blob: Option<&str>) -> Version {
        Version {
            version_id: id.into(),
            blob: blob.map(str::to_string),
            size: 1,
            etag: "e".into(),
            last_modified: 1.0,
            ..Version::blank()
        }
    }

    fn given(events: Vec<S3Event>) -> (BTreeMap<String, BucketState>, Vec<String>) {
        let mut buckets = BTreeMap::new();
        let mut freed = Vec::new();
        for (i, e) in events.into_iter().enumerate() {
            freed.extend(apply(&mut buckets, None, "b", i as u64 + 1, e));
        }
        (buckets, freed)
    }

    fn created() -> S3Event {
        S3Event::BucketCreated {
            region: "eu-central-1".into(),
            at: 1.0,
        }
    }

    #[test]
    fn a_null_version_replaces_the_previous_null_version() {
        let put = |blob: &str| S3Event::ObjectPut {
            key: "k".into(),
            version: version("null", Some(blob)),
        };
        let (buckets, freed) = given(vec![created(), put("one"), put("two")]);
        let b = &buckets["b"];
        assert_eq!(b.objects.get("k").unwrap().len(), 1);
        assert_eq!(b.latest("k").unwrap().blob.as_deref(), Some("two"));
        assert_eq!(freed, vec!["one".to_string()]);
        assert_eq!(b.sequence, 3);
    }

    #[test]
    fn versions_accumulate_and_markers_hide_the_key() {
        let (buckets, _) = given(vec![
            created(),
            S3Event::VersioningSet {
                versioning: Versioning::Enabled,
            },
            S3Event::ObjectPut {
                key: "k".into(),
                version: version("v1", Some("a")),
            },
            S3Event::ObjectPut {
                key: "k".into(),
                version: version("v2", None),
            },
        ]);
        let b = &buckets["b"];
        assert_eq!(b.objects.get("k").unwrap().len(), 2);
        assert!(b.latest("k").unwrap().is_delete_marker());
        assert_eq!(b.version("k", "v1").unwrap().blob.as_deref(), Some("a"));
    }

    #[test]
    fn removing_the_last_version_removes_the_key_and_frees_its_blob() {
        let (buckets, freed) = given(vec![
            created(),
            S3Event::ObjectPut {
                key: "k".into(),
                version: version("null", Some("a")),
            },
            S3Event::VersionRemoved {
                key: "k".into(),
                removed_version: "null".into(),
            },
        ]);
        assert!(buckets["b"].is_empty());
        assert_eq!(freed, vec!["a".to_string()]);
    }

    #[test]
    fn tags_replace_one_versions_tags_only() {
        let tags: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let (buckets, _) = given(vec![
            created(),
            S3Event::ObjectPut {
                key: "k".into(),
                version: version("v1", Some("a")),
            },
            S3Event::ObjectPut {
                key: "k".into(),
                version: version("v2", Some("b")),
            },
            S3Event::TagsSet {
                key: "k".into(),
                tagged_version: "v1".into(),
                tags: tags.clone(),
            },
        ]);
        let b = &buckets["b"];
        assert_eq!(b.version("k", "v1").unwrap().tags, tags);
        assert!(b.version("k", "v2").unwrap().tags.is_empty());
    }

    #[test]
    fn events_round_trip_through_records() {
        let e = S3Event::VersioningSet {
            versioning: Versioning::Suspended,
        };
        let new = e.to_new_event();
        let record = RecordedEvent {
            position: 1,
            stream: bucket_stream("b"),
            sequence: 1,
            event_type: new.event_type,
            schema_version: 1,
            recorded_at: 0.0,
            data: new.data,
        };
        assert_eq!(S3Event::from_record(&record), Some(e));
    }
}
