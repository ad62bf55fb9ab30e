//! An in-memory [`EventStore`] for unit tests: the same contract, nothing on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::shelf::{MemoryShelf, Shelf};

use super::{Durable, EventStore, NewEvent, RecordedEvent, StoreError};

/// Events kept in a vector, streams as indexes into it.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    shelves: Mutex<HashMap<&'static str, Arc<MemoryShelf>>>,
}

#[derive(Default)]
struct Inner {
    /// By position − 1; `None` once forgotten.
    log: Vec<Option<RecordedEvent>>,
    /// The log indices of each stream's events, by sequence − 1.
    streams: HashMap<String, Vec<usize>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut inner = self.inner.lock().expect("memory store lock");
        let actual = inner.streams.get(stream).map_or(0, Vec::len) as u64;
        let head = inner.log.len() as u64;
        let records = super::stamp(stream, expected, actual, head, events)?;
        for record in &records {
            let index = inner.log.len();
            inner.log.push(Some(record.clone()));
            inner
                .streams
                .entry(stream.to_string())
                .or_default()
                .push(index);
        }
        Ok(records)
    }

    fn durable(&self) -> Durable {
        Box::pin(async { Ok(()) })
    }

    fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("memory store lock");
        Ok(inner
            .streams
            .get(stream)
            .map(|idx| {
                idx.iter()
                    .skip(from.saturating_sub(1) as usize)
                    .filter_map(|&i| inner.log[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("memory store lock");
        Ok(inner
            .log
            .iter()
            .skip(from.saturating_sub(1) as usize)
            .flatten()
            .take(limit)
            .cloned()
            .collect())
    }

    fn log_id(&self) -> String {
        format!("memory-{:p}", self)
    }

    fn forget(&self, stream: &str, before: u64) -> Result<u64, StoreError> {
        let mut guard = self.inner.lock().expect("memory store lock");
        let inner = &mut *guard;
        let Some(indices) = inner.streams.get(stream) else {
            return Ok(0);
        };
        let mut removed = 0;
        for &i in indices.iter().take(before.saturating_sub(1) as usize) {
            if inner.log[i].take().is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn shelf(&self, name: &'static str) -> Arc<dyn Shelf> {
        let mut shelves = self.shelves.lock().expect("memory store lock");
        shelves.entry(name).or_default().clone()
    }

    fn sync_shelves(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().expect("memory store lock").log.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::MemoryStore;

    conformance::conformance_tests!(((), MemoryStore::new()));
}

#[cfg(test)]
mod replay_tests {
    use super::super::{conformance, replay_range, EventStore};
    use super::MemoryStore;

    #[test]
    fn a_replay_range_folds_its_positions_only() {
        let store = MemoryStore::new();
        let events = (1..=5).map(conformance::event).collect();
        store.append("s", 0, events).unwrap();
        let mut seen = Vec::new();
        replay_range(&store, 2, 4, |r| seen.push(r.position)).unwrap();
        assert_eq!(seen, [2, 3, 4]);
        seen.clear();
        replay_range(&store, 4, u64::MAX, |r| seen.push(r.position)).unwrap();
        assert_eq!(seen, [4, 5]);
    }
}
