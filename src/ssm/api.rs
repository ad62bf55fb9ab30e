//! SSM's JSON 1.1 API (`AmazonSSM`), the Parameter Store part, checked against AWS's model.

use std::sync::LazyLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use base64::Engine;
use serde_json::{json, Value};

use super::MAX_PARAMETERS;
use super::{to_wire, ParameterEvent, ParameterStore, RegionParameters, Version};
use crate::aws::model::ServiceModel;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::eventstore::EventType;
use crate::regional::RegionalFailure;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/ssm-2014-11-06.json")));

const SERVED: &[&str] = &[
    "PutParameter",
    "GetParameter",
    "GetParameters",
    "GetParametersByPath",
    "DeleteParameter",
    "DeleteParameters",
    "DescribeParameters",
    "GetParameterHistory",
];

/// The largest value of a Standard parameter (AWS: 4 KB).
const MAX_VALUE_BYTES: usize = 4096;

/// How deep a parameter's hierarchy may go (AWS: 15 levels).
const MAX_LEVELS: usize = 15;

/// Whether a request is SSM's: the SigV4 scope `ssm`, or (unsigned) its target.
pub fn is_ssm(service: &str, target: &str) -> bool {
    service == "ssm"
        || (service.is_empty() && target.starts_with(&format!("{}.", MODEL.target_prefix)))
}

/// Answers an SSM request.
pub async fn handle(
    store: &ParameterStore,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(store, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

fn not_found(name: &str) -> AwsError {
    AwsError::new("ParameterNotFound", format!("Parameter {name} not found."))
}

/// `name` and the version a `name:version` selector names.
fn selector(name: &str) -> Result<(&str, Option<u64>), AwsError> {
    match name.rsplit_once(':') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => match v.parse::<u64>() {
            Ok(version) => Ok((n, Some(version))),
            // Labels are not kept: a label names no version.
            Err(_) => Err(AwsError::new(
                "ParameterVersionLabelLimitExceeded",
                format!("Labels are not served by this endpoint ({v})"),
            )
            .with_status(400)),
        },
        _ => Ok((name, None)),
    }
}

fn check_name(name: &str) -> Result<(), AwsError> {
    let bad =
        |why: &str| AwsError::validation(format!("Parameter name {name} is not valid: {why}"));
    let plain = name.strip_prefix('/').unwrap_or(name);
    let lower = plain.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Err(AwsError::validation(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return Err(bad("only a-z, A-Z, 0-9, _, ., - and / are allowed"));
    }
    if name.contains("//") || (name.contains('/') && !name.starts_with('/')) || name.ends_with('/')
    {
        return Err(bad("a hierarchy starts with / and has no empty level"));
    }
    if name.split('/').filter(|p| !p.is_empty()).count() > MAX_LEVELS {
        return Err(AwsError::new(
            "HierarchyLevelLimitExceededException",
            format!("A hierarchy can have a maximum of {MAX_LEVELS} levels."),
        ));
    }
    Ok(())
}

fn metadata(name: &str, v: &Version, ctx: &RequestContext) -> Value {
    let mut out = json!({
        "Name": name,
        "ARN": super::arn(&ctx.account_id, &ctx.region, name),
        "Type": v.kind,
        "LastModifiedDate": v.modified,
        "LastModifiedUser": format!("arn:aws:iam::{}:root", ctx.account_id),
        "Version": v.version,
        "Tier": "Standard",
        "Policies": [],
        "DataType": v.data_type,
    });
    if let Some(d) = &v.description {
        out["Description"] = d.clone().into();
    }
    if let Some(p) = &v.allowed_pattern {
        out["AllowedPattern"] = p.clone().into();
    }
    out
}

/// A page of `items` after position `token`: (page, next token).
fn page<T>(
    items: Vec<T>,
    token: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let start = match token {
        Some(t) => engine
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| AwsError::new("InvalidNextToken", "The specified token isn't valid."))?,
        None => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next =
        (start + page.len() < total).then(|| engine.encode((start + page.len()).to_string()));
    Ok((page, next))
}

/// Whether `name` is under `path` (one level below it, or any with `recursive`).
fn under(name: &str, path: &str, recursive: bool) -> bool {
    let path = path.trim_end_matches('/');
    let Some(rest) = name.strip_prefix(path).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

/// One operation called in-process (CloudFormation's providers), with AWS's JSON input: the
/// same path a client's request takes.
pub async fn call(
    store: &ParameterStore,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", MODEL.target_prefix);
    let out = run(store, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

async fn run(
    store: &ParameterStore,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("SSM", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    MODEL.validate_input(&operation, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().map(str::to_string);
    let name = text("Name").unwrap_or_default();
    let read = |f: &dyn Fn(&RegionParameters) -> Result<Value, AwsError>| {
        store.parameters.read(account, region, f)
    };
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let out = match operation.as_str() {
        "PutParameter" => {
            check_name(&name)?;
            let value = text("Value").unwrap_or_default();
            if value.len() > MAX_VALUE_BYTES {
                return Err(AwsError::validation(format!(
                    "Standard tier parameters support a maximum parameter value of {MAX_VALUE_BYTES} characters."
                )));
            }
            if text("Tier").as_deref() == Some("Advanced") {
                return Err(AwsError::validation(
                    "The Advanced tier is not served by this endpoint: use Standard",
                ));
            }
            let overwrite = input["Overwrite"].as_bool().unwrap_or(false);
            if overwrite && input.get("Tags").is_some() {
                return Err(AwsError::validation(
                    "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
                ));
            }
            let data_type = text("DataType").unwrap_or_else(|| "text".into());
            if data_type != "text"
                && data_type != "aws:ec2:image"
                && data_type != "aws:ssm:integration"
            {
                return Err(AwsError::validation(format!(
                    "The following data type is not supported: {data_type} (Data type names are all lowercase.)"
                )));
            }
            let pattern = text("AllowedPattern");
            if let Some(p) = &pattern {
                let re = regex::Regex::new(p).map_err(|_| {
                    AwsError::new(
                        "InvalidAllowedPatternException",
                        format!("The pattern {p} is not valid."),
                    )
                })?;
                if !re.is_match(&value) {
                    return Err(AwsError::new(
                        "ParameterPatternMismatchException",
                        format!("Parameter value, cannot be validated against allowedPattern: {p}"),
                    ));
                }
            }
            let (kind, description) = (text("Type"), text("Description"));
            let now = crate::aws::now_epoch();
            let put_name = name.clone();
            let recorded_events = store
                .parameters
                .record(account, region, move |all| {
                    let old = all.get(&put_name).and_then(|p| p.current());
                    if old.is_some() && !overwrite {
                        return Err(AwsError::new(
                            "ParameterAlreadyExists",
                            "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                        ));
                    }
                    if old.is_none() && all.len() >= MAX_PARAMETERS {
                        return Err(AwsError::new(
                            "ParameterLimitExceeded",
                            format!("An account can have {MAX_PARAMETERS} parameters in a region."),
                        ));
                    }
                    let kind = match (kind, old) {
                        (Some(k), _) => k,
                        (None, Some(o)) => o.kind.clone(),
                        (None, None) => {
                            return Err(AwsError::validation(
                                "A parameter type is required when you create a parameter.",
                            ))
                        }
                    };
                    let number = all
                        .get(&put_name)
                        .and_then(|p| p.current())
                        .map_or(1, |v| v.version + 1);
                    let version = Version {
                        kind,
                        value,
                        version: number,
                        modified: now,
                        description: description.or(old.and_then(|o| o.description.clone())),
                        allowed_pattern: pattern.or(old.and_then(|o| o.allowed_pattern.clone())),
                        data_type,
                    };
                    Ok(vec![ParameterEvent::Put { name: put_name, version }])
                })
                .await
                .map_err(recorded)?;
            let version = recorded_events
                .first()
                .and_then(ParameterEvent::from_record)
                .and_then(|e| match e {
                    ParameterEvent::Put { version, .. } => Some(version.version),
                    ParameterEvent::Deleted(_) => None,
                })
                .unwrap_or(1);
            json!({"Version": version, "Tier": "Standard"})
        }
        "GetParameter" => {
            let (plain, version) = selector(&name)?;
            read(&|all| {
                let p = all.get(plain).ok_or_else(|| not_found(&name))?;
                let v = match version {
                    Some(n) => p.versions.iter().find(|v| v.version == n).ok_or_else(|| {
                        AwsError::new(
                            "ParameterVersionNotFound",
                            format!("Systems Manager could not find version {n} of {plain}. Verify the version and try again."),
                        )
                    })?,
                    None => p.current().ok_or_else(|| not_found(&name))?,
                };
                let shown = version.map(|n| format!(":{n}"));
                Ok(json!({"Parameter": to_wire(account, region, plain, v, shown.as_deref())}))
            })?
        }
        "GetParameters" => {
            let names: Vec<String> =
                serde_json::from_value(input["Names"].clone()).unwrap_or_default();
            read(&|all| {
                let (mut found, mut invalid) = (Vec::new(), Vec::new());
                for n in &names {
                    let (plain, version) = match selector(n) {
                        Ok(s) => s,
                        Err(_) => {
                            invalid.push(n.clone());
                            continue;
                        }
                    };
                    let v = all.get(plain).and_then(|p| match version {
                        Some(x) => p.versions.iter().find(|v| v.version == x),
                        None => p.current(),
                    });
                    match v {
                        Some(v) => {
                            let shown = version.map(|x| format!(":{x}"));
                            found.push(to_wire(account, region, plain, v, shown.as_deref()))
                        }
                        None => invalid.push(n.clone()),
                    }
                }
                Ok(json!({"Parameters": found, "InvalidParameters": invalid}))
            })?
        }
        "GetParametersByPath" => {
            let path = text("Path").unwrap_or_default();
            if !path.starts_with('/') {
                return Err(AwsError::validation(format!(
                    "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\". ({path})"
                )));
            }
            let recursive = input["Recursive"].as_bool().unwrap_or(false);
            let max = input["MaxResults"].as_u64().unwrap_or(10) as usize;
            let matched: Vec<Value> = store.parameters.read(account, region, |all| {
                all.iter()
                    .filter(|(n, _)| under(n, &path, recursive))
                    .filter_map(|(n, p)| p.current().map(|v| to_wire(account, region, n, v, None)))
                    .collect()
            });
            let (list, next) = page(matched, input["NextToken"].as_str(), max)?;
            let mut out = json!({ "Parameters": list });
            if let Some(next) = next {
                out["NextToken"] = next.into();
            }
            out
        }
        "DeleteParameter" => {
            let gone = name.clone();
            store
                .parameters
                .record(account, region, move |all| {
                    if !all.contains_key(&gone) {
                        return Err(not_found(&gone));
                    }
                    Ok(vec![ParameterEvent::Deleted(vec![gone])])
                })
                .await
                .map_err(recorded)?;
            json!({})
        }
        "DeleteParameters" => {
            let names: Vec<String> =
                serde_json::from_value(input["Names"].clone()).unwrap_or_default();
            let (deleted, invalid): (Vec<String>, Vec<String>) =
                store.parameters.read(account, region, |all| {
                    names.iter().cloned().partition(|n| all.contains_key(n))
                });
            if !deleted.is_empty() {
                let gone = deleted.clone();
                store
                    .parameters
                    .record(account, region, move |_| {
                        Ok::<_, AwsError>(vec![ParameterEvent::Deleted(gone)])
                    })
                    .await
                    .map_err(recorded)?;
            }
            json!({"DeletedParameters": deleted, "InvalidParameters": invalid})
        }
        "DescribeParameters" => {
            let filters = input["ParameterFilters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let old_filters = input["Filters"].as_array().cloned().unwrap_or_default();
            for f in &filters {
                let key = f["Key"].as_str().unwrap_or_default();
                if !matches!(key, "Name" | "Type" | "Path" | "DataType" | "Tier") {
                    return Err(AwsError::new(
                        "InvalidFilterKey",
                        format!("The filter key {key} is not served by this endpoint."),
                    ));
                }
            }
            let max = input["MaxResults"].as_u64().unwrap_or(50) as usize;
            let keep = |name: &str, v: &Version| {
                filters.iter().all(|f| {
                    let values: Vec<&str> = f["Values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let option = f["Option"].as_str().unwrap_or("Equals");
                    let field = match f["Key"].as_str().unwrap_or_default() {
                        "Name" => name,
                        "Type" => v.kind.as_str(),
                        "DataType" => v.data_type.as_str(),
                        "Tier" => "Standard",
                        _ => return values.iter().any(|p| under(name, p, option == "Recursive")),
                    };
                    values.iter().any(|want| match option {
                        "BeginsWith" => field.starts_with(want),
                        "Contains" => field.contains(want),
                        _ => field == *want,
                    })
                }) && old_filters.iter().all(|f| {
                    let values: Vec<&str> = f["Values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    match f["Key"].as_str().unwrap_or_default() {
                        "Name" => values.iter().any(|w| name.starts_with(w)),
                        "Type" => values.contains(&v.kind.as_str()),
                        _ => false,
                    }
                })
            };
            let matched: Vec<Value> = store.parameters.read(account, region, |all| {
                all.iter()
                    .filter_map(|(n, p)| {
                        p.current()
                            .filter(|v| keep(n, v))
                            .map(|v| metadata(n, v, ctx))
                    })
                    .collect()
            });
            let (list, next) = page(matched, input["NextToken"].as_str(), max)?;
            let mut out = json!({ "Parameters": list });
            if let Some(next) = next {
                out["NextToken"] = next.into();
            }
            out
        }
        "GetParameterHistory" => {
            let versions: Vec<Value> = store
                .parameters
                .read(account, region, |all| {
                    all.get(&name).map(|p| {
                        p.versions
                            .iter()
                            .map(|v| {
                                let mut m = metadata(&name, v, ctx);
                                m["Value"] = v.value.clone().into();
                                m["Labels"] = json!([]);
                                m
                            })
                            .collect()
                    })
                })
                .ok_or_else(|| not_found(&name))?;
            let max = input["MaxResults"].as_u64().unwrap_or(50) as usize;
            let (list, next) = page(versions, input["NextToken"].as_str(), max)?;
            let mut out = json!({ "Parameters": list });
            if let Some(next) = next {
                out["NextToken"] = next.into();
            }
            out
        }
        other => return Err(AwsError::not_supported("SSM", other)),
    };
    Ok(Bytes::from(out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hold_their_levels() {
        assert!(under("/a/b", "/a", false));
        assert!(!under("/a/b/c", "/a", false));
        assert!(under("/a/b/c", "/a", true));
        assert!(under("/a/b", "/a/", false));
        assert!(!under("/ab/c", "/a", true));
        assert!(!under("/a", "/a", true));
        assert!(under("/a", "/", false));
        assert!(!under("plain", "/", true));
        assert!(check_name("/app/db/url").is_ok());
        assert!(check_name("plain-name_1.2").is_ok());
        assert!(check_name("/aws/x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("/a//b").is_err());
        assert!(check_name("/a b").is_err());
    }
}
