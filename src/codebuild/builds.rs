//! Running builds: a build is recorded, its work dir prepared with its sources, and its
//! buildspec run phase by phase on a thread of its own (see [`super::runner`]); each phase's end
//! is recorded as it comes, and a build outside a pipeline uploads its artifacts at the end.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};

use super::build::{build_stream, BuildEvent};
use super::port::BuildError;
use super::{artifacts, build, buildspec, runner, CodeBuild, StartOptions, Started};
use crate::aws::RequestContext;
use crate::eventstore::EventType;

/// Where a build outside a pipeline puts its artifacts (project artifacts of type S3).
struct Upload {
    bucket: String,
    key: String,
    zip: bool,
    section: buildspec::Artifacts,
}

/// Moves the files of `from` into `to` (made empty first): a rename where both are on one
/// file system, a copy otherwise.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    copy_dir(from, to)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl CodeBuild {
    /// Starts a build: records it, prepares its work dir with `sources`, and runs it on a thread
    /// of its own. The answer says when it ends.
    pub async fn start(self: &Arc<Self>, o: StartOptions) -> Result<Started, BuildError> {
        let ctx = RequestContext {
            region: o.region.clone(),
            account_id: o.account.clone(),
            request_id: String::new(),
            rerun_of: None,
            host: String::new(),
            default_region: o.region.clone(),
        };
        let name = o.project.clone();
        let project = match &o.inline_project {
            Some(p) => p.clone(),
            None => self.project(&ctx, &name).ok_or_else(|| {
                BuildError::ProjectNotFound(format!(
                    "Project cannot be found: {}",
                    Self::arn(&ctx, &name)
                ))
            })?,
        };
        if !self.run_builds {
            return Err(BuildError::BuildsOff(
                "Builds are turned off on this codepipeline-local (run_builds = false)".into(),
            ));
        }
        let name = project["name"].as_str().unwrap_or_default().to_string();
        let uuid = uuid::Uuid::new_v4().to_string();
        let work = self.dir.join("work").join(&uuid);
        let src_dir = work.join("src");
        let internal = |e: std::io::Error| BuildError::Failed(e.to_string());
        std::fs::create_dir_all(&src_dir).map_err(internal)?;
        std::fs::create_dir_all(self.dir.join("logs")).map_err(internal)?;
        // The input artifacts: the first in CODEBUILD_SRC_DIR, the others beside it.
        let mut source_dirs = Vec::new();
        for (i, (artifact, from)) in o.sources.iter().enumerate() {
            let dir = if i == 0 {
                src_dir.clone()
            } else {
                work.join(format!("src-{artifact}"))
            };
            move_dir(from, &dir).map_err(internal)?;
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
                    return Err(BuildError::Invalid("The build has no buildspec: give the project an inline source.buildspec or StartBuild a buildspecOverride (a build outside a pipeline gets no source to read buildspec.yml from)".into(),
                    ));
                }
                std::fs::read_to_string(src_dir.join(&file)).map_err(|_| {
                    BuildError::Invalid(format!(
                        "YAML_FILE_ERROR: the buildspec file {file} is not in the primary source"
                    ))
                })?
            }
        };
        let spec = buildspec::parse(&text).map_err(BuildError::Invalid)?;
        if spec.shell.as_deref().is_some_and(|s| s != "bash") {
            return Err(BuildError::Invalid(format!(
                "env.shell {} is not supported by codepipeline-local: builds run with bash",
                spec.shell.as_deref().unwrap_or_default()
            )));
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
        let parameter = |var: &str, name: &str| {
            self.parameter(&o.account, &o.region, name).ok_or_else(|| {
                BuildError::Invalid(format!(
                    "Parameter Store parameter {name} of environment variable {var} does not exist"
                ))
            })
        };
        for v in &mut variables {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            match v["type"].as_str().unwrap_or("PLAINTEXT") {
                "PLAINTEXT" => {}
                "PARAMETER_STORE" => {
                    let value = parameter(&name, v["value"].as_str().unwrap_or_default())?;
                    v["value"] = value.into();
                }
                kind => {
                    return Err(BuildError::Invalid(format!(
                        "Environment variable {name} is of type {kind}, which codepipeline-local does not resolve (PLAINTEXT and PARAMETER_STORE only)"
                    )))
                }
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
            .map_err(|e| BuildError::Failed(e.to_string()))?;
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
        for (var, name) in &spec.parameter_store {
            env.push((var.clone(), parameter(var, name)?));
        }
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
            .map_err(|e| BuildError::Failed(e.to_string()))?;
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
}
