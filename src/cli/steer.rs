//! The commands that follow and steer a running server through CodePipeline's own operations:
//! `wait` (an execution, exit code by its final status), `watch` (a pipeline's stages and
//! actions, redrawn in place on a terminal, plain lines of changes when piped), `approve` /
//! `reject` (finding the approval's token) and `retry` (a failed stage).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::Common;
use super::client::{self, host_port, http};
use crate::admin::{HEALTH_PATH, HISTORY_PREFIX};
use crate::config::Config;

/// How often a running execution is looked at.
const EVERY: Duration = Duration::from_millis(500);

/// The exit code of a command that waited for an execution: 0 when it succeeded.
pub fn exit_code(status: &str) -> i32 {
    match status {
        "Succeeded" => 0,
        "Failed" => 2,
        "Stopped" => 3,
        "Superseded" => 4,
        "Cancelled" => 5,
        _ => 1,
    }
}

/// The exit code when `wait --timeout` ran out.
pub const TIMED_OUT: i32 = 124;

/// A running server, with the region the commands act in.
struct Server {
    addr: String,
    region: String,
}

impl Server {
    fn find(common: &Common) -> Result<Server, String> {
        let config = Config::load(
            common.config.as_deref(),
            std::env::vars(),
            &Default::default(),
        )?;
        let endpoint = client::endpoint(common, &config);
        let addr = host_port(&endpoint)?;
        match http(&addr, "GET", HEALTH_PATH, &[], b"") {
            Ok((200, _)) => Ok(Server {
                addr,
                region: client::region(common, &config),
            }),
            _ => Err(format!(
                "no codepipeline-local server answers at {endpoint}"
            )),
        }
    }

    fn call(&self, operation: &str, input: Value) -> Result<Value, String> {
        client::call(&self.addr, &self.region, operation, &input, &[])
    }

    fn state(&self, pipeline: &str) -> Result<Value, String> {
        self.call("GetPipelineState", json!({ "name": pipeline }))
    }
}

fn running(status: &str) -> bool {
    status == "InProgress" || status == "Stopping"
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `wait EXECUTION_ID [--timeout SECONDS]`: the final status line and the exit code.
pub fn wait(
    common: &Common,
    execution: &str,
    timeout: Option<u64>,
) -> Result<(String, i32), String> {
    let server = Server::find(common)?;
    // The execution's pipeline and region, from the history.
    let path = format!(
        "{HISTORY_PREFIX}/execution?{}",
        client::query(&[("id", Some(execution))])
    );
    let (status, body) = http(&server.addr, "GET", &path, &[], b"")?;
    let record: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        return Err(record["message"]
            .as_str()
            .unwrap_or("the server refused the request")
            .to_string());
    }
    let server = Server {
        region: text(&record["region"]),
        ..server
    };
    let pipeline = text(&record["pipeline"]);
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        let got = server.call(
            "GetPipelineExecution",
            json!({"pipelineName": pipeline, "pipelineExecutionId": execution}),
        )?;
        let e = &got["pipelineExecution"];
        let status = text(&e["status"]);
        if !running(&status) {
            let summary = e["statusSummary"]
                .as_str()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return Ok((
                format!("execution {execution} of {pipeline}: {status}{summary}\n"),
                exit_code(&status),
            ));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok((
                format!("execution {execution} of {pipeline} is still {status}\n"),
                TIMED_OUT,
            ));
        }
        std::thread::sleep(EVERY);
    }
}

/// One action's or stage's line of `watch`.
struct Line {
    key: String,
    status: String,
    started: Option<f64>,
    detail: String,
}

fn elapsed(from: Option<f64>, to: f64) -> String {
    let Some(from) = from else {
        return String::new();
    };
    let s = (to - from).max(0.0) as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// The lines `watch` shows for a pipeline's state.
fn lines(state: &Value) -> Vec<Line> {
    let mut out = Vec::new();
    for stage in state["stageStates"].as_array().into_iter().flatten() {
        let name = text(&stage["stageName"]);
        let t = &stage["inboundTransitionState"];
        let mut detail = text(&stage["latestExecution"]["pipelineExecutionId"]);
        if t["enabled"] == false {
            detail = format!(
                "transition disabled: {}",
                t["disabledReason"].as_str().unwrap_or_default()
            );
        }
        out.push(Line {
            key: name.clone(),
            status: text(&stage["latestExecution"]["status"]),
            started: None,
            detail,
        });
        for action in stage["actionStates"].as_array().into_iter().flatten() {
            let l = &action["latestExecution"];
            let detail = if let Some(m) = l["errorDetails"]["message"].as_str() {
                m.lines().next().unwrap_or_default().to_string()
            } else if l["token"].is_string() && l["status"] == "InProgress" {
                "waiting for approval".to_string()
            } else {
                l["summary"]
                    .as_str()
                    .and_then(|s| s.lines().next())
                    .unwrap_or_default()
                    .to_string()
            };
            out.push(Line {
                key: format!("{name}/{}", text(&action["actionName"])),
                status: text(&l["status"]),
                started: l["lastStatusChange"].as_f64(),
                detail,
            });
        }
    }
    out
}

/// `watch PIPELINE [--until-finished]`: on a terminal the view is redrawn in place; piped, a
/// line for each change. With `--until-finished`, ends when the newest execution ends, with
/// its exit code.
pub fn watch(
    common: &Common,
    pipeline: &str,
    until_finished: bool,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let server = Server::find(common)?;
    let terminal = std::io::stdout().is_terminal();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let state = server.state(pipeline)?;
        let newest = server.call(
            "ListPipelineExecutions",
            json!({"pipelineName": pipeline, "maxResults": 1}),
        )?;
        let latest = &newest["pipelineExecutionSummaries"][0];
        let now = crate::aws::now_epoch();
        let head = if latest.is_object() {
            let done = !running(&text(&latest["status"]));
            let to = if done {
                latest["lastUpdateTime"].as_f64().unwrap_or(now)
            } else {
                now
            };
            format!(
                "{pipeline}: execution {} {} ({})",
                text(&latest["pipelineExecutionId"]),
                text(&latest["status"]),
                elapsed(latest["startTime"].as_f64(), to)
            )
        } else {
            format!("{pipeline}: no executions")
        };
        let shown = lines(&state);
        let write =
            |out: &mut dyn Write, s: &str| out.write_all(s.as_bytes()).map_err(|e| e.to_string());
        if terminal {
            let mut screen = format!("\x1b[H\x1b[2J{head}\n");
            for l in &shown {
                let indent = if l.key.contains('/') { "  " } else { "" };
                screen.push_str(&format!(
                    "{indent}{:<28} {:<11} {:>7}  {}\n",
                    l.key.rsplit('/').next().unwrap_or_default(),
                    if l.status.is_empty() { "-" } else { &l.status },
                    if running(&l.status) {
                        elapsed(l.started, now)
                    } else {
                        String::new()
                    },
                    l.detail
                ));
            }
            write(out, &screen)?;
        } else {
            if seen.get("") != Some(&head) {
                write(out, &format!("{head}\n"))?;
                seen.insert(String::new(), head.clone());
            }
            for l in &shown {
                let said = format!("{} {}", l.status, l.detail);
                if l.status.is_empty() || seen.get(&l.key) == Some(&said) {
                    continue;
                }
                seen.insert(l.key.clone(), said);
                let at = chrono::Local::now().format("%H:%M:%S");
                let took = elapsed(l.started, now);
                write(
                    out,
                    &format!("{at} {} {} {took} {}\n", l.key, l.status, l.detail)
                        .replace("  ", " "),
                )?;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
        if until_finished && latest.is_object() && !running(&text(&latest["status"])) {
            return Ok(exit_code(&text(&latest["status"])));
        }
        std::thread::sleep(EVERY);
    }
}

/// `approve` / `reject PIPELINE STAGE ACTION [--summary TEXT]`: the approval waiting there gets
/// the result, with the token read from the pipeline's state.
pub fn review(
    common: &Common,
    pipeline: &str,
    stage: &str,
    action: &str,
    summary: Option<&str>,
    approve: bool,
) -> Result<String, String> {
    let server = Server::find(common)?;
    let state = server.state(pipeline)?;
    let waiting = state["stageStates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["stageName"] == stage)
        .flat_map(|s| s["actionStates"].as_array().into_iter().flatten())
        .find(|a| a["actionName"] == action)
        .map(|a| &a["latestExecution"])
        .filter(|l| l["status"] == "InProgress")
        .and_then(|l| l["token"].as_str());
    let Some(token) = waiting else {
        return Err(format!(
            "no approval waits at {stage}/{action} of pipeline {pipeline}"
        ));
    };
    let status = if approve { "Approved" } else { "Rejected" };
    server.call(
        "PutApprovalResult",
        json!({
            "pipelineName": pipeline, "stageName": stage, "actionName": action, "token": token,
            "result": {"summary": summary.unwrap_or_default(), "status": status},
        }),
    )?;
    Ok(format!(
        "{} {stage}/{action} of {pipeline}\n",
        status.to_lowercase()
    ))
}

/// `retry PIPELINE STAGE [--all]`: the stage's failed execution runs its failed actions (all
/// of them with `--all`) again.
pub fn retry(common: &Common, pipeline: &str, stage: &str, all: bool) -> Result<String, String> {
    let server = Server::find(common)?;
    let state = server.state(pipeline)?;
    let Some(found) = state["stageStates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["stageName"] == stage)
    else {
        return Err(format!("pipeline {pipeline} has no stage {stage}"));
    };
    let execution = text(&found["latestExecution"]["pipelineExecutionId"]);
    if execution.is_empty() {
        return Err(format!("stage {stage} of pipeline {pipeline} has not run"));
    }
    let mode = if all { "ALL_ACTIONS" } else { "FAILED_ACTIONS" };
    let answer = server.call(
        "RetryStageExecution",
        json!({"pipelineName": pipeline, "stageName": stage,
               "pipelineExecutionId": execution, "retryMode": mode}),
    )?;
    Ok(format!(
        "retrying stage {stage} of execution {} ({mode})\n",
        text(&answer["pipelineExecutionId"])
    ))
}
