//! The pipeline aggregate: what may happen to a pipeline declaration, decided without I/O.
//!
//! [`handle`] turns a command into events or a refusal; [`apply`] folds an event into the state
//! and cannot fail. The actor owns the I/O; the views fold the same events for reads.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::{Declaration, PipelineType};
use crate::eventstore::EventType;

/// How many tags a pipeline may carry, as on AWS.
pub const MAX_TAGS: usize = 50;

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Everything that can happen to a pipeline. Stored as the event type name plus this payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PipelineEvent {
    /// The pipeline was created (again, if an earlier one of the same name was deleted).
    Created(Created),
    /// A new declaration version replaced the current one.
    Updated(Updated),
    /// Tags were added or replaced.
    Tagged(Tagged),
    /// Tags were removed.
    Untagged(Untagged),
    /// The pipeline was deleted.
    Deleted(Deleted),
    /// A stage's inbound transition was disabled or enabled.
    Transition(Transition),
    /// Finished executions passed the history's retention and left it.
    Expired(Expired),
}

/// Payload of `PipelineExecutionsExpired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expired {
    /// The executions that left the history.
    pub expired_executions: Vec<String>,
    /// When.
    pub at: f64,
}

/// Payload of `PipelineTransitionChanged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The stage whose inbound transition changed.
    pub stage: String,
    /// Whether executions may now enter it.
    pub enabled: bool,
    /// The reason given when disabling.
    pub reason: Option<String>,
    /// When.
    pub at: f64,
}

/// Payload of `PipelineCreated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The pipeline ARN.
    pub arn: String,
    /// The declaration as accepted, defaults filled in, `version` 1 (shared with the actor's
    /// state and the executions that run it).
    pub declaration: Arc<Declaration>,
    /// Tags given at creation.
    pub tags: Vec<Tag>,
    /// Creation time, epoch seconds.
    pub at: f64,
}

/// Payload of `PipelineUpdated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Updated {
    /// The new declaration, with its new `version`.
    pub declaration: Arc<Declaration>,
    /// The new version.
    pub version: u64,
    /// Update time, epoch seconds.
    pub at: f64,
}

/// Payload of `PipelineTagged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    /// Tags added; an existing key gets the new value.
    pub tags: Vec<Tag>,
}

/// Payload of `PipelineUntagged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Untagged {
    /// Keys removed.
    pub keys: Vec<String>,
}

/// Payload of `PipelineDeleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// Deletion time, epoch seconds.
    pub at: f64,
}

impl EventType for PipelineEvent {
    fn type_name(&self) -> &'static str {
        match self {
            PipelineEvent::Created(_) => "PipelineCreated",
            PipelineEvent::Updated(_) => "PipelineUpdated",
            PipelineEvent::Tagged(_) => "PipelineTagged",
            PipelineEvent::Untagged(_) => "PipelineUntagged",
            PipelineEvent::Deleted(_) => "PipelineDeleted",
            PipelineEvent::Transition(_) => "PipelineTransitionChanged",
            PipelineEvent::Expired(_) => "PipelineExecutionsExpired",
        }
    }

    fn owns(type_name: &str) -> bool {
        matches!(
            type_name,
            "PipelineCreated"
                | "PipelineUpdated"
                | "PipelineTagged"
                | "PipelineUntagged"
                | "PipelineDeleted"
                | "PipelineTransitionChanged"
                | "PipelineExecutionsExpired"
        )
    }

    fn decode(type_name: &str, data: &serde_json::Value) -> Result<Self, serde_json::Error> {
        match type_name {
            "PipelineCreated" => Created::deserialize(data).map(PipelineEvent::Created),
            "PipelineUpdated" => Updated::deserialize(data).map(PipelineEvent::Updated),
            "PipelineTagged" => Tagged::deserialize(data).map(PipelineEvent::Tagged),
            "PipelineUntagged" => Untagged::deserialize(data).map(PipelineEvent::Untagged),
            "PipelineDeleted" => Deleted::deserialize(data).map(PipelineEvent::Deleted),
            "PipelineExecutionsExpired" => Expired::deserialize(data).map(PipelineEvent::Expired),
            _ => Transition::deserialize(data).map(PipelineEvent::Transition),
        }
    }
}

/// What the aggregate needs to decide: whether the pipeline exists, its version and tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineState {
    /// The live pipeline; `None` before creation and after deletion.
    pub live: Option<Live>,
}

/// A pipeline that exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Current declaration version.
    pub version: u64,
    /// The current declaration: what a new execution runs.
    pub declaration: Arc<Declaration>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// What a client asks of a pipeline.
#[derive(Debug, Clone)]
pub enum PipelineCommand {
    /// CreatePipeline with a checked, normalised declaration.
    Create {
        /// The pipeline ARN.
        arn: String,
        /// The declaration.
        declaration: Declaration,
        /// Tags.
        tags: Vec<Tag>,
        /// Now, epoch seconds.
        at: f64,
    },
    /// UpdatePipeline with a checked, normalised declaration.
    Update {
        /// The declaration.
        declaration: Declaration,
        /// Now, epoch seconds.
        at: f64,
    },
    /// DeletePipeline.
    Delete {
        /// Now, epoch seconds.
        at: f64,
    },
    /// TagResource.
    Tag(Vec<Tag>),
    /// UntagResource.
    Untag(Vec<String>),
    /// The history's retention: these finished executions leave it.
    Expire {
        /// The executions.
        executions: Vec<String>,
        /// Now.
        at: f64,
    },
    /// Disable/EnableStageTransition (inbound).
    SetTransition {
        /// Stage.
        stage: String,
        /// Enable or disable.
        enabled: bool,
        /// Reason (disabling).
        reason: Option<String>,
        /// Now.
        at: f64,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Create: a pipeline of that name exists.
    NameInUse,
    /// The pipeline does not exist.
    NotFound,
    /// More than [`MAX_TAGS`] tags would result.
    TooManyTags,
    /// The stage named is not in the pipeline.
    StageNotFound(String),
    /// Pipeline variables were given to a V1 pipeline.
    VariablesOnV1,
    /// A pipeline variable given at start is not declared.
    UndeclaredVariable(String),
}

/// Checks the pipeline variables given to StartPipelineExecution against the declaration: only
/// V2 pipelines take them, and only those they declare.
pub fn check_start_variables<'a>(
    declaration: &Declaration,
    given: impl IntoIterator<Item = &'a str>,
) -> Result<(), Refusal> {
    let mut given = given.into_iter().peekable();
    if given.peek().is_none() {
        return Ok(());
    }
    if declaration.pipeline_type() != PipelineType::V2 {
        return Err(Refusal::VariablesOnV1);
    }
    for name in given {
        let found = declaration
            .variables
            .iter()
            .flatten()
            .any(|v| v.name == name);
        if !found {
            return Err(Refusal::UndeclaredVariable(name.to_string()));
        }
    }
    Ok(())
}

/// Whether the declaration has a stage of that name.
pub fn has_stage(declaration: &Declaration, stage: &str) -> bool {
    declaration.stage(stage).is_some()
}

/// Decides what a command does to the state.
pub fn handle(
    state: &PipelineState,
    command: PipelineCommand,
) -> Result<Vec<PipelineEvent>, Refusal> {
    match (command, &state.live) {
        (PipelineCommand::Create { .. }, Some(_)) => Err(Refusal::NameInUse),
        (
            PipelineCommand::Create {
                arn,
                mut declaration,
                tags,
                at,
            },
            None,
        ) => {
            if merged(&[], &tags).len() > MAX_TAGS {
                return Err(Refusal::TooManyTags);
            }
            declaration.version = Some(1);
            Ok(vec![PipelineEvent::Created(Created {
                arn,
                declaration: Arc::new(declaration),
                tags,
                at,
            })])
        }
        (PipelineCommand::Delete { .. }, None) => Ok(vec![]),
        (_, None) => Err(Refusal::NotFound),
        (
            PipelineCommand::Update {
                mut declaration,
                at,
            },
            Some(live),
        ) => {
            let version = live.version + 1;
            declaration.version = Some(version);
            Ok(vec![PipelineEvent::Updated(Updated {
                declaration: Arc::new(declaration),
                version,
                at,
            })])
        }
        (PipelineCommand::Delete { at }, Some(_)) => {
            Ok(vec![PipelineEvent::Deleted(Deleted { at })])
        }
        (PipelineCommand::Tag(tags), Some(live)) => {
            if merged(&live.tags, &tags).len() > MAX_TAGS {
                return Err(Refusal::TooManyTags);
            }
            Ok(vec![PipelineEvent::Tagged(Tagged { tags })])
        }
        (PipelineCommand::Untag(keys), Some(_)) => {
            Ok(vec![PipelineEvent::Untagged(Untagged { keys })])
        }
        (PipelineCommand::Expire { executions, .. }, Some(_)) if executions.is_empty() => {
            Ok(vec![])
        }
        (PipelineCommand::Expire { executions, at }, Some(_)) => {
            Ok(vec![PipelineEvent::Expired(Expired {
                expired_executions: executions,
                at,
            })])
        }
        (
            PipelineCommand::SetTransition {
                stage,
                enabled,
                reason,
                at,
            },
            Some(live),
        ) => {
            if !has_stage(&live.declaration, &stage) {
                return Err(Refusal::StageNotFound(stage));
            }
            Ok(vec![PipelineEvent::Transition(Transition {
                stage,
                enabled,
                reason,
                at,
            })])
        }
    }
}

/// Folds one event into the state.
pub fn apply(state: &mut PipelineState, event: &PipelineEvent) {
    match event {
        PipelineEvent::Created(c) => {
            state.live = Some(Live {
                version: 1,
                declaration: c.declaration.clone(),
                tags: merged(&[], &c.tags),
            })
        }
        PipelineEvent::Deleted(_) => state.live = None,
        PipelineEvent::Updated(u) => {
            if let Some(live) = &mut state.live {
                live.version = u.version;
                live.declaration = u.declaration.clone();
            }
        }
        PipelineEvent::Tagged(t) => {
            if let Some(live) = &mut state.live {
                live.tags = merged(&live.tags, &t.tags);
            }
        }
        PipelineEvent::Untagged(u) => {
            if let Some(live) = &mut state.live {
                live.tags.retain(|t| !u.keys.contains(&t.key));
            }
        }
        PipelineEvent::Transition(_) | PipelineEvent::Expired(_) => {}
    }
}

/// `existing` with `added` applied: a key already there takes the new value, in place.
pub fn merged(existing: &[Tag], added: &[Tag]) -> Vec<Tag> {
    let mut out = existing.to_vec();
    for tag in added {
        match out.iter_mut().find(|t| t.key == tag.key) {
            Some(t) => t.value = tag.value.clone(),
            None => out.push(tag.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstore::RecordedEvent;
    use serde_json::json;

    fn decl(value: serde_json::Value) -> Declaration {
        Declaration::from_value(&value).unwrap()
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    fn create(tags: Vec<Tag>) -> PipelineCommand {
        PipelineCommand::Create {
            arn: "arn:aws:codepipeline:eu-central-1:000000000000:p".into(),
            declaration: decl(json!({"name": "p", "version": 7, "stages": []})),
            tags,
            at: 10.0,
        }
    }

    /// Given these past events, when this command: the events or the refusal.
    fn given_when(
        given: &[PipelineEvent],
        when: PipelineCommand,
    ) -> Result<Vec<PipelineEvent>, Refusal> {
        let mut state = PipelineState::default();
        given.iter().for_each(|e| apply(&mut state, e));
        handle(&state, when)
    }

    fn created() -> PipelineEvent {
        given_when(&[], create(vec![tag("a", "1")]))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn create_sets_version_1() {
        match created() {
            PipelineEvent::Created(c) => assert_eq!(c.declaration.version, Some(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_twice_is_refused() {
        assert_eq!(
            given_when(&[created()], create(vec![])),
            Err(Refusal::NameInUse)
        );
    }

    #[test]
    fn create_after_delete_starts_again() {
        let deleted = PipelineEvent::Deleted(Deleted { at: 11.0 });
        assert!(given_when(&[created(), deleted], create(vec![])).is_ok());
    }

    #[test]
    fn update_counts_versions() {
        let update = || PipelineCommand::Update {
            declaration: decl(json!({"name": "p", "version": 1, "stages": []})),
            at: 12.0,
        };
        let first = given_when(&[created()], update()).unwrap().remove(0);
        let second = given_when(&[created(), first], update()).unwrap();
        match &second[0] {
            PipelineEvent::Updated(u) => {
                assert_eq!(u.version, 3);
                assert_eq!(u.declaration.version, Some(3));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_on_a_missing_pipeline_are_refused_but_delete_is_idempotent() {
        let update = PipelineCommand::Update {
            declaration: Declaration::default(),
            at: 1.0,
        };
        assert_eq!(given_when(&[], update), Err(Refusal::NotFound));
        assert_eq!(
            given_when(&[], PipelineCommand::Tag(vec![])),
            Err(Refusal::NotFound)
        );
        assert_eq!(
            given_when(&[], PipelineCommand::Untag(vec![])),
            Err(Refusal::NotFound)
        );
        assert_eq!(
            given_when(&[], PipelineCommand::Delete { at: 1.0 }),
            Ok(vec![])
        );
    }

    #[test]
    fn transitions_name_a_declared_stage() {
        let created = PipelineEvent::Created(Created {
            arn: "a".into(),
            declaration: Arc::new(decl(
                json!({"name": "p", "stages": [{"name": "Source", "actions": []}]}),
            )),
            tags: vec![],
            at: 1.0,
        });
        let set = |stage: &str| PipelineCommand::SetTransition {
            stage: stage.into(),
            enabled: false,
            reason: None,
            at: 2.0,
        };
        assert!(given_when(std::slice::from_ref(&created), set("Source")).is_ok());
        assert_eq!(
            given_when(&[created], set("Deploy")),
            Err(Refusal::StageNotFound("Deploy".into()))
        );
    }

    #[test]
    fn start_variables_need_v2_and_a_declaration() {
        let v1 = decl(json!({"name": "p", "stages": []}));
        let v2 = decl(
            json!({"name": "p", "stages": [], "pipelineType": "V2", "variables": [{"name": "x"}]}),
        );
        assert_eq!(check_start_variables(&v1, []), Ok(()));
        assert_eq!(
            check_start_variables(&v1, ["x"]),
            Err(Refusal::VariablesOnV1)
        );
        assert_eq!(check_start_variables(&v2, ["x"]), Ok(()));
        assert_eq!(
            check_start_variables(&v2, ["x", "y"]),
            Err(Refusal::UndeclaredVariable("y".into()))
        );
    }

    #[test]
    fn tags_merge_and_are_limited() {
        let tagged = given_when(
            &[created()],
            PipelineCommand::Tag(vec![tag("a", "2"), tag("b", "3")]),
        )
        .unwrap()
        .remove(0);
        let mut state = PipelineState::default();
        apply(&mut state, &created());
        apply(&mut state, &tagged);
        assert_eq!(
            state.live.as_ref().unwrap().tags,
            vec![tag("a", "2"), tag("b", "3")]
        );
        let many: Vec<Tag> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(
            handle(&state, PipelineCommand::Tag(many)),
            Err(Refusal::TooManyTags)
        );
        let untagged = PipelineEvent::Untagged(Untagged {
            keys: vec!["a".into(), "zz".into()],
        });
        apply(&mut state, &untagged);
        assert_eq!(state.live.unwrap().tags, vec![tag("b", "3")]);
    }

    #[test]
    fn events_round_trip_through_records() {
        let e = created();
        let new = e.to_new_event();
        let record = RecordedEvent {
            position: 1,
            stream: "s".into(),
            sequence: 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: 0.0,
            data: new.data,
        };
        assert_eq!(PipelineEvent::from_record(&record), Some(e));
    }
}
