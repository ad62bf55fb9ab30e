//! The default [`EventStore`], on sled. This is the only file that names sled: another engine
//! (redb, say) goes beside it behind the same trait.
//!
//! # Layout (format 3)
//! One tree, `log`, holds two key spaces:
//! - `a` + position of the first event (u64, big endian) → one append: the byte `1`, then its
//!   JSON compressed by zstd with the dictionary `events.dict`:
//!   `{"position", "stream", "sequence", "recorded_at", "events": [{"event_type",
//!   "schema_version", "data"}]}`, the events taking consecutive positions and sequences
//!   (format 2 stored that JSON as it is, starting with `{`; such appends read as they are);
//! - `s` + stream + `0x00` + sequence of the first event (u64, big endian) → position of the
//!   append (u64, big endian) and its number of events (u32, big endian), the per-stream index.
//!
//! Format 1 stored one event per key (the [`RecordedEvent`] as JSON, and an index value of the
//! position alone); such entries read as appends of one event, so a format-1 log needs no rewrite.
//! A tree `meta` holds `format_version` (see `migrations/`) and `log_id`, a random id given to
//! the log when it is first opened (what checkpoints recognise it by).
//!
//! # Atomic appends
//! An append is one insert, then its index entry: sled applies an insert whole, and recovers a
//! prefix of its log after a crash. Opening the store restores the index entry of the last append
//! if the crash came between the two. Readers see an append only once both are in. (sled's own
//! atomic batches cost two log-buffer writes each, which at a few thousand appends a second
//! dominated the whole server; one key per append instead of two per event also divides the
//! engine's work.)
//!
//! # Durability
//! An append is acknowledged only after [`EventStore::durable`] resolves, which waits for
//! `Db::flush`. Two threads serve every writer. [`EventStore::append_durable`] hands the append
//! to the writer thread, which applies every queued append and passes their replies to the
//! flusher thread; that one flushes once for everything handed over while its previous flush ran
//! (group commit) and answers. The writer applies the next appends while a flush is under way,
//! and the caller's thread never blocks on the engine's I/O. Note that sled 0.34's flush writes
//! with `sync_file_range`, not `fsync`: an acknowledged write survives the process being killed
//! (`kill -9`), while surviving a power loss rests on sled's background fsync of its log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;

use super::codec::{compress, decompress, encode, AppendIn};
use super::shelf::{Change, Entries, Shelf};
use super::{Durable, EventStore, NewEvent, RecordedEvent, StoreError, FORMAT_VERSION};

const FORMAT_KEY: &[u8] = b"format_version";
const LOG_ID_KEY: &[u8] = b"log_id";

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
    /// Serialises appends: the last global position and recent stream sequences, under the lock
    /// that keeps positions dense.
    head: Mutex<Head>,
    /// The last position of the last whole append: what readers may see.
    visible: AtomicU64,
}

/// What appends share.
struct Head {
    /// The last position of the log.
    position: u64,
    /// The last sequence of streams appended to lately, so that an append need not look its
    /// stream up in the index (a reverse scan). Emptied when it reaches [`RECENT_STREAMS`].
    recent: std::collections::HashMap<String, u64>,
}

/// How many streams [`Head::recent`] remembers at most.
const RECENT_STREAMS: usize = 4096;

/// An index entry: the append's position and number of events.
fn index_value(position: u64, count: usize) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&position.to_be_bytes());
    v[8..].copy_from_slice(&(count as u32).to_be_bytes());
    v
}

/// Reads an index entry; a format-1 entry is the position of one event.
fn parse_index(v: &[u8]) -> (u64, u64) {
    let mut p = [0u8; 8];
    p.copy_from_slice(&v[..8]);
    let count = match v.get(8..12) {
        Some(c) => u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64,
        None => 1,
    };
    (u64::from_be_bytes(p), count)
}

/// An event store in a sled database under a directory.
pub struct SledStore {
    dir: PathBuf,
    cache_bytes: u64,
    /// The log's id, from `meta`.
    log_id: String,
    shared: Arc<Shared>,
    /// Requests to the writer thread; taken at drop so the threads end and release the db.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    /// The writer and flusher threads.
    threads: Vec<std::thread::JoinHandle<()>>,
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

fn index_key(stream: &str, sequence: u64) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

/// The last sequence of a stream, from the index (0 for a stream never written).
fn last_sequence(log: &sled::Tree, stream: &str) -> Result<u64, StoreError> {
    let prefix = stream_prefix(stream);
    // A forward probe first: most streams looked up here are new, and sled's reverse
    // iteration costs far more than its forward one.
    if log.scan_prefix(&prefix).next().is_none() {
        return Ok(0);
    }
    match log.scan_prefix(&prefix).next_back() {
        Some(entry) => {
            let (key, value) = entry.map_err(storage)?;
            Ok(be_u64(&key) + parse_index(&value).1 - 1)
        }
        None => Ok(0),
    }
}

/// Reads the last append of the log: returns the log's last position, after restoring that
/// append's index entry if a crash came between its two inserts (logged).
fn open_tail(log: &sled::Tree) -> Result<u64, StoreError> {
    let Some(entry) = log.scan_prefix([b'a']).next_back() else {
        return Ok(0);
    };
    let (_, value) = entry.map_err(storage)?;
    let records = AppendIn::decode(&value)?.into_records()?;
    let (first, last) = match (records.first(), records.last()) {
        (Some(first), Some(last)) => (first, last.position),
        _ => return Ok(0),
    };
    let index = index_key(&first.stream, first.sequence);
    if log.get(&index).map_err(storage)?.is_none() {
        log.insert(index, &index_value(first.position, records.len()))
            .map_err(storage)?;
        log::warn!("restored the index entry of the last append, which a crash interrupted");
    }
    Ok(last)
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
        let found = meta.get(FORMAT_KEY).map_err(storage)?.map(|v| be_u64(&v));
        if let Some(found) = found.filter(|f| *f > FORMAT_VERSION) {
            return Err(StoreError::UnsupportedFormat { found });
        }
        let log = db.open_tree("log").map_err(storage)?;
        // Format 1 needs no rewrite: its records read as appends of one event.
        let head = open_tail(&log)?;
        if found != Some(FORMAT_VERSION) {
            meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
                .map_err(storage)?;
        }
        let log_id = match meta.get(LOG_ID_KEY).map_err(storage)? {
            Some(id) => String::from_utf8_lossy(&id).to_string(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                meta.insert(LOG_ID_KEY, id.as_bytes()).map_err(storage)?;
                id
            }
        };
        db.flush().map_err(storage)?;
        let shared = Arc::new(Shared {
            engine: RwLock::new(Some(Engine { db, log })),
            head: Mutex::new(Head {
                position: head,
                recent: Default::default(),
            }),
            visible: AtomicU64::new(head),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let (to_flusher, flusher_rx) = mpsc::channel::<Vec<Waiter>>();
        let flusher_shared = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("eventstore-flush".into())
            .spawn(move || flush_loop(&flusher_shared, flusher_rx))
            .map_err(storage)?;
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || write_loop(&writer_shared, rx, to_flusher))
            .map_err(storage)?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            cache_bytes,
            log_id,
            shared,
            requests: Mutex::new(Some(tx)),
            threads: vec![writer, flusher],
        })
    }

    /// Up to `limit` appends as their JSON, oldest first: samples to train a dictionary on.
    pub fn append_samples(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|engine| {
            let mut out = Vec::new();
            for entry in engine
                .log
                .range(record_key(0)..=record_key(u64::MAX))
                .take(limit)
            {
                let (_, value) = entry.map_err(storage)?;
                out.push(decompress(&value)?.into_owned());
            }
            Ok(out)
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
        let db = open_db(dir, 1 << 20)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        meta.insert(FORMAT_KEY, &version.to_be_bytes())
            .map_err(storage)?;
        db.flush().map_err(storage)?;
        Ok(())
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
        let head = &mut *head;
        let records = self.with(|engine| {
            let actual = match head.recent.get(stream) {
                Some(sequence) => *sequence,
                None => last_sequence(&engine.log, stream)?,
            };
            let records = super::stamp(stream, expected, actual, head.position, events)?;
            let Some(first) = records.first() else {
                return Ok(records);
            };
            let bytes = encode(&records)?;
            let key = record_key(first.position);
            engine.log.insert(key, bytes).map_err(storage)?;
            let index = index_key(stream, first.sequence);
            if let Err(e) = engine
                .log
                .insert(index, &index_value(first.position, records.len()))
            {
                // Leave no half of a refused append behind (the engine is failing; best effort).
                let _ = engine.log.remove(key);
                return Err(storage(e));
            }
            Ok(records)
        })?;
        if let Some(last) = records.last() {
            if head.recent.len() >= RECENT_STREAMS {
                head.recent.clear();
            }
            match head.recent.get_mut(stream) {
                Some(sequence) => *sequence = last.sequence,
                None => {
                    head.recent.insert(stream.to_string(), last.sequence);
                }
            }
        }
        head.position += records.len() as u64;
        self.visible.store(head.position, Ordering::Release);
        Ok(records)
    }

    /// The last position readers may see: appends in progress are not visible.
    fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.with(|engine| engine.db.flush().map(|_| ()).map_err(storage))
    }
}

/// Someone to answer after the next flush.
enum Waiter {
    Flush(FlushWaiter),
    Append(AppendReply, Vec<RecordedEvent>),
}

type AppendReply = oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>;

/// The writer thread: applies every append queued so far and hands their replies to the flusher,
/// then goes on with the next ones while that flush runs. A refused append is answered at once.
fn write_loop(shared: &Shared, rx: mpsc::Receiver<Request>, to_flusher: mpsc::Sender<Vec<Waiter>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = Vec::new();
        for request in std::iter::once(first).chain(rx.try_iter()) {
            match request {
                Request::Flush(waiter) => waiting.push(Waiter::Flush(waiter)),
                Request::Append {
                    stream,
                    expected,
                    events,
                    reply,
                } => match shared.append(&stream, expected, events) {
                    Ok(records) => waiting.push(Waiter::Append(reply, records)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            }
        }
        if to_flusher.send(waiting).is_err() {
            return;
        }
    }
}

/// The flusher thread: one flush for everything the writer handed over meanwhile (group commit),
/// then the answers.
fn flush_loop(shared: &Shared, rx: mpsc::Receiver<Vec<Waiter>>) {
    while let Ok(first) = rx.recv() {
        let waiting: Vec<Waiter> = std::iter::once(first)
            .chain(rx.try_iter())
            .flatten()
            .collect();
        let result = shared.flush();
        if let Err(e) = &result {
            log::error!("event store flush failed: {e}");
        }
        for waiter in waiting {
            match waiter {
                Waiter::Flush(w) => {
                    let _ = w.send(result.clone());
                }
                Waiter::Append(reply, records) => {
                    let _ = reply.send(result.clone().map(|()| records));
                }
            }
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
        super::writer_answer(queued, rx)
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
        super::writer_answer(queued, rx)
    }

    fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let prefix = stream_prefix(stream);
        let from = from.max(1);
        let visible = self.shared.visible();
        self.with(|engine| {
            // The append holding `from` is indexed at or before it: at 1 when reading from the
            // start, otherwise found backwards (sled's reverse iteration is the slow one).
            let start = if from == 1 {
                index_key(stream, 1)
            } else {
                match engine
                    .log
                    .range(index_key(stream, 0)..=index_key(stream, from))
                    .next_back()
                {
                    Some(entry) => entry.map_err(storage)?.0.to_vec(),
                    None => index_key(stream, from),
                }
            };
            let mut out = Vec::new();
            for entry in engine.log.range(start..) {
                let (k, v) = entry.map_err(storage)?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    break;
                }
                let (position, _) = parse_index(&v);
                if position > visible {
                    break;
                }
                let bytes = engine
                    .log
                    .get(record_key(position))
                    .map_err(storage)?
                    .ok_or_else(|| storage(format!("event {position} of {stream} is missing")))?;
                let records = AppendIn::decode(&bytes)?.into_records()?;
                out.extend(records.into_iter().filter(|r| r.sequence >= from));
            }
            Ok(out)
        })
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from.max(1);
        let visible = self.shared.visible();
        if from > visible || limit == 0 {
            return Ok(Vec::new());
        }
        self.with(|engine| {
            // The append holding `from` starts at it (reads mostly go from one append to the
            // next) or before it, found backwards (sled's reverse iteration is the slow one).
            let start = if engine.log.contains_key(record_key(from)).map_err(storage)? {
                record_key(from).to_vec()
            } else {
                match engine
                    .log
                    .range(record_key(1)..=record_key(from))
                    .next_back()
                {
                    Some(entry) => entry.map_err(storage)?.0.to_vec(),
                    None => record_key(from).to_vec(),
                }
            };
            let mut out = Vec::new();
            for entry in engine.log.range(start..=record_key(visible).to_vec()) {
                let records = AppendIn::decode(&entry.map_err(storage)?.1)?.into_records()?;
                for record in records {
                    if record.position < from || record.position > visible {
                        continue;
                    }
                    out.push(record);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            Ok(out)
        })
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.shared.visible())
    }

    fn log_id(&self) -> String {
        self.log_id.clone()
    }

    /// One sled batch (applied whole or not at all) removes the appends and their index
    /// entries; it is durable with the next flush, and a crash before that keeps them.
    fn forget(&self, stream: &str, before: u64) -> Result<u64, StoreError> {
        let prefix = stream_prefix(stream);
        self.with(|engine| {
            let mut batch = sled::Batch::default();
            let mut removed = 0;
            for entry in engine.log.scan_prefix(&prefix) {
                let (key, value) = entry.map_err(storage)?;
                if key.len() != prefix.len() + 8 {
                    continue;
                }
                let (position, count) = parse_index(&value);
                // Index entries come in sequence order: stop at the first append that reaches
                // `before`.
                if be_u64(&key).saturating_add(count) > before {
                    break;
                }
                batch.remove(&record_key(position)[..]);
                batch.remove(key);
                removed += count;
            }
            if removed > 0 {
                engine.log.apply_batch(batch).map_err(storage)?;
            }
            Ok(removed)
        })
    }

    /// sled 0.34 keeps every node it has read in memory, whatever its cache capacity (a replay
    /// of 50 MB of events leaves ~60 MB resident): closing the database and opening it again is
    /// what gives that memory back. Appends, reads and flushes wait for the few milliseconds
    /// it takes.
    fn shelf(&self, name: &'static str) -> Arc<dyn Shelf> {
        Arc::new(SledShelf {
            shared: self.shared.clone(),
            tree: format!("shelf-{name}"),
        })
    }

    fn sync_shelves(&self) -> Result<(), StoreError> {
        self.with(|engine| engine.db.flush().map(drop).map_err(storage))
    }

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

/// A shelf in a tree of the log's database, so that it goes wherever the log goes; values are
/// stored compressed as appends are.
struct SledShelf {
    shared: Arc<Shared>,
    tree: String,
}

impl SledShelf {
    fn with<T>(
        &self,
        f: impl FnOnce(&sled::Tree) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.shared
            .with(|engine| f(&engine.db.open_tree(&self.tree).map_err(storage)?))
    }
}

impl Shelf for SledShelf {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|tree| match tree.get(key).map_err(storage)? {
            Some(raw) => Ok(Some(decompress(&raw)?.into_owned())),
            None => Ok(None),
        })
    }

    fn update(
        &self,
        key: &[u8],
        decide: &mut dyn FnMut(Option<&[u8]>) -> Change,
    ) -> Result<(), StoreError> {
        self.with(|tree| loop {
            let current = tree.get(key).map_err(storage)?;
            let plain = current.as_deref().map(decompress).transpose()?;
            let new = match decide(plain.as_deref()) {
                Change::Keep => return Ok(()),
                Change::Put(value) => Some(compress(&value)?),
                Change::Remove if current.is_none() => return Ok(()),
                Change::Remove => None,
            };
            if tree
                .compare_and_swap(key, current, new)
                .map_err(storage)?
                .is_ok()
            {
                return Ok(());
            }
        })
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        use std::ops::Bound;
        self.with(|tree| {
            let start = match after {
                Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
                _ => Bound::Included(prefix.to_vec()),
            };
            let mut out = Vec::new();
            for entry in tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
                let (k, v) = entry.map_err(storage)?;
                if !k.starts_with(prefix) || out.len() >= limit {
                    break;
                }
                out.push((k.to_vec(), decompress(&v)?.into_owned()));
            }
            Ok(out)
        })
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|tree| {
            tree.scan_prefix(prefix)
                .keys()
                .map(|k| k.map(|k| k.to_vec()).map_err(storage))
                .collect()
        })
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        // The writer ends first; the flusher then ends once it has answered what was left.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
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

    conformance::conformance_tests!(store());

    #[test]
    fn shelves_keep_what_was_written_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            conformance::shelves(&s);
            s.release_memory().unwrap();
            conformance::reopened_shelves(&s);
        }
        conformance::reopened_shelves(&SledStore::open(dir.path(), 8 << 20).unwrap());
    }

    #[test]
    fn appends_are_stored_compressed_and_json_appends_still_read() {
        let json = br#"{"position":1,"stream":"a","sequence":1,"recorded_at":0.0,"events":[]}"#;
        let stored = super::compress(json).unwrap();
        assert_eq!(stored[0], crate::eventstore::codec::COMPRESSED_V1);
        assert_eq!(&*super::decompress(&stored).unwrap(), &json[..]);
        // A format-2 append is its JSON.
        assert_eq!(&*super::decompress(json).unwrap(), &json[..]);
        // A damaged one is an error, never a panic or an allocation of what it claims.
        assert!(super::decompress(&[crate::eventstore::codec::COMPRESSED_V1, 1, 2, 3]).is_err());
        let mut big = vec![crate::eventstore::codec::COMPRESSED_V1];
        big.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap());
        assert_eq!(super::decompress(&big).unwrap().len(), 1 << 20);
        assert!(crate::eventstore::codec::decompress_within(&big, 1000).is_err());
        let (dir, s) = store();
        s.append(
            "a",
            0,
            vec![NewEvent {
                event_type: "T".into(),
                schema_version: 1,
                data: serde_json::json!({"n": 1}),
            }],
        )
        .unwrap();
        drop(s);
        let reopened = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(reopened.read_stream("a", 1).unwrap()[0].data["n"], 1);
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

    fn ev(n: i64) -> NewEvent {
        NewEvent {
            event_type: "T".into(),
            schema_version: 1,
            data: serde_json::json!({ "n": n }),
        }
    }

    /// Writes an append of stream `b` at `position` the way the writer does, without making it
    /// visible: an append in progress.
    fn write_unfinished_append(s: &SledStore, position: u64) {
        let data = serde_json::json!({ "n": 9 });
        let bytes = serde_json::to_vec(&serde_json::json!({
            "position": position, "stream": "b", "sequence": 1, "recorded_at": 0.0,
            "events": [{"event_type": "T", "schema_version": 1, "data": data}],
        }))
        .unwrap();
        s.with(|engine| {
            engine
                .log
                .insert(super::record_key(position), bytes)
                .map_err(super::storage)?;
            engine
                .log
                .insert(super::index_key("b", 1), &super::index_value(position, 1))
                .map_err(super::storage)?;
            Ok(())
        })
        .unwrap();
    }

    /// Format 1 stored one record per key, its index value the position alone.
    #[test]
    fn format_1_records_read_as_appends_of_one_event() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(super::FORMAT_KEY, &1u64.to_be_bytes())
                .unwrap();
            let log = db.open_tree("log").unwrap();
            for (position, stream, sequence) in [(1u64, "a", 1u64), (2, "b", 1), (3, "a", 2)] {
                let record = super::RecordedEvent {
                    position,
                    stream: stream.into(),
                    sequence,
                    event_type: "T".into(),
                    schema_version: 1,
                    recorded_at: 1.5,
                    data: serde_json::json!({ "n": position }),
                };
                log.insert(
                    super::record_key(position),
                    serde_json::to_vec(&record).unwrap(),
                )
                .unwrap();
                log.insert(super::index_key(stream, sequence), &position.to_be_bytes())
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.last_position().unwrap(), 3);
        let a = s.read_stream("a", 1).unwrap();
        assert_eq!(
            a.iter()
                .map(|r| (r.position, r.sequence))
                .collect::<Vec<_>>(),
            vec![(1, 1), (3, 2)]
        );
        assert_eq!(a[1].data["n"], 3);
        assert_eq!(s.read_stream("a", 2).unwrap().len(), 1);
        assert_eq!(s.read_all(2, 1).unwrap()[0].stream, "b");
        assert!(matches!(
            s.append("a", 1, vec![ev(4)]),
            Err(StoreError::Conflict { actual: 2, .. })
        ));
        let next = s.append("a", 2, vec![ev(4), ev(5)]).unwrap();
        assert_eq!(
            next.iter()
                .map(|r| (r.position, r.sequence))
                .collect::<Vec<_>>(),
            vec![(4, 3), (5, 4)]
        );
        assert_eq!(s.read_stream("a", 1).unwrap().len(), 4);
        assert_eq!(s.read_all(1, 10).unwrap().len(), 5);
    }

    /// Reads that start inside an append of several events get the rest of it.
    #[test]
    fn reads_start_inside_an_append() {
        let (_dir, s) = store();
        s.append("a", 0, vec![ev(1), ev(2), ev(3)]).unwrap();
        s.append("b", 0, vec![ev(4), ev(5)]).unwrap();
        let n = |records: Vec<super::RecordedEvent>| {
            records
                .iter()
                .map(|r| r.data["n"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(n(s.read_all(2, 2).unwrap()), vec![2, 3]);
        assert_eq!(n(s.read_all(3, 10).unwrap()), vec![3, 4, 5]);
        assert_eq!(n(s.read_all(5, 10).unwrap()), vec![5]);
        assert!(s.read_all(6, 10).unwrap().is_empty());
        assert_eq!(n(s.read_stream("a", 2).unwrap()), vec![2, 3]);
        assert_eq!(n(s.read_stream("b", 2).unwrap()), vec![5]);
        assert!(s.read_stream("b", 3).unwrap().is_empty());
    }

    #[test]
    fn a_missing_last_index_entry_is_restored_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            s.append("a", 0, vec![ev(1), ev(2)]).unwrap();
            s.with(|engine| {
                engine
                    .log
                    .remove(super::index_key("a", 1))
                    .map_err(super::storage)?;
                engine.db.flush().map_err(super::storage)?;
                Ok(())
            })
            .unwrap();
        }
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.read_stream("a", 1).unwrap().len(), 2);
        assert!(matches!(
            s.append("a", 1, vec![ev(3)]),
            Err(StoreError::Conflict { actual: 2, .. })
        ));
    }

    #[test]
    fn readers_do_not_see_an_append_in_progress() {
        let (_dir, s) = store();
        s.append("a", 0, vec![ev(1)]).unwrap();
        // What the writer has inserted but not finished is past the visible position.
        write_unfinished_append(&s, 2);
        assert_eq!(s.read_all(1, 10).unwrap().len(), 1);
        assert!(s.read_stream("b", 1).unwrap().is_empty());
        assert!(s.read_all(2, 10).unwrap().is_empty());
        assert_eq!(s.last_position().unwrap(), 1);
    }

    #[test]
    fn a_format_1_dir_opens_and_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            s.append("a", 0, vec![ev(1)]).unwrap();
        }
        SledStore::stamp_format_version(dir.path(), 1).unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            assert_eq!(s.read_stream("a", 1).unwrap().len(), 1);
        }
        let db = super::open_db(dir.path(), 1 << 20).unwrap();
        let version = db
            .open_tree("meta")
            .unwrap()
            .get(super::FORMAT_KEY)
            .unwrap()
            .unwrap();
        assert_eq!(super::be_u64(&version), super::FORMAT_VERSION);
    }

    /// The sequences remembered for appends agree with the index, also once they were forgotten.
    #[test]
    fn stream_sequences_hold_past_the_recent_streams() {
        let (_dir, s) = store();
        s.append("s0", 0, vec![ev(1)]).unwrap();
        for i in 1..=super::RECENT_STREAMS {
            s.append(&format!("s{i}"), 0, vec![ev(1)]).unwrap();
        }
        assert!(matches!(
            s.append("s0", 0, vec![ev(2)]),
            Err(StoreError::Conflict { actual: 1, .. })
        ));
        assert_eq!(s.append("s0", 1, vec![ev(2)]).unwrap()[0].sequence, 2);
        assert!(matches!(
            s.append("s0", 1, vec![ev(3)]),
            Err(StoreError::Conflict { actual: 2, .. })
        ));
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
