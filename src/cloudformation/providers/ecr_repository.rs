//! `AWS::ECR::Repository`: `RepositoryName` (made from the stack's name, in lower case, when
//! absent), `ImageTagMutability`, `ImageScanningConfiguration`, `EncryptionConfiguration`,
//! `Tags`, `EmptyOnDelete` (a deletion removes the images too); attributes `Arn`,
//! `RepositoryUri`.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct Repository;

/// What a change of these properties replaces.
const REPLACING: &[&str] = &["RepositoryName", "EncryptionConfiguration"];

fn made(scope: &Scope<'_>, name: &str) -> Made {
    let (account, region) = (&scope.ctx.account_id, &scope.ctx.region);
    Made {
        physical_id: name.to_string(),
        attributes: [
            (
                "Arn".to_string(),
                json!(crate::ecr::arn(account, region, name)),
            ),
            (
                "RepositoryUri".to_string(),
                json!(crate::ecr::uri(account, region, name)),
            ),
        ]
        .into(),
    }
}

impl Provider for Repository {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "RepositoryName")
                .unwrap_or_else(|| scope.generated_name(256).to_lowercase());
            let mut input = json!({ "repositoryName": name });
            if let Some(m) = text(props, "ImageTagMutability") {
                input["imageTagMutability"] = m.into();
            }
            if let Some(scan) = props["ImageScanningConfiguration"]["ScanOnPush"].as_bool() {
                input["imageScanningConfiguration"] = json!({ "scanOnPush": scan });
            }
            if let Some(kind) = text(&props["EncryptionConfiguration"], "EncryptionType") {
                input["encryptionConfiguration"] = json!({ "encryptionType": kind });
            }
            if let Some(tags) = props["Tags"].as_array() {
                input["tags"] = json!(tags);
            }
            scope.call("ecr", "CreateRepository", input).await?;
            Ok(made(scope, &name))
        })
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
            Ok(Updated::InPlace(made(scope, physical_id)))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let force = text(props, "EmptyOnDelete").as_deref() == Some("true");
            let gone = scope
                .call(
                    "ecr",
                    "DeleteRepository",
                    json!({ "repositoryName": physical_id, "force": force }),
                )
                .await;
            match gone {
                Err(e) if e.contains("RepositoryNotFoundException") => Ok(()),
                other => other.map(drop),
            }
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, REPLACING)
    }
}
