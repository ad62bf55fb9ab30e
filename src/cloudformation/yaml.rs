//! Templates in YAML, read into the JSON form CloudFormation itself works on: the short-form
//! tags (`!Ref X`, `!GetAtt A.B`, `!Sub '…'`, `!If [...]`, …) become their long forms
//! (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, …). Read with `yaml-rust2`'s event parser,
//! which keeps the tags that its loader drops.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Event;

/// The deepest nesting a template may have, so that a hostile one cannot exhaust the stack of
/// what walks it.
pub const MAX_DEPTH: usize = 64;

/// The functions that have a short form, by tag.
const FUNCTIONS: &[&str] = &[
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "ToJsonString",
    "Length",
];

/// A YAML document as JSON; the message of why it is not one.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| format!("Template format error: YAML not well-formed. ({e})"))?;
    if let Some(e) = builder.error {
        return Err(format!(
            "Template format error: YAML not well-formed. ({e})"
        ));
    }
    builder
        .doc
        .ok_or_else(|| "Template format error: the template is empty".to_string())
}

enum Frame {
    Seq(Vec<Value>, usize, Option<Tag>),
    Map(Map<String, Value>, Option<String>, usize, Option<Tag>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    doc: Option<Value>,
    anchors: HashMap<usize, Value>,
    error: Option<String>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.event(ev) {
            self.error = Some(format!(
                "line {}, column {}: {e}",
                mark.line(),
                mark.col() + 1
            ));
        }
    }
}

impl Builder {
    fn event(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::SequenceStart(aid, tag) => self.open(Frame::Seq(Vec::new(), aid, tag)),
            Event::MappingStart(aid, tag) => self.open(Frame::Map(Map::new(), None, aid, tag)),
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, aid, tag) = match self.stack.pop() {
                    Some(Frame::Seq(items, aid, tag)) => (Value::Array(items), aid, tag),
                    Some(Frame::Map(map, _, aid, tag)) => (Value::Object(map), aid, tag),
                    None => return Err("an end without a start".into()),
                };
                self.insert(wrap(tag.as_ref(), value)?, aid)
            }
            Event::Scalar(text, style, aid, tag) => {
                let value = scalar(text, style, tag.as_ref())?;
                self.insert(wrap(tag.as_ref(), value)?, aid)
            }
            Event::Alias(aid) => {
                let value = self
                    .anchors
                    .get(&aid)
                    .cloned()
                    .ok_or("an alias to an unknown anchor")?;
                self.insert(value, 0)
            }
            _ => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn insert(&mut self, value: Value, aid: usize) -> Result<(), String> {
        if aid > 0 {
            self.anchors.insert(aid, value.clone());
        }
        match self.stack.last_mut() {
            None if self.doc.is_none() => self.doc = Some(value),
            None => return Err("more than one document".into()),
            Some(Frame::Seq(items, ..)) => items.push(value),
            Some(Frame::Map(map, key, ..)) => match key.take() {
                None => {
                    *key = Some(match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".into(),
                        _ => return Err("a mapping key must be a scalar".into()),
                    })
                }
                Some(k) => {
                    if map.contains_key(&k) {
                        return Err(format!("the key {k} appears twice"));
                    }
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }
}

/// A scalar's value: quoted ones (and those a standard tag names a string) are strings; plain
/// ones are read as YAML's core schema reads them.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let standard = tag.filter(|t| t.handle == "tag:yaml.org,2002:");
    if let Some(t) = standard {
        return Ok(match t.suffix.as_str() {
            "int" | "float" => number(&text).ok_or(format!("{text} is not a number"))?,
            "bool" => Value::Bool(text.eq_ignore_ascii_case("true")),
            "null" => Value::Null,
            _ => Value::String(text),
        });
    }
    // A short-form function's scalar argument is its text (`!Ref 10` names "10").
    if style != TScalarStyle::Plain || tag.is_some() {
        return Ok(Value::String(text));
    }
    Ok(match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => number(&text).unwrap_or(Value::String(text)),
    })
}

fn number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    // YAML's core schema: decimal digits with a fraction or exponent ("0x10", "inf", "1_000"
    // and "v1" stay text).
    let float = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if float {
        return text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

/// The long form of a short-form function.
fn wrap(tag: Option<&Tag>, value: Value) -> Result<Value, String> {
    let Some(tag) = tag.filter(|t| t.handle == "!") else {
        return Ok(value);
    };
    let name = tag.suffix.as_str();
    let long = match name {
        "Ref" => ("Ref".to_string(), value),
        "Condition" => ("Condition".to_string(), value),
        "GetAtt" => {
            let value = match value {
                Value::String(s) => match s.split_once('.') {
                    Some((resource, attribute)) => Value::Array(vec![
                        Value::String(resource.into()),
                        Value::String(attribute.into()),
                    ]),
                    None => return Err(format!("!GetAtt {s} names no attribute")),
                },
                other => other,
            };
            ("Fn::GetAtt".to_string(), value)
        }
        _ if FUNCTIONS.contains(&name) => (format!("Fn::{name}"), value),
        _ => return Err(format!("the tag !{name} is not a CloudFormation function")),
    };
    let mut map = Map::new();
    map.insert(long.0, long.1);
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let template = parse(
            r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Env: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub '${AWS::StackName}-${Env}'
      Tags:
        - Key: arn
          Value: !GetAtt Role.Arn
        - Key: joined
          Value: !Join [",", [a, !Select [0, !Split ["-", "x-y"]]]]
      Versioned: !If [IsProd, true, !Ref "AWS::NoValue"]
      Count: 3
      Version: "1.10"
      Ratio: 1.5
      Plain: 1.10
      Anchored: &a {k: v}
      Again: *a
"#,
        )
        .unwrap();
        assert_eq!(
            template["Conditions"]["IsProd"],
            json!({"Fn::Equals": [{"Ref": "Env"}, "prod"]})
        );
        let props = &template["Resources"]["Bucket"]["Properties"];
        assert_eq!(
            props["BucketName"],
            json!({"Fn::Sub": "${AWS::StackName}-${Env}"})
        );
        assert_eq!(
            props["Tags"][0]["Value"],
            json!({"Fn::GetAtt": ["Role", "Arn"]})
        );
        assert_eq!(
            props["Tags"][1]["Value"],
            json!({"Fn::Join": [",", ["a", {"Fn::Select": [0, {"Fn::Split": ["-", "x-y"]}]}]]})
        );
        assert_eq!(
            props["Versioned"],
            json!({"Fn::If": ["IsProd", true, {"Ref": "AWS::NoValue"}]})
        );
        assert_eq!(props["Count"], 3);
        assert_eq!(props["Version"], "1.10");
        assert_eq!(props["Ratio"], 1.5);
        assert_eq!(props["Plain"], 1.1);
        assert_eq!(props["Again"], json!({"k": "v"}));
        assert!(parse("a: !Nope x").unwrap_err().contains("!Nope"));
        assert!(parse("a: [").is_err());
        assert!(parse("a: 1\na: 2").unwrap_err().contains("twice"));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().contains("nested"));
    }
}
