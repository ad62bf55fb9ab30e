//! `AWS::S3::BucketPolicy`: `Bucket`, `PolicyDocument`. The embedded S3 does not evaluate
//! bucket policies: the policy is recorded with the stack; its bucket must exist.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct BucketPolicy;

impl Provider for BucketPolicy {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let bucket = text(props, "Bucket").ok_or("Property Bucket cannot be empty.")?;
            scope
                .call("s3", "HeadBucket", json!({ "Bucket": bucket }))
                .await?;
            Ok(Made {
                physical_id: scope.generated_name(64),
                attributes: Default::default(),
            })
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
            let _ = scope;
            Ok(Updated::InPlace(Made {
                physical_id: physical_id.to_string(),
                attributes: Default::default(),
            }))
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
        changed(old, new, &["Bucket"])
    }
}
