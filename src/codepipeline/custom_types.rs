//! Custom action types (CreateCustomActionType), event-sourced: one stream per type,
//! `actiontype:<account>:<region>:<category>:<provider>:<version>`. [`handle`] decides a command
//! without I/O, [`apply`] folds its events, and [`CustomActionTypes`] holds the types of every
//! account and region for the API, the declaration checks and the job workers' polls.
//!
//! As on AWS, a deleted type is only marked deleted: its version cannot be created again with
//! another definition, and creating it again with the identical definition restores it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::ActionTypeId;
use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError, StreamWriter};

/// The prefix of custom action type streams.
pub const STREAM_PREFIX: &str = "actiontype:";

/// How many custom action types an account may have in a region (AWS's quota).
pub const MAX_PER_REGION: usize = 50;

/// One configuration property of a custom action type: the wire shape
/// `ActionConfigurationProperty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationProperty {
    /// Its name, the key in an action's `configuration`.
    pub name: String,
    /// Whether a declaration must set it.
    pub required: bool,
    /// Whether it identifies the action's entity.
    pub key: bool,
    /// Whether its value is hidden from everything but the job worker.
    pub secret: bool,
    /// Whether PollForJobs can select on it (`queryParam`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queryable: bool,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `String`, `Number` or `Boolean`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// How many artifacts an action of the type takes: the wire shape `ArtifactDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactCounts {
    /// At least.
    pub minimum_count: u32,
    /// At most.
    pub maximum_count: u32,
}

pub use super::pipeline::Tag;

/// What CreateCustomActionType defines; two creations are identical when these are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    /// Category.
    pub category: String,
    /// Provider.
    pub provider: String,
    /// Version.
    pub version: String,
    /// URL templates (`ActionTypeSettings`), by member name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Configuration properties, in declared order.
    #[serde(default)]
    pub configuration_properties: Vec<ConfigurationProperty>,
    /// Input artifacts.
    pub input_artifact_details: ArtifactCounts,
    /// Output artifacts.
    pub output_artifact_details: ArtifactCounts,
}

/// A custom action type as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomActionType {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// The definition.
    pub definition: Definition,
    /// Tags given at creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Marked deleted (DeleteCustomActionType).
    #[serde(default)]
    pub deleted: bool,
    /// Creation time, epoch seconds.
    pub created: f64,
}

/// What can happen to a custom action type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CustomTypeEvent {
    /// CreateCustomActionType (the first time, or restoring a deleted type).
    Created(Box<CustomActionType>),
    /// DeleteCustomActionType.
    Deleted,
    /// TagResource: tags added, an existing key getting the new value.
    Tagged(Vec<Tag>),
    /// UntagResource: keys removed.
    Untagged(Vec<String>),
}

impl EventType for CustomTypeEvent {
    fn type_name(&self) -> &'static str {
        "CustomActionTypeEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CustomActionTypeEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        CustomTypeEvent::deserialize(data)
    }
}

/// What can be asked of a custom action type.
#[derive(Debug, Clone)]
pub enum CustomTypeCommand {
    /// CreateCustomActionType.
    Create(Box<CustomActionType>),
    /// DeleteCustomActionType.
    Delete,
    /// TagResource.
    Tag(Vec<Tag>),
    /// UntagResource.
    Untag(Vec<String>),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomTypeRefusal {
    /// A type with this identity exists with another definition.
    Exists,
    /// This version was deleted, and the definition given is not the deleted one.
    DeletedVersion,
    /// There is no such type (or it is deleted).
    NotFound,
    /// More than [`super::pipeline::MAX_TAGS`] tags would result.
    TooManyTags,
}

/// The stream of a custom action type.
pub fn stream(
    account: &str,
    region: &str,
    category: &str,
    provider: &str,
    version: &str,
) -> String {
    format!("{STREAM_PREFIX}{account}:{region}:{category}:{provider}:{version}")
}

/// Decides what a command does to the type `current` (`None` when it was never created).
pub fn handle(
    current: Option<&CustomActionType>,
    command: CustomTypeCommand,
) -> Result<Vec<CustomTypeEvent>, CustomTypeRefusal> {
    match (command, current) {
        (CustomTypeCommand::Create(new), None) => Ok(vec![CustomTypeEvent::Created(new)]),
        (CustomTypeCommand::Create(new), Some(old)) => {
            let identical = new.definition == old.definition;
            match (old.deleted, identical) {
                // Created again as it is: nothing changes, the existing type is the answer.
                (false, true) => Ok(vec![]),
                (false, false) => Err(CustomTypeRefusal::Exists),
                (true, true) => Ok(vec![CustomTypeEvent::Created(new)]),
                (true, false) => Err(CustomTypeRefusal::DeletedVersion),
            }
        }
        (CustomTypeCommand::Delete, Some(old)) if !old.deleted => {
            Ok(vec![CustomTypeEvent::Deleted])
        }
        (CustomTypeCommand::Delete, _) => Err(CustomTypeRefusal::NotFound),
        (CustomTypeCommand::Tag(tags), Some(old)) if !old.deleted => {
            if super::pipeline::merged(&old.tags, &tags).len() > super::pipeline::MAX_TAGS {
                return Err(CustomTypeRefusal::TooManyTags);
            }
            Ok(vec![CustomTypeEvent::Tagged(tags)])
        }
        (CustomTypeCommand::Untag(keys), Some(old)) if !old.deleted => {
            Ok(vec![CustomTypeEvent::Untagged(keys)])
        }
        (CustomTypeCommand::Tag(_) | CustomTypeCommand::Untag(_), _) => {
            Err(CustomTypeRefusal::NotFound)
        }
    }
}

/// Folds one event into the types (keyed by stream).
pub fn apply(types: &mut BTreeMap<String, CustomActionType>, stream: &str, event: CustomTypeEvent) {
    match event {
        CustomTypeEvent::Created(t) => {
            types.insert(stream.to_string(), *t);
        }
        CustomTypeEvent::Deleted => {
            if let Some(t) = types.get_mut(stream) {
                t.deleted = true;
            }
        }
        CustomTypeEvent::Tagged(tags) => {
            if let Some(t) = types.get_mut(stream) {
                t.tags = super::pipeline::merged(&t.tags, &tags);
            }
        }
        CustomTypeEvent::Untagged(keys) => {
            if let Some(t) = types.get_mut(stream) {
                t.tags.retain(|tag| !keys.contains(&tag.key));
            }
        }
    }
}

impl CustomActionType {
    /// Its identity.
    pub fn id(&self) -> ActionTypeId {
        ActionTypeId {
            category: self.definition.category.clone(),
            owner: "Custom".into(),
            provider: self.definition.provider.clone(),
            version: self.definition.version.clone(),
        }
    }

    /// The wire shape `ActionType`.
    pub fn to_wire(&self) -> Value {
        let d = &self.definition;
        let mut out = json!({
            "id": self.id(),
            "actionConfigurationProperties": d.configuration_properties,
            "inputArtifactDetails": d.input_artifact_details,
            "outputArtifactDetails": d.output_artifact_details,
        });
        if !d.settings.is_empty() {
            out["settings"] = json!(d.settings);
        }
        out
    }

    /// The ARN tags address it by.
    pub fn arn(&self) -> String {
        let d = &self.definition;
        format!(
            "arn:aws:codepipeline:{}:{}:actiontype:Custom/{}/{}/{}",
            self.region, self.account, d.category, d.provider, d.version
        )
    }

    /// One of its URL templates (`entityUrlTemplate`, `executionUrlTemplate`, …) filled in with
    /// an action's configuration (`{Config:NAME}`) and its external execution id.
    pub fn url(
        &self,
        template: &str,
        configuration: &BTreeMap<String, String>,
        external_execution_id: Option<&str>,
    ) -> Option<String> {
        let mut url = self.definition.settings.get(template)?.clone();
        for (name, value) in configuration {
            url = url.replace(&format!("{{Config:{name}}}"), value);
        }
        if let Some(id) = external_execution_id {
            url = url.replace("{ExternalExecutionId}", id);
        }
        Some(url)
    }

    /// A configuration property by name.
    pub fn property(&self, name: &str) -> Option<&ConfigurationProperty> {
        self.definition
            .configuration_properties
            .iter()
            .find(|p| p.name == name)
    }
}

/// Why a command on a custom action type did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomTypeFailure {
    /// Refused.
    Refused(CustomTypeRefusal),
    /// The account has [`MAX_PER_REGION`] types in the region already.
    Limit,
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// The custom action types of every account and region.
pub struct CustomActionTypes {
    log: Arc<dyn EventStore>,
    types: RwLock<BTreeMap<String, CustomActionType>>,
    writer: StreamWriter,
}

impl CustomActionTypes {
    /// Types from `log` (fed by [`CustomActionTypes::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        CustomActionTypes {
            log,
            types: RwLock::new(BTreeMap::new()),
            writer: StreamWriter::new(256),
        }
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if !record.stream.starts_with(STREAM_PREFIX) {
            return;
        }
        if let Some(event) = CustomTypeEvent::from_record(record) {
            apply(
                &mut self.types.write().expect("custom types lock"),
                &record.stream,
                event,
            );
        }
    }

    /// A type that is not deleted.
    pub fn live(&self, account: &str, region: &str, id: &ActionTypeId) -> Option<CustomActionType> {
        self.find(account, region, id).filter(|t| !t.deleted)
    }

    /// A type, deleted or not.
    pub fn find(&self, account: &str, region: &str, id: &ActionTypeId) -> Option<CustomActionType> {
        let key = stream(account, region, &id.category, &id.provider, &id.version);
        self.types
            .read()
            .expect("custom types lock")
            .get(&key)
            .cloned()
    }

    /// The types of an account in a region that are not deleted, in identity order.
    pub fn of(&self, account: &str, region: &str) -> Vec<CustomActionType> {
        let prefix = format!("{STREAM_PREFIX}{account}:{region}:");
        let types = self.types.read().expect("custom types lock");
        types
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, t)| !t.deleted)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Decides a command on a type and records its events; the type after, once durable.
    pub async fn execute(
        &self,
        account: &str,
        region: &str,
        id: &ActionTypeId,
        command: CustomTypeCommand,
    ) -> Result<Option<CustomActionType>, CustomTypeFailure> {
        let key = stream(account, region, &id.category, &id.provider, &id.version);
        let creates = matches!(command, CustomTypeCommand::Create(_));
        let decide = || {
            let current = self.find(account, region, id);
            let events = handle(current.as_ref(), command).map_err(CustomTypeFailure::Refused)?;
            let adds = current.is_none_or(|c| c.deleted);
            if creates
                && !events.is_empty()
                && adds
                && self.of(account, region).len() >= MAX_PER_REGION
            {
                return Err(CustomTypeFailure::Limit);
            }
            Ok(events)
        };
        let recorded = self
            .writer
            .append(self.log.as_ref(), &key, decide)
            .await
            .map_err(CustomTypeFailure::Store)??;
        recorded.iter().for_each(|r| self.apply(r));
        Ok(self.find(account, region, id))
    }
}

impl crate::checkpoint::Projection for CustomActionTypes {
    fn name(&self) -> &'static str {
        "custom_action_types"
    }

    fn apply(&self, record: &RecordedEvent) {
        CustomActionTypes::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let types = self.types.read().expect("custom types lock");
        serde_json::value::to_raw_value(&*types).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let types: BTreeMap<String, CustomActionType> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.types.write().expect("custom types lock") = types;
        Ok(())
    }

    fn clear(&self) {
        self.types.write().expect("custom types lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(version: &str, required: bool) -> CustomActionType {
        CustomActionType {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            definition: Definition {
                category: "Build".into(),
                provider: "MyBuilder".into(),
                version: version.into(),
                settings: BTreeMap::new(),
                configuration_properties: vec![ConfigurationProperty {
                    name: "Project".into(),
                    required,
                    key: true,
                    secret: false,
                    queryable: true,
                    description: None,
                    kind: None,
                }],
                input_artifact_details: ArtifactCounts {
                    minimum_count: 1,
                    maximum_count: 1,
                },
                output_artifact_details: ArtifactCounts {
                    minimum_count: 0,
                    maximum_count: 1,
                },
            },
            tags: vec![],
            deleted: false,
            created: 1.0,
        }
    }

    #[test]
    fn a_deleted_version_is_restored_only_by_its_identical_definition() {
        let mut types = BTreeMap::new();
        let s = "actiontype:x";
        let create = |t| CustomTypeCommand::Create(Box::new(t));
        for e in handle(None, create(builder("1", true))).unwrap() {
            apply(&mut types, s, e);
        }
        assert_eq!(handle(types.get(s), create(builder("1", true))), Ok(vec![]));
        assert_eq!(
            handle(types.get(s), create(builder("1", false))),
            Err(CustomTypeRefusal::Exists)
        );
        for e in handle(types.get(s), CustomTypeCommand::Delete).unwrap() {
            apply(&mut types, s, e);
        }
        assert!(types[s].deleted);
        assert_eq!(
            handle(types.get(s), CustomTypeCommand::Delete),
            Err(CustomTypeRefusal::NotFound)
        );
        assert_eq!(
            handle(types.get(s), create(builder("1", false))),
            Err(CustomTypeRefusal::DeletedVersion)
        );
        for e in handle(types.get(s), create(builder("1", true))).unwrap() {
            apply(&mut types, s, e);
        }
        assert!(!types[s].deleted);
    }
}
