//! The CloudFormation deploy action (`Deploy/AWS/CloudFormation/1`): `ActionMode`
//! CREATE_UPDATE, REPLACE_ON_FAILURE, DELETE_ONLY, CHANGE_SET_REPLACE or CHANGE_SET_EXECUTE on
//! `StackName` (and `ChangeSetName`), with the template at `TemplatePath` (`Artifact::path`),
//! `TemplateConfiguration` (`Artifact::path`: `Parameters` and `Tags`), `ParameterOverrides`
//! (JSON, with `Fn::GetArtifactAtt` and `Fn::GetParam`), `Capabilities` and `RoleArn`. The
//! stack's outputs are the action's output variables, and, with `OutputFileName`, a JSON file
//! in its output artifact. It drives the embedded CloudFormation through the [`Stacks`] port.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{body_of, config, failed, read_artifact, store_failure, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ArtifactDetail, ErrorDetails};
use crate::s3::objects::{ObjectStore, PutAttributes};

/// The largest template or configuration file read from an artifact (CloudFormation's limit for
/// a template read from S3).
const MAX_FILE_BYTES: u64 = 1_000_000;

/// A stack operation the action asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StackRequest {
    /// The `ActionMode`.
    pub mode: String,
    /// The stack.
    pub stack: String,
    /// The change set, for the change set modes.
    pub change_set: Option<String>,
    /// The template's text (not for DELETE_ONLY and CHANGE_SET_EXECUTE).
    pub template: Option<String>,
    /// Parameter values.
    pub parameters: BTreeMap<String, String>,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// What a stack operation came to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StackResult {
    /// The stack's id (empty when there is none, after DELETE_ONLY).
    pub stack_id: String,
    /// The stack's outputs.
    pub outputs: BTreeMap<String, String>,
    /// A line about what happened.
    pub summary: String,
}

/// What the action asks of CloudFormation: run `request` to its end.
pub trait Stacks: Send + Sync {
    /// Runs the operation in the account and region; its result, or why it failed.
    fn run<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        request: StackRequest,
    ) -> BoxFuture<'a, Result<StackResult, String>>;
}

/// The action.
pub(super) struct CloudFormationDeploy {
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) stacks: Arc<dyn Stacks>,
}

impl ActionExecutor for CloudFormationDeploy {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(run(self, job))
    }
}

const MODES: &[&str] = &[
    "CREATE_UPDATE",
    "REPLACE_ON_FAILURE",
    "DELETE_ONLY",
    "CHANGE_SET_REPLACE",
    "CHANGE_SET_EXECUTE",
];

async fn run(action: &CloudFormationDeploy, job: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
    let config = config(job);
    let mode = config
        .get("ActionMode")
        .ok_or_else(|| failed("ActionMode is not configured"))?
        .clone();
    if !MODES.contains(&mode.as_str()) {
        return Err(failed(format!(
            "ActionMode {mode} is not one of {}",
            MODES.join(", ")
        )));
    }
    let stack = config
        .get("StackName")
        .ok_or_else(|| failed("StackName is not configured"))?
        .clone();
    let change_set = config.get("ChangeSetName").cloned();
    if mode.starts_with("CHANGE_SET") && change_set.is_none() {
        return Err(failed(format!(
            "ChangeSetName must be configured for {mode}"
        )));
    }
    let mut files = Files::new(action.objects.as_ref(), &job.input.input_artifacts);
    let template = match (mode.as_str(), config.get("TemplatePath")) {
        ("DELETE_ONLY" | "CHANGE_SET_EXECUTE", _) => None,
        (_, Some(path)) => Some(files.text(path).await?),
        (_, None) => {
            return Err(failed(format!(
                "TemplatePath must be configured for {mode}"
            )))
        }
    };
    let mut parameters = BTreeMap::new();
    let mut tags = BTreeMap::new();
    if let Some(path) = config.get("TemplateConfiguration") {
        let text = files.text(path).await?;
        let configuration: Value = serde_json::from_str(&text).map_err(|e| {
            failed(format!(
                "The template configuration {path} is not JSON: {e}"
            ))
        })?;
        for (k, v) in configuration["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
        {
            parameters.insert(k.clone(), text_of(v));
        }
        for (k, v) in configuration["Tags"].as_object().into_iter().flatten() {
            tags.insert(k.clone(), text_of(v));
        }
    }
    if let Some(overrides) = config.get("ParameterOverrides") {
        let overrides: Value = serde_json::from_str(overrides)
            .map_err(|e| failed(format!("ParameterOverrides is not a JSON object: {e}")))?;
        let Some(overrides) = overrides.as_object() else {
            return Err(failed("ParameterOverrides is not a JSON object"));
        };
        for (k, v) in overrides {
            let value = files.override_value(v).await?;
            parameters.insert(k.clone(), value);
        }
    }
    let capabilities = config
        .get("Capabilities")
        .map(|c| {
            c.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let request = StackRequest {
        mode,
        stack,
        change_set,
        template,
        parameters,
        capabilities,
        tags,
    };
    let result = action
        .stacks
        .run(&job.account, &job.input.region, request)
        .await
        .map_err(failed)?;
    let mut output_artifacts = Vec::new();
    if let Some(file) = config.get("OutputFileName") {
        let output = job.planned_outputs.first().ok_or_else(|| {
            failed("OutputFileName is configured but the action has no output artifact")
        })?;
        let json = serde_json::to_vec_pretty(&result.outputs).unwrap_or_default();
        let zip = super::git_source::zip_of(file, &json)?;
        put(action.objects.as_ref(), output, zip).await?;
        output_artifacts.push(output.clone());
    }
    Ok(ActionOutput {
        output_artifacts,
        external_execution_id: (!result.stack_id.is_empty()).then_some(result.stack_id),
        external_execution_summary: Some(result.summary),
        output_variables: result.outputs,
        revision: None,
    })
}

async fn put(
    objects: &dyn ObjectStore,
    output: &ArtifactDetail,
    zip: Vec<u8>,
) -> Result<(), ErrorDetails> {
    let location = &output.s3location;
    objects
        .put(
            &location.bucket,
            &location.key,
            &PutAttributes::default(),
            body_of(zip.into()),
        )
        .await
        .map(drop)
        .map_err(|e| store_failure(e, &location.bucket, &location.key))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The input artifacts' files, read on demand (each artifact once).
pub(super) struct Files<'a> {
    objects: &'a dyn ObjectStore,
    inputs: &'a [ArtifactDetail],
    read: BTreeMap<String, bytes::Bytes>,
}

impl<'a> Files<'a> {
    pub(super) fn new(objects: &'a dyn ObjectStore, inputs: &'a [ArtifactDetail]) -> Self {
        Files {
            objects,
            inputs,
            read: BTreeMap::new(),
        }
    }

    fn artifact(&self, name: &str) -> Result<&'a ArtifactDetail, ErrorDetails> {
        self.inputs.iter().find(|a| a.name == name).ok_or_else(|| {
            failed(format!(
                "The input artifact {name} is not an input of the action"
            ))
        })
    }

    /// The text of `Artifact::path`.
    async fn text(&mut self, location: &str) -> Result<String, ErrorDetails> {
        let (artifact, path) = location.split_once("::").ok_or_else(|| {
            failed(format!(
                "{location} is not of the form ArtifactName::FilePath"
            ))
        })?;
        self.file(artifact, path).await
    }

    pub(super) async fn file(
        &mut self,
        artifact: &str,
        path: &str,
    ) -> Result<String, ErrorDetails> {
        if !self.read.contains_key(artifact) {
            let detail = self.artifact(artifact)?;
            let bytes = read_artifact(self.objects, detail).await?;
            self.read.insert(artifact.to_string(), bytes);
        }
        let bytes = self.read[artifact].clone();
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes.as_ref())).map_err(|e| {
                failed(format!(
                    "The input artifact {artifact} is not a zip file: {e}"
                ))
            })?;
        let mut entry = archive.by_name(path.trim_start_matches('/')).map_err(|_| {
            failed(format!(
                "The file {path} is not in the input artifact {artifact}"
            ))
        })?;
        let mut out = Vec::new();
        // Read to the limit, whatever the entry's header says it holds.
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed(format!("The file {path} of {artifact} cannot be read: {e}")))?;
        if out.len() as u64 > MAX_FILE_BYTES {
            return Err(failed(format!(
                "The file {path} of {artifact} is larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        String::from_utf8(out)
            .map_err(|_| failed(format!("The file {path} of {artifact} is not UTF-8 text")))
    }

    /// A parameter override's value: text, or `Fn::GetArtifactAtt` (`BucketName`,
    /// `ObjectKey`, `URL`) or `Fn::GetParam` (a key of a JSON file of an artifact).
    async fn override_value(&mut self, v: &Value) -> Result<String, ErrorDetails> {
        let args = |f: &str| v.get(f).and_then(Value::as_array).cloned();
        if let Some(a) = args("Fn::GetArtifactAtt") {
            let (name, attribute) = (
                a.first().and_then(Value::as_str).unwrap_or_default(),
                a.get(1).and_then(Value::as_str).unwrap_or_default(),
            );
            let location = &self.artifact(name)?.s3location;
            return match attribute {
                "BucketName" => Ok(location.bucket.clone()),
                "ObjectKey" => Ok(location.key.clone()),
                "URL" => Ok(format!(
                    "https://{}.s3.amazonaws.com/{}",
                    location.bucket, location.key
                )),
                other => Err(failed(format!(
                    "Fn::GetArtifactAtt has no attribute {other} (BucketName, ObjectKey or URL)"
                ))),
            };
        }
        if let Some(a) = args("Fn::GetParam") {
            let part = |i: usize| {
                a.get(i)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (artifact, file, key) = (part(0), part(1), part(2));
            let text = self.file(&artifact, &file).await?;
            let json: Value = serde_json::from_str(&text)
                .map_err(|e| failed(format!("The file {file} of {artifact} is not JSON: {e}")))?;
            return json
                .get(&key)
                .map(text_of)
                .ok_or_else(|| failed(format!("The file {file} of {artifact} has no key {key}")));
        }
        Ok(text_of(v))
    }
}
