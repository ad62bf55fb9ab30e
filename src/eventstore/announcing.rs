//! A store that says when the log grows: every append through it moves a watch to the position
//! of its last event, so readers that follow the log (the console's live pages) wake when there
//! is something new to read from where they are, instead of polling.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Durable, DurableAppend, EventStore, NewEvent, RecordedEvent, StoreError};

/// An [`EventStore`] that announces the position of the last event appended.
pub struct Announcing {
    inner: Arc<dyn EventStore>,
    last: watch::Sender<u64>,
}

impl Announcing {
    /// `inner`, announcing its appends; the receiver starts at its last position.
    pub fn wrap(inner: Arc<dyn EventStore>) -> (Arc<dyn EventStore>, watch::Receiver<u64>) {
        let (last, receiver) = watch::channel(inner.last_position().unwrap_or(0));
        (Arc::new(Announcing { inner, last }), receiver)
    }
}

fn announce(last: &watch::Sender<u64>, records: &[RecordedEvent]) {
    if let Some(newest) = records.iter().map(|r| r.position).max() {
        last.send_if_modified(|at| {
            let moved = newest > *at;
            if moved {
                *at = newest;
            }
            moved
        });
    }
}

impl EventStore for Announcing {
    fn append(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let records = self.inner.append(stream, expected, events)?;
        announce(&self.last, &records);
        Ok(records)
    }

    fn durable(&self) -> Durable {
        self.inner.durable()
    }

    fn append_durable(&self, stream: &str, expected: u64, events: Vec<NewEvent>) -> DurableAppend {
        let appended = self.inner.append_durable(stream, expected, events);
        let last = self.last.clone();
        Box::pin(async move {
            let records = appended.await?;
            announce(&last, &records);
            Ok(records)
        })
    }

    fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from)
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit)
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        self.inner.last_position()
    }

    fn log_id(&self) -> String {
        self.inner.log_id()
    }

    fn forget(&self, stream: &str, before: u64) -> Result<u64, StoreError> {
        self.inner.forget(stream, before)
    }

    fn release_memory(&self) -> Result<(), StoreError> {
        self.inner.release_memory()
    }

    fn shelf(&self, name: &'static str) -> Arc<dyn super::shelf::Shelf> {
        self.inner.shelf(name)
    }

    fn sync_shelves(&self) -> Result<(), StoreError> {
        self.inner.sync_shelves()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_move_the_watch_to_their_last_position() {
        let (store, mut seen) =
            Announcing::wrap(Arc::new(crate::eventstore::memory::MemoryStore::new()));
        assert_eq!(*seen.borrow_and_update(), 0);
        let event = crate::eventstore::conformance::event(1);
        store
            .append("a", 0, vec![event.clone(), event.clone()])
            .unwrap();
        assert!(seen.has_changed().unwrap());
        assert_eq!(*seen.borrow_and_update(), 2);
        // A refused append announces nothing.
        assert!(store.append("a", 0, vec![event]).is_err());
        assert!(!seen.has_changed().unwrap());
    }
}
