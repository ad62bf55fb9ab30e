//! The condition rules decided outside the execution: CloudWatchAlarm (an alarm's state, watched
//! for `WaitTime` minutes) and LambdaInvoke (a function that reports through PutJobSuccessResult
//! or PutJobFailureResult on the rule's job). The execution records such a rule as pending; its
//! actor runs the rule's evaluation here as a task, and the outcome comes back as
//! `ExecutionCommand::RuleDone` (a LambdaInvoke rule's outcome may come first from the function,
//! through the job API). Evaluations are idempotent and carry their deadlines from the check's
//! time, so a rule pending at a restart is evaluated again with the same deadline.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::actions::Functions;
use super::conditions::RuleRun;

/// What the CloudWatchAlarm rule reads of CloudWatch.
pub trait AlarmStates: Send + Sync {
    /// The state of an alarm (`OK`, `ALARM`, `INSUFFICIENT_DATA`), if it exists.
    fn state(&self, account: &str, region: &str, name: &str) -> Option<String>;

    /// A subscription that sees a new value after each change to any alarm.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// A pending rule to evaluate.
#[derive(Debug, Clone)]
pub struct RuleJob {
    /// The pipeline's account.
    pub account: String,
    /// The pipeline's region.
    pub region: String,
    /// The rule run, with its resolved configuration.
    pub rule: RuleRun,
    /// When its condition was checked (epoch seconds): deadlines count from there.
    pub checked: f64,
}

/// How a rule ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Why, in a line.
    pub summary: String,
}

impl RuleOutcome {
    fn failed(summary: impl Into<String>) -> Self {
        RuleOutcome {
            succeeded: false,
            summary: summary.into(),
        }
    }
}

/// The evaluators of the rules decided outside the execution.
pub struct RuleEvaluators {
    /// CloudWatch's alarms.
    pub alarms: Arc<dyn AlarmStates>,
    /// Lambda's functions.
    pub lambda: Arc<dyn Functions>,
    /// How long a LambdaInvoke rule waits for its function's result.
    pub lambda_timeout: Duration,
}

/// The alarm states a CloudWatchAlarm rule fails on unless `AlarmStates` names others.
const DEFAULT_ALARM_STATES: &[&str] = &["ALARM"];

impl RuleEvaluators {
    /// Evaluates a pending rule: resolves with its outcome.
    pub async fn evaluate(&self, job: &RuleJob) -> RuleOutcome {
        match job.rule.rule_type_id.provider.as_str() {
            "CloudWatchAlarm" => self.alarm(job).await,
            "LambdaInvoke" => self.function(job).await,
            other => {
                RuleOutcome::failed(format!("Rules of provider {other} are not evaluated here"))
            }
        }
    }

    /// CloudWatchAlarm: fails when the alarm is in one of the monitored states and does not
    /// leave them within `WaitTime` minutes; succeeds as soon as it is in none.
    async fn alarm(&self, job: &RuleJob) -> RuleOutcome {
        let config = &job.rule.resolved_configuration;
        let name = config.get("AlarmName").cloned().unwrap_or_default();
        let monitored: Vec<String> = match config.get("AlarmStates") {
            Some(states) => alarm_states(states),
            None => DEFAULT_ALARM_STATES.iter().map(|s| s.to_string()).collect(),
        };
        let wait = config
            .get("WaitTime")
            .and_then(|w| w.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            .max(0.0);
        let deadline = job.checked + wait * 60.0;
        let mut changes = self.alarms.changes();
        loop {
            // Marked seen before the read, so that a change after it wakes the wait below.
            changes.borrow_and_update();
            let Some(state) = self.alarms.state(&job.account, &job.region, &name) else {
                return RuleOutcome::failed(format!(
                    "The alarm {name} does not exist in account {} and region {}",
                    job.account, job.region
                ));
            };
            if !monitored.contains(&state) {
                return RuleOutcome {
                    succeeded: true,
                    summary: format!("The alarm {name} is {state}"),
                };
            }
            let left = deadline - crate::aws::now_epoch();
            if left <= 0.0 {
                return RuleOutcome::failed(format!(
                    "The alarm {name} is {state}{}",
                    if wait > 0.0 {
                        format!(" after waiting {wait} minutes for it to change")
                    } else {
                        String::new()
                    }
                ));
            }
            let _ = tokio::time::timeout(Duration::from_secs_f64(left), changes.changed()).await;
        }
    }

    /// LambdaInvoke: invokes the function with the rule's job; the function reports the outcome
    /// through the job API. Resolves only when it does not within the timeout.
    async fn function(&self, job: &RuleJob) -> RuleOutcome {
        let config = &job.rule.resolved_configuration;
        let function = config.get("FunctionName").cloned().unwrap_or_default();
        if !self.lambda.exists(&job.account, &job.region, &function) {
            return RuleOutcome::failed(format!(
                "Function not found: {function} in account {} and region {}",
                job.account, job.region
            ));
        }
        let deadline = job.checked + self.lambda_timeout.as_secs_f64();
        let left = deadline - crate::aws::now_epoch();
        if left > 0.0 {
            self.lambda.invoke_detached(
                &job.account,
                &job.region,
                &function,
                &job.rule.id,
                job_event(job).to_string(),
            );
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
        RuleOutcome::failed(format!(
            "The Lambda function {function} did not report the result of job {} within {} seconds",
            job.rule.id,
            self.lambda_timeout.as_secs()
        ))
    }
}

/// The `CodePipeline.job` event a LambdaInvoke rule's function is given: the rule's job id and
/// its configuration, in the shape the Lambda invoke action's functions already read.
pub fn job_event(job: &RuleJob) -> serde_json::Value {
    json!({"CodePipeline.job": {
        "id": job.rule.id,
        "accountId": job.account,
        "data": job_data(&job.rule),
    }})
}

/// A LambdaInvoke rule's job data (the wire shape `JobData`).
pub fn job_data(rule: &RuleRun) -> serde_json::Value {
    let config = &rule.resolved_configuration;
    let mut configuration = json!({"FunctionName": config.get("FunctionName")});
    if let Some(user) = config.get("UserParameters") {
        configuration["UserParameters"] = user.clone().into();
    }
    json!({
        "actionConfiguration": {"configuration": configuration},
        "inputArtifacts": [],
        "outputArtifacts": [],
    })
}

/// The states listed by a CloudWatchAlarm rule's `AlarmStates`: comma-separated, or a JSON list.
pub fn alarm_states(value: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(value) {
        return list;
    }
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_states_are_a_list_or_comma_separated() {
        assert_eq!(
            alarm_states("ALARM, INSUFFICIENT_DATA"),
            ["ALARM", "INSUFFICIENT_DATA"]
        );
        assert_eq!(alarm_states("[\"OK\"]"), ["OK"]);
    }
}
