//! `AWS::SSM::Parameter`: `Name` (made from the stack's name when absent), `Type`, `Value`,
//! `Description`, `AllowedPattern`, `DataType`; attributes `Type`, `Value`.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{changed, text, Made, Provider, Scope, Updated};

/// The provider.
pub struct SsmParameter;

async fn put(
    scope: &Scope<'_>,
    name: &str,
    props: &Value,
    overwrite: bool,
) -> Result<Made, String> {
    let mut input = json!({
        "Name": name,
        "Value": text(props, "Value").ok_or("Property Value cannot be empty.")?,
        "Type": text(props, "Type").ok_or("Property Type cannot be empty.")?,
        "Overwrite": overwrite,
    });
    for key in ["Description", "AllowedPattern", "DataType"] {
        if let Some(v) = text(props, key) {
            input[key] = v.into();
        }
    }
    scope.call("ssm", "PutParameter", input).await?;
    Ok(Made {
        physical_id: name.to_string(),
        attributes: [
            ("Type".to_string(), props["Type"].clone()),
            ("Value".to_string(), props["Value"].clone()),
        ]
        .into(),
    })
}

impl Provider for SsmParameter {
    fn create<'a>(
        &'a self,
        scope: &'a Scope<'a>,
        props: &'a Value,
    ) -> BoxFuture<'a, Result<Made, String>> {
        Box::pin(async move {
            let name =
                text(props, "Name").unwrap_or_else(|| format!("CFN-{}", scope.generated_name(60)));
            put(scope, &name, props, false).await
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
            Ok(Updated::InPlace(put(scope, physical_id, new, true).await?))
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
                .call("ssm", "DeleteParameter", json!({ "Name": physical_id }))
                .await
                .map(drop)
        })
    }

    fn replaces(&self, old: &Value, new: &Value) -> bool {
        changed(old, new, &["Name"])
    }
}
