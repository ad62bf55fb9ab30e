//! AWS CodeBuild on the same endpoint (JSON 1.1, `CodeBuild_20161006`): build projects and
//! builds, for StartBuild and for the CodeBuild action of pipelines (which reaches it through
//! [`port::Builds`]). Requests are checked against AWS's own model
//! (`models/codebuild-2016-10-06.json`) in [`api`], the only layer that knows AWS's codes;
//! projects are event-sourced like pipelines.
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
//! - Environment variables of type SECRETS_MANAGER (and a buildspec's `env.secrets-manager`) are
//!   refused: Secrets Manager is not served. PARAMETER_STORE ones are read from the embedded
//!   Parameter Store when the build starts; one that names no parameter refuses StartBuild.

pub mod api;
pub mod artifacts;
pub mod build;
mod builds;
pub mod buildspec;
pub mod port;
pub mod project;
pub mod runner;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use serde_json::Value;

use self::build::{build_stream, BuildEvent, BUILD_STREAM_PREFIX};
use self::project::{project_stream, ProjectCommand, ProjectEvent, Refusal, PROJECT_STREAM_PREFIX};
use crate::aws::model::ServiceModel;
use crate::aws::RequestContext;
use crate::eventstore::{EventStore, EventType, RecordedEvent};

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

/// What a build is started with.
pub struct StartOptions {
    /// Account of the project.
    pub account: String,
    /// Region of the project.
    pub region: String,
    /// Project name (or ARN).
    pub project: String,
    /// A project given whole, in place of the named one (recorded nowhere).
    pub inline_project: Option<Value>,
    /// `buildspecOverride`.
    pub buildspec_override: Option<String>,
    /// `environmentVariablesOverride` (`EnvironmentVariable` wire shapes).
    pub env_overrides: Vec<Value>,
    /// `timeoutInMinutesOverride`.
    pub timeout_override: Option<u64>,
    /// Who started it.
    pub initiator: String,
    /// Input directories by artifact name, whose files are moved into the build's work dir: the
    /// first is the primary source (`CODEBUILD_SRC_DIR`), the others go in
    /// `CODEBUILD_SRC_DIR_<name>`.
    pub sources: Vec<(String, PathBuf)>,
}

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

/// Why a command on a project did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectFailure {
    /// The project refused it.
    Refused(Refusal),
    /// The store failed; nothing was acknowledged.
    Store(crate::eventstore::StoreError),
}

/// Builds by stream, and their streams in start order.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Builds {
    by_stream: HashMap<String, Value>,
    order: Vec<String>,
}

/// CodeBuild projects, event-sourced.
pub struct CodeBuild {
    log: Arc<dyn EventStore>,
    /// Projects by stream.
    projects: RwLock<BTreeMap<String, Value>>,
    /// Appends to project streams, remembering where each ends.
    writer: crate::eventstore::StreamWriter,
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
    parameters: std::sync::OnceLock<Arc<dyn port::ParameterLookup>>,
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
            writer: crate::eventstore::StreamWriter::new(4096),
            builds: RwLock::new(Builds::default()),
            dir,
            run_builds,
            log_max_bytes,
            running: Mutex::new(HashMap::new()),
            objects: std::sync::OnceLock::new(),
            parameters: std::sync::OnceLock::new(),
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

    /// The ARN of a project.
    pub fn arn(ctx: &RequestContext, name: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:project/{name}",
            ctx.region, ctx.account_id
        )
    }

    /// Decides and records a command on a project's stream; its state after, once durable.
    pub async fn execute(
        &self,
        account: &str,
        region: &str,
        name: &str,
        command: ProjectCommand,
    ) -> Result<Option<Value>, ProjectFailure> {
        let stream = project_stream(account, region, name);
        let current = || {
            self.projects
                .read()
                .expect("codebuild lock")
                .get(&stream)
                .cloned()
        };
        let decide = || project::handle(&current(), command);
        let recorded = self
            .writer
            .append(self.log.as_ref(), &stream, decide)
            .await
            .map_err(ProjectFailure::Store)?
            .map_err(ProjectFailure::Refused)?;
        recorded.iter().for_each(|r| self.apply(r));
        Ok(current())
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

    /// Where `PARAMETER_STORE` variables are read.
    pub fn set_parameters(&self, parameters: Arc<dyn port::ParameterLookup>) {
        let _ = self.parameters.set(parameters);
    }

    /// A Parameter Store parameter's value, for a build of `account` and `region`.
    fn parameter(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.parameters.get()?.value(account, region, name)
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

    /// Stops a build by id or ARN and waits (at most 10 s) for its end to be recorded; the build
    /// after, or `None` when there is no such build.
    pub async fn stop(&self, ctx: &RequestContext, id_or_arn: &str) -> Option<Value> {
        let id = self.build(ctx, id_or_arn)?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let flag = self
            .running
            .lock()
            .expect("codebuild running")
            .get(&id)
            .cloned();
        if let Some(flag) = flag {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            // The build's processes are killed within a few milliseconds.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self
                .build(ctx, &id)
                .is_some_and(|b| b["buildComplete"] != true)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        self.build(ctx, &id)
    }

    /// The projects of an account and region.
    pub fn projects_in(&self, account: &str, region: &str) -> Vec<Value> {
        let prefix = project_stream(account, region, "");
        self.projects
            .read()
            .expect("codebuild lock")
            .range(prefix.clone()..)
            .take_while(|(stream, _)| stream.starts_with(&prefix))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The ids of the builds of an account and region (of one project, when named), oldest
    /// first.
    pub fn build_ids(&self, account: &str, region: &str, project: Option<&str>) -> Vec<String> {
        let prefix = build_stream(account, region, "");
        let builds = self.builds.read().expect("codebuild lock");
        builds
            .order
            .iter()
            .filter(|s| s.starts_with(&prefix))
            .filter_map(|s| builds.by_stream.get(s))
            .filter(|b| project.is_none_or(|p| b["projectName"] == p))
            .map(|b| b["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// What a checkpoint keeps of CodeBuild.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    projects: BTreeMap<String, Value>,
    builds: Builds,
}

impl crate::checkpoint::Projection for CodeBuild {
    fn name(&self) -> &'static str {
        "codebuild"
    }

    fn apply(&self, record: &RecordedEvent) {
        CodeBuild::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let projects = self.projects.read().expect("codebuild lock");
        let builds = self.builds.read().expect("codebuild lock");
        serde_json::value::to_raw_value(&serde_json::json!({
            "projects": &*projects,
            "builds": &*builds,
        }))
        .map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let kept: Kept = serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.projects.write().expect("codebuild lock") = kept.projects;
        *self.builds.write().expect("codebuild lock") = kept.builds;
        Ok(())
    }

    fn clear(&self) {
        self.projects.write().expect("codebuild lock").clear();
        *self.builds.write().expect("codebuild lock") = Builds::default();
    }
}
