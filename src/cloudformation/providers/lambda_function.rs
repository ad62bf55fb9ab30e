//! `AWS::Lambda::Function` (`FunctionName` made from the stack's name when absent, `Runtime`,
//! `Handler`, `Role`, `Code` — `ZipFile` source text, put in a file named `index` as
//! CloudFormation does, or `S3Bucket`/`S3Key` —, `Environment`, `Timeout`, `MemorySize`,
//! `Description`; attribute `Arn`) through the embedded Lambda, and `AWS::Lambda::Permission`
//! (recorded: Lambda here keeps no resource policies).

use std::io::Write;

use base64::Engine;
use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// `AWS::Lambda::Function`.
pub struct Function;

/// Lambda's `Code` from CloudFormation's.
fn code(props: &Value) -> Result<Value, String> {
    let code = &props["Code"];
    if let Some(source) = code["ZipFile"].as_str() {
        let runtime = text(props, "Runtime").unwrap_or_default();
        let file = if runtime.starts_with("python") {
            "index.py"
        } else {
            "index.js"
        };
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer
            .start_file(file, zip::write::SimpleFileOptions::default())
            .and_then(|()| writer.write_all(source.as_bytes()).map_err(Into::into))
            .map_err(|e| format!("The inline code could not be zipped: {e}"))?;
        let zip = writer.finish().map_err(|e| e.to_string())?.into_inner();
        return Ok(json!({ "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) }));
    }
    let mut out = Map::new();
    for key in ["S3Bucket", "S3Key", "S3ObjectVersion"] {
        if let Some(v) = text(code, key) {
            out.insert(key.into(), v.into());
        }
    }
    if out.is_empty() {
        return Err("Property Code must have ZipFile, or S3Bucket and S3Key".into());
    }
    Ok(Value::Object(out))
}

/// The configuration members CloudFormation and Lambda's API name alike.
const CONFIGURATION: &[&str] = &[
    "Role",
    "Handler",
    "Runtime",
    "Environment",
    "Timeout",
    "MemorySize",
    "Description",
];

fn configuration(name: &str, props: &Value) -> Value {
    let mut input = json!({ "FunctionName": name });
    for key in CONFIGURATION {
        if let Some(v) = props.get(*key) {
            input[*key] = match (*key, v) {
                ("Timeout" | "MemorySize", Value::String(s)) => {
                    s.parse::<i64>().map(Value::from).unwrap_or(v.clone())
                }
                _ => v.clone(),
            };
        }
    }
    input
}

fn made(answer: &Value, name: &str) -> Made {
    Made {
        physical_id: name.to_string(),
        attributes: [("Arn".to_string(), answer["FunctionArn"].clone())].into(),
    }
}

impl Provider for Function {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "FunctionName").unwrap_or_else(|| scope.generated_name(64));
            let mut input = configuration(&name, props);
            input["Code"] = code(props)?;
            if let Some(tags) = props["Tags"].as_array() {
                let map: Map<String, Value> = tags
                    .iter()
                    .filter_map(|t| Some((text(t, "Key")?, t.get("Value")?.clone())))
                    .collect();
                input["Tags"] = Value::Object(map);
            }
            let answer = scope.call("lambda", "CreateFunction", input).await?;
            Ok(made(&answer, &name))
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
            let mut answer = Value::Null;
            if changed(old, new, &["Code", "Runtime"]) {
                let mut input = code(new)?;
                input["FunctionName"] = physical_id.into();
                answer = scope.call("lambda", "UpdateFunctionCode", input).await?;
            }
            if changed(old, new, CONFIGURATION) {
                answer = scope
                    .call(
                        "lambda",
                        "UpdateFunctionConfiguration",
                        configuration(physical_id, new),
                    )
                    .await?;
            }
            if answer.is_null() {
                let arn = format!(
                    "arn:aws:lambda:{}:{}:function:{physical_id}",
                    scope.ctx.region, scope.ctx.account_id
                );
                answer = json!({ "FunctionArn": arn });
            }
            Ok(Updated::InPlace(made(&answer, physical_id)))
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
                    "lambda",
                    "DeleteFunction",
                    json!({ "FunctionName": physical_id }),
                )
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["FunctionName"])
    }
}

/// `AWS::Lambda::Permission`: recorded.
pub struct Permission;

impl Provider for Permission {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            Ok(Made {
                physical_id: scope.generated_name(64),
                attributes: Default::default(),
            })
        })
    }

    fn delete<'a>(
        &'a self,
        _: &'a Scope<'a>,
        _: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn replaces(&self, _: &Value, _: &Value) -> bool {
        true
    }
}
