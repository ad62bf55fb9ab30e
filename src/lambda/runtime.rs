//! Functions run here, as local processes, and talk to the server through the Lambda Runtime
//! API, served for them under `/_codepipeline_local/lambda-runtime/<instance>/2018-06-01/…`:
//! a process asks for its next invocation (`invocation/next`, held until there is one) and
//! answers it (`invocation/<id>/response` or `/error`), or reports that it could not start
//! (`init/error`).
//!
//! An instance is one process of one revision of a function: python runtimes run the host's
//! `python3` with our bootstrap, nodejs runtimes the host's `node` with ours, `provided.*` the
//! code's own `bootstrap`. It serves one invocation at a time; an idle instance is reused by the
//! next invocation of the same revision (warm), and ended after `idle` without one. An invocation
//! that outlives the function's timeout ends its instance's whole process group.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot, Notify};

use super::functions::Function;

/// The path under which the Runtime API is served.
pub const RUNTIME_PREFIX: &str = "/_codepipeline_local/lambda-runtime/";

/// The payload size Lambda allows a synchronous response (6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// How much output of one invocation is kept.
const MAX_LOG_BYTES: usize = 1024 * 1024;

/// How long a new process may take to ask for its first invocation (AWS: 10 s of init).
const INIT_ALLOWANCE: Duration = Duration::from_secs(10);

const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap/python.py");
const NODE_BOOTSTRAP: &str = include_str!("bootstrap/node.js");

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Its request id.
    pub request_id: String,
    /// The event, JSON.
    pub payload: Bytes,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function answered.
    Response(Bytes),
    /// The function failed (an error it raised, a timeout, a crash): the error payload
    /// (`errorMessage`, `errorType`, …).
    Error(Bytes),
}

/// An invocation's outcome with its output.
#[derive(Debug, Clone)]
pub struct Ran {
    /// How it ended.
    pub outcome: Outcome,
    /// Its log: `START`, the function's output, `END` and `REPORT` lines.
    pub log: Vec<u8>,
}

struct Pending {
    invocation: Invocation,
    /// The function's timeout: its deadline is set when the process takes the invocation.
    timeout: Duration,
    arn: String,
    /// Told when the process takes the invocation.
    picked: oneshot::Sender<()>,
    reply: oneshot::Sender<Outcome>,
}

/// One process of one revision of a function.
struct Instance {
    id: String,
    /// The function's stream and revision: what it may serve.
    key: String,
    queue: mpsc::Sender<Pending>,
    next: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    /// The invocation it works on: (request id, where its outcome goes).
    current: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    /// Output since the current invocation was handed out (or since the start).
    output: Mutex<Vec<u8>>,
    /// Why it could not start, if it said so.
    init_error: Mutex<Option<Bytes>>,
    /// The last invocation whose output is all read (our bootstraps say so on their output).
    flushed: tokio::sync::watch::Sender<String>,
    /// The tasks reading its output, which end when its pipes close.
    readers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pgid: u32,
    ended: AtomicBool,
    end: Notify,
}

impl Instance {
    fn kill(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            crate::codebuild::runner::kill_group(self.pgid);
        }
        self.end.notify_waiters();
    }

    fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut *self.output.lock().expect("instance output"))
    }
}

/// An idle instance and since when it is idle.
type Idle = (Arc<Instance>, Instant);

/// The running instances of every function.
pub struct Runtime {
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    /// Idle instances by key, with when they became idle.
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    /// `host:port` of this endpoint, once it listens.
    endpoint: Mutex<String>,
    runtime_dir: PathBuf,
    idle_after: Duration,
}

fn error_payload(kind: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorMessage": message, "errorType": kind}).to_string())
}

/// The key of the instances of a function's revision.
fn key_of(function: &Function) -> String {
    format!(
        "{}:{}:{}:{}",
        function.account, function.region, function.name, function.revision_id
    )
}

impl Runtime {
    /// A runtime whose bootstraps live in `runtime_dir`, ending instances idle for `idle_after`.
    pub fn new(runtime_dir: PathBuf, idle_after: Duration) -> Self {
        Runtime {
            instances: Mutex::new(HashMap::new()),
            idle: Mutex::new(HashMap::new()),
            endpoint: Mutex::new(String::new()),
            runtime_dir,
            idle_after,
        }
    }

    /// Where functions reach this endpoint (`127.0.0.1:4566`).
    pub fn set_endpoint(&self, endpoint: String) {
        *self.endpoint.lock().expect("endpoint") = endpoint;
    }

    /// Where functions reach this endpoint.
    pub fn endpoint(&self) -> String {
        self.endpoint.lock().expect("endpoint").clone()
    }

    /// Ends the instances of a function (its code or configuration changed, or it was deleted):
    /// idle ones now, busy ones once their invocation is done.
    pub fn retire(&self, account: &str, region: &str, name: &str) {
        let prefix = format!("{account}:{region}:{name}:");
        let instances: Vec<Arc<Instance>> = self
            .instances
            .lock()
            .expect("instances")
            .values()
            .filter(|i| i.key.starts_with(&prefix))
            .cloned()
            .collect();
        self.idle
            .lock()
            .expect("idle instances")
            .retain(|k, _| !k.starts_with(&prefix));
        for instance in instances {
            let busy = instance.current.lock().expect("current").is_some();
            if !busy {
                self.end(&instance);
            } else {
                // It ends when its invocation is done: it is not returned to the idle ones.
                instance.ended.store(true, Ordering::SeqCst);
            }
        }
    }

    fn end(&self, instance: &Instance) {
        instance.kill();
        self.instances
            .lock()
            .expect("instances")
            .remove(&instance.id);
    }

    /// Ends instances idle for longer than `idle_after`; called now and then.
    pub fn reap(&self) {
        let now = Instant::now();
        let mut stale = Vec::new();
        {
            let mut idle = self.idle.lock().expect("idle instances");
            for list in idle.values_mut() {
                list.retain(|(i, since)| {
                    let keep = now.duration_since(*since) < self.idle_after;
                    if !keep {
                        stale.push(i.clone());
                    }
                    keep
                });
            }
            idle.retain(|_, l| !l.is_empty());
        }
        for instance in stale {
            self.end(&instance);
        }
    }

    /// Ends every instance (the server stops).
    pub fn shutdown(&self) {
        let all: Vec<Arc<Instance>> = self
            .instances
            .lock()
            .expect("instances")
            .drain()
            .map(|(_, i)| i)
            .collect();
        self.idle.lock().expect("idle instances").clear();
        for instance in all {
            instance.kill();
        }
    }

    /// Runs one invocation of `function`, whose code is unpacked in `task_root`: on a warm
    /// instance of its revision, or a new one. Resolves when the function answered, failed, or
    /// ran out of time.
    pub async fn invoke(
        &self,
        function: &Function,
        task_root: &Path,
        invocation: Invocation,
    ) -> Ran {
        let started = Instant::now();
        let request_id = invocation.request_id.clone();
        let key = key_of(function);
        let warm = self.take_idle(&key);
        let (instance, cold) = match warm {
            Some(instance) => (instance, false),
            None => match self.spawn(function, task_root, &key) {
                Ok(instance) => (instance, true),
                Err(message) => {
                    let log = format!(
                        "START RequestId: {request_id} Version: $LATEST\n{message}\nEND RequestId: {request_id}\n"
                    );
                    return Ran {
                        outcome: Outcome::Error(error_payload("Runtime.Unavailable", &message)),
                        log: log.into_bytes(),
                    };
                }
            },
        };
        let timeout = Duration::from_secs(u64::from(function.timeout.max(1)));
        let (reply, outcome) = oneshot::channel();
        let (picked, taken) = oneshot::channel();
        let pending = Pending {
            invocation,
            timeout,
            arn: function.arn(),
            picked,
            reply,
        };
        let mut init = None;
        let outcome = if instance.queue.send(pending).await.is_err() {
            Outcome::Error(error_payload(
                "Runtime.ExitError",
                "The runtime is not running",
            ))
        } else {
            // A new process has its own time to start (AWS: 10 s of init); the function's
            // timeout runs from when it takes the invocation.
            let allowance = if cold { INIT_ALLOWANCE } else { timeout };
            if tokio::time::timeout(allowance, taken).await.is_err() {
                self.end(&instance);
            } else if cold {
                init = Some(started.elapsed());
            }
            match tokio::time::timeout(timeout, outcome).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => {
                    let init = instance.init_error.lock().expect("init error").clone();
                    Outcome::Error(init.unwrap_or_else(|| {
                        error_payload("Runtime.ExitError", "The runtime exited before it answered")
                    }))
                }
                Err(_) => {
                    self.end(&instance);
                    Outcome::Error(error_payload(
                        "Sandbox.Timedout",
                        &format!(
                            "{} Task timed out after {}.00 seconds",
                            request_id,
                            timeout.as_secs()
                        ),
                    ))
                }
            }
        };
        // Our bootstraps mark the end of an invocation's output: wait (briefly) until it is read.
        let marks =
            !function.runtime.starts_with("provided") && !instance.ended.load(Ordering::SeqCst);
        if marks {
            let mut flushed = instance.flushed.subscribe();
            let read = flushed.wait_for(|id| *id == request_id);
            let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
        } else if instance.ended.load(Ordering::SeqCst) {
            // An ended process's output is all read once its pipes are closed.
            let readers = std::mem::take(&mut *instance.readers.lock().expect("readers"));
            let all = futures_util::future::join_all(readers);
            let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
        }
        let output = instance.take_output();
        if instance.ended.load(Ordering::SeqCst) {
            self.end(&instance);
        } else {
            self.idle
                .lock()
                .expect("idle instances")
                .entry(key)
                .or_default()
                .push((instance, Instant::now()));
        }
        let duration = started.elapsed().as_secs_f64() * 1000.0;
        let mut log = format!("START RequestId: {request_id} Version: $LATEST\n").into_bytes();
        log.extend_from_slice(&output);
        if matches!(&outcome, Outcome::Error(p) if p.windows(17).any(|w| w == b"Sandbox.Timedout\""))
        {
            log.extend_from_slice(
                format!(
                    "{} Task timed out after {}.00 seconds\n",
                    request_id,
                    timeout.as_secs()
                )
                .as_bytes(),
            );
        }
        log.extend_from_slice(
            format!(
                "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {duration:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{}\n",
                duration.ceil() as u64,
                function.memory_size,
                function.memory_size.min(64),
                init.map(|d| format!("Init Duration: {:.2} ms\t", d.as_secs_f64() * 1000.0))
                    .unwrap_or_default()
            )
            .as_bytes(),
        );
        Ran { outcome, log }
    }

    fn take_idle(&self, key: &str) -> Option<Arc<Instance>> {
        let mut idle = self.idle.lock().expect("idle instances");
        let list = idle.get_mut(key)?;
        while let Some((instance, _)) = list.pop() {
            if !instance.ended.load(Ordering::SeqCst) {
                return Some(instance);
            }
        }
        None
    }

    /// The program and arguments that run a function's runtime.
    fn command(
        &self,
        function: &Function,
        task_root: &Path,
    ) -> Result<(PathBuf, Vec<PathBuf>), String> {
        let runtime = function.runtime.as_str();
        let bootstrap = |name: &str, text: &str| -> Result<PathBuf, String> {
            std::fs::create_dir_all(&self.runtime_dir).map_err(|e| e.to_string())?;
            let path = self.runtime_dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                let tmp = self
                    .runtime_dir
                    .join(format!("{name}.{}", uuid::Uuid::new_v4()));
                std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            }
            Ok(path)
        };
        if runtime.starts_with("python3") {
            Ok((
                "python3".into(),
                vec!["-u".into(), bootstrap("bootstrap.py", PYTHON_BOOTSTRAP)?],
            ))
        } else if runtime.starts_with("nodejs") {
            Ok((
                "node".into(),
                vec![bootstrap("bootstrap.js", NODE_BOOTSTRAP)?],
            ))
        } else if runtime.starts_with("provided") {
            let own = task_root.join("bootstrap");
            if !own.is_file() {
                return Err(format!(
                    "Couldn't find valid bootstrap(s): [{}]",
                    own.display()
                ));
            }
            Ok((own, vec![]))
        } else {
            Err(format!(
                "The runtime {runtime} does not run on codepipeline-local: it runs python3.x, nodejs and provided runtimes"
            ))
        }
    }

    fn spawn(
        &self,
        function: &Function,
        task_root: &Path,
        key: &str,
    ) -> Result<Arc<Instance>, String> {
        let (program, args) = self.command(function, task_root)?;
        let id = uuid::Uuid::new_v4().to_string();
        let endpoint = self.endpoint();
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .current_dir(task_root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .env_clear()
            .kill_on_drop(false)
            .process_group(0);
        let inherited = ["PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT"];
        for name in inherited {
            if let Ok(value) = std::env::var(name) {
                cmd.env(name, value);
            }
        }
        let stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            id.replace('-', "")
        );
        let mut env: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_FUNCTION_NAME".into(), function.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                function.memory_size.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", function.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream),
            (
                "AWS_LAMBDA_RUNTIME_API".into(),
                format!("{endpoint}{RUNTIME_PREFIX}{id}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            (
                "AWS_EXECUTION_ENV".into(),
                format!("AWS_Lambda_{}", function.runtime),
            ),
            ("_HANDLER".into(), function.handler.clone()),
            ("AWS_REGION".into(), function.region.clone()),
            ("AWS_DEFAULT_REGION".into(), function.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            (
                "AWS_SESSION_TOKEN".into(),
                format!("codepipeline-local/{}", function.name),
            ),
            ("AWS_ENDPOINT_URL".into(), format!("http://{endpoint}")),
            ("LAMBDA_TASK_ROOT".into(), task_root.display().to_string()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                self.runtime_dir.display().to_string(),
            ),
            ("TZ".into(), ":UTC".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ];
        if function.runtime.starts_with("nodejs") {
            env.push((
                "NODE_PATH".into(),
                task_root.join("node_modules").display().to_string(),
            ));
        }
        // The function's own variables come last and win, as on AWS for the ones it may set.
        env.extend(
            function
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        cmd.envs(env);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("The runtime {} could not start: {e}", program.display()))?;
        let pgid = child.id().unwrap_or(0);
        let (queue, next) = mpsc::channel(1);
        let instance = Arc::new(Instance {
            id: id.clone(),
            key: key.to_string(),
            queue,
            next: tokio::sync::Mutex::new(next),
            current: Mutex::new(None),
            output: Mutex::new(Vec::new()),
            init_error: Mutex::new(None),
            flushed: tokio::sync::watch::channel(String::new()).0,
            readers: Mutex::new(Vec::new()),
            pgid,
            ended: AtomicBool::new(false),
            end: Notify::new(),
        });
        for pipe in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let reading = instance.clone();
            let reader = tokio::spawn(async move {
                let instance = reading;
                let mut lines = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(request_id) = line.strip_prefix("\u{1e}end ") {
                        instance.flushed.send_replace(request_id.to_string());
                        continue;
                    }
                    let mut output = instance.output.lock().expect("instance output");
                    if output.len() + line.len() < MAX_LOG_BYTES {
                        output.extend_from_slice(line.as_bytes());
                        output.push(b'\n');
                    }
                }
            });
            instance.readers.lock().expect("readers").push(reader);
        }
        let watched = instance.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            watched.kill();
            let message = match status {
                Ok(s) => format!("Runtime exited with error: {s}"),
                Err(e) => format!("Runtime exited: {e}"),
            };
            // An invocation it held fails with why it ended; one it never took (it could not
            // start) fails with what it reported, at once.
            let current = watched.current.lock().expect("current").take();
            if let Some((_, reply)) = current {
                let _ = reply.send(Outcome::Error(error_payload("Runtime.ExitError", &message)));
            }
            let init = watched.init_error.lock().expect("init error").clone();
            if let Ok(mut queue) = watched.next.try_lock() {
                while let Ok(pending) = queue.try_recv() {
                    let error = init
                        .clone()
                        .unwrap_or_else(|| error_payload("Runtime.ExitError", &message));
                    let _ = pending.reply.send(Outcome::Error(error));
                }
            }
        });
        self.instances
            .lock()
            .expect("instances")
            .insert(id, instance.clone());
        Ok(instance)
    }

    fn instance(&self, id: &str) -> Option<Arc<Instance>> {
        self.instances.lock().expect("instances").get(id).cloned()
    }

    /// Serves one Runtime API request: `rest` is the path after [`RUNTIME_PREFIX`].
    /// A body over [`MAX_RESPONSE_BYTES`] is not read whole: `too_large` says it was.
    pub async fn serve(
        &self,
        method: &str,
        rest: &str,
        body: Bytes,
        too_large: bool,
    ) -> RuntimeAnswer {
        let Some((id, route)) = rest.split_once('/') else {
            return RuntimeAnswer::not_found();
        };
        let Some(instance) = self.instance(id) else {
            return RuntimeAnswer::not_found();
        };
        let Some(route) = route.strip_prefix("2018-06-01/runtime/") else {
            return RuntimeAnswer::not_found();
        };
        match (method, route) {
            ("GET", "invocation/next") => next(&instance).await,
            ("POST", "init/error") => {
                *instance.init_error.lock().expect("init error") = Some(body);
                RuntimeAnswer::accepted()
            }
            ("POST", route) => {
                let Some((request_id, what)) = route
                    .strip_prefix("invocation/")
                    .and_then(|r| r.split_once('/'))
                else {
                    return RuntimeAnswer::not_found();
                };
                let outcome = match what {
                    "response" if too_large => Outcome::Error(error_payload(
                        "Function.ResponseSizeTooLarge",
                        &format!(
                            "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                        ),
                    )),
                    "response" => Outcome::Response(body),
                    "error" => Outcome::Error(body),
                    _ => return RuntimeAnswer::not_found(),
                };
                let current = {
                    let mut current = instance.current.lock().expect("current");
                    match current.as_ref() {
                        Some((id, _)) if id == request_id => current.take(),
                        _ => None,
                    }
                };
                match current {
                    Some((_, reply)) => {
                        let _ = reply.send(outcome);
                        RuntimeAnswer::accepted()
                    }
                    None => RuntimeAnswer {
                        status: 400,
                        headers: vec![],
                        body: Bytes::from_static(
                            br#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                        ),
                    },
                }
            }
            _ => RuntimeAnswer::not_found(),
        }
    }
}

/// Hands the instance its next invocation, once there is one.
async fn next(instance: &Instance) -> RuntimeAnswer {
    let pending = {
        let mut queue = instance.next.lock().await;
        tokio::select! {
            p = queue.recv() => p,
            () = instance.end.notified() => None,
        }
    };
    let Some(pending) = pending else {
        return RuntimeAnswer::not_found();
    };
    let request_id = pending.invocation.request_id.clone();
    let deadline_ms =
        (crate::aws::now_epoch() * 1000.0) as u64 + pending.timeout.as_millis() as u64;
    *instance.current.lock().expect("current") = Some((request_id.clone(), pending.reply));
    let _ = pending.picked.send(());
    RuntimeAnswer {
        status: 200,
        headers: vec![
            ("Lambda-Runtime-Aws-Request-Id", request_id.clone()),
            ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", pending.arn),
            (
                "Lambda-Runtime-Trace-Id",
                format!(
                    "Root=1-{:08x}-{}",
                    crate::aws::now_epoch() as u64,
                    request_id
                        .replace('-', "")
                        .chars()
                        .take(24)
                        .collect::<String>()
                ),
            ),
        ],
        body: pending.invocation.payload,
    }
}

/// What the Runtime API answers.
pub struct RuntimeAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

impl RuntimeAnswer {
    fn not_found() -> Self {
        RuntimeAnswer {
            status: 404,
            headers: vec![],
            body: Bytes::from_static(
                br#"{"errorMessage":"Unknown runtime instance or route","errorType":"NotFound"}"#,
            ),
        }
    }

    fn accepted() -> Self {
        RuntimeAnswer {
            status: 202,
            headers: vec![],
            body: Bytes::from_static(br#"{"status":"OK"}"#),
        }
    }
}

/// Where a function's code lives: `<dir>/code/<digest>.zip`, unpacked once to
/// `<dir>/tasks/<digest>/`.
pub fn code_file(dir: &Path, digest: &str) -> PathBuf {
    dir.join("code").join(format!("{digest}.zip"))
}
