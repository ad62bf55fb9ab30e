//! Custom action types and job workers: CreateCustomActionType and its kin, the worker loop of
//! PollForJobs, AcknowledgeJob and PutJobSuccessResult/PutJobFailureResult, continuations,
//! timeouts, restarts, and the third-party family.

use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::{
    ActionCategory, ActionConfigurationProperty, ActionOwner, ActionTypeId, ActionTypeSettings,
    ArtifactDetails, ExecutionDetails, FailureDetails, FailureType, Job, PipelineExecutionStatus,
};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::declarations::failure;
use crate::engine::{body, finished, latest_execution, tutorial_buckets};

fn counts(min: i32, max: i32) -> ArtifactDetails {
    ArtifactDetails::builder()
        .minimum_count(min)
        .maximum_count(max)
        .build()
}

/// The custom action type: Build/Custom/MyBuilder version `version`.
async fn create_builder(cp: &aws_sdk_codepipeline::Client, version: &str) {
    cp.create_custom_action_type()
        .category(ActionCategory::Build)
        .provider("MyBuilder")
        .version(version)
        .settings(
            ActionTypeSettings::builder()
                .entity_url_template("http://ci/{Config:Project}")
                .execution_url_template("http://ci/run/{ExternalExecutionId}")
                .build(),
        )
        .configuration_properties(
            ActionConfigurationProperty::builder()
                .name("Project")
                .required(true)
                .key(true)
                .secret(false)
                .queryable(true)
                .build()
                .unwrap(),
        )
        .configuration_properties(
            ActionConfigurationProperty::builder()
                .name("Token")
                .required(false)
                .key(false)
                .secret(true)
                .build()
                .unwrap(),
        )
        .input_artifact_details(counts(1, 1))
        .output_artifact_details(counts(0, 1))
        .send()
        .await
        .unwrap();
}

fn builder_id() -> ActionTypeId {
    ActionTypeId::builder()
        .category(ActionCategory::Build)
        .owner(ActionOwner::Custom)
        .provider("MyBuilder")
        .version("1")
        .build()
        .unwrap()
}

/// The tutorial with a custom build between source and deploy; the deploy's key uses the
/// build's output variable.
fn custom_declaration(name: &str, project: &str) -> Value {
    let mut decl = tutorial_declaration(name);
    let build = json!({"name": "build", "namespace": "BuildVars",
        "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "MyBuilder", "version": "1"},
        "configuration": {"Project": project, "Token": "s3cret"},
        "inputArtifacts": [{"name": "intermediate-file"}], "outputArtifacts": [{"name": "built"}]});
    decl["stages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"name": "build", "actions": [build]}));
    decl["artifactStore"]["encryptionKey"] = json!({"id": "alias/pipeline", "type": "KMS"});
    let deploy = &mut decl["stages"][2]["actions"][0];
    deploy["inputArtifacts"] = json!([{"name": "built"}]);
    deploy["configuration"]["ObjectKey"] = "releases/#{BuildVars.VERSION}.zip".into();
    decl
}

fn create(server: &Server, declaration: Value) {
    let r = server.call("CreatePipeline", json!({ "pipeline": declaration }));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Polls (at most 30 s) until a job of the custom builder for `project` comes.
async fn poll_one(cp: &aws_sdk_codepipeline::Client, project: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let polled = cp
            .poll_for_jobs()
            .action_type_id(builder_id())
            .query_param("Project", project)
            .max_batch_size(5)
            .send()
            .await
            .unwrap();
        if let Some(job) = polled.jobs().first() {
            assert_eq!(polled.jobs().len(), 1);
            return job.clone();
        }
        assert!(Instant::now() < deadline, "no job for {project} after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn custom_action_types_are_created_listed_deleted_and_restored_as_on_aws() {
    let server = Server::start();
    let cp = server.codepipeline();
    create_builder(&cp, "1").await;
    // Created again as it is: the same type, no error.
    create_builder(&cp, "1").await;
    let listed = cp
        .list_action_types()
        .action_owner_filter(ActionOwner::Custom)
        .send()
        .await
        .unwrap();
    let t = &listed.action_types()[0];
    assert_eq!(listed.action_types().len(), 1);
    assert_eq!(t.id().unwrap(), &builder_id());
    assert_eq!(
        t.settings().unwrap().entity_url_template(),
        Some("http://ci/{Config:Project}")
    );
    let props = t.action_configuration_properties();
    assert_eq!(props[0].name(), "Project");
    assert!(props[0].queryable() && props[1].secret());
    assert_eq!(t.input_artifact_details().unwrap().minimum_count(), 1);
    // Tags: a custom action type is a taggable resource.
    let arn = "arn:aws:codepipeline:eu-central-1:000000000000:actiontype:Custom/Build/MyBuilder/1";
    let tag = |k: &str, v: &str| {
        aws_sdk_codepipeline::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .unwrap()
    };
    cp.tag_resource()
        .resource_arn(arn)
        .tags(tag("team", "ci"))
        .tags(tag("env", "dev"))
        .send()
        .await
        .unwrap();
    cp.untag_resource()
        .resource_arn(arn)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = cp
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(
        (tags.tags()[0].key(), tags.tags()[0].value()),
        ("team", "ci")
    );
    let (code, _, _) = failure(
        cp.list_tags_for_resource()
            .resource_arn(arn.replace("MyBuilder", "Other"))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    // Custom types are per region.
    let elsewhere = cp
        .list_action_types()
        .action_owner_filter(ActionOwner::Custom)
        .region_filter("us-west-2")
        .send()
        .await
        .unwrap();
    assert!(elsewhere.action_types().is_empty());
    let all = cp.list_action_types().send().await.unwrap();
    assert!(all
        .action_types()
        .iter()
        .any(|t| t.id() == Some(&builder_id())));
    assert!(all
        .action_types()
        .iter()
        .any(|t| t.id().unwrap().owner() == &ActionOwner::Aws));

    // The same identity with another definition is refused.
    let other = server.call(
        "CreateCustomActionType",
        json!({"category": "Build", "provider": "MyBuilder", "version": "1",
               "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 1},
               "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1}}),
    );
    assert_eq!(
        other.error_code(),
        "ValidationException",
        "{}",
        other.text()
    );

    cp.delete_custom_action_type()
        .category(ActionCategory::Build)
        .provider("MyBuilder")
        .version("1")
        .send()
        .await
        .unwrap();
    let listed = cp
        .list_action_types()
        .action_owner_filter(ActionOwner::Custom)
        .send()
        .await
        .unwrap();
    assert!(listed.action_types().is_empty());
    let again = server.call(
        "DeleteCustomActionType",
        json!({"category": "Build", "provider": "MyBuilder", "version": "1"}),
    );
    assert_eq!(again.error_code(), "ValidationException");
    // A deleted type is refused in declarations and in polls.
    let r = server.call(
        "CreatePipeline",
        json!({ "pipeline": custom_declaration("p", "web") }),
    );
    assert_eq!(
        r.error_code(),
        "InvalidActionDeclarationException",
        "{}",
        r.text()
    );
    let (code, _, _) = failure(cp.poll_for_jobs().action_type_id(builder_id()).send().await);
    assert_eq!(code, "ActionTypeNotFoundException");
    // Its version takes only its own definition back.
    assert_eq!(other_definition(&server), "ValidationException");
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("p", "web"));
}

fn other_definition(server: &Server) -> String {
    server
        .call(
            "CreateCustomActionType",
            json!({"category": "Build", "provider": "MyBuilder", "version": "1",
                   "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 2},
                   "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1}}),
        )
        .error_code()
}

#[tokio::test]
async fn custom_action_type_rules_and_limits_answer_the_models_errors() {
    let server = Server::start();
    let base = json!({"category": "Test", "provider": "T", "version": "1",
        "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 0}});
    let with = |patch: Value| {
        let mut input = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            input[k] = v.clone();
        }
        server.call("CreateCustomActionType", input).error_code()
    };
    let prop = |queryable: bool, required: bool, secret: bool| json!({"name": "P", "required": required, "key": false, "secret": secret, "queryable": queryable});
    assert_eq!(
        with(json!({"configurationProperties": [prop(true, false, false)]})),
        "ValidationException"
    );
    assert_eq!(
        with(json!({"configurationProperties": [prop(true, true, true)]})),
        "ValidationException"
    );
    assert_eq!(
        with(json!({"inputArtifactDetails": {"minimumCount": 2, "maximumCount": 1}})),
        "ValidationException"
    );
    assert_eq!(
        with(json!({"inputArtifactDetails": {"minimumCount": 0, "maximumCount": 6}})),
        "ValidationException"
    );
    assert_eq!(
        with(json!({"provider": "bad provider"})),
        "ValidationException"
    );
    assert_eq!(
        with(json!({"tags": [{"key": "aws:x", "value": "v"}]})),
        "InvalidTagsException"
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
        .collect();
    assert_eq!(with(json!({ "tags": many })), "TooManyTagsException");
    // Nothing refused was stored.
    let listed = server.call("ListActionTypes", json!({"actionOwnerFilter": "Custom"}));
    assert_eq!(listed.json()["actionTypes"], json!([]));
    for i in 0..50 {
        assert_eq!(with(json!({ "version": i.to_string() })), "", "version {i}");
    }
    assert_eq!(with(json!({ "version": "50" })), "LimitExceededException");

    // GetActionType answers for the AWS types that run here, UpdateActionType changes none.
    let got = server.call(
        "GetActionType",
        json!({"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}),
    );
    assert_eq!(got.status, 200, "{}", got.text());
    let decl = &got.json()["actionType"];
    assert_eq!(decl["executor"]["type"], "JobWorker");
    assert_eq!(decl["outputArtifactDetails"]["maximumCount"], 1);
    let unknown =
        json!({"category": "Build", "owner": "ThirdParty", "provider": "Nope", "version": "1"});
    assert_eq!(
        server.call("GetActionType", unknown.clone()).error_code(),
        "ActionTypeNotFoundException"
    );
    let update = |id: Value| {
        server
            .call(
                "UpdateActionType",
                json!({"actionType": {"id": id, "executor": {"configuration": {}, "type": "JobWorker"},
                       "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
                       "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 0}}}),
            )
            .error_code()
    };
    assert_eq!(update(unknown), "ActionTypeNotFoundException");
    assert_eq!(
        update(json!({"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"})),
        "RequestFailedException"
    );
}

#[tokio::test]
async fn declarations_are_checked_against_the_custom_type() {
    let server = Server::start();
    let cp = server.codepipeline();
    create_builder(&cp, "1").await;
    let refused = |decl: Value| {
        let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
        (
            r.error_code(),
            r.json()["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let mut missing = custom_declaration("p", "web");
    missing["stages"][1]["actions"][0]["configuration"] = json!({});
    let (code, message) = refused(missing);
    assert_eq!(code, "InvalidActionDeclarationException");
    assert!(message.contains("'Project'"), "{message}");
    let mut unknown = custom_declaration("p", "web");
    unknown["stages"][1]["actions"][0]["configuration"]["Other"] = "x".into();
    assert_eq!(refused(unknown).0, "InvalidActionDeclarationException");
    let mut outputs = custom_declaration("p", "web");
    outputs["stages"][1]["actions"][0]["outputArtifacts"] = json!([{"name": "a"}, {"name": "b"}]);
    assert_eq!(refused(outputs).0, "InvalidActionDeclarationException");
    let mut version = custom_declaration("p", "web");
    version["stages"][1]["actions"][0]["actionTypeId"]["version"] = "2".into();
    assert_eq!(refused(version).0, "InvalidActionDeclarationException");
    assert_eq!(
        refused(custom_declaration("p", "not a queryable value")).0,
        "InvalidActionDeclarationException"
    );
    assert_eq!(
        server.call("ListPipelines", json!({})).json()["pipelines"],
        json!([])
    );
}

#[tokio::test]
async fn a_job_worker_runs_the_custom_action_with_continuations_and_output_variables() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("pipeline", "web"));
    let execution = latest_execution(&cp, "pipeline").await;

    let job = poll_one(&cp, "web").await;
    // Another project's worker gets nothing, and a job handed out is not handed out again.
    let other = cp
        .poll_for_jobs()
        .action_type_id(builder_id())
        .query_param("Project", "api")
        .send()
        .await
        .unwrap();
    assert!(other.jobs().is_empty());
    let again = cp
        .poll_for_jobs()
        .action_type_id(builder_id())
        .send()
        .await
        .unwrap();
    assert!(again.jobs().is_empty());

    let data = job.data().unwrap();
    assert_eq!(job.account_id(), Some("000000000000"));
    let config = data
        .action_configuration()
        .unwrap()
        .configuration()
        .unwrap();
    assert_eq!(config["Project"], "web");
    assert_eq!(config["Token"], "s3cret");
    let context = data.pipeline_context().unwrap();
    assert_eq!(context.pipeline_name(), Some("pipeline"));
    assert_eq!(context.stage().unwrap().name(), Some("build"));
    assert_eq!(context.pipeline_execution_id(), Some(execution.as_str()));
    assert_eq!(
        context.pipeline_arn(),
        Some("arn:aws:codepipeline:eu-central-1:000000000000:pipeline")
    );
    let input = data.input_artifacts()[0]
        .location()
        .unwrap()
        .s3_location()
        .unwrap();
    assert_eq!(input.bucket_name(), "artifact-store-bucket");
    let output = data.output_artifacts()[0]
        .location()
        .unwrap()
        .s3_location()
        .unwrap();
    assert!(data
        .artifact_credentials()
        .unwrap()
        .access_key_id()
        .starts_with("ASIA"));
    assert!(data.continuation_token().is_none());
    assert_eq!(data.encryption_key().unwrap().id(), "alias/pipeline");

    let id = job.id().unwrap();
    let (code, _, _) = failure(cp.acknowledge_job().job_id(id).nonce("0").send().await);
    assert_eq!(code, "InvalidNonceException");
    let ack = cp
        .acknowledge_job()
        .job_id(id)
        .nonce(job.nonce().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status().unwrap().as_str(), "InProgress");
    let details = cp.get_job_details().job_id(id).send().await.unwrap();
    assert_eq!(details.job_details().unwrap().id(), Some(id));

    // Half way: the job completes and a new one carries the token.
    cp.put_job_success_result()
        .job_id(id)
        .continuation_token("step2")
        .execution_details(
            ExecutionDetails::builder()
                .summary("half")
                .external_execution_id("r1")
                .percent_complete(50)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let state = cp
        .get_pipeline_state()
        .name("pipeline")
        .send()
        .await
        .unwrap();
    let latest = state.stage_states()[1].action_states()[0]
        .latest_execution()
        .unwrap();
    assert_eq!(latest.status().unwrap().as_str(), "InProgress");
    assert_eq!(latest.percent_complete(), Some(50));
    assert_eq!(latest.external_execution_id(), Some("r1"));
    assert_eq!(latest.summary(), Some("half"));
    assert_eq!(latest.external_execution_url(), Some("http://ci/run/r1"));
    assert_eq!(
        state.stage_states()[1].action_states()[0].entity_url(),
        Some("http://ci/web")
    );
    let (code, _, _) = failure(cp.put_job_success_result().job_id(id).send().await);
    assert_eq!(code, "InvalidJobStateException");

    let second = poll_one(&cp, "web").await;
    assert_ne!(second.id(), job.id());
    assert_eq!(second.data().unwrap().continuation_token(), Some("step2"));
    let id2 = second.id().unwrap();
    // The worker writes its output artifact where the job says, then reports the version.
    s3.put_object()
        .bucket(output.bucket_name())
        .key(output.object_key())
        .body(ByteStream::from_static(b"built bytes"))
        .send()
        .await
        .unwrap();
    let (code, _, _) = failure(
        cp.put_job_success_result()
            .job_id(id2)
            .output_variables("BIG", "x".repeat(130_000))
            .send()
            .await,
    );
    assert_eq!(code, "OutputVariablesSizeExceededException");
    cp.put_job_success_result()
        .job_id(id2)
        .output_variables("VERSION", "1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "releases/1.2.3.zip").await,
        b"built bytes"
    );
    let actions = server.call("ListActionExecutions", json!({"pipelineName": "pipeline"}));
    let build = actions.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "build")
        .cloned()
        .unwrap();
    assert_eq!(build["status"], "Succeeded");
    assert_eq!(
        build["output"]["executionResult"]["externalExecutionId"],
        "r1"
    );
    assert_eq!(build["output"]["outputVariables"]["VERSION"], "1.2.3");
    let ack = cp
        .acknowledge_job()
        .job_id(id2)
        .nonce(second.nonce().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status().unwrap().as_str(), "Succeeded");
    let (code, _, _) = failure(
        cp.put_job_success_result()
            .job_id("00000000-0000-0000-0000-000000000000")
            .send()
            .await,
    );
    assert_eq!(code, "JobNotFoundException");
}

#[tokio::test]
async fn a_job_failure_fails_the_action_with_its_message() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("pipeline", "web"));
    let execution = latest_execution(&cp, "pipeline").await;
    let job = poll_one(&cp, "web").await;
    cp.put_job_failure_result()
        .job_id(job.id().unwrap())
        .failure_details(
            FailureDetails::builder()
                .r#type(FailureType::ConfigurationError)
                .message("the project web has no Makefile")
                .external_execution_id("run-7")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Failed
    );
    let state = cp
        .get_pipeline_state()
        .name("pipeline")
        .send()
        .await
        .unwrap();
    let latest = state.stage_states()[1].action_states()[0]
        .latest_execution()
        .unwrap();
    let error = latest.error_details().unwrap();
    assert_eq!(error.code(), Some("ConfigurationError"));
    assert_eq!(error.message(), Some("the project web has no Makefile"));
    assert_eq!(latest.external_execution_id(), Some("run-7"));
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&execution)
        .send()
        .await
        .unwrap();
    let summary = e
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(summary.contains("no Makefile"), "{summary}");
    let (code, _, _) = failure(
        cp.put_job_failure_result()
            .job_id(job.id().unwrap())
            .failure_details(
                FailureDetails::builder()
                    .r#type(FailureType::JobFailed)
                    .message("again")
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "InvalidJobStateException");
}

#[tokio::test]
async fn a_job_nobody_completes_times_out_and_a_stop_cancels_jobs() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_JOB_TIMEOUT_SECONDS", "1")]);
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("pipeline", "web"));
    let execution = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Failed
    );
    let state = cp
        .get_pipeline_state()
        .name("pipeline")
        .send()
        .await
        .unwrap();
    let latest = state.stage_states()[1].action_states()[0]
        .latest_execution()
        .unwrap();
    assert_eq!(latest.error_details().unwrap().code(), Some("JobTimedOut"));
    let job_id = job_of(&server, &execution);
    let r = server.call("AcknowledgeJob", json!({"jobId": job_id, "nonce": "x"}));
    assert_eq!(r.error_code(), "InvalidNonceException");

    // A stop that abandons the action cancels its job.
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("pipeline", "web"));
    let execution = latest_execution(&cp, "pipeline").await;
    let job = poll_one(&cp, "web").await;
    cp.stop_pipeline_execution()
        .pipeline_name("pipeline")
        .pipeline_execution_id(&execution)
        .abandon(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Stopped
    );
    let (code, _, _) = failure(
        cp.put_job_success_result()
            .job_id(job.id().unwrap())
            .send()
            .await,
    );
    assert_eq!(code, "InvalidJobStateException");
}

/// The job id of the build action of an execution, from the history of its events.
fn job_of(server: &Server, execution: &str) -> String {
    let history = server.client().http(
        "GET",
        &format!("/_codepipeline_local/history/execution?id={execution}"),
        "localhost",
        b"",
    );
    assert_eq!(history.status, 200, "{}", history.text());
    let events = history.json()["events"].as_array().unwrap().clone();
    events
        .iter()
        .find_map(|e| e["data"]["ActionStarted"]["job"]["id"].as_str())
        .unwrap_or_else(|| panic!("no job in {}", history.text()))
        .to_string()
}

#[tokio::test]
async fn a_queued_job_survives_sigkill() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    create_builder(&cp, "1").await;
    create(&server, custom_declaration("pipeline", "web"));
    let execution = latest_execution(&cp, "pipeline").await;
    let job = poll_one(&cp, "web").await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    let cp = server.codepipeline();
    // The job a poll handed out before the crash but nobody acknowledged is offered again.
    let again = poll_one(&cp, "web").await;
    assert_eq!(again.id(), job.id());
    let output = again.data().unwrap().output_artifacts()[0]
        .location()
        .unwrap()
        .s3_location()
        .unwrap()
        .clone();
    server
        .s3()
        .put_object()
        .bucket(output.bucket_name())
        .key(output.object_key())
        .body(ByteStream::from_static(b"after the crash"))
        .send()
        .await
        .unwrap();
    cp.put_job_success_result()
        .job_id(again.id().unwrap())
        .output_variables("VERSION", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn third_party_jobs_are_worked_with_a_client_token() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("pipeline");
    decl["stages"][0]["actions"][0] = json!({"name": "source",
        "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
        "configuration": {"Owner": "acme", "Repo": "web", "Branch": "main", "OAuthToken": "t"},
        "outputArtifacts": [{"name": "intermediate-file"}]});
    create(&server, decl);
    let execution = latest_execution(&cp, "pipeline").await;
    let github =
        json!({"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"});
    // PollForJobs is for custom types only.
    let r = server.call("PollForJobs", json!({"actionTypeId": github}));
    assert_eq!(r.error_code(), "ValidationException");
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let r = server.call("PollForThirdPartyJobs", json!({"actionTypeId": github}));
        assert_eq!(r.status, 200, "{}", r.text());
        if let Some(job) = r.json()["jobs"].as_array().and_then(|j| j.first().cloned()) {
            break job;
        }
        assert!(Instant::now() < deadline, "no third-party job after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let job_id = job["jobId"].as_str().unwrap();
    assert!(job["clientId"].as_str().is_some_and(|c| c.len() == 36));
    // The custom family does not see it.
    let r = server.call("GetJobDetails", json!({"jobId": job_id}));
    assert_eq!(r.error_code(), "JobNotFoundException");
    let details = server.call(
        "GetThirdPartyJobDetails",
        json!({"jobId": job_id, "clientToken": "ct"}),
    );
    assert_eq!(details.status, 200, "{}", details.text());
    let details = details.json()["jobDetails"].clone();
    assert_eq!(
        details["data"]["actionConfiguration"]["configuration"]["Repo"],
        "web"
    );
    let nonce = details["nonce"].as_str().unwrap();
    let ack = server.call(
        "AcknowledgeThirdPartyJob",
        json!({"jobId": job_id, "nonce": nonce, "clientToken": "ct"}),
    );
    assert_eq!(ack.json()["status"], "InProgress", "{}", ack.text());
    let wrong = server.call(
        "PutThirdPartyJobSuccessResult",
        json!({"jobId": job_id, "clientToken": "other"}),
    );
    assert_eq!(wrong.error_code(), "InvalidClientTokenException");
    // The source writes its artifact, then reports the revision it read.
    let location = &details["data"]["outputArtifacts"][0]["location"]["s3Location"];
    s3.put_object()
        .bucket(location["bucketName"].as_str().unwrap())
        .key(location["objectKey"].as_str().unwrap())
        .body(ByteStream::from_static(b"from github"))
        .send()
        .await
        .unwrap();
    let done = server.call(
        "PutThirdPartyJobSuccessResult",
        json!({"jobId": job_id, "clientToken": "ct",
               "currentRevision": {"revision": "abc123", "changeIdentifier": "abc123"}}),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        finished(&cp, "pipeline", &execution).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(
        body(&s3, "target-bucket", "output-file").await,
        b"from github"
    );
}
