//! The IAM and STS query APIs: each request's `Action` is parsed once into an operation, then
//! dispatched once to its `handle_*` function. Only this layer knows AWS error codes and XML.

use std::collections::BTreeMap;

use actix_web::HttpResponse;

use super::roles::{Role, RoleCommand, RoleRefusal};
use super::{Iam, IamFailure};
use crate::aws::query::{self, encode, members, xml, Params, QueryError};
use crate::aws::RequestContext;

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

macro_rules! actions {
    ($(#[$meta:meta])* $name:ident { $($op:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($op),* }

        impl $name {
            /// The operation named by a request's `Action`.
            pub fn from_action(action: &str) -> Option<$name> {
                match action { $(stringify!($op) => Some($name::$op),)* _ => None }
            }

            /// The action's name.
            pub fn name(self) -> &'static str {
                match self { $($name::$op => stringify!($op)),* }
            }
        }
    };
}

actions!(
    /// The IAM actions served.
    IamOperation {
        CreateRole,
        GetRole,
        ListRoles,
        DeleteRole,
        UpdateAssumeRolePolicy,
        PutRolePolicy,
        GetRolePolicy,
        ListRolePolicies,
        DeleteRolePolicy,
        AttachRolePolicy,
        DetachRolePolicy,
        ListAttachedRolePolicies,
    }
);

actions!(
    /// The STS actions served.
    StsOperation {
        GetCallerIdentity,
        AssumeRole,
        AssumeRoleWithWebIdentity,
    }
);

type Reply = Result<String, QueryError>;

/// Serves one IAM query request.
pub async fn handle_iam(iam: &Iam, ctx: &RequestContext, params: &Params) -> HttpResponse {
    let action = params.get("Action").cloned().unwrap_or_default();
    let Some(op) = IamOperation::from_action(&action) else {
        let e = QueryError::new(
            400,
            "InvalidAction",
            format!("The action {action} is not valid for this web service (codepipeline-local serves IAM roles only)."),
        );
        return query::error(IAM_NS, &e, ctx);
    };
    match serve_iam(iam, ctx, op, params).await {
        Ok(body) => query::respond(IAM_NS, op.name(), &body, ctx),
        Err(e) => {
            if e.status >= 500 {
                log::error!("IAM {}: {}", op.name(), e.message);
            }
            query::error(IAM_NS, &e, ctx)
        }
    }
}

/// Serves one STS query request.
pub async fn handle_sts(iam: &Iam, ctx: &RequestContext, params: &Params) -> HttpResponse {
    let action = params.get("Action").cloned().unwrap_or_default();
    let answer = match StsOperation::from_action(&action) {
        Some(StsOperation::GetCallerIdentity) => Ok(format!(
            "<UserId>AKIAIOSFODNN7EXAMPLE</UserId><Account>{0}</Account><Arn>arn:aws:iam::{0}:root</Arn>",
            ctx.account_id
        )),
        Some(op @ (StsOperation::AssumeRole | StsOperation::AssumeRoleWithWebIdentity)) => {
            assume_role(iam, ctx, params, op == StsOperation::AssumeRoleWithWebIdentity)
        }
        None => Err(QueryError::new(
            400,
            "InvalidAction",
            format!("The action {action} is not valid for this web service (codepipeline-local serves GetCallerIdentity, AssumeRole and AssumeRoleWithWebIdentity)."),
        )),
    };
    match answer {
        Ok(body) => query::respond(STS_NS, &action, &body, ctx),
        Err(e) => query::error(STS_NS, &e, ctx),
    }
}

/// Temporary credentials for a role that exists, in AWS's shape. Every key is accepted by this
/// endpoint, so they are made up; the role's trust policy is not evaluated.
fn assume_role(iam: &Iam, ctx: &RequestContext, p: &Params, web_identity: bool) -> Reply {
    let arn = member(p, "RoleArn", &ROLE_ARN)?;
    let session = member(p, "RoleSessionName", &SESSION_NAME)?;
    if web_identity {
        member(p, "WebIdentityToken", &WEB_IDENTITY_TOKEN)?;
    }
    let duration: u32 = match p.get("DurationSeconds") {
        Some(d) => d.parse().map_err(|_| {
            QueryError::new(400, "ValidationError", format!("Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"))
        })?,
        None => 3600,
    };
    if !(900..=43200).contains(&duration) {
        return Err(QueryError::new(
            400,
            "ValidationError",
            format!("1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"),
        ));
    }
    let denied = || {
        QueryError::new(
            403,
            "AccessDenied",
            format!("User: arn:aws:iam::{}:root is not authorized to perform: sts:AssumeRole on resource: {arn}", ctx.account_id),
        )
    };
    let role = iam.role_by_arn(&arn).ok_or_else(denied)?;
    if duration > role.max_session_duration {
        return Err(QueryError::new(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let random = |n: usize| -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .take(n)
            .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
            .collect()
    };
    let secret: String = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
    .chars()
    .take(40)
    .collect();
    let expires = chrono::Utc::now() + chrono::Duration::seconds(i64::from(duration));
    let token = format!("FQoGZXIvYXdzE{}", uuid::Uuid::new_v4().simple());
    let assumed = format!(
        "arn:aws:sts::{}:assumed-role/{}/{}",
        role.account,
        role.name,
        xml(&session)
    );
    let extra = if web_identity {
        "<SubjectFromWebIdentityToken>web-identity</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><Provider>codepipeline-local</Provider>"
    } else {
        "<PackedPolicySize>0</PackedPolicySize>"
    };
    Ok(format!(
        "<Credentials><AccessKeyId>ASIA{}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId><Arn>{assumed}</Arn></AssumedRoleUser>{extra}",
        random(16),
        expires.format("%Y-%m-%dT%H:%M:%SZ"),
        role.id,
        xml(&session),
    ))
}

/// One IAM operation called in-process (CloudFormation's providers), with the input in AWS's
/// JSON shape, through the same checks and commands a client's request goes through. GetRole
/// answers the role's `Arn`, `RoleId` and `RoleName`; the other operations answer nothing.
pub async fn call(
    iam: &Iam,
    ctx: &RequestContext,
    operation: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, QueryError> {
    let mut params = Params::new();
    flatten("", input, &mut params);
    if operation == "GetRole" {
        let role = role(iam, ctx, &params)?;
        return Ok(
            serde_json::json!({"Role": {"Arn": role.arn(), "RoleId": role.id, "RoleName": role.name}}),
        );
    }
    let op = IamOperation::from_action(operation).ok_or_else(|| {
        QueryError::new(
            400,
            "InvalidAction",
            format!("The action {operation} is not valid for this web service."),
        )
    })?;
    serve_iam(iam, ctx, op, &params)
        .await
        .map(|_| serde_json::json!({}))
}

/// A JSON input as query parameters: `A.B` for members, `A.member.N` for list items.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Params) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, item, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}.member.{}", i + 1), item, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

async fn serve_iam(iam: &Iam, ctx: &RequestContext, op: IamOperation, p: &Params) -> Reply {
    use IamOperation::*;
    match op {
        CreateRole => handle_create_role(iam, ctx, p).await,
        GetRole => handle_get_role(iam, ctx, p),
        ListRoles => handle_list_roles(iam, ctx, p),
        DeleteRole => change(iam, ctx, p, |_| Ok(RoleCommand::Delete)).await,
        UpdateAssumeRolePolicy => {
            change(iam, ctx, p, |p| {
                Ok(RoleCommand::UpdateTrust(policy(p, "PolicyDocument")?))
            })
            .await
        }
        PutRolePolicy => {
            change(iam, ctx, p, |p| {
                Ok(RoleCommand::PutPolicy {
                    name: member(p, "PolicyName", &POLICY_NAME)?,
                    document: policy(p, "PolicyDocument")?,
                })
            })
            .await
        }
        GetRolePolicy => handle_get_role_policy(iam, ctx, p),
        ListRolePolicies => {
            let role = role(iam, ctx, p)?;
            let names: String = role
                .inline
                .keys()
                .map(|n| format!("<member>{}</member>", xml(n)))
                .collect();
            Ok(format!(
                "<IsTruncated>false</IsTruncated><PolicyNames>{names}</PolicyNames>"
            ))
        }
        DeleteRolePolicy => {
            change(iam, ctx, p, |p| {
                Ok(RoleCommand::DeletePolicy(member(
                    p,
                    "PolicyName",
                    &POLICY_NAME,
                )?))
            })
            .await
        }
        AttachRolePolicy => {
            change(iam, ctx, p, |p| {
                let arn = required(p, "PolicyArn")?;
                if !arn.starts_with("arn:aws:iam::") || !arn.contains(":policy/") {
                    return Err(QueryError::new(
                        400,
                        "InvalidInput",
                        format!("ARN {arn} is not valid."),
                    ));
                }
                Ok(RoleCommand::Attach(arn))
            })
            .await
        }
        DetachRolePolicy => {
            change(iam, ctx, p, |p| {
                Ok(RoleCommand::Detach(required(p, "PolicyArn")?))
            })
            .await
        }
        ListAttachedRolePolicies => {
            let role = role(iam, ctx, p)?;
            let listed: String = role
                .attached
                .iter()
                .map(|arn| {
                    let policy = arn.rsplit('/').next().unwrap_or(arn);
                    format!(
                        "<member><PolicyName>{}</PolicyName><PolicyArn>{}</PolicyArn></member>",
                        xml(policy),
                        xml(arn)
                    )
                })
                .collect();
            Ok(format!(
                "<IsTruncated>false</IsTruncated><AttachedPolicies>{listed}</AttachedPolicies>"
            ))
        }
    }
}

async fn handle_create_role(iam: &Iam, ctx: &RequestContext, p: &Params) -> Reply {
    let name = member(p, "RoleName", &ROLE_NAME)?;
    let document = policy(p, "AssumeRolePolicyDocument")?;
    let path = optional(p, "Path", &PATH)?.unwrap_or_else(|| "/".into());
    let description = optional(p, "Description", &DESCRIPTION)?;
    let tags = members(p, "Tags");
    for tag in &tags {
        check(
            "Tags.member.Key",
            tag.get("Key").map_or("", String::as_str),
            &TAG_KEY,
        )?;
        check(
            "Tags.member.Value",
            tag.get("Value").map_or("", String::as_str),
            &TAG_VALUE,
        )?;
    }
    let session = match p.get("MaxSessionDuration") {
        None => 3600,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (3600..=43200).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "MaxSessionDuration",
                    raw,
                    "Member must have value between 3600 and 43200".into(),
                ))
            }
        },
    };
    let role = Role {
        account: ctx.account_id.clone(),
        name: name.clone(),
        path,
        id: format!(
            "AROA{}",
            &uuid::Uuid::new_v4().simple().to_string().to_uppercase()[..17]
        ),
        assume_role_policy: document,
        description,
        max_session_duration: session,
        created: crate::aws::now_epoch(),
        tags: tags
            .into_iter()
            .map(|t| {
                (
                    t.get("Key").cloned().unwrap_or_default(),
                    t.get("Value").cloned().unwrap_or_default(),
                )
            })
            .collect(),
        inline: BTreeMap::new(),
        attached: Vec::new(),
    };
    let created = iam
        .execute(&ctx.account_id, &name, RoleCommand::Create(role))
        .await
        .map_err(|e| failure(e, &name))?;
    Ok(format!(
        "<Role>{}</Role>",
        role_xml(created.as_ref().expect("a created role"))
    ))
}

fn handle_get_role(iam: &Iam, ctx: &RequestContext, p: &Params) -> Reply {
    Ok(format!("<Role>{}</Role>", role_xml(&role(iam, ctx, p)?)))
}

fn handle_list_roles(iam: &Iam, ctx: &RequestContext, p: &Params) -> Reply {
    max_items(p)?;
    let prefix = optional(p, "PathPrefix", &PATH_PREFIX)?.unwrap_or_else(|| "/".into());
    let listed: String = iam
        .roles_of(&ctx.account_id)
        .iter()
        .filter(|r| r.path.starts_with(&prefix))
        .map(|r| format!("<member>{}</member>", role_xml(r)))
        .collect();
    Ok(format!(
        "<IsTruncated>false</IsTruncated><Roles>{listed}</Roles>"
    ))
}

fn handle_get_role_policy(iam: &Iam, ctx: &RequestContext, p: &Params) -> Reply {
    let role = role(iam, ctx, p)?;
    let policy_name = member(p, "PolicyName", &POLICY_NAME)?;
    let document = role
        .inline
        .get(&policy_name)
        .ok_or_else(|| refusal(RoleRefusal::NoSuchPolicy(policy_name.clone()), &role.name))?;
    Ok(format!(
        "<RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
        xml(&role.name),
        xml(&policy_name),
        encode(document)
    ))
}

/// Runs the command `command` builds from the parameters on the role `RoleName`; an empty
/// answer, as IAM gives for changes.
async fn change(
    iam: &Iam,
    ctx: &RequestContext,
    p: &Params,
    command: impl FnOnce(&Params) -> Result<RoleCommand, QueryError>,
) -> Reply {
    let name = member(p, "RoleName", &ROLE_NAME)?;
    let command = command(p)?;
    iam.execute(&ctx.account_id, &name, command)
        .await
        .map_err(|e| failure(e, &name))?;
    Ok(String::new())
}

/// The role `RoleName` of the caller's account.
fn role(iam: &Iam, ctx: &RequestContext, p: &Params) -> Result<Role, QueryError> {
    max_items(p)?;
    let name = member(p, "RoleName", &ROLE_NAME)?;
    iam.role(&ctx.account_id, &name)
        .ok_or_else(|| refusal(RoleRefusal::NotFound, &name))
}

fn failure(e: IamFailure, role: &str) -> QueryError {
    match e {
        IamFailure::Refused(r) => refusal(r, role),
        IamFailure::Store(e) => QueryError::new(500, "ServiceFailure", e.to_string()),
    }
}

/// AWS's code and message for a refusal.
fn refusal(r: RoleRefusal, role: &str) -> QueryError {
    match r {
        RoleRefusal::Exists => QueryError::new(
            409,
            "EntityAlreadyExists",
            format!("Role with name {role} already exists."),
        ),
        RoleRefusal::NotFound => QueryError::new(
            404,
            "NoSuchEntity",
            format!("The role with name {role} cannot be found."),
        ),
        RoleRefusal::NoSuchPolicy(policy) => QueryError::new(
            404,
            "NoSuchEntity",
            format!("The role policy with name {policy} cannot be found."),
        ),
        RoleRefusal::NotAttached(arn) => {
            QueryError::new(404, "NoSuchEntity", format!("Policy {arn} was not found."))
        }
        RoleRefusal::HasPolicies => QueryError::new(
            409,
            "DeleteConflict",
            "Cannot delete entity, must delete policies first.",
        ),
    }
}

/// A member's constraint from IAM's model (botocore `iam/2010-05-08`): length and pattern.
struct Constraint {
    min: usize,
    max: usize,
    pattern: &'static str,
}

const ROLE_NAME: Constraint = Constraint {
    min: 1,
    max: 64,
    pattern: r"^[\w+=,.@-]+$",
};
/// From STS's model (botocore `sts/2011-06-15`).
const ROLE_ARN: Constraint = Constraint {
    min: 20,
    max: 2048,
    pattern: r"^[\x09\x0A\x0D\x20-\x7E\x{85}\x{A0}-\x{D7FF}\x{E000}-\x{FFFD}]+$",
};
const SESSION_NAME: Constraint = Constraint {
    min: 2,
    max: 64,
    pattern: r"^[\w+=,.@-]*$",
};
const WEB_IDENTITY_TOKEN: Constraint = Constraint {
    min: 4,
    max: 20_000,
    pattern: r"^[\x09\x0A\x0D\x20-\x7E]+$",
};
const POLICY_NAME: Constraint = Constraint {
    min: 1,
    max: 128,
    pattern: r"^[\w+=,.@-]+$",
};
const POLICY_DOCUMENT: Constraint = Constraint {
    min: 1,
    max: 131_072,
    pattern: r"^[\x09\x0A\x0D\x20-\x{FF}]+$",
};
const PATH: Constraint = Constraint {
    min: 1,
    max: 512,
    pattern: r"^(/|/[\x21-\x7E]+/)$",
};
const PATH_PREFIX: Constraint = Constraint {
    min: 1,
    max: 512,
    pattern: r"^/[\x21-\x7F]*$",
};
const TAG_KEY: Constraint = Constraint {
    min: 1,
    max: 128,
    pattern: r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$",
};
const TAG_VALUE: Constraint = Constraint {
    min: 0,
    max: 256,
    pattern: r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$",
};
const DESCRIPTION: Constraint = Constraint {
    min: 0,
    max: 1000,
    pattern: r"^[\x09\x0A\x0D\x20-\x7E\x{A1}-\x{FF}]*$",
};

/// `ValidationError` as IAM words it.
fn invalid(member: &str, value: &str, why: String) -> QueryError {
    let shown: String = value.chars().take(64).collect();
    QueryError::new(
        400,
        "ValidationError",
        format!(
            "1 validation error detected: Value '{shown}' at '{}' failed to satisfy constraint: {why}",
            lower_first(member)
        ),
    )
}

/// Checks `value` of `member` against its constraint.
fn check(member: &str, value: &str, c: &Constraint) -> Result<(), QueryError> {
    let length = value.chars().count();
    if length < c.min || length > c.max {
        return Err(invalid(
            member,
            value,
            format!(
                "Member must have length between {} and {}",
                c.min.max(1),
                c.max
            ),
        ));
    }
    // The patterns are compiled once each, on first use.
    static COMPILED: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<&'static str, regex::Regex>>,
    > = std::sync::LazyLock::new(Default::default);
    let matches = {
        let mut compiled = COMPILED.lock().expect("IAM patterns");
        compiled
            .entry(c.pattern)
            .or_insert_with(|| regex::Regex::new(c.pattern).expect("IAM's patterns compile"))
            .is_match(value)
    };
    if !matches {
        return Err(invalid(
            member,
            value,
            format!(
                "Member must satisfy regular expression pattern: {}",
                c.pattern.trim_start_matches('^').trim_end_matches('$')
            ),
        ));
    }
    Ok(())
}

/// A required member, checked.
fn member(p: &Params, name: &str, c: &Constraint) -> Result<String, QueryError> {
    let value = required(p, name)?;
    check(name, &value, c)?;
    Ok(value)
}

/// An optional member, checked when given.
fn optional(p: &Params, name: &str, c: &Constraint) -> Result<Option<String>, QueryError> {
    match p.get(name) {
        Some(value) => check(name, value, c).map(|()| Some(value.clone())),
        None => Ok(None),
    }
}

/// `MaxItems`, when given: a whole number from 1 to 1000.
fn max_items(p: &Params) -> Result<(), QueryError> {
    let Some(raw) = p.get("MaxItems") else {
        return Ok(());
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(()),
        Ok(_) => Err(invalid(
            "MaxItems",
            raw,
            "Member must have value between 1 and 1000".into(),
        )),
        Err(_) => Err(invalid(
            "MaxItems",
            raw,
            "Member must be a whole number".into(),
        )),
    }
}

/// A policy document: JSON whose `Statement` is a statement or a list of them, each
/// with an `Effect` of `Allow` or `Deny` (IAM's grammar, as far as it is checked here).
fn check_policy(document: &str) -> Result<(), QueryError> {
    let malformed = |why: &str| QueryError::new(400, "MalformedPolicyDocument", why.to_string());
    let doc: serde_json::Value = serde_json::from_str(document)
        .map_err(|_| malformed("This policy contains invalid Json"))?;
    let serde_json::Value::Object(doc) = doc else {
        return Err(malformed("Syntax errors in policy."));
    };
    if let Some(version) = doc.get("Version") {
        if version != "2012-10-17" && version != "2008-10-17" {
            return Err(malformed("The policy must contain a valid version string"));
        }
    }
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(list)) => list.iter().collect(),
        Some(one @ serde_json::Value::Object(_)) => vec![one],
        Some(_) => return Err(malformed("Syntax errors in policy.")),
        None => return Err(malformed("Missing required field Statement")),
    };
    for statement in statements {
        match statement.get("Effect").and_then(|e| e.as_str()) {
            Some("Allow" | "Deny") => {}
            Some(_) => return Err(malformed("Invalid effect.")),
            None if statement.is_object() => {
                return Err(malformed("Missing required field Effect"))
            }
            None => return Err(malformed("Syntax errors in policy.")),
        }
    }
    Ok(())
}

fn required(p: &Params, name: &str) -> Result<String, QueryError> {
    p.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
        QueryError::new(
            400,
            "ValidationError",
            format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(name)),
        )
    })
}

fn policy(p: &Params, name: &str) -> Result<String, QueryError> {
    let document = member(p, name, &POLICY_DOCUMENT)?;
    check_policy(&document)?;
    Ok(document)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
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
        query::iso8601(r.created),
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

#[cfg(test)]
mod tests {
    use super::{IamOperation, StsOperation};

    #[test]
    fn actions_are_parsed_by_name() {
        assert_eq!(
            IamOperation::from_action("CreateRole"),
            Some(IamOperation::CreateRole)
        );
        assert_eq!(IamOperation::from_action("CreateUser"), None);
        assert_eq!(
            StsOperation::from_action("GetCallerIdentity").map(StsOperation::name),
            Some("GetCallerIdentity")
        );
    }
}
