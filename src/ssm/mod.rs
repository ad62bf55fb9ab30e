//! SSM Parameter Store: parameters with their versions, event-sourced in one stream per account
//! and region (`ssm:<account>:<region>`). CloudFormation resolves `AWS::SSM::Parameter::Value<…>`
//! parameters and CodeBuild `PARAMETER_STORE` variables from it.
//!
//! # LIMITATIONS
//! - Served: PutParameter, GetParameter, GetParameters, GetParametersByPath, DeleteParameter,
//!   DeleteParameters, DescribeParameters, GetParameterHistory; the other operations answer a
//!   clear error naming them.
//! - `SecureString` values are stored as given, not encrypted (no KMS): `WithDecryption` makes no
//!   difference. Labels, policies and the Advanced tier's extras are not kept; a parameter keeps
//!   its last 100 versions, as on AWS.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of parameter streams.
pub const STREAM_PREFIX: &str = "ssm:";

/// How many versions a parameter keeps (AWS's limit).
pub const MAX_VERSIONS: usize = 100;

/// How many parameters an account may have in a region (the Standard tier's quota).
pub const MAX_PARAMETERS: usize = 10_000;

/// One version of a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    /// The value.
    pub value: String,
    /// Its number, from 1.
    pub version: u64,
    /// When it was put.
    pub modified: f64,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The pattern values must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// `text` or `aws:ec2:image`.
    #[serde(default = "text_type")]
    pub data_type: String,
}

fn text_type() -> String {
    "text".into()
}

/// A parameter: its versions, oldest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Parameter {
    /// Its versions (the last is the current one).
    pub versions: Vec<Version>,
}

impl Parameter {
    /// Its current version.
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }
}

/// The ARN of a parameter.
pub fn arn(account: &str, region: &str, name: &str) -> String {
    let path = name.strip_prefix('/').unwrap_or(name);
    format!("arn:aws:ssm:{region}:{account}:parameter/{path}")
}

/// A version as `Parameter` on the wire.
pub fn to_wire(
    account: &str,
    region: &str,
    name: &str,
    v: &Version,
    selector: Option<&str>,
) -> Value {
    let mut out = json!({
        "Name": name,
        "Type": v.kind,
        "Value": v.value,
        "Version": v.version,
        "LastModifiedDate": v.modified,
        "ARN": arn(account, region, name),
        "DataType": v.data_type,
    });
    if let Some(s) = selector {
        out["Selector"] = s.into();
    }
    out
}

/// What can happen to a region's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParameterEvent {
    /// PutParameter: a new version.
    Put {
        /// The parameter.
        name: String,
        /// The version.
        version: Version,
    },
    /// DeleteParameter(s).
    Deleted(Vec<String>),
}

impl EventType for ParameterEvent {
    fn type_name(&self) -> &'static str {
        "SsmParameterEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "SsmParameterEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        ParameterEvent::deserialize(data)
    }
}

/// A region's parameters, by name.
pub type RegionParameters = BTreeMap<String, Parameter>;

fn fold(parameters: &mut RegionParameters, event: ParameterEvent) {
    match event {
        ParameterEvent::Put { name, version } => {
            let p = parameters.entry(name).or_default();
            p.versions.push(version);
            if p.versions.len() > MAX_VERSIONS {
                p.versions.remove(0);
            }
        }
        ParameterEvent::Deleted(names) => {
            for name in names {
                parameters.remove(&name);
            }
        }
    }
}

/// The Parameter Store.
pub struct ParameterStore {
    /// The parameters.
    pub parameters: Regional<ParameterEvent, RegionParameters>,
}

crate::regional::regional_projection!(ParameterStore, parameters);

impl ParameterStore {
    /// None yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        ParameterStore {
            parameters: Regional::new(log, STREAM_PREFIX, "ssm", fold),
        }
    }

    /// A parameter's current value (`name`, or `name:version`).
    pub fn value(&self, account: &str, region: &str, name: &str) -> Option<String> {
        let (name, version) = match name.rsplit_once(':') {
            Some((n, v)) if v.parse::<u64>().is_ok() => (n, v.parse::<u64>().ok()),
            _ => (name, None),
        };
        self.parameters.read(account, region, |all| {
            let p = all.get(name)?;
            match version {
                Some(v) => p.versions.iter().find(|x| x.version == v),
                None => p.current(),
            }
            .map(|v| v.value.clone())
        })
    }
}

/// The Parameter Store as CodeBuild reads `PARAMETER_STORE` variables.
pub struct BuildParameters(pub Arc<ParameterStore>);

impl crate::codebuild::port::ParameterLookup for BuildParameters {
    fn value(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.0.value(account, region, name)
    }
}
