//! `AWS::CodePipeline::Pipeline`: CloudFormation's properties as CodePipeline's declaration,
//! with CloudFormation's own ways: `Name` optional (made from the stack's name), action
//! `Configuration` values taken as text (`true` becomes "true"), `DisableInboundStageTransitions`
//! applied after the pipeline is made, `RestartExecutionOnUpdate` and `Tags` taken; attribute
//! `Version`.

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::{camel, changed, text, typed, Made, Provider, Scope, Types, Updated};

/// How CodePipeline's declaration types the members CloudFormation may write otherwise.
const TYPES: Types = Types {
    strings: &["version", "defaultValue", "name"],
    numbers: &["runOrder", "timeoutInMinutes"],
    booleans: &[],
};

/// The provider.
pub struct Pipeline;

/// The declaration of pipeline `name` from the properties.
fn declaration(name: &str, props: &Value) -> Value {
    let mut body = props.clone();
    if let Some(map) = body.as_object_mut() {
        for key in [
            "Name",
            "DisableInboundStageTransitions",
            "RestartExecutionOnUpdate",
            "Tags",
        ] {
            map.remove(key);
        }
    }
    let mut declaration = typed(&camel(&body, &["Configuration"], &[]), &TYPES);
    declaration["name"] = name.into();
    for stage in declaration["stages"].as_array_mut().into_iter().flatten() {
        for action in stage["actions"].as_array_mut().into_iter().flatten() {
            if let Some(config) = action
                .get_mut("configuration")
                .and_then(Value::as_object_mut)
            {
                let texts: Map<String, Value> = config
                    .iter()
                    .map(|(k, v)| {
                        let t = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), Value::String(t))
                    })
                    .collect();
                *config = texts;
            }
        }
    }
    declaration
}

async fn transitions(scope: &Scope<'_>, name: &str, props: &Value) -> Result<(), String> {
    for t in props["DisableInboundStageTransitions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        scope
            .call(
                "codepipeline",
                "DisableStageTransition",
                json!({"pipelineName": name, "stageName": t["StageName"], "transitionType": "Inbound", "reason": t["Reason"]}),
            )
            .await?;
    }
    Ok(())
}

fn made(name: &str, answer: &Value) -> Made {
    Made {
        physical_id: name.to_string(),
        attributes: [(
            "Version".to_string(),
            json!(answer["pipeline"]["version"].to_string()),
        )]
        .into(),
    }
}

impl Provider for Pipeline {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "Name").unwrap_or_else(|| scope.generated_name(100));
            let mut input = json!({ "pipeline": declaration(&name, props) });
            if let Some(tags) = props.get("Tags") {
                input["tags"] = camel(tags, &[], &[]);
            }
            let answer = scope.call("codepipeline", "CreatePipeline", input).await?;
            transitions(scope, &name, props).await?;
            Ok(made(&name, &answer))
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
            let input = json!({ "pipeline": declaration(physical_id, new) });
            let answer = scope.call("codepipeline", "UpdatePipeline", input).await?;
            Ok(Updated::InPlace(made(physical_id, &answer)))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            scope
                .call(
                    "codepipeline",
                    "DeletePipeline",
                    json!({ "name": physical_id }),
                )
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["Name"])
    }
}
