//! Stacks as their events build them, one stream per account and region
//! (`cloudformation:<account>:<region>`): each stack's status, template, parameters, outputs,
//! resources, change sets and events (the newest [`MAX_EVENTS`]); deleted stacks are kept by id
//! (the newest [`MAX_DELETED`]), as DescribeStacks and ListStacks show them.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eventstore::EventType;

/// How many events a stack keeps for DescribeStackEvents.
pub const MAX_EVENTS: usize = 1000;

/// How many deleted stacks a region keeps.
pub const MAX_DELETED: usize = 100;

/// A stack output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// `OutputKey`.
    pub key: String,
    /// `OutputValue`.
    pub value: String,
    /// `Description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `Export.Name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
}

/// A resource of a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Its type.
    pub kind: String,
    /// Its physical id, once made.
    #[serde(default)]
    pub physical_id: Option<String>,
    /// Its status (`CREATE_COMPLETE`, …).
    pub status: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The properties it was made with, resolved.
    #[serde(default)]
    pub properties: Value,
    /// Its attributes, for `Fn::GetAtt`.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// Its `DeletionPolicy`.
    #[serde(default)]
    pub retain: bool,
    /// When it last changed.
    pub updated: f64,
}

/// A change a change set makes to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `Add`, `Modify` or `Remove`.
    pub action: String,
    /// The resource.
    pub logical: String,
    /// Its physical id, if it exists.
    #[serde(default)]
    pub physical_id: Option<String>,
    /// Its type.
    pub kind: String,
    /// For `Modify`: `True`, `False` or `Conditional`.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// A change set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Its ARN.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `CREATE` or `UPDATE`.
    pub kind: String,
    /// `CREATE_COMPLETE`, `FAILED`, …
    pub status: String,
    /// `AVAILABLE`, `UNAVAILABLE`, `EXECUTE_COMPLETE`, …
    pub execution_status: String,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// The template it would deploy.
    pub template: String,
    /// The parameter values it would deploy.
    pub parameters: BTreeMap<String, String>,
    /// The capabilities acknowledged.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// What it changes.
    pub changes: Vec<ResourceChange>,
    /// When it was made.
    pub created: f64,
}

/// An event of a stack, as DescribeStackEvents lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its id.
    pub id: String,
    /// The resource (the stack's name for the stack itself).
    pub logical: String,
    /// The physical id.
    #[serde(default)]
    pub physical_id: Option<String>,
    /// The type (`AWS::CloudFormation::Stack` for the stack).
    pub kind: String,
    /// The status.
    pub status: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// When.
    pub at: f64,
}

/// A stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Its ARN.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The template deployed (or, before the first deployment, none).
    #[serde(default)]
    pub template: Option<String>,
    /// Its description (the template's).
    #[serde(default)]
    pub description: Option<String>,
    /// The parameter values deployed.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The template and parameters before the deployment in progress, for its rollback.
    #[serde(default)]
    pub previous: Option<(String, BTreeMap<String, String>)>,
    /// The resources as they were when the update in progress began, for its rollback (also
    /// after a stop of the server); none outside an update.
    #[serde(default)]
    pub before_update: Option<BTreeMap<String, Resource>>,
    /// Parameters shown as `****`.
    #[serde(default)]
    pub no_echo: Vec<String>,
    /// Capabilities acknowledged.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Its outputs.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// The exports its template imports (`Fn::ImportValue`), as last deployed.
    #[serde(default)]
    pub imports: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Whether a failed creation keeps what it made.
    #[serde(default)]
    pub disable_rollback: bool,
    /// Its resources, by logical id.
    #[serde(default)]
    pub resources: BTreeMap<String, Resource>,
    /// Its change sets, by name.
    #[serde(default)]
    pub change_sets: BTreeMap<String, ChangeSet>,
    /// Its events, oldest first.
    #[serde(default)]
    pub events: VecDeque<Event>,
    /// When it was made.
    pub created: f64,
    /// When it last changed (a deployment).
    #[serde(default)]
    pub updated: Option<f64>,
    /// When it was deleted.
    #[serde(default)]
    pub deleted: Option<f64>,
}

/// What happens to stacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StackChange {
    /// A stack was made (by CreateStack, or by a CREATE change set: `REVIEW_IN_PROGRESS`).
    Created(Box<Stack>),
    /// A deployment begins with this template and these parameters.
    Deploying {
        /// The stack's name.
        stack: String,
        /// The template.
        template: String,
        /// The description.
        description: Option<String>,
        /// The parameter values.
        parameters: BTreeMap<String, String>,
        /// The parameters shown as `****`.
        no_echo: Vec<String>,
        /// The capabilities.
        capabilities: Vec<String>,
    },
    /// An update's rollback put the template and parameters in force before it back.
    Restored {
        /// The stack.
        stack: String,
        /// The description of the template put back.
        description: Option<String>,
    },
    /// The stack's status changed.
    Status {
        /// The stack.
        stack: String,
        /// The status.
        status: String,
        /// Why.
        reason: Option<String>,
        /// The event's id.
        event: String,
        /// When.
        at: f64,
    },
    /// A resource's status changed.
    Resource {
        /// The stack.
        stack: String,
        /// The resource.
        logical: String,
        /// Its state now.
        resource: Box<Resource>,
        /// The event's id.
        event: String,
    },
    /// An event of a physical resource that is no longer the stack's resource: the old copy of
    /// a replaced one, deleted during the cleanup.
    Event {
        /// The stack.
        stack: String,
        /// The event.
        event: Event,
    },
    /// A resource left the stack (deleted, or replaced and the old one gone).
    ResourceGone {
        /// The stack.
        stack: String,
        /// The resource.
        logical: String,
    },
    /// The stack's outputs, and the exports it imports, when a deployment succeeded.
    Outputs {
        /// The stack.
        stack: String,
        /// The outputs.
        outputs: Vec<Output>,
        /// The exports imported.
        #[serde(default)]
        imports: Vec<String>,
    },
    /// A change set was made or changed.
    ChangeSet {
        /// The stack.
        stack: String,
        /// It.
        change_set: Box<ChangeSet>,
    },
    /// A change set was deleted (or all of them, when a deployment began).
    ChangeSetsDeleted {
        /// The stack.
        stack: String,
        /// Their names; empty: all.
        names: Vec<String>,
    },
    /// The stack was deleted (or a creation that was only reviewed was abandoned).
    Deleted {
        /// The stack.
        stack: String,
        /// When.
        at: f64,
    },
}

impl EventType for StackChange {
    fn type_name(&self) -> &'static str {
        "CloudFormationStackChange"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CloudFormationStackChange"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        StackChange::deserialize(data)
    }
}

/// A region's stacks: live ones by name, deleted ones oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionStacks {
    /// Live stacks, by name.
    pub live: BTreeMap<String, Stack>,
    /// Deleted stacks, oldest first.
    pub deleted: VecDeque<Stack>,
}

impl RegionStacks {
    /// A stack by name or id (a deleted one only by id).
    pub fn find(&self, name_or_id: &str) -> Option<&Stack> {
        self.live
            .get(name_or_id)
            .or_else(|| self.live.values().find(|s| s.id == name_or_id))
            .or_else(|| self.deleted.iter().rev().find(|s| s.id == name_or_id))
    }
}

fn push_event(stack: &mut Stack, event: Event) {
    stack.events.push_back(event);
    while stack.events.len() > MAX_EVENTS {
        stack.events.pop_front();
    }
}

/// Folds one change.
pub fn fold(region: &mut RegionStacks, change: StackChange) {
    match change {
        StackChange::Created(stack) => {
            region.live.insert(stack.name.clone(), *stack);
        }
        StackChange::Deploying {
            stack,
            template,
            description,
            parameters,
            no_echo,
            capabilities,
        } => {
            if let Some(s) = region.live.get_mut(&stack) {
                s.previous = s.template.take().map(|t| (t, s.parameters.clone()));
                s.before_update = s.previous.as_ref().map(|_| s.resources.clone());
                s.template = Some(template);
                s.description = description;
                s.parameters = parameters;
                s.no_echo = no_echo;
                s.capabilities = capabilities;
            }
        }
        StackChange::Restored { stack, description } => {
            if let Some(s) = region.live.get_mut(&stack) {
                if let Some((template, parameters)) = s.previous.take() {
                    s.template = Some(template);
                    s.parameters = parameters;
                    s.description = description;
                }
            }
        }
        StackChange::Status {
            stack,
            status,
            reason,
            event,
            at,
        } => {
            if let Some(s) = region.live.get_mut(&stack) {
                if status != "UPDATE_IN_PROGRESS" && status != "UPDATE_ROLLBACK_IN_PROGRESS" {
                    s.before_update = None;
                }
                if status.starts_with("UPDATE_") && status.ends_with("_IN_PROGRESS") {
                    s.updated = Some(at);
                }
                s.status.clone_from(&status);
                s.reason.clone_from(&reason);
                let record = Event {
                    id: event,
                    logical: s.name.clone(),
                    physical_id: Some(s.id.clone()),
                    kind: "AWS::CloudFormation::Stack".into(),
                    status,
                    reason,
                    at,
                };
                push_event(s, record);
            }
        }
        StackChange::Resource {
            stack,
            logical,
            resource,
            event,
        } => {
            if let Some(s) = region.live.get_mut(&stack) {
                let record = Event {
                    id: event,
                    logical: logical.clone(),
                    physical_id: resource.physical_id.clone(),
                    kind: resource.kind.clone(),
                    status: resource.status.clone(),
                    reason: resource.reason.clone(),
                    at: resource.updated,
                };
                push_event(s, record);
                s.resources.insert(logical, *resource);
            }
        }
        StackChange::Event { stack, event } => {
            if let Some(s) = region.live.get_mut(&stack) {
                push_event(s, event);
            }
        }
        StackChange::ResourceGone { stack, logical } => {
            if let Some(s) = region.live.get_mut(&stack) {
                s.resources.remove(&logical);
            }
        }
        StackChange::Outputs {
            stack,
            outputs,
            imports,
        } => {
            if let Some(s) = region.live.get_mut(&stack) {
                s.outputs = outputs;
                s.imports = imports;
            }
        }
        StackChange::ChangeSet { stack, change_set } => {
            if let Some(s) = region.live.get_mut(&stack) {
                s.change_sets.insert(change_set.name.clone(), *change_set);
            }
        }
        StackChange::ChangeSetsDeleted { stack, names } => {
            if let Some(s) = region.live.get_mut(&stack) {
                if names.is_empty() {
                    s.change_sets.clear();
                } else {
                    for n in names {
                        s.change_sets.remove(&n);
                    }
                }
            }
        }
        StackChange::Deleted { stack, at } => {
            if let Some(mut s) = region.live.remove(&stack) {
                s.deleted = Some(at);
                s.change_sets.clear();
                s.resources.clear();
                region.deleted.push_back(s);
                while region.deleted.len() > MAX_DELETED {
                    region.deleted.pop_front();
                }
            }
        }
    }
}
