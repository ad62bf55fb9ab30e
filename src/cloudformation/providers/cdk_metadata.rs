//! `AWS::CDK::Metadata`: what the CDK adds to every stack it synthesizes; taken, with no effect.

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Made, Provider, Scope, Updated};

/// The provider.
pub struct CdkMetadata;

impl Provider for CdkMetadata {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            Ok(Made {
                physical_id: scope.generated_name(64),
                attributes: Default::default(),
            })
        })
    }

    fn update<'a>(
        &'a self,
        _: &'a Scope<'a>,
        physical_id: &'a str,
        _: &'a Value,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<Updated, String>> {
        Box::pin(async move {
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

    fn replaces(&self, _: &Value, _: &Value) -> bool {
        false
    }
}
