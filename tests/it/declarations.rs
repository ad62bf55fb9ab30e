//! Declarations built with the SDK's own types, and error inspection helpers.

use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType,
    InputArtifact, OutputArtifact, PipelineDeclaration, StageDeclaration,
};

/// An action type id.
pub fn type_id(category: ActionCategory, provider: &str) -> ActionTypeId {
    ActionTypeId::builder()
        .category(category)
        .owner(ActionOwner::Aws)
        .provider(provider)
        .version("1")
        .build()
        .unwrap()
}

/// The tutorial's S3 source action.
pub fn s3_source(name: &str, output: &str) -> ActionDeclaration {
    ActionDeclaration::builder()
        .name(name)
        .action_type_id(type_id(ActionCategory::Source, "S3"))
        .configuration("S3Bucket", "source-bucket")
        .configuration("S3ObjectKey", "file")
        .configuration("PollForSourceChanges", "false")
        .output_artifacts(OutputArtifact::builder().name(output).build().unwrap())
        .build()
        .unwrap()
}

/// The tutorial's S3 deploy action.
pub fn s3_deploy(name: &str, input: &str) -> ActionDeclaration {
    ActionDeclaration::builder()
        .name(name)
        .action_type_id(type_id(ActionCategory::Deploy, "S3"))
        .configuration("BucketName", "target-bucket")
        .configuration("Extract", "false")
        .configuration("ObjectKey", "output-file")
        .input_artifacts(InputArtifact::builder().name(input).build().unwrap())
        .build()
        .unwrap()
}

/// A stage.
pub fn stage(name: &str, actions: Vec<ActionDeclaration>) -> StageDeclaration {
    StageDeclaration::builder()
        .name(name)
        .set_actions(Some(actions))
        .build()
        .unwrap()
}

/// The tutorial pipeline (source → deploy) with the given stages.
pub fn pipeline_with(name: &str, stages: Vec<StageDeclaration>) -> PipelineDeclaration {
    PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::000000000000:role/role")
        .artifact_store(
            ArtifactStore::builder()
                .r#type(ArtifactStoreType::S3)
                .location("artifact-store-bucket")
                .build()
                .unwrap(),
        )
        .set_stages(Some(stages))
        .build()
        .unwrap()
}

/// The tutorial pipeline.
pub fn tutorial(name: &str) -> PipelineDeclaration {
    pipeline_with(
        name,
        vec![
            stage("stage1", vec![s3_source("action1", "intermediate-file")]),
            stage("stage2", vec![s3_deploy("action1", "intermediate-file")]),
        ],
    )
}

/// The error code, message and HTTP status of a failed SDK call.
pub fn failure<E: ProvideErrorMetadata + std::fmt::Debug, T: std::fmt::Debug>(
    result: Result<T, SdkError<E, aws_sdk_codepipeline::config::http::HttpResponse>>,
) -> (String, String, u16) {
    let err = result.expect_err("the call should have failed");
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    (code, message, status)
}
