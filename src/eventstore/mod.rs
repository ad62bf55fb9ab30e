//! The event log: the one source of truth for everything the emulator stores.
//!
//! Events live in streams (one per pipeline, execution, build, project, role, bucket). Each stream has a dense
//! per-stream sequence starting at 1, used for optimistic concurrency: an append names the
//! sequence it expects the stream to be at and is refused when another writer got there first.
//! Each record also gets a global position, so projections can catch up from where they stopped.
//!
//! An append is visible at once but durable only when [`EventStore::durable`] resolves; callers
//! acknowledge a write to a client only after that. Implementations share one flush among all
//! writers waiting at the same time (group commit).
//!
//! Storage engines are kept behind this trait: [`sled_store`] is the default and the only file
//! that names sled; [`memory`] serves unit tests.

pub mod announcing;
mod codec;
pub mod event;
pub mod memory;
pub mod shelf;
pub mod sled_store;
pub mod sqlite_store;

pub use event::{fold_stream, EventType, StreamWriter};

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The engines that can keep the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// sled ([`sled_store`]), the default.
    Sled,
    /// SQLite ([`sqlite_store`]).
    Sqlite,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sled => "sled",
            Engine::Sqlite => "sqlite",
        })
    }
}

/// The engine whose log is in `dir`, if there is one.
pub fn engine_in(dir: &std::path::Path) -> Option<Engine> {
    if dir.join(sqlite_store::LOG_FILE).exists() {
        Some(Engine::Sqlite)
    } else if dir.join("conf").exists() || dir.join("db").exists() {
        Some(Engine::Sled)
    } else {
        None
    }
}

/// Opens the log in `dir` with `engine`, or with the engine whose log is there when `engine` is
/// `None` (sled for a new one). A log kept by another engine than the one asked for is refused:
/// each engine needs a data dir of its own.
pub fn open(
    dir: &std::path::Path,
    engine: Option<Engine>,
    cache_bytes: u64,
) -> Result<std::sync::Arc<dyn EventStore>, String> {
    let found = engine_in(dir);
    let engine = match (engine, found) {
        (Some(wanted), Some(found)) if wanted != found => {
            return Err(format!(
                "the event log in {} is kept by {found}, and engine is set to {wanted}: \
                 set engine = \"{found}\" for this data dir, or use another data dir for {wanted}",
                dir.display()
            ))
        }
        (Some(wanted), _) => wanted,
        (None, found) => found.unwrap_or(Engine::Sled),
    };
    Ok(match engine {
        Engine::Sled => std::sync::Arc::new(
            sled_store::SledStore::open(dir, cache_bytes).map_err(|e| e.to_string())?,
        ),
        Engine::Sqlite => std::sync::Arc::new(
            sqlite_store::SqliteStore::open(dir, cache_bytes).map_err(|e| e.to_string())?,
        ),
    })
}

/// The data-dir format this build writes; see `migrations/` for what each version means.
pub const FORMAT_VERSION: u64 = 3;

/// An event to append: its type name, the schema version of its payload, and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Event type, e.g. `PipelineCreated`; upcasters dispatch on it.
    pub event_type: String,
    /// Version of the payload's schema for this event type.
    pub schema_version: u32,
    /// The payload.
    pub data: Value,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Position in the whole log, from 1, without gaps.
    pub position: u64,
    /// The stream the event belongs to.
    pub stream: String,
    /// Position within its stream, from 1, without gaps.
    pub sequence: u64,
    /// Event type name.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// When it was recorded, epoch seconds.
    pub recorded_at: f64,
    /// The payload.
    pub data: Value,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The stream was not at the expected sequence: another command was appended first.
    Conflict {
        /// The stream.
        stream: String,
        /// The sequence the writer expected.
        expected: u64,
        /// The sequence the stream is at.
        actual: u64,
    },
    /// The data dir was written by a newer build.
    UnsupportedFormat {
        /// The format version found.
        found: u64,
    },
    /// The storage engine failed (I/O, corruption, a lock held by another process).
    Storage(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => write!(
                f,
                "stream {stream} is at sequence {actual}, the writer expected {expected}"
            ),
            StoreError::UnsupportedFormat { found } => write!(
                f,
                "the data dir has format version {found}, but this build reads versions up to {FORMAT_VERSION}; \
                 use a newer codepipeline-local or another data dir"
            ),
            StoreError::Storage(msg) => write!(f, "storage failure: {msg}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Checks the optimistic-concurrency condition of an append and stamps its events: what every
/// implementation does before it stores them. `head` is the log's last position, `actual` the
/// stream's last sequence.
pub(crate) fn stamp(
    stream: &str,
    expected: u64,
    actual: u64,
    head: u64,
    events: Vec<NewEvent>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if actual != expected {
        return Err(StoreError::Conflict {
            stream: stream.to_string(),
            expected,
            actual,
        });
    }
    let now = crate::aws::now_epoch();
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, e)| RecordedEvent {
            position: head + i as u64 + 1,
            stream: stream.to_string(),
            sequence: expected + i as u64 + 1,
            event_type: e.event_type,
            schema_version: e.schema_version,
            recorded_at: now,
            data: e.data,
        })
        .collect())
}

/// A read view folded from the log: every durable event is offered to it, at startup (replay)
/// and as writers make events durable, so that the same code builds it both ways.
pub trait Projection: Send + Sync {
    /// Folds one durable event; events of other streams are ignored.
    fn apply(&self, record: &RecordedEvent);
}

/// Feeds every event of the log, in order, to `apply`: how projections are rebuilt at startup.
/// Reads in small batches, so a large log never sits in memory whole.
pub fn replay(store: &dyn EventStore, apply: impl FnMut(&RecordedEvent)) -> Result<(), StoreError> {
    replay_from(store, 1, apply)
}

/// Feeds the events of the log from position `from` on, in order, to `apply`.
pub fn replay_from(
    store: &dyn EventStore,
    from: u64,
    apply: impl FnMut(&RecordedEvent),
) -> Result<(), StoreError> {
    replay_range(store, from, u64::MAX, apply)
}

/// Folds the events with positions from `from` to `upto`, in order.
pub fn replay_range(
    store: &dyn EventStore,
    mut from: u64,
    upto: u64,
    mut apply: impl FnMut(&RecordedEvent),
) -> Result<(), StoreError> {
    while from <= upto {
        let batch = store.read_all(from, 256)?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        from = last.position + 1;
        batch
            .iter()
            .take_while(|r| r.position <= upto)
            .for_each(&mut apply);
    }
    Ok(())
}

/// A future that resolves when everything appended before it was created is on disk.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A future that resolves to the recorded events once they are on disk.
pub type DurableAppend =
    Pin<Box<dyn Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send>>;

/// The answer of an engine's writer thread to a request sent to it (`queued` says whether it
/// was).
pub(crate) fn writer_answer<T: Send + 'static>(
    queued: Result<(), StoreError>,
    answer: tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>> {
    Box::pin(async move {
        queued?;
        answer
            .await
            .map_err(|_| StoreError::Storage("the writer thread stopped".into()))?
    })
}

/// An append-only store of event streams.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream is at sequence `expected` (0 for a new stream).
    /// Returns the recorded events. Visible at once; durable once [`EventStore::durable`] resolves.
    fn append(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Resolves when every append made before this call is durable.
    fn durable(&self) -> Durable;

    /// Appends like [`EventStore::append`] and resolves once the events are durable. An engine
    /// may do the append on its writer thread, batched with others (the default appends here).
    fn append_durable(&self, stream: &str, expected: u64, events: Vec<NewEvent>) -> DurableAppend {
        let appended = self.append(stream, expected, events);
        let durable = self.durable();
        Box::pin(async move {
            let records = appended?;
            durable.await?;
            Ok(records)
        })
    }

    /// The events of one stream with sequence ≥ `from`, in order.
    fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the whole log with position ≥ `from`, in order.
    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last event of the log (0 when empty).
    fn last_position(&self) -> Result<u64, StoreError>;

    /// An id of this log, given when it was created and never changed: another log (another
    /// data dir, a fresh one in its place) has another.
    fn log_id(&self) -> String;

    /// Removes from the log what `stream` recorded before sequence `before`: every append whose
    /// events all come before it, atomically (a crash leaves the stream whole or without them).
    /// Positions and the sequences that remain do not change. A stream removed whole (`before`
    /// past its end) must not be appended to again. Returns how many events were removed.
    fn forget(&self, stream: &str, before: u64) -> Result<u64, StoreError>;

    /// Gives back memory the engine holds for data read so far (called after the replay at
    /// startup). Nothing to do for most engines.
    fn release_memory(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The shelf `name` beside the log (made empty the first time): see [`shelf`].
    fn shelf(&self, name: &'static str) -> std::sync::Arc<dyn shelf::Shelf>;

    /// Makes every shelf write made so far durable (a checkpoint calls it before it records
    /// its position).
    fn sync_shelves(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! One suite that every [`EventStore`] implementation must pass.

    /// The suite as tests of the calling module, each on a store that `$store` makes (anything
    /// whose `.1` is the store, such as a temporary dir and a store in it).
    macro_rules! conformance_tests {
        ($store:expr) => {
            #[test]
            fn ordering() {
                $crate::eventstore::conformance::ordering(&$store.1);
            }
            #[test]
            fn streams_are_separate() {
                $crate::eventstore::conformance::streams_are_separate(&$store.1);
            }
            #[test]
            fn optimistic_concurrency() {
                $crate::eventstore::conformance::optimistic_concurrency(&$store.1);
            }
            #[test]
            fn append_durable_records() {
                $crate::eventstore::conformance::append_durable_records(&$store.1);
            }
            #[test]
            fn durability_resolves() {
                $crate::eventstore::conformance::durability_resolves(&$store.1);
            }
            #[test]
            fn forgetting() {
                $crate::eventstore::conformance::forgetting(&$store.1);
            }
        };
    }
    pub(crate) use conformance_tests;

    use super::*;
    use serde_json::json;

    /// A store's shelves keep the contract, and `k` → `v` on the shelf `test`, synced: what a
    /// reopened store must still hold (see [`reopened_shelves`]).
    pub fn shelves(store: &dyn EventStore) {
        shelf::contract::shelf_contract(store.shelf("test").as_ref());
        store
            .shelf("test")
            .update(b"k", &mut |_| shelf::Change::Put(b"v".to_vec()))
            .unwrap();
        store.sync_shelves().unwrap();
        reopened_shelves(store);
    }

    /// What [`shelves`] left.
    pub fn reopened_shelves(store: &dyn EventStore) {
        assert_eq!(
            store.shelf("test").get(b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(store.shelf("other").get(b"k").unwrap(), None);
    }

    pub fn event(n: i64) -> NewEvent {
        ev(n)
    }

    fn ev(n: i64) -> NewEvent {
        NewEvent {
            event_type: "Test".into(),
            schema_version: 1,
            data: json!({ "n": n }),
        }
    }

    /// Forgetting a stream's beginning removes those events from the stream and the log and
    /// nothing else; the stream goes on at its sequence.
    pub fn forgetting(store: &dyn EventStore) {
        store.append("a", 0, vec![ev(1), ev(2)]).unwrap();
        store.append("b", 0, vec![ev(3)]).unwrap();
        store.append("a", 2, vec![ev(4)]).unwrap();
        store.append("c", 0, vec![ev(5)]).unwrap();
        assert_eq!(store.forget("a", 3).unwrap(), 2);
        assert_eq!(store.forget("a", 3).unwrap(), 0);
        let a: Vec<(u64, u64)> = store
            .read_stream("a", 1)
            .unwrap()
            .iter()
            .map(|r| (r.sequence, r.position))
            .collect();
        assert_eq!(a, vec![(3, 4)]);
        let all: Vec<u64> = store
            .read_all(1, 10)
            .unwrap()
            .iter()
            .map(|r| r.position)
            .collect();
        assert_eq!(all, vec![3, 4, 5]);
        assert_eq!(store.read_all(2, 1).unwrap()[0].position, 3);
        assert_eq!(store.last_position().unwrap(), 5);
        store.append("a", 3, vec![ev(6)]).unwrap();
        assert_eq!(store.forget("b", u64::MAX).unwrap(), 1);
        assert!(store.read_stream("b", 1).unwrap().is_empty());
        assert_eq!(store.read_all(1, 10).unwrap().len(), 3);
    }

    /// Streams keep their order, sequences are dense, positions are global.
    pub fn ordering(store: &dyn EventStore) {
        let a = store.append("a", 0, vec![ev(1), ev(2)]).unwrap();
        assert_eq!(
            a.iter()
                .map(|r| (r.sequence, r.position))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 2)]
        );
        store.append("b", 0, vec![ev(3)]).unwrap();
        store.append("a", 2, vec![ev(4)]).unwrap();
        let a = store.read_stream("a", 1).unwrap();
        assert_eq!(
            a.iter()
                .map(|r| r.data["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        assert_eq!(a[2].sequence, 3);
        assert_eq!(a[2].position, 4);
        assert_eq!(store.read_stream("a", 3).unwrap().len(), 1);
        let all = store.read_all(1, 100).unwrap();
        assert_eq!(
            all.iter().map(|r| r.stream.as_str()).collect::<Vec<_>>(),
            vec!["a", "a", "b", "a"]
        );
        assert_eq!(store.read_all(3, 1).unwrap()[0].stream, "b");
        assert_eq!(store.last_position().unwrap(), 4);
        assert!(store.read_stream("missing", 1).unwrap().is_empty());
    }

    /// A stream whose prefix names another stream does not mix with it.
    pub fn streams_are_separate(store: &dyn EventStore) {
        store.append("p:a", 0, vec![ev(1)]).unwrap();
        store.append("p:ab", 0, vec![ev(2)]).unwrap();
        assert_eq!(store.read_stream("p:a", 1).unwrap().len(), 1);
        assert_eq!(store.read_stream("p:ab", 1).unwrap().len(), 1);
    }

    /// A writer that expected an older sequence is refused and nothing is written.
    pub fn optimistic_concurrency(store: &dyn EventStore) {
        store.append("s", 0, vec![ev(1)]).unwrap();
        let err = store.append("s", 0, vec![ev(2)]).unwrap_err();
        assert_eq!(
            err,
            StoreError::Conflict {
                stream: "s".into(),
                expected: 0,
                actual: 1
            }
        );
        assert_eq!(store.read_stream("s", 1).unwrap().len(), 1);
        assert_eq!(store.last_position().unwrap(), 1);
    }

    /// `append_durable` records like `append`, refuses the same conflicts, and resolves durable.
    pub fn append_durable_records(store: &dyn EventStore) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let first = rt
            .block_on(store.append_durable("p", 0, vec![ev(1), ev(2)]))
            .unwrap();
        assert_eq!(
            first.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            vec![1, 2]
        );
        match rt.block_on(store.append_durable("p", 1, vec![ev(3)])) {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        let next = rt
            .block_on(store.append_durable("p", 2, vec![ev(3)]))
            .unwrap();
        assert_eq!(
            (next[0].sequence, next[0].position),
            (3, first[1].position + 1)
        );
        assert_eq!(store.read_stream("p", 1).unwrap().len(), 3);
    }

    /// `durable` resolves after appends, also for many writers at once.
    pub fn durability_resolves(store: &dyn EventStore) {
        store.append("d", 0, vec![ev(1)]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.durable()).unwrap();
    }
}
