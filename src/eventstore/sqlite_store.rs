//! An [`EventStore`] on SQLite (compiled into the binary through rusqlite): the engine beside
//! sled, chosen with `engine = "sqlite"`. sled stays the default; `docs/benchmarks.md` measures
//! both (on a long history SQLite takes about a fifth of sled's disk, opens in milliseconds and
//! keeps nothing of what it read in memory).
//!
//! # Layout (format 3, the same appends as sled's)
//! `log.sqlite` in the events directory, in WAL mode:
//! - `appends(position INTEGER PRIMARY KEY, count, data)`: one row per append, at the position
//!   of its first event, `data` the append encoded as every engine stores it (`codec`);
//! - `streams(stream, sequence, position, count)`, keyed by (stream, sequence of the append's
//!   first event): the per-stream index;
//! - `meta(key, value)`: `format_version` and `log_id`, as in sled's `meta` tree.
//!
//! `shelves.sqlite` beside it holds the shelves (`shelf(name, key, value)`), in a database of
//! their own so that the views' writes never wait for the log's.
//!
//! # Appends and durability
//! One writer thread owns the log's write connection: it takes every append queued so far, writes
//! them in one transaction and commits, which makes them visible, then hands the durable ones to
//! the flusher thread. With `synchronous = NORMAL` a commit is not synced; the flusher syncs the
//! write-ahead log once for everything handed over while its previous sync ran (group commit) and
//! answers. A checkpoint of the write-ahead log into the database syncs both first (SQLite's
//! rule in WAL mode), so a synced commit stays durable wherever its pages are. An append and its
//! index row are one transaction: a crash leaves both or neither. [`EventStore::append`] waits
//! for the commit only.
//!
//! Readers take a connection from a small pool; WAL mode lets them read while the writer writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::codec::{compress, decompress, encode, AppendIn};
use super::shelf::{Change, Entries, Shelf};
use super::{Durable, EventStore, NewEvent, RecordedEvent, StoreError, FORMAT_VERSION};

/// The log's database in the events directory; its presence is how a data dir is known to be
/// SQLite's.
pub const LOG_FILE: &str = "log.sqlite";
const SHELVES_FILE: &str = "shelves.sqlite";

/// How many streams the writer remembers the last sequence of (beyond, it asks the index).
const RECENT_STREAMS: usize = 4096;

/// How many queued requests one transaction takes at most.
const MAX_BATCH: usize = 1024;

/// How long a connection waits for another's lock (only checkpoints and the pool's first opening
/// contend).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

type Records = Result<Vec<RecordedEvent>, StoreError>;

/// Whom an append answers.
enum Reply {
    /// A caller blocked until the commit.
    Committed(mpsc::Sender<Records>),
    /// A caller waiting until the append is durable.
    Durable(oneshot::Sender<Records>),
}

/// What the writer thread is asked for.
enum Request {
    Append {
        stream: String,
        expected: u64,
        events: Vec<NewEvent>,
        reply: Reply,
    },
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Forget {
        stream: String,
        before: u64,
        reply: mpsc::Sender<Result<u64, StoreError>>,
    },
}

/// Someone to answer after the next sync.
enum Waiter {
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Append(oneshot::Sender<Records>, Vec<RecordedEvent>),
}

/// What readers and the writer share.
struct Shared {
    path: PathBuf,
    /// Each connection's page cache, in KiB.
    cache_kib: i64,
    /// Read connections not in use.
    readers: Mutex<Vec<Connection>>,
    /// The last position of the last committed append: what readers may see.
    visible: AtomicU64,
}

impl Shared {
    /// Runs `f` on a read connection of the pool (a new one when all are in use).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(storage)?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, self.cache_kib)?,
        };
        let result = f(&conn);
        let mut readers = self.readers.lock().map_err(storage)?;
        if readers.len() < 8 {
            readers.push(conn);
        }
        result
    }
}

/// Opens a connection to `path` with the store's settings.
fn connect(path: &Path, cache_kib: i64) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(storage)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(storage)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{cache_kib}; PRAGMA mmap_size = 0;"
    ))
    .map_err(storage)?;
    Ok(conn)
}

/// The write-ahead log of a database file, which the flusher syncs.
fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes every commit made so far to the database at `path` durable: syncs its write-ahead log
/// (a commit not there any more was checkpointed into the database, which SQLite synced).
fn sync_wal(path: &Path) -> Result<(), StoreError> {
    match std::fs::File::open(wal_of(path)) {
        Ok(wal) => wal.sync_data().map_err(storage),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(storage(e)),
    }
}

/// Takes the directory's lock file, so that one process at a time opens the store (SQLite itself
/// would let two in). A store closed a moment ago may still be releasing it: wait a little first.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(storage)?;
    for _ in 0..30 {
        // SAFETY: flock on a descriptor this function owns; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(StoreError::Storage(format!(
        "the data dir {} is in use by another process",
        dir.display()
    )))
}

/// An event store in SQLite databases under a directory.
pub struct SqliteStore {
    log_id: String,
    shared: Arc<Shared>,
    shelves: Arc<Mutex<Connection>>,
    shelves_path: PathBuf,
    /// Requests to the writer thread; taken at drop so the threads end.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The directory's lock, held while the store is open (the last field: released once the
    /// connections are closed).
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`, with about `cache_bytes` of page cache for the
    /// writer (readers and shelves get a little each).
    ///
    /// Refuses a data dir written in a newer format.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let lock = lock(dir)?;
        let path = dir.join(LOG_FILE);
        let writer_kib = (cache_bytes / 1024).max(256) as i64;
        let conn = connect(&path, writer_kib)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS appends (position INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS streams (stream TEXT NOT NULL, sequence INTEGER NOT NULL,
                 position INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (stream, sequence)) WITHOUT ROWID;",
        )
        .map_err(storage)?;
        let meta = |key: &str| -> Result<Option<Vec<u8>>, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(storage)
        };
        let found = meta("format_version")?.map(|v| be_u64(&v));
        if let Some(found) = found.filter(|f| *f > FORMAT_VERSION) {
            return Err(StoreError::UnsupportedFormat { found });
        }
        if found != Some(FORMAT_VERSION) {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('format_version', ?1)",
                [FORMAT_VERSION.to_be_bytes().to_vec()],
            )
            .map_err(storage)?;
        }
        let log_id = match meta("log_id")? {
            Some(id) => String::from_utf8_lossy(&id).to_string(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('log_id', ?1)",
                    [id.as_bytes()],
                )
                .map_err(storage)?;
                id
            }
        };
        let head: u64 = conn
            .query_row(
                "SELECT position + count - 1 FROM appends ORDER BY position DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(storage)?
            .map_or(0, |p| p as u64);
        sync_wal(&path)?;

        let shelves_path = dir.join(SHELVES_FILE);
        let shelves = connect(&shelves_path, 512)?;
        shelves
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS shelf (name TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
                     PRIMARY KEY (name, key)) WITHOUT ROWID;",
            )
            .map_err(storage)?;

        let shared = Arc::new(Shared {
            path: path.clone(),
            cache_kib: 512,
            readers: Mutex::new(Vec::new()),
            visible: AtomicU64::new(head),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let (to_flusher, flusher_rx) = mpsc::channel::<Vec<Waiter>>();
        let flusher = std::thread::Builder::new()
            .name("eventstore-flush".into())
            .spawn(move || flush_loop(&path, flusher_rx))
            .map_err(storage)?;
        let mut writer = Writer {
            conn,
            shared: shared.clone(),
            head: Head {
                position: head,
                recent: Default::default(),
            },
        };
        let writer = std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || writer.run(rx, to_flusher))
            .map_err(storage)?;
        Ok(SqliteStore {
            _lock: lock,
            log_id,
            shared,
            shelves: Arc::new(Mutex::new(shelves)),
            shelves_path,
            requests: Mutex::new(Some(tx)),
            threads: vec![writer, flusher],
        })
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
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(b)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    head: Head,
}

/// Where the log's end is, as the writer knows it.
#[derive(Clone)]
struct Head {
    /// The log's last position, committed or in the transaction being written.
    position: u64,
    /// The last sequence of streams appended to lately. Emptied when it reaches
    /// [`RECENT_STREAMS`].
    recent: std::collections::HashMap<String, u64>,
}

/// What one request came to inside a transaction.
enum Outcome {
    Appended(Reply, Vec<RecordedEvent>),
    Refused(Reply, StoreError),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Forgot(mpsc::Sender<Result<u64, StoreError>>, u64),
}

impl Writer {
    /// Takes every request queued so far, writes them in one transaction and commits, answers
    /// the callers that wait for the commit and hands the rest to the flusher.
    fn run(&mut self, rx: mpsc::Receiver<Request>, to_flusher: mpsc::Sender<Vec<Waiter>>) {
        while let Ok(first) = rx.recv() {
            let requests: Vec<Request> = std::iter::once(first)
                .chain(rx.try_iter().take(MAX_BATCH - 1))
                .collect();
            let before = self.head.clone();
            let outcomes = match write(&self.conn, &mut self.head, requests) {
                Ok(outcomes) => outcomes,
                Err((e, outcomes)) => {
                    log::error!("event store write failed: {e}");
                    self.head = before;
                    fail_all(outcomes, &e);
                    continue;
                }
            };
            self.shared
                .visible
                .store(self.head.position, Ordering::Release);
            let mut waiting = Vec::new();
            for outcome in outcomes {
                match outcome {
                    Outcome::Appended(Reply::Committed(tx), records) => {
                        let _ = tx.send(Ok(records));
                    }
                    Outcome::Appended(Reply::Durable(tx), records) => {
                        waiting.push(Waiter::Append(tx, records))
                    }
                    Outcome::Refused(reply, e) => answer(reply, Err(e)),
                    Outcome::Flush(tx) => waiting.push(Waiter::Flush(tx)),
                    Outcome::Forgot(tx, n) => {
                        let _ = tx.send(Ok(n));
                    }
                }
            }
            if !waiting.is_empty() && to_flusher.send(waiting).is_err() {
                return;
            }
        }
    }
}

/// Writes `requests` in one transaction. On failure, what each request came to so far, to be
/// answered with the error.
fn write(
    conn: &Connection,
    head: &mut Head,
    requests: Vec<Request>,
) -> Result<Vec<Outcome>, (StoreError, Vec<Outcome>)> {
    let mut outcomes = Vec::with_capacity(requests.len());
    let tx = match conn.unchecked_transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let outcomes = requests.into_iter().map(pending).collect();
            return Err((storage(e), outcomes));
        }
    };
    let mut failed = None;
    for request in requests {
        if failed.is_some() {
            outcomes.push(pending(request));
            continue;
        }
        match request {
            Request::Flush(tx) => outcomes.push(Outcome::Flush(tx)),
            Request::Append {
                stream,
                expected,
                events,
                reply,
            } => match head.append(&tx, &stream, expected, events) {
                Ok(records) => outcomes.push(Outcome::Appended(reply, records)),
                Err(e @ StoreError::Conflict { .. }) => outcomes.push(Outcome::Refused(reply, e)),
                Err(e) => {
                    outcomes.push(Outcome::Refused(reply, e.clone()));
                    failed = Some(e);
                }
            },
            Request::Forget {
                stream,
                before,
                reply,
            } => match forget(&tx, &stream, before) {
                Ok(n) => outcomes.push(Outcome::Forgot(reply, n)),
                Err(e) => {
                    outcomes.push(Outcome::Forgot(reply, 0));
                    failed = Some(e);
                }
            },
        }
    }
    if let Some(e) = failed {
        return Err((e, outcomes));
    }
    match tx.commit() {
        Ok(()) => Ok(outcomes),
        Err(e) => Err((storage(e), outcomes)),
    }
}

impl Head {
    fn append(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        stream: &str,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Records {
        let actual = match self.recent.get(stream) {
            Some(sequence) => *sequence,
            None => tx
                .query_row(
                    "SELECT sequence + count - 1 FROM streams WHERE stream = ?1 ORDER BY sequence DESC LIMIT 1",
                    [stream],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(storage)?
                .map_or(0, |s| s as u64),
        };
        let records = super::stamp(stream, expected, actual, self.position, events)?;
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(records);
        };
        let data = encode(&records)?;
        tx.prepare_cached("INSERT INTO appends (position, count, data) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![first.position as i64, records.len() as i64, data]))
            .map_err(storage)?;
        tx.prepare_cached(
            "INSERT INTO streams (stream, sequence, position, count) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                stream,
                first.sequence as i64,
                first.position as i64,
                records.len() as i64
            ])
        })
        .map_err(storage)?;
        if self.recent.len() >= RECENT_STREAMS {
            self.recent.clear();
        }
        self.recent.insert(stream.to_string(), last.sequence);
        self.position = last.position;
        Ok(records)
    }
}

/// A request that was not written, to be answered with the transaction's error.
fn pending(request: Request) -> Outcome {
    match request {
        Request::Append { reply, .. } => Outcome::Refused(reply, storage("not written")),
        Request::Flush(tx) => Outcome::Flush(tx),
        Request::Forget { reply, .. } => Outcome::Forgot(reply, 0),
    }
}

/// Answers every request of a failed transaction with its error.
fn fail_all(outcomes: Vec<Outcome>, e: &StoreError) {
    for outcome in outcomes {
        match outcome {
            Outcome::Appended(reply, _) => answer(reply, Err(e.clone())),
            Outcome::Refused(reply, refusal @ StoreError::Conflict { .. }) => {
                answer(reply, Err(refusal))
            }
            Outcome::Refused(reply, _) => answer(reply, Err(e.clone())),
            Outcome::Flush(tx) => {
                let _ = tx.send(Err(e.clone()));
            }
            Outcome::Forgot(tx, _) => {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

fn answer(reply: Reply, result: Records) {
    match reply {
        Reply::Committed(tx) => {
            let _ = tx.send(result);
        }
        Reply::Durable(tx) => {
            let _ = tx.send(result);
        }
    }
}

/// Removes the appends of `stream` whose events all come before `before`.
fn forget(tx: &rusqlite::Transaction<'_>, stream: &str, before: u64) -> Result<u64, StoreError> {
    let gone: Vec<(i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT sequence, position, count FROM streams WHERE stream = ?1 AND sequence + count <= ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![stream, before.min(i64::MAX as u64) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(storage)?;
    let mut removed = 0;
    for (sequence, position, count) in gone {
        tx.execute("DELETE FROM appends WHERE position = ?1", [position])
            .map_err(storage)?;
        tx.execute(
            "DELETE FROM streams WHERE stream = ?1 AND sequence = ?2",
            params![stream, sequence],
        )
        .map_err(storage)?;
        removed += count as u64;
    }
    Ok(removed)
}

/// The flusher thread: one sync of the write-ahead log for everything handed over meanwhile
/// (group commit), then the answers.
fn flush_loop(path: &Path, rx: mpsc::Receiver<Vec<Waiter>>) {
    while let Ok(first) = rx.recv() {
        let waiting: Vec<Waiter> = std::iter::once(first)
            .chain(rx.try_iter())
            .flatten()
            .collect();
        let result = sync_wal(path);
        if let Err(e) = &result {
            log::error!("event store sync failed: {e}");
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

/// The records of the append in the first column of `row`.
fn records_of(row: &rusqlite::Row<'_>) -> Records {
    let data = row
        .get_ref(0)
        .map_err(storage)?
        .as_blob()
        .map_err(storage)?;
    AppendIn::decode(data)?.into_records()
}

impl EventStore for SqliteStore {
    fn append(&self, stream: &str, expected: u64, events: Vec<NewEvent>) -> Records {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Append {
            stream: stream.to_string(),
            expected,
            events,
            reply: Reply::Committed(tx),
        })?;
        rx.recv()
            .map_err(|_| storage("the writer thread stopped"))?
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
            reply: Reply::Durable(reply),
        });
        super::writer_answer(queued, rx)
    }

    fn read_stream(&self, stream: &str, from: u64) -> Records {
        let from = from.max(1);
        let visible = self.shared.visible.load(Ordering::Acquire);
        self.shared.read(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT a.data FROM streams s JOIN appends a ON a.position = s.position
                     WHERE s.stream = ?1 AND s.sequence >= (SELECT coalesce(max(sequence), 0)
                         FROM streams WHERE stream = ?1 AND sequence <= ?2)
                     ORDER BY s.sequence",
                )
                .map_err(storage)?;
            let mut rows = statement
                .query(params![stream, from.min(i64::MAX as u64) as i64])
                .map_err(storage)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(storage)? {
                for record in records_of(row)? {
                    if record.position > visible {
                        return Ok(out);
                    }
                    if record.sequence >= from {
                        out.push(record);
                    }
                }
            }
            Ok(out)
        })
    }

    fn read_all(&self, from: u64, limit: usize) -> Records {
        let visible = self.shared.visible.load(Ordering::Acquire);
        let from = from.max(1);
        if limit == 0 || from > visible {
            return Ok(Vec::new());
        }
        self.shared.read(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT data FROM appends WHERE position >= (SELECT coalesce(max(position), 0)
                         FROM appends WHERE position <= ?1)
                     ORDER BY position LIMIT ?2",
                )
                .map_err(storage)?;
            let mut rows = statement
                .query(params![
                    from as i64,
                    limit.saturating_add(1).min(i64::MAX as usize) as i64
                ])
                .map_err(storage)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(storage)? {
                for record in records_of(row)? {
                    if record.position > visible || out.len() >= limit {
                        return Ok(out);
                    }
                    if record.position >= from {
                        out.push(record);
                    }
                }
            }
            Ok(out)
        })
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.shared.visible.load(Ordering::Acquire))
    }

    fn log_id(&self) -> String {
        self.log_id.clone()
    }

    fn forget(&self, stream: &str, before: u64) -> Result<u64, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Forget {
            stream: stream.to_string(),
            before,
            reply: tx,
        })?;
        let removed = rx
            .recv()
            .map_err(|_| storage("the writer thread stopped"))??;
        sync_wal(&self.shared.path)?;
        Ok(removed)
    }

    /// Gives back the read connections' caches.
    fn release_memory(&self) -> Result<(), StoreError> {
        self.shared.readers.lock().map_err(storage)?.clear();
        Ok(())
    }

    fn shelf(&self, name: &'static str) -> Arc<dyn Shelf> {
        Arc::new(SqliteShelf {
            conn: self.shelves.clone(),
            name,
        })
    }

    fn sync_shelves(&self) -> Result<(), StoreError> {
        // Hold the connection so that no write is half done.
        let _conn = self.shelves.lock().map_err(storage)?;
        sync_wal(&self.shelves_path)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        // The writer ends first; the flusher then ends once it has answered what was left.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Err(e) = sync_wal(&self.shared.path).and(sync_wal(&self.shelves_path)) {
            log::error!("event store sync at close failed: {e}");
        }
    }
}

/// A shelf: rows of the `shelf` table with its name; values stored compressed as appends are.
struct SqliteShelf {
    conn: Arc<Mutex<Connection>>,
    name: &'static str,
}

impl SqliteShelf {
    /// The value of `key` as stored.
    fn stored(&self, conn: &Connection, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        conn.prepare_cached("SELECT value FROM shelf WHERE name = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.name, key], |r| r.get(0))
                    .optional()
            })
            .map_err(storage)
    }
}

impl Shelf for SqliteShelf {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn.lock().map_err(storage)?;
        let raw = self.stored(&conn, key)?;
        raw.map(|raw| decompress(&raw).map(|v| v.into_owned()))
            .transpose()
    }

    fn update(
        &self,
        key: &[u8],
        decide: &mut dyn FnMut(Option<&[u8]>) -> Change,
    ) -> Result<(), StoreError> {
        // The connection's lock makes the read and the write one step.
        let conn = self.conn.lock().map_err(storage)?;
        let raw = self.stored(&conn, key)?;
        let plain = raw.as_deref().map(decompress).transpose()?;
        match decide(plain.as_deref()) {
            Change::Keep => Ok(()),
            Change::Put(value) => {
                let value = compress(&value)?;
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO shelf (name, key, value) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![self.name, key, value]))
                .map(drop)
                .map_err(storage)
            }
            Change::Remove if raw.is_none() => Ok(()),
            Change::Remove => conn
                .prepare_cached("DELETE FROM shelf WHERE name = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![self.name, key]))
                .map(drop)
                .map_err(storage),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let conn = self.conn.lock().map_err(storage)?;
        let (sql, from) = match after {
            Some(after) if after >= prefix => (
                "SELECT key, value FROM shelf WHERE name = ?1 AND key > ?2 ORDER BY key",
                after,
            ),
            _ => (
                "SELECT key, value FROM shelf WHERE name = ?1 AND key >= ?2 ORDER BY key",
                prefix,
            ),
        };
        let mut statement = conn.prepare_cached(sql).map_err(storage)?;
        let mut rows = statement.query(params![self.name, from]).map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            let key: Vec<u8> = row.get(0).map_err(storage)?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let raw = row
                .get_ref(1)
                .map_err(storage)?
                .as_blob()
                .map_err(storage)?;
            out.push((key, decompress(raw)?.into_owned()));
        }
        Ok(out)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let conn = self.conn.lock().map_err(storage)?;
        let mut statement = conn
            .prepare_cached("SELECT key FROM shelf WHERE name = ?1 AND key >= ?2 ORDER BY key")
            .map_err(storage)?;
        let mut rows = statement
            .query(params![self.name, prefix])
            .map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            let key: Vec<u8> = row.get(0).map_err(storage)?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(key);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{conformance, EventStore};
    use super::SqliteStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8 << 20).unwrap();
        (dir, s)
    }

    conformance::conformance_tests!(store());

    #[test]
    fn shelves_and_the_log_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let s = SqliteStore::open(dir.path(), 8 << 20).unwrap();
            conformance::shelves(&s);
            s.append("a", 0, vec![conformance::event(1), conformance::event(2)])
                .unwrap();
            s.append("b", 0, vec![conformance::event(3)]).unwrap();
            id = s.log_id();
        }
        let s = SqliteStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.log_id(), id);
        assert_eq!(s.last_position().unwrap(), 3);
        assert_eq!(s.read_stream("a", 2).unwrap()[0].position, 2);
        assert_eq!(s.read_all(2, 10).unwrap().len(), 2);
        conformance::reopened_shelves(&s);
        // The next append goes on from the last position and sequence.
        let next = s.append("a", 2, vec![conformance::event(4)]).unwrap();
        assert_eq!((next[0].position, next[0].sequence), (4, 3));
    }

    #[test]
    fn one_process_at_a_time() {
        let (dir, _open) = store();
        let err = match SqliteStore::open(dir.path(), 8 << 20) {
            Ok(_) => panic!("the store was opened twice"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("is in use by another process"), "{err}");
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), 8 << 20).unwrap());
        let conn = rusqlite::Connection::open(dir.path().join(super::LOG_FILE)).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
            [99u64.to_be_bytes().to_vec()],
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            SqliteStore::open(dir.path(), 8 << 20),
            Err(crate::eventstore::StoreError::UnsupportedFormat { found: 99 })
        ));
    }
}
