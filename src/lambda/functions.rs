//! Lambda functions as events, decided and folded without I/O: one stream per function,
//! `lambda:<account>:<region>:function:<name>`. Each event carries the function's whole
//! configuration after the change (its code is stored beside the log, by digest).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::EventType;

/// The prefix of function streams.
pub const STREAM_PREFIX: &str = "lambda:";

/// The stream of a function.
pub fn stream(account: &str, region: &str, name: &str) -> String {
    format!("{STREAM_PREFIX}{account}:{region}:function:{name}")
}

/// A function's configuration, as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name.
    pub name: String,
    /// `python3.12`, `nodejs20.x`, `provided.al2023`, …
    pub runtime: String,
    /// The execution role's ARN.
    pub role: String,
    /// `module.function` (python), `file.function` (node); unused by `provided.*`.
    pub handler: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Seconds an invocation may run.
    pub timeout: u32,
    /// Memory in MB (reported, not enforced).
    pub memory_size: u32,
    /// Environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// The code's SHA-256, base64 (as Lambda shows it).
    pub code_sha256: String,
    /// The code's SHA-256, hex: the name of its file in the code store.
    pub code_digest: String,
    /// The code's size in bytes.
    pub code_size: u64,
    /// Architectures.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Ephemeral storage in MB (reported, not enforced).
    #[serde(default = "default_ephemeral")]
    pub ephemeral_storage: u32,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When it last changed, epoch seconds.
    pub last_modified: f64,
    /// Changes with every change of code or configuration.
    pub revision_id: String,
}

fn default_ephemeral() -> u32 {
    512
}

impl Function {
    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )
    }

    /// The wire shape `FunctionConfiguration`.
    pub fn configuration(&self) -> Value {
        let modified =
            chrono::DateTime::from_timestamp_millis((self.last_modified * 1000.0) as i64)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                .to_string();
        let mut out = json!({
            "FunctionName": self.name,
            "FunctionArn": self.arn(),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": self.timeout,
            "MemorySize": self.memory_size,
            "LastModified": modified,
            "CodeSha256": self.code_sha256,
            "Version": "$LATEST",
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": self.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": self.architectures,
            "EphemeralStorage": {"Size": self.ephemeral_storage},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", self.name)},
        });
        if !self.environment.is_empty() {
            out["Environment"] = json!({ "Variables": self.environment });
        }
        out
    }
}

/// What can happen to a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FunctionEvent {
    /// CreateFunction.
    Created(Box<Function>),
    /// UpdateFunctionCode or UpdateFunctionConfiguration: the function after the change.
    Updated(Box<Function>),
    /// DeleteFunction.
    Deleted,
}

impl EventType for FunctionEvent {
    fn type_name(&self) -> &'static str {
        "LambdaFunctionEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "LambdaFunctionEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        FunctionEvent::deserialize(data)
    }
}

/// What can be asked of a function.
#[derive(Debug, Clone)]
pub enum FunctionCommand {
    /// CreateFunction.
    Create(Box<Function>),
    /// An update: the function after it (computed from the current one), refused when the
    /// caller's expected revision is not the current one.
    Update {
        /// The function after the change.
        function: Box<Function>,
        /// `RevisionId` the caller expects.
        expected_revision: Option<String>,
    },
    /// DeleteFunction.
    Delete,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionRefusal {
    /// CreateFunction of a name in use.
    Exists,
    /// No such function.
    NotFound,
    /// The expected revision is not the current one.
    RevisionMismatch,
}

/// Decides what a command does to the function `current`.
pub fn handle(
    current: Option<&Function>,
    command: FunctionCommand,
) -> Result<Vec<FunctionEvent>, FunctionRefusal> {
    match (command, current) {
        (FunctionCommand::Create(_), Some(_)) => Err(FunctionRefusal::Exists),
        (FunctionCommand::Create(f), None) => Ok(vec![FunctionEvent::Created(f)]),
        (_, None) => Err(FunctionRefusal::NotFound),
        (
            FunctionCommand::Update {
                function,
                expected_revision,
            },
            Some(current),
        ) => {
            if expected_revision.is_some_and(|r| r != current.revision_id) {
                return Err(FunctionRefusal::RevisionMismatch);
            }
            Ok(vec![FunctionEvent::Updated(function)])
        }
        (FunctionCommand::Delete, Some(_)) => Ok(vec![FunctionEvent::Deleted]),
    }
}

/// Folds one event into the functions (keyed by stream).
pub fn apply(functions: &mut BTreeMap<String, Function>, stream: &str, event: FunctionEvent) {
    match event {
        FunctionEvent::Created(f) | FunctionEvent::Updated(f) => {
            functions.insert(stream.to_string(), *f);
        }
        FunctionEvent::Deleted => {
            functions.remove(stream);
        }
    }
}
