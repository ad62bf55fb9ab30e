//! Snapshots of the pipeline and execution views, so that reading the history of a data dir
//! without a server does not fold the whole log again.
//!
//! A snapshot is always folded from the log, in log order, by the same `apply` the server uses:
//! at startup, once the replay is done, and at shutdown, by folding the events recorded since
//! the last snapshot into it. It is never copied from the live views, whose events arrive from
//! many actors in no global order. It records the position of the last event it holds (and when
//! that event was recorded, to recognise its log); loading one folds only the events after it.
//! A snapshot is a cache: one that is missing, unreadable, of another version or of another log
//! is ignored (and the log folded whole). It is not part of the data format (see `migrations/`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::executions::ExecutionViews;
use super::{PipelineView, PipelineViews};
use crate::eventstore::{EventStore, StoreError};

/// Bumped whenever what the views keep changes shape.
pub const SNAPSHOT_VERSION: u64 = 2;

/// The snapshot file of a data dir.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("views-snapshot.json")
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u64,
    /// The last event it holds.
    position: u64,
    /// When that event was recorded.
    recorded_at: f64,
    pipelines: BTreeMap<String, PipelineView>,
    executions: Box<RawValue>,
}

/// Views folded up to the end of the log.
pub struct Loaded {
    /// Pipelines.
    pub pipelines: PipelineViews,
    /// Executions.
    pub executions: ExecutionViews,
    /// The last event folded in.
    pub position: u64,
    /// How many events were folded beyond the snapshot.
    pub folded: u64,
}

/// The snapshot in `file` if it belongs to this log, with the events recorded since folded in.
pub fn load(store: &Arc<dyn EventStore>, file: &Path) -> Result<Loaded, StoreError> {
    let snapshot = std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok())
        .filter(|s| s.version == SNAPSHOT_VERSION)
        .filter(|s| {
            // Its last event must be this log's event at that position.
            s.position == 0
                || store
                    .read_all(s.position, 1)
                    .ok()
                    .and_then(|r| r.first().map(|e| (e.position, e.recorded_at)))
                    == Some((s.position, s.recorded_at))
        });
    let (pipelines, executions, from) = match snapshot {
        Some(s) => match ExecutionViews::import(store.clone(), s.executions.get()) {
            Ok(executions) => (PipelineViews::import(s.pipelines), executions, s.position),
            Err(e) => {
                log::warn!("the views snapshot is unreadable ({e}); folding the whole log");
                (PipelineViews::new(), ExecutionViews::new(store.clone()), 0)
            }
        },
        None => (PipelineViews::new(), ExecutionViews::new(store.clone()), 0),
    };
    let mut position = from;
    let mut folded = 0;
    crate::eventstore::replay_from(store.as_ref(), from + 1, |record| {
        pipelines.apply(record);
        executions.apply(record);
        position = record.position;
        folded += 1;
    })?;
    Ok(Loaded {
        pipelines,
        executions,
        position,
        folded,
    })
}

/// Writes views folded up to `position` (in log order) into `file`, atomically.
pub fn save(
    store: &dyn EventStore,
    file: &Path,
    pipelines: &PipelineViews,
    executions: &ExecutionViews,
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
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        position,
        recorded_at,
        pipelines: pipelines.export(),
        executions: executions.export()?,
    };
    let tmp = file.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(std::io::BufWriter::new(&mut f), &snapshot)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|e| format!("the views snapshot could not be written: {e}"))
}

/// Brings the snapshot in `file` up to the end of the log.
pub fn refresh(store: &Arc<dyn EventStore>, file: &Path) -> Result<(), String> {
    let loaded = load(store, file).map_err(|e| e.to_string())?;
    if loaded.folded == 0 && file.exists() {
        return Ok(());
    }
    save(
        store.as_ref(),
        file,
        &loaded.pipelines,
        &loaded.executions,
        loaded.position,
    )
}
