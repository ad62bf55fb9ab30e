//! Types recorded with the stack but not served by a service here: `AWS::KMS::Key` and
//! `AWS::KMS::Alias` (no cryptography), `AWS::IAM::InstanceProfile` (IAM here serves roles
//! only, and no instance runs). Each gets
//! the physical id and attributes CloudFormation would give it, so that templates referring to
//! them deploy.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// A recorded type: how its physical id and attributes are made.
pub struct Recorded {
    make: fn(&Scope<'_>, &Value) -> Made,
    replacing: &'static [&'static str],
}

/// `AWS::KMS::Key`: a key id; attributes `Arn`, `KeyId`.
pub const KMS_KEY: Recorded = Recorded {
    make: |scope, _| {
        let id = uuid::Uuid::new_v4().to_string();
        let arn = format!(
            "arn:aws:kms:{}:{}:key/{id}",
            scope.ctx.region, scope.ctx.account_id
        );
        Made {
            physical_id: id.clone(),
            attributes: [
                ("Arn".to_string(), json!(arn)),
                ("KeyId".to_string(), json!(id)),
            ]
            .into(),
        }
    },
    replacing: &["KeySpec"],
};

/// `AWS::KMS::Alias`: its `AliasName`.
pub const KMS_ALIAS: Recorded = Recorded {
    make: |scope, props| Made {
        physical_id: text(props, "AliasName")
            .unwrap_or_else(|| format!("alias/{}", scope.generated_name(64))),
        attributes: Default::default(),
    },
    replacing: &["AliasName"],
};

/// `AWS::IAM::InstanceProfile`: its `InstanceProfileName`; attribute `Arn`.
pub const INSTANCE_PROFILE: Recorded = Recorded {
    make: |scope, props| {
        let name = text(props, "InstanceProfileName").unwrap_or_else(|| scope.generated_name(128));
        let path = text(props, "Path").unwrap_or_else(|| "/".to_string());
        Made {
            attributes: [(
                "Arn".to_string(),
                json!(format!(
                    "arn:aws:iam::{}:instance-profile{path}{name}",
                    scope.ctx.account_id
                )),
            )]
            .into(),
            physical_id: name,
        }
    },
    replacing: &["InstanceProfileName", "Path"],
};

impl Provider for Recorded {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move { Ok((self.make)(scope, props)) })
    }

    fn update<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        old: &'a Value,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async move {
            if self.replaces(old, new) {
                return Ok(Updated::Replace);
            }
            let mut made = (self.make)(scope, new);
            made.physical_id = physical_id.to_string();
            Ok(Updated::InPlace(made))
        })
    }

    fn delete<'a>(
        &'a self,
        _: &'a Scope<'a>,
        _: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, self.replacing)
    }
}
