//! Templates, decided without I/O: reading one (JSON or YAML), checking its sections, the
//! values of its parameters, its conditions, the order its resources are made in (references
//! and `DependsOn`), and the intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`,
//! `Fn::Select`, `Fn::Split`, `Fn::If`, `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`,
//! `Fn::FindInMap`, `Fn::GetAZs`, `Fn::Base64`, `Fn::Cidr`, `Fn::ImportValue`,
//! `Fn::ToJsonString`, `Fn::Length`) with the pseudo parameters.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::{Map, Value};

/// Why a template or a value in it is refused: CloudFormation's `ValidationError` message.
pub type Invalid = String;

/// The largest template body CloudFormation takes inline (51,200 bytes); a template read from
/// S3 may have 1 MB.
pub const MAX_BODY_BYTES: usize = 51_200;

/// The largest template read from S3.
pub const MAX_URL_BODY_BYTES: usize = 1_000_000;

/// How many resources a template may declare.
pub const MAX_RESOURCES: usize = 500;

/// The sections a template may have.
const SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
];

/// A template, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The whole template in JSON form.
    pub body: Value,
}

impl Template {
    /// Reads a template body (JSON, else YAML) and checks its shape.
    pub fn parse(text: &str) -> Result<Template, Invalid> {
        let trimmed = text.trim_start();
        let body = if trimmed.starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| format!("Template format error: JSON not well-formed. ({e})"))?
        } else {
            super::yaml::parse(text)?
        };
        let template = Template { body };
        template.check()?;
        Ok(template)
    }

    fn section(&self, name: &str) -> Option<&Map<String, Value>> {
        self.body.get(name).and_then(Value::as_object)
    }

    /// The parameters' declarations.
    pub fn parameters(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.section("Parameters").unwrap_or(&EMPTY)
    }

    /// The resources' declarations.
    pub fn resources(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.section("Resources").unwrap_or(&EMPTY)
    }

    /// The outputs' declarations.
    pub fn outputs(&self) -> Option<&Map<String, Value>> {
        self.section("Outputs")
    }

    /// The export names its `Fn::ImportValue`s ask for, in the resources and outputs its
    /// conditions keep, as `scope` resolves them.
    pub fn imports(&self, scope: &Scope<'_>) -> Vec<String> {
        let kept = |declaration: &Value| match declaration.get("Condition").and_then(Value::as_str)
        {
            Some(c) => scope.conditions.get(c).copied().unwrap_or(false),
            None => true,
        };
        let mut arguments = Vec::new();
        let declarations = self
            .resources()
            .values()
            .chain(self.outputs().into_iter().flat_map(|o| o.values()));
        for declaration in declarations.filter(|d| kept(d)) {
            collect_imports(declaration, &mut arguments, 0);
        }
        let mut names: Vec<String> = arguments
            .iter()
            .filter_map(|a| resolve(a, scope).ok().flatten())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Its description.
    pub fn description(&self) -> Option<&str> {
        self.body.get("Description").and_then(Value::as_str)
    }

    fn check(&self) -> Result<(), Invalid> {
        let Some(top) = self.body.as_object() else {
            return Err("Template format error: the template is not an object".into());
        };
        if let Some(unknown) = top.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(format!(
                "Template format error: Invalid template property or properties [{unknown}]"
            ));
        }
        if let Some(version) = top.get("AWSTemplateFormatVersion") {
            if version.as_str() != Some("2010-09-09") {
                return Err("Template format error: Unsupported template version".into());
            }
        }
        if let Some(transform) = top.get("Transform") {
            return Err(format!(
                "Transform {transform} is not served by this endpoint: expand the template before deploying it"
            ));
        }
        let resources = match top.get("Resources") {
            Some(Value::Object(r)) if !r.is_empty() => r,
            _ => {
                return Err(
                    "Template format error: At least one Resources member must be defined.".into(),
                )
            }
        };
        if resources.len() > MAX_RESOURCES {
            return Err(format!(
                "Template format error: Number of resources, {}, is greater than maximum allowed, {MAX_RESOURCES}",
                resources.len()
            ));
        }
        for (name, resource) in resources {
            check_name(name)?;
            let Some(kind) = resource.get("Type").and_then(Value::as_str) else {
                return Err(format!(
                    "Template format error: [/Resources/{name}] Every Resources object must contain a Type member."
                ));
            };
            if !kind.contains("::") {
                return Err(format!(
                    "Template format error: Unrecognized resource types: [{kind}]"
                ));
            }
            if let Some(props) = resource.get("Properties") {
                if !props.is_object() {
                    return Err(format!(
                        "Template format error: [/Resources/{name}/Properties] must be an object"
                    ));
                }
            }
        }
        for (name, parameter) in self.parameters() {
            check_name(name)?;
            let kind = parameter.get("Type").and_then(Value::as_str).unwrap_or("");
            if !parameter_type_known(kind) {
                return Err(format!(
                    "Template format error: Unrecognized parameter type: {kind}"
                ));
            }
        }
        let known: BTreeSet<&str> = resources
            .keys()
            .chain(self.parameters().keys())
            .map(String::as_str)
            .collect();
        for (name, resource) in resources {
            for target in depends_on(resource) {
                if !resources.contains_key(&target) {
                    return Err(format!(
                        "Template format error: Unresolved resource dependencies [{target}] in the Resources block of the template"
                    ));
                }
            }
            for (target, _) in references(resource) {
                if !known.contains(target.as_str()) && !target.starts_with("AWS::") {
                    return Err(format!(
                        "Template format error: Unresolved resource dependencies [{target}] in the Resources block of the template"
                    ));
                }
                if target == *name {
                    return Err(format!("Circular dependency between resources: [{name}]"));
                }
            }
        }
        let conditions = self.section("Conditions");
        for resource in resources.values() {
            if let Some(c) = resource.get("Condition").and_then(Value::as_str) {
                if !conditions.is_some_and(|all| all.contains_key(c)) {
                    return Err(format!(
                        "Template format error: Unresolved dependencies [{c}]. Cannot reference resources in the Conditions block of the template"
                    ));
                }
            }
        }
        self.order().map(drop)
    }

    /// The resources in the order they are made: each after those it refers to or depends on.
    pub fn order(&self) -> Result<Vec<String>, Invalid> {
        let resources = self.resources();
        let mut needs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (name, resource) in resources {
            let mut set: BTreeSet<String> = references(resource)
                .into_iter()
                .map(|(t, _)| t)
                .filter(|t| resources.contains_key(t))
                .collect();
            set.extend(depends_on(resource));
            needs.insert(name, set);
        }
        let mut order = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        while order.len() < needs.len() {
            let ready: Vec<&str> = needs
                .iter()
                .filter(|(n, deps)| !done.contains(**n) && deps.iter().all(|d| done.contains(d)))
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = needs
                    .keys()
                    .filter(|n| !done.contains(**n))
                    .copied()
                    .collect();
                return Err(format!(
                    "Circular dependency between resources: [{}]",
                    stuck.join(", ")
                ));
            }
            for n in ready {
                done.insert(n.to_string());
                order.push(n.to_string());
            }
        }
        Ok(order)
    }

    /// The values of the parameters: `given` where given, else the defaults, checked against
    /// their types and constraints; `ssm` resolves `AWS::SSM::Parameter::Value<…>` ones.
    pub fn parameter_values(
        &self,
        given: &BTreeMap<String, String>,
        ssm: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Value>, Invalid> {
        if let Some(unknown) = given.keys().find(|k| !self.parameters().contains_key(*k)) {
            return Err(format!(
                "Parameters: [{unknown}] do not exist in the template"
            ));
        }
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, declaration) in self.parameters() {
            let text = match (given.get(name), declaration.get("Default")) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => scalar_text(d),
                (None, None) => {
                    missing.push(name.clone());
                    continue;
                }
            };
            let kind = declaration["Type"].as_str().unwrap_or("String");
            let text = match kind.strip_prefix("AWS::SSM::Parameter::Value<") {
                Some(_) => ssm(&text)
                    .ok_or_else(|| format!("Parameters: [ssm:{text}] cannot be found."))?,
                None => text,
            };
            check_constraints(name, declaration, kind, &text)?;
            let value = if kind == "CommaDelimitedList"
                || kind.starts_with("List<")
                || kind.contains("<List<")
            {
                Value::Array(
                    text.split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                )
            } else {
                Value::String(text)
            };
            values.insert(name.clone(), value);
        }
        if !missing.is_empty() {
            return Err(format!(
                "Parameters: [{}] must have values",
                missing.join(", ")
            ));
        }
        Ok(values)
    }

    /// Whether each condition holds, given the parameters.
    pub fn conditions(&self, scope: &Scope<'_>) -> Result<BTreeMap<String, bool>, Invalid> {
        let declared = self.section("Conditions").cloned().unwrap_or_default();
        let mut out = BTreeMap::new();
        for name in declared.keys() {
            let mut visiting = BTreeSet::new();
            let value = condition(name, &declared, scope, &mut out, &mut visiting)?;
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// Checks the `Rules` section's assertions.
    pub fn check_rules(&self, scope: &Scope<'_>) -> Result<(), Invalid> {
        let Some(rules) = self.section("Rules") else {
            return Ok(());
        };
        for (name, rule) in rules {
            let applies = match rule.get("RuleCondition") {
                Some(c) => truth(&resolve(c, scope)?.unwrap_or(Value::Bool(false)))?,
                None => true,
            };
            if !applies {
                continue;
            }
            for assertion in rule["Assertions"].as_array().into_iter().flatten() {
                let holds =
                    truth(&resolve(&assertion["Assert"], scope)?.unwrap_or(Value::Bool(false)))?;
                if !holds {
                    let description = assertion["AssertDescription"]
                        .as_str()
                        .unwrap_or("Assertion failed");
                    return Err(format!("Template error: {description} (rule {name})"));
                }
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 255 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "Template format error: Resource name {name} is non alphanumeric."
        ));
    }
    Ok(())
}

fn parameter_type_known(kind: &str) -> bool {
    matches!(
        kind,
        "String" | "Number" | "List<Number>" | "CommaDelimitedList"
    ) || kind.starts_with("AWS::EC2::")
        || kind.starts_with("AWS::Route53::")
        || kind.starts_with("List<AWS::")
        || (kind.starts_with("AWS::SSM::Parameter::Value<") && kind.ends_with('>'))
        || kind == "AWS::SSM::Parameter::Name"
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn check_constraints(
    name: &str,
    declaration: &Value,
    kind: &str,
    text: &str,
) -> Result<(), Invalid> {
    let fail = |why: String| -> Result<(), Invalid> {
        let described = declaration["ConstraintDescription"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(why);
        Err(format!("Parameter '{name}' {described}"))
    };
    if let Some(allowed) = declaration["AllowedValues"].as_array() {
        let values: Vec<String> = allowed.iter().map(scalar_text).collect();
        if !values.iter().any(|v| v == text) {
            return fail("must be one of AllowedValues".to_string());
        }
    }
    if let Some(pattern) = declaration["AllowedPattern"].as_str() {
        let matched = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|re| re.is_match(text))
            .unwrap_or(false);
        if !matched {
            return fail(format!("failed to satisfy constraint: Malformed input-Parameter {name} must match pattern {pattern}"));
        }
    }
    let number = |k: &str| {
        declaration[k]
            .as_f64()
            .or_else(|| declaration[k].as_str()?.parse().ok())
    };
    if let Some(min) = number("MinLength") {
        if (text.chars().count() as f64) < min {
            return fail(format!("must contain at least {min} characters"));
        }
    }
    if let Some(max) = number("MaxLength") {
        if (text.chars().count() as f64) > max {
            return fail(format!("must contain at most {max} characters"));
        }
    }
    if kind == "Number" || kind == "List<Number>" {
        for item in text.split(',').map(str::trim) {
            let Ok(n) = item.parse::<f64>() else {
                return fail("must be a number".into());
            };
            if number("MinValue").is_some_and(|min| n < min) {
                return fail(format!(
                    "must be a number not less than {}",
                    number("MinValue").unwrap_or_default()
                ));
            }
            if number("MaxValue").is_some_and(|max| n > max) {
                return fail(format!(
                    "must be a number not greater than {}",
                    number("MaxValue").unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn condition(
    name: &str,
    declared: &Map<String, Value>,
    scope: &Scope<'_>,
    done: &mut BTreeMap<String, bool>,
    visiting: &mut BTreeSet<String>,
) -> Result<bool, Invalid> {
    if let Some(v) = done.get(name) {
        return Ok(*v);
    }
    let Some(expression) = declared.get(name) else {
        return Err(format!(
            "Template error: unresolved condition dependency {name} in Fn::If"
        ));
    };
    if !visiting.insert(name.to_string()) {
        return Err(format!(
            "Template error: circular condition dependency {name}"
        ));
    }
    let value = eval_condition(expression, declared, scope, done, visiting)?;
    done.insert(name.to_string(), value);
    Ok(value)
}

fn eval_condition(
    expression: &Value,
    declared: &Map<String, Value>,
    scope: &Scope<'_>,
    done: &mut BTreeMap<String, bool>,
    visiting: &mut BTreeSet<String>,
) -> Result<bool, Invalid> {
    let Some((function, argument)) = single(expression) else {
        return truth(expression);
    };
    let list = || {
        argument
            .as_array()
            .ok_or(format!("Template error: {function} takes a list"))
    };
    match function {
        "Condition" => {
            let name = argument
                .as_str()
                .ok_or("Template error: Condition takes a name")?;
            condition(name, declared, scope, done, visiting)
        }
        "Fn::Equals" => {
            let items = list()?;
            if items.len() != 2 {
                return Err("Template error: Fn::Equals takes two values".into());
            }
            let a = resolve(&items[0], scope)?.map(|v| scalar_text(&v));
            let b = resolve(&items[1], scope)?.map(|v| scalar_text(&v));
            Ok(a == b)
        }
        "Fn::Not" => {
            let items = list()?;
            match items.as_slice() {
                [one] => Ok(!eval_condition(one, declared, scope, done, visiting)?),
                _ => Err("Template error: Fn::Not takes one condition".into()),
            }
        }
        "Fn::And" | "Fn::Or" => {
            let items = list()?;
            if !(2..=10).contains(&items.len()) {
                return Err(format!(
                    "Template error: {function} takes 2 to 10 conditions"
                ));
            }
            let mut results = Vec::new();
            for item in items {
                results.push(eval_condition(item, declared, scope, done, visiting)?);
            }
            Ok(if function == "Fn::And" {
                results.iter().all(|b| *b)
            } else {
                results.iter().any(|b| *b)
            })
        }
        _ => truth(&resolve(expression, scope)?.unwrap_or(Value::Bool(false))),
    }
}

fn truth(v: &Value) -> Result<bool, Invalid> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(format!("Template error: {other} is not a condition")),
    }
}

/// The one function an object is (`{"Ref": …}`, `{"Fn::Join": …}`, `{"Condition": …}`).
fn single(v: &Value) -> Option<(&str, &Value)> {
    let map = v.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k.as_str(), v))
}

fn collect_imports<'a>(v: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
    if depth > super::yaml::MAX_DEPTH * 2 {
        return;
    }
    if let Some(("Fn::ImportValue", argument)) = single(v) {
        out.push(argument);
        return;
    }
    match v {
        Value::Object(map) => map
            .values()
            .for_each(|v| collect_imports(v, out, depth + 1)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_imports(v, out, depth + 1)),
        _ => {}
    }
}

/// The resources and parameters a value refers to: (name, attribute for `Fn::GetAtt`).
pub fn references(v: &Value) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    collect_references(v, &mut out, 0);
    out
}

fn collect_references(v: &Value, out: &mut Vec<(String, Option<String>)>, depth: usize) {
    if depth > super::yaml::MAX_DEPTH * 2 {
        return;
    }
    match single(v) {
        Some(("Ref", Value::String(name))) => out.push((name.clone(), None)),
        Some(("Fn::GetAtt", Value::Array(parts))) => {
            if let (Some(r), Some(a)) = (parts.first().and_then(Value::as_str), parts.get(1)) {
                out.push((r.to_string(), a.as_str().map(str::to_string)));
            }
        }
        Some(("Fn::GetAtt", Value::String(s))) => {
            if let Some((r, a)) = s.split_once('.') {
                out.push((r.to_string(), Some(a.to_string())));
            }
        }
        Some(("Fn::Sub", arg)) => {
            let (text, vars) = match arg {
                Value::String(s) => (s.as_str(), None),
                Value::Array(items) => (
                    items.first().and_then(Value::as_str).unwrap_or(""),
                    items.get(1).and_then(Value::as_object),
                ),
                _ => ("", None),
            };
            for name in sub_names(text) {
                if vars.is_some_and(|v| v.contains_key(&name)) {
                    continue;
                }
                match name.split_once('.') {
                    Some((r, a)) => out.push((r.to_string(), Some(a.to_string()))),
                    None => out.push((name, None)),
                }
            }
            if let Some(vars) = vars {
                for value in vars.values() {
                    collect_references(value, out, depth + 1);
                }
            }
        }
        _ => match v {
            Value::Object(map) => {
                for (k, value) in map {
                    // What a resource is, not what it refers to.
                    if depth == 0 && (k == "Type" || k == "DependsOn" || k == "Condition") {
                        continue;
                    }
                    collect_references(value, out, depth + 1);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|i| collect_references(i, out, depth + 1)),
            _ => {}
        },
    }
}

fn depends_on(resource: &Value) -> Vec<String> {
    match resource.get("DependsOn") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `${…}` names in a `Fn::Sub` string (not the `${!…}` literals).
fn sub_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            out.push(name.trim().to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// What intrinsic functions read: the parameters, pseudo parameters, conditions, mappings,
/// the resources made so far and the exports of the region.
pub struct Scope<'a> {
    /// Parameter values.
    pub parameters: &'a BTreeMap<String, Value>,
    /// Conditions (empty while they are being decided).
    pub conditions: &'a BTreeMap<String, bool>,
    /// The `Mappings` section.
    pub mappings: Option<&'a Value>,
    /// The account.
    pub account: &'a str,
    /// The region.
    pub region: &'a str,
    /// The stack's name.
    pub stack_name: &'a str,
    /// The stack's id (ARN).
    pub stack_id: &'a str,
    /// A made resource's physical id (what `Ref` gives).
    pub physical_id: &'a dyn Fn(&str) -> Option<String>,
    /// A made resource's attribute.
    pub attribute: &'a dyn Fn(&str, &str) -> Option<Value>,
    /// An export's value.
    pub export: &'a dyn Fn(&str) -> Option<String>,
}

/// A value with its functions resolved; `None` where it is `AWS::NoValue`.
pub fn resolve(v: &Value, scope: &Scope<'_>) -> Result<Option<Value>, Invalid> {
    resolve_at(v, scope, 0)
}

fn resolve_at(v: &Value, scope: &Scope<'_>, depth: usize) -> Result<Option<Value>, Invalid> {
    if depth > super::yaml::MAX_DEPTH * 2 {
        return Err("Template error: values nested too deeply".into());
    }
    let go = |v: &Value| resolve_at(v, scope, depth + 1);
    let value = |v: &Value| -> Result<Value, Invalid> {
        go(v)?.ok_or_else(|| "Template error: AWS::NoValue where a value is needed".into())
    };
    let text = |v: &Value| -> Result<String, Invalid> {
        match value(v)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("Template error: {other} is not a string")),
        }
    };
    let list = |v: &Value| -> Result<Vec<Value>, Invalid> {
        match value(v)? {
            Value::Array(items) => Ok(items),
            other => Err(format!("Template error: {other} is not a list")),
        }
    };
    let Some((function, arg)) = single(v) else {
        return Ok(Some(match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, item) in map {
                    if let Some(resolved) = go(item)? {
                        out.insert(k.clone(), resolved);
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(resolved) = go(item)? {
                        out.push(resolved);
                    }
                }
                Value::Array(out)
            }
            other => other.clone(),
        }));
    };
    let args = |n: usize| -> Result<&Vec<Value>, Invalid> {
        arg.as_array()
            .filter(|a| a.len() == n)
            .ok_or_else(|| format!("Template error: {function} takes {n} arguments"))
    };
    Ok(Some(match function {
        "Ref" => {
            let name = arg.as_str().ok_or("Template error: Ref takes a name")?;
            return reference(name, scope);
        }
        "Condition" => {
            let name = arg
                .as_str()
                .ok_or("Template error: Condition takes a name")?;
            Value::Bool(
                *scope.conditions.get(name).ok_or_else(|| {
                    format!("Template error: unresolved condition dependency {name}")
                })?,
            )
        }
        "Fn::GetAtt" => {
            let (resource, attribute) = match arg {
                Value::String(s) => s
                    .split_once('.')
                    .map(|(r, a)| (r.to_string(), a.to_string()))
                    .ok_or("Template error: Fn::GetAtt takes a resource and an attribute")?,
                Value::Array(parts) if parts.len() == 2 => (text(&parts[0])?, text(&parts[1])?),
                _ => {
                    return Err(
                        "Template error: Fn::GetAtt takes a resource and an attribute".into(),
                    )
                }
            };
            (scope.attribute)(&resource, &attribute).ok_or_else(|| {
                format!("Template error: resource {resource} does not support attribute type {attribute} in Fn::GetAtt")
            })?
        }
        "Fn::Sub" => {
            let (template, vars) = match arg {
                Value::String(s) => (s.clone(), Map::new()),
                Value::Array(items) if items.len() == 2 => {
                    let vars = match value(&items[1])? {
                        Value::Object(m) => m,
                        _ => return Err("Template error: Fn::Sub's variables are a map".into()),
                    };
                    (text(&items[0])?, vars)
                }
                _ => {
                    return Err(
                        "Template error: Fn::Sub takes a string, or a string and a map".into(),
                    )
                }
            };
            Value::String(substitute(&template, &vars, scope)?)
        }
        "Fn::Join" => {
            let a = args(2)?;
            let delimiter = text(&a[0])?;
            let parts: Result<Vec<String>, Invalid> = list(&a[1])?.iter().map(&text).collect();
            Value::String(parts?.join(&delimiter))
        }
        "Fn::Select" => {
            let a = args(2)?;
            let index: usize = text(&a[0])?
                .parse()
                .map_err(|_| "Template error: Fn::Select's index is not a number")?;
            list(&a[1])?
                .get(index)
                .cloned()
                .ok_or("Template error: Fn::Select cannot select nonexistent value at index")?
        }
        "Fn::Split" => {
            let a = args(2)?;
            let delimiter = text(&a[0])?;
            if delimiter.is_empty() {
                return Err("Template error: Fn::Split's delimiter is empty".into());
            }
            Value::Array(
                text(&a[1])?
                    .split(delimiter.as_str())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )
        }
        "Fn::If" => {
            let a = args(3)?;
            let name = a[0]
                .as_str()
                .ok_or("Template error: Fn::If names a condition")?;
            let holds = *scope.conditions.get(name).ok_or_else(|| {
                format!("Template error: unresolved condition dependency {name} in Fn::If")
            })?;
            return go(if holds { &a[1] } else { &a[2] });
        }
        "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" => {
            let mut done = scope.conditions.clone();
            Value::Bool(eval_condition(
                v,
                &Map::new(),
                scope,
                &mut done,
                &mut BTreeSet::new(),
            )?)
        }
        "Fn::FindInMap" => {
            let a = arg
                .as_array()
                .filter(|a| a.len() == 3 || a.len() == 4)
                .ok_or("Template error: Fn::FindInMap takes three names")?;
            let (map, top, second) = (text(&a[0])?, text(&a[1])?, text(&a[2])?);
            let found = scope
                .mappings
                .and_then(|m| m.get(&map))
                .and_then(|m| m.get(&top))
                .and_then(|m| m.get(&second))
                .cloned();
            match (found, a.get(3)) {
                (Some(v), _) => v,
                (None, Some(default)) => value(&default["DefaultValue"])?,
                (None, None) => {
                    return Err(format!(
                        "Template error: Unable to get mapping for {map}::{top}::{second}"
                    ))
                }
            }
        }
        "Fn::GetAZs" => {
            let region = text(arg)?;
            let region = if region.is_empty() {
                scope.region.to_string()
            } else {
                region
            };
            Value::Array(
                ["a", "b", "c"]
                    .iter()
                    .map(|z| Value::String(format!("{region}{z}")))
                    .collect(),
            )
        }
        "Fn::Base64" => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(text(arg)?.as_bytes()))
        }
        "Fn::Cidr" => {
            let a = args(3)?;
            let block = text(&a[0])?;
            let count: u32 = text(&a[1])?
                .parse()
                .map_err(|_| "Template error: Fn::Cidr's count is not a number")?;
            let bits: u32 = text(&a[2])?
                .parse()
                .map_err(|_| "Template error: Fn::Cidr's cidrBits is not a number")?;
            Value::Array(
                cidr(&block, count, bits)?
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )
        }
        "Fn::ImportValue" => {
            let name = text(arg)?;
            Value::String(
                (scope.export)(&name).ok_or_else(|| format!("No export named {name} found."))?,
            )
        }
        // The rule functions (in `Rules` assertions).
        "Fn::Contains" | "Fn::EachMemberEquals" | "Fn::EachMemberIn" => {
            let a = args(2)?;
            let items: Vec<String> = match value(&a[0])? {
                Value::Array(items) => items.iter().map(scalar_text).collect(),
                other => vec![scalar_text(&other)],
            };
            let other = value(&a[1])?;
            Value::Bool(match function {
                "Fn::Contains" => items.contains(&scalar_text(&other)),
                "Fn::EachMemberEquals" => items.iter().all(|i| *i == scalar_text(&other)),
                _ => {
                    let allowed: Vec<String> = match other {
                        Value::Array(list) => list.iter().map(scalar_text).collect(),
                        single => vec![scalar_text(&single)],
                    };
                    items.iter().all(|i| allowed.contains(i))
                }
            })
        }
        "Fn::ToJsonString" => Value::String(value(arg)?.to_string()),
        "Fn::Length" => Value::Number(list(arg)?.len().into()),
        other => {
            return Err(format!(
                "Template error: {other} is not a function this endpoint serves"
            ))
        }
    }))
}

fn reference(name: &str, scope: &Scope<'_>) -> Result<Option<Value>, Invalid> {
    let pseudo = match name {
        "AWS::NoValue" => return Ok(None),
        "AWS::AccountId" => Some(Value::String(scope.account.into())),
        "AWS::Region" => Some(Value::String(scope.region.into())),
        "AWS::StackName" => Some(Value::String(scope.stack_name.into())),
        "AWS::StackId" => Some(Value::String(scope.stack_id.into())),
        "AWS::Partition" => Some(Value::String("aws".into())),
        "AWS::URLSuffix" => Some(Value::String("amazonaws.com".into())),
        "AWS::NotificationARNs" => Some(Value::Array(Vec::new())),
        _ => None,
    };
    if let Some(v) = pseudo {
        return Ok(Some(v));
    }
    if let Some(v) = scope.parameters.get(name) {
        return Ok(Some(v.clone()));
    }
    (scope.physical_id)(name)
        .map(|id| Some(Value::String(id)))
        .ok_or_else(|| format!("Template error: unresolved reference {name}"))
}

fn substitute(
    template: &str,
    vars: &Map<String, Value>,
    scope: &Scope<'_>,
) -> Result<String, Invalid> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let name = after[..end].trim();
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else {
            let value = match vars.get(name) {
                Some(v) => Some(v.clone()),
                None => match name.split_once('.') {
                    Some((r, a)) if !name.starts_with("AWS::") => Some(
                        (scope.attribute)(r, a).ok_or_else(|| {
                            format!("Template error: resource {r} does not support attribute type {a} in Fn::Sub")
                        })?,
                    ),
                    _ => reference(name, scope)?,
                },
            };
            match value {
                Some(Value::String(s)) => out.push_str(&s),
                Some(Value::Number(n)) => out.push_str(&n.to_string()),
                Some(Value::Bool(b)) => out.push_str(&b.to_string()),
                Some(Value::Array(items)) => {
                    out.push_str(&items.iter().map(scalar_text).collect::<Vec<_>>().join(","))
                }
                _ => {
                    return Err(format!(
                        "Template error: variable {name} in Fn::Sub is not a string"
                    ))
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `count` IPv4 blocks of `bits` host bits each, in order, from `block` (`a.b.c.d/n`).
fn cidr(block: &str, count: u32, bits: u32) -> Result<Vec<String>, Invalid> {
    let bad = || format!("Template error: Fn::Cidr cannot divide {block}");
    let (address, prefix) = block.split_once('/').ok_or_else(bad)?;
    let address: std::net::Ipv4Addr = address.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    if prefix > 32 || bits == 0 || bits > 32 - prefix || !(1..=256).contains(&count) {
        return Err(bad());
    }
    if u64::from(count) > 1u64 << (32 - prefix - bits) {
        return Err(bad());
    }
    let base = u32::from(address) & (u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
    Ok((0..count)
        .map(|i| {
            let start = base + (i << bits);
            format!("{}/{}", std::net::Ipv4Addr::from(start), 32 - bits)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_with<'a>(
        parameters: &'a BTreeMap<String, Value>,
        conditions: &'a BTreeMap<String, bool>,
        mappings: Option<&'a Value>,
    ) -> Scope<'a> {
        Scope {
            parameters,
            conditions,
            mappings,
            account: "000000000000",
            region: "eu-central-1",
            stack_name: "ci",
            stack_id: "arn:aws:cloudformation:eu-central-1:000000000000:stack/ci/1",
            physical_id: &|name| (name == "Bucket").then(|| "ci-bucket-abc".to_string()),
            attribute: &|r, a| {
                (r == "Bucket" && a == "Arn").then(|| json!("arn:aws:s3:::ci-bucket-abc"))
            },
            export: &|name| (name == "shared").then(|| "value".to_string()),
        }
    }

    #[test]
    fn a_yaml_template_resolves_parameters_conditions_and_functions() {
        let t = Template::parse(
            r#"
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Subnets: {Type: CommaDelimitedList, Default: "a, b"}
Mappings:
  Sizes: {dev: {Count: 1}, prod: {Count: 3}}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Bucket: {Type: AWS::S3::Bucket}
  Role:
    Type: AWS::IAM::Role
    DependsOn: Queue
    Properties:
      Name: !Sub "${AWS::StackName}-${Env}-${Bucket}-${Bucket.Arn}-${!Literal}"
  Queue: {Type: AWS::SQS::Queue, Properties: {Size: !FindInMap [Sizes, !Ref Env, Count]}}
"#,
        )
        .unwrap();
        assert_eq!(t.order().unwrap(), ["Bucket", "Queue", "Role"]);
        let params = t.parameter_values(&BTreeMap::new(), &|_| None).unwrap();
        assert_eq!(params["Subnets"], json!(["a", "b"]));
        let none = BTreeMap::new();
        let conditions = t.conditions(&scope_with(&params, &none, None)).unwrap();
        assert!(!conditions["IsProd"]);
        assert!(conditions["NotProd"]);
        let mappings = t.body.get("Mappings").cloned();
        let scope = scope_with(&params, &conditions, mappings.as_ref());
        let role = resolve(&t.resources()["Role"]["Properties"], &scope)
            .unwrap()
            .unwrap();
        assert_eq!(
            role["Name"],
            "ci-dev-ci-bucket-abc-arn:aws:s3:::ci-bucket-abc-${Literal}"
        );
        let queue = resolve(&t.resources()["Queue"]["Properties"], &scope)
            .unwrap()
            .unwrap();
        assert_eq!(queue["Size"], 1);
        let refused = t
            .parameter_values(&[("Env".to_string(), "qa".to_string())].into(), &|_| None)
            .unwrap_err();
        assert_eq!(refused, "Parameter 'Env' must be one of AllowedValues");
        let unknown = t
            .parameter_values(&[("Nope".to_string(), "x".to_string())].into(), &|_| None)
            .unwrap_err();
        assert_eq!(unknown, "Parameters: [Nope] do not exist in the template");
    }

    #[test]
    fn functions_compute_as_cloudformation_does() {
        let params = BTreeMap::new();
        let conditions: BTreeMap<String, bool> = [("Yes".to_string(), true)].into();
        let scope = scope_with(&params, &conditions, None);
        let r = |v: Value| resolve(&v, &scope).unwrap();
        assert_eq!(
            r(json!({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}]]})),
            Some(json!("a-eu-central-1"))
        );
        assert_eq!(
            r(json!({"Fn::Select": ["1", {"Fn::Split": [",", "x,y,z"]}]})),
            Some(json!("y"))
        );
        assert_eq!(
            r(json!({"Fn::If": ["Yes", {"Ref": "AWS::NoValue"}, "no"]})),
            None
        );
        assert_eq!(
            r(
                json!({"a": {"Fn::If": ["Yes", {"Ref": "AWS::NoValue"}, 1]}, "b": [1, {"Ref": "AWS::NoValue"}]})
            ),
            Some(json!({"b": [1]}))
        );
        assert_eq!(r(json!({"Fn::Base64": "hi"})), Some(json!("aGk=")));
        assert_eq!(
            r(json!({"Fn::GetAZs": ""})),
            Some(json!(["eu-central-1a", "eu-central-1b", "eu-central-1c"]))
        );
        assert_eq!(
            r(json!({"Fn::Cidr": ["10.0.0.0/16", 3, 8]})),
            Some(json!(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]))
        );
        assert_eq!(
            r(json!({"Fn::ImportValue": "shared"})),
            Some(json!("value"))
        );
        assert_eq!(
            r(json!({"Fn::ToJsonString": {"a": 1}})),
            Some(json!("{\"a\":1}"))
        );
        assert_eq!(r(json!({"Fn::Length": [1, 2]})), Some(json!(2)));
        assert_eq!(
            r(json!({"Fn::Contains": [["1", "2"], "2"]})),
            Some(json!(true))
        );
        assert_eq!(
            r(json!({"Fn::EachMemberIn": [["1", "3"], ["1", "2"]]})),
            Some(json!(false))
        );
        assert_eq!(
            r(json!({"Fn::Sub": ["${x}-${AWS::AccountId}", {"x": "v"}]})),
            Some(json!("v-000000000000"))
        );
        assert!(resolve(&json!({"Fn::ImportValue": "missing"}), &scope)
            .unwrap_err()
            .contains("No export named missing"));
        assert!(resolve(&json!({"Ref": "Nothing"}), &scope).is_err());
    }

    #[test]
    fn templates_are_refused_as_cloudformation_words_it() {
        let refuse = |text: &str| Template::parse(text).unwrap_err();
        assert!(refuse("{}").contains("At least one Resources member must be defined."));
        assert!(refuse("Resources: {A: {Properties: {}}}").contains("must contain a Type member"));
        assert!(refuse("Resources: {A: {Type: X}}").contains("Unrecognized resource types: [X]"));
        assert!(refuse("Resources: {A: {Type: A::B::C, DependsOn: B}}")
            .contains("Unresolved resource dependencies [B]"));
        assert!(
            refuse("Resources: {A: {Type: A::B::C, Properties: {x: !Ref Z}}}")
                .contains("Unresolved resource dependencies [Z]")
        );
        assert!(refuse(
            "Resources: {A: {Type: A::B::C, DependsOn: B}, B: {Type: A::B::C, DependsOn: A}}"
        )
        .contains("Circular dependency between resources: [A, B]"));
        assert!(refuse("Bogus: 1\nResources: {A: {Type: A::B::C}}")
            .contains("Invalid template property or properties [Bogus]"));
        assert!(
            refuse("Transform: AWS::Serverless-2016-10-31\nResources: {A: {Type: A::B::C}}")
                .contains("is not served")
        );
        assert!(refuse("Resources: {a-b: {Type: A::B::C}}").contains("non alphanumeric"));
    }
}
