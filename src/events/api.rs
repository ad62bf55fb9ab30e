//! EventBridge's JSON 1.1 API (`AWSEvents`), checked against AWS's model: rules, targets and
//! PutEvents on the default event bus.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use base64::Engine;
use serde_json::{json, Value};

use super::{pattern, Events, Rule, RuleEvent, Target, MAX_RULES, MAX_TARGETS};
use crate::aws::model::ServiceModel;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::codepipeline::actors::{PipelineRegistry, StartExecution};
use crate::codepipeline::execution::Trigger;
use crate::codepipeline::ids::PipelineKey;
use crate::regional::RegionalFailure;

/// A decision on a region's rules.
type Decide = Box<dyn FnOnce(&super::RegionRules) -> Result<Vec<RuleEvent>, AwsError> + Send>;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/events-2015-10-07.json")));

const SERVED: &[&str] = &[
    "PutRule",
    "DescribeRule",
    "ListRules",
    "DeleteRule",
    "EnableRule",
    "DisableRule",
    "PutTargets",
    "RemoveTargets",
    "ListTargetsByRule",
    "PutEvents",
];

/// Whether a request is EventBridge's: the SigV4 scope `events`, or (unsigned) its target.
pub fn is_events(service: &str, target: &str) -> bool {
    service == "events"
        || (service.is_empty() && target.starts_with(&format!("{}.", MODEL.target_prefix)))
}

/// Answers an EventBridge request; PutEvents starts the pipelines its events select through
/// `registry`.
pub async fn handle(
    events: &Events,
    registry: &PipelineRegistry,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(events, registry, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

fn rule_missing(name: &str) -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        format!("Rule {name} does not exist on EventBus default."),
    )
}

/// Only the default bus is served.
fn check_bus(ctx: &RequestContext, input: &Value) -> Result<(), AwsError> {
    let Some(bus) = input["EventBusName"].as_str() else {
        return Ok(());
    };
    let arn = format!(
        "arn:aws:events:{}:{}:event-bus/default",
        ctx.region, ctx.account_id
    );
    if bus == "default" || bus == arn {
        Ok(())
    } else {
        Err(AwsError::new(
            "ResourceNotFoundException",
            format!("Event bus {bus} does not exist."),
        ))
    }
}

fn describe(rule: &Rule, ctx: &RequestContext) -> Value {
    let mut out = json!({
        "Name": rule.name,
        "Arn": rule.arn(&ctx.account_id, &ctx.region),
        "State": if rule.enabled { "ENABLED" } else { "DISABLED" },
        "EventBusName": "default",
    });
    for (key, value) in [
        ("EventPattern", &rule.pattern),
        ("ScheduleExpression", &rule.schedule),
        ("Description", &rule.description),
        ("RoleArn", &rule.role_arn),
    ] {
        if let Some(v) = value {
            out[key] = v.clone().into();
        }
    }
    out
}

/// A page of `items` after the name in `token`: (page, next token).
fn page<T: Clone>(
    items: &BTreeMap<String, T>,
    token: Option<&str>,
    limit: Option<u64>,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let after = token
        .map(|t| {
            engine
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AwsError::validation("The NextToken is not valid."))
        })
        .transpose()?;
    let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
    let rest: Vec<(&String, &T)> = items
        .iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
        .collect();
    let next = (rest.len() > limit).then(|| engine.encode(rest[limit - 1].0));
    Ok((
        rest.into_iter()
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect(),
        next,
    ))
}

/// One operation called in-process (CloudFormation's providers), with AWS's JSON input: the
/// same path a client's request takes.
pub async fn call(
    events: &Events,
    registry: &PipelineRegistry,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", MODEL.target_prefix);
    let out = run(events, registry, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

async fn run(
    events: &Events,
    registry: &PipelineRegistry,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("EventBridge", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    MODEL.validate_input(&operation, &input)?;
    check_bus(ctx, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().map(str::to_string);
    let name = text("Name").or_else(|| text("Rule")).unwrap_or_default();
    let record = |decide: Decide| events.rules.record(account, region, decide);
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let out = match operation.as_str() {
        "PutRule" => {
            let pattern = text("EventPattern");
            let schedule = text("ScheduleExpression");
            if pattern.is_none() && schedule.is_none() {
                return Err(AwsError::validation(
                    "Parameter(s) EventPattern or ScheduleExpression must be specified.",
                ));
            }
            if let Some(p) = &pattern {
                pattern::parse(p).map_err(|reason| {
                    AwsError::new(
                        "InvalidEventPatternException",
                        format!("Event pattern is not valid. Reason: {reason}"),
                    )
                })?;
            }
            let rule = Rule {
                name: name.clone(),
                pattern,
                schedule,
                enabled: text("State").as_deref() != Some("DISABLED"),
                description: text("Description"),
                role_arn: text("RoleArn"),
                targets: BTreeMap::new(),
            };
            let arn = rule.arn(account, region);
            record(Box::new(move |rules| {
                if !rules.contains_key(&rule.name) && rules.len() >= MAX_RULES {
                    return Err(AwsError::new(
                        "LimitExceededException",
                        format!("The requested resource exceeds the maximum number allowed ({MAX_RULES} rules)."),
                    ));
                }
                Ok(vec![RuleEvent::Put(Box::new(rule))])
            }))
            .await
            .map_err(recorded)?;
            json!({ "RuleArn": arn })
        }
        "DescribeRule" => {
            let rule = events
                .rules
                .read(account, region, |r| r.get(&name).cloned())
                .ok_or_else(|| rule_missing(&name))?;
            let mut out = describe(&rule, ctx);
            out["CreatedBy"] = account.into();
            out
        }
        "ListRules" => {
            let prefix = text("NamePrefix").unwrap_or_default();
            let rules: BTreeMap<String, Rule> = events.rules.read(account, region, |r| {
                r.iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(n, r)| (n.clone(), r.clone()))
                    .collect()
            });
            let (list, next) = page(&rules, input["NextToken"].as_str(), input["Limit"].as_u64())?;
            let mut out =
                json!({"Rules": list.iter().map(|r| describe(r, ctx)).collect::<Vec<_>>()});
            if let Some(next) = next {
                out["NextToken"] = next.into();
            }
            out
        }
        "DeleteRule" => {
            let missing_ok = name.clone();
            record(Box::new(move |rules| match rules.get(&missing_ok) {
                // Deleting a rule that is not there succeeds, as on AWS.
                None => Ok(Vec::new()),
                Some(r) if !r.targets.is_empty() => Err(AwsError::validation(
                    "Rule can't be deleted since it has targets.",
                )),
                Some(_) => Ok(vec![RuleEvent::Deleted(missing_ok)]),
            }))
            .await
            .map_err(recorded)?;
            json!({})
        }
        "EnableRule" | "DisableRule" => {
            let enabled = operation == "EnableRule";
            let rule = name.clone();
            record(Box::new(move |rules| {
                if !rules.contains_key(&rule) {
                    return Err(rule_missing(&rule));
                }
                Ok(vec![RuleEvent::Enabled { rule, enabled }])
            }))
            .await
            .map_err(recorded)?;
            json!({})
        }
        "PutTargets" => {
            let targets: Vec<Target> = serde_json::from_value(input["Targets"].clone())
                .map_err(|e| AwsError::validation(format!("Targets are not valid: {e}")))?;
            let rule = name.clone();
            record(Box::new(move |rules| {
                let Some(r) = rules.get(&rule) else {
                    return Err(rule_missing(&rule));
                };
                let mut ids: std::collections::BTreeSet<&str> =
                    r.targets.keys().map(String::as_str).collect();
                ids.extend(targets.iter().map(|t| t.id.as_str()));
                if ids.len() > MAX_TARGETS {
                    return Err(AwsError::new(
                        "LimitExceededException",
                        format!("The requested resource exceeds the maximum number allowed ({MAX_TARGETS} targets)."),
                    ));
                }
                Ok(vec![RuleEvent::TargetsPut { rule, targets }])
            }))
            .await
            .map_err(recorded)?;
            json!({"FailedEntryCount": 0, "FailedEntries": []})
        }
        "RemoveTargets" => {
            let ids: Vec<String> = serde_json::from_value(input["Ids"].clone()).unwrap_or_default();
            let rule = name.clone();
            record(Box::new(move |rules| {
                if !rules.contains_key(&rule) {
                    return Err(rule_missing(&rule));
                }
                Ok(vec![RuleEvent::TargetsRemoved { rule, ids }])
            }))
            .await
            .map_err(recorded)?;
            json!({"FailedEntryCount": 0, "FailedEntries": []})
        }
        "ListTargetsByRule" => {
            let targets = events
                .rules
                .read(account, region, |r| r.get(&name).map(|r| r.targets.clone()))
                .ok_or_else(|| rule_missing(&name))?;
            let (list, next) = page(
                &targets,
                input["NextToken"].as_str(),
                input["Limit"].as_u64(),
            )?;
            let mut out = json!({ "Targets": list });
            if let Some(next) = next {
                out["NextToken"] = next.into();
            }
            out
        }
        "PutEvents" => {
            let mut entries = Vec::new();
            let mut failed = 0;
            for entry in input["Entries"].as_array().into_iter().flatten() {
                match put_event(events, registry, ctx, entry).await {
                    Ok(id) => entries.push(json!({ "EventId": id })),
                    Err((code, message)) => {
                        failed += 1;
                        entries.push(json!({"ErrorCode": code, "ErrorMessage": message}));
                    }
                }
            }
            json!({"FailedEntryCount": failed, "Entries": entries})
        }
        other => return Err(AwsError::not_supported("EventBridge", other)),
    };
    Ok(Bytes::from(out.to_string()))
}

/// Puts one event on the default bus: the pipelines its rules target start. Its id, or the
/// entry's error (code, message).
async fn put_event(
    events: &Events,
    registry: &PipelineRegistry,
    ctx: &RequestContext,
    entry: &Value,
) -> Result<String, (&'static str, String)> {
    if entry.get("EventBusName").is_some() && check_bus(ctx, entry).is_err() {
        return Err((
            "InvalidArgument",
            format!(
                "Event bus {} does not exist.",
                entry["EventBusName"].as_str().unwrap_or_default()
            ),
        ));
    }
    let required = |k: &str| {
        entry[k].as_str().filter(|v| !v.is_empty()).ok_or_else(|| {
            (
                "InvalidArgument",
                format!("Parameter {k} is not valid. Reason: {k} is a required argument."),
            )
        })
    };
    let (source, detail_type, detail) = (
        required("Source")?,
        required("DetailType")?,
        required("Detail")?,
    );
    let detail: Value = serde_json::from_str(detail)
        .ok()
        .filter(Value::is_object)
        .ok_or(("MalformedDetail", "Detail is malformed.".to_string()))?;
    let resources: Vec<String> = entry["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let mut event = super::envelope(account, region, source, detail_type, resources, detail);
    if let Some(time) = entry["Time"].as_f64() {
        if let Some(t) = chrono::DateTime::from_timestamp(time as i64, 0) {
            event["time"] = t.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
        }
    }
    for (rule, pipeline) in events.pipelines_for(account, region, &event) {
        start(
            registry,
            &PipelineKey::new(account, region, &pipeline),
            &rule,
            None,
        )
        .await;
    }
    Ok(event["id"].as_str().unwrap_or_default().to_string())
}

/// Starts the pipelines whose rules match the event of an image pushed to ECR.
pub async fn image_pushed(
    events: &Events,
    registry: &PipelineRegistry,
    pushed: crate::ecr::Pushed,
) {
    let event = super::ecr_image_pushed(&pushed);
    for (rule, pipeline) in events.pipelines_for(&pushed.account, &pushed.region, &event) {
        let key = PipelineKey::new(&pushed.account, &pushed.region, &pipeline);
        start(registry, &key, &rule, None).await;
    }
}

/// Starts a pipeline as a rule's target: trigger `CloudWatchEvent`, the rule's ARN as the detail;
/// `source` is (source action, revision, client request token) when the event was a source's
/// change.
pub async fn start(
    registry: &PipelineRegistry,
    key: &PipelineKey,
    rule: &str,
    source: Option<(&str, &str, String)>,
) {
    let (source_revisions, client_request_token) = match source {
        Some((action, revision, token)) => (
            [(action.to_string(), revision.to_string())].into(),
            Some(token),
        ),
        None => (BTreeMap::new(), None),
    };
    let start = StartExecution {
        trigger: Trigger {
            trigger_type: "CloudWatchEvent".into(),
            trigger_detail: Some(rule.to_string()),
        },
        variables: BTreeMap::new(),
        source_revisions,
        client_request_token,
        rollback: None,
    };
    match registry.start(key, start).await {
        Ok(id) => log::info!("rule {rule} started execution {id} of {}", key.name),
        Err(e) => log::warn!("rule {rule} did not start pipeline {}: {e:?}", key.name),
    }
}
