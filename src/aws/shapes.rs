//! One operation, three wire forms: a service model's shapes guide the translation between the
//! JSON value a handler works on and the query protocol's form parameters and XML, and
//! Smithy RPC v2 CBOR. Services whose model lists several protocols (CloudWatch: CBOR, JSON,
//! query) are written once, on JSON values, and served in every form their clients send.
//!
//! In the JSON values, timestamps are epoch seconds and blobs base64 text, as in AWS's JSON
//! protocols.

use std::collections::BTreeMap;

use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use super::query::{iso8601, xml};

/// How deep shapes nest before a translation gives up (the models' own nesting is far less).
const MAX_DEPTH: usize = 32;

/// A botocore service model as written, for translating values by their shapes.
pub struct Shapes {
    doc: Value,
}

impl Shapes {
    /// Parses a botocore `service-2.json` document.
    ///
    /// # Panics
    /// When the document is not JSON; the models are compiled into the binary.
    pub fn parse(document: &str) -> Self {
        Shapes {
            doc: serde_json::from_str(document).expect("service model is JSON"),
        }
    }

    fn shape(&self, name: &str) -> &Value {
        &self.doc["shapes"][name]
    }

    /// The input shape of an operation.
    pub fn input(&self, operation: &str) -> Option<&str> {
        self.doc["operations"][operation]["input"]["shape"].as_str()
    }

    /// The output shape of an operation.
    pub fn output(&self, operation: &str) -> Option<&str> {
        self.doc["operations"][operation]["output"]["shape"].as_str()
    }

    /// The error shape whose wire code is `code`: (its HTTP status, whether the sender is at
    /// fault).
    pub fn error(&self, code: &str) -> Option<(u16, bool)> {
        self.doc["shapes"]
            .as_object()?
            .values()
            .filter_map(|s| s.get("error"))
            .find(|e| e["code"].as_str() == Some(code))
            .map(|e| {
                (
                    e["httpStatusCode"].as_u64().unwrap_or(400) as u16,
                    e["senderFault"].as_bool().unwrap_or(true),
                )
            })
    }

    /// The JSON value of a query request's parameters for the structure `shape`: lists from
    /// `Name.member.N`, maps from `Name.entry.N.key`/`.value`, scalars parsed by type.
    pub fn from_query(
        &self,
        shape: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, String> {
        Ok(self
            .query_value(shape, "", params, 0)?
            .unwrap_or_else(|| Value::Object(Map::new())))
    }

    fn query_value(
        &self,
        name: &str,
        prefix: &str,
        params: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<Option<Value>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("Parameter {prefix} nests too deeply"));
        }
        let shape = self.shape(name);
        let key = |member: &str| {
            if prefix.is_empty() {
                member.to_string()
            } else {
                format!("{prefix}.{member}")
            }
        };
        let any_under = |p: &str| {
            let dotted = format!("{p}.");
            params.contains_key(p)
                || params
                    .range(dotted.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&dotted))
        };
        match shape["type"].as_str().unwrap_or_default() {
            "structure" => {
                let mut out = Map::new();
                for (member, spec) in shape["members"].as_object().into_iter().flatten() {
                    let wire = spec["locationName"].as_str().unwrap_or(member);
                    let at = key(wire);
                    if !any_under(&at) {
                        continue;
                    }
                    let target = spec["shape"].as_str().unwrap_or_default();
                    if let Some(v) = self.query_value(target, &at, params, depth + 1)? {
                        out.insert(member.clone(), v);
                    }
                }
                Ok((!out.is_empty() || !prefix.is_empty() || params.is_empty())
                    .then_some(Value::Object(out)))
            }
            "list" => {
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                let flattened = shape["flattened"].as_bool().unwrap_or(false);
                // An empty list is sent as the bare name with an empty value.
                if params.get(prefix).is_some_and(String::is_empty) {
                    return Ok(Some(Value::Array(vec![])));
                }
                let mut items = Vec::new();
                for i in 1.. {
                    let at = if flattened {
                        format!("{prefix}.{i}")
                    } else {
                        format!("{prefix}.member.{i}")
                    };
                    if !any_under(&at) {
                        break;
                    }
                    items.push(
                        self.query_value(member, &at, params, depth + 1)?
                            .unwrap_or(Value::Null),
                    );
                }
                Ok(Some(Value::Array(items)))
            }
            "map" => {
                let key_shape = shape["key"]["shape"].as_str().unwrap_or_default();
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                let mut out = Map::new();
                for i in 1.. {
                    let at = format!("{prefix}.entry.{i}");
                    if !any_under(&at) {
                        break;
                    }
                    let k = self
                        .query_value(key_shape, &format!("{at}.key"), params, depth + 1)?
                        .and_then(|k| k.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let v = self
                        .query_value(value_shape, &format!("{at}.value"), params, depth + 1)?
                        .unwrap_or(Value::Null);
                    out.insert(k, v);
                }
                Ok(Some(Value::Object(out)))
            }
            kind => {
                let Some(text) = params.get(prefix) else {
                    return Ok(None);
                };
                scalar(kind, text).map(Some).ok_or_else(|| {
                    format!("Value '{text}' for parameter {prefix} is not a valid {kind}")
                })
            }
        }
    }

    /// The XML of `value` as the structure `shape` (the members inside the result element).
    pub fn to_xml(&self, shape: &str, value: &Value) -> String {
        let mut out = String::new();
        self.xml_members(shape, value, &mut out, 0);
        out
    }

    fn xml_members(&self, name: &str, value: &Value, out: &mut String, depth: usize) {
        let shape = self.shape(name);
        for (member, spec) in shape["members"].as_object().into_iter().flatten() {
            let Some(v) = value.get(member).filter(|v| !v.is_null()) else {
                continue;
            };
            let wire = spec["locationName"].as_str().unwrap_or(member);
            let target = spec["shape"].as_str().unwrap_or_default();
            self.xml_value(wire, target, v, out, depth + 1);
        }
    }

    fn xml_value(&self, element: &str, name: &str, value: &Value, out: &mut String, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let shape = self.shape(name);
        match shape["type"].as_str().unwrap_or_default() {
            "structure" => {
                out.push_str(&format!("<{element}>"));
                self.xml_members(name, value, out, depth);
                out.push_str(&format!("</{element}>"));
            }
            "list" => {
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                let item = shape["member"]["locationName"].as_str().unwrap_or("member");
                let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
                if shape["flattened"].as_bool().unwrap_or(false) {
                    for v in items {
                        self.xml_value(element, member, v, out, depth + 1);
                    }
                } else {
                    out.push_str(&format!("<{element}>"));
                    for v in items {
                        self.xml_value(item, member, v, out, depth + 1);
                    }
                    out.push_str(&format!("</{element}>"));
                }
            }
            "map" => {
                let key_shape = shape["key"]["shape"].as_str().unwrap_or_default();
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                out.push_str(&format!("<{element}>"));
                for (k, v) in value.as_object().into_iter().flatten() {
                    out.push_str("<entry>");
                    self.xml_value("key", key_shape, &Value::String(k.clone()), out, depth + 1);
                    self.xml_value("value", value_shape, v, out, depth + 1);
                    out.push_str("</entry>");
                }
                out.push_str(&format!("</{element}>"));
            }
            kind => {
                let text = match (kind, value) {
                    ("timestamp", Value::Number(n)) => iso8601(n.as_f64().unwrap_or_default()),
                    (_, Value::String(s)) => xml(s),
                    (_, other) => other.to_string(),
                };
                out.push_str(&format!("<{element}>{text}</{element}>"));
            }
        }
    }

    /// The CBOR of `value` as the shape `shape`: timestamps tagged epoch seconds (tag 1), blobs
    /// byte strings, members absent when null.
    pub fn to_cbor(&self, shape: &str, value: &Value) -> Cbor {
        self.cbor_value(shape, value, 0)
    }

    fn cbor_value(&self, name: &str, value: &Value, depth: usize) -> Cbor {
        if depth > MAX_DEPTH {
            return Cbor::Null;
        }
        let shape = self.shape(name);
        match (shape["type"].as_str().unwrap_or_default(), value) {
            ("structure", Value::Object(obj)) => {
                let members = &shape["members"];
                Cbor::Map(
                    obj.iter()
                        .filter(|(_, v)| !v.is_null())
                        .filter_map(|(k, v)| {
                            let target = members[k]["shape"].as_str()?;
                            Some((Cbor::Text(k.clone()), self.cbor_value(target, v, depth + 1)))
                        })
                        .collect(),
                )
            }
            ("list", Value::Array(items)) => {
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                Cbor::Array(
                    items
                        .iter()
                        .map(|v| self.cbor_value(member, v, depth + 1))
                        .collect(),
                )
            }
            ("map", Value::Object(obj)) => {
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                Cbor::Map(
                    obj.iter()
                        .map(|(k, v)| {
                            (
                                Cbor::Text(k.clone()),
                                self.cbor_value(value_shape, v, depth + 1),
                            )
                        })
                        .collect(),
                )
            }
            ("timestamp", Value::Number(n)) => Cbor::Tag(1, Box::new(number(n))),
            ("blob", Value::String(s)) => Cbor::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.as_bytes().to_vec()),
            ),
            (_, v) => json_to_cbor(v),
        }
    }
}

/// A scalar of the query protocol, parsed as its type asks.
fn scalar(kind: &str, text: &str) -> Option<Value> {
    match kind {
        "integer" | "long" => text.trim().parse::<i64>().ok().map(Value::from),
        "double" | "float" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        "boolean" => match text.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        "timestamp" => match text.trim().parse::<f64>() {
            Ok(epoch) => Number::from_f64(epoch).map(Value::Number),
            Err(_) => chrono::DateTime::parse_from_rfc3339(text.trim())
                .ok()
                .and_then(|t| Number::from_f64(t.timestamp_millis() as f64 / 1000.0))
                .map(Value::Number),
        },
        _ => Some(Value::String(text.to_string())),
    }
}

fn number(n: &Number) -> Cbor {
    match n.as_i64() {
        Some(i) => Cbor::Integer(i.into()),
        None => Cbor::Float(n.as_f64().unwrap_or_default()),
    }
}

fn json_to_cbor(v: &Value) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => number(n),
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(json_to_cbor).collect()),
        Value::Object(obj) => Cbor::Map(
            obj.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v)))
                .collect(),
        ),
    }
}

/// The JSON value of a CBOR request body: tagged timestamps become epoch seconds, byte strings
/// base64 text, nulls in structures absent members. Keys must be text, numbers finite.
pub fn cbor_to_json(v: Cbor) -> Result<Value, String> {
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            match i64::try_from(i) {
                Ok(i) => Value::from(i),
                Err(_) => return Err(format!("The integer {i} is out of range")),
            }
        }
        Cbor::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("The number {f} is not finite"))?,
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Tag(1, inner) => match *inner {
            c @ (Cbor::Integer(_) | Cbor::Float(_)) => cbor_to_json(c)?,
            _ => return Err("A timestamp (tag 1) must hold a number".into()),
        },
        Cbor::Tag(_, inner) => cbor_to_json(*inner)?,
        Cbor::Array(items) => Value::Array(
            items
                .into_iter()
                .map(cbor_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err("A map key must be text".into());
                };
                let v = cbor_to_json(v)?;
                if !v.is_null() {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        _ => return Err("A CBOR value of an unknown kind".into()),
    })
}

/// Encodes a CBOR value.
pub fn encode(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MODEL: &str = r#"{"operations": {}, "shapes": {
        "In": {"type": "structure", "members": {
            "Names": {"shape": "Names"}, "Max": {"shape": "Int"}, "On": {"shape": "Bool"},
            "At": {"shape": "Time"}, "Tags": {"shape": "Tags"}, "Dims": {"shape": "Dims"}}},
        "Names": {"type": "list", "member": {"shape": "Str"}},
        "Tags": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Str"}},
        "Dims": {"type": "list", "member": {"shape": "Dim"}},
        "Dim": {"type": "structure", "members": {"Name": {"shape": "Str"}, "Value": {"shape": "Str"}}},
        "Str": {"type": "string"}, "Int": {"type": "integer"}, "Bool": {"type": "boolean"},
        "Time": {"type": "timestamp"}}}"#;

    #[test]
    fn query_parameters_become_the_json_of_their_shapes() {
        let shapes = Shapes::parse(MODEL);
        let params: BTreeMap<String, String> = [
            ("Names.member.1", "a"),
            ("Names.member.2", "b"),
            ("Max", "7"),
            ("On", "true"),
            ("At", "2026-12-02T06:00:00Z"),
            ("Tags.entry.1.key", "k"),
            ("Tags.entry.1.value", "v"),
            ("Dims.member.1.Name", "n"),
            ("Dims.member.1.Value", "x"),
            ("Unknown", "ignored"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = shapes.from_query("In", &params).unwrap();
        assert_eq!(
            v,
            json!({"Names": ["a", "b"], "Max": 7, "On": true, "At": 1796191200.0,
                   "Tags": {"k": "v"}, "Dims": [{"Name": "n", "Value": "x"}]})
        );
        let bad: BTreeMap<String, String> = [("Max".to_string(), "seven".to_string())].into();
        assert_eq!(
            shapes.from_query("In", &bad).unwrap_err(),
            "Value 'seven' for parameter Max is not a valid integer"
        );
    }

    #[test]
    fn values_become_xml_and_cbor_of_their_shapes() {
        let shapes = Shapes::parse(MODEL);
        let v = json!({"Names": ["a<"], "At": 0, "Max": 3});
        assert_eq!(
            shapes.to_xml("In", &v),
            "<Names><member>a&lt;</member></Names><Max>3</Max><At>1970-01-01T00:00:00Z</At>"
        );
        let cbor = shapes.to_cbor("In", &v);
        let back = cbor_to_json(cbor.clone()).unwrap();
        assert_eq!(back, v);
        let Cbor::Map(entries) = cbor else {
            panic!("a map")
        };
        assert!(entries
            .iter()
            .any(|(k, v)| *k == Cbor::Text("At".into()) && matches!(v, Cbor::Tag(1, _))));
    }

    #[test]
    fn cbor_that_json_cannot_hold_is_refused() {
        assert!(cbor_to_json(Cbor::Float(f64::NAN)).is_err());
        assert!(cbor_to_json(Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Null)])).is_err());
        assert!(cbor_to_json(Cbor::Tag(1, Box::new(Cbor::Text("x".into())))).is_err());
    }
}
