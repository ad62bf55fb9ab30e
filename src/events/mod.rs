//! Amazon EventBridge, the part pipelines are started through: rules on the default event bus
//! (PutRule, DescribeRule, ListRules, EnableRule, DisableRule, DeleteRule), their targets
//! (PutTargets, ListTargetsByRule, RemoveTargets) and PutEvents, event-sourced in one stream per
//! account and region (`events:<account>:<region>`).
//!
//! A rule whose target is a pipeline (`arn:aws:codepipeline:REGION:ACCOUNT:NAME`) starts it,
//! trigger `CloudWatchEvent` with the rule's ARN as the detail, when an event matches its
//! pattern: an event put with PutEvents, or a change of a source that does not poll
//! (`PollForSourceChanges` `false`), as AWS's documented set-up for such sources has it:
//! - a push to a CodeCommit branch is a `CodeCommit Repository State Change` event
//!   (`referenceCreated`/`referenceUpdated`, `referenceType` `branch`, `referenceName`, `commitId`);
//! - a new version of an S3 source object is both an `AWS API Call via CloudTrail` event
//!   (`eventSource` `s3.amazonaws.com`, `eventName` `PutObject`, `requestParameters`
//!   `bucketName`/`key`, `resources` with the object's ARN) and an `Object Created` event
//!   (`bucket.name`, `object.key`).
//!
//! # LIMITATIONS
//! - Only the default event bus; scheduled rules are recorded but never fire; targets other than
//!   pipelines are recorded and receive nothing; input transformers are not applied (a pipeline
//!   target takes no input).
//! - an image put under a tag in an ECR repository is an `ECR Image Action` event
//!   (`action-type` `PUSH`, `result` `SUCCESS`, `repository-name`, `image-tag`, `image-digest`):
//!   an ECR source action starts its pipeline through a rule for it, as on AWS.
//! - S3 events are made for every bucket as if a CloudTrail trail logged its data events and
//!   EventBridge notifications were on; they are made only for the S3 source objects of
//!   pipelines, when the source watch sees their new versions.

pub mod api;
pub mod pattern;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of rule streams.
pub const STREAM_PREFIX: &str = "events:";

/// How many rules an account may have on a bus (AWS's quota).
pub const MAX_RULES: usize = 300;

/// How many targets a rule may have (AWS's quota).
pub const MAX_TARGETS: usize = 5;

/// A target of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Its id in the rule.
    #[serde(rename = "Id")]
    pub id: String,
    /// What it is.
    #[serde(rename = "Arn")]
    pub arn: String,
    /// The role EventBridge would use.
    #[serde(rename = "RoleArn", default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Constant input.
    #[serde(rename = "Input", default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// A rule as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Its pattern, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Its schedule, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Its targets, by id.
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
}

impl Rule {
    /// Its ARN.
    pub fn arn(&self, account: &str, region: &str) -> String {
        format!("arn:aws:events:{region}:{account}:rule/{}", self.name)
    }
}

/// What can happen to a region's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleEvent {
    /// PutRule: the rule, its targets kept.
    Put(Box<Rule>),
    /// EnableRule or DisableRule.
    Enabled {
        /// The rule.
        rule: String,
        /// Whether it is enabled now.
        enabled: bool,
    },
    /// PutTargets.
    TargetsPut {
        /// The rule.
        rule: String,
        /// The targets, replacing those of the same ids.
        targets: Vec<Target>,
    },
    /// RemoveTargets.
    TargetsRemoved {
        /// The rule.
        rule: String,
        /// The ids.
        ids: Vec<String>,
    },
    /// DeleteRule.
    Deleted(String),
}

impl EventType for RuleEvent {
    fn type_name(&self) -> &'static str {
        "EventRuleEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "EventRuleEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        RuleEvent::deserialize(data)
    }
}

/// A region's rules, by name.
pub type RegionRules = BTreeMap<String, Rule>;

fn fold(rules: &mut RegionRules, event: RuleEvent) {
    match event {
        RuleEvent::Put(rule) => {
            let targets = rules
                .get(&rule.name)
                .map(|r| r.targets.clone())
                .unwrap_or_default();
            rules.insert(rule.name.clone(), Rule { targets, ..*rule });
        }
        RuleEvent::Enabled { rule, enabled } => {
            if let Some(r) = rules.get_mut(&rule) {
                r.enabled = enabled;
            }
        }
        RuleEvent::TargetsPut { rule, targets } => {
            if let Some(r) = rules.get_mut(&rule) {
                for t in targets {
                    r.targets.insert(t.id.clone(), t);
                }
            }
        }
        RuleEvent::TargetsRemoved { rule, ids } => {
            if let Some(r) = rules.get_mut(&rule) {
                for id in ids {
                    r.targets.remove(&id);
                }
            }
        }
        RuleEvent::Deleted(name) => {
            rules.remove(&name);
        }
    }
}

/// The embedded EventBridge.
pub struct Events {
    /// The rules.
    pub rules: Regional<RuleEvent, RegionRules>,
}

crate::regional::regional_projection!(Events, rules);

impl Events {
    /// No rules yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Events {
            rules: Regional::new(log, STREAM_PREFIX, "events", fold),
        }
    }

    /// The pipelines an event starts: (rule ARN, pipeline name) for each enabled rule whose
    /// pattern matches it and each of its targets that is a pipeline of the account and region.
    pub fn pipelines_for(
        &self,
        account: &str,
        region: &str,
        event: &Value,
    ) -> Vec<(String, String)> {
        let prefix = format!("arn:aws:codepipeline:{region}:{account}:");
        self.rules.read(account, region, |rules| {
            rules
                .values()
                .filter(|r| r.enabled)
                .filter(|r| {
                    r.pattern
                        .as_deref()
                        .and_then(|p| pattern::parse(p).ok())
                        .is_some_and(|p| pattern::matches(&p, event))
                })
                .flat_map(|r| {
                    let arn = r.arn(account, region);
                    r.targets
                        .values()
                        .filter_map(|t| t.arn.strip_prefix(&prefix))
                        .map(move |name| (arn.clone(), name.to_string()))
                })
                .collect()
        })
    }

    /// The first rule that starts pipeline `name` on one of `events`, if any (its ARN).
    pub fn rule_starting(
        &self,
        account: &str,
        region: &str,
        name: &str,
        events: &[Value],
    ) -> Option<String> {
        events.iter().find_map(|event| {
            self.pipelines_for(account, region, event)
                .into_iter()
                .find(|(_, pipeline)| pipeline == name)
                .map(|(rule, _)| rule)
        })
    }
}

/// An event as EventBridge delivers it.
pub fn envelope(
    account: &str,
    region: &str,
    source: &str,
    detail_type: &str,
    resources: Vec<String>,
    detail: Value,
) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": resources,
        "detail": detail,
    })
}

/// The events a push to a CodeCommit branch makes (`old` is `None` for a new branch).
pub fn codecommit_push(
    account: &str,
    region: &str,
    repository: &str,
    branch: &str,
    old: Option<&str>,
    commit: &str,
) -> Vec<Value> {
    let mut detail = json!({
        "callerUserArn": format!("arn:aws:iam::{account}:root"),
        "commitId": commit,
        "event": if old.is_some() { "referenceUpdated" } else { "referenceCreated" },
        "referenceFullName": format!("refs/heads/{branch}"),
        "referenceName": branch,
        "referenceType": "branch",
        "repositoryName": repository,
    });
    if let Some(old) = old {
        detail["oldCommitId"] = old.into();
    }
    vec![envelope(
        account,
        region,
        "aws.codecommit",
        "CodeCommit Repository State Change",
        vec![format!(
            "arn:aws:codecommit:{region}:{account}:{repository}"
        )],
        detail,
    )]
}

/// The event an image put under a tag in an ECR repository makes.
pub fn ecr_image_pushed(pushed: &crate::ecr::Pushed) -> Value {
    let mut detail = json!({
        "result": "SUCCESS",
        "repository-name": pushed.repository,
        "image-digest": pushed.digest,
        "action-type": "PUSH",
    });
    if let Some(tag) = &pushed.tag {
        detail["image-tag"] = tag.clone().into();
    }
    envelope(
        &pushed.account,
        &pushed.region,
        "aws.ecr",
        "ECR Image Action",
        vec![crate::ecr::arn(
            &pushed.account,
            &pushed.region,
            &pushed.repository,
        )],
        detail,
    )
}

/// The events a new version of an S3 object makes: CloudTrail's and EventBridge's own.
pub fn s3_object_created(
    account: &str,
    region: &str,
    bucket: &str,
    key: &str,
    version: &str,
) -> Vec<Value> {
    let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let cloudtrail = envelope(
        account,
        region,
        "aws.s3",
        "AWS API Call via CloudTrail",
        Vec::new(),
        json!({
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutObject",
            "awsRegion": region,
            "requestParameters": {"bucketName": bucket, "key": key},
            "resources": [
                {"type": "AWS::S3::Object", "ARN": object_arn},
                {"accountId": account, "type": "AWS::S3::Bucket", "ARN": bucket_arn},
            ],
        }),
    );
    let created = envelope(
        account,
        region,
        "aws.s3",
        "Object Created",
        vec![bucket_arn],
        json!({
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "version-id": version},
            "reason": "PutObject",
        }),
    );
    vec![cloudtrail, created]
}
