//! Connections (`codestar-connections` and `codeconnections`, the same resources under two
//! service names, as on AWS): CreateConnection, GetConnection, ListConnections,
//! DeleteConnection and tags, event-sourced in one stream per account and region
//! (`connections:<account>:<region>`). A connection here stands for the repositories under the
//! configured `git_repos_dir`: it is `AVAILABLE` as soon as it is created, with no handshake.
//!
//! # LIMITATIONS
//! - There is no provider to authorise: every connection is `AVAILABLE` at once, and its
//!   `ProviderType` only names what the pipeline's output variables report.
//! - Hosts, repository links and sync configurations are not served: those operations answer a
//!   clear error naming them.

pub mod api;
pub mod pull_requests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError};

/// The prefix of connection streams.
pub const STREAM_PREFIX: &str = "connections:";

/// How many connections an account may have in a region (AWS's quota).
pub const MAX_CONNECTIONS: usize = 250;

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Its key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Its value.
    #[serde(rename = "Value")]
    pub value: String,
}

/// A connection as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Its ARN, in the form of the service it was created through.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// `GitHub`, `GitLab`, `Bitbucket`, …
    pub provider_type: String,
    /// The host it belongs to, if one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_arn: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl Connection {
    /// Its id: the last part of its ARN, the same under both service names.
    pub fn id(&self) -> &str {
        id_of(&self.arn)
    }

    /// The wire shape `Connection`.
    pub fn to_wire(&self, account: &str) -> Value {
        let mut out = serde_json::json!({
            "ConnectionName": self.name,
            "ConnectionArn": self.arn,
            "ProviderType": self.provider_type,
            "OwnerAccountId": account,
            "ConnectionStatus": "AVAILABLE",
        });
        if let Some(host) = &self.host_arn {
            out["HostArn"] = host.clone().into();
        }
        out
    }
}

/// The id in a connection ARN (`arn:aws:codestar-connections:…:connection/ID`).
pub fn id_of(arn: &str) -> &str {
    arn.rsplit_once("connection/").map_or("", |(_, id)| id)
}

/// What can happen to the connections of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConnectionEvent {
    /// CreateConnection.
    Created(Box<Connection>),
    /// DeleteConnection (by id).
    Deleted(String),
    /// TagResource (by id): tags added, an existing key getting the new value.
    Tagged(String, Vec<Tag>),
    /// UntagResource (by id): keys removed.
    Untagged(String, Vec<String>),
}

impl EventType for ConnectionEvent {
    fn type_name(&self) -> &'static str {
        "ConnectionEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "ConnectionEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        ConnectionEvent::deserialize(data)
    }
}

/// A region's connections, by id.
pub type RegionConnections = BTreeMap<String, Connection>;

/// Folds one event into a region's connections.
pub fn apply(connections: &mut RegionConnections, event: ConnectionEvent) {
    match event {
        ConnectionEvent::Created(c) => {
            connections.insert(c.id().to_string(), *c);
        }
        ConnectionEvent::Deleted(id) => {
            connections.remove(&id);
        }
        ConnectionEvent::Tagged(id, tags) => {
            if let Some(c) = connections.get_mut(&id) {
                for tag in tags {
                    c.tags.retain(|t| t.key != tag.key);
                    c.tags.push(tag);
                }
            }
        }
        ConnectionEvent::Untagged(id, keys) => {
            if let Some(c) = connections.get_mut(&id) {
                c.tags.retain(|t| !keys.contains(&t.key));
            }
        }
    }
}

/// Why a change did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionFailure {
    /// No such connection.
    NotFound(String),
    /// The region has [`MAX_CONNECTIONS`] already.
    Limit,
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// The connections of every account and region.
pub struct Connections {
    regions: crate::regional::Regional<ConnectionEvent, RegionConnections>,
}

impl Connections {
    /// Connections from `log` (fed by [`Connections::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Connections {
            regions: crate::regional::Regional::new(log, STREAM_PREFIX, "connections", apply),
        }
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        self.regions.apply(record);
    }

    /// A connection, by its ARN under either service name.
    pub fn get(&self, account: &str, region: &str, arn: &str) -> Option<Connection> {
        self.regions
            .read(account, region, |all| all.get(id_of(arn)).cloned())
    }

    /// The connections of an account in a region, by id.
    pub fn list(&self, account: &str, region: &str) -> Vec<Connection> {
        self.regions
            .read(account, region, |all| all.values().cloned().collect())
    }

    /// Records an event decided on the region's connections as they stand.
    pub async fn record(
        &self,
        account: &str,
        region: &str,
        decide: impl FnOnce(&RegionConnections) -> Result<ConnectionEvent, ConnectionFailure>,
    ) -> Result<(), ConnectionFailure> {
        self.regions
            .record(account, region, |all| decide(all).map(|e| vec![e]))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                crate::regional::RegionalFailure::Refused(f) => f,
                crate::regional::RegionalFailure::Store(e) => ConnectionFailure::Store(e),
            })
    }
}

crate::regional::regional_projection!(Connections, regions);

/// The connections as the pipelines' source actions read them.
pub struct SourceConnections(pub Arc<Connections>);

impl crate::codepipeline::actions::ConnectionLookup for SourceConnections {
    fn provider_type(&self, account: &str, region: &str, arn: &str) -> Option<String> {
        self.0.get(account, region, arn).map(|c| c.provider_type)
    }
}
