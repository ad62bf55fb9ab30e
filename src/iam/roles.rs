//! IAM roles as events, decided and folded without I/O: [`handle`] turns a command on a role
//! into events or a refusal, [`apply`] folds an event into the roles the API reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::eventstore::EventType;

/// The prefix of role streams: `iam:<account>:role:<name>`.
pub const ROLE_STREAM_PREFIX: &str = "iam:";

/// The stream of a role.
pub fn role_stream(account: &str, name: &str) -> String {
    format!("{ROLE_STREAM_PREFIX}{account}:role:{name}")
}

/// A role as IAM describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Account.
    pub account: String,
    /// Name.
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// `AROA…` id.
    pub id: String,
    /// The trust policy (JSON text).
    pub assume_role_policy: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Maximum session duration in seconds.
    pub max_session_duration: u32,
    /// Creation time, epoch seconds.
    pub created: f64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Inline policies by name (JSON text).
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// Attached managed policy ARNs.
    #[serde(default)]
    pub attached: Vec<String>,
}

impl Role {
    /// Whether the trust policy lets `service` (e.g. `codepipeline.amazonaws.com`) assume the role.
    pub fn trusts(&self, service: &str) -> bool {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&self.assume_role_policy) else {
            return false;
        };
        let as_list = |v: &serde_json::Value| -> Vec<String> {
            match v {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => vec![],
            }
        };
        let statements = match &doc["Statement"] {
            serde_json::Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        statements.iter().any(|s| {
            s["Effect"] == "Allow"
                && as_list(&s["Action"])
                    .iter()
                    .any(|a| a == "sts:AssumeRole" || a == "sts:*" || a == "*")
                && as_list(&s["Principal"]["Service"])
                    .iter()
                    .any(|p| p == service)
        })
    }

    /// `arn:aws:iam::<account>:role<path><name>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role{}{}",
            self.account, self.path, self.name
        )
    }
}

/// What can happen to a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoleEvent {
    /// CreateRole.
    Created(Role),
    /// UpdateAssumeRolePolicy.
    TrustUpdated(String),
    /// PutRolePolicy.
    PolicyPut {
        /// Policy name.
        name: String,
        /// Document.
        document: String,
    },
    /// DeleteRolePolicy.
    PolicyDeleted(String),
    /// AttachRolePolicy.
    Attached(String),
    /// DetachRolePolicy.
    Detached(String),
    /// DeleteRole.
    Deleted,
}

impl EventType for RoleEvent {
    fn type_name(&self) -> &'static str {
        "IamRoleEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "IamRoleEvent"
    }

    fn decode(_: &str, data: &serde_json::Value) -> Result<Self, serde_json::Error> {
        RoleEvent::deserialize(data)
    }
}

/// What can be asked of a role.
#[derive(Debug, Clone)]
pub enum RoleCommand {
    /// CreateRole.
    Create(Role),
    /// UpdateAssumeRolePolicy.
    UpdateTrust(String),
    /// PutRolePolicy.
    PutPolicy {
        /// Policy name.
        name: String,
        /// Document.
        document: String,
    },
    /// DeleteRolePolicy.
    DeletePolicy(String),
    /// AttachRolePolicy.
    Attach(String),
    /// DetachRolePolicy.
    Detach(String),
    /// DeleteRole.
    Delete,
}

/// Why a command on a role was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleRefusal {
    /// CreateRole of a name in use.
    Exists,
    /// The role does not exist.
    NotFound,
    /// No inline policy of that name.
    NoSuchPolicy(String),
    /// No attached policy of that ARN.
    NotAttached(String),
    /// DeleteRole of a role that still has policies.
    HasPolicies,
}

/// Decides what a command does to the role `role` (`None` when it does not exist).
pub fn handle(role: Option<&Role>, command: RoleCommand) -> Result<Vec<RoleEvent>, RoleRefusal> {
    let event = match (command, role) {
        (RoleCommand::Create(_), Some(_)) => return Err(RoleRefusal::Exists),
        (RoleCommand::Create(new), None) => RoleEvent::Created(new),
        (_, None) => return Err(RoleRefusal::NotFound),
        (RoleCommand::UpdateTrust(document), Some(_)) => RoleEvent::TrustUpdated(document),
        (RoleCommand::PutPolicy { name, document }, Some(_)) => {
            RoleEvent::PolicyPut { name, document }
        }
        (RoleCommand::DeletePolicy(name), Some(role)) => {
            if !role.inline.contains_key(&name) {
                return Err(RoleRefusal::NoSuchPolicy(name));
            }
            RoleEvent::PolicyDeleted(name)
        }
        (RoleCommand::Attach(arn), Some(_)) => RoleEvent::Attached(arn),
        (RoleCommand::Detach(arn), Some(role)) => {
            if !role.attached.contains(&arn) {
                return Err(RoleRefusal::NotAttached(arn));
            }
            RoleEvent::Detached(arn)
        }
        (RoleCommand::Delete, Some(role)) => {
            if !role.inline.is_empty() || !role.attached.is_empty() {
                return Err(RoleRefusal::HasPolicies);
            }
            RoleEvent::Deleted
        }
    };
    Ok(vec![event])
}

/// Folds one event into the roles (keyed by stream).
pub fn apply(roles: &mut BTreeMap<String, Role>, stream: &str, event: RoleEvent) {
    match event {
        RoleEvent::Created(role) => {
            roles.insert(stream.to_string(), role);
        }
        RoleEvent::Deleted => {
            roles.remove(stream);
        }
        other => {
            let Some(role) = roles.get_mut(stream) else {
                return;
            };
            match other {
                RoleEvent::TrustUpdated(doc) => role.assume_role_policy = doc,
                RoleEvent::PolicyPut { name, document } => {
                    role.inline.insert(name, document);
                }
                RoleEvent::PolicyDeleted(name) => {
                    role.inline.remove(&name);
                }
                RoleEvent::Attached(arn) => {
                    if !role.attached.contains(&arn) {
                        role.attached.push(arn);
                    }
                }
                RoleEvent::Detached(arn) => role.attached.retain(|a| *a != arn),
                RoleEvent::Created(_) | RoleEvent::Deleted => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(policy: &str) -> Role {
        Role {
            account: "000000000000".into(),
            name: "r".into(),
            path: "/".into(),
            id: "AROA".into(),
            assume_role_policy: policy.into(),
            description: None,
            max_session_duration: 3600,
            created: 0.0,
            tags: vec![],
            inline: BTreeMap::new(),
            attached: vec![],
        }
    }

    #[test]
    fn commands_are_decided_against_the_role() {
        let r = role("{}");
        assert_eq!(
            handle(Some(&r), RoleCommand::Create(r.clone())),
            Err(RoleRefusal::Exists)
        );
        assert_eq!(
            handle(None, RoleCommand::Create(r.clone())),
            Ok(vec![RoleEvent::Created(r.clone())])
        );
        assert_eq!(
            handle(None, RoleCommand::Delete),
            Err(RoleRefusal::NotFound)
        );
        assert_eq!(
            handle(Some(&r), RoleCommand::DeletePolicy("p".into())),
            Err(RoleRefusal::NoSuchPolicy("p".into()))
        );
        let mut with_policy = r.clone();
        with_policy
            .attached
            .push("arn:aws:iam::aws:policy/x".into());
        assert_eq!(
            handle(Some(&with_policy), RoleCommand::Delete),
            Err(RoleRefusal::HasPolicies)
        );
        assert_eq!(
            handle(Some(&r), RoleCommand::Detach("a".into())),
            Err(RoleRefusal::NotAttached("a".into()))
        );
    }

    #[test]
    fn trust_needs_allow_assume_role_and_the_service() {
        let tutorial = r#"{ "Version": "2012-10-17", "Statement": [ { "Effect": "Allow", "Principal": { "Service": "codepipeline.amazonaws.com" }, "Action": "sts:AssumeRole" } ]}"#;
        assert!(role(tutorial).trusts("codepipeline.amazonaws.com"));
        assert!(!role(tutorial).trusts("codebuild.amazonaws.com"));
        let listed = r#"{"Statement": {"Effect": "Allow", "Principal": {"Service": ["a", "codepipeline.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}}"#;
        assert!(role(listed).trusts("codepipeline.amazonaws.com"));
        let denied = tutorial.replace("Allow", "Deny");
        assert!(!role(&denied).trusts("codepipeline.amazonaws.com"));
        assert_eq!(role(tutorial).arn(), "arn:aws:iam::000000000000:role/r");
    }
}
