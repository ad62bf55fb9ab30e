//! Resources kept one stream per account and region (`<prefix><account>:<region>`), for the
//! small services whose changes may touch several resources at once (DeleteAlarms) and whose
//! resources are few: each region's state is a value folded from its stream, decided on and
//! recorded through one writer, and checkpointed whole.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError, StreamWriter};

/// Why a change was not recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum RegionalFailure<F> {
    /// The decision refused it.
    Refused(F),
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// The state of every account and region, each folded from its own stream.
pub struct Regional<E, R> {
    prefix: &'static str,
    name: &'static str,
    log: Arc<dyn EventStore>,
    regions: RwLock<BTreeMap<String, R>>,
    writer: StreamWriter,
    fold: fn(&mut R, E),
    /// Told after every change this process records, for those who wait for a state.
    changed: tokio::sync::Notify,
}

impl<E: EventType, R: Default + Clone + Serialize + DeserializeOwned + Send + Sync> Regional<E, R> {
    /// Empty state of streams named `prefix…` in `log`, checkpointed as `name`, folded by `fold`.
    pub fn new(
        log: Arc<dyn EventStore>,
        prefix: &'static str,
        name: &'static str,
        fold: fn(&mut R, E),
    ) -> Self {
        Regional {
            prefix,
            name,
            log,
            regions: RwLock::new(BTreeMap::new()),
            writer: StreamWriter::new(256),
            fold,
            changed: tokio::sync::Notify::new(),
        }
    }

    fn stream(&self, account: &str, region: &str) -> String {
        format!("{}{account}:{region}", self.prefix)
    }

    /// Folds one event of the log; whether it was one of these streams'.
    pub fn apply(&self, record: &RecordedEvent) -> bool {
        if !record.stream.starts_with(self.prefix) {
            return false;
        }
        if let Some(event) = E::from_record(record) {
            let mut regions = self.regions.write().expect("regional lock");
            (self.fold)(regions.entry(record.stream.clone()).or_default(), event);
        }
        true
    }

    /// Reads a region's state (empty when nothing happened there).
    pub fn read<T>(&self, account: &str, region: &str, f: impl FnOnce(&R) -> T) -> T {
        let regions = self.regions.read().expect("regional lock");
        match regions.get(&self.stream(account, region)) {
            Some(state) => f(state),
            None => f(&R::default()),
        }
    }

    /// Resolves at the next change recorded after it is first polled (see
    /// [`tokio::sync::Notify::notified`]): create it, look at the state, then await it.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The accounts and regions that have state.
    pub fn keys(&self) -> Vec<(String, String)> {
        let regions = self.regions.read().expect("regional lock");
        regions
            .keys()
            .filter_map(|k| k.strip_prefix(self.prefix)?.split_once(':'))
            .map(|(a, r)| (a.to_string(), r.to_string()))
            .collect()
    }

    /// Records the events `decide` makes of the region's state as it stands; resolves once
    /// they are durable and folded in.
    pub async fn record<F>(
        &self,
        account: &str,
        region: &str,
        decide: impl FnOnce(&R) -> Result<Vec<E>, F>,
    ) -> Result<Vec<RecordedEvent>, RegionalFailure<F>> {
        let key = self.stream(account, region);
        let recorded = self
            .writer
            .append(self.log.as_ref(), &key, || {
                self.read(account, region, decide)
                    .map_err(RegionalFailure::Refused)
            })
            .await
            .map_err(RegionalFailure::Store)??;
        for r in &recorded {
            self.apply(r);
        }
        self.changed.notify_waiters();
        Ok(recorded)
    }
}

impl<E: EventType, R: Default + Clone + Serialize + DeserializeOwned + Send + Sync>
    crate::checkpoint::Projection for Regional<E, R>
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn apply(&self, record: &RecordedEvent) {
        Regional::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let regions = self.regions.read().expect("regional lock");
        serde_json::value::to_raw_value(&*regions).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let regions: BTreeMap<String, R> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.regions.write().expect("regional lock") = regions;
        Ok(())
    }

    fn clear(&self) {
        self.regions.write().expect("regional lock").clear();
    }
}

/// Makes a type whose state is the `Regional` in one of its fields a checkpointed projection:
/// everything it holds is that field's.
macro_rules! regional_projection {
    ($ty:ty, $field:ident) => {
        impl $crate::checkpoint::Projection for $ty {
            fn name(&self) -> &'static str {
                $crate::checkpoint::Projection::name(&self.$field)
            }

            fn apply(&self, record: &$crate::eventstore::RecordedEvent) {
                self.$field.apply(record);
            }

            fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
                $crate::checkpoint::Projection::export(&self.$field)
            }

            fn restore(&self, json: &str) -> Result<(), String> {
                $crate::checkpoint::Projection::restore(&self.$field, json)
            }

            fn clear(&self) {
                $crate::checkpoint::Projection::clear(&self.$field);
            }
        }
    };
}
pub(crate) use regional_projection;
