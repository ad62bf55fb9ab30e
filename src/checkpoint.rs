//! Checkpoints: every projection of the log (pipeline and execution views, S3, IAM, CodeBuild)
//! written to one file with the log position it holds, so that start-up and offline history
//! reads fold only the events recorded after it instead of the whole history.
//!
//! A checkpoint is always folded from the log in log order, by the projections' own `apply`,
//! into fresh projections, never copied from the live ones, whose events arrive from many actors
//! in no global order. It is written in the background every `checkpoint_interval_seconds` and
//! at a graceful stop, when there is none yet or at least `checkpoint_min_events` events were
//! recorded since the last one: folding fewer at the next start costs less than writing one. A
//! start that folded that many is the one exception: its live projections, folded in log order
//! before anything runs, are written at once.
//!
//! It is written to a temporary file, synced and renamed, so a crash leaves the old one or the
//! new one whole. It records the id of its log, the position of its last event and when that
//! event was recorded (which must match, unless the event has left the log since). A checkpoint is a cache, not part of the data format
//! (`migrations/`): one that is missing is rebuilt; one that is unreadable, of another version,
//! of another log or lacking a projection is ignored with a warning and the log folded whole.
//! Deleting it changes no answer.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::eventstore::{EventStore, RecordedEvent, StoreError};

/// Bumped whenever what any projection keeps changes shape.
pub const CHECKPOINT_VERSION: u64 = 19;

/// A state folded from the log that a checkpoint can hold.
pub trait Projection: Send + Sync {
    /// Its name in the checkpoint.
    fn name(&self) -> &'static str;
    /// Folds one event (in log order).
    fn apply(&self, record: &RecordedEvent);
    /// Everything it holds, as JSON.
    fn export(&self) -> Result<Box<RawValue>, String>;
    /// Replaces what it holds with what `export` wrote.
    fn restore(&self, json: &str) -> Result<(), String>;
    /// Forgets everything (a checkpoint could not be restored whole).
    fn clear(&self);
}

impl<T: Projection + ?Sized> Projection for Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn apply(&self, record: &RecordedEvent) {
        (**self).apply(record)
    }
    fn export(&self) -> Result<Box<RawValue>, String> {
        (**self).export()
    }
    fn restore(&self, json: &str) -> Result<(), String> {
        (**self).restore(json)
    }
    fn clear(&self) {
        (**self).clear()
    }
}

/// The checkpoint file of a data dir.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoint.json")
}

/// The file of the views snapshot older versions wrote, which checkpoints replace.
fn old_snapshot(data_dir: &Path) -> PathBuf {
    data_dir.join("views-snapshot.json")
}

/// A checkpoint as written.
#[derive(Serialize)]
struct Checkpoint {
    version: u64,
    /// The id of the log it was folded from.
    log: String,
    /// The last event it holds.
    position: u64,
    /// When that event was recorded.
    recorded_at: f64,
    projections: BTreeMap<String, Box<RawValue>>,
}

/// A checkpoint as read: its projections stay slices of the file's bytes until restored, so
/// loading one holds the file once, not twice.
#[derive(Deserialize)]
struct CheckpointIn<'a> {
    version: u64,
    #[serde(default)]
    log: String,
    position: u64,
    recorded_at: f64,
    #[serde(borrow)]
    projections: BTreeMap<String, &'a RawValue>,
}

/// What loading did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loaded {
    /// The position the checkpoint held (0 without one).
    pub from: u64,
    /// The last event folded in.
    pub position: u64,
    /// How many events were folded after the checkpoint.
    pub folded: u64,
}

/// Why the checkpoint in `file` cannot be used for this log; `None` when it can.
fn check(
    store: &dyn EventStore,
    cp: &CheckpointIn<'_>,
    projections: &[&dyn Projection],
) -> Option<String> {
    if cp.version != CHECKPOINT_VERSION {
        return Some(format!(
            "it is of version {}, this build writes {CHECKPOINT_VERSION}",
            cp.version
        ));
    }
    if cp.log != store.log_id() {
        return Some("it is of another log".into());
    }
    let end = store.last_position().unwrap_or(0);
    if cp.position > end {
        return Some(format!(
            "it holds events up to {}, the log ends at {end}",
            cp.position
        ));
    }
    // The event it ended at must still be the same (it may have left the log since, with a
    // deleted pipeline's history).
    let here = store
        .read_all(cp.position, 1)
        .ok()
        .and_then(|r| r.first().map(|e| (e.position, e.recorded_at)));
    if let Some((position, recorded_at)) = here {
        if position == cp.position && recorded_at != cp.recorded_at {
            return Some(format!(
                "its event at position {} is not this log's",
                cp.position
            ));
        }
    }
    projections
        .iter()
        .find(|p| !cp.projections.contains_key(p.name()))
        .map(|p| format!("it holds no {}", p.name()))
}

/// Restores `projections` from the checkpoint in `file` when it belongs to this log, then folds
/// the events recorded after it (the whole log without one).
pub fn load(
    store: &dyn EventStore,
    file: &Path,
    projections: &[&dyn Projection],
) -> Result<Loaded, StoreError> {
    load_upto(store, file, projections, u64::MAX)
}

/// [`load`], folding no event after position `upto`.
fn load_upto(
    store: &dyn EventStore,
    file: &Path,
    projections: &[&dyn Projection],
    upto: u64,
) -> Result<Loaded, StoreError> {
    let mut from = 0;
    let started = std::time::Instant::now();
    if let Ok(bytes) = std::fs::read(file) {
        log::debug!(
            "checkpoint: {} bytes read in {:.1} ms",
            bytes.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        let restored = match serde_json::from_slice::<CheckpointIn>(&bytes) {
            Err(e) => Err(format!("it is unreadable ({e})")),
            Ok(cp) => match check(store, &cp, projections) {
                Some(why) => Err(why),
                None => projections
                    .iter()
                    .try_for_each(|p| {
                        p.restore(cp.projections[p.name()].get())
                            .map_err(|e| format!("its {} is unreadable ({e})", p.name()))
                    })
                    .map(|()| cp.position),
            },
        };
        log::debug!(
            "checkpoint: restored in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        match restored {
            Ok(position) => from = position,
            Err(why) => {
                log::warn!(
                    "the checkpoint {} is ignored: {why}; the whole log is folded",
                    file.display()
                );
                projections.iter().for_each(|p| p.clear());
            }
        }
    }
    let mut loaded = Loaded {
        from,
        position: from,
        folded: 0,
    };
    crate::eventstore::replay_range(store, from + 1, upto, |record| {
        projections.iter().for_each(|p| p.apply(record));
        loaded.position = record.position;
        loaded.folded += 1;
    })?;
    Ok(loaded)
}

/// Writes `projections`, folded in log order up to `position`, into `file`, atomically.
pub fn save(
    store: &dyn EventStore,
    file: &Path,
    projections: &[&dyn Projection],
    position: u64,
) -> Result<(), String> {
    let recorded_at = match position {
        0 => 0.0,
        p => store
            .read_all(p, 1)
            .map_err(|e| e.to_string())?
            .first()
            .map_or(0.0, |e| e.recorded_at),
    };
    // The events up to `position`, and what their fold put on the shelves, must be on disk
    // before a checkpoint says that folding may start after them.
    wait(store.durable()).map_err(|e| e.to_string())?;
    store.sync_shelves().map_err(|e| e.to_string())?;
    let mut exported = BTreeMap::new();
    for p in projections {
        exported.insert(p.name().to_string(), p.export()?);
    }
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        log: store.log_id(),
        position,
        recorded_at,
        projections: exported,
    };
    let tmp = file.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(&mut f);
        serde_json::to_writer(&mut out, &checkpoint)?;
        out.flush()?;
        drop(out);
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        if let Some(dir) = file.parent() {
            // The rename itself is durable once the directory is.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("the checkpoint could not be written: {e}"))?;
    if let Some(dir) = file.parent() {
        let _ = std::fs::remove_file(old_snapshot(dir));
    }
    Ok(())
}

/// Brings the checkpoint in `file` up to the end of the log by folding the events after it into
/// `fresh` projections (empty ones, not the live ones) and writing them. Returns what loading did.
///
/// Only durable events are folded: the checkpoint, and what its fold puts on the shelves (which
/// it syncs), must never hold an event that the log could still lose in a power cut, or the
/// sequences that event took would be taken again by other events.
pub fn refresh(
    store: &dyn EventStore,
    file: &Path,
    fresh: &[&dyn Projection],
) -> Result<Loaded, String> {
    let end = store.last_position().map_err(|e| e.to_string())?;
    wait(store.durable()).map_err(|e| e.to_string())?;
    let loaded = load_upto(store, file, fresh, end).map_err(|e| e.to_string())?;
    if loaded.folded > 0 || !file.exists() {
        save(store, file, fresh, loaded.position)?;
    }
    Ok(loaded)
}

/// Waits on this thread for `future` (checkpoints are written from plain threads and, at the stop,
/// from the server's last task: no runtime of their own to wait in).
fn wait<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Makes empty projections to fold a checkpoint into.
pub type Fresh = Box<dyn Fn() -> Vec<Box<dyn Projection>> + Send + Sync>;

/// Writes checkpoints in the background and at the stop, one at a time.
pub struct Checkpointer {
    store: Arc<dyn EventStore>,
    file: PathBuf,
    fresh: Fresh,
    /// The position of the last checkpoint written; held while one is written.
    last: Mutex<u64>,
}

impl Checkpointer {
    /// Checkpoints of `store` into `file`, folded into what `fresh` makes; the last one written
    /// holds `position`.
    pub fn new(store: Arc<dyn EventStore>, file: PathBuf, position: u64, fresh: Fresh) -> Self {
        Checkpointer {
            store,
            file,
            fresh,
            last: Mutex::new(position),
        }
    }

    /// Writes a checkpoint if there is none, or if at least `min_events` were recorded since the
    /// last one (fewer cost the next start less to fold than a checkpoint costs to write).
    pub fn run(&self, min_events: u64) -> Result<(), String> {
        let mut last = self.last.lock().expect("checkpoint lock");
        let end = self.store.last_position().map_err(|e| e.to_string())?;
        let wanted = if self.file.exists() {
            min_events.max(1)
        } else {
            1
        };
        if end < last.saturating_add(wanted) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let fresh = (self.fresh)();
        let refs: Vec<&dyn Projection> = fresh.iter().map(|p| p.as_ref()).collect();
        let loaded = refresh(self.store.as_ref(), &self.file, &refs)?;
        *last = loaded.position;
        log::debug!(
            "checkpoint at event {} ({} events folded) written in {:.1} ms",
            loaded.position,
            loaded.folded,
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    }

    /// Runs [`Checkpointer::run`] now and then every `interval` until `stop` says so or is
    /// dropped.
    pub fn spawn(
        self: &Arc<Self>,
        interval: Duration,
        min_events: u64,
        stop: std::sync::mpsc::Receiver<()>,
    ) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || loop {
                if let Err(e) = me.run(min_events) {
                    log::warn!("{e}");
                }
                crate::allocator::release();
                if !matches!(
                    stop.recv_timeout(interval),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
            })
            .expect("the checkpoint thread starts")
    }
}
