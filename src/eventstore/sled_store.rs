//! The default [`EventStore`], on sled. This is the only file that names sled: another engine
//! (redb, say) goes beside it behind the same trait.
//!
//! # Layout
//! One tree, `log`, holds two key spaces written together in one atomic batch per append:
//! - `a` + position (u64, big endian) → the [`RecordedEvent`] as JSON;
//! - `s` + stream + `0x00` + sequence (u64, big endian) → position, the per-stream index.
//!
//! A tree `meta` holds `format_version` (see `migrations/`).
//!
//! # Durability
//! An append is acknowledged only after [`EventStore::durable`] resolves, which waits for
//! `Db::flush`. One writer thread serves every waiter: all writers that asked while a flush was
//! under way share the next one (group commit), so many concurrent writers cost few flushes.
//! [`EventStore::append_durable`] hands the append itself to that thread, which applies every
//! queued append and then flushes once: the caller's thread never blocks on the engine's I/O.
//! Note that sled 0.34's flush writes with `sync_file_range`, not `fsync`: an acknowledged write
//! survives the process being killed (`kill -9`), while surviving a power loss rests on sled's
//! background fsync of its log.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;

use super::{Durable, EventStore, NewEvent, RecordedEvent, StoreError, FORMAT_VERSION};

const FORMAT_KEY: &[u8] = b"format_version";

/// A writer waiting for the next flush.
type FlushWaiter = oneshot::Sender<Result<(), StoreError>>;

/// What the writer thread is asked for.
enum Request {
    /// Answer once everything appended so far is flushed.
    Flush(FlushWaiter),
    /// Append, then answer once flushed.
    Append {
        stream: String,
        expected: u64,
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    },
}

/// The open database and its log tree.
struct Engine {
    db: sled::Db,
    log: sled::Tree,
}

/// What the store's callers and its writer thread share.
struct Shared {
    /// The engine; `None` only while it is being reopened.
    engine: RwLock<Option<Engine>>,
    /// Serialises appends: the last global position, and the lock that keeps positions dense.
    head: Mutex<u64>,
}

/// An event store in a sled database under a directory.
pub struct SledStore {
    dir: PathBuf,
    cache_bytes: u64,
    shared: Arc<Shared>,
    /// Requests to the writer thread; taken at drop so the thread ends and releases the db.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn record_key(position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'a';
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 10);
    k.push(b's');
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k
}

/// Opens the database in `dir`. A store closed a moment ago (in this process or one that just
/// exited) may still be releasing its lock: wait for it a little before calling the dir taken.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let mut attempts = 0;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            // sled reports a held lock as an I/O error naming it.
            Err(sled::Error::Io(io))
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                if attempts >= 30 {
                    return Err(StoreError::Storage(format!(
                        "the data dir {} is in use by another process",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(other) => return Err(storage(other)),
        }
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[bytes.len() - 8..]);
    u64::from_be_bytes(b)
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, with sled's page cache bounded to `cache_bytes`.
    ///
    /// Refuses a data dir written in a newer format, and one that another process has open.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = open_db(dir, cache_bytes)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        match meta.get(FORMAT_KEY).map_err(storage)? {
            Some(v) => {
                let found = be_u64(&v);
                if found > FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat { found });
                }
            }
            None => {
                meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
            }
        }
        let log = db.open_tree("log").map_err(storage)?;
        let head = match log.scan_prefix([b'a']).next_back() {
            Some(entry) => be_u64(&entry.map_err(storage)?.0),
            None => 0,
        };
        let shared = Arc::new(Shared {
            engine: RwLock::new(Some(Engine { db, log })),
            head: Mutex::new(head),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || group_commit(&writer_shared, rx))
            .map_err(storage)?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            cache_bytes,
            shared,
            requests: Mutex::new(Some(tx)),
            writer: Some(writer),
        })
    }

    /// Runs `f` on the open engine.
    fn with<T>(&self, f: impl FnOnce(&Engine) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.shared.with(f)
    }

    /// Queues a request for the writer thread.
    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests.lock().map_err(storage).and_then(|s| {
            s.as_ref()
                .ok_or_else(|| storage("the store is closing"))?
                .send(request)
                .map_err(storage)
        })
    }

    /// Writes a format version into a data dir; for tests of the newer-format refusal.
    #[doc(hidden)]
    pub fn stamp_format_version(dir: &Path, version: u64) -> Result<(), StoreError> {
        let db = sled::open(dir).map_err(storage)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        meta.insert(FORMAT_KEY, &version.to_be_bytes())
            .map_err(storage)?;
        db.flush().map_err(storage)?;
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| storage(format!("unreadable event: {e}")))
    }
}

impl Shared {
    /// Runs `f` on the open engine.
    fn with<T>(&self, f: impl FnOnce(&Engine) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.engine.read().map_err(storage)?;
        f(guard
            .as_ref()
            .ok_or_else(|| storage("the event store could not be reopened"))?)
    }

    fn append(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut head = self.head.lock().map_err(storage)?;
        let records = self.with(|engine| {
            let prefix = stream_prefix(stream);
            let actual = match engine.log.scan_prefix(&prefix).next_back() {
                Some(entry) => be_u64(&entry.map_err(storage)?.0),
                None => 0,
            };
            let records = super::stamp(stream, expected, actual, *head, events)?;
            let mut batch = sled::Batch::default();
            for record in &records {
                let bytes = serde_json::to_vec(record).map_err(storage)?;
                batch.insert(&record_key(record.position), bytes);
                let mut index_key = prefix.clone();
                index_key.extend_from_slice(&record.sequence.to_be_bytes());
                batch.insert(index_key, &record.position.to_be_bytes());
            }
            engine.log.apply_batch(batch).map_err(storage)?;
            Ok(records)
        })?;
        *head += records.len() as u64;
        Ok(records)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.with(|engine| engine.db.flush().map(|_| ()).map_err(storage))
    }
}

/// The writer thread: applies every append queued so far, flushes once, answers them all.
fn group_commit(shared: &Shared, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = Vec::new();
        let mut appended = Vec::new();
        for request in std::iter::once(first).chain(rx.try_iter()) {
            match request {
                Request::Flush(waiter) => waiters.push(waiter),
                Request::Append {
                    stream,
                    expected,
                    events,
                    reply,
                } => appended.push((reply, shared.append(&stream, expected, events))),
            }
        }
        let result = shared.flush();
        if let Err(e) = &result {
            log::error!("event store flush failed: {e}");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
        for (reply, records) in appended {
            let _ = reply.send(records.and_then(|r| result.clone().map(|()| r)));
        }
    }
}

impl EventStore for SledStore {
    fn append(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.shared.append(stream, expected, events)
    }

    fn durable(&self) -> Durable {
        let (tx, rx) = oneshot::channel();
        let queued = self.send(Request::Flush(tx));
        Box::pin(async move {
            queued?;
            rx.await
                .map_err(|_| StoreError::Storage("the writer thread stopped".into()))?
        })
    }

    fn append_durable(
        &self,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> super::DurableAppend {
        let (reply, rx) = oneshot::channel();
        let queued = self.send(Request::Append {
            stream: stream.to_string(),
            expected,
            events,
            reply,
        });
        Box::pin(async move {
            queued?;
            rx.await
                .map_err(|_| StoreError::Storage("the writer thread stopped".into()))?
        })
    }

    fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let prefix = stream_prefix(stream);
        let mut start = prefix.clone();
        start.extend_from_slice(&from.max(1).to_be_bytes());
        self.with(|engine| {
            let mut out = Vec::new();
            for entry in engine.log.range(start..) {
                let (k, v) = entry.map_err(storage)?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    break;
                }
                let position = be_u64(&v);
                let bytes = engine
                    .log
                    .get(record_key(position))
                    .map_err(storage)?
                    .ok_or_else(|| storage(format!("event {position} of {stream} is missing")))?;
                out.push(Self::decode(&bytes)?);
            }
            Ok(out)
        })
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let end = record_key(u64::MAX);
        self.with(|engine| {
            engine
                .log
                .range(record_key(from.max(1))..=end)
                .take(limit)
                .map(|entry| Self::decode(&entry.map_err(storage)?.1))
                .collect()
        })
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(*self.shared.head.lock().map_err(storage)?)
    }

    /// sled 0.34 keeps every node it has read in memory, whatever its cache capacity (a replay
    /// of 50 MB of events leaves ~60 MB resident): closing the database and opening it again is
    /// what gives that memory back. Appends, reads and flushes wait for the few milliseconds
    /// it takes.
    fn release_memory(&self) -> Result<(), StoreError> {
        let _appends = self.shared.head.lock().map_err(storage)?;
        let mut guard = self.shared.engine.write().map_err(storage)?;
        if let Some(old) = guard.take() {
            old.db.flush().map_err(storage)?;
        }
        let db = open_db(&self.dir, self.cache_bytes)?;
        let log = db.open_tree("log").map_err(storage)?;
        *guard = Some(Engine { db, log });
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Err(e) = self.with(|engine| engine.db.flush().map_err(storage)) {
            log::error!("event store flush at close failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{conformance, EventStore, NewEvent, StoreError};
    use super::SledStore;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        (dir, s)
    }

    #[test]
    fn ordering() {
        conformance::ordering(&store().1);
    }
    #[test]
    fn streams_are_separate() {
        conformance::streams_are_separate(&store().1);
    }
    #[test]
    fn optimistic_concurrency() {
        conformance::optimistic_concurrency(&store().1);
    }
    #[test]
    fn append_durable_records() {
        conformance::append_durable_records(&store().1);
    }
    #[test]
    fn durability_resolves() {
        conformance::durability_resolves(&store().1);
    }

    #[test]
    fn reopen_keeps_streams_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            conformance::ordering(&s);
        }
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.last_position().unwrap(), 4);
        assert_eq!(s.read_stream("a", 1).unwrap().len(), 3);
        let next = s
            .append(
                "a",
                3,
                vec![NewEvent {
                    event_type: "T".into(),
                    schema_version: 1,
                    data: serde_json::json!(null),
                }],
            )
            .unwrap();
        assert_eq!((next[0].sequence, next[0].position), (4, 5));
    }

    #[test]
    fn releasing_memory_keeps_the_log_and_its_use() {
        let (_dir, s) = store();
        conformance::ordering(&s);
        s.release_memory().unwrap();
        assert_eq!(s.last_position().unwrap(), 4);
        assert_eq!(s.read_all(1, 10).unwrap().len(), 4);
        assert_eq!(s.read_stream("a", 1).unwrap().len(), 3);
        s.append(
            "a",
            3,
            vec![NewEvent {
                event_type: "T".into(),
                schema_version: 1,
                data: serde_json::json!(null),
            }],
        )
        .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(s.durable())
            .unwrap();
        assert_eq!(s.read_stream("a", 4).unwrap()[0].position, 5);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SledStore::stamp_format_version(dir.path(), 99).unwrap();
        match SledStore::open(dir.path(), 8 << 20) {
            Err(StoreError::UnsupportedFormat { found: 99 }) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a newer format was opened"),
        }
    }
}
