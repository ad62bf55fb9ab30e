//! AWS's service models (the botocore JSON) as the single source of operation names and field
//! constraints.
//!
//! Every JSON request is checked against its operation's input shape before a handler sees it, so
//! lengths, patterns, enums, ranges and required members answer exactly as the model declares,
//! with AWS's `ValidationException` wording, and no handler repeats those checks by hand. The
//! model is compiled once into a graph of shapes (members resolved, patterns compiled), so a check
//! costs no lookups by name.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::AwsError;

/// A shape, by its index in [`ServiceModel::shapes`].
type ShapeId = usize;

/// Lengths, counts or values a shape allows.
#[derive(Default)]
struct Limits {
    min: Option<f64>,
    max: Option<f64>,
}

enum Shape {
    Structure {
        /// Members by name: the shape of each.
        members: HashMap<String, ShapeId>,
        required: Vec<String>,
    },
    List {
        member: ShapeId,
        limits: Limits,
    },
    Map {
        key: ShapeId,
        value: ShapeId,
        limits: Limits,
    },
    String {
        limits: Limits,
        /// The pattern as the model writes it, for the message, and compiled to match whole values.
        pattern: Option<(String, Regex)>,
        allowed: Option<Vec<String>>,
    },
    Integer(Limits),
    Number(Limits),
    Boolean,
    Timestamp,
    /// Blobs and anything this checker does not look into.
    Other,
}

/// A parsed service model.
pub struct ServiceModel {
    /// `targetPrefix` from the metadata, e.g. `CodePipeline_20150709`.
    pub target_prefix: String,
    operations: Vec<String>,
    inputs: HashMap<String, ShapeId>,
    shapes: Vec<Shape>,
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
        let raw = doc["shapes"].as_object().expect("shapes");
        let ids: HashMap<&str, ShapeId> = raw
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let id = |v: &Value| {
            ids.get(v["shape"].as_str().unwrap_or_default())
                .copied()
                .unwrap_or(usize::MAX)
        };
        let limits = |s: &Value| Limits {
            min: s["min"].as_f64(),
            max: s["max"].as_f64(),
        };
        let shapes = raw
            .values()
            .map(|s| match s["type"].as_str().unwrap_or_default() {
                "structure" => Shape::Structure {
                    members: s["members"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), id(v))).collect())
                        .unwrap_or_default(),
                    required: s["required"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                "list" => Shape::List {
                    member: id(&s["member"]),
                    limits: limits(s),
                },
                "map" => Shape::Map {
                    key: id(&s["key"]),
                    value: id(&s["value"]),
                    limits: limits(s),
                },
                "string" => Shape::String {
                    limits: limits(s),
                    // Model patterns must match the whole value; a pattern the regex engine cannot
                    // read is left unchecked rather than refusing valid input.
                    pattern: s["pattern"].as_str().and_then(|p| {
                        Regex::new(&format!("^(?:{p})$"))
                            .ok()
                            .map(|re| (p.to_string(), re))
                    }),
                    allowed: s["enum"].as_array().map(|e| {
                        e.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    }),
                },
                "integer" | "long" => Shape::Integer(limits(s)),
                "double" | "float" => Shape::Number(limits(s)),
                "boolean" => Shape::Boolean,
                "timestamp" => Shape::Timestamp,
                _ => Shape::Other,
            })
            .collect();
        let ops = doc["operations"].as_object().expect("operations");
        let operations: Vec<String> = ops.keys().cloned().collect();
        let inputs = ops
            .iter()
            .filter(|(_, op)| op["input"].is_object())
            .map(|(name, op)| (name.clone(), id(&op["input"])))
            .collect();
        ServiceModel {
            target_prefix,
            operations,
            inputs,
            shapes,
        }
    }

    /// Every operation name of the model, in the model's order.
    pub fn operations(&self) -> &[String] {
        &self.operations
    }

    /// Checks a request body against the input shape of `operation`.
    pub fn validate_input(&self, operation: &str, input: &Value) -> Result<(), AwsError> {
        let Some(&shape) = self.inputs.get(operation) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        self.check(shape, input, &Path::Root, &mut errors)?;
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
        shape: ShapeId,
        value: &Value,
        path: &Path<'_>,
        errors: &mut Vec<String>,
    ) -> Result<(), AwsError> {
        let Some(shape) = self.shapes.get(shape) else {
            return Ok(());
        };
        let mismatch = |expected: &str| {
            AwsError::serialization(format!("Unexpected value at '{path}': expected {expected}"))
        };
        match shape {
            Shape::Structure { members, required } => {
                let obj = value.as_object().ok_or_else(|| mismatch("an object"))?;
                for name in required {
                    if obj.get(name).is_none_or(Value::is_null) {
                        errors.push(format!(
                            "Value null at '{}' failed to satisfy constraint: Member must not be null",
                            path.member(name)
                        ));
                    }
                }
                for (name, v) in obj.iter().filter(|(_, v)| !v.is_null()) {
                    if let Some(&member) = members.get(name) {
                        self.check(member, v, &path.member(name), errors)?;
                    }
                }
            }
            Shape::List { member, limits } => {
                let items = value.as_array().ok_or_else(|| mismatch("a list"))?;
                limits.check(
                    items.len() as f64,
                    || value.to_string(),
                    path,
                    "length",
                    errors,
                );
                for (i, item) in items.iter().enumerate().filter(|(_, v)| !v.is_null()) {
                    self.check(*member, item, &path.item(i + 1), errors)?;
                }
            }
            Shape::Map {
                key,
                value: value_shape,
                limits,
            } => {
                let obj = value.as_object().ok_or_else(|| mismatch("a map"))?;
                limits.check(
                    obj.len() as f64,
                    || value.to_string(),
                    path,
                    "length",
                    errors,
                );
                for (k, v) in obj {
                    if let Some(key_shape) = self.shapes.get(*key) {
                        check_string(key_shape, k, path, errors);
                    }
                    if !v.is_null() {
                        self.check(*value_shape, v, &path.member(k), errors)?;
                    }
                }
            }
            Shape::String { .. } => {
                let s = value.as_str().ok_or_else(|| mismatch("a string"))?;
                check_string(shape, s, path, errors);
            }
            Shape::Integer(limits) => {
                let n = value.as_i64().ok_or_else(|| mismatch("an integer"))?;
                limits.check(n as f64, || n.to_string(), path, "value", errors);
            }
            Shape::Number(limits) => {
                let n = value.as_f64().ok_or_else(|| mismatch("a number"))?;
                limits.check(n, || n.to_string(), path, "value", errors);
            }
            Shape::Boolean => {
                value.as_bool().ok_or_else(|| mismatch("a boolean"))?;
            }
            Shape::Timestamp if !(value.is_number() || value.is_string()) => {
                return Err(mismatch("a timestamp"));
            }
            Shape::Timestamp | Shape::Other => {}
        }
        Ok(())
    }
}

fn check_string(shape: &Shape, s: &str, path: &Path<'_>, errors: &mut Vec<String>) {
    let Shape::String {
        limits,
        pattern,
        allowed,
    } = shape
    else {
        return;
    };
    limits.check(
        s.chars().count() as f64,
        || s.to_string(),
        path,
        "length",
        errors,
    );
    if let Some(allowed) = allowed {
        if !allowed.iter().any(|a| a == s) {
            errors.push(format!(
                "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ));
        }
    }
    if let Some((text, re)) = pattern {
        if !re.is_match(s) {
            errors.push(format!(
                "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {text}"
            ));
        }
    }
}

impl Limits {
    /// Checks a measure (length, count or value) against `min` and `max`.
    fn check(
        &self,
        measured: f64,
        shown: impl Fn() -> String,
        path: &Path<'_>,
        what: &str,
        errors: &mut Vec<String>,
    ) {
        if let Some(min) = self.min.filter(|min| measured < *min) {
            errors.push(format!(
                "Value '{}' at '{path}' failed to satisfy constraint: Member must have {what} greater than or equal to {min}",
                shown()
            ));
        } else if let Some(max) = self.max.filter(|max| measured > *max) {
            errors.push(format!(
                "Value '{}' at '{path}' failed to satisfy constraint: Member must have {what} less than or equal to {max}",
                shown()
            ));
        }
    }
}

/// Where a value sits in the input, as AWS names it (`pipeline.stages.1.member.name`); kept on
/// the stack and only written out when a value fails.
enum Path<'a> {
    Root,
    Member(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn member(&'a self, name: &'a str) -> Path<'a> {
        Path::Member(self, name)
    }

    fn item(&'a self, index: usize) -> Path<'a> {
        Path::Item(self, index)
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Member(Path::Root, name) => write!(f, "{name}"),
            Path::Member(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, i) => write!(f, "{parent}.{i}.member"),
        }
    }
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
