//! The `history`, `replay`, `rerun`, `diff`, `export` and `logs` commands.
//!
//! They ask a running server (its read-only history API, and StartPipelineExecution for
//! `rerun`); when none answers at the endpoint they read the data dir themselves, since the
//! store admits one process at a time. Tables by default (status coloured on a terminal), JSON
//! with `--output json`; errors are one line and a non-zero exit.
//!
//! `args` holds what clap parses, `client` where the history is read from, `render` the
//! tables; what is computed from the log (timelines, states at a point, diffs, the input of a
//! rerun) lives in [`crate::history`].

pub mod args;
mod aws_config;
mod client;
pub mod pull_requests;
mod render;
pub mod steer;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::{json, Value};

pub use self::args::{Common, HistoryCommand, Output, Request};
use self::client::{endpoint, host_port, http, query, Source};
use self::render::*;
use crate::admin::{BUILD_LOG_PATH, HEALTH_PATH};
use crate::config::Config;
use crate::history::{describe, diff, fold, sequence_at, stage_states, ActionFilter};

/// Runs a command; the text to print, or the one-line error.
pub fn run(common: &Common, request: &Request) -> Result<String, String> {
    let config = Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &Default::default(),
    )?;
    let region = client::region(common, &config);
    let source = Source::find(common, &config)?;
    let color = colored(common);
    let json_out = common.output == Output::Json;
    match request {
        Request::History(HistoryCommand::Pipelines) => {
            let all = source.pipelines()?;
            let list: Vec<Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["region"] == region.as_str())
                .cloned()
                .collect();
            let list = Value::Array(list);
            Ok(if json_out {
                pretty(&list)
            } else {
                pipelines_table(&list, color)
            })
        }
        Request::History(HistoryCommand::Executions {
            pipeline,
            status,
            limit,
        }) => {
            check_limit(*limit)?;
            if let Some(s) = status {
                check_status(s, EXECUTION_STATUSES)?;
            }
            let list = source.executions(&region, pipeline, status.as_deref(), *limit)?;
            Ok(if json_out {
                pretty(&list)
            } else {
                executions_table(&list, color)
            })
        }
        Request::History(HistoryCommand::Actions {
            pipeline,
            execution,
            stage,
            action,
            status,
            since,
            limit,
        }) => {
            check_limit(*limit)?;
            if let Some(s) = status {
                check_status(s, ACTION_STATUSES)?;
            }
            if let Some(stage) = stage {
                check_stage(&source, &region, pipeline, stage)?;
            }
            let filter = ActionFilter {
                execution: execution.clone(),
                stage: stage.clone(),
                action: action.clone(),
                status: status.clone(),
                since: since.as_deref().map(args::parse_since).transpose()?,
            };
            let list = source.actions(&region, pipeline, &filter, *limit)?;
            Ok(if json_out {
                pretty(&list)
            } else {
                actions_table(&list, color)
            })
        }
        Request::Replay { execution, at } => {
            let record = source.execution(execution)?;
            let events: Vec<crate::eventstore::RecordedEvent> =
                serde_json::from_value(record["events"].clone()).map_err(|e| e.to_string())?;
            match at {
                None => {
                    let timeline = describe(&events);
                    Ok(if json_out {
                        pretty(&Value::Array(timeline))
                    } else {
                        timeline_table(&record, &timeline, color)
                    })
                }
                Some(at) => {
                    let upto = sequence_at(&events, at)?;
                    let state = fold(&record["declaration"], &events, Some(upto));
                    let mut states = stage_states(&state);
                    states["afterEvent"] = upto.into();
                    Ok(if json_out {
                        pretty(&states)
                    } else {
                        state_table(&states, color)
                    })
                }
            }
        }
        Request::Export { execution } => {
            let record = source.execution(execution)?;
            let mut out = String::new();
            let head = json!({
                "pipelineExecutionId": record["pipelineExecutionId"],
                "pipeline": record["pipeline"],
                "region": record["region"],
                "pipelineVersion": record["pipelineVersion"],
                "declaration": record["declaration"],
            });
            out.push_str(&head.to_string());
            out.push('\n');
            for event in record["events"].as_array().into_iter().flatten() {
                out.push_str(&event.to_string());
                out.push('\n');
            }
            Ok(out)
        }
        Request::Diff { a, b } => {
            let (ra, rb) = (source.execution(a)?, source.execution(b)?);
            if ra["pipeline"] != rb["pipeline"] || ra["region"] != rb["region"] {
                eprintln!(
                    "codepipeline-local: warning: {a} is an execution of {} ({}) and {b} of {} ({}): \
                     their actions are compared by stage and action name",
                    ra["pipeline"].as_str().unwrap_or_default(),
                    ra["region"].as_str().unwrap_or_default(),
                    rb["pipeline"].as_str().unwrap_or_default(),
                    rb["region"].as_str().unwrap_or_default(),
                );
            }
            let diff = diff(&ra, &rb)?;
            Ok(if json_out {
                pretty(&diff)
            } else {
                diff_table(&diff, color)
            })
        }
        Request::Rerun { execution } => {
            let Source::Remote(endpoint) = &source else {
                return Err(format!(
                    "rerun starts an execution: it needs a running server (none answers at {})",
                    endpoint(common, &config)
                ));
            };
            let record = source.execution(execution)?;
            let id = client::rerun(endpoint, &record)?;
            Ok(if json_out {
                pretty(&json!({"pipelineExecutionId": id, "rerunOf": execution}))
            } else {
                format!(
                    "started execution {id} of {} (rerun of {execution})\n",
                    record["pipeline"].as_str().unwrap_or_default()
                )
            })
        }
    }
}

/// The statuses an execution can have.
const EXECUTION_STATUSES: &[&str] = &[
    "Cancelled",
    "InProgress",
    "Stopped",
    "Stopping",
    "Succeeded",
    "Superseded",
    "Failed",
];

/// The statuses an action execution can have.
const ACTION_STATUSES: &[&str] = &["InProgress", "Abandoned", "Succeeded", "Failed"];

/// The most a `--limit` may ask for.
const MAX_LIMIT: usize = 10_000;

/// Whether tables are coloured: on a terminal, unless `NO_COLOR` is set (no-color.org).
fn colored(common: &Common) -> bool {
    common.output == Output::Table
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn check_limit(limit: usize) -> Result<(), String> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(format!("--limit {limit}: give 1 to {MAX_LIMIT}"));
    }
    Ok(())
}

fn check_status(status: &str, known: &[&str]) -> Result<(), String> {
    if known.iter().any(|k| k.eq_ignore_ascii_case(status)) {
        return Ok(());
    }
    Err(format!(
        "--status {status}: give one of {}",
        known.join(", ")
    ))
}

/// An unknown stage is an error, not an empty table.
fn check_stage(source: &Source, region: &str, pipeline: &str, stage: &str) -> Result<(), String> {
    let all = source.pipelines()?;
    let Some(found) = all
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == pipeline && p["region"] == region)
    else {
        return Err(format!("pipeline {pipeline} does not exist in {region}"));
    };
    let stages: Vec<&str> = found["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if stages.contains(&stage) {
        return Ok(());
    }
    Err(format!(
        "--stage {stage}: pipeline {pipeline} has no such stage (its stages: {})",
        stages.join(", ")
    ))
}

/// `codepipeline-local logs BUILD_ID [--follow]`: a build's output, written to `out` as it comes.
/// From the server when one answers; else from the data dir's copy of the output.
pub fn logs(common: &Common, build: &str, follow: bool, out: &mut dyn Write) -> Result<(), String> {
    let config = Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &Default::default(),
    )?;
    let endpoint = endpoint(common, &config);
    let remote = if common.data_dir.is_some() && common.endpoint.is_none() {
        None
    } else {
        let addr = host_port(&endpoint)?;
        match http(&addr, "GET", HEALTH_PATH, &[], b"") {
            Ok((200, _)) => Some(addr),
            _ if common.endpoint.is_some() => {
                return Err(format!(
                    "no codepipeline-local server answers at {endpoint}"
                ))
            }
            _ => None,
        }
    };
    // A build id is `project:uuid`; anything else names a Lambda function or request id.
    if !build.contains(':') {
        let text = match &remote {
            Some(addr) => {
                let path = format!(
                    "{}?{}",
                    crate::admin::LAMBDA_LOG_PATH,
                    query(&[("name", Some(build))])
                );
                let (status, body) = http(addr, "GET", &path, &[], b"")?;
                let answer: Value = serde_json::from_slice(&body)
                    .map_err(|_| format!("the server answered {status} with no JSON"))?;
                if status != 200 {
                    return Err(format!(
                        "{build}: {}",
                        answer["message"].as_str().unwrap_or("no output")
                    ));
                }
                answer["text"]
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec()
            }
            None => {
                let dir = common.data_dir.clone().unwrap_or(config.data_dir.clone());
                let found = crate::lambda::find_logs(&dir, build, 10);
                if found.is_empty() {
                    return Err(format!(
                        "no Lambda function or request {build} has output in {}",
                        dir.display()
                    ));
                }
                found.into_iter().flat_map(|(_, text)| text).collect()
            }
        };
        return out.write_all(&text).map_err(|e| e.to_string());
    }
    let Some(addr) = remote else {
        // Offline: the file the server kept (no build runs without a server).
        let dir = common.data_dir.clone().unwrap_or(config.data_dir.clone());
        let uuid = build.rsplit(':').next().unwrap_or(build);
        let file = dir
            .join("codebuild")
            .join("logs")
            .join(format!("{uuid}.log"));
        let text = std::fs::read(&file)
            .map_err(|_| format!("build {build} has no output in {}", dir.display()))?;
        return out.write_all(&text).map_err(|e| e.to_string());
    };
    let mut offset = 0u64;
    loop {
        let path = format!(
            "{}?{}",
            BUILD_LOG_PATH,
            query(&[("id", Some(build)), ("offset", Some(&offset.to_string()))])
        );
        let (status, body) = http(&addr, "GET", &path, &[], b"")?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the server answered {status} with no JSON"))?;
        if status != 200 {
            return Err(answer["message"]
                .as_str()
                .unwrap_or("the server refused the request")
                .to_string());
        }
        let text = answer["text"].as_str().unwrap_or_default();
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        offset = answer["nextOffset"].as_u64().unwrap_or(offset);
        // Done when not following, or when the build ended and everything was read.
        if !follow || (answer["complete"] == true && text.is_empty()) {
            return Ok(());
        }
        if text.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
