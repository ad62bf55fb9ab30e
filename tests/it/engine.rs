//! Pipelines really run: the tutorial end to end, runOrder groups, failures, variables, and
//! executions resumed after SIGKILL.

use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::{
    ActionExecutionStatus, PipelineExecutionStatus, SourceRevisionOverride, SourceRevisionType,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use serde_json::json;

use crate::common::{tutorial_declaration, Server};

/// Makes the tutorial's buckets and source file.
pub(crate) async fn tutorial_buckets(s3: &aws_sdk_s3::Client) {
    for bucket in ["source-bucket", "target-bucket", "artifact-store-bucket"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_bucket_versioning()
        .bucket("source-bucket")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"Hello LocalStack!\n"))
        .send()
        .await
        .unwrap();
}

/// Waits (at most 30 s) until the execution is no longer in progress; returns its status.
pub(crate) async fn finished(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    id: &str,
) -> PipelineExecutionStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = cp
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(id)
            .send()
            .await
            .unwrap();
        let status = e.pipeline_execution().unwrap().status().unwrap().clone();
        if status != PipelineExecutionStatus::InProgress {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} still running after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The newest execution of a pipeline, waiting (at most 30 s) for the first one to appear: the
/// execution CreatePipeline starts begins just after it answers, as on AWS.
pub(crate) async fn latest_execution(cp: &aws_sdk_codepipeline::Client, pipeline: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = cp
            .list_pipeline_executions()
            .pipeline_name(pipeline)
            .send()
            .await
            .unwrap();
        if let Some(first) = list.pipeline_execution_summaries().first() {
            return first.pipeline_execution_id().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no execution of {pipeline} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The run of `action` in `execution` (in the pipeline's newest runs without one).
pub(crate) async fn action_run(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    execution: Option<&str>,
    action: &str,
) -> aws_sdk_codepipeline::types::ActionExecutionDetail {
    let mut list = cp.list_action_executions().pipeline_name(pipeline);
    if let Some(id) = execution {
        list = list.filter(
            aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
                .pipeline_execution_id(id)
                .build(),
        );
    }
    let runs = list.send().await.unwrap();
    runs.action_execution_details()
        .iter()
        .find(|r| r.action_name() == Some(action))
        .unwrap_or_else(|| panic!("no run of {action} in {pipeline}"))
        .clone()
}

/// The error of the first action of stage `stage` (by position) once the pipeline's latest
/// execution has failed.
pub(crate) async fn failure_of(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    stage: usize,
) -> String {
    let id = latest_execution(cp, pipeline).await;
    assert_eq!(
        finished(cp, pipeline, &id).await,
        PipelineExecutionStatus::Failed
    );
    let state = cp.get_pipeline_state().name(pipeline).send().await.unwrap();
    state.stage_states()[stage].action_states()[0]
        .latest_execution()
        .unwrap()
        .error_details()
        .unwrap()
        .message()
        .unwrap()
        .to_string()
}

pub(crate) async fn body(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

pub(crate) fn create(server: &Server, declaration: serde_json::Value) {
    let r = server.call("CreatePipeline", json!({ "pipeline": declaration }));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn the_tutorial_runs_end_to_end() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let id = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );

    let list = cp
        .list_pipeline_executions()
        .pipeline_name("pipeline")
        .send()
        .await
        .unwrap();
    let summary = &list.pipeline_execution_summaries()[0];
    assert_eq!(
        summary.trigger().unwrap().trigger_type().unwrap().as_str(),
        "CreatePipeline"
    );
    assert!(
        summary.last_update_time().unwrap().as_secs_f64()
            >= summary.start_time().unwrap().as_secs_f64()
    );

    let actions = cp
        .list_action_executions()
        .pipeline_name("pipeline")
        .send()
        .await
        .unwrap();
    let details = actions.action_execution_details();
    assert_eq!(details.len(), 2);
    let (deploy, source) = (&details[0], &details[1]);
    assert_eq!(
        (deploy.stage_name(), source.stage_name()),
        (Some("stage2"), Some("stage1"))
    );
    assert_eq!(deploy.status(), Some(&ActionExecutionStatus::Succeeded));
    let input = deploy.input().unwrap();
    assert_eq!(input.region(), Some("eu-central-1"));
    assert_eq!(
        input.resolved_configuration().unwrap()["ObjectKey"],
        "output-file"
    );
    let artifact = &input.input_artifacts()[0];
    let location = artifact.s3_location().unwrap();
    assert_eq!(location.bucket(), Some("artifact-store-bucket"));
    let key = location.key().unwrap();
    assert!(
        key.starts_with("pipeline/intermedia/") && key.len() == "pipeline/intermedia/".len() + 7,
        "{key}"
    );
    assert_eq!(
        body(&s3, "artifact-store-bucket", key).await,
        b"Hello LocalStack!\n"
    );
    let result = deploy.output().unwrap().execution_result().unwrap();
    assert_eq!(
        result.external_execution_summary(),
        Some("Deployment Succeeded")
    );
    let source_output = source.output().unwrap();
    assert_eq!(
        source_output.output_artifacts()[0].name(),
        Some("intermediate-file")
    );
    assert!(source_output
        .output_variables()
        .unwrap()
        .contains_key("VersionId"));

    let state = cp
        .get_pipeline_state()
        .name("pipeline")
        .send()
        .await
        .unwrap();
    assert_eq!(state.stage_states().len(), 2);
    let stage2 = &state.stage_states()[1];
    assert_eq!(
        stage2.latest_execution().unwrap().pipeline_execution_id(),
        id.as_str()
    );
    assert_eq!(
        stage2.action_states()[0]
            .latest_execution()
            .unwrap()
            .status(),
        Some(&ActionExecutionStatus::Succeeded)
    );
}

#[tokio::test]
async fn start_pipeline_execution_reads_the_new_version_or_the_one_asked_for() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    let old_version = s3
        .head_object()
        .bucket("source-bucket")
        .key("file")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap();

    let started = cp
        .start_pipeline_execution()
        .name("pipeline")
        .client_request_token("token-1")
        .send()
        .await
        .unwrap();
    let id = started.pipeline_execution_id().unwrap().to_string();
    let again = cp
        .start_pipeline_execution()
        .name("pipeline")
        .client_request_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.pipeline_execution_id(), Some(id.as_str()));
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(body(&s3, "target-bucket", "output-file").await, b"second");

    let pinned = cp
        .start_pipeline_execution()
        .name("pipeline")
        .source_revisions(
            SourceRevisionOverride::builder()
                .action_name("action1")
                .revision_type(SourceRevisionType::S3ObjectVersionId)
                .revision_value(&old_version)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let pinned = pinned.pipeline_execution_id().unwrap();
    assert_eq!(
        finished(&cp, "pipeline", pinned).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );
    let execution = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(pinned)
        .send()
        .await
        .unwrap();
    let revisions = execution.pipeline_execution().unwrap().artifact_revisions();
    assert_eq!(revisions[0].revision_id(), Some(old_version.as_str()));
    assert_eq!(
        cp.list_pipeline_executions()
            .pipeline_name("pipeline")
            .send()
            .await
            .unwrap()
            .pipeline_execution_summaries()
            .len(),
        3
    );

    let err = cp
        .start_pipeline_execution()
        .name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_codepipeline::error::ProvideErrorMetadata::code(&err),
        Some("PipelineNotFoundException")
    );
    let err = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_codepipeline::error::ProvideErrorMetadata::code(&err),
        Some("PipelineExecutionNotFoundException")
    );
}

#[tokio::test]
async fn a_failing_source_fails_the_execution_with_its_reason() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    s3.create_bucket()
        .bucket("artifact-store-bucket")
        .send()
        .await
        .unwrap();
    s3.create_bucket()
        .bucket("source-bucket")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    create(&server, tutorial_declaration("unversioned"));
    let id = latest_execution(&cp, "unversioned").await;
    assert_eq!(
        finished(&cp, "unversioned", &id).await,
        PipelineExecutionStatus::Failed
    );
    let execution = cp
        .get_pipeline_execution()
        .pipeline_name("unversioned")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let summary = execution
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(summary.contains("versioning"), "{summary}");

    let mut missing = tutorial_declaration("missing-object");
    missing["stages"][0]["actions"][0]["configuration"]["S3Bucket"] =
        "artifact-store-bucket".into();
    s3.put_bucket_versioning()
        .bucket("artifact-store-bucket")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    create(&server, missing);
    let id = latest_execution(&cp, "missing-object").await;
    assert_eq!(
        finished(&cp, "missing-object", &id).await,
        PipelineExecutionStatus::Failed
    );
    let actions = cp
        .list_action_executions()
        .pipeline_name("missing-object")
        .send()
        .await
        .unwrap();
    let source = &actions.action_execution_details()[0];
    assert_eq!(source.status(), Some(&ActionExecutionStatus::Failed));
    let error = source
        .output()
        .unwrap()
        .execution_result()
        .unwrap()
        .error_details()
        .unwrap();
    assert!(
        error
            .message()
            .unwrap()
            .contains("The object file does not exist"),
        "{:?}",
        error.message()
    );
    // The deploy stage never started.
    assert_eq!(actions.action_execution_details().len(), 1);
}

#[tokio::test]
async fn equal_run_orders_run_together_and_variables_resolve() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("parallel");
    decl["stages"][0]["actions"][0]["namespace"] = "SourceVariables".into();
    let deploy = |name: &str, order: i64, key: &str| {
        json!({"name": name, "runOrder": order,
               "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
               "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": key},
               "inputArtifacts": [{"name": "intermediate-file"}]})
    };
    decl["stages"][1]["actions"] = json!([
        deploy("a", 1, "a/#{SourceVariables.VersionId}"),
        deploy("b", 1, "b/#{codepipeline.PipelineExecutionId}"),
        deploy("c", 2, "c"),
    ]);
    create(&server, decl);
    let id = latest_execution(&cp, "parallel").await;
    assert_eq!(
        finished(&cp, "parallel", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let details = cp
        .list_action_executions()
        .pipeline_name("parallel")
        .send()
        .await
        .unwrap();
    let by_name = |n: &str| {
        details
            .action_execution_details()
            .iter()
            .find(|d| d.action_name() == Some(n))
            .unwrap()
            .clone()
    };
    let (a, b, c) = (by_name("a"), by_name("b"), by_name("c"));
    // a and b start together, before either finishes; c starts after both.
    assert!(a.start_time().unwrap().as_secs_f64() <= b.last_update_time().unwrap().as_secs_f64());
    assert!(b.start_time().unwrap().as_secs_f64() <= a.last_update_time().unwrap().as_secs_f64());
    assert!(c.start_time().unwrap().as_secs_f64() >= a.last_update_time().unwrap().as_secs_f64());
    assert!(c.start_time().unwrap().as_secs_f64() >= b.last_update_time().unwrap().as_secs_f64());
    let version = s3
        .head_object()
        .bucket("source-bucket")
        .key("file")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let resolved = a.input().unwrap().resolved_configuration().unwrap()["ObjectKey"].clone();
    assert_eq!(resolved, format!("a/{version}"));
    assert_eq!(
        b.input().unwrap().resolved_configuration().unwrap()["ObjectKey"],
        format!("b/{id}")
    );
    assert_eq!(
        body(&s3, "target-bucket", &format!("b/{id}")).await,
        b"Hello LocalStack!\n"
    );
}

#[tokio::test]
async fn an_unresolvable_variable_fails_the_action_naming_it() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("unresolved");
    decl["stages"][1]["actions"][0]["configuration"]["ObjectKey"] = "#{Nowhere.Nothing}".into();
    create(&server, decl);
    let id = latest_execution(&cp, "unresolved").await;
    assert_eq!(
        finished(&cp, "unresolved", &id).await,
        PipelineExecutionStatus::Failed
    );
    let details = cp
        .list_action_executions()
        .pipeline_name("unresolved")
        .send()
        .await
        .unwrap();
    let deploy = &details.action_execution_details()[0];
    let message = deploy
        .output()
        .unwrap()
        .execution_result()
        .unwrap()
        .error_details()
        .unwrap()
        .message()
        .unwrap()
        .to_string();
    assert!(message.contains("#{Nowhere.Nothing}"), "{message}");
}

#[tokio::test]
async fn finished_executions_survive_kill_9() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let id = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &id).await;
    for _ in 0..2 {
        let id = start(&cp, "pipeline").await;
        finished(&cp, "pipeline", &id).await;
    }
    // Every answer that reads finished executions, before and after the restart.
    let answers = |server: &Server| {
        let mut pages = Vec::new();
        let mut token = None;
        loop {
            let mut input = json!({"pipelineName": "pipeline", "maxResults": 1});
            if let Some(t) = &token {
                input["nextToken"] = json!(t);
            }
            let page = server.call("ListActionExecutions", input).json();
            pages.push(page["actionExecutionDetails"][0].clone());
            token = page["nextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
            assert!(pages.len() <= 6, "more pages than action executions");
        }
        [
            server
                .call("ListActionExecutions", json!({"pipelineName": "pipeline"}))
                .text(),
            server
                .call(
                    "ListPipelineExecutions",
                    json!({"pipelineName": "pipeline"}),
                )
                .text(),
            server
                .call(
                    "GetPipelineExecution",
                    json!({"pipelineName": "pipeline", "pipelineExecutionId": id}),
                )
                .text(),
            server
                .call("GetPipelineState", json!({"name": "pipeline"}))
                .text(),
            serde_json::to_string(&pages).unwrap(),
        ]
    };
    let before = answers(&server);
    // One page a run: all six runs, newest first, as in the unpaginated answer.
    let all: serde_json::Value = serde_json::from_str(&before[0]).unwrap();
    let paged: serde_json::Value = serde_json::from_str(&before[4]).unwrap();
    assert_eq!(all["actionExecutionDetails"].as_array().unwrap().len(), 6);
    assert_eq!(paged, all["actionExecutionDetails"]);
    let state: serde_json::Value = serde_json::from_str(&before[3]).unwrap();
    let newest = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        state["stageStates"][1]["latestExecution"]["pipelineExecutionId"],
        newest.as_str()
    );
    assert_eq!(
        state["stageStates"][1]["actionStates"][0]["latestExecution"]["actionExecutionId"],
        all["actionExecutionDetails"][0]["actionExecutionId"]
    );
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    assert_eq!(answers(&restarted), before);
}

/// The tutorial with a manual approval stage between source and deploy.
pub(crate) fn approval_declaration(name: &str) -> serde_json::Value {
    let mut decl = tutorial_declaration(name);
    let approval = json!({"name": "approve", "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                          "configuration": {"CustomData": "please look"}});
    decl["stages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"name": "gate", "actions": [approval]}));
    decl
}

/// Waits (at most 30 s) until the approval of `pipeline` waits; returns its token.
pub(crate) async fn approval_token(cp: &aws_sdk_codepipeline::Client, pipeline: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = cp.get_pipeline_state().name(pipeline).send().await.unwrap();
        let token = state.stage_states()[1].action_states()[0]
            .latest_execution()
            .and_then(|e| e.token())
            .map(str::to_string);
        if let Some(token) = token {
            return token;
        }
        assert!(
            Instant::now() < deadline,
            "the approval of {pipeline} never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn approval(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    token: &str,
    status: aws_sdk_codepipeline::types::ApprovalStatus,
) -> aws_sdk_codepipeline::operation::put_approval_result::builders::PutApprovalResultFluentBuilder
{
    cp.put_approval_result()
        .pipeline_name(pipeline)
        .stage_name("gate")
        .action_name("approve")
        .token(token)
        .result(
            aws_sdk_codepipeline::types::ApprovalResult::builder()
                .summary("looks good")
                .status(status)
                .build()
                .unwrap(),
        )
}

fn code<E: aws_sdk_codepipeline::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_manual_approval_waits_for_its_token() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("gated"));
    let token = approval_token(&cp, "gated").await;
    let id = latest_execution(&cp, "gated").await;
    // Still waiting: nothing deployed.
    let status = cp
        .get_pipeline_execution()
        .pipeline_name("gated")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.pipeline_execution().unwrap().status(),
        Some(&PipelineExecutionStatus::InProgress)
    );
    assert!(s3
        .head_object()
        .bucket("target-bucket")
        .key("output-file")
        .send()
        .await
        .is_err());

    let wrong = approval(
        &cp,
        "gated",
        "00000000-0000-0000-0000-000000000000",
        ApprovalStatus::Approved,
    )
    .send()
    .await
    .unwrap_err();
    assert_eq!(code(&wrong), "InvalidApprovalTokenException");
    let no_stage = approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .stage_name("nowhere")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_stage), "StageNotFoundException");
    let no_action = approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .action_name("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_action), "ActionNotFoundException");

    let approved = approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert!(approved.approved_at().is_some());
    assert_eq!(
        finished(&cp, "gated", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );
    let again = approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ApprovalAlreadyCompletedException");
}

#[tokio::test]
async fn a_rejected_approval_fails_the_execution() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("rejected"));
    let token = approval_token(&cp, "rejected").await;
    let id = latest_execution(&cp, "rejected").await;
    approval(&cp, "rejected", &token, ApprovalStatus::Rejected)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "rejected", &id).await,
        PipelineExecutionStatus::Failed
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("rejected")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let summary = e
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(summary.contains("Rejected: looks good"), "{summary}");
}

#[tokio::test]
async fn a_waiting_approval_survives_kill_9_with_its_token() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("gated"));
    let token = approval_token(&cp, "gated").await;
    let id = latest_execution(&cp, "gated").await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();

    let restarted = Server::start_in(&dir);
    let cp = restarted.codepipeline();
    assert_eq!(approval_token(&cp, "gated").await, token);
    approval(&cp, "gated", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "gated", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&restarted.s3(), "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );
}

#[tokio::test]
async fn stop_and_wait_lets_the_running_action_finish_and_starts_nothing_new() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("stopping"));
    let token = approval_token(&cp, "stopping").await;
    let id = latest_execution(&cp, "stopping").await;
    cp.stop_pipeline_execution()
        .pipeline_name("stopping")
        .pipeline_execution_id(&id)
        .reason("not today")
        .send()
        .await
        .unwrap();
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("stopping")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.pipeline_execution().unwrap().status(),
        Some(&PipelineExecutionStatus::Stopping)
    );
    let again = cp
        .stop_pipeline_execution()
        .pipeline_name("stopping")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "DuplicatedStopRequestException");
    // The running approval still takes its answer; then the execution stops before deploying.
    approval(&cp, "stopping", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "stopping", &id).await,
        PipelineExecutionStatus::Stopped
    );
    assert!(s3
        .head_object()
        .bucket("target-bucket")
        .key("output-file")
        .send()
        .await
        .is_err());
    let list = cp
        .list_pipeline_executions()
        .pipeline_name("stopping")
        .send()
        .await
        .unwrap();
    assert_eq!(
        list.pipeline_execution_summaries()[0]
            .stop_trigger()
            .unwrap()
            .reason(),
        Some("not today")
    );
    let late = cp
        .stop_pipeline_execution()
        .pipeline_name("stopping")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&late), "PipelineExecutionNotStoppableException");
}

#[tokio::test]
async fn stop_and_abandon_ends_running_actions_at_once() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("abandoning"));
    let token = approval_token(&cp, "abandoning").await;
    let id = latest_execution(&cp, "abandoning").await;
    // Stop and wait first, then abandon: allowed while stopping.
    cp.stop_pipeline_execution()
        .pipeline_name("abandoning")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    cp.stop_pipeline_execution()
        .pipeline_name("abandoning")
        .pipeline_execution_id(&id)
        .abandon(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "abandoning", &id).await,
        PipelineExecutionStatus::Stopped
    );
    let actions = cp
        .list_action_executions()
        .pipeline_name("abandoning")
        .send()
        .await
        .unwrap();
    let gate = actions
        .action_execution_details()
        .iter()
        .find(|d| d.stage_name() == Some("gate"))
        .unwrap();
    assert_eq!(gate.status(), Some(&ActionExecutionStatus::Abandoned));
    let answered = approval(&cp, "abandoning", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&answered), "ApprovalAlreadyCompletedException");
}

#[tokio::test]
async fn updating_a_pipeline_cancels_its_running_execution() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("updated"));
    approval_token(&cp, "updated").await;
    let id = latest_execution(&cp, "updated").await;
    let r = server.call(
        "UpdatePipeline",
        json!({"pipeline": tutorial_declaration("updated")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        finished(&cp, "updated", &id).await,
        PipelineExecutionStatus::Cancelled
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("updated")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let summary = e
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(summary.contains("updated to version 2"), "{summary}");
    let actions = cp
        .list_action_executions()
        .pipeline_name("updated")
        .send()
        .await
        .unwrap();
    let gate = actions
        .action_execution_details()
        .iter()
        .find(|d| d.stage_name() == Some("gate"))
        .unwrap();
    assert_eq!(gate.status(), Some(&ActionExecutionStatus::Abandoned));
}

/// A zip archive of `(path, content)` files.
pub(crate) fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn s3_deploy_extracts_a_zip_artifact_under_its_prefix() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let site = zip_of(&[("index.html", "<h1>hi</h1>"), ("assets/app.js", "go()")]);
    s3.put_object()
        .bucket("source-bucket")
        .key("site.zip")
        .body(ByteStream::from(site))
        .send()
        .await
        .unwrap();
    let mut decl = tutorial_declaration("site");
    decl["stages"][0]["actions"][0]["configuration"]["S3ObjectKey"] = "site.zip".into();
    decl["stages"][1]["actions"][0]["configuration"] = json!({"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "web", "CacheControl": "max-age=60", "CannedACL": "public-read"});
    create(&server, decl);
    let id = latest_execution(&cp, "site").await;
    assert_eq!(
        finished(&cp, "site", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let index = s3
        .get_object()
        .bucket("target-bucket")
        .key("web/index.html")
        .send()
        .await
        .unwrap();
    assert_eq!(index.content_type(), Some("text/html"));
    assert_eq!(index.cache_control(), Some("max-age=60"));
    assert_eq!(
        index.body.collect().await.unwrap().into_bytes().as_ref(),
        b"<h1>hi</h1>"
    );
    assert_eq!(
        body(&s3, "target-bucket", "web/assets/app.js").await,
        b"go()"
    );

    // An entry that would leave the prefix fails the action, naming it, and nothing escapes.
    let evil = zip_of(&[("../escaped.txt", "x")]);
    s3.put_object()
        .bucket("source-bucket")
        .key("site.zip")
        .body(ByteStream::from(evil))
        .send()
        .await
        .unwrap();
    let id = cp
        .start_pipeline_execution()
        .name("site")
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "site", &id).await,
        PipelineExecutionStatus::Failed
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("site")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let summary = e
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(summary.contains("../escaped.txt"), "{summary}");
    assert!(s3
        .head_object()
        .bucket("target-bucket")
        .key("escaped.txt")
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_pipeline_created_again_starts_without_the_old_history() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("again"));
    approval_token(&cp, "again").await;
    let old = latest_execution(&cp, "again").await;
    assert_eq!(
        server
            .call("DeletePipeline", json!({"name": "again"}))
            .status,
        200
    );
    create(&server, tutorial_declaration("again"));
    let new = latest_execution(&cp, "again").await;
    assert_ne!(old, new);
    assert_eq!(
        finished(&cp, "again", &new).await,
        PipelineExecutionStatus::Succeeded
    );
    let list = cp
        .list_pipeline_executions()
        .pipeline_name("again")
        .send()
        .await
        .unwrap();
    assert_eq!(list.pipeline_execution_summaries().len(), 1);
    let err = cp
        .get_pipeline_execution()
        .pipeline_name("again")
        .pipeline_execution_id(&old)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PipelineExecutionNotFoundException");

    // The log says the same after a restart.
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let list = restarted
        .codepipeline()
        .list_pipeline_executions()
        .pipeline_name("again")
        .send()
        .await
        .unwrap();
    assert_eq!(list.pipeline_execution_summaries().len(), 1);
    assert_eq!(
        list.pipeline_execution_summaries()[0].pipeline_execution_id(),
        Some(new.as_str())
    );
}

/// The status of every execution of `pipeline`, oldest first.
async fn statuses(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
) -> Vec<(String, PipelineExecutionStatus)> {
    let list = cp
        .list_pipeline_executions()
        .pipeline_name(pipeline)
        .send()
        .await
        .unwrap();
    let mut out: Vec<_> = list
        .pipeline_execution_summaries()
        .iter()
        .map(|s| {
            (
                s.pipeline_execution_id().unwrap().to_string(),
                s.status().unwrap().clone(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// Waits (at most 30 s) until `check` holds for the pipeline's action executions.
async fn until_actions(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    check: impl Fn(&[aws_sdk_codepipeline::types::ActionExecutionDetail]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = cp
            .list_action_executions()
            .pipeline_name(pipeline)
            .send()
            .await
            .unwrap();
        if check(list.action_execution_details()) {
            return;
        }
        if Instant::now() >= deadline {
            let seen: Vec<_> = list
                .action_execution_details()
                .iter()
                .map(|d| {
                    (
                        d.pipeline_execution_id().unwrap_or_default().to_string(),
                        d.stage_name().unwrap_or_default().to_string(),
                        d.status().cloned(),
                    )
                })
                .collect();
            panic!("the actions of {pipeline} never got there: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many runs of the approval are waiting.
fn waiting_approvals(details: &[aws_sdk_codepipeline::types::ActionExecutionDetail]) -> usize {
    details
        .iter()
        .filter(|d| {
            d.stage_name() == Some("gate") && d.status() == Some(&ActionExecutionStatus::InProgress)
        })
        .count()
}

/// How many source runs succeeded.
fn sources_done(details: &[aws_sdk_codepipeline::types::ActionExecutionDetail]) -> usize {
    details
        .iter()
        .filter(|d| {
            d.stage_name() == Some("stage1")
                && d.status() == Some(&ActionExecutionStatus::Succeeded)
        })
        .count()
}

pub(crate) async fn start(cp: &aws_sdk_codepipeline::Client, pipeline: &str) -> String {
    cp.start_pipeline_execution()
        .name(pipeline)
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn superseded_mode_lets_a_newer_execution_take_the_waiting_place() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("superseded"));
    let first_token = approval_token(&cp, "superseded").await;
    let first = latest_execution(&cp, "superseded").await;
    let second = start(&cp, "superseded").await;
    until_actions(&cp, "superseded", |d| sources_done(d) == 2).await;
    let third = start(&cp, "superseded").await;
    until_actions(&cp, "superseded", |d| sources_done(d) == 3).await;
    assert_eq!(
        finished(&cp, "superseded", &second).await,
        PipelineExecutionStatus::Superseded
    );
    // Only the first is in the gate stage.
    until_actions(&cp, "superseded", |d| waiting_approvals(d) == 1).await;
    approval(&cp, "superseded", &first_token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "superseded", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    // The third entered the gate when the first left it.
    let third_token = approval_token(&cp, "superseded").await;
    assert_ne!(third_token, first_token);
    approval(&cp, "superseded", &third_token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "superseded", &third).await,
        PipelineExecutionStatus::Succeeded
    );
    let all: Vec<PipelineExecutionStatus> = statuses(&cp, "superseded")
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        all,
        [
            PipelineExecutionStatus::Succeeded,
            PipelineExecutionStatus::Superseded,
            PipelineExecutionStatus::Succeeded
        ]
    );
}

#[tokio::test]
async fn queued_mode_runs_waiting_executions_in_turn() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = approval_declaration("queued");
    decl["pipelineType"] = "V2".into();
    decl["executionMode"] = "QUEUED".into();
    create(&server, decl);
    approval_token(&cp, "queued").await;
    start(&cp, "queued").await;
    start(&cp, "queued").await;
    until_actions(&cp, "queued", |d| sources_done(d) == 3).await;
    for _ in 0..3 {
        until_actions(&cp, "queued", |d| waiting_approvals(d) == 1).await;
        let token = approval_token(&cp, "queued").await;
        approval(&cp, "queued", &token, ApprovalStatus::Approved)
            .send()
            .await
            .unwrap();
        // Wait until this approval is recorded before answering the next one.
        let deadline = Instant::now() + Duration::from_secs(30);
        while approval_token_now(&cp, "queued").await.as_deref() == Some(token.as_str()) {
            assert!(Instant::now() < deadline, "the approval was not recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (id, _) in statuses(&cp, "queued").await {
        assert_eq!(
            finished(&cp, "queued", &id).await,
            PipelineExecutionStatus::Succeeded
        );
    }
    let list = server
        .call("ListPipelineExecutions", json!({"pipelineName": "queued"}))
        .json();
    for summary in list["pipelineExecutionSummaries"].as_array().unwrap() {
        assert_eq!(summary["executionMode"], "QUEUED");
    }
}

/// The token of the approval waiting now, if one waits.
async fn approval_token_now(cp: &aws_sdk_codepipeline::Client, pipeline: &str) -> Option<String> {
    let state = cp.get_pipeline_state().name(pipeline).send().await.unwrap();
    state.stage_states()[1].action_states()[0]
        .latest_execution()
        .and_then(|e| e.token())
        .map(str::to_string)
}

#[tokio::test]
async fn parallel_mode_runs_executions_side_by_side() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = approval_declaration("parallel-mode");
    decl["pipelineType"] = "V2".into();
    decl["executionMode"] = "PARALLEL".into();
    create(&server, decl);
    start(&cp, "parallel-mode").await;
    start(&cp, "parallel-mode").await;
    until_actions(&cp, "parallel-mode", |d| waiting_approvals(d) == 3).await;
}

#[tokio::test]
async fn stage_locks_and_waiting_executions_survive_kill_9() {
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, approval_declaration("locked"));
    let first_token = approval_token(&cp, "locked").await;
    let first = latest_execution(&cp, "locked").await;
    let second = start(&cp, "locked").await;
    until_actions(&cp, "locked", |d| sources_done(d) == 2).await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();

    let restarted = Server::start_in(&dir);
    let cp = restarted.codepipeline();
    // The first still holds the gate; the second still waits for it.
    assert_eq!(approval_token(&cp, "locked").await, first_token);
    until_actions(&cp, "locked", |d| waiting_approvals(d) == 1).await;
    approval(&cp, "locked", &first_token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "locked", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let second_token = loop {
        match approval_token_now(&cp, "locked").await {
            Some(t) if t != first_token => break t,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the second execution never entered the gate"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    approval(&cp, "locked", &second_token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "locked", &second).await,
        PipelineExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn a_disabled_transition_holds_executions_until_it_is_enabled() {
    use aws_sdk_codepipeline::types::StageTransitionType;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("held"));
    let first = latest_execution(&cp, "held").await;
    finished(&cp, "held", &first).await;
    cp.disable_stage_transition()
        .pipeline_name("held")
        .stage_name("stage2")
        .transition_type(StageTransitionType::Inbound)
        .reason("release freeze")
        .send()
        .await
        .unwrap();
    let state = cp.get_pipeline_state().name("held").send().await.unwrap();
    let transition = state.stage_states()[1].inbound_transition_state().unwrap();
    assert!(!transition.enabled());
    assert_eq!(transition.disabled_reason(), Some("release freeze"));
    s3.delete_object()
        .bucket("target-bucket")
        .key("output-file")
        .send()
        .await
        .unwrap();

    let id = start(&cp, "held").await;
    until_actions(&cp, "held", |d| sources_done(d) == 2).await;
    // Held before stage2: still running, nothing deployed, shown as stage2's inbound execution.
    let state = cp.get_pipeline_state().name("held").send().await.unwrap();
    let inbound = state.stage_states()[1].inbound_execution().unwrap();
    assert_eq!(inbound.pipeline_execution_id(), id.as_str());
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("held")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.pipeline_execution().unwrap().status(),
        Some(&PipelineExecutionStatus::InProgress)
    );
    assert!(s3
        .head_object()
        .bucket("target-bucket")
        .key("output-file")
        .send()
        .await
        .is_err());

    // The hold survives a restart.
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let cp = restarted.codepipeline();
    let state = cp.get_pipeline_state().name("held").send().await.unwrap();
    assert!(!state.stage_states()[1]
        .inbound_transition_state()
        .unwrap()
        .enabled());
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("held")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.pipeline_execution().unwrap().status(),
        Some(&PipelineExecutionStatus::InProgress)
    );

    cp.enable_stage_transition()
        .pipeline_name("held")
        .stage_name("stage2")
        .transition_type(StageTransitionType::Inbound)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "held", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&restarted.s3(), "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );

    let missing = cp
        .disable_stage_transition()
        .pipeline_name("held")
        .stage_name("nowhere")
        .transition_type(StageTransitionType::Inbound)
        .reason("r")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "StageNotFoundException");
}

#[tokio::test]
async fn a_failed_action_lets_its_running_sibling_finish_and_starts_nothing_new() {
    use aws_sdk_codepipeline::types::{ApprovalStatus, StageExecutionStatus};
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    // In one stage: a (deploys to a bucket that does not exist: fails at once) and approve
    // (waits for its answer) at runOrder 1, c at runOrder 2.
    let mut decl = tutorial_declaration("siblings");
    let deploy = decl["stages"][1]["actions"][0].clone();
    let mut a = deploy.clone();
    a["name"] = "a".into();
    a["configuration"]["BucketName"] = "no-such-bucket".into();
    let mut c = deploy;
    c["name"] = "c".into();
    c["runOrder"] = 2.into();
    let approve = json!({"name": "approve", "runOrder": 1,
        "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}});
    decl["stages"][1] = json!({"name": "gate", "actions": [a, approve, c]});
    create(&server, decl);
    let id = latest_execution(&cp, "siblings").await;
    until_actions(&cp, "siblings", |d| {
        d.iter().any(|d| {
            d.action_name() == Some("a") && d.status() == Some(&ActionExecutionStatus::Failed)
        })
    })
    .await;
    // a failed while approve still waits: the stage and the execution wait with it.
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("siblings")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.pipeline_execution().unwrap().status(),
        Some(&PipelineExecutionStatus::InProgress)
    );
    let state = cp
        .get_pipeline_state()
        .name("siblings")
        .send()
        .await
        .unwrap();
    let token = state.stage_states()[1].action_states()[1]
        .latest_execution()
        .and_then(|e| e.token())
        .expect("the approval waits")
        .to_string();
    approval(&cp, "siblings", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "siblings", &id).await,
        PipelineExecutionStatus::Failed
    );
    let runs = runs_by_action(&cp, "siblings").await;
    let status_of = |name: &str| runs.get(&format!("gate/{name}")).map(|r| r[0].clone());
    assert_eq!(status_of("approve"), Some(ActionExecutionStatus::Succeeded));
    assert_eq!(status_of("a"), Some(ActionExecutionStatus::Failed));
    assert_eq!(status_of("c"), None, "c started after its stage failed");
    let state = cp
        .get_pipeline_state()
        .name("siblings")
        .send()
        .await
        .unwrap();
    let gate = &state.stage_states()[1];
    assert_eq!(
        gate.latest_execution().unwrap().status(),
        &StageExecutionStatus::Failed
    );
    assert_eq!(
        gate.action_states()[1].latest_execution().unwrap().status(),
        Some(&ActionExecutionStatus::Succeeded)
    );
}

#[tokio::test]
async fn get_pipeline_state_shows_the_revision_each_source_read() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let first = s3
        .head_object()
        .bucket("source-bucket")
        .key("file")
        .send()
        .await
        .unwrap();
    create(&server, tutorial_declaration("revisions"));
    let id = latest_execution(&cp, "revisions").await;
    finished(&cp, "revisions", &id).await;
    let revision =
        |state: &aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput| {
            let r = state.stage_states()[0].action_states()[0]
                .current_revision()
                .expect("the source shows its revision")
                .clone();
            (
                r.revision_id().to_string(),
                r.revision_change_id().to_string(),
                r.created().secs(),
            )
        };
    let unquoted = |etag: Option<&str>| etag.unwrap().trim_matches('"').to_string();
    let state = cp
        .get_pipeline_state()
        .name("revisions")
        .send()
        .await
        .unwrap();
    let (id1, change1, created1) = revision(&state);
    assert_eq!(Some(id1.as_str()), first.version_id());
    assert_eq!(change1.trim_matches('"'), unquoted(first.e_tag()));
    assert!(created1 > 0);
    // The deploy action read no revision.
    assert!(state.stage_states()[1].action_states()[0]
        .current_revision()
        .is_none());

    let second = s3
        .put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"second\n"))
        .send()
        .await
        .unwrap();
    let id = start(&cp, "revisions").await;
    finished(&cp, "revisions", &id).await;
    let state = cp
        .get_pipeline_state()
        .name("revisions")
        .send()
        .await
        .unwrap();
    let (id2, change2, _) = revision(&state);
    assert_eq!(Some(id2.as_str()), second.version_id());
    assert_ne!(id2, id1);
    assert_eq!(change2.trim_matches('"'), unquoted(second.e_tag()));
}

/// The tutorial, deploying also to `late-bucket`, which does not exist yet: the deploy stage
/// fails on that action while its sibling succeeds.
fn late_bucket_declaration(name: &str) -> serde_json::Value {
    let mut decl = tutorial_declaration(name);
    let mut late = decl["stages"][1]["actions"][0].clone();
    late["name"] = "late".into();
    late["configuration"]["BucketName"] = "late-bucket".into();
    decl["stages"][1]["actions"]
        .as_array_mut()
        .unwrap()
        .push(late);
    decl
}

/// The runs of each action of `pipeline`, oldest first, by `stage/action`.
async fn runs_by_action(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
) -> std::collections::BTreeMap<String, Vec<ActionExecutionStatus>> {
    let list = cp
        .list_action_executions()
        .pipeline_name(pipeline)
        .send()
        .await
        .unwrap();
    let mut out = std::collections::BTreeMap::<String, Vec<ActionExecutionStatus>>::new();
    for d in list.action_execution_details().iter().rev() {
        out.entry(format!(
            "{}/{}",
            d.stage_name().unwrap(),
            d.action_name().unwrap()
        ))
        .or_default()
        .push(d.status().unwrap().clone());
    }
    out
}

fn retry(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    stage: &str,
    id: &str,
    mode: aws_sdk_codepipeline::types::StageRetryMode,
) -> aws_sdk_codepipeline::operation::retry_stage_execution::builders::RetryStageExecutionFluentBuilder
{
    cp.retry_stage_execution()
        .pipeline_name(pipeline)
        .stage_name(stage)
        .pipeline_execution_id(id)
        .retry_mode(mode)
}

#[tokio::test]
async fn a_failed_stage_is_retried_and_its_execution_goes_on() {
    use aws_sdk_codepipeline::types::StageRetryMode::FailedActions;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, late_bucket_declaration("retried"));
    let id = latest_execution(&cp, "retried").await;
    assert_eq!(
        finished(&cp, "retried", &id).await,
        PipelineExecutionStatus::Failed
    );
    let refused = |e: &aws_sdk_codepipeline::error::SdkError<_, _>| match e {
        aws_sdk_codepipeline::error::SdkError::ServiceError(s) => {
            let e: &aws_sdk_codepipeline::operation::retry_stage_execution::RetryStageExecutionError =
                s.err();
            code(e)
        }
        other => panic!("{other:?}"),
    };
    let e = retry(&cp, "retried", "stage1", &id, FailedActions)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&e), "StageNotRetryableException");
    let e = retry(&cp, "retried", "nowhere", &id, FailedActions)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&e), "StageNotFoundException");
    let other = "00000000-0000-0000-0000-000000000000";
    let e = retry(&cp, "retried", "stage2", other, FailedActions)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&e), "NotLatestPipelineExecutionException");

    s3.create_bucket()
        .bucket("late-bucket")
        .send()
        .await
        .unwrap();
    let retried = retry(&cp, "retried", "stage2", &id, FailedActions)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.pipeline_execution_id(), Some(id.as_str()));
    assert_eq!(
        finished(&cp, "retried", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "late-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );
    // Only the failed action ran again.
    let runs = runs_by_action(&cp, "retried").await;
    use ActionExecutionStatus::{Failed, Succeeded};
    assert_eq!(runs["stage2/late"], [Failed, Succeeded]);
    assert_eq!(runs["stage2/action1"], [Succeeded]);
    let state = cp
        .get_pipeline_state()
        .name("retried")
        .send()
        .await
        .unwrap();
    let stage = &state.stage_states()[1];
    let metadata = stage.retry_stage_metadata().unwrap();
    assert_eq!(metadata.manual_stage_retry_attempt(), Some(1));
    assert_eq!(
        stage.latest_execution().unwrap().status(),
        &aws_sdk_codepipeline::types::StageExecutionStatus::Succeeded
    );
    let e = retry(&cp, "retried", "stage2", &id, FailedActions)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&e), "StageNotRetryableException");
}

#[tokio::test]
async fn a_stage_that_failed_before_a_restart_is_retried_with_all_its_actions() {
    use aws_sdk_codepipeline::types::StageRetryMode::AllActions;
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, late_bucket_declaration("restarted"));
    let id = latest_execution(&cp, "restarted").await;
    assert_eq!(
        finished(&cp, "restarted", &id).await,
        PipelineExecutionStatus::Failed
    );
    let dir = server.kill9().unwrap();
    let server = Server::start_in(dir.path());
    let (cp, s3) = (server.codepipeline(), server.s3());
    s3.create_bucket()
        .bucket("late-bucket")
        .send()
        .await
        .unwrap();
    retry(&cp, "restarted", "stage2", &id, AllActions)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "restarted", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let runs = runs_by_action(&cp, "restarted").await;
    use ActionExecutionStatus::{Failed, Succeeded};
    assert_eq!(runs["stage2/late"], [Failed, Succeeded]);
    assert_eq!(runs["stage2/action1"], [Succeeded, Succeeded]);
    assert_eq!(runs["stage1/action1"], [Succeeded]);
}

/// A zip of one stored entry whose zip64 headers declare `declared` uncompressed bytes for the
/// 12 it holds.
fn forged_zip64(declared: u64) -> Vec<u8> {
    let content = b"hello, world";
    let crc = {
        let mut crc = !0u32;
        for &b in content {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    };
    let name = b"f.txt";
    let mut extra = Vec::new();
    for v in [1u16, 16] {
        extra.extend_from_slice(&v.to_le_bytes());
    }
    extra.extend_from_slice(&declared.to_le_bytes());
    extra.extend_from_slice(&(content.len() as u64).to_le_bytes());
    let header = |out: &mut Vec<u8>, signature: u32, central: bool| {
        out.extend_from_slice(&signature.to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        if central {
            out.extend_from_slice(&45u16.to_le_bytes());
        }
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        if central {
            out.extend_from_slice(&[0; 14]);
        }
        out.extend_from_slice(name);
        out.extend_from_slice(&extra);
    };
    let mut out = Vec::new();
    header(&mut out, 0x0403_4b50, false);
    out.extend_from_slice(content);
    let central = out.len() as u32;
    header(&mut out, 0x0201_4b50, true);
    let size = out.len() as u32 - central;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&central.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[tokio::test]
async fn hostile_zips_fail_their_action_and_the_server_goes_on() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("hostile");
    decl["stages"][0]["actions"][0]["configuration"]["S3ObjectKey"] = "site.zip".into();
    decl["stages"][1]["actions"][0]["configuration"] =
        json!({"BucketName": "target-bucket", "Extract": "true"});
    let bomb = zip_of(&[("zeros.bin", &"\0".repeat(32 << 20))]);
    assert!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("a 32 MiB deflate bomb", bomb, "zip_max_ratio"),
        (
            "a zip64 entry declaring 2^62 bytes",
            forged_zip64(1 << 62),
            "",
        ),
        (
            "a zip64 entry declaring 2^64-1 bytes",
            forged_zip64(u64::MAX),
            "",
        ),
    ];
    let mut created = false;
    for (what, zip, limit) in cases {
        s3.put_object()
            .bucket("source-bucket")
            .key("site.zip")
            .body(ByteStream::from(zip))
            .send()
            .await
            .unwrap();
        let id = if created {
            start(&cp, "hostile").await
        } else {
            created = true;
            create(&server, decl.clone());
            latest_execution(&cp, "hostile").await
        };
        let status = finished(&cp, "hostile", &id).await;
        let deployed = runs_by_action(&cp, "hostile").await;
        // A forged size either fails the action or unpacks the 12 bytes really there; it never
        // takes the server down.
        if !limit.is_empty() {
            assert_eq!(status, PipelineExecutionStatus::Failed, "{what}");
            let e = cp
                .get_pipeline_execution()
                .pipeline_name("hostile")
                .pipeline_execution_id(&id)
                .send()
                .await
                .unwrap();
            let summary = e.pipeline_execution().unwrap().status_summary().unwrap();
            assert!(summary.contains(limit), "{what}: {summary}");
        } else if status == PipelineExecutionStatus::Succeeded {
            let body = body(&s3, "target-bucket", "f.txt").await;
            assert_eq!(body, b"hello, world", "{what}");
        }
        assert!(!deployed.is_empty());
        // Still serving.
        let r = server.call("ListPipelines", json!({}));
        assert_eq!(r.status, 200, "{what}");
    }
    // And a restart finds nothing to resume that could take it down.
    let dir = server.kill9().unwrap();
    let server = Server::start_in(dir.path());
    let r = server.call("ListPipelineExecutions", json!({"pipelineName": "hostile"}));
    let listed = r.json();
    let statuses: Vec<&str> = listed["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(!statuses.contains(&"InProgress"), "{statuses:?}");
}

#[tokio::test]
async fn execution_listings_page_newest_first_and_filter() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create(&server, tutorial_declaration("pipeline"));
    let first = latest_execution(&cp, "pipeline").await;
    finished(&cp, "pipeline", &first).await;
    // The second fails at its source: the object is gone. The third succeeds again.
    s3.delete_object()
        .bucket("source-bucket")
        .key("file")
        .send()
        .await
        .unwrap();
    let second = start(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &second).await,
        PipelineExecutionStatus::Failed
    );
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"again"))
        .send()
        .await
        .unwrap();
    let third = start(&cp, "pipeline").await;
    finished(&cp, "pipeline", &third).await;

    // Pages of one, newest first; with the filter, only executions whose stage2 succeeded.
    let pages = |filter: serde_json::Value| {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input = json!({"pipelineName": "pipeline", "maxResults": 1, "filter": filter});
            if filter.is_null() {
                input.as_object_mut().unwrap().remove("filter");
            }
            if let Some(t) = &token {
                input["nextToken"] = json!(t);
            }
            let page = server.call("ListPipelineExecutions", input);
            assert_eq!(page.status, 200, "{}", page.text());
            let page = page.json();
            for s in page["pipelineExecutionSummaries"].as_array().unwrap() {
                ids.push(s["pipelineExecutionId"].as_str().unwrap().to_string());
            }
            token = page["nextToken"].as_str().map(str::to_string);
            if token.is_none() {
                return ids;
            }
            assert!(ids.len() <= 3, "more pages than executions");
        }
    };
    assert_eq!(
        pages(json!(null)),
        [third.clone(), second.clone(), first.clone()]
    );
    assert_eq!(
        pages(json!({"succeededInStage": {"stageName": "stage2"}})),
        [third.clone(), first.clone()]
    );

    // ListActionExecutions for one execution: its runs only; an unknown one is not found.
    let one = server.call(
        "ListActionExecutions",
        json!({"pipelineName": "pipeline", "filter": {"pipelineExecutionId": second}}),
    );
    let runs = one.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(runs.len(), 1, "the failed execution ran its source only");
    assert_eq!(runs[0]["pipelineExecutionId"], second.as_str());
    assert_eq!(runs[0]["status"], "Failed");
    let unknown = server.call(
        "ListActionExecutions",
        json!({"pipelineName": "pipeline", "filter": {"pipelineExecutionId": "00000000-0000-0000-0000-000000000000"}}),
    );
    assert_eq!(unknown.error_code(), "PipelineExecutionNotFoundException");
    for op in ["ListPipelineExecutions", "ListActionExecutions"] {
        let bad = server.call(
            op,
            json!({"pipelineName": "pipeline", "nextToken": "garbage"}),
        );
        assert_eq!(bad.error_code(), "InvalidNextTokenException", "{op}");
    }
}
