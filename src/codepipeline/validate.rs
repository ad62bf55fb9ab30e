//! The structural rules AWS applies to a pipeline declaration, beyond the field constraints the
//! service model already checks, and the defaults AWS fills in.
//!
//! Field constraints (lengths, patterns, enums, runOrder 1–999) are checked against the model
//! before this runs; here are the rules that need the whole declaration: stage and action
//! placement, unique names, artifacts flowing from earlier actions, providers and artifact counts.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::actions::ActionRegistry;
use super::custom_types::CustomActionType;
use super::model::{Action, ActionTypeId, Declaration, ExecutionMode, PipelineType};

/// Why a declaration was refused; the API layer names the AWS error code for each kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// `InvalidStructureException`: the pipeline as a whole.
    Structure(String),
    /// `InvalidStageDeclarationException`: one stage.
    Stage(String),
    /// `InvalidActionDeclarationException`: one action.
    Action(String),
    /// `ValidationException`: a field combination the model cannot express.
    Field(String),
}

/// Checks a declaration (already valid against the model) and returns it with AWS's defaults
/// filled in: `runOrder` 1, empty `configuration` and artifact lists, `pipelineType` V1,
/// `executionMode` SUPERSEDED.
pub fn check_and_normalize(declaration: Value, types: &Types) -> Result<Declaration, Invalid> {
    let mut decl = Declaration::deserialize(declaration)
        .map_err(|e| Invalid::Field(format!("Invalid pipeline declaration: {e}")))?;
    check(&decl, types)?;
    normalize(&mut decl);
    Ok(decl)
}

/// What declarations are checked against: AWS's action types, and the custom action types of
/// the pipeline's account (looked up by identity and the action's region, if it names one).
pub struct Types<'a> {
    /// AWS's action types.
    pub actions: &'a ActionRegistry,
    /// The account's custom action types that are not deleted.
    pub custom: &'a dyn Fn(&ActionTypeId, Option<&str>) -> Option<CustomActionType>,
}

fn check(decl: &Declaration, types: &Types) -> Result<(), Invalid> {
    match (&decl.artifact_store, &decl.artifact_stores) {
        (Some(_), Some(_)) => {
            return Err(Invalid::Structure(
                "Pipeline declaration can have either artifactStore or artifactStores, not both"
                    .into(),
            ))
        }
        (None, None) => {
            return Err(Invalid::Structure(
                "Pipeline declaration must have either artifactStore or artifactStores".into(),
            ))
        }
        (None, Some(stores)) if stores.is_empty() => {
            return Err(Invalid::Structure(
                "artifactStores must name at least one region".into(),
            ))
        }
        _ => {}
    }
    if decl.pipeline_type() != PipelineType::V2 {
        if let Some(mode) = decl
            .execution_mode
            .filter(|m| *m != ExecutionMode::Superseded)
        {
            return Err(Invalid::Field(format!(
                "Execution mode {mode} is only supported for pipelines of type V2"
            )));
        }
        if decl.variables.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(Invalid::Field(
                "Pipeline variables are only supported for pipelines of type V2".into(),
            ));
        }
        if decl.triggers.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(Invalid::Field(
                "Triggers are only supported for pipelines of type V2".into(),
            ));
        }
    }
    if decl.stages.len() < 2 {
        return Err(Invalid::Structure(format!(
            "Pipeline has only {} stage(s). There should be a minimum of 2 stages in a pipeline",
            decl.stages.len()
        )));
    }

    let mut stage_names = HashSet::new();
    let mut outputs: HashSet<&str> = HashSet::new();
    let mut namespaces = HashSet::new();
    for (index, stage) in decl.stages.iter().enumerate() {
        if !stage_names.insert(stage.name.as_str()) {
            return Err(Invalid::Structure(format!(
                "Stage names must be unique in a pipeline; '{}' appears more than once",
                stage.name
            )));
        }
        if stage.actions.is_empty() {
            return Err(Invalid::Stage(format!(
                "Stage '{}' must contain at least one action",
                stage.name
            )));
        }
        let mut action_names = HashSet::new();
        super::conditions::validate(stage).map_err(Invalid::Stage)?;
        for action in &stage.actions {
            if !action_names.insert(action.name.as_str()) {
                return Err(Invalid::Stage(format!(
                    "Action names must be unique in a stage; '{}' appears more than once in stage '{}'",
                    action.name, stage.name
                )));
            }
            let is_source = action.action_type_id.category == "Source";
            if index == 0 && !is_source {
                return Err(Invalid::Structure(format!(
                    "Stage '{}' is the first stage and may only contain actions of category Source; action '{}' is of category {}",
                    stage.name, action.name, action.action_type_id.category
                )));
            }
            if index > 0 && is_source {
                return Err(Invalid::Structure(format!(
                    "Action '{}' of category Source is in stage '{}'; source actions may only appear in the first stage",
                    action.name, stage.name
                )));
            }
            check_action_type(action, types)?;
            if let Some(ns) = &action.namespace {
                if !namespaces.insert(ns.as_str()) {
                    return Err(Invalid::Structure(format!(
                        "Namespace '{ns}' is used by more than one action; namespaces must be unique in a pipeline"
                    )));
                }
            }
        }

        // Artifacts flow from earlier stages, or from lower runOrders of this stage.
        let mut orders: Vec<u16> = stage.actions.iter().map(Action::run_order).collect();
        orders.sort_unstable();
        orders.dedup();
        for order in orders {
            let group = stage.actions.iter().filter(|a| a.run_order() == order);
            for action in group.clone() {
                for input in action.input_artifacts.iter().flatten() {
                    if !outputs.contains(input.name.as_str()) {
                        return Err(Invalid::Structure(format!(
                            "Input artifact '{}' of action '{}' in stage '{}' is not the output of an earlier action; \
                             an input artifact must be produced by an action in an earlier stage or with a lower runOrder",
                            input.name, action.name, stage.name
                        )));
                    }
                }
            }
            for action in group {
                for output in action.output_artifacts.iter().flatten() {
                    if !outputs.insert(output.name.as_str()) {
                        return Err(Invalid::Structure(format!(
                            "Output artifact name '{}' is used more than once; output artifact names must be unique in a pipeline",
                            output.name
                        )));
                    }
                }
            }
        }
    }
    super::triggers::validate(decl).map_err(Invalid::Field)?;
    Ok(())
}

/// A declared action against its custom action type: the type exists and is not deleted, its
/// required properties are set and no others, a queryable property's value is one PollForJobs
/// can select on, and the artifact counts fit.
fn check_custom_action(action: &Action, types: &Types) -> Result<(), Invalid> {
    let id = &action.action_type_id;
    let Some(custom) = (types.custom)(id, action.region.as_deref()) else {
        return Err(Invalid::Action(format!(
            "ActionType (Category: '{}', Provider: '{}', Owner: 'Custom', Version: '{}') in action '{}' is not available",
            id.category, id.provider, id.version, action.name
        )));
    };
    let config = action.configuration.clone().unwrap_or_default();
    for p in &custom.definition.configuration_properties {
        let value = config.get(&p.name);
        if p.required && value.is_none() {
            return Err(Invalid::Action(format!(
                "Action configuration for action '{}' is missing required configuration '{}'",
                action.name, p.name
            )));
        }
        if let (true, Some(value)) = (p.queryable, value) {
            let fits = value.len() <= 20
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !fits {
                return Err(Invalid::Action(format!(
                    "Action configuration for action '{}': the value of queryable property '{}' must be at most 20 letters, digits, '_' or '-'",
                    action.name, p.name
                )));
            }
        }
    }
    if let Some(unknown) = config.keys().find(|k| custom.property(k).is_none()) {
        return Err(Invalid::Action(format!(
            "Action configuration for action '{}' contains unknown configuration '{unknown}'",
            action.name
        )));
    }
    let d = &custom.definition;
    let count = |what: &str, n: usize, c: super::custom_types::ArtifactCounts| {
        let (min, max) = (c.minimum_count as usize, c.maximum_count as usize);
        if n < min || n > max {
            Err(Invalid::Action(format!(
                "Action '{}' of type {}/{} has {n} {what} artifact(s); it takes between {min} and {max}",
                action.name, id.category, id.provider
            )))
        } else {
            Ok(())
        }
    };
    count("input", action.inputs().count(), d.input_artifact_details)?;
    count(
        "output",
        action.outputs().count(),
        d.output_artifact_details,
    )
}

fn check_action_type(action: &Action, types: &Types) -> Result<(), Invalid> {
    let id = &action.action_type_id;
    if id.owner == "Custom" {
        return check_custom_action(action, types);
    }
    let Some(spec) = types.actions.find(&id.category, &id.owner, &id.provider) else {
        return Err(Invalid::Action(format!(
            "ActionType (Category: '{}', Provider: '{}', Owner: '{}', Version: '1') in action '{}' is not available",
            id.category, id.provider, id.owner, action.name
        )));
    };
    let count = |what: &str, n: usize, (min, max): (usize, usize)| {
        if n < min || n > max {
            Err(Invalid::Action(format!(
                "Action '{}' of type {}/{} has {n} {what} artifact(s); it takes between {min} and {max}",
                action.name, id.category, id.provider
            )))
        } else {
            Ok(())
        }
    };
    count("input", action.inputs().count(), spec.inputs)?;
    count("output", action.outputs().count(), spec.outputs)?;
    let config = action.configuration.clone().unwrap_or_default();
    for (name, required) in spec.properties {
        if *required && !config.contains_key(*name) {
            return Err(Invalid::Action(format!(
                "Action configuration for action '{}' is missing required configuration '{name}'",
                action.name
            )));
        }
    }
    if !spec.properties.is_empty() {
        if let Some(unknown) = config
            .keys()
            .find(|k| !spec.properties.iter().any(|(p, _)| p == k))
        {
            return Err(Invalid::Action(format!(
                "Action configuration for action '{}' contains unknown configuration '{unknown}'",
                action.name
            )));
        }
    }
    Ok(())
}

fn normalize(declaration: &mut Declaration) {
    declaration.pipeline_type.get_or_insert(PipelineType::V1);
    declaration
        .execution_mode
        .get_or_insert(ExecutionMode::Superseded);
    for action in declaration
        .stages
        .iter_mut()
        .flat_map(|s| s.actions.iter_mut())
    {
        action.run_order.get_or_insert(1);
        action.configuration.get_or_insert_with(Default::default);
        action.output_artifacts.get_or_insert_with(Vec::new);
        action.input_artifacts.get_or_insert_with(Vec::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tutorial() -> Value {
        json!({
            "name": "pipeline", "roleArn": "arn:aws:iam::000000000000:role/role",
            "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
            "stages": [
                {"name": "stage1", "actions": [{"name": "action1",
                    "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "file", "PollForSourceChanges": "false"},
                    "outputArtifacts": [{"name": "intermediate-file"}]}]},
                {"name": "stage2", "actions": [{"name": "action1",
                    "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": "output-file"},
                    "inputArtifacts": [{"name": "intermediate-file"}]}]}
            ]
        })
    }

    /// Checks against AWS's catalogue, with no custom action types.
    fn check(decl: Value) -> Result<Declaration, Invalid> {
        let registry = ActionRegistry::catalogue();
        let types = Types {
            actions: &registry,
            custom: &|_, _| None,
        };
        check_and_normalize(decl, &types)
    }

    fn refusal(decl: Value) -> Invalid {
        check(decl).unwrap_err()
    }

    #[test]
    fn the_tutorial_is_accepted_with_defaults_filled_in() {
        let out = check(tutorial()).unwrap().to_value();
        assert_eq!(out["pipelineType"], "V1");
        assert_eq!(out["executionMode"], "SUPERSEDED");
        let action = &out["stages"][0]["actions"][0];
        assert_eq!(action["runOrder"], 1);
        assert_eq!(action["inputArtifacts"], json!([]));
        assert_eq!(out["stages"][1]["actions"][0]["outputArtifacts"], json!([]));
    }

    #[test]
    fn one_stage_is_not_a_pipeline() {
        let mut d = tutorial();
        d["stages"].as_array_mut().unwrap().pop();
        assert!(matches!(refusal(d), Invalid::Structure(m) if m.contains("minimum of 2 stages")));
    }

    #[test]
    fn source_actions_only_in_the_first_stage_and_only_there() {
        let mut d = tutorial();
        d["stages"][1]["actions"][0]["actionTypeId"]["category"] = "Source".into();
        assert!(
            matches!(refusal(d), Invalid::Structure(m) if m.contains("only appear in the first stage"))
        );
        let mut d = tutorial();
        d["stages"].as_array_mut().unwrap().swap(0, 1);
        assert!(matches!(refusal(d), Invalid::Structure(m) if m.contains("first stage")));
    }

    #[test]
    fn names_must_be_unique() {
        let mut d = tutorial();
        d["stages"][1]["name"] = "stage1".into();
        assert!(
            matches!(refusal(d), Invalid::Structure(m) if m.contains("Stage names must be unique"))
        );
        let mut d = tutorial();
        let a = d["stages"][1]["actions"][0].clone();
        d["stages"][1]["actions"].as_array_mut().unwrap().push(a);
        assert!(
            matches!(refusal(d), Invalid::Stage(m) if m.contains("Action names must be unique"))
        );
    }

    #[test]
    fn inputs_come_from_earlier_actions() {
        let mut d = tutorial();
        d["stages"][1]["actions"][0]["inputArtifacts"][0]["name"] = "nothing".into();
        assert!(matches!(refusal(d), Invalid::Structure(m) if m.contains("'nothing'")));
        // Same stage, same runOrder: not yet produced.
        let mut d = tutorial();
        d["stages"][1]["actions"] = json!([
            {"name": "build", "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
             "configuration": {"ProjectName": "p"}, "inputArtifacts": [{"name": "intermediate-file"}], "outputArtifacts": [{"name": "built"}]},
            {"name": "deploy", "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
             "configuration": {"BucketName": "b", "Extract": "true"}, "inputArtifacts": [{"name": "built"}]}
        ]);
        assert!(matches!(refusal(d.clone()), Invalid::Structure(m) if m.contains("'built'")));
        d["stages"][1]["actions"][1]["runOrder"] = 2.into();
        check(d.clone()).unwrap();
    }

    #[test]
    fn output_artifact_names_and_namespaces_are_unique() {
        let mut d = tutorial();
        d["stages"][1]["actions"] = json!([
            {"name": "build", "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
             "configuration": {"ProjectName": "p"}, "inputArtifacts": [{"name": "intermediate-file"}], "outputArtifacts": [{"name": "intermediate-file"}]}
        ]);
        assert!(matches!(refusal(d), Invalid::Structure(m) if m.contains("used more than once")));
        let mut d = tutorial();
        d["stages"][0]["actions"][0]["namespace"] = "ns".into();
        d["stages"][1]["actions"][0]["namespace"] = "ns".into();
        assert!(matches!(refusal(d), Invalid::Structure(m) if m.contains("Namespace 'ns'")));
    }

    #[test]
    fn providers_and_artifact_counts_follow_aws() {
        let mut d = tutorial();
        d["stages"][1]["actions"][0]["actionTypeId"]["provider"] = "FTP".into();
        assert!(matches!(refusal(d), Invalid::Action(m) if m.contains("is not available")));
        let mut d = tutorial();
        d["stages"][0]["actions"][0]["outputArtifacts"] = json!([]);
        d["stages"][1]["actions"][0]["inputArtifacts"] = json!([]);
        assert!(matches!(refusal(d), Invalid::Action(m) if m.contains("0 output artifact")));
        let mut d = tutorial();
        d["stages"][0]["actions"][0]["configuration"]
            .as_object_mut()
            .unwrap()
            .remove("S3Bucket");
        assert!(matches!(refusal(d), Invalid::Action(m) if m.contains("'S3Bucket'")));
    }

    #[test]
    fn a_provider_aws_has_but_we_do_not_run_is_accepted() {
        let mut d = tutorial();
        d["stages"][1]["actions"][0] = json!({"name": "deploy",
            "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
            "configuration": {"ApplicationName": "a", "DeploymentGroupName": "g"},
            "inputArtifacts": [{"name": "intermediate-file"}]});
        check(d.clone()).unwrap();
    }

    #[test]
    fn artifact_store_xor_artifact_stores() {
        let mut d = tutorial();
        d["artifactStores"] = json!({"eu-central-1": {"type": "S3", "location": "b"}});
        assert!(matches!(refusal(d.clone()), Invalid::Structure(m) if m.contains("not both")));
        d.as_object_mut().unwrap().remove("artifactStore");
        check(d.clone()).unwrap();
        d.as_object_mut().unwrap().remove("artifactStores");
        assert!(matches!(refusal(d), Invalid::Structure(_)));
    }

    #[test]
    fn v2_features_need_a_v2_pipeline() {
        let mut d = tutorial();
        d["executionMode"] = "QUEUED".into();
        assert!(matches!(refusal(d.clone()), Invalid::Field(_)));
        d["pipelineType"] = "V2".into();
        check(d.clone()).unwrap();
    }
}
