//! Shelves: keyed tables kept beside the log, for the parts of projections too large to hold in
//! memory (the summaries of finished executions). What a shelf holds is derived from the log and
//! written by folds of it; it is no part of the data format: a fold writes it again.
//!
//! Writes need not be durable one by one. A checkpoint syncs the shelves before it records its
//! position ([`crate::eventstore::EventStore::sync_shelves`]), so whatever the events up to that
//! position wrote is on disk, and start-up folds the events after it again; shelf writes are made
//! so that writing the same thing twice, or late, changes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::StoreError;

/// Entries of a shelf: (key, value) pairs.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What [`Shelf::update`] does with a key, given its current value.
pub enum Change {
    /// Leaves it as it is.
    Keep,
    /// Sets it.
    Put(Vec<u8>),
    /// Removes it.
    Remove,
}

/// How a fold writes a shelf that the live views and the checkpoints' folds share: both write
/// what they fold, a later state never replaced by an earlier one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// The views queries read (or an offline reader's): what leaves a projection (an execution
    /// a pipeline's deletion or the history's retention removes, an S3 key deleted) is marked gone
    /// on the shelf, so that a fold still behind cannot bring it back.
    Live,
    /// A checkpoint's fold, which follows the live views: it removes those marks once it passes
    /// the removal, since no fold can come back to the events before it.
    Checkpoint,
}

/// A keyed table beside the log.
pub trait Shelf: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Changes `key` as `decide` says given its current value, atomically: when another writer
    /// changed it in between, `decide` is asked again.
    fn update(
        &self,
        key: &[u8],
        decide: &mut dyn FnMut(Option<&[u8]>) -> Change,
    ) -> Result<(), StoreError>;
    /// The keys starting with `prefix`, in order.
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Up to `limit` entries whose keys start with `prefix` and come after `after` (from the
    /// first without it), in key order.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;
    /// Removes every key starting with `prefix`.
    fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StoreError> {
        for key in self.keys(prefix)? {
            self.update(&key, &mut |_| Change::Remove)?;
        }
        Ok(())
    }
}

/// A shelf in memory, for stores that keep the log in memory.
#[derive(Default)]
pub struct MemoryShelf {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Shelf for MemoryShelf {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.lock().expect("shelf lock").get(key).cloned())
    }

    fn update(
        &self,
        key: &[u8],
        decide: &mut dyn FnMut(Option<&[u8]>) -> Change,
    ) -> Result<(), StoreError> {
        let mut map = self.map.lock().expect("shelf lock");
        match decide(map.get(key).map(Vec::as_slice)) {
            Change::Keep => {}
            Change::Put(value) => {
                map.insert(key.to_vec(), value);
            }
            Change::Remove => {
                map.remove(key);
            }
        }
        Ok(())
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let map = self.map.lock().expect("shelf lock");
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        use std::ops::Bound;
        let map = self.map.lock().expect("shelf lock");
        let start = match after {
            Some(after) => Bound::Excluded(after.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        Ok(map
            .range((start, Bound::Unbounded))
            .skip_while(|(k, _)| k.as_slice() < prefix)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    /// What every shelf does.
    pub fn shelf_contract(shelf: &dyn Shelf) {
        assert_eq!(shelf.get(b"a1").unwrap(), None);
        shelf
            .update(b"a1", &mut |_| Change::Put(b"one".to_vec()))
            .unwrap();
        shelf
            .update(b"a2", &mut |_| Change::Put(b"two".to_vec()))
            .unwrap();
        shelf
            .update(b"b1", &mut |_| Change::Put(b"three".to_vec()))
            .unwrap();
        assert_eq!(shelf.get(b"a1").unwrap().as_deref(), Some(&b"one"[..]));
        let mut seen = None;
        shelf
            .update(b"a1", &mut |cur| {
                seen = cur.map(<[u8]>::to_vec);
                Change::Keep
            })
            .unwrap();
        assert_eq!(seen.as_deref(), Some(&b"one"[..]));
        assert_eq!(shelf.get(b"a1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(
            shelf.keys(b"a").unwrap(),
            vec![b"a1".to_vec(), b"a2".to_vec()]
        );
        let scanned = |after: Option<&[u8]>, limit| {
            shelf
                .scan(b"a", after, limit)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(scanned(None, 10), [b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(scanned(None, 1), [b"a1".to_vec()]);
        assert_eq!(scanned(Some(b"a1"), 10), [b"a2".to_vec()]);
        assert_eq!(scanned(Some(b"0"), 10), [b"a1".to_vec(), b"a2".to_vec()]);
        assert!(scanned(Some(b"a2"), 10).is_empty());
        assert_eq!(
            shelf.scan(b"b", None, 10).unwrap(),
            [(b"b1".to_vec(), b"three".to_vec())]
        );
        shelf.remove_prefix(b"a").unwrap();
        assert!(shelf.keys(b"a").unwrap().is_empty());
        assert_eq!(shelf.get(b"b1").unwrap().as_deref(), Some(&b"three"[..]));
        shelf.update(b"b1", &mut |_| Change::Remove).unwrap();
        assert_eq!(shelf.get(b"b1").unwrap(), None);
    }

    #[test]
    fn memory_shelf() {
        shelf_contract(&MemoryShelf::default());
    }
}
