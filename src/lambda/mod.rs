//! AWS Lambda on the same endpoint (REST-JSON, `lambda` in the SigV4 scope), as far as pipelines
//! and their developers need it: functions are created, updated, listed, deleted and invoked,
//! and they run **here**, as local processes (see [`runtime`]).
//!
//! Functions are event-sourced (one stream per function); their code is stored beside the log
//! under `<data dir>/lambda/code/<sha256>.zip` and unpacked once per digest. Every invocation's
//! output is kept under `<data dir>/lambda/logs/` (the last 100 per function), readable with
//! `codepipeline-local logs`.
//!
//! # LIMITATIONS
//! - Runtimes: python3.x with the host's `python3`, nodejs with the host's `node`, and
//!   `provided.*` with the code's own `bootstrap`; others are refused at invocation. There is no
//!   container runtime: container images (`PackageType: Image`), layers, memory limits and
//!   architectures are not applied (the memory and architecture are recorded), and the function
//!   runs with the server's user and the host's tools and libraries.
//! - Served: CreateFunction (ZipFile, or S3Bucket/S3Key from the pipelines' S3), GetFunction,
//!   GetFunctionConfiguration, ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration,
//!   DeleteFunction, Invoke (RequestResponse, Event, DryRun; `LogType: Tail`). Versions and
//!   aliases, permissions, event source mappings, URLs and the other operations answer
//!   `NotImplementedException` naming the operation. Event invocations are not retried and have
//!   no destinations.
//! - The role is recorded, never assumed: functions get fixed test credentials, and
//!   `AWS_ENDPOINT_URL` pointing at this endpoint so that the SDKs in them call back here.
//! - Functions run code on this machine: they follow the builds' rule (`run_builds`, and no
//!   listening beyond loopback unless `allow_builds_on_non_loopback`).

pub mod api;
pub mod functions;
pub mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use self::functions::{Function, FunctionCommand, FunctionEvent, FunctionRefusal, STREAM_PREFIX};
use self::runtime::{Invocation, Ran, Runtime};
use crate::codepipeline::actions::archive::ZipLimits;
use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError, StreamWriter};

/// The path under which a function's code is downloaded (GetFunction's `Code.Location`).
pub const CODE_PREFIX: &str = "/_codepipeline_local/lambda-code/";

/// How many invocation logs are kept per function.
const LOGS_PER_FUNCTION: usize = 100;

/// Why a command on a function did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum LambdaFailure {
    /// Refused.
    Refused(FunctionRefusal),
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// Lambda: functions, their code, their instances.
pub struct Lambda {
    log: Arc<dyn EventStore>,
    functions: RwLock<BTreeMap<String, Function>>,
    writer: StreamWriter,
    dir: PathBuf,
    /// Whether functions may run (`run_builds`).
    pub enabled: bool,
    /// What function code may unpack to.
    pub limits: ZipLimits,
    /// The running instances.
    pub runtime: Runtime,
}

impl Lambda {
    /// Lambda keeping its files in `dir`, functions from `log` (fed by [`Lambda::apply`]).
    pub fn new(
        log: Arc<dyn EventStore>,
        dir: PathBuf,
        enabled: bool,
        limits: ZipLimits,
        idle: std::time::Duration,
    ) -> Self {
        Lambda {
            log,
            functions: RwLock::new(BTreeMap::new()),
            writer: StreamWriter::new(1024),
            runtime: Runtime::new(dir.join("runtime"), idle),
            dir,
            enabled,
            limits,
        }
    }

    /// The directory of Lambda's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if !record.stream.starts_with(STREAM_PREFIX) {
            return;
        }
        if let Some(event) = FunctionEvent::from_record(record) {
            functions::apply(
                &mut self.functions.write().expect("lambda lock"),
                &record.stream,
                event,
            );
        }
    }

    /// A function by account, region and name.
    pub fn function(&self, account: &str, region: &str, name: &str) -> Option<Function> {
        self.functions
            .read()
            .expect("lambda lock")
            .get(&functions::stream(account, region, name))
            .cloned()
    }

    /// The functions of an account in a region, by name.
    pub fn functions_of(&self, account: &str, region: &str) -> Vec<Function> {
        let prefix = format!("{STREAM_PREFIX}{account}:{region}:function:");
        let functions = self.functions.read().expect("lambda lock");
        functions
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Decides a command on a function and records its events; the function after, once durable.
    pub async fn execute(
        &self,
        account: &str,
        region: &str,
        name: &str,
        command: FunctionCommand,
    ) -> Result<Option<Function>, LambdaFailure> {
        let stream = functions::stream(account, region, name);
        let changes = !matches!(command, FunctionCommand::Create(_));
        let decide = || functions::handle(self.function(account, region, name).as_ref(), command);
        let recorded = self
            .writer
            .append(self.log.as_ref(), &stream, decide)
            .await
            .map_err(LambdaFailure::Store)?
            .map_err(LambdaFailure::Refused)?;
        recorded.iter().for_each(|r| self.apply(r));
        if changes {
            self.runtime.retire(account, region, name);
        }
        Ok(self.function(account, region, name))
    }

    /// Stores code (a zip) by digest; returns (base64 SHA-256, hex SHA-256, size).
    pub fn store_code(&self, zip: &[u8]) -> Result<(String, String, u64), String> {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(zip);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let file = runtime::code_file(&self.dir, &hex);
        if !file.exists() {
            let dir = file.parent().expect("code dir");
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let tmp = dir.join(format!("{hex}.{}.tmp", uuid::Uuid::new_v4()));
            std::fs::write(&tmp, zip).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &file).map_err(|e| e.to_string())?;
        }
        Ok((b64, hex, zip.len() as u64))
    }

    /// `host:port` where functions and clients reach this endpoint.
    pub fn runtime_endpoint(&self) -> String {
        self.runtime.endpoint()
    }

    /// The code zip with this hex digest, for GetFunction's download link.
    pub fn code(&self, digest: &str) -> Option<Vec<u8>> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read(runtime::code_file(&self.dir, digest)).ok()
    }

    /// Runs an invocation in the background (InvocationType `Event`).
    pub fn invoke_detached(
        self: &Arc<Self>,
        function: Function,
        request_id: String,
        payload: Bytes,
    ) {
        let lambda = self.clone();
        actix_rt::spawn(async move {
            let ran = lambda.invoke(&function, &request_id, payload).await;
            if let runtime::Outcome::Error(e) = ran.outcome {
                log::info!(
                    "the event invocation {request_id} of {} failed: {}",
                    function.name,
                    String::from_utf8_lossy(&e)
                );
            }
        });
    }

    /// Runs one invocation of a function and keeps its log.
    pub async fn invoke(&self, function: &Function, request_id: &str, payload: Bytes) -> Ran {
        let invocation = Invocation {
            request_id: request_id.to_string(),
            payload,
        };
        let ran = if !self.enabled {
            let message = "Functions do not run on this codepipeline-local (run_builds = false)";
            Ran {
                outcome: runtime::Outcome::Error(Bytes::from(
                    serde_json::json!({"errorMessage": message, "errorType": "Runtime.Unavailable"})
                        .to_string(),
                )),
                log: format!("{message}\n").into_bytes(),
            }
        } else {
            let root = {
                let function = function.clone();
                // Unpacking is file work: off the async threads.
                let files = LambdaFiles {
                    dir: self.dir.clone(),
                    limits: self.limits,
                };
                tokio::task::spawn_blocking(move || files.task_root(&function))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            };
            match root {
                Ok(root) => self.runtime.invoke(function, &root, invocation).await,
                Err(message) => Ran {
                    outcome: runtime::Outcome::Error(Bytes::from(
                        serde_json::json!({"errorMessage": message, "errorType": "Runtime.InvalidEntrypoint"})
                            .to_string(),
                    )),
                    log: format!("{message}\n").into_bytes(),
                },
            }
        };
        self.keep_log(function, request_id, &ran.log);
        ran
    }

    fn logs_dir(&self, function: &Function) -> PathBuf {
        self.dir
            .join("logs")
            .join(&function.account)
            .join(&function.region)
            .join(&function.name)
    }

    /// Writes an invocation's log, keeping the last [`LOGS_PER_FUNCTION`] of the function.
    fn keep_log(&self, function: &Function, request_id: &str, log: &[u8]) {
        let dir = self.logs_dir(function);
        let name = format!(
            "{:013}-{request_id}.log",
            (crate::aws::now_epoch() * 1000.0) as u64
        );
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(name), log));
        if let Err(e) = written {
            log::warn!("the log of invocation {request_id} was not kept: {e}");
            return;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            if names.len() > LOGS_PER_FUNCTION {
                names.sort();
                for old in &names[..names.len() - LOGS_PER_FUNCTION] {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
    }
}

/// Lambda as the Lambda invoke action of pipelines uses it.
pub struct PipelineFunctions(pub Arc<Lambda>);

impl crate::codepipeline::actions::Functions for PipelineFunctions {
    fn exists(&self, account: &str, region: &str, function: &str) -> bool {
        self.0
            .function(account, region, &api::function_name(function))
            .is_some()
    }

    fn invoke_detached(
        &self,
        account: &str,
        region: &str,
        function: &str,
        request_id: &str,
        event: String,
    ) {
        if let Some(function) = self
            .0
            .function(account, region, &api::function_name(function))
        {
            self.0
                .invoke_detached(function, request_id.to_string(), Bytes::from(event));
        }
    }
}

/// What unpacking a function's code needs (moved to a blocking thread).
struct LambdaFiles {
    dir: PathBuf,
    limits: ZipLimits,
}

impl LambdaFiles {
    fn task_root(&self, function: &Function) -> Result<PathBuf, String> {
        let root = self.dir.join("tasks").join(&function.code_digest);
        if root.is_dir() {
            return Ok(root);
        }
        let zip = std::fs::read(runtime::code_file(&self.dir, &function.code_digest))
            .map_err(|e| format!("The code of {} is missing: {e}", function.name))?;
        let tmp = self.dir.join("tasks").join(format!(
            "{}.{}.tmp",
            function.code_digest,
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        let unpacked =
            crate::codepipeline::actions::archive::unpack(&zip, &function.name, &tmp, &self.limits)
                .map_err(|e| e.message)?;
        // A custom runtime's bootstrap is run as a program.
        for file in unpacked.iter().filter(|u| u.path == "bootstrap") {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&file.file, std::fs::Permissions::from_mode(0o755));
        }
        // Two first invocations may unpack at once: the first rename wins, the other is dropped.
        if std::fs::rename(&tmp, &root).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        if root.is_dir() {
            Ok(root)
        } else {
            Err(format!(
                "The code of {} could not be unpacked",
                function.name
            ))
        }
    }
}

impl crate::checkpoint::Projection for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn apply(&self, record: &RecordedEvent) {
        Lambda::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let functions = self.functions.read().expect("lambda lock");
        serde_json::value::to_raw_value(&*functions).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let functions: BTreeMap<String, Function> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.functions.write().expect("lambda lock") = functions;
        Ok(())
    }

    fn clear(&self) {
        self.functions.write().expect("lambda lock").clear();
    }
}

/// The log of an invocation or the latest logs of a function, for `codepipeline-local logs`:
/// `name` is a function name or a request id.
pub fn find_logs(data_dir: &Path, name: &str, latest: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let root = data_dir.join("lambda").join("logs");
    let mut found = Vec::new();
    let accounts = std::fs::read_dir(&root).into_iter().flatten().flatten();
    for account in accounts {
        for region in std::fs::read_dir(account.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for function in std::fs::read_dir(region.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let by_name = function.file_name().to_string_lossy() == name;
                let mut files: Vec<PathBuf> = std::fs::read_dir(function.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        by_name
                            || p.file_stem()
                                .is_some_and(|s| s.to_string_lossy().ends_with(name))
                    })
                    .collect();
                files.sort();
                let skip = if by_name {
                    files.len().saturating_sub(latest)
                } else {
                    0
                };
                for file in files.into_iter().skip(skip) {
                    if let Ok(text) = std::fs::read(&file) {
                        found.push((file, text));
                    }
                }
            }
        }
    }
    found
}
