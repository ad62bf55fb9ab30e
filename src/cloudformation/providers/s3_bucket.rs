//! `AWS::S3::Bucket`: `BucketName` (made from the stack's name when absent, lower case),
//! `VersioningConfiguration`; attributes `Arn`, `DomainName`, `RegionalDomainName`,
//! `DualStackDomainName`, `WebsiteURL`. Other properties (encryption, lifecycle, public access
//! block, tags, …) are accepted and recorded: the embedded S3 does not apply them.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct Bucket;

fn made(name: &str, region: &str) -> Made {
    Made {
        physical_id: name.to_string(),
        attributes: [
            ("Arn", json!(format!("arn:aws:s3:::{name}"))),
            ("DomainName", json!(format!("{name}.s3.amazonaws.com"))),
            (
                "RegionalDomainName",
                json!(format!("{name}.s3.{region}.amazonaws.com")),
            ),
            (
                "DualStackDomainName",
                json!(format!("{name}.s3.dualstack.{region}.amazonaws.com")),
            ),
            (
                "WebsiteURL",
                json!(format!("http://{name}.s3-website-{region}.amazonaws.com")),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    }
}

async fn versioning(scope: &Scope<'_>, name: &str, props: &Value) -> Result<(), String> {
    if let Some(status) = props["VersioningConfiguration"]["Status"].as_str() {
        scope
            .call(
                "s3",
                "PutBucketVersioning",
                json!({"Bucket": name, "VersioningConfiguration": {"Status": status}}),
            )
            .await?;
    }
    Ok(())
}

impl Provider for Bucket {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name = text(props, "BucketName")
                .unwrap_or_else(|| scope.generated_name(63).to_lowercase());
            scope
                .call("s3", "CreateBucket", json!({ "Bucket": name }))
                .await?;
            versioning(scope, &name, props).await?;
            Ok(made(&name, &scope.ctx.region))
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
            versioning(scope, physical_id, new).await?;
            Ok(Updated::InPlace(made(physical_id, &scope.ctx.region)))
        })
    }

    fn delete<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            scope
                .call("s3", "DeleteBucket", json!({ "Bucket": physical_id }))
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["BucketName"])
    }
}
