//! AWS's service models (the botocore JSON) as the single source of operation names and field
//! constraints.
//!
//! Every JSON request is checked against its operation's input shape before a handler sees it, so
//! lengths, patterns, enums, ranges and required members answer exactly as the model declares,
//! with AWS's `ValidationException` wording, and no handler repeats those checks by hand.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::AwsError;

/// A parsed service model with its patterns compiled once.
pub struct ServiceModel {
    /// `targetPrefix` from the metadata, e.g. `CodePipeline_20150709`.
    pub target_prefix: String,
    operations: Vec<String>,
    inputs: HashMap<String, String>,
    shapes: Map<String, Value>,
    patterns: HashMap<String, Regex>,
}

impl ServiceModel {
    /// Parses a botocore `service-2.json` document.
    ///
    /// # Panics
    /// When the document is not a service model; the models are compiled into the binary, so this
    /// can only fail in development.
    pub fn parse(document: &str) -> Self {
        let doc: Value = serde_json::from_str(document).expect("service model is JSON");
        let target_prefix = doc["metadata"]["targetPrefix"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ops = doc["operations"].as_object().expect("operations");
        let operations: Vec<String> = ops.keys().cloned().collect();
        let inputs = ops
            .iter()
            .filter_map(|(name, op)| {
                op["input"]["shape"]
                    .as_str()
                    .map(|s| (name.clone(), s.to_string()))
            })
            .collect();
        let shapes = doc["shapes"].as_object().expect("shapes").clone();
        let patterns = shapes
            .iter()
            .filter_map(|(name, shape)| {
                let pattern = shape["pattern"].as_str()?;
                // Model patterns must match the whole value; a pattern the regex engine cannot read
                // is left unchecked rather than refusing valid input.
                Regex::new(&format!("^(?:{pattern})$"))
                    .ok()
                    .map(|re| (name.clone(), re))
            })
            .collect();
        ServiceModel {
            target_prefix,
            operations,
            inputs,
            shapes,
            patterns,
        }
    }

    /// Every operation name of the model, in the model's order.
    pub fn operations(&self) -> &[String] {
        &self.operations
    }

    /// Checks a request body against the input shape of `operation`.
    pub fn validate_input(&self, operation: &str, input: &Value) -> Result<(), AwsError> {
        let Some(shape) = self.inputs.get(operation) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        self.check(shape, input, "", &mut errors)?;
        match errors.len() {
            0 => Ok(()),
            1 => Err(AwsError::validation(format!(
                "1 validation error detected: {}",
                errors[0]
            ))),
            n => Err(AwsError::validation(format!(
                "{n} validation errors detected: {}",
                errors.join("; ")
            ))),
        }
    }

    fn check(
        &self,
        shape_name: &str,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) -> Result<(), AwsError> {
        let Some(shape) = self.shapes.get(shape_name) else {
            return Ok(());
        };
        let kind = shape["type"].as_str().unwrap_or_default();
        let mismatch = |expected: &str| {
            AwsError::serialization(format!(
                "Unexpected value at '{}': expected {expected}",
                display_path(path)
            ))
        };
        match kind {
            "structure" => {
                let obj = value.as_object().ok_or_else(|| mismatch("an object"))?;
                let members = shape["members"].as_object();
                if let Some(required) = shape["required"].as_array() {
                    for name in required.iter().filter_map(Value::as_str) {
                        if obj.get(name).is_none_or(Value::is_null) {
                            errors.push(format!(
                                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                                join(path, name)
                            ));
                        }
                    }
                }
                if let Some(members) = members {
                    for (name, member) in members {
                        let Some(v) = obj.get(name).filter(|v| !v.is_null()) else {
                            continue;
                        };
                        let member_shape = member["shape"].as_str().unwrap_or_default();
                        self.check(member_shape, v, &join(path, name), errors)?;
                    }
                }
            }
            "list" => {
                let items = value.as_array().ok_or_else(|| mismatch("a list"))?;
                self.check_range(shape, items.len() as f64, value, path, "length", errors);
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    self.check(member, item, &format!("{path}.{}.member", i + 1), errors)?;
                }
            }
            "map" => {
                let obj = value.as_object().ok_or_else(|| mismatch("a map"))?;
                self.check_range(shape, obj.len() as f64, value, path, "length", errors);
                let key_shape = shape["key"]["shape"].as_str().unwrap_or_default();
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                for (k, v) in obj {
                    self.check(key_shape, &Value::String(k.clone()), path, errors)?;
                    if !v.is_null() {
                        self.check(value_shape, v, &format!("{path}.{k}"), errors)?;
                    }
                }
            }
            "string" => {
                let s = value.as_str().ok_or_else(|| mismatch("a string"))?;
                self.check_range(
                    shape,
                    s.chars().count() as f64,
                    value,
                    path,
                    "length",
                    errors,
                );
                if let Some(allowed) = shape["enum"].as_array() {
                    if !allowed.iter().any(|a| a.as_str() == Some(s)) {
                        let set: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                        errors.push(format!(
                            "Value '{s}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                            display_path(path),
                            set.join(", ")
                        ));
                    }
                }
                if let Some(re) = self.patterns.get(shape_name) {
                    if !re.is_match(s) {
                        errors.push(format!(
                            "Value '{s}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: {}",
                            display_path(path),
                            shape["pattern"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
            "integer" | "long" => {
                let n = value.as_i64().ok_or_else(|| mismatch("an integer"))?;
                self.check_range(shape, n as f64, value, path, "value", errors);
            }
            "double" | "float" => {
                let n = value.as_f64().ok_or_else(|| mismatch("a number"))?;
                self.check_range(shape, n, value, path, "value", errors);
            }
            "boolean" => {
                value.as_bool().ok_or_else(|| mismatch("a boolean"))?;
            }
            "timestamp" if !(value.is_number() || value.is_string()) => {
                return Err(mismatch("a timestamp"));
            }
            _ => {}
        }
        Ok(())
    }

    fn check_range(
        &self,
        shape: &Value,
        measured: f64,
        value: &Value,
        path: &str,
        what: &str,
        errors: &mut Vec<String>,
    ) {
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(min) = shape["min"].as_f64() {
            if measured < min {
                errors.push(format!(
                    "Value '{shown}' at '{}' failed to satisfy constraint: Member must have {what} greater than or equal to {min}",
                    display_path(path)
                ));
                return;
            }
        }
        if let Some(max) = shape["max"].as_f64() {
            if measured > max {
                errors.push(format!(
                    "Value '{shown}' at '{}' failed to satisfy constraint: Member must have {what} less than or equal to {max}",
                    display_path(path)
                ));
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn display_path(path: &str) -> &str {
    path.strip_prefix('.').unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> ServiceModel {
        ServiceModel::parse(include_str!("../../models/codepipeline-2015-07-09.json"))
    }

    #[test]
    fn lists_the_operations_of_the_model() {
        let m = model();
        assert_eq!(m.operations().len(), 44);
        assert_eq!(m.target_prefix, "CodePipeline_20150709");
    }

    #[test]
    fn a_missing_required_member_is_a_validation_error() {
        let err = model()
            .validate_input("GetPipeline", &json!({}))
            .unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert_eq!(
            err.message,
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn patterns_lengths_and_ranges_come_from_the_model() {
        let m = model();
        let err = m
            .validate_input("GetPipeline", &json!({"name": "bad name", "version": 0}))
            .unwrap_err();
        assert!(
            err.message.starts_with("2 validation errors detected"),
            "{}",
            err.message
        );
        assert!(err
            .message
            .contains("regular expression pattern: [A-Za-z0-9.@\\-_]+"));
        assert!(err
            .message
            .contains("Member must have value greater than or equal to 1"));
        let long = "a".repeat(101);
        let err = m
            .validate_input("GetPipeline", &json!({ "name": long }))
            .unwrap_err();
        assert!(
            err.message.contains("length less than or equal to 100"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nested_list_members_are_named_as_aws_names_them() {
        let input = json!({"pipeline": {"name": "p", "roleArn": "arn:aws:iam::000000000000:role/r",
            "stages": [{"name": "s", "actions": [{"name": "a", "runOrder": 1000,
            "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}}]}]}});
        let err = model()
            .validate_input("CreatePipeline", &input)
            .unwrap_err();
        assert!(
            err.message
                .contains("at 'pipeline.stages.1.member.actions.1.member.runOrder'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_serialization_error() {
        let err = model()
            .validate_input("GetPipeline", &json!({"name": 5}))
            .unwrap_err();
        assert_eq!(err.code, "SerializationException");
    }

    #[test]
    fn enums_are_checked() {
        let err = model()
            .validate_input("ListActionTypes", &json!({"actionOwnerFilter": "Nobody"}))
            .unwrap_err();
        assert!(err
            .message
            .contains("enum value set: [AWS, ThirdParty, Custom]"));
    }
}
