//! PutWebhook, ListWebhooks, DeleteWebhook, RegisterWebhookWithThirdParty,
//! DeregisterWebhookWithThirdParty, and the POSTs a webhook's URL receives (see
//! `codepipeline::webhooks`).

use std::net::IpAddr;

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::executions::current;
use super::{reply, Reply};
use crate::aws::{AwsError, RequestContext};
use crate::codepipeline::actors::StartExecution;
use crate::codepipeline::execution::Trigger;
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::pipeline::{Tag, MAX_TAGS};
use crate::codepipeline::webhooks::{
    arn, filters_match, github_signature, in_range, valid_path, Webhook, WebhookEvent,
    MAX_WEBHOOKS, URL_PREFIX,
};
use crate::codepipeline::CodePipelineService;
use crate::regional::RegionalFailure;

/// A webhook as ListWebhooks and PutWebhook show it (`ListWebhookItem`).
fn item(ctx: &RequestContext, hook: &Webhook) -> Value {
    let name = hook.name();
    let mut out = json!({
        "definition": hook.definition,
        "url": format!("http://{}{URL_PREFIX}{}/{}/{name}", ctx.host, ctx.account_id, ctx.region),
        "arn": arn(&ctx.account_id, &ctx.region, name),
    });
    if let Some(at) = hook.last_triggered {
        out["lastTriggered"] = at.into();
    }
    if !hook.tags.is_empty() {
        out["tags"] = json!(hook.tags);
    }
    out
}

fn recorded<F: Into<AwsError>>(e: RegionalFailure<F>) -> AwsError {
    match e {
        RegionalFailure::Refused(f) => f.into(),
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    }
}

fn not_found(name: &str) -> AwsError {
    AwsError::new(
        "WebhookNotFoundException",
        format!("The webhook {name} was not found"),
    )
}

pub(super) async fn handle_put_webhook(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let definition = input["webhook"].clone();
    let text = |k: &str| definition[k].as_str().unwrap_or_default().to_string();
    let (pipeline, action) = (text("targetPipeline"), text("targetAction"));
    let (declaration, ..) = current(svc, ctx, &pipeline)?;
    if !declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .any(|a| a.name == action)
    {
        return Err(AwsError::validation(format!(
            "The target action {action} does not exist in pipeline {pipeline}"
        )));
    }
    let auth = &definition["authenticationConfiguration"];
    let bad_auth = |m: &str| AwsError::new("InvalidWebhookAuthenticationParametersException", m);
    match text("authentication").as_str() {
        "GITHUB_HMAC" if auth["SecretToken"].as_str().is_none() => {
            return Err(bad_auth("GITHUB_HMAC authentication needs a SecretToken"));
        }
        "IP" => {
            let range = auth["AllowedIPRange"].as_str().unwrap_or_default();
            if in_range(range, IpAddr::from([127, 0, 0, 1])).is_none() {
                return Err(bad_auth(&format!(
                    "IP authentication needs an AllowedIPRange in CIDR form, not '{range}'"
                )));
            }
        }
        _ => {}
    }
    for rule in definition["filters"].as_array().into_iter().flatten() {
        let path = rule["jsonPath"].as_str().unwrap_or_default();
        if !valid_path(path) {
            return Err(AwsError::new(
                "InvalidWebhookFilterPatternException",
                format!(
                    "The JSONPath {path} is not one a webhook filter takes ($.a.b, $['a'], $.a[0])"
                ),
            ));
        }
    }
    let tags: Vec<Tag> = serde_json::from_value(input.get("tags").cloned().unwrap_or(json!([])))
        .map_err(|e| AwsError::validation(e.to_string()))?;
    if tags.len() > MAX_TAGS {
        return Err(AwsError::new(
            "TooManyTagsException",
            format!("Tag limit exceeded: a resource can have at most {MAX_TAGS} tags"),
        ));
    }
    let name = text("name");
    let hook = Webhook {
        definition,
        tags,
        last_triggered: None,
        registered: false,
    };
    svc.webhooks
        .record(&ctx.account_id, &ctx.region, |all| {
            if !all.contains_key(&name) && all.len() >= MAX_WEBHOOKS {
                return Err(AwsError::new(
                    "LimitExceededException",
                    format!("An account may have {MAX_WEBHOOKS} webhooks in a region"),
                ));
            }
            Ok(vec![WebhookEvent::Put(Box::new(hook))])
        })
        .await
        .map_err(recorded)?;
    let stored = svc
        .webhooks
        .read(&ctx.account_id, &ctx.region, |all| all.get(&name).cloned())
        .ok_or_else(|| not_found(&name))?;
    reply(&json!({ "webhook": item(ctx, &stored) }))
}

pub(super) fn handle_list_webhooks(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let max = input["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let after = match input["NextToken"].as_str() {
        Some(t) => Some(super::token::decode(t)?),
        None => None,
    };
    let hooks: Vec<Webhook> = svc.webhooks.read(&ctx.account_id, &ctx.region, |all| {
        all.values()
            .filter(|h| after.as_deref().is_none_or(|a| h.name() > a))
            .take(max + 1)
            .cloned()
            .collect()
    });
    let page: Vec<Value> = hooks.iter().take(max).map(|h| item(ctx, h)).collect();
    let mut out = json!({ "webhooks": page });
    if hooks.len() > max {
        out["NextToken"] = super::token::encode(hooks[max - 1].name()).into();
    }
    reply(&out)
}

pub(super) async fn handle_delete_webhook(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
) -> Reply {
    let name = input["name"].as_str().unwrap_or_default().to_string();
    // Deleting a webhook that is not there is not an error (the model has none for it).
    svc.webhooks
        .record(&ctx.account_id, &ctx.region, |all| {
            Ok::<_, AwsError>(if all.contains_key(&name) {
                vec![WebhookEvent::Deleted(name.clone())]
            } else {
                vec![]
            })
        })
        .await
        .map_err(recorded)?;
    reply(&json!({}))
}

pub(super) async fn handle_register_webhook(
    svc: &CodePipelineService,
    ctx: &RequestContext,
    input: Value,
    on: bool,
) -> Reply {
    let name = input["webhookName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    svc.webhooks
        .record(&ctx.account_id, &ctx.region, |all| {
            if !all.contains_key(&name) {
                return Err(not_found(&name));
            }
            Ok(vec![WebhookEvent::Registered(name.clone(), on)])
        })
        .await
        .map_err(recorded)?;
    reply(&json!({}))
}

/// A POST to a webhook's URL (`rest`: `<account>/<region>/<name>`): checked against its
/// authentication and filters, it starts the pipeline (trigger `Webhook`).
pub async fn receive(
    svc: &CodePipelineService,
    rest: &str,
    signature: Option<&str>,
    peer: Option<IpAddr>,
    body: &[u8],
) -> HttpResponse {
    let answer = |status: u16, message: String| {
        HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .content_type("application/json")
        .body(json!({ "message": message }).to_string())
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(account), Some(region), Some(name)) = (parts.next(), parts.next(), parts.next())
    else {
        return answer(404, "No such webhook".into());
    };
    let Some(hook) = svc
        .webhooks
        .read(account, region, |all| all.get(name).cloned())
    else {
        return answer(404, format!("No webhook {name} in {account}/{region}"));
    };
    let auth = &hook.definition["authenticationConfiguration"];
    let allowed = match hook.text("authentication") {
        "GITHUB_HMAC" => {
            let secret = auth["SecretToken"].as_str().unwrap_or_default();
            signature.is_some_and(|s| {
                constant_time_eq(s.as_bytes(), github_signature(secret, body).as_bytes())
            })
        }
        "IP" => {
            let range = auth["AllowedIPRange"].as_str().unwrap_or_default();
            peer.is_some_and(|ip| in_range(range, ip) == Some(true))
        }
        _ => true,
    };
    if !allowed {
        return answer(
            403,
            "The request does not pass the webhook's authentication".into(),
        );
    }
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return answer(400, "The request body is not JSON".into());
    };
    let Some(key) = PipelineKey::parse(&format!(
        "{account}:{region}:{}",
        hook.text("targetPipeline")
    )) else {
        return answer(404, "No such pipeline".into());
    };
    let ctx = RequestContext {
        region: region.to_string(),
        account_id: account.to_string(),
        request_id: crate::aws::scope::request_id(),
        rerun_of: None,
        host: String::new(),
        default_region: region.to_string(),
    };
    let Ok((declaration, ..)) = current(svc, &ctx, &key.name) else {
        return answer(404, format!("The pipeline {} does not exist", key.name));
    };
    let configuration = declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .find(|a| a.name == hook.text("targetAction"))
        .map(|a| a.configuration())
        .unwrap_or_default();
    if !filters_match(&hook.definition, &payload, &configuration) {
        return answer(
            200,
            "The webhook's filters did not select this request: no execution started".into(),
        );
    }
    let start = StartExecution {
        trigger: Trigger {
            trigger_type: "Webhook".into(),
            trigger_detail: Some(arn(account, region, name)),
        },
        variables: Default::default(),
        source_revisions: Default::default(),
        client_request_token: None,
        rollback: None,
    };
    let id = match svc.registry.start(&key, start).await {
        Ok(id) => id,
        Err(e) => return answer(500, format!("The pipeline did not start: {e:?}")),
    };
    let at = crate::aws::now_epoch();
    let triggered = WebhookEvent::Triggered(name.to_string(), at);
    if let Err(e) = svc
        .webhooks
        .record(account, region, |_| Ok::<_, ()>(vec![triggered]))
        .await
    {
        log::warn!("webhook {name}: its last trigger was not recorded: {e:?}");
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json!({ "pipelineExecutionId": id }).to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
