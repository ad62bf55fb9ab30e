//! AWS CodeBuild on the same endpoint (JSON 1.1, `CodeBuild_20161006`): build projects, as the
//! CodeBuild action of pipelines will need them. Requests are checked against AWS's own model
//! (`models/codebuild-2016-10-06.json`); projects are event-sourced like pipelines.
//!
//! Builds run their buildspec on this machine with `bash` (see [`runner`]), each in a work dir of
//! its own under the data dir, with its output kept in a log file; builds are event-sourced too,
//! and a build that was running when the process died ends as FAILED at the next start.
//!
//! # LIMITATIONS
//! - Served: CreateProject, UpdateProject, BatchGetProjects, ListProjects, DeleteProject,
//!   StartBuild, BatchGetBuilds, ListBuilds, ListBuildsForProject, StopBuild. Every other
//!   CodeBuild operation answers `NotImplementedException` naming it.
//! - There is no container runtime: the environment's image is recorded, not used; commands run
//!   with the server's user, PATH and tools. Only `bash` runs buildspecs.
//! - A build started outside a pipeline gets no source: its buildspec must be inline (the
//!   project's `source.buildspec` or `buildspecOverride`); its artifacts are uploaded when the
//!   project's artifacts are of type S3 (its secondary artifacts are not).
//! - Batch builds and the operations on reports, webhooks, fleets and sandboxes are not served.
//! - Environment variables of type PARAMETER_STORE and SECRETS_MANAGER are refused until those
//!   services exist.

pub mod artifacts;
pub mod build;
pub mod buildspec;
pub mod port;
pub mod project;
pub mod runner;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use actix_web::HttpResponse;
use serde_json::{json, Value};

use self::build::{build_stream, BuildEvent, BUILD_STREAM_PREFIX};
use self::project::{project_stream, ProjectCommand, ProjectEvent, Refusal, PROJECT_STREAM_PREFIX};
use crate::aws::model::ServiceModel;
use crate::aws::{json, pagination, AwsError, RequestContext};
use crate::eventstore::EventType;
use crate::eventstore::{EventStore, RecordedEvent};

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/codebuild-2016-10-06.json")));

/// AWS's CodeBuild service model, compiled into the binary.
pub fn model() -> &'static ServiceModel {
    &MODEL
}

/// A project's name, given as a name or an ARN.
fn project_name(name_or_arn: &str) -> &str {
    name_or_arn.rsplit("project/").next().unwrap_or(name_or_arn)
}

/// The operations served; the model's others answer `NotImplementedException`.
const SERVED: &[&str] = &[
    "CreateProject",
    "UpdateProject",
    "BatchGetProjects",
    "ListProjects",
    "DeleteProject",
    "StartBuild",
    "BatchGetBuilds",
    "ListBuilds",
    "ListBuildsForProject",
    "StopBuild",
];

/// What a build is started with.
pub struct StartOptions {
    /// Account of the project.
    pub account: String,
    /// Region of the project.
    pub region: String,
    /// Project name (or ARN).
    pub project: String,
    /// `buildspecOverride`.
    pub buildspec_override: Option<String>,
    /// `environmentVariablesOverride` (`EnvironmentVariable` wire shapes).
    pub env_overrides: Vec<Value>,
    /// `timeoutInMinutesOverride`.
    pub timeout_override: Option<u64>,
    /// Who started it.
    pub initiator: String,
    /// Input files by artifact name: the first is the primary source (`CODEBUILD_SRC_DIR`), the
    /// others go in `CODEBUILD_SRC_DIR_<name>`.
    pub sources: Vec<(String, Files)>,
}

/// Files by their path in a source dir.
pub type Files = Vec<(String, Vec<u8>)>;

/// A build that was started.
pub struct Started {
    /// The build as BatchGetBuilds shows it now.
    pub build: Value,
    /// Its id.
    pub id: String,
    /// The buildspec it runs.
    pub spec: buildspec::Buildspec,
    /// Its primary source dir (`CODEBUILD_SRC_DIR`).
    pub src_dir: PathBuf,
    /// Resolves when it has ended (and its end is recorded).
    pub done: tokio::sync::oneshot::Receiver<()>,
}

/// Builds by stream, and their streams in start order.
#[derive(Default)]
struct Builds {
    by_stream: HashMap<String, Value>,
    order: Vec<String>,
}

/// CodeBuild projects, event-sourced.
pub struct CodeBuild {
    log: Arc<dyn EventStore>,
    /// Projects by stream.
    projects: RwLock<BTreeMap<String, Value>>,
    /// Serialises writes, so each append names the stream's current sequence.
    writes: tokio::sync::Mutex<()>,
    builds: RwLock<Builds>,
    /// Where builds run and keep their logs (`<data dir>/codebuild`).
    dir: PathBuf,
    /// Whether StartBuild runs builds.
    run_builds: bool,
    /// Output kept per build.
    log_max_bytes: u64,
    /// The stop flags of running builds, by build id.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Where builds outside pipelines upload their artifacts (set once the S3 is chosen).
    objects: std::sync::OnceLock<Arc<dyn crate::s3::objects::ObjectStore>>,
}

/// Where a build outside a pipeline puts its artifacts (project artifacts of type S3).
struct Upload {
    bucket: String,
    key: String,
    zip: bool,
    section: buildspec::Artifacts,
}

impl CodeBuild {
    /// Projects and builds from `log` (fed by [`CodeBuild::apply`] at startup); builds run in
    /// `dir` when `run_builds`.
    pub fn new(
        log: Arc<dyn EventStore>,
        dir: PathBuf,
        run_builds: bool,
        log_max_bytes: u64,
    ) -> Self {
        CodeBuild {
            log,
            projects: RwLock::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
            builds: RwLock::new(Builds::default()),
            dir,
            run_builds,
            log_max_bytes,
            running: Mutex::new(HashMap::new()),
            objects: std::sync::OnceLock::new(),
        }
    }

    /// Ends the builds the log says were running when the process stopped: their processes are
    /// gone, so they fail, saying why.
    pub fn recover(&self) -> Result<usize, crate::eventstore::StoreError> {
        let interrupted: Vec<String> = self
            .builds
            .read()
            .expect("codebuild lock")
            .by_stream
            .iter()
            .filter(|(_, b)| b["buildComplete"] != true)
            .map(|(s, _)| s.clone())
            .collect();
        for stream in &interrupted {
            // Whatever the build's last phase left running goes too.
            let uuid = stream.rsplit(':').next().unwrap_or_default();
            let pgid_file = self.dir.join("work").join(uuid).join("state").join("pgid");
            if let Some(pgid) = std::fs::read_to_string(pgid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                runner::kill_group(pgid);
            }
            let head = self
                .log
                .read_stream(stream, 1)?
                .last()
                .map_or(0, |r| r.sequence);
            let at = crate::aws::now_epoch();
            let events = [
                BuildEvent::PhaseEnded {
                    phase_type: self.builds.read().expect("codebuild lock").by_stream[stream]
                        ["currentPhase"]
                        .as_str()
                        .unwrap_or("BUILD")
                        .to_string(),
                    status: "FAILED".into(),
                    message: Some(
                        "The build was interrupted: codepipeline-local stopped while it ran".into(),
                    ),
                    at,
                },
                BuildEvent::Finished {
                    status: "FAILED".into(),
                    exported: vec![],
                    at,
                },
            ];
            let recorded = self.log.append(
                stream,
                head,
                events.iter().map(BuildEvent::to_new_event).collect(),
            )?;
            recorded.iter().for_each(|r| self.apply(r));
        }
        Ok(interrupted.len())
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if record.stream.starts_with(BUILD_STREAM_PREFIX) {
            if let Some(event) = BuildEvent::from_record(record) {
                let mut builds = self.builds.write().expect("codebuild lock");
                if matches!(event, BuildEvent::Started { .. }) {
                    builds.order.push(record.stream.clone());
                }
                let b = builds.by_stream.entry(record.stream.clone()).or_default();
                build::apply(b, &event);
            }
            return;
        }
        if !record.stream.starts_with(PROJECT_STREAM_PREFIX) {
            return;
        }
        if let Some(event) = ProjectEvent::from_record(record) {
            let mut projects = self.projects.write().expect("codebuild lock");
            let mut state = projects.remove(&record.stream);
            project::apply(&mut state, &event);
            if let Some(p) = state {
                projects.insert(record.stream.clone(), p);
            }
        }
    }

    /// A project by account, region and name (or ARN).
    pub fn project(&self, ctx: &RequestContext, name_or_arn: &str) -> Option<Value> {
        let name = project_name(name_or_arn);
        self.projects
            .read()
            .expect("codebuild lock")
            .get(&project_stream(&ctx.account_id, &ctx.region, name))
            .cloned()
    }

    /// Serves one CodeBuild request: `target` is the `X-Amz-Target` header, `body` the JSON.
    pub async fn handle(
        self: &Arc<Self>,
        ctx: &RequestContext,
        target: &str,
        body: &[u8],
    ) -> HttpResponse {
        match self.serve(ctx, target, body).await {
            Ok(value) => match serde_json::to_vec(&value) {
                Ok(bytes) => json::ok(ctx, actix_web::web::Bytes::from(bytes)),
                Err(e) => json::error(ctx, &AwsError::internal(e.to_string())),
            },
            Err(err) => {
                if err.status >= 500 {
                    log::error!("{target}: {err}");
                }
                json::error(ctx, &err)
            }
        }
    }

    async fn serve(
        self: &Arc<Self>,
        ctx: &RequestContext,
        target: &str,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let model = model();
        let op = target
            .strip_prefix(model.target_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|op| model.operations().iter().any(|o| o == op))
            .ok_or_else(|| {
                AwsError::new(
                    "UnknownOperationException",
                    format!("Operation {target} is not known to CodeBuild"),
                )
            })?;
        if !SERVED.contains(&op) {
            return Err(AwsError::not_supported("CodeBuild", op));
        }
        let input = json::parse_body(body)?;
        // CodeBuild names every malformed input InvalidInputException.
        model.validate_input(op, &input).map_err(|e| {
            if e.code == "ValidationException" {
                AwsError::new("InvalidInputException", e.message)
            } else {
                e
            }
        })?;
        match op {
            "CreateProject" => self.create_project(ctx, input).await,
            "UpdateProject" => self.update_project(ctx, input).await,
            "DeleteProject" => self.delete_project(ctx, input).await,
            "BatchGetProjects" => Ok(self.batch_get_projects(ctx, &input)),
            "ListProjects" => self.list_projects(ctx, &input),
            "StartBuild" => self.start_build(ctx, &input).await,
            "BatchGetBuilds" => Ok(self.batch_get_builds(ctx, &input)),
            "ListBuilds" => self.list_builds(ctx, &input, None),
            "ListBuildsForProject" => {
                let name = input["projectName"].as_str().unwrap_or_default();
                if self.project(ctx, name).is_none() {
                    return Err(AwsError::new(
                        "ResourceNotFoundException",
                        format!("Project cannot be found: {}", Self::arn(ctx, name)),
                    ));
                }
                self.list_builds(ctx, &input, Some(name))
            }
            "StopBuild" => self.stop_build(ctx, &input).await,
            other => Err(AwsError::not_supported("CodeBuild", other)),
        }
    }

    fn arn(ctx: &RequestContext, name: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:project/{name}",
            ctx.region, ctx.account_id
        )
    }

    /// Decides and records a command on a project's stream; returns its state after.
    async fn execute(
        &self,
        ctx: &RequestContext,
        name: &str,
        command: ProjectCommand,
    ) -> Result<Option<Value>, AwsError> {
        let stream = project_stream(&ctx.account_id, &ctx.region, name);
        let _writes = self.writes.lock().await;
        let mut state = self
            .projects
            .read()
            .expect("codebuild lock")
            .get(&stream)
            .cloned();
        let events = project::handle(&state, command).map_err(|refusal| match refusal {
            Refusal::Exists(_) => AwsError::new(
                "ResourceAlreadyExistsException",
                format!("Project already exists: {}", Self::arn(ctx, name)),
            ),
            Refusal::Missing(_) => AwsError::new(
                "ResourceNotFoundException",
                format!("Project not found: {}", Self::arn(ctx, name)),
            ),
        })?;
        if events.is_empty() {
            return Ok(state);
        }
        let internal = |e: crate::eventstore::StoreError| AwsError::internal(e.to_string());
        let head = self
            .log
            .read_stream(&stream, 1)
            .map_err(internal)?
            .last()
            .map_or(0, |r| r.sequence);
        let recorded = self
            .log
            .append_durable(
                &stream,
                head,
                events.iter().map(ProjectEvent::to_new_event).collect(),
            )
            .await
            .map_err(internal)?;
        recorded.iter().for_each(|r| self.apply(r));
        events.iter().for_each(|e| project::apply(&mut state, e));
        Ok(state)
    }

    async fn create_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = input["name"].as_str().unwrap_or_default().to_string();
        let command = ProjectCommand::Create {
            arn: Self::arn(ctx, &name),
            encryption_key: format!("arn:aws:kms:{}:{}:alias/aws/s3", ctx.region, ctx.account_id),
            input,
            at: crate::aws::now_epoch(),
        };
        let project = self.execute(ctx, &name, command).await?;
        Ok(json!({ "project": project }))
    }

    async fn update_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = project_name(input["name"].as_str().unwrap_or_default()).to_string();
        let command = ProjectCommand::Update {
            input,
            at: crate::aws::now_epoch(),
        };
        let project = self.execute(ctx, &name, command).await?;
        Ok(json!({ "project": project }))
    }

    async fn delete_project(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = project_name(input["name"].as_str().unwrap_or_default()).to_string();
        let command = ProjectCommand::Delete {
            at: crate::aws::now_epoch(),
        };
        self.execute(ctx, &name, command).await?;
        Ok(json!({}))
    }

    fn batch_get_projects(&self, ctx: &RequestContext, input: &Value) -> Value {
        let mut found = Vec::new();
        let mut not_found = Vec::new();
        for name in input["names"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            match self.project(ctx, name) {
                Some(p) => found.push(p),
                None => not_found.push(Value::from(name)),
            }
        }
        json!({"projects": found, "projectsNotFound": not_found})
    }

    fn list_projects(&self, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
        let prefix = project_stream(&ctx.account_id, &ctx.region, "");
        let mut projects: Vec<Value> = self
            .projects
            .read()
            .expect("codebuild lock")
            .range(prefix.clone()..)
            .take_while(|(stream, _)| stream.starts_with(&prefix))
            .map(|(_, p)| p.clone())
            .collect();
        let key = match input["sortBy"].as_str().unwrap_or("NAME") {
            "CREATED_TIME" => "created",
            "LAST_MODIFIED_TIME" => "lastModified",
            _ => "name",
        };
        projects.sort_by(|a, b| match key {
            "name" => a["name"].as_str().cmp(&b["name"].as_str()),
            k => a[k]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b[k].as_f64().unwrap_or(0.0)),
        });
        if input["sortOrder"] == "DESCENDING" {
            projects.reverse();
        }
        let names: Vec<String> = projects
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .collect();
        let start = pagination::start_after(
            names.iter().map(String::as_str),
            input["nextToken"].as_str(),
        )
        .ok_or_else(|| AwsError::new("InvalidInputException", "Invalid next token"))?;
        let page: Vec<&String> = names.iter().skip(start).take(100).collect();
        let mut out = json!({ "projects": page });
        if start + page.len() < names.len() {
            if let Some(last) = page.last() {
                out["nextToken"] = pagination::encode(last).into();
            }
        }
        Ok(out)
    }

    /// A build by id (`project:uuid`) or ARN.
    pub fn build(&self, ctx: &RequestContext, id_or_arn: &str) -> Option<Value> {
        let id = id_or_arn.rsplit("build/").next().unwrap_or(id_or_arn);
        self.builds
            .read()
            .expect("codebuild lock")
            .by_stream
            .get(&build_stream(&ctx.account_id, &ctx.region, id))
            .cloned()
    }

    /// How a build ended (or stands): its status, the phase that failed, its exported
    /// variables and the last `tail_lines` lines of its output.
    pub fn outcome(
        &self,
        account: &str,
        region: &str,
        id: &str,
        tail_lines: usize,
    ) -> port::BuildOutcome {
        let build = self
            .builds
            .read()
            .expect("codebuild lock")
            .by_stream
            .get(&build_stream(account, region, id))
            .cloned()
            .unwrap_or_default();
        let failed_phase = build["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                matches!(
                    p["phaseStatus"].as_str(),
                    Some("FAILED" | "STOPPED" | "TIMED_OUT" | "FAULT")
                )
            })
            .and_then(|p| p["phaseType"].as_str())
            .map(str::to_string);
        let exported = build["exportedEnvironmentVariables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some((
                    v["name"].as_str()?.to_string(),
                    v["value"].as_str()?.to_string(),
                ))
            })
            .collect();
        let text = std::fs::read_to_string(self.log_file(id)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        port::BuildOutcome {
            status: port::BuildStatus::parse(build["buildStatus"].as_str().unwrap_or("FAULT")),
            failed_phase,
            exported,
            log_tail: lines[lines.len().saturating_sub(tail_lines)..].join("\n"),
        }
    }

    /// The S3 builds outside pipelines upload their artifacts to.
    pub fn set_objects(&self, objects: Arc<dyn crate::s3::objects::ObjectStore>) {
        let _ = self.objects.set(objects);
    }

    /// Stops a running build by id: its processes are ended and it ends `STOPPED`.
    pub fn stop_running(&self, id: &str) {
        let flag = self
            .running
            .lock()
            .expect("codebuild running")
            .get(id)
            .cloned();
        if let Some(flag) = flag {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A build by id alone, in any account and region.
    pub fn build_any(&self, id: &str) -> Option<Value> {
        let id = id.rsplit("build/").next().unwrap_or(id);
        let builds = self.builds.read().expect("codebuild lock");
        builds.by_stream.values().find(|b| b["id"] == id).cloned()
    }

    /// Up to 1 MiB of a build's output from byte `offset`, the offset after it, and whether the
    /// build has ended; `None` for a build that does not exist.
    pub fn log_from(&self, id: &str, offset: u64) -> Option<(String, u64, bool)> {
        use std::io::{Read, Seek};
        let build = self.build_any(id)?;
        let complete = build["buildComplete"] == true;
        let mut text = Vec::new();
        if let Ok(mut f) = std::fs::File::open(self.log_file(build["id"].as_str().unwrap_or(id))) {
            if f.seek(std::io::SeekFrom::Start(offset)).is_ok() {
                let _ = f.take(1 << 20).read_to_end(&mut text);
            }
        }
        let next = offset + text.len() as u64;
        Some((String::from_utf8_lossy(&text).to_string(), next, complete))
    }

    /// The log file of a build (by its id).
    pub fn log_file(&self, id: &str) -> PathBuf {
        let uuid = id.rsplit(':').next().unwrap_or(id);
        self.dir.join("logs").join(format!("{uuid}.log"))
    }

    async fn start_build(
        self: &Arc<Self>,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let started = self
            .start(StartOptions {
                account: ctx.account_id.clone(),
                region: ctx.region.clone(),
                project: input["projectName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                buildspec_override: input["buildspecOverride"].as_str().map(str::to_string),
                env_overrides: input["environmentVariablesOverride"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                timeout_override: input["timeoutInMinutesOverride"].as_u64(),
                initiator: input["initiator"]
                    .as_str()
                    .unwrap_or("codepipeline-local")
                    .to_string(),
                sources: Vec::new(),
            })
            .await?;
        Ok(json!({ "build": started.build }))
    }

    /// Starts a build: records it, prepares its work dir with `sources`, and runs it on a thread
    /// of its own. The answer says when it ends.
    pub async fn start(self: &Arc<Self>, o: StartOptions) -> Result<Started, AwsError> {
        let ctx = RequestContext {
            region: o.region.clone(),
            account_id: o.account.clone(),
            request_id: String::new(),
            rerun_of: None,
        };
        let name = o.project.clone();
        let project = self.project(&ctx, &name).ok_or_else(|| {
            AwsError::new(
                "ResourceNotFoundException",
                format!("Project cannot be found: {}", Self::arn(&ctx, &name)),
            )
        })?;
        if !self.run_builds {
            return Err(AwsError::new(
                "AccountLimitExceededException",
                "Builds are turned off on this codepipeline-local (run_builds = false)",
            ));
        }
        let name = project["name"].as_str().unwrap_or_default().to_string();
        let uuid = uuid::Uuid::new_v4().to_string();
        let work = self.dir.join("work").join(&uuid);
        let src_dir = work.join("src");
        let internal = |e: std::io::Error| AwsError::internal(e.to_string());
        std::fs::create_dir_all(&src_dir).map_err(internal)?;
        std::fs::create_dir_all(self.dir.join("logs")).map_err(internal)?;
        // The input artifacts: the first in CODEBUILD_SRC_DIR, the others beside it.
        let mut source_dirs = Vec::new();
        for (i, (artifact, files)) in o.sources.iter().enumerate() {
            let dir = if i == 0 {
                src_dir.clone()
            } else {
                work.join(format!("src-{artifact}"))
            };
            std::fs::create_dir_all(&dir).map_err(internal)?;
            for (path, content) in files {
                let target = dir.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(internal)?;
                }
                std::fs::write(&target, content).map_err(internal)?;
            }
            source_dirs.push((artifact.clone(), dir));
        }
        // The buildspec: the override, else the project's: inline, or a file of the source.
        let declared = o
            .buildspec_override
            .clone()
            .or(project["source"]["buildspec"].as_str().map(str::to_string))
            .filter(|t| !t.trim().is_empty());
        let text = match declared {
            Some(t) if t.contains('\n') || t.trim_start().starts_with("version") => t,
            named => {
                let file = named.unwrap_or_else(|| "buildspec.yml".to_string());
                if o.sources.is_empty() {
                    return Err(AwsError::new(
                        "InvalidInputException",
                        "The build has no buildspec: give the project an inline source.buildspec or StartBuild a buildspecOverride (a build outside a pipeline gets no source to read buildspec.yml from)",
                    ));
                }
                std::fs::read_to_string(src_dir.join(&file)).map_err(|_| {
                    AwsError::new(
                        "InvalidInputException",
                        format!("YAML_FILE_ERROR: the buildspec file {file} is not in the primary source"),
                    )
                })?
            }
        };
        let spec =
            buildspec::parse(&text).map_err(|e| AwsError::new("InvalidInputException", e))?;
        if spec.shell.as_deref().is_some_and(|s| s != "bash") {
            return Err(AwsError::new(
                "InvalidInputException",
                format!(
                    "env.shell {} is not supported by codepipeline-local: builds run with bash",
                    spec.shell.as_deref().unwrap_or_default()
                ),
            ));
        }
        let mut environment = project["environment"].clone();
        let mut variables: Vec<Value> = environment["environmentVariables"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for v in &o.env_overrides {
            variables.retain(|old| old["name"] != v["name"]);
            variables.push(v.clone());
        }
        for v in &variables {
            let kind = v["type"].as_str().unwrap_or("PLAINTEXT");
            if kind != "PLAINTEXT" {
                return Err(AwsError::new(
                    "InvalidInputException",
                    format!(
                        "Environment variable {} is of type {kind}, which codepipeline-local does not resolve yet (PLAINTEXT only)",
                        v["name"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        environment["environmentVariables"] = Value::Array(variables.clone());
        let timeout = o
            .timeout_override
            .or(project["timeoutInMinutes"].as_u64())
            .unwrap_or(60);
        let id = format!("{name}:{uuid}");
        let at = crate::aws::now_epoch();
        let number = {
            let builds = self.builds.read().expect("codebuild lock");
            builds
                .by_stream
                .values()
                .filter(|b| b["projectName"] == name.as_str())
                .count()
                + 1
        };
        let arn = format!(
            "arn:aws:codebuild:{}:{}:build/{id}",
            ctx.region, ctx.account_id
        );
        // A build outside a pipeline with S3 artifacts uploads them: to
        // <location>/<path>/<build id, with namespaceType BUILD_ID>/<name>, zipped or not.
        let declared = &project["artifacts"];
        let upload = (o.sources.is_empty() && declared["type"] == "S3")
            .then(|| {
                let section = spec.artifacts.clone()?;
                let name = match (&section.name, declared["overrideArtifactName"].as_bool()) {
                    (Some(n), Some(true)) => n.clone(),
                    _ => declared["name"].as_str().unwrap_or(&name).to_string(),
                };
                let mut key: Vec<String> = Vec::new();
                if let Some(path) = declared["path"].as_str().filter(|p| !p.is_empty()) {
                    key.push(path.trim_matches('/').to_string());
                }
                if declared["namespaceType"] == "BUILD_ID" {
                    key.push(uuid.clone());
                }
                key.push(name);
                Some(Upload {
                    bucket: declared["location"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    key: key.join("/"),
                    zip: declared["packaging"] == "ZIP",
                    section,
                })
            })
            .flatten();
        let artifacts_location = upload
            .as_ref()
            .map(|u| format!("arn:aws:s3:::{}/{}", u.bucket, u.key))
            .unwrap_or_default();
        let record = json!({
            "id": id,
            "arn": arn,
            "buildNumber": number,
            "startTime": at,
            "currentPhase": "INSTALL",
            "buildStatus": "IN_PROGRESS",
            "projectName": name,
            "phases": build::first_phases(at),
            "source": project["source"],
            "secondarySources": [],
            "secondarySourceVersions": [],
            "artifacts": {"location": artifacts_location},
            "secondaryArtifacts": [],
            "environment": environment,
            "serviceRole": project["serviceRole"],
            "logs": {"groupName": format!("/aws/codebuild/{name}"), "streamName": uuid, "deepLink": format!("file://{}", self.log_file(&id).display())},
            "timeoutInMinutes": timeout,
            "queuedTimeoutInMinutes": project["queuedTimeoutInMinutes"],
            "buildComplete": false,
            "initiator": o.initiator,
            "encryptionKey": project["encryptionKey"],
        });
        let stream = build_stream(&ctx.account_id, &ctx.region, &id);
        let recorded = self
            .log
            .append_durable(
                &stream,
                0,
                vec![BuildEvent::Started { build: record }.to_new_event()],
            )
            .await
            .map_err(|e| AwsError::internal(e.to_string()))?;
        recorded.iter().for_each(|r| self.apply(r));
        // The environment of the commands: CodeBuild's own variables, then the buildspec's, the
        // project's and the overrides (later ones win).
        let mut env = vec![
            ("CODEBUILD_BUILD_ID".to_string(), id.clone()),
            ("CODEBUILD_BUILD_ARN".to_string(), arn.clone()),
            ("CODEBUILD_BUILD_NUMBER".to_string(), number.to_string()),
            (
                "CODEBUILD_BUILD_IMAGE".to_string(),
                environment["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            ("CODEBUILD_BUILD_SUCCEEDING".to_string(), "1".to_string()),
            ("CODEBUILD_INITIATOR".to_string(), o.initiator.clone()),
            ("CODEBUILD_PROJECT_NAME".to_string(), name.clone()),
            (
                "CODEBUILD_SRC_DIR".to_string(),
                src_dir.to_string_lossy().to_string(),
            ),
            (
                "CODEBUILD_START_TIME".to_string(),
                ((at * 1000.0) as u64).to_string(),
            ),
            ("AWS_REGION".to_string(), ctx.region.clone()),
            ("AWS_DEFAULT_REGION".to_string(), ctx.region.clone()),
        ];
        for (artifact, dir) in source_dirs.iter().skip(1) {
            env.push((
                format!("CODEBUILD_SRC_DIR_{artifact}"),
                dir.to_string_lossy().to_string(),
            ));
        }
        env.extend(spec.variables.iter().cloned());
        for v in &variables {
            env.push((
                v["name"].as_str().unwrap_or_default().to_string(),
                v["value"].as_str().unwrap_or_default().to_string(),
            ));
        }
        let run = runner::Run {
            src_dir: src_dir.clone(),
            state_dir: work.join("state"),
            log: self.log_file(&id),
            log_max_bytes: self.log_max_bytes,
            env,
            spec: spec.clone(),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(timeout * 60),
        };
        let stop = Arc::new(AtomicBool::new(false));
        self.running
            .lock()
            .expect("codebuild running")
            .insert(id.clone(), stop.clone());
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let thread_id = id.clone();
        std::thread::Builder::new()
            .name(format!("build-{uuid}"))
            .spawn(move || {
                me.run_build(&stream, &thread_id, &run, &stop, upload.as_ref());
                let _ = done_tx.send(());
            })
            .map_err(|e| AwsError::internal(e.to_string()))?;
        Ok(Started {
            build: self.build(&ctx, &id).unwrap_or(Value::Null),
            id,
            spec,
            src_dir,
            done,
        })
    }

    /// Runs a build to its end, recording each phase as it ends (on the build's own thread).
    fn run_build(
        &self,
        stream: &str,
        id: &str,
        run: &runner::Run,
        stop: &AtomicBool,
        upload: Option<&Upload>,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                log::error!("build {id} could not run: {e}");
                return;
            }
        };
        let mut sequence = 1;
        let mut record = |event: BuildEvent| match rt.block_on(self.log.append_durable(
            stream,
            sequence,
            vec![event.to_new_event()],
        )) {
            Ok(recorded) => {
                sequence += recorded.len() as u64;
                recorded.iter().for_each(|r| self.apply(r));
            }
            Err(e) => log::error!("build {id}: an event was not recorded: {e}"),
        };
        let outcome = runner::run(run, stop, |phase_type, (status, message)| {
            record(BuildEvent::PhaseEnded {
                phase_type: phase_type.to_string(),
                status: status.to_string(),
                message,
                at: crate::aws::now_epoch(),
            })
        });
        let mut outcome = outcome;
        if let (runner::Outcome::Succeeded, Some(upload)) = (outcome, upload) {
            if let Err(message) = rt.block_on(self.upload(run, upload)) {
                record(BuildEvent::PhaseEnded {
                    phase_type: "UPLOAD_ARTIFACTS".into(),
                    status: "FAILED".into(),
                    message: Some(message),
                    at: crate::aws::now_epoch(),
                });
                outcome = runner::Outcome::Failed;
            }
        }
        let exported =
            if outcome == runner::Outcome::Succeeded || outcome == runner::Outcome::Failed {
                runner::exported(run, &run.spec.exported)
            } else {
                Vec::new()
            };
        record(BuildEvent::Finished {
            status: outcome.status().to_string(),
            exported,
            at: crate::aws::now_epoch(),
        });
        self.running.lock().expect("codebuild running").remove(id);
    }

    /// Uploads a build's artifacts to S3.
    async fn upload(&self, run: &runner::Run, upload: &Upload) -> Result<(), String> {
        use crate::s3::objects::PutAttributes;
        let objects = self
            .objects
            .get()
            .ok_or("no S3 to upload the artifacts to")?;
        let body = |bytes: Vec<u8>| -> crate::s3::store::BodyStream {
            use futures_util::StreamExt;
            futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]).boxed()
        };
        let failed = |e: crate::s3::store::S3StoreError| {
            format!(
                "CLIENT_ERROR: the artifacts could not be uploaded to s3://{}/{}: {e:?}",
                upload.bucket, upload.key
            )
        };
        if upload.zip {
            let zip = artifacts::pack(&run.src_dir, Some(&upload.section))?;
            objects
                .put(
                    &upload.bucket,
                    &upload.key,
                    &PutAttributes::default(),
                    body(zip),
                )
                .await
                .map_err(failed)?;
            return Ok(());
        }
        for (name, path) in artifacts::files(&run.src_dir, &upload.section)? {
            let content = std::fs::read(&path).map_err(|e| e.to_string())?;
            let key = format!("{}/{name}", upload.key);
            objects
                .put(
                    &upload.bucket,
                    &key,
                    &PutAttributes::default(),
                    body(content),
                )
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    fn batch_get_builds(&self, ctx: &RequestContext, input: &Value) -> Value {
        let mut found = Vec::new();
        let mut not_found = Vec::new();
        for id in input["ids"].as_array().into_iter().flatten() {
            let id = id.as_str().unwrap_or_default();
            match self.build(ctx, id) {
                Some(b) => found.push(b),
                None => not_found.push(Value::from(id)),
            }
        }
        json!({"builds": found, "buildsNotFound": not_found})
    }

    fn list_builds(
        &self,
        ctx: &RequestContext,
        input: &Value,
        project: Option<&str>,
    ) -> Result<Value, AwsError> {
        let prefix = build_stream(&ctx.account_id, &ctx.region, "");
        let builds = self.builds.read().expect("codebuild lock");
        let mut ids: Vec<String> = builds
            .order
            .iter()
            .filter(|s| s.starts_with(&prefix))
            .filter_map(|s| builds.by_stream.get(s))
            .filter(|b| project.is_none_or(|p| b["projectName"] == p))
            .map(|b| b["id"].as_str().unwrap_or_default().to_string())
            .collect();
        drop(builds);
        // Newest first unless asked otherwise, as CodeBuild lists them.
        if input["sortOrder"] != "ASCENDING" {
            ids.reverse();
        }
        let start =
            pagination::start_after(ids.iter().map(String::as_str), input["nextToken"].as_str())
                .ok_or_else(|| AwsError::new("InvalidInputException", "Invalid next token"))?;
        let page: Vec<&String> = ids.iter().skip(start).take(100).collect();
        let mut out = json!({ "ids": page });
        if start + page.len() < ids.len() {
            if let Some(last) = page.last() {
                out["nextToken"] = pagination::encode(last).into();
            }
        }
        Ok(out)
    }

    async fn stop_build(&self, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
        let id = input["id"].as_str().unwrap_or_default();
        let build = self.build(ctx, id).ok_or_else(|| {
            AwsError::new(
                "ResourceNotFoundException",
                format!("Build {id} cannot be found"),
            )
        })?;
        let id = build["id"].as_str().unwrap_or_default().to_string();
        let flag = self
            .running
            .lock()
            .expect("codebuild running")
            .get(&id)
            .cloned();
        if let Some(flag) = flag {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            // The build's processes are killed within a few milliseconds; wait (at most 10 s)
            // for its end to be recorded.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self
                .build(ctx, &id)
                .is_some_and(|b| b["buildComplete"] != true)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        Ok(json!({ "build": self.build(ctx, &id) }))
    }
}
