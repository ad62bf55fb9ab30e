//! What every stored event type shares: how it is written into a record (its type name and
//! schema version), how a record is read back (upcasting older schema versions first), folding
//! a stream, and appending to streams whose head is cached.
//!
//! Upcasting lives here: an event type whose payload changes bumps [`EventType::VERSION`] and
//! gives [`EventType::upcast`] the step from each older version, so that every reader (actors,
//! views, the history) reads old records through the same path. `migrations/` lists the steps.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::{EventStore, NewEvent, RecordedEvent, StoreError};

/// An event type of the log.
pub trait EventType: Sized + Serialize {
    /// The schema version new records are written with.
    const VERSION: u32 = 1;

    /// The type name this event is stored under.
    fn type_name(&self) -> &'static str;

    /// Whether records stored under `type_name` are of this type.
    fn owns(type_name: &str) -> bool;

    /// Reads a payload of the current schema version stored under `type_name` (one it owns).
    fn decode(type_name: &str, data: &Value) -> Result<Self, serde_json::Error>;

    /// Upgrades a payload written with the older schema `version` to the current one.
    fn upcast(_type_name: &str, _version: u32, data: Value) -> Result<Value, String> {
        Ok(data)
    }

    /// The record to append.
    fn to_new_event(&self) -> NewEvent {
        NewEvent {
            event_type: self.type_name().to_string(),
            schema_version: Self::VERSION,
            data: serde_json::to_value(self).expect("events serialise"),
        }
    }

    /// Reads a stored record back, upgrading an older payload; `None` for a record of another
    /// type, and (logged) for one that cannot be read.
    fn from_record(record: &RecordedEvent) -> Option<Self> {
        let unreadable = |why: &dyn std::fmt::Display| {
            log::error!(
                "event {} ({} v{}) of {} is unreadable: {why}",
                record.position,
                record.event_type,
                record.schema_version,
                record.stream
            );
        };
        if !Self::owns(&record.event_type) {
            return None;
        }
        if record.schema_version > Self::VERSION {
            // Written by a newer build: it cannot be read here.
            unreadable(&format!(
                "its schema is newer than this build's (v{})",
                Self::VERSION
            ));
            return None;
        }
        let decoded = if record.schema_version < Self::VERSION {
            match Self::upcast(
                &record.event_type,
                record.schema_version,
                record.data.clone(),
            ) {
                Ok(data) => Self::decode(&record.event_type, &data),
                Err(e) => {
                    unreadable(&e);
                    return None;
                }
            }
        } else {
            Self::decode(&record.event_type, &record.data)
        };
        decoded.inspect_err(|e| unreadable(e)).ok()
    }
}

/// Folds the events of type `E` of one stream into `state`; the stream's last sequence.
pub fn fold_stream<E: EventType, S>(
    store: &dyn EventStore,
    stream: &str,
    state: &mut S,
    mut apply: impl FnMut(&mut S, &E),
) -> Result<u64, StoreError> {
    let mut sequence = 0;
    for record in store.read_stream(stream, 1)? {
        sequence = record.sequence;
        if let Some(event) = E::from_record(&record) {
            apply(state, &event);
        }
    }
    Ok(sequence)
}

/// Appends to streams whose last sequence it remembers, so that a write need not read its
/// stream to learn where it ends. Writers that share one go through its lock one at a time
/// (the services that are not actors: CodeBuild, IAM).
pub struct StreamWriter {
    heads: tokio::sync::Mutex<HashMap<String, u64>>,
    /// How many heads are kept before they are forgotten (read again when next needed).
    capacity: usize,
}

impl StreamWriter {
    /// A writer that remembers up to `capacity` streams' heads.
    pub fn new(capacity: usize) -> Self {
        StreamWriter {
            heads: tokio::sync::Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Appends `events` to `stream` once they are decided by `decide`, which is given the
    /// stream's last sequence and may refuse (its error is returned, nothing is written).
    /// Resolves with the recorded events once they are durable.
    pub async fn append<E, Err>(
        &self,
        store: &dyn EventStore,
        stream: &str,
        decide: impl FnOnce() -> Result<Vec<E>, Err>,
    ) -> Result<Result<Vec<RecordedEvent>, Err>, StoreError>
    where
        E: EventType,
    {
        let mut heads = self.heads.lock().await;
        let head = match heads.get(stream) {
            Some(head) => *head,
            None => store
                .read_stream(stream, 1)?
                .last()
                .map_or(0, |r| r.sequence),
        };
        let events = match decide() {
            Ok(events) => events,
            Err(refused) => return Ok(Err(refused)),
        };
        if events.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let new = events.iter().map(EventType::to_new_event).collect();
        let appended = store.append_durable(stream, head, new).await;
        match &appended {
            Ok(recorded) => {
                if heads.len() >= self.capacity && !heads.contains_key(stream) {
                    heads.clear();
                }
                heads.insert(stream.to_string(), head + recorded.len() as u64);
            }
            // A failed append leaves the head unknown: it is read again next time.
            Err(_) => {
                heads.remove(stream);
            }
        }
        appended.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::eventstore::memory::MemoryStore;

    /// Version 2 of a test event: `name` was called `title` in version 1.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Renamed {
        name: String,
    }

    impl EventType for Renamed {
        const VERSION: u32 = 2;

        fn type_name(&self) -> &'static str {
            "Renamed"
        }

        fn owns(type_name: &str) -> bool {
            type_name == "Renamed"
        }

        fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
            Renamed::deserialize(data)
        }

        fn upcast(_: &str, version: u32, mut data: Value) -> Result<Value, String> {
            match version {
                1 => {
                    let title = data["title"].take();
                    Ok(serde_json::json!({ "name": title }))
                }
                _ => Ok(data),
            }
        }
    }

    fn record(version: u32, data: Value, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            stream: "s".into(),
            sequence: 1,
            event_type: event_type.into(),
            schema_version: version,
            recorded_at: 0.0,
            data,
        }
    }

    #[test]
    fn older_payloads_are_upcast_and_newer_ones_refused() {
        let current = Renamed { name: "a".into() };
        let new = current.to_new_event();
        assert_eq!(new.schema_version, 2);
        assert_eq!(
            Renamed::from_record(&record(2, new.data, "Renamed")),
            Some(current.clone())
        );
        assert_eq!(
            Renamed::from_record(&record(1, serde_json::json!({"title": "a"}), "Renamed")),
            Some(current)
        );
        assert_eq!(
            Renamed::from_record(&record(3, serde_json::json!({"name": "a"}), "Renamed")),
            None
        );
        assert_eq!(
            Renamed::from_record(&record(2, serde_json::json!({"name": "a"}), "Other")),
            None
        );
    }

    #[test]
    fn the_writer_remembers_heads_and_folds_read_them_back() {
        let store = MemoryStore::default();
        let writer = StreamWriter::new(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for (stream, name) in [("s", "a"), ("t", "b"), ("s", "c")] {
                let decided = || Ok::<_, ()>(vec![Renamed { name: name.into() }]);
                let recorded = writer.append(&store, stream, decided).await.unwrap();
                assert_eq!(recorded.unwrap().len(), 1);
            }
            let refused = writer
                .append(&store, "s", || Err::<Vec<Renamed>, _>("no"))
                .await
                .unwrap();
            assert_eq!(refused, Err("no"));
        });
        let mut names = Vec::new();
        let last = fold_stream(&store, "s", &mut names, |n, e: &Renamed| {
            n.push(e.name.clone())
        })
        .unwrap();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(last, 2);
    }
}
