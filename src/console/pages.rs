//! The console's pages, as `maud` markup: the pipelines, a pipeline (stages, actions,
//! transitions and what can be done to them), its executions, an execution (revisions,
//! variables, each action's input and output, the timeline `replay` prints, a diff against
//! another), and a build's log.

use maud::{html, Markup, DOCTYPE};
use serde_json::{json, Value};

use super::{ConsoleState, PREFIX};

/// The statuses an execution can have, for the history's filter.
const EXECUTION_STATUSES: &[&str] = &[
    "InProgress",
    "Stopping",
    "Stopped",
    "Succeeded",
    "Superseded",
    "Failed",
    "Cancelled",
];

/// The triggers an execution can have, for the history's filter.
const TRIGGERS: &[&str] = &[
    "CreatePipeline",
    "StartPipelineExecution",
    "PollForSourceChanges",
    "Webhook",
    "WebhookV2",
    "CloudWatchEvent",
    "PutActionRevision",
    "ManualRollback",
    "AutomatedRollback",
];

/// How many executions a page of a pipeline's history shows.
const PAGE: usize = 100;

/// How many executions the pipelines list draws for each pipeline.
const SPARK: usize = 10;

/// The whole page around a page's content.
pub fn layout(title: &str, token: &str, region: &str, position: u64, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="console-token" content=(token);
                meta name="console-position" content=(position);
                title { (title) " · codepipeline-local" }
                link rel="stylesheet" href={ (PREFIX) "/assets/console.css" };
                script src={ (PREFIX) "/assets/console.js" } defer {}
            }
            body {
                header.top {
                    a.brand href={ (PREFIX) "/?region=" (region) } { "codepipeline-local" }
                    span.region { "Region " (region) }
                }
                div #message role="alert" aria-live="assertive" {}
                main #live { (content) }
                dialog #ask aria-labelledby="ask-title" {
                    form method="dialog" {
                        h2 #ask-title {}
                        label #ask-label for="ask-text" {}
                        textarea #ask-text rows="3" {}
                        div #ask-choices {}
                        button type="button" #ask-cancel { "Cancel" }
                    }
                }
            }
        }
    }
}

/// A status as a word with an icon (never colour alone).
fn status(s: &str) -> Markup {
    let icon = match s {
        "Succeeded" | "Approved" => "✔",
        "Failed" | "Rejected" => "✖",
        "InProgress" => "●",
        "Stopping" | "Stopped" => "■",
        "Superseded" | "Abandoned" => "↷",
        "Cancelled" => "⊘",
        _ => "○",
    };
    let word = if s.is_empty() { "Didn't run" } else { s };
    html! {
        span class={ "status s-" (word.replace([' ', '\''], "")) } {
            span aria-hidden="true" { (icon) } " " (word)
        }
    }
}

/// An epoch time, in UTC with its zone.
fn time(v: &Value) -> Markup {
    let Some(secs) = v.as_f64() else {
        return html! { "—" };
    };
    let at = chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64).unwrap_or_default();
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// How long from `from` to `to` (or to now).
fn duration(from: &Value, to: Option<&Value>) -> String {
    let Some(start) = from.as_f64() else {
        return String::new();
    };
    let end = to
        .and_then(Value::as_f64)
        .unwrap_or_else(crate::aws::now_epoch);
    let secs = (end - start).max(0.0) as u64;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A path of the embedded S3 for an object (each segment percent-encoded).
fn object_url(bucket: &str, key: &str) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    format!("/{}/{}", encode(bucket), encode(key))
}

/// A button that runs one of CodePipeline's operations, asking first when `ask` says what.
fn button(label: &str, operation: &str, input: &Value, ask: Option<&Ask>) -> Markup {
    html! {
        @match ask {
            Some(a) => button type="button" data-op=(operation) data-input=(input.to_string())
                data-ask=(a.title) data-text=(a.field) data-text-label=(a.label)
                data-required=[a.required.then_some("true")]
                data-choices=(a.choices.to_string()) { (label) },
            None => button type="button" data-op=(operation) data-input=(input.to_string()) { (label) },
        }
    }
}

/// What a button asks before it runs: a title, one text (put at `field` of the input), and the
/// choices (each sets more of the input).
struct Ask {
    title: String,
    field: &'static str,
    label: &'static str,
    required: bool,
    choices: Value,
}

/// One page being made.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub state: &'a ConsoleState,
    pub region: &'a str,
    pub query: &'a [(String, String)],
}

impl View<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The region of a pipeline: the page's when it names one or has the pipeline, else the
    /// one region that has it.
    fn region_of(&self, pipeline: &str) -> String {
        if self.param("region").is_some() {
            return self.region.to_string();
        }
        let all = self.state.history.pipelines();
        let regions: Vec<String> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == pipeline)
            .map(|p| text(&p["region"]))
            .collect();
        match regions.as_slice() {
            [only] if !regions.iter().any(|r| r == self.region) => only.clone(),
            _ => self.region.to_string(),
        }
    }

    fn link(&self, path: &str) -> String {
        format!("{PREFIX}{path}?region={}", self.region)
    }

    async fn call(&self, operation: &str, input: Value) -> Result<Value, super::ApiError> {
        self.state.api.call(self.region, operation, input).await
    }

    /// (HTTP status, title, content) of the page at `path` (below the console's prefix).
    pub async fn render(&self, path: &str) -> (u16, String, Markup) {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match parts.as_slice() {
            [""] => self.pipelines().await,
            ["pipeline", name] => {
                let region = self.region_of(name);
                View {
                    region: &region,
                    ..*self
                }
                .pipeline(name)
                .await
            }
            ["pipeline", name, "executions"] => {
                let region = self.region_of(name);
                View {
                    region: &region,
                    ..*self
                }
                .executions(name)
                .await
            }
            // An execution is read in its own region, whatever the page's.
            ["execution", id] => match self.state.history.execution(id) {
                Ok(record) => {
                    let region = text(&record["region"]);
                    let view = View {
                        region: &region,
                        ..*self
                    };
                    view.execution(id, record).await
                }
                Err(e) => Err((404, e.to_string())),
            },
            ["build", id] => self.build(id),
            ["lambda", name] => self.lambda(name),
            _ => Err((404, "Not found".to_string())),
        };
        match result {
            Ok((title, content)) => (200, title, content),
            Err((status, message)) => (
                status,
                "Not found".to_string(),
                html! { h1 { "Not found" } p { (message) } p { a href=(self.link("/")) { "All pipelines" } } },
            ),
        }
    }

    /// Every region's pipelines (those of the page's region first).
    async fn pipelines(&self) -> Page {
        let mut regions: Vec<String> = self
            .state
            .history
            .pipelines()
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| text(&p["region"]))
            .collect();
        regions.push(self.region.to_string());
        regions.sort_by_key(|r| (r != self.region, r.clone()));
        regions.dedup();
        let mut rows = Vec::new();
        for region in &regions {
            let listed = self
                .state
                .api
                .call(region, "ListPipelines", json!({"maxResults": 1000}))
                .await
                .map_err(|e| (500, e.1))?;
            for p in listed["pipelines"].as_array().into_iter().flatten() {
                let name = text(&p["name"]);
                let runs = self
                    .state
                    .api
                    .call(
                        region,
                        "ListPipelineExecutions",
                        json!({"pipelineName": name, "maxResults": SPARK}),
                    )
                    .await
                    .map(|r| r["pipelineExecutionSummaries"].clone())
                    .unwrap_or(Value::Null);
                rows.push((region.clone(), p.clone(), runs));
            }
        }
        let content = html! {
            h1 { "Pipelines" }
            @if rows.is_empty() {
                p { "No pipelines yet." }
            } @else {
                table.list {
                    thead { tr { th { "Name" } th { "Region" } th { "Type" } th { "Execution mode" } th { "Latest execution" } th { "Started" } th { "Recent executions" } } }
                    tbody {
                        @for (region, p, runs) in &rows {
                            @let latest = &runs[0];
                            @let at = |path: String| format!("{PREFIX}{path}?region={region}");
                            tr {
                                td { a href=(at(format!("/pipeline/{}", text(&p["name"])))) { (text(&p["name"])) } }
                                td { (region) }
                                td { (text(&p["pipelineType"])) }
                                td { (text(&p["executionMode"])) }
                                td { @if latest.is_object() { (status(&text(&latest["status"]))) } @else { "—" } }
                                td { (time(&latest["startTime"])) }
                                td.spark {
                                    @for run in runs.as_array().into_iter().flatten().rev() {
                                        @let s = text(&run["status"]);
                                        a class={ "tick s-" (s) } href=(at(format!("/execution/{}", text(&run["pipelineExecutionId"]))))
                                            title={ (s) " · " (text(&run["pipelineExecutionId"])) } aria-label={ "Execution " (s) } {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(("Pipelines".to_string(), content))
    }

    async fn pipeline(&self, name: &str) -> Page {
        let got = self
            .call("GetPipeline", json!({"name": name}))
            .await
            .map_err(|e| (404, e.1))?;
        let declaration = &got["pipeline"];
        let state = self
            .call("GetPipelineState", json!({"name": name}))
            .await
            .map_err(|e| (404, e.1))?;
        let recent = self
            .call(
                "ListPipelineExecutions",
                json!({"pipelineName": name, "maxResults": 10}),
            )
            .await
            .map(|r| r["pipelineExecutionSummaries"].clone())
            .unwrap_or(Value::Null);
        let running = recent
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["status"] == "InProgress")
            .cloned();
        // Each stage's latest execution's action runs, for their output variables.
        let mut runs: Vec<Value> = Vec::new();
        let mut asked: Vec<String> = Vec::new();
        for stage in state["stageStates"].as_array().into_iter().flatten() {
            let id = text(&stage["latestExecution"]["pipelineExecutionId"]);
            if id.is_empty() || asked.contains(&id) {
                continue;
            }
            asked.push(id.clone());
            if let Ok(listed) = self
                .call(
                    "ListActionExecutions",
                    json!({"pipelineName": name, "filter": {"pipelineExecutionId": id}, "maxResults": 100}),
                )
                .await
            {
                runs.extend(listed["actionExecutionDetails"].as_array().into_iter().flatten().cloned());
            }
        }
        let stages = declaration["stages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let states = state["stageStates"].as_array().cloned().unwrap_or_default();
        let content = html! {
            div.head {
                h1 { (name) }
                p.meta {
                    (text(&declaration["pipelineType"])) " · " (text(&declaration["executionMode"]))
                    " · version " (text(&declaration["version"]))
                }
                div.buttons {
                    (button("Release change", "StartPipelineExecution", &json!({"name": name}), None))
                    @if let Some(run) = &running {
                        (button("Stop execution", "StopPipelineExecution",
                            &json!({"pipelineName": name, "pipelineExecutionId": run["pipelineExecutionId"]}),
                            Some(&Ask {
                                title: format!("Stop execution {}", text(&run["pipelineExecutionId"])),
                                field: "reason", label: "Reason (optional)", required: false,
                                choices: json!([
                                    {"label": "Stop and wait", "set": {"abandon": false}},
                                    {"label": "Stop and abandon", "set": {"abandon": true}}
                                ]),
                            })))
                    }
                    a.button href=(self.link(&format!("/pipeline/{name}/executions"))) { "Execution history" }
                }
            }
            div.stages {
                @for (i, stage) in stages.iter().enumerate() {
                    @let stage_name = text(&stage["name"]);
                    @let st = states.iter().find(|s| s["stageName"] == stage["name"]).cloned().unwrap_or(Value::Null);
                    @if i > 0 {
                        (self.transition(name, &stage_name, &st["inboundTransitionState"]))
                    }
                    (self.stage(name, stage, &st, &runs))
                }
            }
        };
        Ok((
            name.to_string(),
            html! { div data-watch=(format!(":{name}")) data-region=(self.region) { (content) } },
        ))
    }

    fn transition(&self, pipeline: &str, stage: &str, t: &Value) -> Markup {
        let input =
            json!({"pipelineName": pipeline, "stageName": stage, "transitionType": "Inbound"});
        html! {
            div.transition {
                @if t["enabled"] == false {
                    p.disabled {
                        span aria-hidden="true" { "■ " } "Transition to " (stage) " disabled"
                        @if let Some(r) = t["disabledReason"].as_str() { ": " (r) }
                    }
                    (button("Enable transition", "EnableStageTransition", &input, None))
                } @else {
                    p { span aria-hidden="true" { "↓ " } "Transition to " (stage) " enabled" }
                    (button("Disable transition", "DisableStageTransition", &input, Some(&Ask {
                        title: format!("Disable the transition to {stage}"),
                        field: "reason", label: "Reason", required: true,
                        choices: json!([{"label": "Disable", "set": {}}]),
                    })))
                }
            }
        }
    }

    fn stage(&self, pipeline: &str, stage: &Value, st: &Value, runs: &[Value]) -> Markup {
        let stage_name = text(&stage["name"]);
        let latest = &st["latestExecution"];
        let execution = text(&latest["pipelineExecutionId"]);
        html! {
            section.stage aria-label={ "Stage " (stage_name) } {
                h2 { (stage_name) }
                p.meta {
                    (status(&text(&latest["status"])))
                    @if !execution.is_empty() {
                        " · " a href=(self.link(&format!("/execution/{execution}"))) { "Execution " (short(&execution)) }
                    }
                }
                @if latest["status"] == "Failed" {
                    (button("Retry", "RetryStageExecution",
                        &json!({"pipelineName": pipeline, "stageName": stage_name, "pipelineExecutionId": execution}),
                        Some(&Ask {
                            title: format!("Retry stage {stage_name}"),
                            field: "", label: "", required: false,
                            choices: json!([
                                {"label": "Retry failed actions", "set": {"retryMode": "FAILED_ACTIONS"}},
                                {"label": "Retry all actions", "set": {"retryMode": "ALL_ACTIONS"}}
                            ]),
                        })))
                }
                @for action in stage["actions"].as_array().into_iter().flatten() {
                    @let action_name = text(&action["name"]);
                    @let a = st["actionStates"].as_array().into_iter().flatten()
                        .find(|a| a["actionName"] == action["name"]).cloned().unwrap_or(Value::Null);
                    @let run = runs.iter().find(|r| r["stageName"] == stage["name"] && r["actionName"] == action["name"]);
                    (self.action(pipeline, &stage_name, &action_name, action, &a, run))
                }
            }
        }
    }

    fn action(
        &self,
        pipeline: &str,
        stage: &str,
        name: &str,
        declared: &Value,
        a: &Value,
        run: Option<&Value>,
    ) -> Markup {
        let latest = &a["latestExecution"];
        let kind = &declared["actionTypeId"];
        let provider = text(&kind["provider"]);
        let external = text(&latest["externalExecutionId"]);
        let variables = run
            .and_then(|r| r["output"]["outputVariables"].as_object())
            .cloned()
            .unwrap_or_default();
        let revision = text(&a["currentRevision"]["revisionId"]);
        html! {
            article class={ "action a-" (text(&latest["status"])) } aria-label={ "Action " (name) } {
                h3 { (name) }
                p.provider { (text(&kind["category"])) " · " (provider) }
                p { (status(&text(&latest["status"]))) }
                @if let Some(s) = latest["summary"].as_str() { p.summary { (s) } }
                @if !revision.is_empty() { p.revision title=(revision) { "Revision " code { (revision.get(..12).unwrap_or(&revision)) } } }
                @if latest["lastStatusChange"].is_number() { p.when { (time(&latest["lastStatusChange"])) } }
                @if let Some(m) = latest["errorDetails"]["message"].as_str() { p.error { span aria-hidden="true" { "✖ " } (m) } }
                @if !variables.is_empty() {
                    details { summary { "Output variables" }
                        dl { @for (k, v) in &variables { dt { (k) } dd { (text(v)) } } }
                    }
                }
                @if provider == "CodeBuild" && !external.is_empty() {
                    p { a href=(self.link(&format!("/build/{external}"))) { "Build log" } }
                }
                @if let (true, Some(function)) = (provider == "Lambda", declared["configuration"]["FunctionName"].as_str()) {
                    p { a href=(self.link(&format!("/lambda/{function}"))) { "Function logs" } }
                }
                @if text(&kind["category"]) == "Approval" && latest["status"] == "InProgress" {
                    @if let Some(token) = latest["token"].as_str() {
                        (button("Review", "PutApprovalResult",
                            &json!({"pipelineName": pipeline, "stageName": stage, "actionName": name, "token": token}),
                            Some(&Ask {
                                title: format!("Review {name}"),
                                field: "result.summary", label: "Comment", required: false,
                                choices: json!([
                                    {"label": "Approve", "set": {"result.status": "Approved"}},
                                    {"label": "Reject", "set": {"result.status": "Rejected"}}
                                ]),
                            })))
                    }
                }
            }
        }
    }

    async fn executions(&self, name: &str) -> Page {
        let wanted_status = self.param("status");
        let wanted_trigger = self.param("trigger");
        let since = self
            .param("since")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp() as f64);
        let page: usize = self
            .param("page")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let keep = |e: &Value| {
            wanted_trigger.is_none_or(|t| e["trigger"]["triggerType"] == t)
                && since.is_none_or(|s| e["startTime"].as_f64().unwrap_or(0.0) >= s)
        };
        // One more than a page says whether an older page exists.
        let found = self
            .state
            .history
            .executions_matching(
                self.region,
                name,
                wanted_status,
                &keep,
                (page - 1).saturating_mul(PAGE),
                PAGE + 1,
            )
            .map_err(|e| (404, e.to_string()))?;
        let older = found.len() > PAGE;
        let shown: Vec<&Value> = found.iter().take(PAGE).collect();
        // The address of another page, with the same filters.
        let page_link = |to: usize| {
            let query = crate::aws::query::build(&[
                ("region", Some(self.region)),
                ("status", self.param("status")),
                ("trigger", self.param("trigger")),
                ("since", self.param("since")),
                ("page", Some(&to.to_string())),
            ]);
            format!(
                "{PREFIX}/pipeline/{}/executions?{query}",
                crate::aws::query::encode(name)
            )
        };
        let content = html! {
            div data-watch=(format!(":{name}")) data-region=(self.region) {
                h1 { "Executions of " a href=(self.link(&format!("/pipeline/{name}"))) { (name) } }
                form.filters method="get" {
                    input type="hidden" name="region" value=(self.region);
                    label { "Status "
                        select name="status" {
                            option value="" { "Any" }
                            @for s in EXECUTION_STATUSES { option value=(s) selected[wanted_status == Some(*s)] { (s) } }
                        }
                    }
                    label { "Trigger "
                        select name="trigger" {
                            option value="" { "Any" }
                            @for t in TRIGGERS { option value=(t) selected[wanted_trigger == Some(*t)] { (t) } }
                        }
                    }
                    label { "Since " input type="date" name="since" value=[self.param("since")]; }
                    button type="submit" { "Filter" }
                }
                @if shown.is_empty() {
                    p { "No executions match." }
                } @else {
                    table.list {
                        thead { tr { th { "Execution" } th { "Status" } th { "Trigger" } th { "Started" } th { "Duration" } th { "Source revisions" } } }
                        tbody {
                            @for e in &shown {
                                @let id = text(&e["pipelineExecutionId"]);
                                @let running = e["status"] == "InProgress" || e["status"] == "Stopping";
                                tr {
                                    td { a href=(self.link(&format!("/execution/{id}"))) { code { (id) } } }
                                    td { (status(&text(&e["status"]))) }
                                    td { (text(&e["trigger"]["triggerType"])) }
                                    td { (time(&e["startTime"])) }
                                    td { (duration(&e["startTime"], (!running).then_some(&e["lastUpdateTime"]))) }
                                    td { @for r in e["sourceRevisions"].as_array().into_iter().flatten() {
                                        span.rev { (text(&r["actionName"])) ": " code { (short(&text(&r["revisionId"]))) } } " "
                                    } }
                                }
                            }
                        }
                    }
                }
                @if page > 1 || older {
                    nav.pages aria-label="Pages" {
                        @if page > 1 { a href=(page_link(page - 1)) rel="prev" { "← Newer" } " " }
                        span { "Page " (page) }
                        @if older { " " a href=(page_link(page + 1)) rel="next" { "Older →" } }
                    }
                }
            }
        };
        Ok((format!("Executions of {name}"), content))
    }

    async fn execution(&self, id: &str, record: Value) -> Page {
        let pipeline = text(&record["pipeline"]);
        let got = self
            .call(
                "GetPipelineExecution",
                json!({"pipelineName": pipeline, "pipelineExecutionId": id}),
            )
            .await
            .map_err(|e| (404, e.1))?;
        let e = &got["pipelineExecution"];
        let actions = self
            .call(
                "ListActionExecutions",
                json!({"pipelineName": pipeline, "filter": {"pipelineExecutionId": id}, "maxResults": 100}),
            )
            .await
            .map(|r| r["actionExecutionDetails"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        let events: Vec<crate::eventstore::RecordedEvent> =
            serde_json::from_value(record["events"].clone()).unwrap_or_default();
        let timeline = crate::history::describe(&events);
        let others = self
            .state
            .history
            .executions(self.region, &pipeline, None, 20)
            .unwrap_or(Value::Null);
        let against = self.param("against");
        let diff = against.map(|other| {
            self.state
                .history
                .execution(other)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::history::diff(&record, &b))
        });
        let content = html! {
            div data-watch=(id) data-region=(self.region) {
                h1 { "Execution " code { (id) } }
                p.meta {
                    (status(&text(&e["status"]))) " · "
                    a href=(self.link(&format!("/pipeline/{pipeline}"))) { (pipeline) }
                    " · version " (text(&e["pipelineVersion"]))
                    " · " (text(&e["trigger"]["triggerType"]))
                    " · " (text(&e["executionMode"]))
                }
                @if let Some(s) = e["statusSummary"].as_str() { p.summary { (s) } }
                h2 { "Source revisions" }
                @let revisions = e["artifactRevisions"].as_array().cloned().unwrap_or_default();
                @if revisions.is_empty() { p { "None." } } @else {
                    table.list { thead { tr { th { "Artifact" } th { "Revision" } th { "Summary" } } }
                        tbody { @for r in &revisions { tr {
                            td { (text(&r["name"])) } td { code { (text(&r["revisionId"])) } } td { (text(&r["revisionSummary"])) }
                        } } } }
                }
                h2 { "Variables" }
                @let variables = e["variables"].as_array().cloned().unwrap_or_default();
                @if variables.is_empty() { p { "None." } } @else {
                    table.list { thead { tr { th { "Name" } th { "Value" } } }
                        tbody { @for v in &variables { tr { td { (text(&v["name"])) } td { code { (text(&v["resolvedValue"])) } } } } } }
                }
                h2 { "Actions" }
                @for a in actions.iter().rev() { (self.action_run(a)) }
                h2 { "Timeline" }
                table.list.timeline {
                    thead { tr { th { "#" } th { "Offset" } th { "Event" } th { "Stage" } th { "Action" } th { "Status" } } }
                    tbody { @for t in &timeline { tr {
                        td { (text(&t["sequence"])) }
                        td { "+" (format!("{:.3}", t["offsetSeconds"].as_f64().unwrap_or(0.0))) "s" }
                        td { (text(&t["event"])) }
                        td { (text(&t["stageName"])) }
                        td { (text(&t["actionName"])) }
                        td { @if t["status"].is_string() { (status(&text(&t["status"]))) } }
                    } } }
                }
                h2 { "Compare" }
                form.filters method="get" {
                    input type="hidden" name="region" value=(self.region);
                    label { "With execution "
                        select name="against" {
                            @for o in others.as_array().into_iter().flatten() {
                                @let oid = text(&o["pipelineExecutionId"]);
                                @if oid != id {
                                    option value=(oid) selected[against == Some(oid.as_str())] { (oid) " · " (text(&o["status"])) }
                                }
                            }
                        }
                    }
                    button type="submit" { "Compare" }
                }
                @match &diff {
                    Some(Ok(d)) => (diff_table(d)),
                    Some(Err(m)) => p.error { (m) },
                    None => {},
                }
            }
        };
        Ok((format!("Execution {id}"), content))
    }

    fn action_run(&self, a: &Value) -> Markup {
        let input = &a["input"];
        let output = &a["output"];
        let result = &output["executionResult"];
        let provider = text(&input["actionTypeId"]["provider"]);
        let external = text(&result["externalExecutionId"]);
        let configuration = if input["resolvedConfiguration"].is_object() {
            &input["resolvedConfiguration"]
        } else {
            &input["configuration"]
        };
        html! {
            details.run open[a["status"] == "Failed"] {
                summary {
                    (text(&a["stageName"])) " / " (text(&a["actionName"])) " · " (provider) " · "
                    (status(&text(&a["status"])))
                }
                @if let Some(m) = result["errorDetails"]["message"].as_str() { p.error { span aria-hidden="true" { "✖ " } (m) } }
                @if let Some(s) = result["externalExecutionSummary"].as_str() { p.summary { (s) } }
                p.when { "Started " (time(&a["startTime"])) ", last change " (time(&a["lastUpdateTime"])) }
                h4 { "Configuration" }
                pre { (serde_json::to_string_pretty(configuration).unwrap_or_default()) }
                (artifacts("Input artifacts", &input["inputArtifacts"]))
                (artifacts("Output artifacts", &output["outputArtifacts"]))
                @if let Some(vars) = output["outputVariables"].as_object().filter(|v| !v.is_empty()) {
                    h4 { "Output variables" }
                    dl { @for (k, v) in vars { dt { (k) } dd { (text(v)) } } }
                }
                @if provider == "CodeBuild" && !external.is_empty() {
                    p { a href=(self.link(&format!("/build/{external}"))) { "Build log" } }
                }
                @if let (true, Some(function)) = (provider == "Lambda", input["configuration"]["FunctionName"].as_str()) {
                    p { a href=(self.link(&format!("/lambda/{function}"))) { "Function logs" } }
                }
            }
        }
    }

    /// A Lambda function's latest invocations' logs (or one invocation's, by request id).
    fn lambda(&self, name: &str) -> Page {
        let found = crate::lambda::find_logs(&self.state.data_dir, name, 10);
        if found.is_empty() {
            return Err((
                404,
                format!("no Lambda function or request {name} has output"),
            ));
        }
        let text: Vec<u8> = found.into_iter().flat_map(|(_, text)| text).collect();
        let content = html! {
            div data-watch=(name) {
                h1 { "Function logs " code { (name) } }
                p.meta { "The latest invocations, oldest first." }
                pre { (String::from_utf8_lossy(&text)) }
            }
        };
        Ok((format!("Function logs {name}"), content))
    }

    fn build(&self, id: &str) -> Page {
        let (text, next, complete) = self
            .state
            .codebuild
            .log_from(id, 0)
            .ok_or_else(|| (404, format!("build {id} does not exist")))?;
        let content = html! {
            div data-watch=(id) {
                h1 { "Build " code { (id) } }
                p #build-state aria-live="polite" { @if complete { "Complete." } @else { "Running…" } }
                pre #log data-build=(id) data-offset=(next) data-complete=(complete) { (text) }
            }
        };
        Ok((format!("Build {id}"), content))
    }
}

type Page = Result<(String, Markup), (u16, String)>;

fn artifacts(title: &str, list: &Value) -> Markup {
    let items = list.as_array().cloned().unwrap_or_default();
    html! {
        @if !items.is_empty() {
            h4 { (title) }
            ul { @for art in &items {
                @let (bucket, key) = (text(&art["s3location"]["bucket"]), text(&art["s3location"]["key"]));
                li { (text(&art["name"])) ": "
                    @if bucket.is_empty() { "—" } @else {
                        a href=(object_url(&bucket, &key)) download { "s3://" (bucket) "/" (key) }
                    }
                }
            } }
        }
    }
}

fn diff_table(d: &Value) -> Markup {
    let (a, b) = (&d["a"], &d["b"]);
    html! {
        p { "A " code { (text(&a["pipelineExecutionId"])) } " " (status(&text(&a["status"])))
            " · B " code { (text(&b["pipelineExecutionId"])) } " " (status(&text(&b["status"]))) }
        @for f in d["differs"].as_array().into_iter().flatten() {
            @let f = text(f);
            p { (f) ": " code { (text(&a[&f])) } " → " code { (text(&b[&f])) } }
        }
        table.list {
            thead { tr { th { "Stage" } th { "Action" } th { "A" } th { "B" } th { "What differs" } } }
            tbody { @for r in d["actions"].as_array().into_iter().flatten() {
                @let differs: Vec<String> = r["differs"].as_array().into_iter().flatten().map(text).collect();
                tr class=[(!differs.is_empty()).then_some("differs")] {
                    td { (text(&r["stageName"])) } td { (text(&r["actionName"])) }
                    td { (status(&text(&r["a"]["status"]))) } td { (status(&text(&r["b"]["status"]))) }
                    td { @for f in differs.iter().filter(|f| *f != "status" && *f != "ran") {
                        div { (f) ": " code { (text(&r["a"][f])) } " → " code { (text(&r["b"][f])) } }
                    } }
                }
            } }
        }
    }
}
