//! The CodeBuild project aggregate: pure decisions (handle) and folds (apply), no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::eventstore::EventType;

/// The prefix of every project stream.
pub const PROJECT_STREAM_PREFIX: &str = "codebuild-project:";

/// The stream of a project: `codebuild-project:<account>:<region>:<name>`.
pub fn project_stream(account: &str, region: &str, name: &str) -> String {
    format!("{PROJECT_STREAM_PREFIX}{account}:{region}:{name}")
}

/// Everything that happens to a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProjectEvent {
    /// CreateProject: the project as DescribeProjects shows it.
    Created {
        /// The `Project` wire shape.
        project: Value,
    },
    /// UpdateProject: the whole project after the update.
    Updated {
        /// The `Project` wire shape.
        project: Value,
    },
    /// DeleteProject.
    Deleted {
        /// When.
        at: f64,
    },
}

impl EventType for ProjectEvent {
    fn type_name(&self) -> &'static str {
        "CodeBuildProjectEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CodeBuildProjectEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        ProjectEvent::deserialize(data)
    }
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// CreateProject of a name in use.
    Exists(String),
    /// UpdateProject of a project that does not exist.
    Missing(String),
}

/// What can be asked of a project.
#[derive(Debug, Clone)]
pub enum ProjectCommand {
    /// CreateProject with its input, at a time.
    Create {
        /// The CreateProject input.
        input: Value,
        /// `arn:aws:codebuild:<region>:<account>:project/<name>`.
        arn: String,
        /// The default encryption key.
        encryption_key: String,
        /// When.
        at: f64,
    },
    /// UpdateProject with its input.
    Update {
        /// The UpdateProject input (fields given replace the project's).
        input: Value,
        /// When.
        at: f64,
    },
    /// DeleteProject.
    Delete {
        /// When.
        at: f64,
    },
}

/// The project as its events built it (`None`: there is none, or it was deleted).
pub type State = Option<Value>;

/// Decides the events of a command.
pub fn handle(state: &State, command: ProjectCommand) -> Result<Vec<ProjectEvent>, Refusal> {
    match command {
        ProjectCommand::Create {
            input,
            arn,
            encryption_key,
            at,
        } => {
            let name = input["name"].as_str().unwrap_or_default().to_string();
            if state.is_some() {
                return Err(Refusal::Exists(name));
            }
            let mut project = Map::new();
            // AWS's defaults, then what was given.
            project.insert("name".into(), name.clone().into());
            project.insert("arn".into(), arn.into());
            project.insert("timeoutInMinutes".into(), 60.into());
            project.insert("queuedTimeoutInMinutes".into(), 480.into());
            project.insert("encryptionKey".into(), encryption_key.into());
            project.insert("tags".into(), json!([]));
            project.insert("secondarySources".into(), json!([]));
            project.insert("secondarySourceVersions".into(), json!([]));
            project.insert("secondaryArtifacts".into(), json!([]));
            project.insert("badge".into(), json!({"badgeEnabled": false}));
            project.insert("projectVisibility".into(), "PRIVATE".into());
            for (k, v) in input.as_object().into_iter().flatten() {
                if k != "badgeEnabled" && !v.is_null() {
                    project.insert(k.clone(), v.clone());
                }
            }
            if input["badgeEnabled"].as_bool() == Some(true) {
                project.insert("badge".into(), json!({"badgeEnabled": true}));
            }
            project.insert("created".into(), at.into());
            project.insert("lastModified".into(), at.into());
            Ok(vec![ProjectEvent::Created {
                project: Value::Object(project),
            }])
        }
        ProjectCommand::Update { input, at } => {
            let Some(current) = state else {
                return Err(Refusal::Missing(
                    input["name"].as_str().unwrap_or_default().to_string(),
                ));
            };
            let mut project = current.as_object().cloned().unwrap_or_default();
            for (k, v) in input.as_object().into_iter().flatten() {
                if k == "name" || k == "badgeEnabled" || v.is_null() {
                    continue;
                }
                project.insert(k.clone(), v.clone());
            }
            if let Some(enabled) = input["badgeEnabled"].as_bool() {
                project.insert("badge".into(), json!({"badgeEnabled": enabled}));
            }
            project.insert("lastModified".into(), at.into());
            Ok(vec![ProjectEvent::Updated {
                project: Value::Object(project),
            }])
        }
        ProjectCommand::Delete { at } => Ok(match state {
            Some(_) => vec![ProjectEvent::Deleted { at }],
            // Deleting a project that does not exist succeeds, as on AWS.
            None => vec![],
        }),
    }
}

/// Folds one event into the state.
pub fn apply(state: &mut State, event: &ProjectEvent) {
    match event {
        ProjectEvent::Created { project } | ProjectEvent::Updated { project } => {
            *state = Some(project.clone())
        }
        ProjectEvent::Deleted { .. } => *state = None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str) -> ProjectCommand {
        ProjectCommand::Create {
            input: json!({"name": name, "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2"},
                          "artifacts": {"type": "NO_ARTIFACTS"},
                          "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"},
                          "serviceRole": "arn:aws:iam::000000000000:role/role"}),
            arn: format!("arn:aws:codebuild:eu-central-1:000000000000:project/{name}"),
            encryption_key: "arn:aws:kms:eu-central-1:000000000000:alias/aws/s3".into(),
            at: 10.0,
        }
    }

    fn given(events: &[ProjectEvent]) -> State {
        let mut s = None;
        events.iter().for_each(|e| apply(&mut s, e));
        s
    }

    #[test]
    fn a_created_project_has_aws_defaults_and_its_input() {
        let events = handle(&None, create("app")).unwrap();
        let s = given(&events).unwrap();
        assert_eq!(s["name"], "app");
        assert_eq!(s["timeoutInMinutes"], 60);
        assert_eq!(s["queuedTimeoutInMinutes"], 480);
        assert_eq!(s["badge"], json!({"badgeEnabled": false}));
        assert_eq!(s["environment"]["image"], "aws/codebuild/standard:7.0");
        assert_eq!(s["created"], 10.0);
    }

    #[test]
    fn a_name_in_use_is_refused() {
        let s = given(&handle(&None, create("app")).unwrap());
        assert_eq!(
            handle(&s, create("app")),
            Err(Refusal::Exists("app".into()))
        );
    }

    #[test]
    fn an_update_replaces_the_fields_given_and_keeps_the_rest() {
        let s = given(&handle(&None, create("app")).unwrap());
        let events = handle(
            &s,
            ProjectCommand::Update {
                input: json!({"name": "app", "timeoutInMinutes": 5, "badgeEnabled": true}),
                at: 20.0,
            },
        )
        .unwrap();
        let mut s2 = s.clone();
        events.iter().for_each(|e| apply(&mut s2, e));
        let p = s2.unwrap();
        assert_eq!(p["timeoutInMinutes"], 5);
        assert_eq!(p["badge"], json!({"badgeEnabled": true}));
        assert_eq!(p["environment"], s.unwrap()["environment"]);
        assert_eq!(
            (p["created"].clone(), p["lastModified"].clone()),
            (json!(10.0), json!(20.0))
        );
    }

    #[test]
    fn updating_a_missing_project_is_refused_and_deleting_one_is_not() {
        let update = ProjectCommand::Update {
            input: json!({"name": "nope"}),
            at: 1.0,
        };
        assert_eq!(handle(&None, update), Err(Refusal::Missing("nope".into())));
        assert_eq!(
            handle(&None, ProjectCommand::Delete { at: 1.0 }),
            Ok(vec![])
        );
        let s = given(&handle(&None, create("app")).unwrap());
        let deleted = handle(&s, ProjectCommand::Delete { at: 2.0 }).unwrap();
        assert_eq!(
            given(&[handle(&None, create("app")).unwrap(), deleted].concat()),
            None
        );
    }
}
