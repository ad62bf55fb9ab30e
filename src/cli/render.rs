//! Tables for people (status coloured on a terminal) and pretty JSON for scripts.

use chrono::TimeZone;
use serde_json::Value;

pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn local_time(epoch: &Value) -> String {
    let Some(t) = epoch.as_f64() else {
        return String::new();
    };
    chrono::Local
        .timestamp_millis_opt((t * 1000.0) as i64)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S %:z").to_string())
        .unwrap_or_default()
}

/// Whether a status is that of something still going on.
fn running(status: &Value) -> bool {
    status == "InProgress" || status == "Stopping"
}

/// How long from `from` to `to`, or to now for something still `running`.
fn duration_of(from: &Value, to: &Value, running_now: bool) -> String {
    if running_now {
        return duration(from, &crate::aws::now_epoch().into());
    }
    duration(from, to)
}

/// The first line of a text, shortened to fit a table's row (whole in JSON and `replay`).
fn one_line(s: &str) -> String {
    const MAX: usize = 80;
    let first = s.lines().next().unwrap_or_default();
    let more = s.lines().nth(1).is_some();
    if first.chars().count() > MAX {
        format!("{}…", first.chars().take(MAX - 1).collect::<String>())
    } else if more {
        format!("{first} …")
    } else {
        first.to_string()
    }
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

pub fn pipelines_table(list: &Value, color: bool) -> String {
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

pub fn executions_table(list: &Value, color: bool) -> String {
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                text(&e["pipelineExecutionId"]),
                text(&e["status"]),
                local_time(&e["startTime"]),
                duration_of(&e["startTime"], &e["lastUpdateTime"], running(&e["status"])),
                text(&e["trigger"]["triggerType"]),
                match e["waitingFor"].as_str() {
                    Some(why) => format!("waits for {why}"),
                    None => one_line(&text(&e["statusSummary"])),
                },
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

pub fn actions_table(list: &Value, color: bool) -> String {
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
                duration_of(&a["startTime"], &a["lastUpdateTime"], running(&a["status"])),
                text(&a["stageName"]),
                text(&a["actionName"]),
                text(&a["status"]),
                text(&a["pipelineExecutionId"]),
                text(&a["externalExecutionId"]),
                one_line(&detail),
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
            "EXTERNAL ID",
            "DETAIL",
        ],
        rows,
        Some(4),
        color,
    )
}

pub fn timeline_table(record: &Value, timeline: &[Value], color: bool) -> String {
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
    if let Some(why) = record["waitingFor"].as_str() {
        out.push_str(&format!("waits for {why}\n"));
    }
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

pub fn state_table(states: &Value, color: bool) -> String {
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

pub fn diff_table(diff: &Value, color: bool) -> String {
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
