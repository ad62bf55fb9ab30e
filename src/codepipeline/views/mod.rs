//! Read views, projected from the event log.
//!
//! Every event the actors make durable is applied here, and at startup the whole log is folded
//! through the same [`PipelineViews::apply`], so the views can always be rebuilt from the log.
//! Reads take a read lock and never wait behind an actor's mailbox.

pub mod executions;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ids::{pipeline_stream, PIPELINE_STREAM_PREFIX};
use super::model::{Declaration, ExecutionMode, PipelineType};
use super::pipeline::{PipelineEvent, Tag};
use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError};

/// What reads need of one pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineView {
    /// Pipeline name.
    pub name: String,
    /// Pipeline ARN.
    pub arn: String,
    /// Current version.
    pub version: u64,
    /// `V1` or `V2`.
    pub pipeline_type: PipelineType,
    /// `SUPERSEDED`, `QUEUED` or `PARALLEL`.
    pub execution_mode: ExecutionMode,
    /// Creation time.
    pub created: f64,
    /// Last update time.
    pub updated: f64,
    /// Tags, in the order they were added.
    pub tags: Vec<Tag>,
    /// The GetPipeline answer for the current version, serialised once per version.
    #[serde(with = "json_text")]
    pub get_output: Bytes,
    /// Stages whose inbound transition was changed, with the last change.
    pub transitions: BTreeMap<String, super::pipeline::Transition>,
}

impl PipelineView {
    /// The `PipelineSummary` wire shape.
    pub fn summary(&self) -> impl Serialize + '_ {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Summary<'a> {
            name: &'a str,
            version: u64,
            pipeline_type: PipelineType,
            execution_mode: ExecutionMode,
            created: f64,
            updated: f64,
        }
        Summary {
            name: &self.name,
            version: self.version,
            pipeline_type: self.pipeline_type,
            execution_mode: self.execution_mode,
            created: self.created,
            updated: self.updated,
        }
    }
}

/// The declaration in a GetPipeline answer (the views keep the answer, not the typed
/// declaration, so that ten thousand pipelines cost their bytes only).
pub fn declaration_of_output(output: &[u8]) -> Option<Declaration> {
    #[derive(Deserialize)]
    struct Output {
        pipeline: Declaration,
    }
    serde_json::from_slice::<Output>(output)
        .inspect_err(|e| log::error!("a stored GetPipeline answer is unreadable: {e}"))
        .ok()
        .map(|o| o.pipeline)
}

/// A JSON document kept as bytes, written into checkpoints as text.
mod json_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(bytes).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(String::deserialize(d)?))
    }
}

/// The GetPipeline answer for a declaration, serialised.
pub fn get_pipeline_output(
    declaration: &Declaration,
    arn: &str,
    created: f64,
    updated: f64,
) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata<'a> {
        pipeline_arn: &'a str,
        created: f64,
        updated: f64,
    }
    #[derive(Serialize)]
    struct Output<'a> {
        pipeline: &'a Declaration,
        metadata: Metadata<'a>,
    }
    let out = Output {
        pipeline: declaration,
        metadata: Metadata {
            pipeline_arn: arn,
            created,
            updated,
        },
    };
    Bytes::from(serde_json::to_vec(&out).expect("JSON values serialise"))
}

/// All pipelines of all accounts and regions, keyed by stream name (so a region's pipelines
/// are one ordered range, by name).
#[derive(Default)]
pub struct PipelineViews {
    pipelines: RwLock<BTreeMap<String, PipelineView>>,
}

impl PipelineViews {
    /// Empty views.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds the whole log into fresh views.
    pub fn rebuild(store: &dyn EventStore) -> Result<Self, StoreError> {
        let views = Self::new();
        crate::eventstore::replay(store, |record| views.apply(record))?;
        Ok(views)
    }

    /// Applies one durable event.
    pub fn apply(&self, record: &RecordedEvent) {
        if !record.stream.starts_with(PIPELINE_STREAM_PREFIX) {
            return;
        }
        let Some(event) = PipelineEvent::from_record(record) else {
            return;
        };
        let mut map = self.pipelines.write().expect("views lock");
        match event {
            PipelineEvent::Created(c) => {
                let get_output = get_pipeline_output(&c.declaration, &c.arn, c.at, c.at);
                let view = PipelineView {
                    name: c.declaration.name.clone(),
                    arn: c.arn,
                    version: 1,
                    pipeline_type: c.declaration.pipeline_type(),
                    execution_mode: c.declaration.execution_mode(),
                    created: c.at,
                    updated: c.at,
                    tags: super::pipeline::merged(&[], &c.tags),
                    get_output,
                    transitions: BTreeMap::new(),
                };
                map.insert(record.stream.clone(), view);
            }
            PipelineEvent::Updated(u) => {
                if let Some(view) = map.get_mut(&record.stream) {
                    view.version = u.version;
                    view.updated = u.at;
                    view.pipeline_type = u.declaration.pipeline_type();
                    view.execution_mode = u.declaration.execution_mode();
                    view.get_output =
                        get_pipeline_output(&u.declaration, &view.arn, view.created, u.at);
                }
            }
            PipelineEvent::Tagged(t) => {
                if let Some(view) = map.get_mut(&record.stream) {
                    view.tags = super::pipeline::merged(&view.tags, &t.tags);
                }
            }
            PipelineEvent::Untagged(u) => {
                if let Some(view) = map.get_mut(&record.stream) {
                    view.tags.retain(|t| !u.keys.contains(&t.key));
                }
            }
            PipelineEvent::Deleted(_) => {
                map.remove(&record.stream);
            }
            PipelineEvent::Transition(t) => {
                if let Some(view) = map.get_mut(&record.stream) {
                    view.transitions.insert(t.stage.clone(), t);
                }
            }
            PipelineEvent::Expired(_) => {}
        }
    }

    /// One pipeline by stream.
    pub fn get(&self, stream: &str) -> Option<PipelineView> {
        self.pipelines
            .read()
            .expect("views lock")
            .get(stream)
            .cloned()
    }

    /// Reads one pipeline without cloning all of it.
    pub fn with<R>(&self, stream: &str, f: impl FnOnce(&PipelineView) -> R) -> Option<R> {
        self.pipelines
            .read()
            .expect("views lock")
            .get(stream)
            .map(f)
    }

    /// Summaries of an account's pipelines in a region, by name, starting after `after`.
    /// Returns up to `limit` summaries as a JSON array, and the name to resume after when more
    /// follow.
    pub fn list(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<u8>, Option<String>) {
        let prefix = pipeline_stream(account, region, "");
        let start = match after {
            Some(name) => std::ops::Bound::Excluded(pipeline_stream(account, region, name)),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let map = self.pipelines.read().expect("views lock");
        let mut iter = map
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix));
        let page: Vec<&PipelineView> = iter.by_ref().take(limit).map(|(_, v)| v).collect();
        let more = iter.next().is_some();
        let next = if more {
            page.last().map(|v| v.name.clone())
        } else {
            None
        };
        let summaries: Vec<_> = page.iter().map(|v| v.summary()).collect();
        let json = serde_json::to_vec(&summaries).expect("summaries serialise");
        (json, next)
    }

    /// Every disabled inbound transition: (`<account>:<region>:<pipeline>`, stage).
    pub fn disabled_transitions(&self) -> Vec<(String, String)> {
        let map = self.pipelines.read().expect("views lock");
        map.iter()
            .flat_map(|(stream, view)| {
                let key = stream
                    .strip_prefix(PIPELINE_STREAM_PREFIX)
                    .unwrap_or(stream)
                    .to_string();
                view.transitions
                    .values()
                    .filter(|t| !t.enabled)
                    .map(move |t| (key.clone(), t.stage.clone()))
            })
            .collect()
    }

    /// Every pipeline's key (`<account>:<region>:<name>`) with its current version and GetPipeline
    /// answer.
    pub fn current_versions(&self) -> Vec<(String, u64, Bytes)> {
        let map = self.pipelines.read().expect("views lock");
        map.iter()
            .map(|(stream, view)| {
                let key = stream
                    .strip_prefix(PIPELINE_STREAM_PREFIX)
                    .unwrap_or(stream);
                (key.to_string(), view.version, view.get_output.clone())
            })
            .collect()
    }

    /// How many pipelines there are in all.
    pub fn len(&self) -> usize {
        self.pipelines.read().expect("views lock").len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::eventstore::Projection for PipelineViews {
    fn apply(&self, record: &RecordedEvent) {
        PipelineViews::apply(self, record);
    }
}

impl crate::eventstore::Projection for executions::ExecutionViews {
    fn apply(&self, record: &RecordedEvent) {
        executions::ExecutionViews::apply(self, record);
    }
}

/// A version of a pipeline as its stream recorded it.
pub struct RecordedVersion {
    /// The declaration.
    pub declaration: Arc<Declaration>,
    /// The pipeline ARN.
    pub arn: String,
    /// When the pipeline was created.
    pub created: f64,
    /// When this version was recorded.
    pub updated: f64,
}

impl RecordedVersion {
    /// The GetPipeline answer for this version.
    pub fn get_output(&self) -> Bytes {
        get_pipeline_output(&self.declaration, &self.arn, self.created, self.updated)
    }
}

/// A version of the pipeline of `stream`, read from the stream (older versions are not kept in
/// the views); `None` when that version does not exist.
pub fn recorded_version(
    store: &dyn EventStore,
    stream: &str,
    version: u64,
) -> Result<Option<RecordedVersion>, StoreError> {
    let mut found = None;
    let mut arn = String::new();
    let mut created = 0.0;
    for record in store.read_stream(stream, 1)? {
        match PipelineEvent::from_record(&record) {
            Some(PipelineEvent::Created(c)) => {
                arn = c.arn.clone();
                created = c.at;
                found = (version == 1).then(|| RecordedVersion {
                    declaration: c.declaration,
                    arn: c.arn,
                    created,
                    updated: created,
                });
            }
            Some(PipelineEvent::Updated(u)) if u.version == version => {
                found = Some(RecordedVersion {
                    declaration: u.declaration,
                    arn: arn.clone(),
                    created,
                    updated: u.at,
                });
            }
            Some(PipelineEvent::Deleted(_)) => found = None,
            _ => {}
        }
    }
    Ok(found)
}

/// The GetPipeline answer for a version of the pipeline of `stream`, read from its stream.
pub fn pipeline_version(
    store: &dyn EventStore,
    stream: &str,
    version: u64,
) -> Result<Option<Bytes>, StoreError> {
    Ok(recorded_version(store, stream, version)?.map(|v| v.get_output()))
}

impl crate::checkpoint::Projection for PipelineViews {
    fn name(&self) -> &'static str {
        "pipelines"
    }

    fn apply(&self, record: &RecordedEvent) {
        PipelineViews::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let pipelines = self.pipelines.read().expect("views lock");
        serde_json::value::to_raw_value(&*pipelines).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let pipelines: BTreeMap<String, PipelineView> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.pipelines.write().expect("views lock") = pipelines;
        Ok(())
    }

    fn clear(&self) {
        self.pipelines.write().expect("views lock").clear();
    }
}
