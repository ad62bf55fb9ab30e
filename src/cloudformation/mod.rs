//! The embedded CloudFormation: stacks made, updated and deleted from templates, with change
//! sets, events, outputs and exports, event-sourced in one stream per account and region
//! (`cloudformation:<account>:<region>`).
//!
//! `template` reads and evaluates templates without I/O (sections, parameters, conditions,
//! rules, resource order, intrinsic functions; `yaml` reads YAML's short-form tags); `engine`
//! runs stack operations in the background as CloudFormation does; `providers` makes each
//! resource type through the API of the service that serves it; `api` is the query protocol.
//!
//! # LIMITATIONS
//! - `Transform` (SAM, `AWS::Include`, macros) is not served: a template that names one is
//!   refused, saying so. `Fn::ToJsonString` and `Fn::Length` are taken without the
//!   `AWS::LanguageExtensions` transform.
//! - `Fn::GetAZs` gives three zones, `<region>a` to `<region>c`; `Fn::Cidr` divides IPv4 blocks
//!   only.
//! - Resource types are served as far as `providers` lists them; another type fails its
//!   resource, naming it, and the stack rolls back. KMS keys and aliases and IAM instance
//!   profiles are recorded only (no cryptography; IAM serves roles only); bucket policies are
//!   recorded, not evaluated.
//! - Stack policies, notifications, rollback triggers, nested stacks, drift detection, stack
//!   sets and resource import are not served. IAM resources need `CAPABILITY_IAM` (named ones
//!   `CAPABILITY_NAMED_IAM`), as on AWS.
//! - An operation cut by a stop of the server is ended when it starts again: a creation is
//!   rolled back, a deletion finished, an update's cleanup finished; an update cut before its
//!   cleanup is rolled back from the resources as they were when it began (kept with the stack
//!   for the length of an update) and as its events left them. A resource whose creation was
//!   under way at the instant of a `kill -9` has no recorded physical id and is left behind.

pub mod api;
pub mod engine;
mod pipeline_actions;
pub mod providers;
pub mod stacks;
pub mod template;
pub mod yaml;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use self::pipeline_actions::PipelineStacks;
use self::providers::{CallError, Services};
use self::stacks::{RegionStacks, Stack, StackChange};
use crate::aws::RequestContext;
use crate::eventstore::EventStore;
use crate::regional::Regional;

/// The prefix of stack streams.
pub const STREAM_PREFIX: &str = "cloudformation:";

/// How many stacks an account may have in a region (AWS's quota).
pub const MAX_STACKS: usize = 2000;

/// The embedded CloudFormation.
pub struct CloudFormation {
    /// The stacks.
    pub stacks: Regional<StackChange, RegionStacks>,
    services: OnceLock<Arc<dyn Services>>,
    /// How long an operation that starts a stack operation waits for it before it answers.
    answer_within: std::sync::atomic::AtomicU64,
}

crate::regional::regional_projection!(CloudFormation, stacks);

/// A port that answers every call with an error: before the services are set.
struct NoServices;

impl Services for NoServices {
    fn call<'a>(
        &'a self,
        _: &'a RequestContext,
        service: &'static str,
        _: &'static str,
        _: Value,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            Err(CallError {
                code: "ServiceUnavailable".into(),
                message: format!("{service} is not reachable from CloudFormation"),
            })
        })
    }
}

impl CloudFormation {
    /// No stacks yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        CloudFormation {
            stacks: Regional::new(log, STREAM_PREFIX, "cloudformation", stacks::fold),
            services: OnceLock::new(),
            answer_within: std::sync::atomic::AtomicU64::new(5000),
        }
    }

    /// How long (milliseconds) an operation that starts a stack operation waits for it before it
    /// answers (`cloudformation_answer_within_ms`).
    pub fn set_answer_within(&self, millis: u64) {
        self.answer_within
            .store(millis, std::sync::atomic::Ordering::Relaxed);
    }

    fn answer_within(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.answer_within
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Where resources are made.
    pub fn set_services(&self, services: Arc<dyn Services>) {
        let _ = self.services.set(services);
    }

    fn services(&self) -> &dyn Services {
        match self.services.get() {
            Some(s) => s.as_ref(),
            None => &NoServices,
        }
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        service: &'static str,
        operation: &'static str,
        input: Value,
    ) -> Result<Value, CallError> {
        self.services().call(ctx, service, operation, input).await
    }

    /// A live stack by name.
    pub fn stack(&self, account: &str, region: &str, name: &str) -> Option<Stack> {
        self.stacks
            .read(account, region, |r| r.live.get(name).cloned())
    }

    /// The region's exports: name → (value, exporting stack id).
    pub fn exports(&self, account: &str, region: &str) -> BTreeMap<String, (String, String)> {
        self.stacks.read(account, region, |r| {
            r.live
                .values()
                .flat_map(|s| {
                    s.outputs
                        .iter()
                        .filter_map(|o| Some((o.export.clone()?, (o.value.clone(), s.id.clone()))))
                })
                .collect()
        })
    }

    /// Who imports the region's exports: export name → the names of the stacks that import it.
    pub fn importers(&self, account: &str, region: &str) -> BTreeMap<String, Vec<String>> {
        self.stacks.read(account, region, |r| {
            let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in r.live.values() {
                for name in &s.imports {
                    out.entry(name.clone()).or_default().push(s.name.clone());
                }
            }
            out
        })
    }

    /// Ends the operations a stop of the server cut: creations, updates and their rollbacks
    /// roll back, deletions go on.
    pub fn recover(self: &Arc<Self>, regions: Vec<(String, String)>) {
        for (account, region) in regions {
            let cut: Vec<(String, String)> = self.stacks.read(&account, &region, |r| {
                r.live
                    .values()
                    .filter(|s| {
                        s.status.ends_with("_IN_PROGRESS") && s.status != "REVIEW_IN_PROGRESS"
                    })
                    .map(|s| (s.name.clone(), s.status.clone()))
                    .collect()
            });
            for (name, status) in cut {
                let me = self.clone();
                let (account, region) = (account.clone(), region.clone());
                actix_rt::spawn(async move {
                    log::info!("stack {name} was {status} when the server stopped: ending it");
                    me.resume(account, region, name, status).await;
                });
            }
        }
    }

    /// The accounts and regions that have stacks.
    pub fn regions(&self) -> Vec<(String, String)> {
        self.stacks.keys()
    }
}
