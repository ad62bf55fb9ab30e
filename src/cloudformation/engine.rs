//! Stack operations as CloudFormation runs them, in the background after the API answered:
//! creation (rolled back on a failure unless rollback is disabled), update (each resource left
//! alone, updated in place or replaced, from its old and new properties; rolled back on a
//! failure; what left the template deleted last), and deletion (in the reverse order, resources
//! with `DeletionPolicy: Retain` kept). Every step is an event of the stack's log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::providers::{provider, Made, Scope as ProviderScope, Updated};
use super::stacks::{Output, Resource, Stack, StackChange};
use super::template::{resolve, Scope, Template};
use super::CloudFormation;
use crate::aws::RequestContext;

/// What a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The stack's first.
    Create,
    /// A later one.
    Update,
}

/// A resource as the operation knows it: physical id, attributes, resolved properties.
#[derive(Debug, Clone)]
struct Live {
    kind: String,
    physical_id: String,
    attributes: BTreeMap<String, Value>,
    properties: Value,
    retain: bool,
}

impl Live {
    fn of(r: &Resource) -> Option<Live> {
        Some(Live {
            kind: r.kind.clone(),
            physical_id: r.physical_id.clone()?,
            attributes: r.attributes.clone(),
            properties: r.properties.clone(),
            retain: r.retain,
        })
    }
}

/// The values a template's functions see, for the stack as it stands.
pub struct Values {
    /// Parameter values.
    pub parameters: BTreeMap<String, Value>,
    /// Conditions.
    pub conditions: BTreeMap<String, bool>,
}

impl CloudFormation {
    fn ctx(account: &str, region: &str) -> RequestContext {
        let mut ctx = RequestContext::new(None, region);
        ctx.account_id = account.to_string();
        ctx.region = region.to_string();
        ctx
    }

    /// Resolves a template's parameters (those of SSM types from the Parameter Store) and
    /// conditions, and checks its rules.
    pub async fn values(
        &self,
        ctx: &RequestContext,
        template: &Template,
        stack: &str,
        stack_id: &str,
        given: &BTreeMap<String, String>,
    ) -> Result<Values, String> {
        let mut ssm = BTreeMap::new();
        for (name, declaration) in template.parameters() {
            let kind = declaration["Type"].as_str().unwrap_or_default();
            if !kind.starts_with("AWS::SSM::Parameter::Value<") {
                continue;
            }
            let key = given
                .get(name)
                .cloned()
                .or_else(|| declaration["Default"].as_str().map(str::to_string))
                .unwrap_or_default();
            let found = self
                .call(
                    ctx,
                    "ssm",
                    "GetParameter",
                    serde_json::json!({ "Name": key }),
                )
                .await
                .ok()
                .and_then(|v| v["Parameter"]["Value"].as_str().map(str::to_string));
            if let Some(v) = found {
                ssm.insert(key, v);
            }
        }
        let parameters = template.parameter_values(given, &|name| ssm.get(name).cloned())?;
        let none = BTreeMap::new();
        let exports = self.exports(&ctx.account_id, &ctx.region);
        let physical = |_: &str| None;
        let attribute = |_: &str, _: &str| None;
        let export = |name: &str| exports.get(name).map(|(v, _)| v.clone());
        let mappings = template.body.get("Mappings");
        let scope = Scope {
            parameters: &parameters,
            conditions: &none,
            mappings,
            account: &ctx.account_id,
            region: &ctx.region,
            stack_name: stack,
            stack_id,
            physical_id: &physical,
            attribute: &attribute,
            export: &export,
        };
        let conditions = template.conditions(&scope)?;
        let scope = Scope {
            conditions: &conditions,
            ..scope
        };
        template.check_rules(&scope)?;
        Ok(Values {
            parameters,
            conditions,
        })
    }

    async fn record(&self, account: &str, region: &str, changes: Vec<StackChange>) {
        if let Err(e) = self
            .stacks
            .record(account, region, |_| Ok::<_, ()>(changes))
            .await
        {
            log::error!("a stack's change was not recorded: {e:?}");
        }
    }

    async fn status(
        &self,
        account: &str,
        region: &str,
        stack: &str,
        status: &str,
        reason: Option<String>,
    ) {
        let change = StackChange::Status {
            stack: stack.to_string(),
            status: status.to_string(),
            reason,
            event: uuid::Uuid::new_v4().to_string(),
            at: crate::aws::now_epoch(),
        };
        self.record(account, region, vec![change]).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn resource(
        &self,
        account: &str,
        region: &str,
        stack: &str,
        logical: &str,
        kind: &str,
        live: Option<&Live>,
        properties: &Value,
        status: &str,
        reason: Option<String>,
    ) {
        let resource = Resource {
            kind: kind.to_string(),
            physical_id: live.map(|l| l.physical_id.clone()),
            status: status.to_string(),
            reason,
            properties: properties.clone(),
            attributes: live.map(|l| l.attributes.clone()).unwrap_or_default(),
            retain: live.is_some_and(|l| l.retain),
            updated: crate::aws::now_epoch(),
        };
        let change = StackChange::Resource {
            stack: stack.to_string(),
            logical: logical.to_string(),
            resource: Box::new(resource),
            event: uuid::Uuid::new_v4().to_string(),
        };
        self.record(account, region, vec![change]).await;
    }

    /// Runs a deployment of stack `name` whose `Deploying` and first status are recorded.
    pub async fn deploy(
        self: Arc<Self>,
        account: String,
        region: String,
        name: String,
        kind: Kind,
    ) {
        let ctx = Self::ctx(&account, &region);
        let Some(stack) = self.stack(&account, &region, &name) else {
            return;
        };
        let Some(Ok(template)) = stack.template.as_deref().map(Template::parse) else {
            return;
        };
        let op = Operation {
            ctx: &ctx,
            name: &name,
            kind,
            keep_on_failure: stack.disable_rollback,
        };
        let values = match self
            .values(&ctx, &template, &name, &stack.id, &stack.parameters)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                let (mut live, undo) = (BTreeMap::new(), Rollback::default());
                self.roll_back(&op, &undo, &mut live, e).await;
                return;
            }
        };
        let mut live: BTreeMap<String, Live> = stack
            .resources
            .iter()
            .filter_map(|(k, r)| Some((k.clone(), Live::of(r)?)))
            .collect();
        let mut undo = Rollback {
            before: live.clone(),
            ..Rollback::default()
        };
        // Replaced resources whose `UpdateReplacePolicy` keeps the old one.
        let mut retained: BTreeSet<String> = BTreeSet::new();
        let mut failure: Option<(String, String)> = None;
        let order = template.order().unwrap_or_default();
        let declared = template.resources();
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for logical in &order {
            let declaration = &declared[logical];
            if let Some(c) = declaration.get("Condition").and_then(Value::as_str) {
                if !values.conditions.get(c).copied().unwrap_or(false) {
                    continue;
                }
            }
            wanted.insert(logical.clone());
            let kind_name = declaration["Type"].as_str().unwrap_or_default().to_string();
            let retain = declaration["DeletionPolicy"].as_str() == Some("Retain");
            let props = match self.resolve_props(
                &ctx,
                &name,
                &stack.id,
                &template,
                &values,
                &live,
                declaration,
            ) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some((logical.clone(), e));
                    break;
                }
            };
            let scope = ProviderScope {
                ctx: &ctx,
                services: self.services(),
                stack: &name,
                logical,
            };
            let Some(provider) = provider(&kind_name) else {
                let reason = format!(
                    "Resource type {kind_name} is not served by this endpoint (codepipeline-local)"
                );
                self.resource(
                    &account,
                    &region,
                    &name,
                    logical,
                    &kind_name,
                    None,
                    &props,
                    "CREATE_FAILED",
                    Some(reason.clone()),
                )
                .await;
                failure = Some((logical.clone(), reason));
                break;
            };
            let on = On {
                cf: &self,
                account: &account,
                region: &region,
                stack: &name,
            };
            let existing = live.get(logical).filter(|l| l.kind == kind_name).cloned();
            let (result, done, failed, before) = match existing {
                Some(old) if old.properties == props && old.retain == retain => continue,
                Some(old) => {
                    on.mark(
                        logical,
                        &kind_name,
                        Some(&old),
                        &props,
                        "UPDATE_IN_PROGRESS",
                        None,
                    )
                    .await;
                    let result = match provider
                        .update(&scope, &old.physical_id, &old.properties, &props)
                        .await
                    {
                        Ok(Updated::InPlace(made)) => Ok(made),
                        Ok(Updated::Replace) => {
                            let why = "Requested update requires the creation of a new physical resource; hence creating one.";
                            on.mark(
                                logical,
                                &kind_name,
                                Some(&old),
                                &props,
                                "UPDATE_IN_PROGRESS",
                                Some(why.into()),
                            )
                            .await;
                            let made = provider.create(&scope, &props).await;
                            if made.is_ok() {
                                undo.replaced.push((logical.clone(), old.clone()));
                                if declaration["UpdateReplacePolicy"].as_str() == Some("Retain") {
                                    retained.insert(logical.clone());
                                }
                            }
                            made
                        }
                        Err(e) => Err(e),
                    };
                    (result, "UPDATE_COMPLETE", "UPDATE_FAILED", Some(old))
                }
                None => {
                    on.mark(
                        logical,
                        &kind_name,
                        None,
                        &props,
                        "CREATE_IN_PROGRESS",
                        None,
                    )
                    .await;
                    let result = provider.create(&scope, &props).await;
                    (result, "CREATE_COMPLETE", "CREATE_FAILED", None)
                }
            };
            undo.touched.push(logical.clone());
            match result {
                Ok(made) => {
                    let now = live_of(made, &kind_name, props.clone(), retain);
                    on.mark(logical, &kind_name, Some(&now), &props, done, None)
                        .await;
                    live.insert(logical.clone(), now);
                }
                Err(e) => {
                    on.mark(
                        logical,
                        &kind_name,
                        before.as_ref(),
                        &props,
                        failed,
                        Some(e.clone()),
                    )
                    .await;
                    failure = Some((logical.clone(), e));
                    break;
                }
            }
        }
        if let Some((logical, _)) = failure {
            let reason = failed_reason(kind, &logical);
            self.roll_back(&op, &undo, &mut live, reason).await;
            return;
        }
        // Outputs, from what the stack now holds.
        let outputs = match self.outputs(&ctx, &name, &stack.id, &template, &values, &live) {
            Ok(o) => o,
            Err(e) => {
                self.roll_back(&op, &undo, &mut live, e).await;
                return;
            }
        };
        let imports = self.with_scope(&ctx, &name, &stack.id, &template, &values, &live, |scope| {
            template.imports(scope)
        });
        self.record(
            &account,
            &region,
            vec![StackChange::Outputs {
                stack: name.clone(),
                outputs,
                imports,
            }],
        )
        .await;
        if kind == Kind::Create {
            self.status(&account, &region, &name, "CREATE_COMPLETE", None)
                .await;
            return;
        }
        self.status(
            &account,
            &region,
            &name,
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            None,
        )
        .await;
        // What left the template goes, newest first; then the resources replaced.
        let old_order: Vec<String> = stack
            .previous
            .as_ref()
            .and_then(|(t, _)| Template::parse(t).ok())
            .and_then(|t| t.order().ok())
            .unwrap_or_default();
        let mut gone: Vec<(String, Live)> = old_order
            .iter()
            .rev()
            .filter(|l| !wanted.contains(*l))
            .filter_map(|l| Some((l.clone(), live.get(l)?.clone())))
            .collect();
        for (logical, old) in live
            .iter()
            .filter(|(l, _)| !wanted.contains(*l) && !old_order.contains(l))
        {
            gone.push((logical.clone(), old.clone()));
        }
        for (logical, old) in gone {
            self.delete_one(&ctx, &name, &logical, &old).await;
            self.record(
                &account,
                &region,
                vec![StackChange::ResourceGone {
                    stack: name.clone(),
                    logical,
                }],
            )
            .await;
        }
        for (logical, old) in undo.replaced.iter().filter(|(l, _)| !retained.contains(l)) {
            self.delete_replaced(&ctx, &name, logical, old).await;
        }
        self.status(&account, &region, &name, "UPDATE_COMPLETE", None)
            .await;
    }

    /// A resource's properties resolved against the stack's resources as they are; `None` when
    /// they refer to what is not made yet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve_for_change(
        &self,
        ctx: &RequestContext,
        stack: &str,
        stack_id: &str,
        template: &Template,
        values: &Values,
        current: &BTreeMap<String, Resource>,
        declaration: &Value,
    ) -> Option<Value> {
        let live: BTreeMap<String, Live> = current
            .iter()
            .filter_map(|(k, r)| Some((k.clone(), Live::of(r)?)))
            .collect();
        self.resolve_props(ctx, stack, stack_id, template, values, &live, declaration)
            .ok()
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_props(
        &self,
        ctx: &RequestContext,
        stack: &str,
        stack_id: &str,
        template: &Template,
        values: &Values,
        live: &BTreeMap<String, Live>,
        declaration: &Value,
    ) -> Result<Value, String> {
        let props = declaration
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        self.with_scope(ctx, stack, stack_id, template, values, live, |scope| {
            Ok(resolve(&props, scope)?.unwrap_or(Value::Object(Map::new())))
        })
    }

    /// Runs `f` with the scope a template's functions see in the stack as `live` has it.
    #[allow(clippy::too_many_arguments)]
    fn with_scope<R>(
        &self,
        ctx: &RequestContext,
        stack: &str,
        stack_id: &str,
        template: &Template,
        values: &Values,
        live: &BTreeMap<String, Live>,
        f: impl FnOnce(&Scope<'_>) -> R,
    ) -> R {
        let exports = self.exports(&ctx.account_id, &ctx.region);
        let physical = |name: &str| live.get(name).map(|l| l.physical_id.clone());
        let attribute =
            |name: &str, attr: &str| live.get(name).and_then(|l| l.attributes.get(attr).cloned());
        let export = |name: &str| exports.get(name).map(|(v, _)| v.clone());
        let scope = Scope {
            parameters: &values.parameters,
            conditions: &values.conditions,
            mappings: template.body.get("Mappings"),
            account: &ctx.account_id,
            region: &ctx.region,
            stack_name: stack,
            stack_id,
            physical_id: &physical,
            attribute: &attribute,
            export: &export,
        };
        f(&scope)
    }

    fn outputs(
        &self,
        ctx: &RequestContext,
        stack: &str,
        stack_id: &str,
        template: &Template,
        values: &Values,
        live: &BTreeMap<String, Live>,
    ) -> Result<Vec<Output>, String> {
        let mut out = Vec::new();
        let exports = self.exports(&ctx.account_id, &ctx.region);
        for (key, output) in template.outputs().into_iter().flatten() {
            if let Some(c) = output.get("Condition").and_then(Value::as_str) {
                if !values.conditions.get(c).copied().unwrap_or(false) {
                    continue;
                }
            }
            let wrapper = serde_json::json!({"Value": output["Value"], "Export": output.get("Export").cloned().unwrap_or(Value::Null)});
            let resolved = self.resolve_props(
                ctx,
                stack,
                stack_id,
                template,
                values,
                live,
                &serde_json::json!({ "Properties": wrapper }),
            )?;
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            let export = resolved["Export"]["Name"].as_str().map(str::to_string);
            if let Some(name) = &export {
                if let Some((_, owner)) = exports.get(name).filter(|(_, owner)| owner != stack_id) {
                    return Err(format!(
                        "Export with name {name} is already exported by stack {owner}"
                    ));
                }
            }
            out.push(Output {
                key: key.clone(),
                value: text(&resolved["Value"]),
                description: output["Description"].as_str().map(str::to_string),
                export,
            });
        }
        // An export another stack imports can be neither removed nor changed.
        let importers = self.importers(&ctx.account_id, &ctx.region);
        let old = self
            .stack(&ctx.account_id, &ctx.region, stack)
            .map(|s| s.outputs)
            .unwrap_or_default();
        for was in old {
            let Some(name) = &was.export else { continue };
            let Some(user) = importers.get(name).and_then(|users| users.first()) else {
                continue;
            };
            let now = out.iter().find(|o| o.export.as_ref() == Some(name));
            match now {
                None => {
                    return Err(format!(
                        "Export {name} cannot be deleted as it is in use by {user}"
                    ))
                }
                Some(o) if o.value != was.value => {
                    return Err(format!(
                        "Export {name} cannot be updated as it is in use by {user}"
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(out)
    }

    /// Undoes what an operation did (`undo`; `live` is the stack's resources as it left them),
    /// or, for a creation that keeps what it made on a failure, only says it failed.
    async fn roll_back(
        &self,
        op: &Operation<'_>,
        undo: &Rollback,
        live: &mut BTreeMap<String, Live>,
        reason: String,
    ) {
        let (ctx, name, kind) = (op.ctx, op.name, op.kind);
        let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
        let (before, touched, replaced) = (&undo.before, &undo.touched, &undo.replaced);
        if kind == Kind::Create && op.keep_on_failure {
            self.status(account, region, name, "CREATE_FAILED", Some(reason))
                .await;
            return;
        }
        let (going, done) = match kind {
            Kind::Create => ("ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"),
            Kind::Update => ("UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"),
        };
        self.status(account, region, name, going, Some(reason))
            .await;
        for logical in touched.iter().rev() {
            let now = live.get(logical).cloned();
            match (before.get(logical), now) {
                // Made by this operation: deleted.
                (None, Some(now)) => {
                    self.delete_one(ctx, name, logical, &now).await;
                    self.record(
                        account,
                        region,
                        vec![StackChange::ResourceGone {
                            stack: name.into(),
                            logical: logical.clone(),
                        }],
                    )
                    .await;
                }
                (None, None) => {
                    let kind_name = self
                        .stack(account, region, name)
                        .and_then(|s| s.resources.get(logical).map(|r| r.kind.clone()))
                        .unwrap_or_default();
                    self.resource(
                        account,
                        region,
                        name,
                        logical,
                        &kind_name,
                        None,
                        &Value::Null,
                        "DELETE_COMPLETE",
                        None,
                    )
                    .await;
                    self.record(
                        account,
                        region,
                        vec![StackChange::ResourceGone {
                            stack: name.into(),
                            logical: logical.clone(),
                        }],
                    )
                    .await;
                }
                // Changed by this operation: changed back, or the new one of a replacement deleted.
                (Some(old), now) => {
                    let scope = ProviderScope {
                        ctx,
                        services: self.services(),
                        stack: name,
                        logical,
                    };
                    let Some(provider) = provider(&old.kind) else {
                        continue;
                    };
                    let was_replaced = replaced.iter().any(|(l, _)| l == logical);
                    if let (true, Some(new)) = (was_replaced, now.as_ref()) {
                        let _ = provider
                            .delete(&scope, &new.physical_id, &new.properties)
                            .await;
                    } else if let Some(now) = &now {
                        if now.properties != old.properties {
                            self.resource(
                                account,
                                region,
                                name,
                                logical,
                                &old.kind,
                                Some(now),
                                &old.properties,
                                "UPDATE_IN_PROGRESS",
                                None,
                            )
                            .await;
                            let _ = provider
                                .update(&scope, &old.physical_id, &now.properties, &old.properties)
                                .await;
                        }
                    }
                    self.resource(
                        account,
                        region,
                        name,
                        logical,
                        &old.kind,
                        Some(old),
                        &old.properties,
                        "UPDATE_COMPLETE",
                        None,
                    )
                    .await;
                    live.insert(logical.clone(), old.clone());
                }
            }
        }
        if kind == Kind::Update {
            // The template and parameters in force are the previous ones again.
            if let Some((template, _)) = self.stack(account, region, name).and_then(|s| s.previous)
            {
                let description = Template::parse(&template)
                    .ok()
                    .and_then(|t| t.description().map(str::to_string));
                self.record(
                    account,
                    region,
                    vec![StackChange::Restored {
                        stack: name.into(),
                        description,
                    }],
                )
                .await;
            }
            self.status(
                account,
                region,
                name,
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                None,
            )
            .await;
        }
        self.status(account, region, name, done, None).await;
    }

    async fn delete_one(
        &self,
        ctx: &RequestContext,
        stack: &str,
        logical: &str,
        old: &Live,
    ) -> bool {
        let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
        if old.retain {
            self.resource(
                account,
                region,
                stack,
                logical,
                &old.kind,
                Some(old),
                &old.properties,
                "DELETE_SKIPPED",
                None,
            )
            .await;
            return true;
        }
        self.resource(
            account,
            region,
            stack,
            logical,
            &old.kind,
            Some(old),
            &old.properties,
            "DELETE_IN_PROGRESS",
            None,
        )
        .await;
        let result = self.delete_physical(ctx, stack, logical, old).await;
        match result {
            Ok(()) => {
                self.resource(
                    account,
                    region,
                    stack,
                    logical,
                    &old.kind,
                    Some(old),
                    &old.properties,
                    "DELETE_COMPLETE",
                    None,
                )
                .await;
                true
            }
            Err(e) => {
                self.resource(
                    account,
                    region,
                    stack,
                    logical,
                    &old.kind,
                    Some(old),
                    &old.properties,
                    "DELETE_FAILED",
                    Some(e),
                )
                .await;
                false
            }
        }
    }

    /// Deletes a resource's physical copy through its type's provider (a type no provider
    /// serves made nothing to delete).
    async fn delete_physical(
        &self,
        ctx: &RequestContext,
        stack: &str,
        logical: &str,
        old: &Live,
    ) -> Result<(), String> {
        let scope = ProviderScope {
            ctx,
            services: self.services(),
            stack,
            logical,
        };
        match provider(&old.kind) {
            Some(p) => p.delete(&scope, &old.physical_id, &old.properties).await,
            None => Ok(()),
        }
    }

    /// Deletes the old copy of a replaced resource in the cleanup; its events say how it went
    /// (a failure leaves it, and the update complete, as on AWS).
    async fn delete_replaced(&self, ctx: &RequestContext, stack: &str, logical: &str, old: &Live) {
        let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
        let event = |status: &str, reason: Option<String>| StackChange::Event {
            stack: stack.to_string(),
            event: super::stacks::Event {
                id: uuid::Uuid::new_v4().to_string(),
                logical: logical.to_string(),
                physical_id: Some(old.physical_id.clone()),
                kind: old.kind.clone(),
                status: status.to_string(),
                reason,
                at: crate::aws::now_epoch(),
            },
        };
        self.record(account, region, vec![event("DELETE_IN_PROGRESS", None)])
            .await;
        let result = self.delete_physical(ctx, stack, logical, old).await;
        let done = match result {
            Ok(()) => event("DELETE_COMPLETE", None),
            Err(e) => event("DELETE_FAILED", Some(e)),
        };
        self.record(account, region, vec![done]).await;
    }

    /// Deletes stack `name` whose `DELETE_IN_PROGRESS` is recorded: its resources in the reverse
    /// of their order (those no template orders last), then the stack.
    pub async fn delete(self: Arc<Self>, account: String, region: String, name: String) {
        let ctx = Self::ctx(&account, &region);
        let Some(stack) = self.stack(&account, &region, &name) else {
            return;
        };
        let (ordered, others) = in_order(&stack);
        let all = ordered.into_iter().rev().chain(others);
        let mut failed = Vec::new();
        for logical in all {
            let resource = &stack.resources[&logical];
            let Some(old) = Live::of(resource) else {
                continue;
            };
            if !self.delete_one(&ctx, &name, &logical, &old).await {
                failed.push(logical);
            }
        }
        if !failed.is_empty() {
            let reason = format!(
                "The following resource(s) failed to delete: [{}]. ",
                failed.join(", ")
            );
            self.status(&account, &region, &name, "DELETE_FAILED", Some(reason))
                .await;
            return;
        }
        self.status(&account, &region, &name, "DELETE_COMPLETE", None)
            .await;
        self.record(
            &account,
            &region,
            vec![StackChange::Deleted {
                stack: name,
                at: crate::aws::now_epoch(),
            }],
        )
        .await;
    }
}

impl CloudFormation {
    /// Ends an operation a stop of the server cut (see [`CloudFormation::recover`]).
    pub async fn resume(
        self: Arc<Self>,
        account: String,
        region: String,
        name: String,
        status: String,
    ) {
        let ctx = Self::ctx(&account, &region);
        let Some(stack) = self.stack(&account, &region, &name) else {
            return;
        };
        match status.as_str() {
            "DELETE_IN_PROGRESS" => self.delete(account, region, name).await,
            "CREATE_IN_PROGRESS" | "ROLLBACK_IN_PROGRESS" => {
                let mut live: BTreeMap<String, Live> = stack
                    .resources
                    .iter()
                    .filter_map(|(k, r)| Some((k.clone(), Live::of(r)?)))
                    .collect();
                let undo = Rollback {
                    touched: stack.resources.keys().cloned().collect(),
                    ..Rollback::default()
                };
                let op = Operation::resumed(&ctx, &name, Kind::Create);
                self.roll_back(&op, &undo, &mut live, STOPPED.to_string())
                    .await;
            }
            "UPDATE_IN_PROGRESS" | "UPDATE_ROLLBACK_IN_PROGRESS" => {
                let lives = |resources: &BTreeMap<String, Resource>| -> BTreeMap<String, Live> {
                    resources
                        .iter()
                        .filter_map(|(k, r)| Some((k.clone(), Live::of(r)?)))
                        .collect()
                };
                let before = lives(stack.before_update.as_ref().unwrap_or(&stack.resources));
                let mut live = lives(&stack.resources);
                let undo = Rollback::between(&stack, before, &live);
                let reason = match status.as_str() {
                    "UPDATE_IN_PROGRESS" => STOPPED.to_string(),
                    _ => stack.reason.clone().unwrap_or_else(|| STOPPED.to_string()),
                };
                let op = Operation::resumed(&ctx, &name, Kind::Update);
                self.roll_back(&op, &undo, &mut live, reason).await;
            }
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" => {
                self.status(&account, &region, &name, "UPDATE_COMPLETE", None)
                    .await;
            }
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS" => {
                self.status(&account, &region, &name, "UPDATE_ROLLBACK_COMPLETE", None)
                    .await;
            }
            _ => {}
        }
    }
}

/// A stack's resources in the order its template makes them, and those it does not order.
fn in_order(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let order: Vec<String> = stack
        .template
        .as_deref()
        .and_then(|t| Template::parse(t).ok())
        .and_then(|t| t.order().ok())
        .unwrap_or_default();
    let ordered: Vec<String> = order
        .into_iter()
        .filter(|l| stack.resources.contains_key(l))
        .collect();
    let others = stack
        .resources
        .keys()
        .filter(|l| !ordered.contains(l))
        .cloned()
        .collect();
    (ordered, others)
}

/// Why an operation a stop of the server cut is rolled back.
const STOPPED: &str = "The server stopped during the operation (codepipeline-local)";

/// The reason a rollback gives for the resource that failed.
fn failed_reason(kind: Kind, logical: &str) -> String {
    match kind {
        Kind::Create => format!(
            "The following resource(s) failed to create: [{logical}]. Rollback requested by user."
        ),
        Kind::Update => format!("The following resource(s) failed to update: [{logical}]. "),
    }
}

/// A stack operation under way: the stack, its kind, and whether a failed creation keeps what
/// it made (`DisableRollback`).
struct Operation<'a> {
    ctx: &'a RequestContext,
    name: &'a str,
    kind: Kind,
    keep_on_failure: bool,
}

impl<'a> Operation<'a> {
    /// An operation a stop of the server cut, ended at the next start (always rolled back).
    fn resumed(ctx: &'a RequestContext, name: &'a str, kind: Kind) -> Self {
        Operation {
            ctx,
            name,
            kind,
            keep_on_failure: false,
        }
    }
}

/// What a rollback undoes: the resources as they were before the operation, those it touched
/// in the order it touched them, and the old copies of those it replaced.
#[derive(Default)]
struct Rollback {
    before: BTreeMap<String, Live>,
    touched: Vec<String>,
    replaced: Vec<(String, Live)>,
}

impl Rollback {
    /// What an update cut by a stop of the server changed, from the resources before it
    /// (`before`) and as its events left them (`now`), in the order of the template it deployed.
    fn between(
        stack: &Stack,
        before: BTreeMap<String, Live>,
        now: &BTreeMap<String, Live>,
    ) -> Rollback {
        let (ordered, others) = in_order(stack);
        let names = ordered.into_iter().chain(others);
        let mut rollback = Rollback::default();
        let status_before = |l: &str| {
            let resources = stack.before_update.as_ref().unwrap_or(&stack.resources);
            resources.get(l).map(|r| r.status.clone())
        };
        for logical in names {
            match (before.get(&logical), now.get(&logical)) {
                // Left alone (the same copy, properties and status as before the update).
                (Some(a), Some(b))
                    if a.physical_id == b.physical_id
                        && a.properties == b.properties
                        && status_before(&logical)
                            == stack.resources.get(&logical).map(|r| r.status.clone()) =>
                {
                    continue
                }
                (Some(a), Some(b)) if a.physical_id != b.physical_id => {
                    rollback.replaced.push((logical.clone(), a.clone()));
                }
                _ => {}
            }
            rollback.touched.push(logical);
        }
        rollback.before = before;
        rollback
    }
}

/// Where resource changes are recorded: a stack of an account and region.
struct On<'a> {
    cf: &'a CloudFormation,
    account: &'a str,
    region: &'a str,
    stack: &'a str,
}

impl On<'_> {
    /// Records a resource's status.
    async fn mark(
        &self,
        logical: &str,
        kind: &str,
        live: Option<&Live>,
        properties: &Value,
        status: &str,
        reason: Option<String>,
    ) {
        self.cf
            .resource(
                self.account,
                self.region,
                self.stack,
                logical,
                kind,
                live,
                properties,
                status,
                reason,
            )
            .await;
    }
}

fn live_of(made: Made, kind: &str, properties: Value, retain: bool) -> Live {
    Live {
        kind: kind.to_string(),
        physical_id: made.physical_id,
        attributes: made.attributes,
        properties,
        retain,
    }
}
