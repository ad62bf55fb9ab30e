//! A bucket's keys and their versions. In the server they are on a shelf beside the log
//! ([`crate::eventstore::shelf`]), not in memory: an artifact bucket gains a key per pipeline
//! execution, for ever. Lookups read one entry; listings read the shelf in key order, a chunk at
//! a time. Without a shelf (unit tests of the fold) they are kept in memory.
//!
//! An entry is the sequence of the bucket-stream event that last changed the key (8 bytes,
//! big-endian), then the key's versions as JSON, oldest first; an empty list marks a key deleted
//! at that sequence. The live store and the checkpoints' folds both write entries, each in its
//! own order, and an entry is never replaced by an earlier state; a deleted key's mark is
//! removed by the checkpoint's fold when it reaches the deletion (see [`Role`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::eventstore::shelf::{Change, Role, Shelf};

use super::events::Version;

/// How many entries a listing reads from the shelf at a time.
const CHUNK: usize = 128;

/// Where a bucket's keys are.
#[derive(Clone)]
struct OnShelf {
    shelf: Arc<dyn Shelf>,
    /// The bucket's name and `0x00`: what every key of the bucket starts with on the shelf.
    prefix: Vec<u8>,
    role: Role,
    /// The sequence of the bucket's creation: entries older than it are of a bucket of the same
    /// name that was deleted, which a fold still behind may have written; they count as none.
    floor: u64,
}

/// A bucket's keys, each with its versions, oldest first.
#[derive(Clone, Default)]
pub struct Objects {
    shelf: Option<OnShelf>,
    memory: BTreeMap<String, Vec<Version>>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shelf {
            Some(s) => write!(f, "Objects(on the shelf, {:?})", s.role),
            None => f.debug_map().entries(self.memory.iter()).finish(),
        }
    }
}

/// An entry's sequence and versions.
fn parse(value: &[u8]) -> Option<(u64, Vec<Version>)> {
    let (seq, json) = value.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*seq), serde_json::from_slice(json).ok()?))
}

fn entry(sequence: u64, versions: &[Version]) -> Vec<u8> {
    let mut value = sequence.to_be_bytes().to_vec();
    // Versions always serialise.
    value.extend(serde_json::to_vec(versions).unwrap_or_default());
    value
}

impl Objects {
    /// The keys of `bucket`, created at `floor` of its stream, on `shelf`, written as `role`
    /// says.
    pub fn on_shelf(shelf: Arc<dyn Shelf>, bucket: &str, role: Role, floor: u64) -> Self {
        Objects {
            shelf: Some(OnShelf {
                shelf,
                prefix: [bucket.as_bytes(), &[0]].concat(),
                role,
                floor,
            }),
            memory: BTreeMap::new(),
        }
    }

    /// A key's versions, oldest first (`None` for a key that has none).
    pub fn get(&self, key: &str) -> Option<Vec<Version>> {
        let Some(on) = &self.shelf else {
            return self.memory.get(key).cloned();
        };
        let value = on
            .shelf
            .get(&[on.prefix.as_slice(), key.as_bytes()].concat())
            .unwrap_or_else(|e| {
                log::error!("an S3 key could not be read from the shelf: {e}");
                None
            })?;
        parse(&value)
            .filter(|(at, versions)| *at >= on.floor && !versions.is_empty())
            .map(|(_, versions)| versions)
    }

    /// The keys after `after` (every key for ""), in order, with their versions.
    pub fn after<'a>(
        &'a self,
        after: &str,
    ) -> Box<dyn Iterator<Item = (String, Vec<Version>)> + 'a> {
        let Some(on) = &self.shelf else {
            return Box::new(
                self.memory
                    .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        };
        let after = (!after.is_empty()).then(|| [on.prefix.as_slice(), after.as_bytes()].concat());
        Box::new(Entries::new(on, after).filter_map(move |(k, v)| {
            let (_, versions) = parse(&v).filter(|(at, v)| *at >= on.floor && !v.is_empty())?;
            let key = String::from_utf8_lossy(&k[on.prefix.len()..]).into_owned();
            Some((key, versions))
        }))
    }

    /// The keys from `start` on (`start` included), in order, with their versions.
    pub fn from<'a>(
        &'a self,
        start: &str,
    ) -> Box<dyn Iterator<Item = (String, Vec<Version>)> + 'a> {
        let first = match start {
            "" => None,
            key => self.get(key).map(|v| (key.to_string(), v)),
        };
        Box::new(first.into_iter().chain(self.after(start)))
    }

    /// Whether the bucket holds no versions.
    pub fn is_empty(&self) -> bool {
        self.after("").next().is_none()
    }

    /// Changes a key's versions with `change` as the event at `sequence` of the bucket's stream
    /// does, unless the shelf holds a later state of the key. Returns what `change` returned
    /// (the blobs it freed), or nothing when the change was not made.
    pub fn change(
        &mut self,
        key: &str,
        sequence: u64,
        change: impl Fn(&mut Vec<Version>) -> Vec<String>,
    ) -> Vec<String> {
        let Some(on) = &self.shelf else {
            let versions = self.memory.entry(key.to_string()).or_default();
            let freed = change(versions);
            if versions.is_empty() {
                self.memory.remove(key);
            }
            return freed;
        };
        let mut freed = Vec::new();
        let written = on.shelf.update(
            &[on.prefix.as_slice(), key.as_bytes()].concat(),
            &mut |current| {
                freed.clear();
                let (at, mut versions) = current
                    .and_then(parse)
                    .filter(|(at, _)| *at >= on.floor)
                    .unwrap_or_default();
                if at > sequence {
                    return Change::Keep;
                }
                if at == sequence {
                    // Folded already: the checkpoint's fold, following the live store, takes
                    // the mark of a deletion away once it reaches it.
                    return match (on.role, versions.is_empty()) {
                        (Role::Checkpoint, true) => Change::Remove,
                        _ => Change::Keep,
                    };
                }
                freed = change(&mut versions);
                Change::Put(entry(sequence, &versions))
            },
        );
        match written {
            Ok(()) => freed,
            Err(e) => {
                log::error!("an S3 key could not be written to the shelf: {e}");
                Vec::new()
            }
        }
    }

    /// Removes the keys written before `sequence`, the bucket's deletion (S3 deletes only empty
    /// buckets, so only marks of deleted keys are left, or what a fold behind wrote).
    pub fn clear(&mut self, sequence: u64) {
        self.memory.clear();
        let Some(on) = &self.shelf else {
            return;
        };
        for (key, value) in Entries::new(on, None) {
            if parse(&value).is_some_and(|(at, _)| at >= sequence) {
                continue;
            }
            let removed = on
                .shelf
                .update(&key, &mut |current| match current.and_then(parse) {
                    Some((at, _)) if at >= sequence => Change::Keep,
                    _ => Change::Remove,
                });
            if let Err(e) = removed {
                log::error!("a deleted bucket's key stays on the shelf: {e}");
            }
        }
    }
}

/// A bucket's entries on the shelf after a shelf key (from the first without one), as stored,
/// read a chunk at a time.
struct Entries<'a> {
    on: &'a OnShelf,
    /// The last shelf key read.
    last: Option<Vec<u8>>,
    chunk: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<'a> Entries<'a> {
    fn new(on: &'a OnShelf, after: Option<Vec<u8>>) -> Self {
        Entries {
            on,
            last: after,
            chunk: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((k, v)) = self.chunk.next() {
            self.last = Some(k.clone());
            return Some((k, v));
        }
        if self.done {
            return None;
        }
        let chunk = self
            .on
            .shelf
            .scan(&self.on.prefix, self.last.as_deref(), CHUNK)
            .unwrap_or_else(|e| {
                log::error!("a bucket's keys could not be read from the shelf: {e}");
                Vec::new()
            });
        self.done = chunk.len() < CHUNK;
        self.chunk = chunk.into_iter();
        let (k, v) = self.chunk.next()?;
        self.last = Some(k.clone());
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstore::shelf::MemoryShelf;

    fn version(id: &str) -> Version {
        Version {
            version_id: id.into(),
            ..Version::blank()
        }
    }

    fn push(id: &'static str) -> impl Fn(&mut Vec<Version>) -> Vec<String> {
        move |v| {
            v.push(version(id));
            Vec::new()
        }
    }

    fn ids(objects: &Objects) -> Vec<(String, usize)> {
        objects.after("").map(|(k, v)| (k, v.len())).collect()
    }

    #[test]
    fn keys_on_the_shelf_are_listed_in_order_across_chunks_and_buckets() {
        let shelf: Arc<dyn Shelf> = Arc::new(MemoryShelf::default());
        let mut a = Objects::on_shelf(shelf.clone(), "a", Role::Live, 0);
        let mut ab = Objects::on_shelf(shelf.clone(), "ab", Role::Live, 0);
        for i in 0..300 {
            a.change(&format!("k{i:03}"), i + 1, push("null"));
        }
        ab.change("k000", 1, push("null"));
        assert_eq!(ids(&a).len(), 300);
        assert_eq!(ids(&ab), [("k000".to_string(), 1)]);
        assert_eq!(
            a.after("k298").map(|(k, _)| k).collect::<Vec<_>>(),
            ["k299"]
        );
        assert_eq!(a.get("k007").unwrap()[0].version_id, "null");
        assert!(!a.is_empty());
    }

    #[test]
    fn a_fold_behind_never_undoes_a_later_state_and_deletions_stay_deleted() {
        let shelf: Arc<dyn Shelf> = Arc::new(MemoryShelf::default());
        let mut live = Objects::on_shelf(shelf.clone(), "b", Role::Live, 0);
        let mut behind = Objects::on_shelf(shelf.clone(), "b", Role::Checkpoint, 0);
        let delete = |v: &mut Vec<Version>| {
            v.clear();
            vec!["blob".to_string()]
        };
        live.change("k", 1, push("v1"));
        live.change("k", 2, push("v2"));
        live.change("gone", 3, push("v1"));
        assert_eq!(live.change("gone", 4, delete), ["blob"]);
        // The fold behind replays the same events: nothing changes, nothing is freed twice.
        behind.change("k", 1, push("v1"));
        assert_eq!(live.get("k").unwrap().len(), 2);
        behind.change("gone", 3, push("v1"));
        assert_eq!(live.get("gone"), None);
        assert_eq!(ids(&live), [("k".to_string(), 2)]);
        // Once it reaches the deletion, its mark goes.
        assert!(behind.change("gone", 4, delete).is_empty());
        assert_eq!(shelf.keys(b"b\0").unwrap(), [b"b\0k".to_vec()]);
        live.change("k", 5, |v| {
            v.clear();
            Vec::new()
        });
        assert!(live.is_empty());
    }

    #[test]
    fn a_bucket_made_again_does_not_see_what_a_fold_behind_writes_of_the_old_one() {
        let shelf: Arc<dyn Shelf> = Arc::new(MemoryShelf::default());
        let mut old_live = Objects::on_shelf(shelf.clone(), "b", Role::Live, 1);
        let mut behind = Objects::on_shelf(shelf.clone(), "b", Role::Checkpoint, 1);
        old_live.change("old", 2, push("null"));
        old_live.change("old", 3, |v| {
            v.clear();
            Vec::new()
        });
        old_live.clear(4);
        // Created again at 5, with a key of its own.
        let mut live = Objects::on_shelf(shelf.clone(), "b", Role::Live, 5);
        live.change("new", 6, push("null"));
        // The fold behind writes the old bucket's key: the new bucket does not see it.
        behind.change("old", 2, push("null"));
        assert_eq!(ids(&live), [("new".to_string(), 1)]);
        assert_eq!(live.get("old"), None);
        // Reaching the deletion, it removes what it wrote, and not the new bucket's key.
        behind.clear(4);
        assert_eq!(shelf.keys(b"b\0").unwrap(), [b"b\0new".to_vec()]);
    }
}
