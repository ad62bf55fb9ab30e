//! The `history`, `replay`, `rerun`, `diff` and `export` commands.
//!
//! They ask a running server (its read-only history API, and StartPipelineExecution for
//! `rerun`); when none answers at the endpoint they read the data dir themselves, since the
//! store admits one process at a time. Tables by default (status coloured on a terminal), JSON
//! with `--output json`; errors are one line and a non-zero exit.

use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::TimeZone;
use serde_json::{json, Value};

use super::{describe, fold, stage_states, ActionFilter, HistoryReader, ADMIN_PREFIX};
use crate::config::Config;

/// How the commands print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Where the history is read from, and how it is printed.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Common {
    /// The server to ask [default: http://HOST:PORT from the configuration].
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Read this data dir directly (no server may hold it) [default: data_dir from the
    /// configuration, when no server answers].
    #[arg(long, global = true)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The region of the pipelines [default: AWS_REGION, AWS_DEFAULT_REGION, or the
    /// configuration's region].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// `table` or `json`.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// A TOML file with settings.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
}

/// `history …`
#[derive(clap::Subcommand, Clone, Debug)]
pub enum HistoryCommand {
    /// Every pipeline, with its latest execution.
    Pipelines,
    /// A pipeline's executions, newest first.
    Executions {
        /// Pipeline name.
        pipeline: String,
        /// Only executions with this status (Succeeded, Failed, InProgress, Stopped, …).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A pipeline's action executions, newest first.
    Actions {
        /// Pipeline name.
        pipeline: String,
        /// Only those of this execution.
        #[arg(long)]
        execution: Option<String>,
        /// Only those in this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only those of this action.
        #[arg(long)]
        action: Option<String>,
        /// Only those with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only those started within this long (`90s`, `30m`, `2h`, `7d`) or since this time
        /// (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// One of the debugging commands, parsed.
#[derive(Clone, Debug)]
pub enum Request {
    /// `history …`
    History(HistoryCommand),
    /// `replay ID [--at N|TIME]`
    Replay {
        /// Execution id.
        execution: String,
        /// An event sequence number or a time.
        at: Option<String>,
    },
    /// `rerun ID`
    Rerun {
        /// Execution id.
        execution: String,
    },
    /// `diff A B`
    Diff {
        /// First execution id.
        a: String,
        /// Second execution id.
        b: String,
    },
    /// `export ID`
    Export {
        /// Execution id.
        execution: String,
    },
}

/// Runs a command; the text to print, or the one-line error.
pub fn run(common: &Common, request: &Request) -> Result<String, String> {
    let config = Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &Default::default(),
    )?;
    let region = common
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .unwrap_or(config.region.clone());
    let source = Source::find(common, &config)?;
    let color = common.output == Output::Table && std::io::stdout().is_terminal();
    let json_out = common.output == Output::Json;
    match request {
        Request::History(HistoryCommand::Pipelines) => {
            let list = source.pipelines()?;
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
            let filter = ActionFilter {
                execution: execution.clone(),
                stage: stage.clone(),
                action: action.clone(),
                status: status.clone(),
                since: since.as_deref().map(parse_since).transpose()?,
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
                    let mut states = stage_states(&record["declaration"], &state);
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
            let id = rerun(endpoint, &record)?;
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

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn endpoint(common: &Common, config: &Config) -> String {
    common
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", config.host, config.port))
}

/// The server, or the data dir read directly.
enum Source {
    Remote(String),
    Local(Box<HistoryReader>),
}

impl Source {
    fn find(common: &Common, config: &Config) -> Result<Source, String> {
        let endpoint = endpoint(common, config);
        if let Some(dir) = &common.data_dir {
            if common.endpoint.is_none() {
                return HistoryReader::open(dir, config.cache_mb)
                    .map(|r| Source::Local(Box::new(r)))
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()));
            }
        }
        let addr = host_port(&endpoint)?;
        match http(&addr, "GET", crate::server::HEALTH_PATH, &[], b"") {
            Ok((200, _)) => return Ok(Source::Remote(addr)),
            Ok(_) | Err(_) if common.endpoint.is_some() => {
                return Err(format!(
                    "no codepipeline-local server answers at {endpoint}"
                ))
            }
            _ => {}
        }
        let dir = &config.data_dir;
        HistoryReader::open(dir, config.cache_mb)
            .map(|r| Source::Local(Box::new(r)))
            .map_err(|e| {
                format!(
                    "no server answers at {endpoint}, and {} cannot be read: {e}",
                    dir.display()
                )
            })
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let Source::Remote(addr) = self else {
            unreachable!("only a remote source is asked over HTTP")
        };
        let (status, body) = http(addr, "GET", path, &[], b"")?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the server answered {status} with no JSON"))?;
        if status == 200 {
            Ok(value)
        } else {
            Err(value["message"]
                .as_str()
                .unwrap_or("the server refused the request")
                .to_string())
        }
    }

    fn pipelines(&self) -> Result<Value, String> {
        match self {
            Source::Local(r) => Ok(r.pipelines()),
            Source::Remote(_) => self.get(&format!("{ADMIN_PREFIX}/pipelines")),
        }
    }

    fn executions(
        &self,
        region: &str,
        pipeline: &str,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Value, String> {
        match self {
            Source::Local(r) => r
                .executions(region, pipeline, status, limit)
                .map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{ADMIN_PREFIX}/executions?{}",
                query(&[
                    ("region", Some(region)),
                    ("pipeline", Some(pipeline)),
                    ("status", status),
                    ("limit", Some(&limit.to_string())),
                ])
            )),
        }
    }

    fn actions(
        &self,
        region: &str,
        pipeline: &str,
        filter: &ActionFilter,
        limit: usize,
    ) -> Result<Value, String> {
        match self {
            Source::Local(r) => r
                .actions(region, pipeline, filter, limit)
                .map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{ADMIN_PREFIX}/actions?{}",
                query(&[
                    ("region", Some(region)),
                    ("pipeline", Some(pipeline)),
                    ("execution", filter.execution.as_deref()),
                    ("stage", filter.stage.as_deref()),
                    ("action", filter.action.as_deref()),
                    ("status", filter.status.as_deref()),
                    ("since", filter.since.map(|s| s.to_string()).as_deref()),
                    ("limit", Some(&limit.to_string())),
                ])
            )),
        }
    }

    fn execution(&self, id: &str) -> Result<Value, String> {
        match self {
            Source::Local(r) => r.execution(id).map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{ADMIN_PREFIX}/execution?{}",
                query(&[("id", Some(id))])
            )),
        }
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn host_port(endpoint: &str) -> Result<String, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("the endpoint {endpoint} is not an http:// address"))?;
    Ok(rest.trim_end_matches('/').to_string())
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", encode(v.as_ref()?))))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let unreachable =
        |e: std::io::Error| format!("no codepipeline-local server answers at http://{addr}: {e}");
    let socket = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| format!("{addr} names no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, Duration::from_secs(2)).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(unreachable)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    stream.write_all(body).map_err(unreachable)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(unreachable)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the server's answer has no head")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the server's answer has no status")?;
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok((status, body))
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || data.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[(line_end + 4 + size).min(data.len())..];
    }
    out
}

/// `--since`: a duration back from now, or an RFC 3339 time; epoch seconds.
fn parse_since(s: &str) -> Result<f64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros() as f64 / 1e6);
    }
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: f64 = number.parse().map_err(|_| {
        format!("--since {s}: give a duration (90s, 30m, 2h, 7d) or an RFC 3339 time")
    })?;
    let seconds = match unit {
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("--since {s}: the unit must be s, m, h or d")),
    };
    Ok(crate::aws::now_epoch() - seconds)
}

/// The last event sequence `--at` names: a number, or the last event recorded at or before a
/// time (RFC 3339 or epoch seconds).
fn sequence_at(events: &[crate::eventstore::RecordedEvent], at: &str) -> Result<u64, String> {
    let last = events.last().map_or(0, |e| e.sequence);
    if let Ok(n) = at.parse::<u64>() {
        if n == 0 || n > last {
            return Err(format!("--at {n}: the execution has events 1 to {last}"));
        }
        return Ok(n);
    }
    let time = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .or_else(|_| at.parse::<f64>())
        .map_err(|_| format!("--at {at}: give an event number or a time (RFC 3339)"))?;
    events
        .iter()
        .rev()
        // Half a microsecond of slack: the time may be written from the recorded one.
        .find(|e| e.recorded_at <= time + 5e-7)
        .map(|e| e.sequence)
        .ok_or_else(|| format!("--at {at}: the execution had not started then"))
}

/// Starts the execution again with its recorded variables and source revisions.
fn rerun(addr: &str, record: &Value) -> Result<String, String> {
    let events: Vec<crate::eventstore::RecordedEvent> =
        serde_json::from_value(record["events"].clone()).map_err(|e| e.to_string())?;
    let e = fold(&record["declaration"], &events, None);
    let mut input = json!({"name": record["pipeline"]});
    let revisions: Vec<Value> = e
        .runs
        .iter()
        .filter_map(|r| {
            let revision = r.output.as_ref()?.revision.clone()?;
            Some(json!({"actionName": r.action, "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": revision}))
        })
        .collect();
    if !revisions.is_empty() {
        input["sourceRevisions"] = revisions.into();
    }
    if !e.variables.is_empty() {
        input["variables"] = e
            .variables
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect::<Vec<_>>()
            .into();
    }
    let original = record["pipelineExecutionId"].as_str().unwrap_or_default();
    let region = record["region"].as_str().unwrap_or_default();
    let credential = format!(
        "AWS4-HMAC-SHA256 Credential=test/{}/{region}/codepipeline/aws4_request, SignedHeaders=host, Signature=0",
        chrono::Utc::now().format("%Y%m%d")
    );
    let (status, body) = http(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "X-Amz-Target",
                "CodePipeline_20150709.StartPipelineExecution",
            ),
            ("Authorization", &credential),
            (crate::server::RERUN_HEADER, original),
        ],
        input.to_string().as_bytes(),
    )?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        return Err(format!(
            "the server refused the rerun: {}: {}",
            answer["__type"].as_str().unwrap_or("error"),
            answer["message"].as_str().unwrap_or_default()
        ));
    }
    answer["pipelineExecutionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the server started no execution".to_string())
}

/// What differs between two executions, action by action.
fn diff(a: &Value, b: &Value) -> Result<Value, String> {
    let fold_of = |r: &Value| -> Result<crate::codepipeline::execution::Execution, String> {
        let events: Vec<crate::eventstore::RecordedEvent> =
            serde_json::from_value(r["events"].clone()).map_err(|e| e.to_string())?;
        Ok(fold(&r["declaration"], &events, None))
    };
    let (ea, eb) = (fold_of(a)?, fold_of(b)?);
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for e in [&ea, &eb] {
        for r in &e.runs {
            if !seen.contains(&(r.stage.clone(), r.action.clone())) {
                seen.push((r.stage.clone(), r.action.clone()));
            }
        }
    }
    let side = |e: &crate::codepipeline::execution::Execution, stage: &str, action: &str| {
        let r = e
            .runs
            .iter()
            .rev()
            .find(|r| r.stage == stage && r.action == action)?;
        Some(json!({
            "status": r.status,
            "revision": r.output.as_ref().and_then(|o| o.revision.clone()),
            "resolvedConfiguration": r.input.resolved_configuration,
            "outputVariables": r.output.as_ref().map(|o| o.output_variables.clone()).unwrap_or_default(),
            "error": r.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)),
        }))
    };
    for (stage, action) in seen {
        let (sa, sb) = (side(&ea, &stage, &action), side(&eb, &stage, &action));
        let mut differs = Vec::new();
        match (&sa, &sb) {
            (Some(x), Some(y)) => {
                for field in [
                    "status",
                    "revision",
                    "resolvedConfiguration",
                    "outputVariables",
                    "error",
                ] {
                    if x[field] != y[field] {
                        differs.push(field);
                    }
                }
            }
            _ => differs.push("ran"),
        }
        rows.push(
            json!({"stageName": stage, "actionName": action, "a": sa, "b": sb, "differs": differs}),
        );
    }
    let execution = |e: &crate::codepipeline::execution::Execution| {
        json!({
            "pipelineExecutionId": e.id,
            "status": e.status,
            "pipelineVersion": e.pipeline_version,
            "variables": e.variables,
            "startTime": e.started,
            "lastUpdateTime": e.updated,
            "statusSummary": e.summary,
        })
    };
    let (xa, xb) = (execution(&ea), execution(&eb));
    let differs: Vec<&str> = ["status", "pipelineVersion", "variables", "statusSummary"]
        .into_iter()
        .filter(|f| xa[*f] != xb[*f])
        .collect();
    Ok(json!({"a": xa, "b": xb, "differs": differs, "actions": rows}))
}

// ---- tables ----

fn local_time(epoch: &Value) -> String {
    let Some(t) = epoch.as_f64() else {
        return String::new();
    };
    chrono::Local
        .timestamp_millis_opt((t * 1000.0) as i64)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn duration(from: &Value, to: &Value) -> String {
    let (Some(a), Some(b)) = (from.as_f64(), to.as_f64()) else {
        return String::new();
    };
    let s = (b - a).max(0.0);
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

fn paint(status: &str, color: bool) -> String {
    if !color {
        return status.to_string();
    }
    let code = match status {
        "Succeeded" => "32",
        "Failed" => "31",
        "InProgress" | "Stopping" => "36",
        "Stopped" | "Cancelled" | "Superseded" | "Abandoned" => "33",
        _ => return status.to_string(),
    };
    format!("\x1b[{code}m{status}\x1b[0m")
}

/// Aligned columns; `status_column` is coloured (its width counts the plain text).
fn table(
    headers: &[&str],
    rows: Vec<Vec<String>>,
    status_column: Option<usize>,
    color: bool,
) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>, paint_status: bool| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let text = if paint_status && Some(i) == status_column {
                paint(cell, color)
            } else {
                cell.clone()
            };
            out.push_str(&text);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect(), false);
    for row in rows {
        out.push_str(&line(row, true));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn pipelines_table(list: &Value, color: bool) -> String {
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let l = &p["latestExecution"];
            vec![
                text(&p["name"]),
                text(&p["region"]),
                text(&p["version"]),
                text(&p["executions"]),
                text(&l["status"]),
                local_time(&l["startTime"]),
                text(&l["pipelineExecutionId"]),
            ]
        })
        .collect();
    table(
        &[
            "PIPELINE",
            "REGION",
            "VERSION",
            "EXECUTIONS",
            "LATEST",
            "STARTED",
            "EXECUTION",
        ],
        rows,
        Some(4),
        color,
    )
}

fn executions_table(list: &Value, color: bool) -> String {
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                text(&e["pipelineExecutionId"]),
                text(&e["status"]),
                local_time(&e["startTime"]),
                duration(&e["startTime"], &e["lastUpdateTime"]),
                text(&e["trigger"]["triggerType"]),
                text(&e["statusSummary"]),
            ]
        })
        .collect();
    table(
        &[
            "EXECUTION",
            "STATUS",
            "STARTED",
            "DURATION",
            "TRIGGER",
            "SUMMARY",
        ],
        rows,
        Some(1),
        color,
    )
}

fn actions_table(list: &Value, color: bool) -> String {
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let detail = if a["errorDetails"].is_object() {
                text(&a["errorDetails"]["message"])
            } else {
                text(&a["summary"])
            };
            vec![
                local_time(&a["startTime"]),
                duration(&a["startTime"], &a["lastUpdateTime"]),
                text(&a["stageName"]),
                text(&a["actionName"]),
                text(&a["status"]),
                text(&a["pipelineExecutionId"]),
                detail,
            ]
        })
        .collect();
    table(
        &[
            "STARTED",
            "DURATION",
            "STAGE",
            "ACTION",
            "STATUS",
            "EXECUTION",
            "DETAIL",
        ],
        rows,
        Some(4),
        color,
    )
}

fn timeline_table(record: &Value, timeline: &[Value], color: bool) -> String {
    let start = timeline
        .first()
        .map(|e| e["recordedAt"].clone())
        .unwrap_or(Value::Null);
    let mut out = format!(
        "execution {} of {} (version {}), started {}\n",
        text(&record["pipelineExecutionId"]),
        text(&record["pipeline"]),
        text(&record["pipelineVersion"]),
        local_time(&start)
    );
    let rows = timeline
        .iter()
        .map(|e| {
            let d = &e["details"];
            let detail = if d["errorDetails"].is_object() {
                text(&d["errorDetails"]["message"])
            } else if let Some(arts) = d["outputArtifacts"].as_array().filter(|a| !a.is_empty()) {
                arts.iter()
                    .map(|a| {
                        format!(
                            "{} → s3://{}/{}",
                            text(&a["name"]),
                            text(&a["s3location"]["bucket"]),
                            text(&a["s3location"]["key"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else if d["resolvedConfiguration"].is_object() {
                text(&d["resolvedConfiguration"])
            } else if d["trigger"].is_object() {
                text(&d["trigger"]["triggerType"])
            } else if d["summary"].is_string() {
                text(&d["summary"])
            } else {
                String::new()
            };
            vec![
                text(&e["sequence"]),
                format!("+{:.3}s", e["offsetSeconds"].as_f64().unwrap_or(0.0)),
                text(&e["event"]),
                text(&e["stageName"]),
                text(&e["actionName"]),
                text(&e["status"]),
                detail,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "#", "OFFSET", "EVENT", "STAGE", "ACTION", "STATUS", "DETAIL",
        ],
        rows,
        Some(5),
        color,
    ));
    out
}

fn state_table(states: &Value, color: bool) -> String {
    let mut out = format!(
        "execution {} after event {}: {}\n",
        text(&states["pipelineExecutionId"]),
        text(&states["afterEvent"]),
        paint(&text(&states["status"]), color)
    );
    let mut rows = Vec::new();
    for stage in states["stageStates"].as_array().into_iter().flatten() {
        rows.push(vec![
            text(&stage["stageName"]),
            String::new(),
            text(&stage["latestExecution"]["status"]),
            String::new(),
        ]);
        for action in stage["actionStates"].as_array().into_iter().flatten() {
            let l = &action["latestExecution"];
            let detail = if l["errorDetails"].is_object() {
                text(&l["errorDetails"]["message"])
            } else if l["token"].is_string() {
                format!("token {}", text(&l["token"]))
            } else {
                text(&l["summary"])
            };
            rows.push(vec![
                String::new(),
                text(&action["actionName"]),
                text(&l["status"]),
                detail,
            ]);
        }
    }
    out.push_str(&table(
        &["STAGE", "ACTION", "STATUS", "DETAIL"],
        rows,
        Some(2),
        color,
    ));
    out
}

fn diff_table(diff: &Value, color: bool) -> String {
    let (a, b) = (&diff["a"], &diff["b"]);
    let mut out = format!(
        "A {} {} (version {})\nB {} {} (version {})\n",
        text(&a["pipelineExecutionId"]),
        paint(&text(&a["status"]), color),
        text(&a["pipelineVersion"]),
        text(&b["pipelineExecutionId"]),
        paint(&text(&b["status"]), color),
        text(&b["pipelineVersion"]),
    );
    for field in diff["differs"].as_array().into_iter().flatten() {
        let f = text(field);
        out.push_str(&format!("  {f}: {} → {}\n", text(&a[&f]), text(&b[&f])));
    }
    let rows = diff["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let differs: Vec<String> = r["differs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let change = differs
                .iter()
                .filter(|f| f.as_str() != "status" && f.as_str() != "ran")
                .map(|f| format!("{f}: {} → {}", text(&r["a"][f]), text(&r["b"][f])))
                .collect::<Vec<_>>()
                .join("; ");
            vec![
                if differs.is_empty() {
                    " ".into()
                } else {
                    "*".into()
                },
                text(&r["stageName"]),
                text(&r["actionName"]),
                text(&r["a"]["status"]),
                text(&r["b"]["status"]),
                change,
            ]
        })
        .collect();
    out.push_str(&table(
        &["", "STAGE", "ACTION", "A", "B", "WHAT DIFFERS"],
        rows,
        None,
        color,
    ));
    out
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
        match http(&addr, "GET", crate::server::HEALTH_PATH, &[], b"") {
            Ok((200, _)) => Some(addr),
            _ if common.endpoint.is_some() => {
                return Err(format!(
                    "no codepipeline-local server answers at {endpoint}"
                ))
            }
            _ => None,
        }
    };
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
            crate::server::BUILD_LOG_PATH,
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
