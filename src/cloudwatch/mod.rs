//! The CloudWatch alarms a pipeline's CloudWatchAlarm rules watch: PutMetricAlarm,
//! DescribeAlarms, SetAlarmState and DeleteAlarms, event-sourced (one stream per account and
//! region, `cloudwatch:<account>:<region>`, so that a DeleteAlarms is all or nothing), and served
//! in the three forms CloudWatch's clients send: Smithy RPC v2 CBOR (the Rust SDK, newer
//! botocore), JSON 1.0 (botocore today) and the query protocol (older clients).
//!
//! # LIMITATIONS
//! - No metrics are stored and no alarm is evaluated: an alarm is `INSUFFICIENT_DATA` when it is
//!   created and changes state only by SetAlarmState (`aws cloudwatch set-alarm-state`), and its
//!   actions are not run.
//! - Composite alarms, metric data, dashboards, insight rules, anomaly detectors and the alarm
//!   history are not served: those operations answer a clear error naming them.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError};

/// The prefix of alarm streams.
pub const STREAM_PREFIX: &str = "cloudwatch:";

/// How many alarms an account may have in a region here.
pub const MAX_ALARMS: usize = 10_000;

/// A metric alarm as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its name.
    pub name: String,
    /// Its configuration: PutMetricAlarm's input without the name and tags.
    pub configuration: Value,
    /// Its state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// Why it is in that state.
    pub reason: String,
    /// The reason's data (JSON), as SetAlarmState gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_data: Option<String>,
    /// When its state was last set.
    pub state_updated: f64,
    /// When its state last changed value.
    pub state_transitioned: f64,
    /// When its configuration was last put.
    pub configured: f64,
}

/// What can happen to the alarms of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlarmEvent {
    /// PutMetricAlarm: created, or its configuration replaced (the state kept).
    Put(Box<Alarm>),
    /// SetAlarmState.
    StateSet {
        /// The alarm.
        name: String,
        /// The new state.
        state: String,
        /// Why.
        reason: String,
        /// The reason's data.
        reason_data: Option<String>,
        /// When.
        at: f64,
    },
    /// DeleteAlarms.
    Deleted(Vec<String>),
}

impl EventType for AlarmEvent {
    fn type_name(&self) -> &'static str {
        "CloudWatchAlarmEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CloudWatchAlarmEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        AlarmEvent::deserialize(data)
    }
}

/// The alarms of one account and region, by name.
pub type RegionAlarms = BTreeMap<String, Alarm>;

/// Folds one event into a region's alarms.
pub fn apply(alarms: &mut RegionAlarms, event: AlarmEvent) {
    match event {
        AlarmEvent::Put(alarm) => {
            let mut alarm = *alarm;
            if let Some(old) = alarms.get(&alarm.name) {
                // An update replaces the configuration; the state stays as it was.
                alarm.state.clone_from(&old.state);
                alarm.reason.clone_from(&old.reason);
                alarm.reason_data.clone_from(&old.reason_data);
                alarm.state_updated = old.state_updated;
                alarm.state_transitioned = old.state_transitioned;
            }
            alarms.insert(alarm.name.clone(), alarm);
        }
        AlarmEvent::StateSet {
            name,
            state,
            reason,
            reason_data,
            at,
        } => {
            if let Some(alarm) = alarms.get_mut(&name) {
                if alarm.state != state {
                    alarm.state_transitioned = at;
                }
                alarm.state = state;
                alarm.reason = reason;
                alarm.reason_data = reason_data;
                alarm.state_updated = at;
            }
        }
        AlarmEvent::Deleted(names) => {
            for name in names {
                alarms.remove(&name);
            }
        }
    }
}

impl Alarm {
    /// The wire shape `MetricAlarm`.
    pub fn to_wire(&self, account: &str, region: &str) -> Value {
        let mut out = match &self.configuration {
            Value::Object(c) => c.clone(),
            _ => Default::default(),
        };
        out.remove("Tags");
        let fields = json!({
            "AlarmName": self.name,
            "AlarmArn": arn(account, region, &self.name),
            "AlarmConfigurationUpdatedTimestamp": self.configured,
            "StateValue": self.state,
            "StateReason": self.reason,
            "StateReasonData": self.reason_data,
            "StateUpdatedTimestamp": self.state_updated,
            "StateTransitionedTimestamp": self.state_transitioned,
        });
        for (k, v) in fields.as_object().into_iter().flatten() {
            if !v.is_null() {
                out.insert(k.clone(), v.clone());
            }
        }
        out.entry("ActionsEnabled").or_insert(Value::Bool(true));
        for list in [
            "OKActions",
            "AlarmActions",
            "InsufficientDataActions",
            "Dimensions",
        ] {
            out.entry(list).or_insert(json!([]));
        }
        Value::Object(out)
    }
}

/// An alarm's ARN.
pub fn arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

/// Why a change to the alarms did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmFailure {
    /// No alarm has this name (SetAlarmState), or one of these (DeleteAlarms).
    NotFound(String),
    /// The region has [`MAX_ALARMS`] alarms already.
    Limit,
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// The alarms of every account and region.
pub struct Alarms {
    regions: crate::regional::Regional<AlarmEvent, RegionAlarms>,
    /// Counts the changes, so that waiters learn of each.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Alarms {
    /// Alarms from `log` (fed by [`Alarms::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Alarms {
            regions: crate::regional::Regional::new(log, STREAM_PREFIX, "cloudwatch_alarms", apply),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if self.regions.apply(record) {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// A subscription to changes: it sees a new value after each.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// One alarm.
    pub fn get(&self, account: &str, region: &str, name: &str) -> Option<Alarm> {
        self.regions
            .read(account, region, |alarms| alarms.get(name).cloned())
    }

    /// The alarms of an account in a region, by name, that `keep` selects.
    pub fn list(&self, account: &str, region: &str, keep: impl Fn(&Alarm) -> bool) -> Vec<Alarm> {
        self.regions.read(account, region, |alarms| {
            alarms.values().filter(|a| keep(a)).cloned().collect()
        })
    }

    /// Records an event decided on the region's alarms as they stand.
    async fn record(
        &self,
        account: &str,
        region: &str,
        decide: impl FnOnce(&RegionAlarms) -> Result<Option<AlarmEvent>, AlarmFailure>,
    ) -> Result<(), AlarmFailure> {
        let recorded = self
            .regions
            .record(account, region, |alarms| {
                decide(alarms).map(|e| e.into_iter().collect())
            })
            .await
            .map_err(|e| match e {
                crate::regional::RegionalFailure::Refused(f) => f,
                crate::regional::RegionalFailure::Store(e) => AlarmFailure::Store(e),
            })?;
        if !recorded.is_empty() {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// PutMetricAlarm.
    pub async fn put(&self, account: &str, region: &str, alarm: Alarm) -> Result<(), AlarmFailure> {
        self.record(account, region, |alarms| {
            if !alarms.contains_key(&alarm.name) && alarms.len() >= MAX_ALARMS {
                return Err(AlarmFailure::Limit);
            }
            Ok(Some(AlarmEvent::Put(Box::new(alarm))))
        })
        .await
    }

    /// SetAlarmState.
    pub async fn set_state(
        &self,
        account: &str,
        region: &str,
        name: &str,
        state: &str,
        reason: &str,
        reason_data: Option<String>,
    ) -> Result<(), AlarmFailure> {
        self.record(account, region, |alarms| {
            if !alarms.contains_key(name) {
                return Err(AlarmFailure::NotFound(name.to_string()));
            }
            Ok(Some(AlarmEvent::StateSet {
                name: name.to_string(),
                state: state.to_string(),
                reason: reason.to_string(),
                reason_data,
                at: crate::aws::now_epoch(),
            }))
        })
        .await
    }

    /// DeleteAlarms: all of them, or none when one does not exist.
    pub async fn delete(
        &self,
        account: &str,
        region: &str,
        names: Vec<String>,
    ) -> Result<(), AlarmFailure> {
        self.record(account, region, |alarms| {
            if let Some(missing) = names.iter().find(|n| !alarms.contains_key(*n)) {
                return Err(AlarmFailure::NotFound(missing.clone()));
            }
            Ok((!names.is_empty()).then_some(AlarmEvent::Deleted(names)))
        })
        .await
    }
}

impl crate::checkpoint::Projection for Alarms {
    fn name(&self) -> &'static str {
        self.regions.name()
    }

    fn apply(&self, record: &RecordedEvent) {
        Alarms::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        self.regions.export()
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        self.regions.restore(json)
    }

    fn clear(&self) {
        self.regions.clear();
    }
}

/// The alarms as the pipelines' CloudWatchAlarm rules read them.
pub struct RuleAlarms(pub Arc<Alarms>);

impl crate::codepipeline::rules::AlarmStates for RuleAlarms {
    fn state(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.0.get(account, region, name).map(|a| a.state)
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, state: &str) -> Alarm {
        Alarm {
            name: name.into(),
            configuration: json!({"MetricName": "Errors"}),
            state: state.into(),
            reason: "r".into(),
            reason_data: None,
            state_updated: 1.0,
            state_transitioned: 1.0,
            configured: 1.0,
        }
    }

    #[test]
    fn an_update_keeps_the_state_and_a_state_change_dates_its_transition() {
        let mut alarms = RegionAlarms::new();
        apply(
            &mut alarms,
            AlarmEvent::Put(Box::new(alarm("a", "INSUFFICIENT_DATA"))),
        );
        let set = |state: &str, at: f64| AlarmEvent::StateSet {
            name: "a".into(),
            state: state.into(),
            reason: "why".into(),
            reason_data: None,
            at,
        };
        apply(&mut alarms, set("ALARM", 5.0));
        apply(&mut alarms, set("ALARM", 6.0));
        assert_eq!(alarms["a"].state_transitioned, 5.0);
        assert_eq!(alarms["a"].state_updated, 6.0);
        let mut updated = alarm("a", "INSUFFICIENT_DATA");
        updated.configured = 7.0;
        apply(&mut alarms, AlarmEvent::Put(Box::new(updated)));
        assert_eq!(alarms["a"].state, "ALARM");
        assert_eq!(alarms["a"].configured, 7.0);
        apply(&mut alarms, AlarmEvent::Deleted(vec!["a".into()]));
        assert!(alarms.is_empty());
    }
}
