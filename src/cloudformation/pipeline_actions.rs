//! CloudFormation as the pipelines' CloudFormation deploy action drives it: each action mode as
//! the operations AWS's action performs, run through the same code as the API's, waited for to
//! the stack's end state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::api::operate;
use super::stacks::Stack;
use super::CloudFormation;
use crate::aws::RequestContext;
use crate::codepipeline::actions::{StackRequest, StackResult, Stacks};

/// The longest a stack operation is waited for (CloudFormation's own default timeout is none;
/// an action's is an hour).
const LONGEST: Duration = Duration::from_secs(3600);

/// CloudFormation as the CloudFormation deploy action reads it.
pub struct PipelineStacks(pub Arc<CloudFormation>);

impl Stacks for PipelineStacks {
    fn run<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        request: StackRequest,
    ) -> BoxFuture<'a, Result<StackResult, String>> {
        Box::pin(run(&self.0, account, region, request))
    }
}

/// States a stack cannot be updated from: REPLACE_ON_FAILURE deletes it first.
const FAILED: &[&str] = &[
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "CREATE_FAILED",
    "DELETE_FAILED",
];

async fn run(
    cf: &Arc<CloudFormation>,
    account: &str,
    region: &str,
    r: StackRequest,
) -> Result<StackResult, String> {
    let mut ctx = RequestContext::new(None, region);
    ctx.account_id = account.to_string();
    ctx.region = region.to_string();
    let call = |action: &'static str, input: Value| {
        let ctx = ctx.clone();
        async move {
            operate(cf, &ctx, action, &input)
                .await
                .map_err(|e| format!("{} ({})", e.message, e.code))
        }
    };
    let existing = || cf.stack(account, region, &r.stack);
    let parameters: Vec<Value> = r
        .parameters
        .iter()
        .map(|(k, v)| json!({"ParameterKey": k, "ParameterValue": v}))
        .collect();
    let tags: Vec<Value> = r
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let deployment = |template: &str| {
        json!({
            "StackName": r.stack, "TemplateBody": template, "Parameters": parameters,
            "Capabilities": r.capabilities, "Tags": tags,
        })
    };
    match r.mode.as_str() {
        "DELETE_ONLY" => {
            if existing().is_none() {
                return Ok(StackResult {
                    summary: format!("Stack {} does not exist", r.stack),
                    ..Default::default()
                });
            }
            call("DeleteStack", json!({ "StackName": r.stack })).await?;
            let ended = settle(cf, account, region, &r.stack).await;
            match ended {
                Some(s) => Err(failure(&s)),
                None => Ok(StackResult {
                    summary: format!("Stack {} deleted", r.stack),
                    ..Default::default()
                }),
            }
        }
        "CREATE_UPDATE" | "REPLACE_ON_FAILURE" => {
            let template = r.template.clone().unwrap_or_default();
            if let Some(stack) = existing() {
                let failed =
                    FAILED.contains(&stack.status.as_str()) || stack.status == "REVIEW_IN_PROGRESS";
                if failed && r.mode == "REPLACE_ON_FAILURE" {
                    call("DeleteStack", json!({ "StackName": r.stack })).await?;
                    if let Some(s) = settle(cf, account, region, &r.stack).await {
                        return Err(failure(&s));
                    }
                } else if failed {
                    return Err(format!(
                        "Stack {} is in {} state and can not be updated",
                        r.stack, stack.status
                    ));
                } else {
                    match call("UpdateStack", deployment(&template)).await {
                        Err(e) if e.contains("No updates are to be performed.") => {
                            return Ok(result(&stack, "No updates are to be performed."))
                        }
                        other => other?,
                    };
                    return ended(cf, account, region, &r.stack, "UPDATE_COMPLETE").await;
                }
            }
            call("CreateStack", deployment(&template)).await?;
            ended(cf, account, region, &r.stack, "CREATE_COMPLETE").await
        }
        "CHANGE_SET_REPLACE" => {
            let change_set = r.change_set.clone().unwrap_or_default();
            let stack = existing();
            if stack
                .as_ref()
                .is_some_and(|s| s.change_sets.contains_key(&change_set))
            {
                call(
                    "DeleteChangeSet",
                    json!({"StackName": r.stack, "ChangeSetName": change_set}),
                )
                .await?;
            }
            let kind = match &stack {
                Some(s) if s.status != "REVIEW_IN_PROGRESS" => "UPDATE",
                _ => "CREATE",
            };
            let mut input = deployment(&r.template.clone().unwrap_or_default());
            input["ChangeSetName"] = change_set.clone().into();
            input["ChangeSetType"] = kind.into();
            call("CreateChangeSet", input).await?;
            let made = existing().and_then(|s| s.change_sets.get(&change_set).cloned());
            let summary = match made {
                Some(cs) if cs.status == "FAILED" => {
                    format!("Change set {change_set}: {}", cs.reason.unwrap_or_default())
                }
                Some(cs) => format!(
                    "Change set {change_set} created with {} changes",
                    cs.changes.len()
                ),
                None => format!("Change set {change_set} created"),
            };
            let stack_id = existing().map(|s| s.id).unwrap_or_default();
            Ok(StackResult {
                stack_id,
                outputs: BTreeMap::new(),
                summary,
            })
        }
        "CHANGE_SET_EXECUTE" => {
            let change_set = r.change_set.clone().unwrap_or_default();
            let stack = existing().ok_or_else(|| format!("Stack {} does not exist", r.stack))?;
            let cs = stack
                .change_sets
                .get(&change_set)
                .ok_or_else(|| format!("ChangeSet [{change_set}] does not exist"))?;
            if cs.status == "FAILED" {
                // A change set that changes nothing: nothing to execute.
                return Ok(result(&stack, cs.reason.as_deref().unwrap_or("No changes")));
            }
            let expected = if stack.status == "REVIEW_IN_PROGRESS" {
                "CREATE_COMPLETE"
            } else {
                "UPDATE_COMPLETE"
            };
            call(
                "ExecuteChangeSet",
                json!({"StackName": r.stack, "ChangeSetName": change_set}),
            )
            .await?;
            ended(cf, account, region, &r.stack, expected).await
        }
        other => Err(format!("ActionMode {other} is not served")),
    }
}

/// Waits for the stack's operation to end: the stack then, `None` when it is gone.
async fn settle(cf: &CloudFormation, account: &str, region: &str, name: &str) -> Option<Stack> {
    let deadline = tokio::time::Instant::now() + LONGEST;
    loop {
        // Asked for before the look, so that a change between the look and the wait wakes it.
        let changed = cf.stacks.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let stack = cf.stack(account, region, name)?;
        let busy = stack.status.ends_with("_IN_PROGRESS") && stack.status != "REVIEW_IN_PROGRESS";
        if !busy || tokio::time::Instant::now() >= deadline {
            return Some(stack);
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}

async fn ended(
    cf: &CloudFormation,
    account: &str,
    region: &str,
    name: &str,
    wanted: &str,
) -> Result<StackResult, String> {
    let stack = settle(cf, account, region, name)
        .await
        .ok_or_else(|| format!("Stack {name} is gone"))?;
    if stack.status == wanted {
        Ok(result(
            &stack,
            &format!("Stack {name} is in state {wanted}"),
        ))
    } else {
        Err(failure(&stack))
    }
}

fn result(stack: &Stack, summary: &str) -> StackResult {
    StackResult {
        stack_id: stack.id.clone(),
        outputs: stack
            .outputs
            .iter()
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect(),
        summary: summary.to_string(),
    }
}

/// Why a stack operation failed: its state and the first resource that failed, as the action's
/// error names them on AWS.
fn failure(stack: &Stack) -> String {
    let resource = stack
        .events
        .iter()
        .rev()
        .take_while(|e| {
            !(e.logical == stack.name
                && e.status.ends_with("_IN_PROGRESS")
                && e.reason.as_deref() == Some("User Initiated"))
        })
        .filter(|e| e.status.ends_with("_FAILED") && e.logical != stack.name)
        .last();
    match resource {
        Some(e) => format!(
            "Stack {} is in state {}: resource {} ({}) {}: {}",
            stack.name,
            stack.status,
            e.logical,
            e.kind,
            e.status,
            e.reason.as_deref().unwrap_or("no reason given")
        ),
        None => format!(
            "Stack {} is in state {}: {}",
            stack.name,
            stack.status,
            stack.reason.as_deref().unwrap_or("no reason given")
        ),
    }
}
