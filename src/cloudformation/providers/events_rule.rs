//! `AWS::Events::Rule`: `Name` (made from the stack's name when absent), `EventPattern` (an
//! object or text), `ScheduleExpression`, `State`, `Description`, `RoleArn`, `Targets`; on the
//! default bus; attribute `Arn`.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct Rule;

fn targets(props: &Value) -> BTreeMap<String, Value> {
    props["Targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((text(t, "Id")?, t.clone())))
        .collect()
}

async fn put(scope: &Scope<'_>, name: &str, old: &Value, new: &Value) -> Result<Made, String> {
    let mut input =
        json!({ "Name": name, "State": text(new, "State").unwrap_or_else(|| "ENABLED".into()) });
    if let Some(pattern) = new.get("EventPattern") {
        input["EventPattern"] = match pattern {
            Value::String(s) => s.clone().into(),
            other => other.to_string().into(),
        };
    }
    for key in ["ScheduleExpression", "Description", "RoleArn"] {
        if let Some(v) = text(new, key) {
            input[key] = v.into();
        }
    }
    let answer = scope.call("events", "PutRule", input).await?;
    let (before, after) = (targets(old), targets(new));
    let gone: Vec<&String> = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .collect();
    if !gone.is_empty() {
        scope
            .call(
                "events",
                "RemoveTargets",
                json!({"Rule": name, "Ids": gone}),
            )
            .await?;
    }
    let put: Vec<&Value> = after
        .iter()
        .filter(|(id, t)| before.get(*id) != Some(*t))
        .map(|(_, t)| t)
        .collect();
    if !put.is_empty() {
        scope
            .call(
                "events",
                "PutTargets",
                json!({"Rule": name, "Targets": put}),
            )
            .await?;
    }
    Ok(Made {
        physical_id: name.to_string(),
        attributes: [("Arn".to_string(), answer["RuleArn"].clone())].into(),
    })
}

impl Provider for Rule {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            if text(props, "EventBusName").is_some_and(|b| b != "default") {
                return Err("Only the default event bus is served by this endpoint".into());
            }
            let name = text(props, "Name").unwrap_or_else(|| scope.generated_name(64));
            put(scope, &name, &Value::Null, props).await
        })
    }

    fn update<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        old: &'a Value,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async move {
            if self.replaces(old, new) {
                return Ok(Updated::Replace);
            }
            Ok(Updated::InPlace(put(scope, physical_id, old, new).await?))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let ids: Vec<String> = targets(props).into_keys().collect();
            if !ids.is_empty() {
                scope
                    .call(
                        "events",
                        "RemoveTargets",
                        json!({"Rule": physical_id, "Ids": ids}),
                    )
                    .await?;
            }
            scope
                .call("events", "DeleteRule", json!({ "Name": physical_id }))
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["Name", "EventBusName"])
    }
}
