//! EventBridge event patterns: checked as PutRule checks them, and matched against events.
//!
//! A pattern is a JSON object whose leaves are arrays of what a field may be: a value (string,
//! number, boolean, null) matched exactly, or one of the content filters `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`, `anything-but` (a value, a list, or a `prefix`/`suffix`),
//! `numeric` (comparisons) and `exists`; `$or` takes a list of patterns. An array in the event
//! matches when one of its elements does.

use serde_json::{Map, Value};

/// Why a pattern is not one (the `Reason` of `InvalidEventPatternException`).
pub type Invalid = String;

/// Checks a pattern's text.
pub fn parse(text: &str) -> Result<Value, Invalid> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("Filter is not valid JSON: {e}"))?;
    check(&value)?;
    Ok(value)
}

fn check(pattern: &Value) -> Result<(), Invalid> {
    let Value::Object(fields) = pattern else {
        return Err("Filter is not an object".into());
    };
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("$or", Value::Array(alternatives)) if alternatives.len() >= 2 => {
                alternatives.iter().try_for_each(check)?
            }
            ("$or", _) => return Err("$or must be an array of at least two patterns".into()),
            (_, Value::Object(_)) => check(value)?,
            (_, Value::Array(list)) if !list.is_empty() => {
                list.iter().try_for_each(|m| check_matcher(key, m))?
            }
            (_, Value::Array(_)) => return Err(format!("Empty arrays are not allowed ({key})")),
            _ => {
                return Err(format!(
                    "Match value must be String, number, true, false, or null ({key})"
                ))
            }
        }
    }
    Ok(())
}

fn check_matcher(key: &str, matcher: &Value) -> Result<(), Invalid> {
    let Value::Object(filter) = matcher else {
        return match matcher {
            Value::Array(_) => Err(format!(
                "Match value must be String, number, true, false, or null ({key})"
            )),
            _ => Ok(()),
        };
    };
    let bad = || {
        format!(
            "Unrecognized match type in {key}: {}",
            Value::Object(filter.clone())
        )
    };
    if filter.len() != 1 {
        return Err(bad());
    }
    let (kind, arg) = filter.iter().next().expect("one entry");
    let ok = match kind.as_str() {
        "prefix" | "suffix" => arg.is_string() || affix_ignoring_case(arg).is_some(),
        "equals-ignore-case" | "wildcard" => arg.is_string(),
        "exists" => arg.is_boolean(),
        "anything-but" => match arg {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(list) => list.iter().all(|v| v.is_string() || v.is_number()),
            Value::Object(o) => {
                o.len() == 1
                    && o.iter()
                        .all(|(k, v)| matches!(k.as_str(), "prefix" | "suffix") && v.is_string())
            }
            _ => false,
        },
        "numeric" => numeric_ok(arg),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn affix_ignoring_case(arg: &Value) -> Option<&str> {
    let o = arg.as_object().filter(|o| o.len() == 1)?;
    o.get("equals-ignore-case")?.as_str()
}

fn numeric_ok(arg: &Value) -> bool {
    let Value::Array(list) = arg else {
        return false;
    };
    list.len() % 2 == 0
        && !list.is_empty()
        && list.chunks(2).all(|pair| {
            matches!(pair[0].as_str(), Some("<" | "<=" | "=" | ">" | ">=")) && pair[1].is_number()
        })
}

/// Whether `event` matches `pattern` (a checked one).
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(key, want)| {
        if key == "$or" {
            return want
                .as_array()
                .is_some_and(|alts| alts.iter().any(|p| matches(p, event)));
        }
        let got = event
            .as_object()
            .and_then(|o: &Map<String, Value>| o.get(key));
        match want {
            Value::Object(_) => got.is_some_and(|g| match g {
                Value::Array(items) => items.iter().any(|i| matches(want, i)),
                _ => matches(want, g),
            }),
            Value::Array(list) => list.iter().any(|m| field_matches(m, got)),
            _ => false,
        }
    })
}

fn field_matches(matcher: &Value, got: Option<&Value>) -> bool {
    if let Some(Value::Object(filter)) = Some(matcher) {
        if let Some(exists) = filter.get("exists").and_then(Value::as_bool) {
            let present = got.is_some_and(|g| !matches!(g, Value::Object(_)));
            return present == exists;
        }
    }
    match got {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|i| value_matches(matcher, i)),
        Some(value) => value_matches(matcher, value),
    }
}

fn value_matches(matcher: &Value, value: &Value) -> bool {
    let Value::Object(filter) = matcher else {
        return equal(matcher, value);
    };
    let Some((kind, arg)) = filter.iter().next() else {
        return false;
    };
    let text = value.as_str();
    match kind.as_str() {
        "prefix" => affix(arg, text, |t, a| t.starts_with(a)),
        "suffix" => affix(arg, text, |t, a| t.ends_with(a)),
        "equals-ignore-case" => text
            .zip(arg.as_str())
            .is_some_and(|(t, a)| t.to_lowercase() == a.to_lowercase()),
        "wildcard" => text.zip(arg.as_str()).is_some_and(|(t, a)| wildcard(a, t)),
        "anything-but" => match arg {
            Value::Array(list) => !list.iter().any(|v| equal(v, value)),
            Value::Object(o) => match (o.get("prefix"), o.get("suffix")) {
                (Some(p), _) => !affix(p, text, |t, a| t.starts_with(a)),
                (_, Some(s)) => !affix(s, text, |t, a| t.ends_with(a)),
                _ => false,
            },
            v => !equal(v, value),
        },
        "numeric" => value.as_f64().is_some_and(|n| {
            arg.as_array().is_some_and(|list| {
                list.chunks(2).all(|pair| {
                    let bound = pair[1].as_f64().unwrap_or(f64::NAN);
                    match pair[0].as_str() {
                        Some("<") => n < bound,
                        Some("<=") => n <= bound,
                        Some("=") => n == bound,
                        Some(">") => n > bound,
                        Some(">=") => n >= bound,
                        _ => false,
                    }
                })
            })
        }),
        _ => false,
    }
}

fn affix(arg: &Value, text: Option<&str>, test: fn(&str, &str) -> bool) -> bool {
    let Some(text) = text else {
        return false;
    };
    match (arg.as_str(), affix_ignoring_case(arg)) {
        (Some(a), _) => test(text, a),
        (_, Some(a)) => test(&text.to_lowercase(), &a.to_lowercase()),
        _ => false,
    }
}

fn equal(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pattern: Value, event: Value) -> bool {
        check(&pattern).unwrap();
        matches(&pattern, &event)
    }

    #[test]
    fn patterns_match_as_eventbridge_does() {
        let event = json!({"source": "aws.codecommit", "detail-type": "CodeCommit Repository State Change",
            "resources": ["arn:aws:codecommit:us-east-1:1:app"],
            "detail": {"event": "referenceUpdated", "referenceName": "main", "size": 5}});
        assert!(m(json!({"source": ["aws.codecommit"]}), event.clone()));
        assert!(!m(json!({"source": ["aws.s3"]}), event.clone()));
        assert!(m(
            json!({"resources": ["arn:aws:codecommit:us-east-1:1:app"]}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"event": ["referenceCreated", "referenceUpdated"],
            "referenceName": ["main"]}}),
            event.clone()
        ));
        assert!(!m(
            json!({"detail": {"referenceName": ["dev"]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"referenceName": [{"prefix": "ma"}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"referenceName": [{"anything-but": ["dev"]}]}}),
            event.clone()
        ));
        assert!(!m(
            json!({"detail": {"referenceName": [{"anything-but": "main"}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"missing": [{"exists": false}]}}),
            event.clone()
        ));
        assert!(!m(
            json!({"detail": {"missing": [{"exists": true}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"size": [{"numeric": [">", 1, "<=", 5]}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"referenceName": [{"wildcard": "m*n"}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"detail": {"referenceName": [{"equals-ignore-case": "MAIN"}]}}),
            event.clone()
        ));
        assert!(m(
            json!({"$or": [{"source": ["x"]}, {"detail": {"size": [5]}}]}),
            event
        ));
        for bad in [
            json!({"source": "aws.s3"}),
            json!({"source": []}),
            json!({"source": [{"nope": 1}]}),
            json!({"source": [{"numeric": [">"]}]}),
            json!([1]),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
    }
}
