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
//! - STS answers GetCallerIdentity, AssumeRole and AssumeRoleWithWebIdentity: the credentials
//!   are made up (this endpoint accepts any), the role must exist, its trust policy is not
//!   evaluated.

pub mod api;
pub mod roles;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use self::roles::{role_stream, Role, RoleCommand, RoleEvent, RoleRefusal, ROLE_STREAM_PREFIX};
use crate::eventstore::{EventStore, EventType, RecordedEvent, StoreError, StreamWriter};

/// Why a command on a role did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum IamFailure {
    /// The role refused it.
    Refused(RoleRefusal),
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
}

/// IAM roles, event-sourced.
pub struct Iam {
    log: Arc<dyn EventStore>,
    roles: RwLock<BTreeMap<String, Role>>,
    writer: StreamWriter,
}

impl Iam {
    /// Roles from `log` (fed by [`Iam::apply`] at startup).
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Iam {
            log,
            roles: RwLock::new(BTreeMap::new()),
            writer: StreamWriter::new(4096),
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

    /// A role by account and name.
    pub fn role(&self, account: &str, name: &str) -> Option<Role> {
        self.roles
            .read()
            .expect("iam lock")
            .get(&role_stream(account, name))
            .cloned()
    }

    /// The roles of an account, by name.
    pub fn roles_of(&self, account: &str) -> Vec<Role> {
        let roles = self.roles.read().expect("iam lock");
        roles
            .values()
            .filter(|r| r.account == account)
            .cloned()
            .collect()
    }

    /// Decides a command on a role and records its events; the role after, once durable.
    pub async fn execute(
        &self,
        account: &str,
        name: &str,
        command: RoleCommand,
    ) -> Result<Option<Role>, IamFailure> {
        let stream = role_stream(account, name);
        let decide = || roles::handle(self.role(account, name).as_ref(), command);
        let recorded = self
            .writer
            .append(self.log.as_ref(), &stream, decide)
            .await
            .map_err(IamFailure::Store)?
            .map_err(IamFailure::Refused)?;
        recorded.iter().for_each(|r| self.apply(r));
        Ok(self.role(account, name))
    }
}

impl crate::checkpoint::Projection for Iam {
    fn name(&self) -> &'static str {
        "iam"
    }

    fn apply(&self, record: &RecordedEvent) {
        Iam::apply(self, record);
    }

    fn export(&self) -> Result<Box<serde_json::value::RawValue>, String> {
        let roles = self.roles.read().expect("iam lock");
        serde_json::value::to_raw_value(&*roles).map_err(|e| e.to_string())
    }

    fn restore(&self, json: &str) -> Result<(), String> {
        let roles: BTreeMap<String, Role> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        *self.roles.write().expect("iam lock") = roles;
        Ok(())
    }

    fn clear(&self) {
        self.roles.write().expect("iam lock").clear();
    }
}
