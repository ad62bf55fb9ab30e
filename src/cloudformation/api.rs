//! CloudFormation's query API: form parameters read by AWS's model into JSON, answers written
//! by the model as XML, errors as `<ErrorResponse>`. Stack operations are recorded here and run
//! by `engine` in the background, as CloudFormation answers before its stacks are done.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::engine::Kind;
use super::stacks::{ChangeSet, ResourceChange, Stack, StackChange};
use super::template::Template;
use super::{CloudFormation, MAX_STACKS};
use crate::aws::model::ServiceModel;
use crate::aws::query::{self, Params, QueryError};
use crate::aws::shapes::Shapes;
use crate::aws::RequestContext;

const MODEL_TEXT: &str = include_str!("../../models/cloudformation-2010-05-15.json");
static MODEL: LazyLock<ServiceModel> = LazyLock::new(|| ServiceModel::parse(MODEL_TEXT));
static SHAPES: LazyLock<Shapes> = LazyLock::new(|| Shapes::parse(MODEL_TEXT));
const NAMESPACE: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// The operations served.
pub const SERVED: &[&str] = &[
    "ValidateTemplate",
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "DescribeStacks",
    "ListStacks",
    "DescribeStackEvents",
    "DescribeStackResource",
    "DescribeStackResources",
    "ListStackResources",
    "GetTemplate",
    "GetTemplateSummary",
    "CreateChangeSet",
    "DescribeChangeSet",
    "ExecuteChangeSet",
    "DeleteChangeSet",
    "ListChangeSets",
    "ListExports",
    "ListImports",
];

/// Whether a query `Action` is one of CloudFormation's (for unsigned requests).
pub fn is_action(action: &str) -> bool {
    MODEL.operations().iter().any(|o| o == action)
}

fn validation(message: impl Into<String>) -> QueryError {
    QueryError::new(400, "ValidationError", message)
}

fn missing(name: &str) -> QueryError {
    validation(format!("Stack with id {name} does not exist"))
}

/// Serves one CloudFormation request.
pub async fn handle(
    cf: &Arc<CloudFormation>,
    ctx: &RequestContext,
    params: &Params,
) -> HttpResponse {
    let action = params.get("Action").cloned().unwrap_or_default();
    match serve(cf, ctx, &action, params).await {
        Ok(output) => {
            // An operation with an output shape answers its Result element even when empty:
            // the SDKs look for it.
            let body = match SHAPES.output(&action) {
                Some(shape) => format!(
                    "<{action}Result>{}</{action}Result>",
                    SHAPES.to_xml(shape, &output)
                ),
                None => String::new(),
            };
            HttpResponse::Ok()
                .content_type("text/xml")
                .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
                .body(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"{NAMESPACE}\">{body}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                    ctx.request_id
                ))
        }
        Err(e) => {
            if e.status >= 500 {
                log::error!("CloudFormation {action}: {}", e.message);
            }
            query::error(NAMESPACE, &e, ctx)
        }
    }
}

async fn serve(
    cf: &Arc<CloudFormation>,
    ctx: &RequestContext,
    action: &str,
    params: &Params,
) -> Result<Value, QueryError> {
    if !is_action(action) {
        return Err(QueryError::new(
            400,
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        ));
    }
    if !SERVED.contains(&action) {
        return Err(QueryError::new(
            501,
            "NotImplemented",
            format!("CloudFormation {action} is not served by codepipeline-local"),
        ));
    }
    let mut form = params.clone();
    form.remove("Action");
    form.remove("Version");
    let input = match SHAPES.input(action) {
        Some(shape) => SHAPES.from_query(shape, &form).map_err(validation)?,
        None => json!({}),
    };
    operate(cf, ctx, action, &input).await
}

/// One operation with its input in AWS's JSON shape: what a request asks once its form is
/// read, and what the CloudFormation deploy action asks in-process.
pub async fn operate(
    cf: &Arc<CloudFormation>,
    ctx: &RequestContext,
    action: &str,
    input: &Value,
) -> Result<Value, QueryError> {
    MODEL
        .validate_input(action, input)
        .map_err(|e| validation(e.message))?;
    let input = input.clone();
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().map(str::to_string);
    match action {
        "ValidateTemplate" => {
            let body = template_text(cf, ctx, &input).await?;
            let template = Template::parse(&body).map_err(validation)?;
            let mut out = summary(&template);
            if let Some(map) = out.as_object_mut() {
                map.remove("ResourceTypes");
                map.remove("Version");
            }
            if let Some(parameters) = out["Parameters"].as_array_mut() {
                for p in parameters {
                    if let Some(map) = p.as_object_mut() {
                        map.remove("ParameterType");
                        map.remove("ParameterConstraints");
                    }
                }
            }
            Ok(out)
        }
        "GetTemplateSummary" => {
            let body = match text("StackName") {
                Some(name) => find(cf, account, region, &name)
                    .and_then(|s| s.template)
                    .ok_or_else(|| missing(&name))?,
                None => template_text(cf, ctx, &input).await?,
            };
            let template = Template::parse(&body).map_err(validation)?;
            Ok(summary(&template))
        }
        "CreateStack" => {
            let name = text("StackName").unwrap_or_default();
            check_stack_name(&name)?;
            let body = template_text(cf, ctx, &input).await?;
            let template = Template::parse(&body).map_err(validation)?;
            let capabilities = strings(&input["Capabilities"]);
            check_capabilities(&template, &capabilities)?;
            let given = parameters(&input, None)?;
            let id = stack_id(account, region, &name);
            cf.values(ctx, &template, &name, &id, &given)
                .await
                .map_err(validation)?;
            let stack = new_stack(&id, &name, "CREATE_IN_PROGRESS", &input);
            let changes = deploying(
                &name,
                &body,
                &template,
                given,
                capabilities,
                "CREATE_IN_PROGRESS",
            );
            let created = stack.clone();
            cf.stacks
                .record(account, region, move |r| {
                    if r.live.contains_key(&created.name) {
                        return Err(QueryError::new(
                            400,
                            "AlreadyExistsException",
                            format!("Stack [{}] already exists", created.name),
                        ));
                    }
                    if r.live.len() >= MAX_STACKS {
                        return Err(QueryError::new(
                            400,
                            "LimitExceededException",
                            format!(
                                "Limit on the number of stacks ({MAX_STACKS}) has been exceeded"
                            ),
                        ));
                    }
                    let mut all = vec![StackChange::Created(Box::new(created))];
                    all.extend(changes);
                    Ok(all)
                })
                .await
                .map_err(recorded)?;
            spawn_deploy(cf, account, region, &name, Kind::Create).await;
            Ok(json!({ "StackId": id }))
        }
        "UpdateStack" => {
            let name = text("StackName").unwrap_or_default();
            let stack = find_live(cf, account, region, &name)?;
            check_updatable(&stack)?;
            let body = match input["UsePreviousTemplate"].as_bool() {
                Some(true) => stack.template.clone().unwrap_or_default(),
                _ => template_text(cf, ctx, &input).await?,
            };
            let template = Template::parse(&body).map_err(validation)?;
            let capabilities = strings(&input["Capabilities"]);
            check_capabilities(&template, &capabilities)?;
            let given = parameters(&input, Some(&stack))?;
            cf.values(ctx, &template, &stack.name, &stack.id, &given)
                .await
                .map_err(validation)?;
            if stack.template.as_deref() == Some(body.as_str()) && stack.parameters == given {
                return Err(validation("No updates are to be performed."));
            }
            let changes = deploying(
                &stack.name,
                &body,
                &template,
                given,
                capabilities,
                "UPDATE_IN_PROGRESS",
            );
            record(cf, account, region, changes).await?;
            spawn_deploy(cf, account, region, &stack.name, Kind::Update).await;
            Ok(json!({ "StackId": stack.id }))
        }
        "DeleteStack" => {
            let name = text("StackName").unwrap_or_default();
            let Some(stack) = find(cf, account, region, &name).filter(|s| s.deleted.is_none())
            else {
                // Deleting a stack that is not there succeeds, as on AWS.
                return Ok(json!({}));
            };
            if stack.status == "DELETE_IN_PROGRESS" {
                return Ok(json!({}));
            }
            if stack.status.ends_with("_IN_PROGRESS") && stack.status != "REVIEW_IN_PROGRESS" {
                return Err(validation(format!(
                    "Stack [{}] cannot be deleted while in status {}",
                    stack.name, stack.status
                )));
            }
            // A stack whose export another stack imports stays as it is; its events say why.
            let importers = cf.importers(account, region);
            let in_use = stack.outputs.iter().find_map(|o| {
                let name = o.export.as_ref()?;
                let user = importers.get(name)?.iter().find(|u| **u != stack.name)?;
                Some(format!(
                    "Export {name} cannot be deleted as it is in use by {user}"
                ))
            });
            if let Some(reason) = in_use {
                let same = status_change(&stack.name, &stack.status, Some(reason));
                record(cf, account, region, vec![same]).await?;
                return Ok(json!({}));
            }
            record(
                cf,
                account,
                region,
                vec![status_change(
                    &stack.name,
                    "DELETE_IN_PROGRESS",
                    Some("User Initiated".into()),
                )],
            )
            .await?;
            let (cf, account, region, name) = (
                cf.clone(),
                account.to_string(),
                region.to_string(),
                stack.name.clone(),
            );
            let within = cf.answer_within();
            run_briefly(
                within,
                async move { cf.delete(account, region, name).await },
            )
            .await;
            Ok(json!({}))
        }
        "DescribeStacks" => {
            let stacks: Vec<Stack> = match text("StackName") {
                Some(name) => vec![find(cf, account, region, &name).ok_or_else(|| missing(&name))?],
                None => cf
                    .stacks
                    .read(account, region, |r| r.live.values().cloned().collect()),
            };
            Ok(json!({ "Stacks": stacks.iter().map(describe).collect::<Vec<_>>() }))
        }
        "ListStacks" => {
            let filter = strings(&input["StackStatusFilter"]);
            let all: Vec<Stack> = cf.stacks.read(account, region, |r| {
                r.live
                    .values()
                    .chain(r.deleted.iter().rev())
                    .cloned()
                    .collect()
            });
            let summaries: Vec<Value> = all
                .iter()
                .filter(|s| filter.is_empty() || filter.contains(&s.status))
                .map(|s| {
                    let mut out = json!({
                        "StackId": s.id, "StackName": s.name, "CreationTime": s.created,
                        "StackStatus": s.status,
                    });
                    set(&mut out, "TemplateDescription", s.description.clone());
                    set(&mut out, "StackStatusReason", s.reason.clone());
                    set(&mut out, "LastUpdatedTime", s.updated);
                    set(&mut out, "DeletionTime", s.deleted);
                    out
                })
                .collect();
            Ok(json!({ "StackSummaries": summaries }))
        }
        "DescribeStackEvents" => {
            let name = text("StackName").unwrap_or_default();
            let stack = find(cf, account, region, &name).ok_or_else(|| missing(&name))?;
            let events: Vec<Value> = stack
                .events
                .iter()
                .rev()
                .map(|e| {
                    let mut out = json!({
                        "StackId": stack.id, "EventId": e.id, "StackName": stack.name,
                        "LogicalResourceId": e.logical, "ResourceType": e.kind,
                        "Timestamp": e.at, "ResourceStatus": e.status,
                    });
                    set(&mut out, "PhysicalResourceId", e.physical_id.clone());
                    set(&mut out, "ResourceStatusReason", e.reason.clone());
                    out
                })
                .collect();
            Ok(json!({ "StackEvents": events }))
        }
        "DescribeStackResource" | "DescribeStackResources" | "ListStackResources" => {
            let stack = match (text("StackName"), text("PhysicalResourceId")) {
                (Some(name), _) => {
                    find(cf, account, region, &name).ok_or_else(|| missing(&name))?
                }
                (None, Some(physical)) => cf
                    .stacks
                    .read(account, region, |r| {
                        r.live
                            .values()
                            .find(|s| {
                                s.resources
                                    .values()
                                    .any(|x| x.physical_id.as_deref() == Some(physical.as_str()))
                            })
                            .cloned()
                    })
                    .ok_or_else(|| validation(format!("Stack for {physical} does not exist")))?,
                (None, None) => {
                    return Err(validation("StackName or PhysicalResourceId must be given"))
                }
            };
            let logical = text("LogicalResourceId");
            let resources: Vec<(&String, &super::stacks::Resource)> = stack
                .resources
                .iter()
                .filter(|(l, _)| logical.as_ref().is_none_or(|want| want == *l))
                .collect();
            let row = |(l, r): &(&String, &super::stacks::Resource), time_key: &str| {
                let mut out = json!({
                    "StackName": stack.name, "StackId": stack.id, "LogicalResourceId": l,
                    "ResourceType": r.kind, "ResourceStatus": r.status,
                });
                out[time_key] = r.updated.into();
                set(&mut out, "PhysicalResourceId", r.physical_id.clone());
                set(&mut out, "ResourceStatusReason", r.reason.clone());
                out
            };
            match action {
                "DescribeStackResource" => {
                    let logical = logical.unwrap_or_default();
                    let one = resources.first().ok_or_else(|| {
                        validation(format!(
                            "Resource {logical} does not exist for stack {}",
                            stack.name
                        ))
                    })?;
                    Ok(json!({ "StackResourceDetail": row(one, "LastUpdatedTimestamp") }))
                }
                "DescribeStackResources" => Ok(json!({
                    "StackResources": resources.iter().map(|r| row(r, "Timestamp")).collect::<Vec<_>>()
                })),
                _ => Ok(json!({
                    "StackResourceSummaries": resources
                        .iter()
                        .map(|r| {
                            let mut out = row(r, "LastUpdatedTimestamp");
                            if let Some(m) = out.as_object_mut() {
                                m.remove("StackName");
                                m.remove("StackId");
                            }
                            out
                        })
                        .collect::<Vec<_>>()
                })),
            }
        }
        "GetTemplate" => {
            let name = text("StackName").unwrap_or_default();
            let stack = find(cf, account, region, &name).ok_or_else(|| missing(&name))?;
            let body = match text("ChangeSetName") {
                Some(cs) => change_set(&stack, &cs)?.template.clone(),
                None => stack.template.clone().unwrap_or_default(),
            };
            Ok(json!({"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]}))
        }
        "CreateChangeSet" => create_change_set(cf, ctx, &input).await,
        "DescribeChangeSet" => {
            let (stack, cs) = change_set_of(cf, account, region, &input)?;
            let mut out = json!({
                "ChangeSetName": cs.name, "ChangeSetId": cs.id, "StackId": stack.id,
                "StackName": stack.name, "CreationTime": cs.created,
                "ExecutionStatus": cs.execution_status, "Status": cs.status,
                "Parameters": shown_parameters(&cs.parameters, &stack.no_echo),
                "Capabilities": cs.capabilities, "NotificationARNs": [],
                "Changes": cs.changes.iter().map(|c| {
                    let mut rc = json!({"Action": c.action, "LogicalResourceId": c.logical, "ResourceType": c.kind, "Scope": [], "Details": []});
                    set(&mut rc, "PhysicalResourceId", c.physical_id.clone());
                    set(&mut rc, "Replacement", c.replacement.clone());
                    json!({"Type": "Resource", "ResourceChange": rc})
                }).collect::<Vec<_>>(),
            });
            set(&mut out, "StatusReason", cs.reason.clone());
            set(&mut out, "Description", cs.description.clone());
            Ok(out)
        }
        "ExecuteChangeSet" => {
            let (stack, cs) = change_set_of(cf, account, region, &input)?;
            if cs.execution_status != "AVAILABLE" {
                return Err(QueryError::new(
                    400,
                    "InvalidChangeSetStatus",
                    format!(
                        "ChangeSet [{}] cannot be executed in its current execution status of [{}]",
                        cs.id, cs.execution_status
                    ),
                ));
            }
            let template = Template::parse(&cs.template).map_err(validation)?;
            let (going, kind) = if stack.status == "REVIEW_IN_PROGRESS" {
                ("CREATE_IN_PROGRESS", Kind::Create)
            } else {
                check_updatable(&stack)?;
                ("UPDATE_IN_PROGRESS", Kind::Update)
            };
            let mut changes = vec![StackChange::ChangeSetsDeleted {
                stack: stack.name.clone(),
                names: Vec::new(),
            }];
            changes.extend(deploying(
                &stack.name,
                &cs.template,
                &template,
                cs.parameters.clone(),
                cs.capabilities.clone(),
                going,
            ));
            record(cf, account, region, changes).await?;
            spawn_deploy(cf, account, region, &stack.name, kind).await;
            Ok(json!({}))
        }
        "DeleteChangeSet" => {
            // Deleting a change set a stack does not have succeeds, as on AWS (the CDK deletes
            // its change set's name before it makes one).
            let named_stack = input["StackName"]
                .as_str()
                .and_then(|n| find_live(cf, account, region, n).ok());
            let name = input["ChangeSetName"].as_str().unwrap_or_default();
            if named_stack.is_some_and(|s| {
                !s.change_sets
                    .values()
                    .any(|c| c.name == name || c.id == name)
            }) {
                return Ok(json!({}));
            }
            let (stack, cs) = change_set_of(cf, account, region, &input)?;
            record(
                cf,
                account,
                region,
                vec![StackChange::ChangeSetsDeleted {
                    stack: stack.name.clone(),
                    names: vec![cs.name],
                }],
            )
            .await?;
            Ok(json!({}))
        }
        "ListChangeSets" => {
            let name = text("StackName").unwrap_or_default();
            let stack = find(cf, account, region, &name).ok_or_else(|| missing(&name))?;
            let summaries: Vec<Value> = stack
                .change_sets
                .values()
                .map(|cs| {
                    let mut out = json!({
                        "StackId": stack.id, "StackName": stack.name, "ChangeSetId": cs.id,
                        "ChangeSetName": cs.name, "ExecutionStatus": cs.execution_status,
                        "Status": cs.status, "CreationTime": cs.created,
                    });
                    set(&mut out, "StatusReason", cs.reason.clone());
                    set(&mut out, "Description", cs.description.clone());
                    out
                })
                .collect();
            Ok(json!({ "Summaries": summaries }))
        }
        "ListExports" => {
            let exports: Vec<Value> = cf
                .exports(account, region)
                .into_iter()
                .map(|(name, (value, stack))| json!({"ExportingStackId": stack, "Name": name, "Value": value}))
                .collect();
            Ok(json!({ "Exports": exports }))
        }
        "ListImports" => {
            let name = text("ExportName").unwrap_or_default();
            let users = cf
                .importers(account, region)
                .remove(&name)
                .unwrap_or_default();
            if users.is_empty() {
                return Err(validation(format!(
                    "Export '{name}' is not imported by any stack."
                )));
            }
            Ok(json!({ "Imports": users }))
        }
        other => Err(QueryError::new(
            501,
            "NotImplemented",
            format!("CloudFormation {other} is not served by codepipeline-local"),
        )),
    }
}

fn set<T: Into<Value>>(out: &mut Value, key: &str, value: Option<T>) {
    if let Some(v) = value {
        out[key] = v.into();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn recorded(e: crate::regional::RegionalFailure<QueryError>) -> QueryError {
    match e {
        crate::regional::RegionalFailure::Refused(e) => e,
        crate::regional::RegionalFailure::Store(e) => {
            QueryError::new(500, "InternalFailure", e.to_string())
        }
    }
}

async fn record(
    cf: &CloudFormation,
    account: &str,
    region: &str,
    changes: Vec<StackChange>,
) -> Result<(), QueryError> {
    cf.stacks
        .record(account, region, |_| Ok::<_, QueryError>(changes))
        .await
        .map(drop)
        .map_err(recorded)
}

/// Runs `operation` in the background; resolves when it ends or after `within`: a short one is
/// done by then, so that the first look of a client's waiter (which then sleeps 5 to 30 s)
/// finds it done; a longer one goes on in the background.
async fn run_briefly(
    within: std::time::Duration,
    operation: impl std::future::Future<Output = ()> + 'static,
) {
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    actix_rt::spawn(async move {
        operation.await;
        let _ = done.send(());
    });
    let _ = tokio::time::timeout(within, ended).await;
}

async fn spawn_deploy(
    cf: &Arc<CloudFormation>,
    account: &str,
    region: &str,
    name: &str,
    kind: Kind,
) {
    let (cf, account, region, name) = (
        cf.clone(),
        account.to_string(),
        region.to_string(),
        name.to_string(),
    );
    let within = cf.answer_within();
    run_briefly(within, async move {
        cf.deploy(account, region, name, kind).await
    })
    .await;
}

fn stack_id(account: &str, region: &str, name: &str) -> String {
    format!(
        "arn:aws:cloudformation:{region}:{account}:stack/{name}/{}",
        uuid::Uuid::new_v4()
    )
}

fn check_stack_name(name: &str) -> Result<(), QueryError> {
    let ok = name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )))
    }
}

fn find(cf: &CloudFormation, account: &str, region: &str, name: &str) -> Option<Stack> {
    cf.stacks.read(account, region, |r| r.find(name).cloned())
}

fn find_live(
    cf: &CloudFormation,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Stack, QueryError> {
    find(cf, account, region, name)
        .filter(|s| s.deleted.is_none())
        .ok_or_else(|| missing(name))
}

fn check_updatable(stack: &Stack) -> Result<(), QueryError> {
    const UPDATABLE: &[&str] = &[
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    ];
    if UPDATABLE.contains(&stack.status.as_str()) {
        Ok(())
    } else {
        Err(validation(format!(
            "Stack:{} is in {} state and can not be updated.",
            stack.id, stack.status
        )))
    }
}

/// IAM resources need `CAPABILITY_IAM`, named ones `CAPABILITY_NAMED_IAM`, as on AWS.
fn check_capabilities(template: &Template, given: &[String]) -> Result<(), QueryError> {
    let (needed, reason) = required_capabilities(template);
    let Some(needed) = needed else { return Ok(()) };
    let enough = given
        .iter()
        .any(|g| g == needed || g == "CAPABILITY_NAMED_IAM");
    if enough {
        return Ok(());
    }
    let _ = reason;
    Err(QueryError::new(
        400,
        "InsufficientCapabilitiesException",
        format!("Requires capabilities : [{needed}]"),
    ))
}

fn required_capabilities(template: &Template) -> (Option<&'static str>, String) {
    let iam: Vec<(&String, &Value)> = template
        .resources()
        .iter()
        .filter(|(_, r)| {
            r["Type"]
                .as_str()
                .is_some_and(|t| t.starts_with("AWS::IAM::"))
        })
        .collect();
    if iam.is_empty() {
        return (None, String::new());
    }
    let named = iam.iter().any(|(_, r)| {
        [
            "RoleName",
            "ManagedPolicyName",
            "UserName",
            "GroupName",
            "InstanceProfileName",
        ]
        .iter()
        .any(|k| r["Properties"].get(*k).is_some())
    });
    let names: Vec<&str> = iam.iter().map(|(n, _)| n.as_str()).collect();
    let reason = format!(
        "The following resource(s) require capabilities: [{}]",
        names.join(", ")
    );
    (
        Some(if named {
            "CAPABILITY_NAMED_IAM"
        } else {
            "CAPABILITY_IAM"
        }),
        reason,
    )
}

/// A template's parameters and what it needs, as GetTemplateSummary says them.
fn summary(template: &Template) -> Value {
    let parameters: Vec<Value> = template
        .parameters()
        .iter()
        .map(|(k, p)| {
            let mut out = json!({
                "ParameterKey": k,
                "ParameterType": p["Type"],
                "NoEcho": p["NoEcho"].as_bool().or(p["NoEcho"].as_str().map(|s| s == "true")).unwrap_or(false),
            });
            if let Some(d) = p.get("Default") {
                out["DefaultValue"] = match d {
                    Value::String(s) => s.clone().into(),
                    Value::Array(items) => items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect::<Vec<_>>().join(",").into(),
                    other => other.to_string().into(),
                };
            }
            set(&mut out, "Description", p["Description"].as_str());
            if let Some(allowed) = p["AllowedValues"].as_array() {
                out["ParameterConstraints"] = json!({"AllowedValues": allowed.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>()});
            }
            out
        })
        .collect();
    let mut types: Vec<String> = template
        .resources()
        .values()
        .filter_map(|r| r["Type"].as_str().map(str::to_string))
        .collect();
    types.sort();
    types.dedup();
    let mut out = json!({"Parameters": parameters, "ResourceTypes": types, "Version": "2010-09-09", "DeclaredTransforms": []});
    set(&mut out, "Description", template.description());
    let (needed, reason) = required_capabilities(template);
    if let Some(needed) = needed {
        out["Capabilities"] = json!([needed]);
        out["CapabilitiesReason"] = reason.into();
    }
    out
}

/// The parameter values a request gives, `UsePreviousValue` ones from `stack`.
fn parameters(
    input: &Value,
    stack: Option<&Stack>,
) -> Result<BTreeMap<String, String>, QueryError> {
    let mut out = BTreeMap::new();
    for p in input["Parameters"].as_array().into_iter().flatten() {
        let key = p["ParameterKey"].as_str().unwrap_or_default().to_string();
        let value = if p["UsePreviousValue"].as_bool() == Some(true) {
            stack
                .and_then(|s| s.parameters.get(&key).cloned())
                .ok_or_else(|| validation(format!("Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template")))?
        } else {
            p["ParameterValue"].as_str().unwrap_or_default().to_string()
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn shown_parameters(values: &BTreeMap<String, String>, no_echo: &[String]) -> Vec<Value> {
    values
        .iter()
        .map(|(k, v)| {
            let shown = if no_echo.contains(k) {
                "****"
            } else {
                v.as_str()
            };
            json!({"ParameterKey": k, "ParameterValue": shown})
        })
        .collect()
}

fn new_stack(id: &str, name: &str, status: &str, input: &Value) -> Stack {
    Stack {
        id: id.to_string(),
        name: name.to_string(),
        status: status.to_string(),
        reason: None,
        template: None,
        description: None,
        parameters: BTreeMap::new(),
        previous: None,
        before_update: None,
        no_echo: Vec::new(),
        capabilities: Vec::new(),
        outputs: Vec::new(),
        imports: Vec::new(),
        tags: input["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["Key"].as_str()?.to_string(),
                    t["Value"].as_str()?.to_string(),
                ))
            })
            .collect(),
        disable_rollback: input["DisableRollback"].as_bool().unwrap_or(false)
            || input["OnFailure"].as_str() == Some("DO_NOTHING"),
        resources: BTreeMap::new(),
        change_sets: BTreeMap::new(),
        events: Default::default(),
        created: crate::aws::now_epoch(),
        updated: None,
        deleted: None,
    }
}

fn status_change(stack: &str, status: &str, reason: Option<String>) -> StackChange {
    StackChange::Status {
        stack: stack.to_string(),
        status: status.to_string(),
        reason,
        event: uuid::Uuid::new_v4().to_string(),
        at: crate::aws::now_epoch(),
    }
}

fn deploying(
    stack: &str,
    body: &str,
    template: &Template,
    parameters: BTreeMap<String, String>,
    capabilities: Vec<String>,
    status: &str,
) -> Vec<StackChange> {
    let no_echo = template
        .parameters()
        .iter()
        .filter(|(_, p)| {
            p["NoEcho"].as_bool() == Some(true) || p["NoEcho"].as_str() == Some("true")
        })
        .map(|(k, _)| k.clone())
        .collect();
    // Parameters not given take their defaults: recorded as given, so that a later update
    // compares like with like.
    let mut parameters = parameters;
    for (k, p) in template.parameters() {
        if !parameters.contains_key(k) {
            if let Some(d) = p.get("Default") {
                let text = match d {
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
                parameters.insert(k.clone(), text);
            }
        }
    }
    vec![
        StackChange::Deploying {
            stack: stack.to_string(),
            template: body.to_string(),
            description: template.description().map(str::to_string),
            parameters,
            no_echo,
            capabilities,
        },
        status_change(stack, status, Some("User Initiated".into())),
    ]
}

fn describe(s: &Stack) -> Value {
    let mut out = json!({
        "StackId": s.id,
        "StackName": s.name,
        "CreationTime": s.created,
        "StackStatus": s.status,
        "DisableRollback": s.disable_rollback,
        "NotificationARNs": [],
        "Capabilities": s.capabilities,
        "Parameters": shown_parameters(&s.parameters, &s.no_echo),
        "Outputs": s.outputs.iter().map(|o| {
            let mut out = json!({"OutputKey": o.key, "OutputValue": o.value});
            set(&mut out, "Description", o.description.clone());
            set(&mut out, "ExportName", o.export.clone());
            out
        }).collect::<Vec<_>>(),
        "Tags": s.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "EnableTerminationProtection": false,
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    });
    set(&mut out, "Description", s.description.clone());
    set(&mut out, "StackStatusReason", s.reason.clone());
    set(&mut out, "LastUpdatedTime", s.updated);
    set(&mut out, "DeletionTime", s.deleted);
    out
}

fn change_set<'a>(stack: &'a Stack, name: &str) -> Result<&'a ChangeSet, QueryError> {
    stack
        .change_sets
        .values()
        .find(|c| c.name == name || c.id == name)
        .ok_or_else(|| {
            QueryError::new(
                404,
                "ChangeSetNotFound",
                format!("ChangeSet [{name}] does not exist"),
            )
        })
}

fn change_set_of(
    cf: &CloudFormation,
    account: &str,
    region: &str,
    input: &Value,
) -> Result<(Stack, ChangeSet), QueryError> {
    let name = input["ChangeSetName"].as_str().unwrap_or_default();
    let stack = match input["StackName"].as_str() {
        Some(s) => find_live(cf, account, region, s)?,
        // A change set's ARN names its stack.
        None => cf
            .stacks
            .read(account, region, |r| {
                r.live
                    .values()
                    .find(|s| s.change_sets.values().any(|c| c.id == name))
                    .cloned()
            })
            .ok_or_else(|| {
                QueryError::new(
                    404,
                    "ChangeSetNotFound",
                    format!("ChangeSet [{name}] does not exist"),
                )
            })?,
    };
    let cs = change_set(&stack, name)?.clone();
    Ok((stack, cs))
}

async fn create_change_set(
    cf: &Arc<CloudFormation>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, QueryError> {
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let name = input["StackName"].as_str().unwrap_or_default().to_string();
    let cs_name = input["ChangeSetName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = input["ChangeSetType"]
        .as_str()
        .unwrap_or("UPDATE")
        .to_string();
    if !matches!(kind.as_str(), "CREATE" | "UPDATE") {
        return Err(validation(format!(
            "ChangeSetType {kind} is not served by codepipeline-local (CREATE and UPDATE are)"
        )));
    }
    let existing = find(cf, account, region, &name).filter(|s| s.deleted.is_none());
    match (&existing, kind.as_str()) {
        (Some(s), "CREATE") if s.status != "REVIEW_IN_PROGRESS" => {
            return Err(QueryError::new(400, "AlreadyExistsException", format!("Stack [{name}] already exists and cannot be created again with the changeSet [{cs_name}].")));
        }
        (None, "UPDATE") => return Err(missing(&name)),
        (Some(s), "UPDATE") => check_updatable(s)?,
        _ => {}
    }
    check_stack_name(&name)?;
    let body = match input["UsePreviousTemplate"].as_bool() {
        Some(true) => existing
            .as_ref()
            .and_then(|s| s.template.clone())
            .ok_or_else(|| validation("There is no previous template"))?,
        _ => template_text(cf, ctx, input).await?,
    };
    let template = Template::parse(&body).map_err(validation)?;
    let capabilities = strings(&input["Capabilities"]);
    check_capabilities(&template, &capabilities)?;
    let given = parameters(input, existing.as_ref())?;
    let stack_id = existing
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_else(|| stack_id(account, region, &name));
    let values = cf
        .values(ctx, &template, &name, &stack_id, &given)
        .await
        .map_err(validation)?;
    let changes = cf.changes(ctx, &name, &stack_id, &template, &values, existing.as_ref());
    let mut recorded_params = given.clone();
    for (k, p) in template.parameters() {
        if let (false, Some(d)) = (recorded_params.contains_key(k), p.get("Default")) {
            recorded_params.insert(
                k.clone(),
                d.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| d.to_string()),
            );
        }
    }
    let unchanged = changes.is_empty()
        && existing
            .as_ref()
            .is_some_and(|s| s.template.is_some() && s.parameters == recorded_params);
    let id = format!(
        "arn:aws:cloudformation:{region}:{account}:changeSet/{cs_name}/{}",
        uuid::Uuid::new_v4()
    );
    let cs = ChangeSet {
        id: id.clone(),
        name: cs_name.clone(),
        kind: kind.clone(),
        status: if unchanged { "FAILED".into() } else { "CREATE_COMPLETE".into() },
        execution_status: if unchanged { "UNAVAILABLE".into() } else { "AVAILABLE".into() },
        reason: unchanged.then(|| "The submitted information didn't contain changes. Submit different information to create a change set.".to_string()),
        description: input["Description"].as_str().map(str::to_string),
        template: body,
        parameters: recorded_params,
        capabilities,
        changes,
        created: crate::aws::now_epoch(),
    };
    let review = existing
        .is_none()
        .then(|| new_stack(&stack_id, &name, "REVIEW_IN_PROGRESS", input));
    let stack_name = name.clone();
    cf.stacks
        .record(account, region, move |r| {
            let mut all = Vec::new();
            if let Some(stack) = review {
                if r.live.contains_key(&stack.name) {
                    return Err(QueryError::new(
                        400,
                        "AlreadyExistsException",
                        format!("Stack [{}] already exists", stack.name),
                    ));
                }
                all.push(StackChange::Created(Box::new(stack)));
                all.push(status_change(
                    &stack_name,
                    "REVIEW_IN_PROGRESS",
                    Some("User Initiated".into()),
                ));
            } else if r
                .live
                .get(&stack_name)
                .is_some_and(|s| s.change_sets.contains_key(&cs.name))
            {
                return Err(QueryError::new(
                    400,
                    "AlreadyExistsException",
                    format!("ChangeSet {} already exists", cs.name),
                ));
            }
            all.push(StackChange::ChangeSet {
                stack: stack_name,
                change_set: Box::new(cs),
            });
            Ok(all)
        })
        .await
        .map_err(recorded)?;
    Ok(json!({"Id": id, "StackId": stack_id}))
}

/// A template's text: `TemplateBody`, or the object `TemplateURL` names in the embedded S3.
async fn template_text(
    cf: &CloudFormation,
    ctx: &RequestContext,
    input: &Value,
) -> Result<String, QueryError> {
    if let Some(body) = input["TemplateBody"].as_str() {
        if body.len() > super::template::MAX_BODY_BYTES {
            return Err(validation(format!(
                "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to {}", super::template::MAX_BODY_BYTES
            )));
        }
        return Ok(body.to_string());
    }
    let Some(url) = input["TemplateURL"].as_str() else {
        return Err(validation(
            "Either Template URL or Template Body must be specified.",
        ));
    };
    let (bucket, key) = s3_location(url)
        .ok_or_else(|| validation(format!("TemplateURL must be a supported URL ({url})")))?;
    let object = cf
        .call(
            ctx,
            "s3",
            "GetObject",
            json!({"Bucket": bucket, "Key": key}),
        )
        .await
        .map_err(|e| validation(format!("S3 error: {}", e.message)))?;
    let body = object["Body"].as_str().unwrap_or_default().to_string();
    if body.len() > super::template::MAX_URL_BODY_BYTES {
        return Err(validation("Template may not exceed 1000000 bytes in size."));
    }
    Ok(body)
}

/// The bucket and key of an S3 URL in any of its forms: `https://BUCKET.s3.REGION.amazonaws.com/KEY`,
/// `https://BUCKET.s3.amazonaws.com/KEY`, `https://s3.REGION.amazonaws.com/BUCKET/KEY`,
/// `https://s3.amazonaws.com/BUCKET/KEY`, `http://HOST:PORT/BUCKET/KEY` (this endpoint).
pub fn s3_location(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/')?;
    let path = path.split('?').next().unwrap_or(path);
    let decode = |s: &str| {
        crate::aws::query::parse_form(&format!("x={s}"))
            .remove("x")
            .unwrap_or_default()
    };
    let host = host.split(':').next().unwrap_or(host);
    let virtual_bucket = host
        .strip_suffix(".amazonaws.com")
        .and_then(|h| h.split_once(".s3").map(|(bucket, _)| bucket))
        .filter(|b| !b.is_empty() && *b != "s3");
    match virtual_bucket {
        Some(bucket) => Some((bucket.to_string(), decode(path))),
        None => {
            let (bucket, key) = path.split_once('/')?;
            Some((bucket.to_string(), decode(key)))
        }
    }
}

impl CloudFormation {
    /// What deploying `template` would change in `stack` (none yet: every resource added).
    pub fn changes(
        &self,
        ctx: &RequestContext,
        name: &str,
        stack_id: &str,
        template: &Template,
        values: &super::engine::Values,
        stack: Option<&Stack>,
    ) -> Vec<ResourceChange> {
        let mut out = Vec::new();
        let current = stack.map(|s| s.resources.clone()).unwrap_or_default();
        let mut wanted = Vec::new();
        for (logical, declaration) in template.resources() {
            if let Some(c) = declaration.get("Condition").and_then(Value::as_str) {
                if !values.conditions.get(c).copied().unwrap_or(false) {
                    continue;
                }
            }
            wanted.push(logical.clone());
            let kind = declaration["Type"].as_str().unwrap_or_default().to_string();
            match current.get(logical) {
                None => out.push(ResourceChange {
                    action: "Add".into(),
                    logical: logical.clone(),
                    physical_id: None,
                    kind,
                    replacement: None,
                }),
                Some(old) if old.kind != kind => out.push(ResourceChange {
                    action: "Modify".into(),
                    logical: logical.clone(),
                    physical_id: old.physical_id.clone(),
                    kind,
                    replacement: Some("True".into()),
                }),
                Some(old) => {
                    let new = self.resolve_for_change(
                        ctx,
                        name,
                        stack_id,
                        template,
                        values,
                        &current,
                        declaration,
                    );
                    match new {
                        Some(new) if new == old.properties => {}
                        Some(new) => {
                            let replaces = super::providers::provider(&kind)
                                .is_some_and(|p| p.replaces(&old.properties, &new));
                            out.push(ResourceChange {
                                action: "Modify".into(),
                                logical: logical.clone(),
                                physical_id: old.physical_id.clone(),
                                kind,
                                replacement: Some(if replaces { "True" } else { "False" }.into()),
                            });
                        }
                        // What depends on resources still to be made can change only when it is.
                        None => out.push(ResourceChange {
                            action: "Modify".into(),
                            logical: logical.clone(),
                            physical_id: old.physical_id.clone(),
                            kind,
                            replacement: Some("Conditional".into()),
                        }),
                    }
                }
            }
        }
        for (logical, old) in &current {
            if !wanted.contains(logical) {
                out.push(ResourceChange {
                    action: "Remove".into(),
                    logical: logical.clone(),
                    physical_id: old.physical_id.clone(),
                    kind: old.kind.clone(),
                    replacement: None,
                });
            }
        }
        out
    }
}
