//! Builds as events: what StartBuild recorded, each phase's end, the build's end. The `Build`
//! wire shape is folded from them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::EventType;

/// The prefix of every build stream.
pub const BUILD_STREAM_PREFIX: &str = "codebuild-build:";

/// The stream of a build: `codebuild-build:<account>:<region>:<build id>`.
pub fn build_stream(account: &str, region: &str, id: &str) -> String {
    format!("{BUILD_STREAM_PREFIX}{account}:{region}:{id}")
}

/// The phases of a build after the buildspec's, in order.
const AFTER: [&str; 3] = ["UPLOAD_ARTIFACTS", "FINALIZING", "COMPLETED"];

/// Everything that happens to a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BuildEvent {
    /// StartBuild: the build as BatchGetBuilds first shows it.
    Started {
        /// The `Build` wire shape.
        build: Value,
    },
    /// A phase ended.
    PhaseEnded {
        /// `INSTALL`, `PRE_BUILD`, `BUILD`, `POST_BUILD`.
        phase_type: String,
        /// `SUCCEEDED`, `FAILED`, `STOPPED`, `TIMED_OUT`.
        status: String,
        /// Why it failed.
        message: Option<String>,
        /// When.
        at: f64,
    },
    /// The build ended.
    Finished {
        /// `SUCCEEDED`, `FAILED`, `STOPPED`, `TIMED_OUT`.
        status: String,
        /// `env.exported-variables` with their values.
        exported: Vec<(String, String)>,
        /// When.
        at: f64,
    },
}

impl EventType for BuildEvent {
    fn type_name(&self) -> &'static str {
        "CodeBuildBuildEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CodeBuildBuildEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        BuildEvent::deserialize(data)
    }
}

/// The next phase after `phase`.
fn next_phase(phase: &str) -> &'static str {
    const ORDER: [&str; 11] = [
        "SUBMITTED",
        "QUEUED",
        "PROVISIONING",
        "DOWNLOAD_SOURCE",
        "INSTALL",
        "PRE_BUILD",
        "BUILD",
        "POST_BUILD",
        "UPLOAD_ARTIFACTS",
        "FINALIZING",
        "COMPLETED",
    ];
    ORDER
        .iter()
        .position(|p| *p == phase)
        .and_then(|i| ORDER.get(i + 1))
        .copied()
        .unwrap_or("COMPLETED")
}

fn phase(
    phase_type: &str,
    status: Option<&str>,
    start: f64,
    end: Option<f64>,
    message: Option<&str>,
) -> Value {
    let mut p = json!({"phaseType": phase_type, "startTime": start});
    if let Some(s) = status {
        p["phaseStatus"] = s.into();
    }
    if let Some(end) = end {
        p["endTime"] = end.into();
        p["durationInSeconds"] = ((end - start).max(0.0).round() as i64).into();
    }
    if let Some(m) = message {
        p["contexts"] = json!([{"statusCode": "COMMAND_EXECUTION_ERROR", "message": m}]);
    }
    p
}

/// The phases StartBuild records as done at once (there is no queue and nothing to provision).
pub fn first_phases(at: f64) -> Value {
    json!([
        phase("SUBMITTED", Some("SUCCEEDED"), at, Some(at), None),
        phase("QUEUED", Some("SUCCEEDED"), at, Some(at), None),
        phase("PROVISIONING", Some("SUCCEEDED"), at, Some(at), None),
        phase("DOWNLOAD_SOURCE", Some("SUCCEEDED"), at, Some(at), None),
    ])
}

fn last_end(build: &Value) -> f64 {
    build["phases"]
        .as_array()
        .and_then(|p| p.last())
        .and_then(|p| p["endTime"].as_f64())
        .unwrap_or_else(|| build["startTime"].as_f64().unwrap_or(0.0))
}

/// Folds one event into the build (`Null` before it started).
pub fn apply(build: &mut Value, event: &BuildEvent) {
    match event {
        BuildEvent::Started { build: b } => *build = b.clone(),
        BuildEvent::PhaseEnded {
            phase_type,
            status,
            message,
            at,
        } => {
            let start = last_end(build);
            if let Some(phases) = build["phases"].as_array_mut() {
                phases.push(phase(
                    phase_type,
                    Some(status),
                    start,
                    Some(*at),
                    message.as_deref(),
                ));
            }
            build["currentPhase"] = next_phase(phase_type).into();
        }
        BuildEvent::Finished {
            status,
            exported,
            at,
        } => {
            let start = last_end(build);
            if let Some(phases) = build["phases"].as_array_mut() {
                // UPLOAD_ARTIFACTS may have ended already (a failed upload).
                let uploaded = phases.iter().any(|p| p["phaseType"] == "UPLOAD_ARTIFACTS");
                for p in AFTER
                    .into_iter()
                    .filter(|p| !(uploaded && *p == "UPLOAD_ARTIFACTS"))
                {
                    let done = p != "COMPLETED";
                    phases.push(phase(
                        p,
                        done.then_some("SUCCEEDED"),
                        if done { start } else { *at },
                        done.then_some(*at),
                        None,
                    ));
                }
            }
            build["buildStatus"] = status.clone().into();
            build["currentPhase"] = "COMPLETED".into();
            build["endTime"] = (*at).into();
            build["buildComplete"] = true.into();
            build["exportedEnvironmentVariables"] = exported
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>()
                .into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_other_and_the_end_completes_the_build() {
        let mut b = Value::Null;
        apply(
            &mut b,
            &BuildEvent::Started {
                build: json!({"id": "p:1", "startTime": 10.0, "buildStatus": "IN_PROGRESS",
                              "currentPhase": "INSTALL", "phases": first_phases(10.0), "buildComplete": false}),
            },
        );
        apply(
            &mut b,
            &BuildEvent::PhaseEnded {
                phase_type: "INSTALL".into(),
                status: "SUCCEEDED".into(),
                message: None,
                at: 11.0,
            },
        );
        assert_eq!(b["currentPhase"], "PRE_BUILD");
        apply(
            &mut b,
            &BuildEvent::PhaseEnded {
                phase_type: "BUILD".into(),
                status: "FAILED".into(),
                message: Some("exit status 1".into()),
                at: 14.0,
            },
        );
        let phases = b["phases"].as_array().unwrap();
        let build = &phases[5];
        assert_eq!(build["phaseStatus"], "FAILED");
        assert_eq!(build["durationInSeconds"], 3);
        assert_eq!(build["contexts"][0]["message"], "exit status 1");
        apply(
            &mut b,
            &BuildEvent::Finished {
                status: "FAILED".into(),
                exported: vec![("VERSION".into(), "1".into())],
                at: 15.0,
            },
        );
        assert_eq!(b["buildStatus"], "FAILED");
        assert_eq!(b["buildComplete"], true);
        assert_eq!(b["currentPhase"], "COMPLETED");
        assert_eq!(b["exportedEnvironmentVariables"][0]["name"], "VERSION");
        let last = b["phases"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["phaseType"], "COMPLETED");
        assert!(last.get("phaseStatus").is_none());
    }
}
