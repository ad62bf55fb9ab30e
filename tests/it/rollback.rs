//! RollbackStage: a new execution that deploys again what an earlier one deployed, and the
//! refusals AWS answers.

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::engine::{body, finished, latest_execution, tutorial_buckets};

fn rollback(
    server: &Server,
    pipeline: &str,
    stage: &str,
    target: &str,
) -> crate::common::RawResponse {
    server.call(
        "RollbackStage",
        json!({"pipelineName": pipeline, "stageName": stage, "targetPipelineExecutionId": target}),
    )
}

#[tokio::test]
async fn a_manual_rollback_deploys_the_first_version_again() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let created = server.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("pipeline")}),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let first = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    s3.put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"version two\n"))
        .send()
        .await
        .unwrap();
    let second = cp
        .start_pipeline_execution()
        .name("pipeline")
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "pipeline", &second).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"version two\n"
    );

    let rolled = cp
        .rollback_stage()
        .pipeline_name("pipeline")
        .stage_name("stage2")
        .target_pipeline_execution_id(&first)
        .send()
        .await
        .unwrap();
    let id = rolled.pipeline_execution_id().to_string();
    assert_ne!(id, first);
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    // The first version's bytes are deployed again.
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"Hello LocalStack!\n"
    );

    let e = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let e = e.pipeline_execution().unwrap();
    assert_eq!(e.execution_type().unwrap().as_str(), "ROLLBACK");
    assert_eq!(
        e.rollback_metadata()
            .unwrap()
            .rollback_target_pipeline_execution_id(),
        Some(first.as_str())
    );
    assert_eq!(
        e.trigger().unwrap().trigger_type().unwrap().as_str(),
        "ManualRollback"
    );
    let first_e = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.artifact_revisions()[0].revision_id(),
        first_e.pipeline_execution().unwrap().artifact_revisions()[0].revision_id()
    );
    let listed = cp
        .list_pipeline_executions()
        .pipeline_name("pipeline")
        .send()
        .await
        .unwrap();
    let summary = &listed.pipeline_execution_summaries()[0];
    assert_eq!(summary.pipeline_execution_id(), Some(id.as_str()));
    assert_eq!(summary.execution_type().unwrap().as_str(), "ROLLBACK");
    assert_eq!(
        listed.pipeline_execution_summaries()[1]
            .execution_type()
            .unwrap()
            .as_str(),
        "STANDARD"
    );
    // The rollback ran the stage only.
    let actions = server.call(
        "ListActionExecutions",
        json!({"pipelineName": "pipeline", "filter": {"pipelineExecutionId": id}}),
    );
    let details = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0]["stageName"], "stage2");

    // The history lists it as a rollback, as the API does.
    let history: Value = serde_json::from_str(&server.run_cli(&[
        "history",
        "executions",
        "pipeline",
        "--region",
        "eu-central-1",
        "--output",
        "json",
    ]))
    .expect("history prints JSON");
    let listed = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pipelineExecutionId"] == id.as_str())
        .expect("the rollback is in the history");
    assert_eq!(listed["executionType"], "ROLLBACK");
    assert_eq!(
        listed["rollbackMetadata"]["rollbackTargetPipelineExecutionId"],
        first.as_str()
    );
    assert_eq!(listed["trigger"]["triggerType"], "ManualRollback");
    // A rollback is no target, and the source stage cannot be rolled back.
    assert_eq!(
        rollback(&server, "pipeline", "stage2", &id).error_code(),
        "UnableToRollbackStageException"
    );
    assert_eq!(
        rollback(&server, "pipeline", "stage1", &first).error_code(),
        "UnableToRollbackStageException"
    );
    assert_eq!(
        rollback(&server, "pipeline", "nope", &first).error_code(),
        "StageNotFoundException"
    );
    assert_eq!(
        rollback(
            &server,
            "pipeline",
            "stage2",
            "00000000-0000-0000-0000-000000000000"
        )
        .error_code(),
        "PipelineExecutionNotFoundException"
    );
    assert_eq!(
        rollback(&server, "missing", "stage2", &first).error_code(),
        "PipelineNotFoundException"
    );
    // Once the pipeline changed, its old executions are outdated targets.
    let mut v2 = tutorial_declaration("pipeline");
    v2["stages"][1]["actions"][0]["configuration"]["ObjectKey"] = "other-file".into();
    let updated = server.call("UpdatePipeline", json!({"pipeline": v2}));
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(
        rollback(&server, "pipeline", "stage2", &first).error_code(),
        "PipelineExecutionOutdatedException"
    );
}

#[tokio::test]
async fn a_stage_that_failed_or_a_parallel_pipeline_cannot_be_rolled_back() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("failing");
    decl["stages"][1]["actions"][0]["configuration"]["BucketName"] = "no-such-bucket".into();
    let created = server.call("CreatePipeline", json!({"pipeline": decl}));
    assert_eq!(created.status, 200, "{}", created.text());
    let failed = latest_execution(&cp, "failing").await;
    assert_eq!(
        finished(&cp, "failing", &failed).await,
        PipelineExecutionStatus::Failed
    );
    let r = rollback(&server, "failing", "stage2", &failed);
    assert_eq!(r.error_code(), "UnableToRollbackStageException");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("did not succeed"));

    let mut parallel = tutorial_declaration("parallel");
    parallel["pipelineType"] = "V2".into();
    parallel["executionMode"] = "PARALLEL".into();
    let created = server.call("CreatePipeline", json!({"pipeline": parallel}));
    assert_eq!(created.status, 200, "{}", created.text());
    let run = latest_execution(&cp, "parallel").await;
    assert_eq!(
        finished(&cp, "parallel", &run).await,
        PipelineExecutionStatus::Succeeded
    );
    let r = rollback(&server, "parallel", "stage2", &run);
    assert_eq!(r.error_code(), "UnableToRollbackStageException");
    assert!(r.json()["message"].as_str().unwrap().contains("PARALLEL"));
}

#[tokio::test]
async fn deploy_targets_are_listed_for_the_deploy_actions_that_run_here() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let created = server.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("pipeline")}),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let first = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let actions = server.call("ListActionExecutions", json!({"pipelineName": "pipeline"}));
    let deploy = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["stageName"] == "stage2")
        .unwrap()["actionExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let targets = cp
        .list_deploy_action_execution_targets()
        .pipeline_name("pipeline")
        .action_execution_id(&deploy)
        .send()
        .await
        .unwrap();
    assert!(targets.targets().is_empty());
    let call = |body: serde_json::Value| {
        server
            .call("ListDeployActionExecutionTargets", body)
            .error_code()
    };
    assert_eq!(
        call(json!({"pipelineName": "pipeline", "actionExecutionId": "nope"})),
        "ActionExecutionNotFoundException"
    );
    assert_eq!(
        call(json!({"pipelineName": "missing", "actionExecutionId": deploy})),
        "PipelineNotFoundException"
    );
    assert_eq!(
        call(
            json!({"pipelineName": "pipeline", "actionExecutionId": deploy, "nextToken": "garbage"})
        ),
        "InvalidNextTokenException"
    );
}

#[tokio::test]
async fn a_rollback_waiting_at_an_approval_survives_sigkill() {
    use crate::engine::{approval, approval_token};
    use aws_sdk_codepipeline::types::ApprovalStatus;
    let (server, cp) = approval_pipeline().await;
    let first = latest_execution(&cp, "pipeline").await;
    let token = approval_token(&cp, "pipeline").await;
    approval(&cp, "pipeline", &token, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let r = rollback(&server, "pipeline", "gate", &first);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    // The rollback waits at the approval it runs again; the server dies.
    let waiting = approval_token(&cp, "pipeline").await;
    assert_ne!(waiting, token);
    // The pipeline is busy with it: no retry now.
    let busy = server.call(
        "RetryStageExecution",
        json!({"pipelineName": "pipeline", "stageName": "gate", "pipelineExecutionId": first, "retryMode": "ALL_ACTIONS"}),
    );
    assert_eq!(busy.error_code(), "ConflictException", "{}", busy.text());
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    let cp = server.codepipeline();
    approval(&cp, "pipeline", &waiting, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let e = e.pipeline_execution().unwrap();
    assert_eq!(e.execution_type().unwrap().as_str(), "ROLLBACK");
    assert_eq!(
        e.rollback_metadata()
            .unwrap()
            .rollback_target_pipeline_execution_id(),
        Some(first.as_str())
    );
    // It ran the approval's stage only: the deploy after it did not run again.
    let actions = server.call(
        "ListActionExecutions",
        json!({"pipelineName": "pipeline", "filter": {"pipelineExecutionId": id}}),
    );
    let stages: Vec<String> = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["stageName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["gate"]);
}

#[tokio::test]
async fn a_stage_declared_to_retry_on_failure_is_retried_once_automatically() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("retrying");
    decl["pipelineType"] = "V2".into();
    decl["stages"][1]["actions"][0]["configuration"]["BucketName"] = "later-bucket".into();
    decl["stages"][1]["onFailure"] =
        json!({"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}});
    let created = server.call("CreatePipeline", json!({"pipeline": decl}));
    assert_eq!(created.status, 200, "{}", created.text());
    let id = latest_execution(&cp, "retrying").await;
    assert_eq!(
        finished(&cp, "retrying", &id).await,
        PipelineExecutionStatus::Failed
    );
    let state = cp
        .get_pipeline_state()
        .name("retrying")
        .send()
        .await
        .unwrap();
    let meta = state.stage_states()[1].retry_stage_metadata().unwrap();
    assert_eq!(meta.auto_stage_retry_attempt(), Some(1));
    assert_eq!(meta.manual_stage_retry_attempt(), Some(0));
    assert_eq!(
        meta.latest_retry_trigger().unwrap().as_str(),
        "AutomatedStageRetry"
    );
    let deploys = |server: &Server| {
        let r = server.call(
            "ListActionExecutions",
            json!({"pipelineName": "retrying", "filter": {"pipelineExecutionId": id}}),
        );
        r.json()["actionExecutionDetails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["stageName"] == "stage2")
            .count()
    };
    // Tried twice: the first run and the one automatic retry.
    assert_eq!(deploys(&server), 2);

    // Once the bucket exists, a manual retry succeeds; the automatic one is still counted.
    s3.create_bucket()
        .bucket("later-bucket")
        .send()
        .await
        .unwrap();
    cp.retry_stage_execution()
        .pipeline_name("retrying")
        .stage_name("stage2")
        .pipeline_execution_id(&id)
        .retry_mode(aws_sdk_codepipeline::types::StageRetryMode::FailedActions)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "retrying", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let state = cp
        .get_pipeline_state()
        .name("retrying")
        .send()
        .await
        .unwrap();
    let meta = state.stage_states()[1].retry_stage_metadata().unwrap();
    assert_eq!(meta.auto_stage_retry_attempt(), Some(1));
    assert_eq!(meta.manual_stage_retry_attempt(), Some(1));
    assert_eq!(
        meta.latest_retry_trigger().unwrap().as_str(),
        "ManualStageRetry"
    );
    assert_eq!(deploys(&server), 3);
}

#[tokio::test]
async fn a_stage_declared_to_roll_back_on_failure_rolls_back_to_its_last_success() {
    use std::time::{Duration, Instant};
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("auto");
    decl["pipelineType"] = "V2".into();
    decl["variables"] = json!([{"name": "Bucket", "defaultValue": "missing-bucket"}]);
    decl["stages"][1]["actions"][0]["configuration"]["BucketName"] = "#{variables.Bucket}".into();
    decl["stages"][1]["onFailure"] = json!({"result": "ROLLBACK"});
    let created = server.call("CreatePipeline", json!({"pipeline": decl}));
    assert_eq!(created.status, 200, "{}", created.text());
    // The first run fails where nothing ever succeeded: there is nothing to roll back to.
    let first = latest_execution(&cp, "auto").await;
    assert_eq!(
        finished(&cp, "auto", &first).await,
        PipelineExecutionStatus::Failed
    );
    let start = |bucket: &str| {
        server.call(
            "StartPipelineExecution",
            json!({"name": "auto", "variables": [{"name": "Bucket", "value": bucket}]}),
        )
    };
    let good = start("target-bucket").json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "auto", &good).await,
        PipelineExecutionStatus::Succeeded
    );
    let bad = start("other-missing").json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "auto", &bad).await,
        PipelineExecutionStatus::Failed
    );

    // The failure of `bad` starts a rollback to `good` (rollbacks are asked for in order, so the
    // first failure's, had it started one, would be listed before it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let rollback = loop {
        let listed = server.call("ListPipelineExecutions", json!({"pipelineName": "auto"}));
        let summaries = listed.json()["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .clone();
        let rollbacks: Vec<_> = summaries
            .iter()
            .filter(|s| s["executionType"] == "ROLLBACK")
            .cloned()
            .collect();
        if let Some(r) = rollbacks.first() {
            assert_eq!(rollbacks.len(), 1, "{summaries:?}");
            assert_eq!(summaries.len(), 4, "{summaries:?}");
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no rollback after 30 s: {summaries:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rollback["trigger"]["triggerType"], "AutomatedRollback");
    assert_eq!(
        rollback["rollbackMetadata"]["rollbackTargetPipelineExecutionId"],
        good.as_str()
    );
    let id = rollback["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "auto", id).await,
        PipelineExecutionStatus::Succeeded
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("auto")
        .pipeline_execution_id(id)
        .send()
        .await
        .unwrap();
    let variables = e.pipeline_execution().unwrap().variables();
    assert_eq!(variables[0].resolved_value(), Some("target-bucket"));
}

/// The token of the approval in the pipeline's second stage once it is not `old`.
async fn new_approval_token(
    cp: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    old: &str,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = cp.get_pipeline_state().name(pipeline).send().await.unwrap();
        let token = state.stage_states()[1].action_states()[0]
            .latest_execution()
            .and_then(|e| e.token())
            .filter(|t| *t != old)
            .map(str::to_string);
        if let Some(token) = token {
            return token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new approval token: {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_retry_waiting_at_an_approval_survives_sigkill_and_replay_shows_it() {
    use crate::engine::{approval, approval_token};
    use aws_sdk_codepipeline::types::{ApprovalStatus, StageRetryMode};
    let (server, cp) = approval_pipeline().await;
    let id = latest_execution(&cp, "pipeline").await;
    let token = approval_token(&cp, "pipeline").await;
    approval(&cp, "pipeline", &token, ApprovalStatus::Rejected)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Failed
    );
    let retried = cp
        .retry_stage_execution()
        .pipeline_name("pipeline")
        .stage_name("gate")
        .pipeline_execution_id(&id)
        .retry_mode(StageRetryMode::FailedActions)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.pipeline_execution_id(), Some(id.as_str()));
    // The retried approval waits; the server dies.
    let waiting = new_approval_token(&cp, "pipeline", &token).await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    let cp = server.codepipeline();
    approval(&cp, "pipeline", &waiting, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    // Both approvals are listed: the rejected one and the one approved after the restart.
    let actions = server.call(
        "ListActionExecutions",
        json!({"pipelineName": "pipeline", "filter": {"pipelineExecutionId": id}}),
    );
    let mut approvals: Vec<String> = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["actionName"] == "approve")
        .map(|a| a["status"].as_str().unwrap().to_string())
        .collect();
    approvals.sort();
    assert_eq!(approvals, ["Failed", "Succeeded"], "{}", actions.text());
    // Replay shows the retry as such.
    let timeline: Value =
        serde_json::from_str(&server.run_cli(&["replay", &id, "--output", "json"]))
            .expect("replay prints JSON");
    let retry = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "StageRetried")
        .expect("the retry is in the timeline");
    assert_eq!(retry["stageName"], "gate");
    assert_eq!(retry["details"]["retryMode"], "FAILED_ACTIONS");
    assert_eq!(retry["details"]["trigger"], "ManualStageRetry");
}

#[tokio::test]
async fn a_stopped_execution_is_retried_from_its_stopped_stage() {
    use crate::engine::{approval, approval_token};
    use aws_sdk_codepipeline::types::{ApprovalStatus, StageRetryMode};
    let (server, cp) = approval_pipeline().await;
    let id = latest_execution(&cp, "pipeline").await;
    let token = approval_token(&cp, "pipeline").await;
    // Retrying what still runs is refused.
    let early = server.call(
        "RetryStageExecution",
        json!({"pipelineName": "pipeline", "stageName": "gate", "pipelineExecutionId": id, "retryMode": "FAILED_ACTIONS"}),
    );
    assert_eq!(
        early.error_code(),
        "StageNotRetryableException",
        "{}",
        early.text()
    );
    cp.stop_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&id)
        .abandon(true)
        .reason("not now")
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Stopped
    );
    let retried = cp
        .retry_stage_execution()
        .pipeline_name("pipeline")
        .stage_name("gate")
        .pipeline_execution_id(&id)
        .retry_mode(StageRetryMode::FailedActions)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.pipeline_execution_id(), Some(id.as_str()));
    let waiting = new_approval_token(&cp, "pipeline", &token).await;
    approval(&cp, "pipeline", &waiting, ApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert!(e.pipeline_execution().unwrap().status_summary().is_none());
}

/// A server whose pipeline `pipeline` (the tutorial with an approval stage `gate`) was created.
async fn approval_pipeline() -> (Server, aws_sdk_codepipeline::Client) {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let created = server.call(
        "CreatePipeline",
        json!({"pipeline": crate::engine::approval_declaration("pipeline")}),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    (server, cp)
}
