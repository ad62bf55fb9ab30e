//! The connections' JSON 1.0 API, under both service names: `codestar-connections`
//! (`CodeStar_connections_20191201`) and `codeconnections` (`CodeConnections_20231201`). A
//! connection's ARN names the service it was created through; either ARN form finds it.

use std::sync::LazyLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{Connection, ConnectionEvent, ConnectionFailure, Connections, Tag, MAX_CONNECTIONS};
use crate::aws::model::ServiceModel;
use crate::aws::{json as wire, AwsError, RequestContext};

static CODESTAR: LazyLock<ServiceModel> = LazyLock::new(|| {
    ServiceModel::parse(include_str!(
        "../../models/codestar-connections-2019-12-01.json"
    ))
});
static CODECONNECTIONS: LazyLock<ServiceModel> = LazyLock::new(|| {
    ServiceModel::parse(include_str!("../../models/codeconnections-2023-12-01.json"))
});

/// Which of the two service names a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `codestar-connections`.
    CodeStar,
    /// `codeconnections`.
    CodeConnections,
}

impl Flavour {
    /// The service a SigV4 scope or a target prefix names, if it is one of the two.
    pub fn of(service: &str, target: &str) -> Option<Flavour> {
        if service == "codestar-connections"
            || (service.is_empty() && target.starts_with(&format!("{}.", CODESTAR.target_prefix)))
        {
            return Some(Flavour::CodeStar);
        }
        if service == "codeconnections"
            || (service.is_empty()
                && target.starts_with(&format!("{}.", CODECONNECTIONS.target_prefix)))
        {
            return Some(Flavour::CodeConnections);
        }
        None
    }

    fn model(self) -> &'static ServiceModel {
        match self {
            Flavour::CodeStar => &CODESTAR,
            Flavour::CodeConnections => &CODECONNECTIONS,
        }
    }

    fn arn_service(self) -> &'static str {
        match self {
            Flavour::CodeStar => "codestar-connections",
            Flavour::CodeConnections => "codeconnections",
        }
    }
}

const SERVED: &[&str] = &[
    "CreateConnection",
    "GetConnection",
    "ListConnections",
    "DeleteConnection",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Answers a connections request.
pub async fn handle(
    connections: &Connections,
    ctx: &RequestContext,
    flavour: Flavour,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(connections, ctx, flavour, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

fn not_found(arn: &str) -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        format!("Connection {arn} does not exist"),
    )
}

async fn run(
    connections: &Connections,
    ctx: &RequestContext,
    flavour: Flavour,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let model = flavour.model();
    let operation = crate::aws::service::operation(flavour.arn_service(), model, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    model.validate_input(&operation, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let failure = |e: ConnectionFailure| match e {
        ConnectionFailure::NotFound(arn) => not_found(&arn),
        ConnectionFailure::Limit => AwsError::new(
            "LimitExceededException",
            format!("An account may have {MAX_CONNECTIONS} connections in a region"),
        ),
        ConnectionFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let tags = |k: &str| -> Result<Vec<Tag>, AwsError> {
        serde_json::from_value(input.get(k).cloned().unwrap_or(json!([])))
            .map_err(|e| AwsError::validation(e.to_string()))
    };
    let out = match operation.as_str() {
        "CreateConnection" => {
            if input.get("ProviderType").is_none() && input.get("HostArn").is_none() {
                return Err(AwsError::validation(
                    "Either ProviderType or HostArn must be given",
                ));
            }
            let arn = format!(
                "arn:aws:{}:{region}:{account}:connection/{}",
                flavour.arn_service(),
                uuid::Uuid::new_v4()
            );
            let connection = Connection {
                arn: arn.clone(),
                name: text("ConnectionName"),
                provider_type: input["ProviderType"]
                    .as_str()
                    .unwrap_or("GitHub")
                    .to_string(),
                host_arn: input["HostArn"].as_str().map(str::to_string),
                tags: tags("Tags")?,
            };
            let given = connection.tags.clone();
            connections
                .record(account, region, |all| {
                    if all.len() >= MAX_CONNECTIONS {
                        return Err(ConnectionFailure::Limit);
                    }
                    Ok(ConnectionEvent::Created(Box::new(connection)))
                })
                .await
                .map_err(failure)?;
            let mut out = json!({ "ConnectionArn": arn });
            if !given.is_empty() {
                out["Tags"] = json!(given);
            }
            out
        }
        "GetConnection" => {
            let arn = text("ConnectionArn");
            let c = connections
                .get(account, region, &arn)
                .ok_or_else(|| not_found(&arn))?;
            json!({ "Connection": c.to_wire(account) })
        }
        "ListConnections" => {
            let provider = input["ProviderTypeFilter"].as_str();
            let host = input["HostArnFilter"].as_str();
            let max = input["MaxResults"]
                .as_u64()
                .filter(|n| *n > 0)
                .unwrap_or(100) as usize;
            let after = match input["NextToken"].as_str() {
                Some(token) => Some(
                    crate::aws::pagination::decode(token)
                        .ok_or_else(|| AwsError::validation("The NextToken is not valid"))?,
                ),
                None => None,
            };
            let selected: Vec<Connection> = connections
                .list(account, region)
                .into_iter()
                .filter(|c| provider.is_none_or(|p| c.provider_type == p))
                .filter(|c| host.is_none_or(|h| c.host_arn.as_deref() == Some(h)))
                .filter(|c| after.as_deref().is_none_or(|a| c.id() > a))
                .collect();
            let page: Vec<Value> = selected
                .iter()
                .take(max)
                .map(|c| c.to_wire(account))
                .collect();
            let mut out = json!({ "Connections": page });
            if selected.len() > max {
                out["NextToken"] = crate::aws::pagination::encode(selected[max - 1].id()).into();
            }
            out
        }
        "DeleteConnection" => {
            let arn = text("ConnectionArn");
            connections
                .record(account, region, |all| {
                    let id = super::id_of(&arn);
                    if !all.contains_key(id) {
                        return Err(ConnectionFailure::NotFound(arn.clone()));
                    }
                    Ok(ConnectionEvent::Deleted(id.to_string()))
                })
                .await
                .map_err(failure)?;
            json!({})
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            let arn = text("ResourceArn");
            let existing = connections
                .get(account, region, &arn)
                .ok_or_else(|| not_found(&arn))?;
            let id = existing.id().to_string();
            match operation.as_str() {
                "TagResource" => {
                    let tags = tags("Tags")?;
                    let keys: std::collections::BTreeSet<&str> = existing
                        .tags
                        .iter()
                        .chain(&tags)
                        .map(|t| t.key.as_str())
                        .collect();
                    if keys.len() > 200 {
                        return Err(AwsError::new(
                            "LimitExceededException",
                            "A resource may have at most 200 tags",
                        ));
                    }
                    let event = ConnectionEvent::Tagged(id, tags);
                    connections
                        .record(account, region, |_| Ok(event))
                        .await
                        .map_err(failure)?;
                    json!({})
                }
                "UntagResource" => {
                    let keys: Vec<String> = input["TagKeys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect();
                    let event = ConnectionEvent::Untagged(id, keys);
                    connections
                        .record(account, region, |_| Ok(event))
                        .await
                        .map_err(failure)?;
                    json!({})
                }
                _ => json!({ "Tags": existing.tags }),
            }
        }
        other => return Err(AwsError::not_supported(flavour.arn_service(), other)),
    };
    Ok(Bytes::from(out.to_string()))
}
