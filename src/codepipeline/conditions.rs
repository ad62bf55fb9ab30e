//! Stage conditions, decided without I/O: a condition is met when all its rules succeed, and its
//! `result` engages when it is not (`beforeEntry`: FAIL or SKIP; `onSuccess`: FAIL or ROLLBACK;
//! `onFailure`: ROLLBACK). The execution aggregate checks a stage's `beforeEntry` condition when
//! the stage is entered, `onSuccess` when all its actions succeeded and `onFailure` when it
//! failed, and records each check with its rules' results.
//!
//! # LIMITATIONS
//! - Rules run: VariableCheck, DeploymentWindow (outside its window the condition waits, and
//!   is checked again when the window opens, or within a day; OverrideStageCondition ends the
//!   wait), CloudWatchAlarm (on the embedded CloudWatch's alarms, whose state only
//!   SetAlarmState changes) and LambdaInvoke (on the embedded Lambda); the last two are pending
//!   while `super::rules` evaluates them. The CodeBuild and Commands rules are refused in
//!   declarations, naming the rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::execution::{resolve, Execution};
use super::model::{Condition, RuleDeclaration, RuleTypeId, Stage};

/// The rule providers AWS has.
pub const PROVIDERS: &[&str] = &[
    "CloudWatchAlarm",
    "CodeBuild",
    "Commands",
    "DeploymentWindow",
    "LambdaInvoke",
    "VariableCheck",
];

/// The rule providers that run here.
pub const RUNNABLE: &[&str] = &[
    "CloudWatchAlarm",
    "DeploymentWindow",
    "LambdaInvoke",
    "VariableCheck",
];

/// The rule providers decided outside the execution (see `super::rules`): pending until then.
pub const EXTERNAL: &[&str] = &["CloudWatchAlarm", "LambdaInvoke"];

/// The operators of VariableCheck.
const OPERATORS: &[&str] = &["EQ", "NE", "CONTAINS", "MATCHES", "GT", "GE", "LT", "LE"];

/// Which of a stage's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionKind {
    /// `beforeEntry`.
    BeforeEntry,
    /// `onSuccess`.
    OnSuccess,
    /// `onFailure`.
    OnFailure,
}

impl ConditionKind {
    /// The results a condition of this kind may engage.
    fn results(self) -> &'static [&'static str] {
        match self {
            ConditionKind::BeforeEntry => &["FAIL", "SKIP"],
            ConditionKind::OnSuccess => &["FAIL", "ROLLBACK"],
            ConditionKind::OnFailure => &["ROLLBACK"],
        }
    }

    /// Its name in a declaration.
    pub fn field(self) -> &'static str {
        match self {
            ConditionKind::BeforeEntry => "beforeEntry",
            ConditionKind::OnSuccess => "onSuccess",
            ConditionKind::OnFailure => "onFailure",
        }
    }

    /// The stage's condition of this kind, if declared.
    pub fn of(self, stage: &Stage) -> Option<&Condition> {
        let conditions = match self {
            ConditionKind::BeforeEntry => stage.before_entry.as_ref().map(|c| &c.conditions),
            ConditionKind::OnSuccess => stage.on_success.as_ref().map(|c| &c.conditions),
            ConditionKind::OnFailure => stage
                .on_failure
                .as_ref()
                .and_then(|f| f.conditions.as_ref()),
        };
        conditions.and_then(|c| c.first())
    }
}

/// One rule's check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRun {
    /// Its rule execution id.
    pub id: String,
    /// The rule.
    pub name: String,
    /// Its type.
    pub rule_type_id: RuleTypeId,
    /// Its configuration as declared.
    pub configuration: BTreeMap<String, String>,
    /// Its configuration with variables resolved.
    pub resolved_configuration: BTreeMap<String, String>,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Why, in a line.
    pub summary: String,
    /// For a rule still being checked (a deployment window not open yet): when to check again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub again_at: Option<f64>,
    /// Being evaluated outside the execution (CloudWatchAlarm, LambdaInvoke).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// One check of a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionRun {
    /// Which condition.
    pub kind: ConditionKind,
    /// Whether all its rules succeeded.
    pub met: bool,
    /// Its result (engaged when it is not met).
    pub result: Option<String>,
    /// Its rules' checks, in order.
    pub rules: Vec<RuleRun>,
    /// When.
    pub at: f64,
    /// Still being checked (a rule waits): when to check again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub again_at: Option<f64>,
    /// Ended by OverrideStageCondition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,
}

impl ConditionRun {
    /// The result it engaged, if it was not met.
    pub fn engaged(&self) -> Option<&str> {
        (!self.met && !self.waiting())
            .then_some(self.result.as_deref())
            .flatten()
    }

    /// Whether it is still being checked.
    pub fn waiting(&self) -> bool {
        !self.overridden && (self.again_at.is_some() || self.rules.iter().any(|r| r.pending))
    }

    /// Its rules still being evaluated outside the execution.
    pub fn pending(&self) -> impl Iterator<Item = &RuleRun> {
        self.rules.iter().filter(|r| r.pending)
    }

    /// The same check with the outcome of its pending rule `rule_id`, if it has one.
    pub fn with_outcome(
        &self,
        rule_id: &str,
        succeeded: bool,
        summary: &str,
        now: f64,
    ) -> Option<ConditionRun> {
        let mut rules = self.rules.clone();
        let rule = rules.iter_mut().find(|r| r.id == rule_id && r.pending)?;
        rule.pending = false;
        rule.succeeded = succeeded;
        rule.summary = summary.to_string();
        Some(ConditionRun {
            at: now,
            ..aggregate(self.kind, self.result.clone(), rules, now)
        })
    }

    /// Its status: the wire enum `ConditionExecutionStatus`.
    pub fn status(&self) -> &'static str {
        match (self.overridden, self.waiting(), self.met) {
            (true, _, _) => "Overridden",
            (_, true, _) => "InProgress",
            (_, _, true) => "Succeeded",
            _ => "Failed",
        }
    }

    /// The same check ended by OverrideStageCondition: met.
    pub fn overridden(&self, now: f64) -> ConditionRun {
        let mut rules = self.rules.clone();
        for rule in rules.iter_mut().filter(|r| r.pending) {
            rule.pending = false;
            rule.summary = "Not evaluated: the condition was overridden".into();
        }
        ConditionRun {
            rules,
            met: true,
            again_at: None,
            overridden: true,
            at: now,
            ..self.clone()
        }
    }

    /// A line on why it was not met.
    pub fn failure(&self) -> String {
        let failed: Vec<String> = self
            .rules
            .iter()
            .filter(|r| !r.succeeded)
            .map(|r| format!("rule {}: {}", r.name, r.summary))
            .collect();
        format!(
            "The {} condition was not met ({})",
            self.kind.field(),
            failed.join("; ")
        )
    }

    /// The wire shape `StageConditionState` of GetPipelineState.
    pub fn state(&self) -> Value {
        let status = self.status();
        let summary = match status {
            "Overridden" => "Overridden by OverrideStageCondition".to_string(),
            "InProgress" => "Waiting for its rules".to_string(),
            "Succeeded" => "All rules succeeded".to_string(),
            _ => self.failure(),
        };
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({"ruleName": r.name, "latestExecution": {
                    "ruleExecutionId": r.id,
                    "status": r.status(),
                    "summary": r.summary,
                    "lastStatusChange": self.at,
                }})
            })
            .collect();
        json!({
            "latestExecution": {"status": status, "summary": summary},
            "conditionStates": [{
                "latestExecution": {"status": status, "summary": summary, "lastStatusChange": self.at},
                "ruleStates": rules,
            }],
        })
    }
}

impl RuleRun {
    /// Whether it is decided by a function through the job API (LambdaInvoke): its id is the
    /// job's.
    pub fn runs_as_job(&self) -> bool {
        self.rule_type_id.provider == "LambdaInvoke"
    }

    /// Its status: the wire enum `RuleExecutionStatus`.
    pub fn status(&self) -> &'static str {
        match (self.again_at.is_some() || self.pending, self.succeeded) {
            (true, _) => "InProgress",
            (_, true) => "Succeeded",
            _ => "Failed",
        }
    }
}

/// Checks a condition on the execution as it stands. A check again (`previous`, the check whose
/// waiting rule asked for it) keeps the runs of the rules evaluated outside the execution.
pub fn check(
    s: &Execution,
    kind: ConditionKind,
    condition: &Condition,
    now: f64,
    new_id: &mut dyn FnMut() -> String,
    previous: Option<&ConditionRun>,
) -> ConditionRun {
    let rules: Vec<RuleRun> = condition
        .rules
        .iter()
        .flatten()
        .map(|rule| {
            let kept = previous.and_then(|p| {
                p.rules.iter().find(|r| {
                    r.name == rule.name && EXTERNAL.contains(&r.rule_type_id.provider.as_str())
                })
            });
            match kept {
                Some(kept) => kept.clone(),
                None => check_rule(s, rule, new_id(), now),
            }
        })
        .collect();
    aggregate(kind, condition.result.clone(), rules, now)
}

/// A condition's check from its rules' runs: a rule that failed decides; otherwise one still
/// waiting or pending keeps the condition waiting.
fn aggregate(
    kind: ConditionKind,
    result: Option<String>,
    rules: Vec<RuleRun>,
    now: f64,
) -> ConditionRun {
    let failed = rules
        .iter()
        .any(|r| !r.succeeded && r.again_at.is_none() && !r.pending);
    let again_at = if failed {
        None
    } else {
        rules.iter().filter_map(|r| r.again_at).reduce(f64::min)
    };
    let rules = if failed {
        // A failed rule decides: the pending ones are not waited for.
        rules
            .into_iter()
            .map(|mut r| {
                if r.pending {
                    r.pending = false;
                    r.summary = "Not evaluated: another rule of the condition failed".into();
                }
                r
            })
            .collect()
    } else {
        rules
    };
    ConditionRun {
        kind,
        met: rules.iter().all(|r| r.succeeded),
        result,
        rules,
        at: now,
        again_at,
        overridden: false,
    }
}

fn check_rule(s: &Execution, rule: &RuleDeclaration, id: String, now: f64) -> RuleRun {
    let configuration = rule.configuration.clone().unwrap_or_default();
    let mut resolved = BTreeMap::new();
    let mut unresolved = None;
    for (k, v) in &configuration {
        match resolve(s, v) {
            Ok(value) => {
                resolved.insert(k.clone(), value);
            }
            Err(reference) => {
                unresolved.get_or_insert(format!("The variable {reference} could not be resolved"));
                resolved.insert(k.clone(), v.clone());
            }
        }
    }
    let mut again_at = None;
    let mut pending = false;
    let (succeeded, summary) = match (unresolved, rule.rule_type_id.provider.as_str()) {
        (Some(message), _) => (false, message),
        (None, provider) if EXTERNAL.contains(&provider) => {
            pending = true;
            (false, format!("Being evaluated ({provider})"))
        }
        (None, "VariableCheck") => variable_check(&resolved),
        (None, "DeploymentWindow") => match deployment_window(&resolved, now) {
            Ok(None) => (true, "The deployment window is open".to_string()),
            Ok(Some(next)) => {
                again_at = Some(next);
                (
                    false,
                    "Outside the deployment window: waiting for it to open".to_string(),
                )
            }
            Err(message) => (false, message),
        },
        (None, other) => (
            false,
            format!("Rules of provider {other} do not run on codepipeline-local yet"),
        ),
    };
    RuleRun {
        id,
        name: rule.name.clone(),
        rule_type_id: rule.rule_type_id.clone(),
        configuration,
        resolved_configuration: resolved,
        succeeded,
        summary,
        again_at,
        pending,
    }
}

/// How far ahead the opening of a closed window is looked for; past it, the window is checked
/// again after this long anyway.
const WINDOW_LOOKAHEAD_DAYS: i64 = 1;

/// DeploymentWindow: `None` when `now` is inside the window of `Cron` in `TimeZone` (UTC unless
/// given), otherwise when to check again.
fn deployment_window(config: &BTreeMap<String, String>, now: f64) -> Result<Option<f64>, String> {
    let cron = super::cron::Cron::parse(config.get("Cron").map(String::as_str).unwrap_or_default())
        .map_err(|e| format!("The Cron expression is not valid: {e}"))?;
    let zone: chrono_tz::Tz = config
        .get("TimeZone")
        .map(String::as_str)
        .unwrap_or("UTC")
        .parse()
        .map_err(|e| format!("The TimeZone is not valid: {e}"))?;
    if cron.open_at(&zone, now) {
        return Ok(None);
    }
    let day = (WINDOW_LOOKAHEAD_DAYS * 86_400) as f64;
    Ok(Some(
        cron.next_open(&zone, now, WINDOW_LOOKAHEAD_DAYS)
            .unwrap_or(now + day),
    ))
}

/// VariableCheck: `Variable` compared with `Value` by `Operator`.
fn variable_check(config: &BTreeMap<String, String>) -> (bool, String) {
    let get = |k: &str| config.get(k).map(String::as_str).unwrap_or_default();
    let (variable, value, operator) = (get("Variable"), get("Value"), get("Operator"));
    let numbers = || {
        Some((
            variable.trim().parse::<f64>().ok()?,
            value.trim().parse::<f64>().ok()?,
        ))
    };
    let passed = match operator {
        "EQ" => Ok(variable == value),
        "NE" => Ok(variable != value),
        "CONTAINS" => Ok(variable.contains(value)),
        "MATCHES" => regex::Regex::new(&format!("^(?:{value})$"))
            .map(|re| re.is_match(variable))
            .map_err(|e| format!("The pattern {value} is not a valid regular expression: {e}")),
        "GT" | "GE" | "LT" | "LE" => match numbers() {
            Some((a, b)) => Ok(match operator {
                "GT" => a > b,
                "GE" => a >= b,
                "LT" => a < b,
                _ => a <= b,
            }),
            None => Err(format!(
                "{operator} compares numbers: '{variable}' and '{value}' are not both numbers"
            )),
        },
        other => Err(format!("Unknown operator {other}")),
    };
    match passed {
        Ok(true) => (true, format!("'{variable}' {operator} '{value}' holds")),
        Ok(false) => (
            false,
            format!("'{variable}' {operator} '{value}' does not hold"),
        ),
        Err(message) => (false, message),
    }
}

/// Checks a stage's conditions as AWS does when a pipeline is declared: one condition per kind,
/// with a result that kind allows, 1 to 5 rules each, of known providers (and run here), with
/// their required configuration.
pub fn validate(stage: &Stage) -> Result<(), String> {
    let kinds = [
        (
            ConditionKind::BeforeEntry,
            stage.before_entry.as_ref().map(|c| &c.conditions),
        ),
        (
            ConditionKind::OnSuccess,
            stage.on_success.as_ref().map(|c| &c.conditions),
        ),
        (
            ConditionKind::OnFailure,
            stage
                .on_failure
                .as_ref()
                .and_then(|f| f.conditions.as_ref()),
        ),
    ];
    if let Some(result) = stage.on_failure.as_ref().and_then(|f| f.result.as_deref()) {
        if !["ROLLBACK", "FAIL", "RETRY"].contains(&result) {
            return Err(format!(
                "Stage '{}': onFailure result {result} is not valid; use ROLLBACK, FAIL or RETRY",
                stage.name
            ));
        }
    }
    for (kind, conditions) in kinds {
        let Some(conditions) = conditions else {
            continue;
        };
        if conditions.len() != 1 {
            return Err(format!(
                "Stage '{}': {} must have exactly one condition, not {}",
                stage.name,
                kind.field(),
                conditions.len()
            ));
        }
        let condition = &conditions[0];
        let result = condition.result.as_deref().unwrap_or_default();
        if !kind.results().contains(&result) {
            return Err(format!(
                "Stage '{}': the result of a {} condition must be one of {}, not '{result}'",
                stage.name,
                kind.field(),
                kind.results().join(", ")
            ));
        }
        let rules = condition.rules.as_deref().unwrap_or_default();
        if rules.is_empty() || rules.len() > 5 {
            return Err(format!(
                "Stage '{}': a {} condition has 1 to 5 rules, not {}",
                stage.name,
                kind.field(),
                rules.len()
            ));
        }
        for rule in rules {
            validate_rule(&stage.name, rule)?;
        }
    }
    Ok(())
}

fn validate_rule(stage: &str, rule: &RuleDeclaration) -> Result<(), String> {
    let id = &rule.rule_type_id;
    let provider = id.provider.as_str();
    let aws = id.category == "Rule" && id.owner.as_deref().is_none_or(|o| o == "AWS");
    if !aws || !PROVIDERS.contains(&provider) || id.version.as_deref().is_some_and(|v| v != "1") {
        return Err(format!(
            "Stage '{stage}': rule '{}' has an unknown rule type (category {}, provider {provider})",
            rule.name, id.category
        ));
    }
    if !RUNNABLE.contains(&provider) {
        return Err(format!(
            "Stage '{stage}': rule '{}' uses the {provider} rule, which codepipeline-local does not run yet (it runs {})",
            rule.name,
            RUNNABLE.join(", ")
        ));
    }
    let config = rule.configuration.clone().unwrap_or_default();
    let required = |name: &str| {
        config.get(name).map(|_| ()).ok_or_else(|| {
            format!(
                "Stage '{stage}': rule '{}' is missing required configuration '{name}'",
                rule.name
            )
        })
    };
    if provider == "LambdaInvoke" {
        return required("FunctionName");
    }
    if provider == "CloudWatchAlarm" {
        required("AlarmName")?;
        if let Some(states) = config.get("AlarmStates") {
            let listed = super::rules::alarm_states(states);
            let known = ["ALARM", "OK", "INSUFFICIENT_DATA"];
            if listed.is_empty() || listed.iter().any(|s| !known.contains(&s.as_str())) {
                return Err(format!(
                    "Stage '{stage}': rule '{}': AlarmStates '{states}' must list ALARM, OK or INSUFFICIENT_DATA",
                    rule.name
                ));
            }
        }
        if let Some(wait) = config.get("WaitTime") {
            if !wait
                .trim()
                .parse::<f64>()
                .is_ok_and(|w| w.is_finite() && w >= 0.0)
            {
                return Err(format!(
                    "Stage '{stage}': rule '{}': WaitTime '{wait}' is not a number of minutes",
                    rule.name
                ));
            }
        }
        return Ok(());
    }
    if provider == "DeploymentWindow" {
        let cron = config.get("Cron").ok_or_else(|| {
            format!(
                "Stage '{stage}': rule '{}' is missing required configuration 'Cron'",
                rule.name
            )
        })?;
        super::cron::Cron::parse(cron).map_err(|e| {
            format!(
                "Stage '{stage}': rule '{}': the Cron expression is not valid: {e}",
                rule.name
            )
        })?;
        if let Some(zone) = config.get("TimeZone") {
            zone.parse::<chrono_tz::Tz>().map_err(|_| {
                format!(
                    "Stage '{stage}': rule '{}': unknown TimeZone '{zone}'",
                    rule.name
                )
            })?;
        }
        return Ok(());
    }
    for required in ["Variable", "Value", "Operator"] {
        if !config.contains_key(required) {
            return Err(format!(
                "Stage '{stage}': rule '{}' is missing required configuration '{required}'",
                rule.name
            ));
        }
    }
    let operator = config["Operator"].as_str();
    if !OPERATORS.contains(&operator) {
        return Err(format!(
            "Stage '{stage}': rule '{}' has operator '{operator}'; use one of {}",
            rule.name,
            OPERATORS.join(", ")
        ));
    }
    Ok(())
}

/// The rule types that run here, as ListRuleTypes lists them.
pub fn rule_types() -> Vec<Value> {
    let property = |name: &str, description: &str| {
        json!({"name": name, "required": true, "key": matches!(name, "Variable" | "AlarmName" | "FunctionName"), "secret": false,
               "queryable": false, "description": description, "type": "String"})
    };
    let optional = |name: &str, description: &str| {
        json!({"name": name, "required": false, "key": false, "secret": false,
               "queryable": false, "description": description, "type": "String"})
    };
    vec![
        json!({
            "id": {"category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "1"},
            "settings": {},
            "ruleConfigurationProperties": [
                property("AlarmName", "The name of the CloudWatch alarm"),
                optional("AlarmStates", "The alarm states that fail the rule (ALARM unless given)"),
                optional("WaitTime", "Minutes to wait for the alarm to leave those states before the rule fails"),
            ],
            "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
        }),
        json!({
            "id": {"category": "Rule", "owner": "AWS", "provider": "DeploymentWindow", "version": "1"},
            "settings": {},
            "ruleConfigurationProperties": [
                property("Cron", "When deployments are allowed: seconds minutes hours day-of-month month day-of-week [year]"),
                optional("TimeZone", "The time zone of the Cron expression (UTC unless given)"),
            ],
            "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
        }),
        json!({
            "id": {"category": "Rule", "owner": "AWS", "provider": "LambdaInvoke", "version": "1"},
            "settings": {},
            "ruleConfigurationProperties": [
                property("FunctionName", "The Lambda function that reports the rule's result with PutJobSuccessResult or PutJobFailureResult"),
                optional("UserParameters", "Given to the function in its job's configuration"),
            ],
            "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 1},
        }),
        json!({
            "id": {"category": "Rule", "owner": "AWS", "provider": "VariableCheck", "version": "1"},
            "settings": {},
            "ruleConfigurationProperties": [
                property("Variable", "The variable to check, such as #{SourceVariables.BranchName}"),
                property("Value", "The value to compare it with"),
                property("Operator", "EQ, NE, CONTAINS, MATCHES, GT, GE, LT or LE"),
            ],
            "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
        }),
    ]
}
