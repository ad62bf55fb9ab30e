//! IAM roles and STS GetCallerIdentity on the same endpoint (AWS query protocol, XML), as far as
//! pipelines and the CodePipeline tutorial need them.
//!
//! # LIMITATIONS
//! - Only roles: CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy,
//!   Put/Get/List/DeleteRolePolicy, Attach/Detach/ListAttachedRolePolicies. Other IAM actions
//!   answer `InvalidAction`.
//! - Policies are stored, never evaluated: every caller may do everything. Managed policies are
//!   not modelled, so any well-formed policy ARN can be attached.
//! - CreatePipeline checks that its role exists and trusts `codepipeline.amazonaws.com` only when
//!   `iam_enforce_roles` is on (off by default, as in LocalStack).
//! - STS answers GetCallerIdentity only.

pub mod query;
pub mod roles;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use actix_web::HttpResponse;

use self::query::{encode, members, xml};
use self::roles::{role_stream, Role, RoleEvent, ROLE_STREAM_PREFIX};
use crate::aws::RequestContext;
use crate::eventstore::{EventStore, RecordedEvent};

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An IAM error: HTTP status, code, message.
struct IamError(u16, &'static str, String);

type Params = BTreeMap<String, String>;

/// IAM roles, event-sourced.
pub struct Iam {
    log: Arc<dyn EventStore>,
    roles: RwLock<BTreeMap<String, Role>>,
    writes: tokio::sync::Mutex<()>,
}

impl Iam {
    /// Roles from `log` (fed by [`Iam::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Iam {
            log,
            roles: RwLock::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Folds one event of the log.
    pub fn apply(&self, record: &RecordedEvent) {
        if !record.stream.starts_with(ROLE_STREAM_PREFIX) {
            return;
        }
        if let Some(event) = RoleEvent::from_record(record) {
            roles::apply(
                &mut self.roles.write().expect("iam lock"),
                &record.stream,
                event,
            );
        }
    }

    /// A role by ARN, for CreatePipeline's role check.
    pub fn role_by_arn(&self, arn: &str) -> Option<Role> {
        let roles = self.roles.read().expect("iam lock");
        roles.values().find(|r| r.arn() == arn).cloned()
    }

    fn role(&self, account: &str, name: &str) -> Result<Role, IamError> {
        self.roles
            .read()
            .expect("iam lock")
            .get(&role_stream(account, name))
            .cloned()
            .ok_or_else(|| {
                IamError(
                    404,
                    "NoSuchEntity",
                    format!("The role with name {name} cannot be found."),
                )
            })
    }

    /// Appends one event to a role's stream and waits until it is durable.
    async fn record(&self, account: &str, name: &str, event: RoleEvent) -> Result<(), IamError> {
        let stream = role_stream(account, name);
        let internal =
            |e: crate::eventstore::StoreError| IamError(500, "ServiceFailure", e.to_string());
        let head = self
            .log
            .read_stream(&stream, 1)
            .map_err(internal)?
            .last()
            .map_or(0, |r| r.sequence);
        self.log
            .append(&stream, head, vec![event.to_new_event()])
            .map_err(internal)?;
        roles::apply(&mut self.roles.write().expect("iam lock"), &stream, event);
        self.log.durable().await.map_err(internal)
    }

    /// Serves one IAM query request.
    pub async fn handle_iam(&self, ctx: &RequestContext, params: &Params) -> HttpResponse {
        let action = params.get("Action").cloned().unwrap_or_default();
        let result = {
            let _guard = self.writes.lock().await;
            self.iam_action(ctx, &action, params).await
        };
        match result {
            Ok(body) => respond(IAM_NS, &action, &body, ctx),
            Err(e) => error(IAM_NS, e, ctx),
        }
    }

    async fn iam_action(
        &self,
        ctx: &RequestContext,
        action: &str,
        p: &Params,
    ) -> Result<String, IamError> {
        let account = &ctx.account_id;
        let name = || required(p, "RoleName");
        match action {
            "CreateRole" => {
                let name = name()?;
                let document = policy(p, "AssumeRolePolicyDocument")?;
                if self.role(account, &name).is_ok() {
                    return Err(IamError(409, "EntityAlreadyExists", format!("Role with name {name} already exists.")));
                }
                let path = p.get("Path").cloned().unwrap_or_else(|| "/".into());
                let role = Role {
                    account: account.clone(),
                    name: name.clone(),
                    path,
                    id: format!("AROA{}", &uuid::Uuid::new_v4().simple().to_string().to_uppercase()[..17]),
                    assume_role_policy: document,
                    description: p.get("Description").cloned(),
                    max_session_duration: p.get("MaxSessionDuration").and_then(|d| d.parse().ok()).unwrap_or(3600),
                    created: crate::aws::now_epoch(),
                    tags: members(p, "Tags")
                        .into_iter()
                        .map(|t| (t.get("Key").cloned().unwrap_or_default(), t.get("Value").cloned().unwrap_or_default()))
                        .collect(),
                    inline: BTreeMap::new(),
                    attached: Vec::new(),
                };
                self.record(account, &name, RoleEvent::Created(role.clone())).await?;
                Ok(format!("<Role>{}</Role>", role_xml(&role)))
            }
            "GetRole" => Ok(format!("<Role>{}</Role>", role_xml(&self.role(account, &name()?)?))),
            "ListRoles" => {
                let prefix = p.get("PathPrefix").cloned().unwrap_or_else(|| "/".into());
                let roles = self.roles.read().expect("iam lock");
                let listed: String = roles
                    .values()
                    .filter(|r| &r.account == account && r.path.starts_with(&prefix))
                    .map(|r| format!("<member>{}</member>", role_xml(r)))
                    .collect();
                Ok(format!("<IsTruncated>false</IsTruncated><Roles>{listed}</Roles>"))
            }
            "DeleteRole" => {
                let name = name()?;
                let role = self.role(account, &name)?;
                if !role.inline.is_empty() || !role.attached.is_empty() {
                    return Err(IamError(409, "DeleteConflict", "Cannot delete entity, must delete policies first.".into()));
                }
                self.record(account, &name, RoleEvent::Deleted).await?;
                Ok(String::new())
            }
            "UpdateAssumeRolePolicy" => {
                let name = name()?;
                let document = policy(p, "PolicyDocument")?;
                self.role(account, &name)?;
                self.record(account, &name, RoleEvent::TrustUpdated(document)).await?;
                Ok(String::new())
            }
            "PutRolePolicy" => {
                let name = name()?;
                let policy_name = required(p, "PolicyName")?;
                let document = policy(p, "PolicyDocument")?;
                self.role(account, &name)?;
                self.record(account, &name, RoleEvent::PolicyPut { name: policy_name, document }).await?;
                Ok(String::new())
            }
            "GetRolePolicy" => {
                let name = name()?;
                let policy_name = required(p, "PolicyName")?;
                let role = self.role(account, &name)?;
                let document = role.inline.get(&policy_name).ok_or_else(|| {
                    IamError(404, "NoSuchEntity", format!("The role policy with name {policy_name} cannot be found."))
                })?;
                Ok(format!(
                    "<RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                    xml(&name),
                    xml(&policy_name),
                    encode(document)
                ))
            }
            "ListRolePolicies" => {
                let role = self.role(account, &name()?)?;
                let names: String = role.inline.keys().map(|n| format!("<member>{}</member>", xml(n))).collect();
                Ok(format!("<IsTruncated>false</IsTruncated><PolicyNames>{names}</PolicyNames>"))
            }
            "DeleteRolePolicy" => {
                let name = name()?;
                let policy_name = required(p, "PolicyName")?;
                let role = self.role(account, &name)?;
                if !role.inline.contains_key(&policy_name) {
                    return Err(IamError(404, "NoSuchEntity", format!("The role policy with name {policy_name} cannot be found.")));
                }
                self.record(account, &name, RoleEvent::PolicyDeleted(policy_name)).await?;
                Ok(String::new())
            }
            "AttachRolePolicy" => {
                let name = name()?;
                let arn = required(p, "PolicyArn")?;
                if !arn.starts_with("arn:aws:iam::") || !arn.contains(":policy/") {
                    return Err(IamError(400, "InvalidInput", format!("ARN {arn} is not valid.")));
                }
                self.role(account, &name)?;
                self.record(account, &name, RoleEvent::Attached(arn)).await?;
                Ok(String::new())
            }
            "DetachRolePolicy" => {
                let name = name()?;
                let arn = required(p, "PolicyArn")?;
                let role = self.role(account, &name)?;
                if !role.attached.contains(&arn) {
                    return Err(IamError(404, "NoSuchEntity", format!("Policy {arn} was not found.")));
                }
                self.record(account, &name, RoleEvent::Detached(arn)).await?;
                Ok(String::new())
            }
            "ListAttachedRolePolicies" => {
                let role = self.role(account, &name()?)?;
                let listed: String = role
                    .attached
                    .iter()
                    .map(|arn| {
                        let policy = arn.rsplit('/').next().unwrap_or(arn);
                        format!("<member><PolicyName>{}</PolicyName><PolicyArn>{}</PolicyArn></member>", xml(policy), xml(arn))
                    })
                    .collect();
                Ok(format!("<IsTruncated>false</IsTruncated><AttachedPolicies>{listed}</AttachedPolicies>"))
            }
            other => Err(IamError(
                400,
                "InvalidAction",
                format!("The action {other} is not valid for this web service (codepipeline-local serves IAM roles only)."),
            )),
        }
    }

    /// Serves one STS query request.
    pub async fn handle_sts(&self, ctx: &RequestContext, params: &Params) -> HttpResponse {
        let action = params.get("Action").cloned().unwrap_or_default();
        if action != "GetCallerIdentity" {
            let e = IamError(400, "InvalidAction", format!("The action {action} is not valid for this web service (codepipeline-local serves GetCallerIdentity only)."));
            return error(STS_NS, e, ctx);
        }
        let body = format!(
            "<UserId>AKIAIOSFODNN7EXAMPLE</UserId><Account>{0}</Account><Arn>arn:aws:iam::{0}:root</Arn>",
            ctx.account_id
        );
        respond(STS_NS, &action, &body, ctx)
    }
}

fn required(p: &Params, name: &str) -> Result<String, IamError> {
    p.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
        IamError(400, "ValidationError", format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(name)))
    })
}

fn policy(p: &Params, name: &str) -> Result<String, IamError> {
    let document = required(p, name)?;
    match serde_json::from_str::<serde_json::Value>(&document) {
        Ok(serde_json::Value::Object(_)) => Ok(document),
        _ => Err(IamError(
            400,
            "MalformedPolicyDocument",
            "This policy contains invalid Json".into(),
        )),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn iso8601(epoch: f64) -> String {
    chrono::DateTime::from_timestamp(epoch as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn role_xml(r: &Role) -> String {
    let mut out = format!(
        "<Path>{}</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{}</CreateDate>\
         <AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument><MaxSessionDuration>{}</MaxSessionDuration>",
        xml(&r.path),
        xml(&r.name),
        r.id,
        xml(&r.arn()),
        iso8601(r.created),
        encode(&r.assume_role_policy),
        r.max_session_duration
    );
    if let Some(d) = &r.description {
        out.push_str(&format!("<Description>{}</Description>", xml(d)));
    }
    if !r.tags.is_empty() {
        let tags: String = r
            .tags
            .iter()
            .map(|(k, v)| {
                format!(
                    "<member><Key>{}</Key><Value>{}</Value></member>",
                    xml(k),
                    xml(v)
                )
            })
            .collect();
        out.push_str(&format!("<Tags>{tags}</Tags>"));
    }
    out
}

fn respond(ns: &str, action: &str, result: &str, ctx: &RequestContext) -> HttpResponse {
    let result = if result.is_empty() {
        String::new()
    } else {
        format!("<{action}Result>{result}</{action}Result>")
    };
    HttpResponse::Ok().content_type("text/xml").insert_header(("x-amzn-RequestId", ctx.request_id.as_str())).body(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"{ns}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        ctx.request_id
    ))
}

fn error(
    ns: &str,
    IamError(status, code, message): IamError,
    ctx: &RequestContext,
) -> HttpResponse {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST))
        .content_type("text/xml")
        .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml(&message),
            ctx.request_id
        ))
}
