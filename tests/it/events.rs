//! EventBridge: rules, targets and PutEvents on the default bus, and the pipelines their rules
//! start (trigger CloudWatchEvent): from PutEvents, from S3 and CodeCommit sources that do not
//! poll.

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, RawResponse, Server};
use crate::engine::{finished, latest_execution, tutorial_buckets};

fn events(server: &Server, operation: &str, body: Value) -> RawResponse {
    server.client().raw_for(
        "events",
        Some(&format!("AWSEvents.{operation}")),
        body.to_string().as_bytes(),
    )
}

fn ok(r: RawResponse) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn rules_and_targets_are_kept_and_refused_as_eventbridge_words_it() {
    let server = Server::start();
    let pattern = json!({"source": ["aws.codecommit"]}).to_string();
    let made = ok(events(
        &server,
        "PutRule",
        json!({"Name": "push", "EventPattern": pattern, "Description": "d"}),
    ));
    let arn = "arn:aws:events:eu-central-1:000000000000:rule/push";
    assert_eq!(made["RuleArn"], arn);
    let described = ok(events(&server, "DescribeRule", json!({"Name": "push"})));
    assert_eq!(described["Arn"], arn);
    assert_eq!(described["State"], "ENABLED");
    assert_eq!(described["EventPattern"], pattern.as_str());
    assert_eq!(described["EventBusName"], "default");
    assert_eq!(described["Description"], "d");

    let refused = |r: RawResponse, code: &str, message: &str| {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.error_code(), code);
        assert!(
            r.json()["message"].as_str().unwrap().contains(message),
            "{}",
            r.text()
        );
    };
    refused(
        events(
            &server,
            "PutRule",
            json!({"Name": "bad", "EventPattern": "{\"source\": \"aws.s3\"}"}),
        ),
        "InvalidEventPatternException",
        "Event pattern is not valid. Reason: ",
    );
    refused(
        events(&server, "PutRule", json!({"Name": "bad"})),
        "ValidationException",
        "Parameter(s) EventPattern or ScheduleExpression must be specified.",
    );
    refused(
        events(&server, "DescribeRule", json!({"Name": "nope"})),
        "ResourceNotFoundException",
        "Rule nope does not exist on EventBus default.",
    );
    refused(
        events(
            &server,
            "PutTargets",
            json!({"Rule": "nope", "Targets": [{"Id": "1", "Arn": "arn:aws:codepipeline:eu-central-1:000000000000:p"}]}),
        ),
        "ResourceNotFoundException",
        "Rule nope does not exist",
    );
    refused(
        events(
            &server,
            "DescribeRule",
            json!({"Name": "push", "EventBusName": "other"}),
        ),
        "ResourceNotFoundException",
        "Event bus other does not exist.",
    );
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"Id": i.to_string(), "Arn": format!("arn:aws:codepipeline:eu-central-1:000000000000:p{i}")}))
        .collect();
    refused(
        events(
            &server,
            "PutTargets",
            json!({"Rule": "push", "Targets": six}),
        ),
        "LimitExceededException",
        "maximum number allowed",
    );
    let put = ok(events(
        &server,
        "PutTargets",
        json!({"Rule": "push", "Targets": [
        {"Id": "pipeline", "Arn": "arn:aws:codepipeline:eu-central-1:000000000000:p", "RoleArn": "arn:aws:iam::000000000000:role/r"}]}),
    ));
    assert_eq!(put, json!({"FailedEntryCount": 0, "FailedEntries": []}));
    let targets = ok(events(
        &server,
        "ListTargetsByRule",
        json!({"Rule": "push"}),
    ));
    assert_eq!(targets["Targets"][0]["Id"], "pipeline");
    assert_eq!(
        targets["Targets"][0]["RoleArn"],
        "arn:aws:iam::000000000000:role/r"
    );
    refused(
        events(&server, "DeleteRule", json!({"Name": "push"})),
        "ValidationException",
        "Rule can't be deleted since it has targets.",
    );
    ok(events(&server, "DisableRule", json!({"Name": "push"})));
    let listed = ok(events(&server, "ListRules", json!({"NamePrefix": "pu"})));
    assert_eq!(listed["Rules"][0]["State"], "DISABLED");
    assert_eq!(
        ok(events(&server, "ListRules", json!({"NamePrefix": "x"})))["Rules"],
        json!([])
    );
    ok(events(
        &server,
        "RemoveTargets",
        json!({"Rule": "push", "Ids": ["pipeline"]}),
    ));
    ok(events(&server, "DeleteRule", json!({"Name": "push"})));
    refused(
        events(&server, "DescribeRule", json!({"Name": "push"})),
        "ResourceNotFoundException",
        "Rule push does not exist",
    );
    // What is not served says so, by name.
    let r = events(&server, "CreateEventBus", json!({"Name": "bus"}));
    assert!(r.text().contains("CreateEventBus"), "{}", r.text());
    assert!(r.status >= 400);
}

/// The tutorial pipeline `name` with its S3 source not polling, and a rule `rule` with
/// `pattern` targeting it.
fn not_polling(server: &Server, name: &str) {
    let mut decl = tutorial_declaration(name);
    decl["stages"][0]["actions"][0]["configuration"]["PollForSourceChanges"] = "false".into();
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
}

pub(crate) fn rule_for(server: &Server, rule: &str, pattern: Value, pipeline: &str) -> String {
    let made = ok(events(
        server,
        "PutRule",
        json!({"Name": rule, "EventPattern": pattern.to_string()}),
    ));
    ok(events(
        server,
        "PutTargets",
        json!({"Rule": rule, "Targets": [
        {"Id": "pipeline", "Arn": format!("arn:aws:codepipeline:eu-central-1:000000000000:{pipeline}")}]}),
    ));
    made["RuleArn"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_s3_source_that_does_not_poll_is_started_by_the_rule_that_targets_it() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_SOURCE_POLL_INTERVAL_MS", "50")]);
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    not_polling(&server, "site");
    let first = latest_execution(&cp, "site").await;
    assert_eq!(
        finished(&cp, "site", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    crate::git::executions(&server, "site", 1).await;
    let put = |body: &'static [u8]| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("source-bucket")
                .key("file")
                .body(ByteStream::from_static(body))
                .send()
                .await
                .unwrap()
                .version_id()
                .unwrap()
                .to_string()
        }
    };
    // No rule: a new version starts nothing. The rule CloudTrail's pattern makes for the
    // object: the next version starts the pipeline.
    put(b"v2\n").await;
    let rule = rule_for(
        &server,
        "site-source",
        json!({"source": ["aws.s3"], "detail-type": ["AWS API Call via CloudTrail"],
               "detail": {"eventSource": ["s3.amazonaws.com"],
                          "eventName": ["CopyObject", "CompleteMultipartUpload", "PutObject"],
                          "requestParameters": {"bucketName": ["source-bucket"], "key": ["file"]}}}),
        "site",
    );
    let v3 = put(b"v3\n").await;
    let run = crate::git::executions(&server, "site", 2).await[0].clone();
    assert_eq!(run["trigger"]["triggerType"], "CloudWatchEvent");
    assert_eq!(run["trigger"]["triggerDetail"], rule.as_str());
    let id = run["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "site", id).await,
        PipelineExecutionStatus::Succeeded
    );
    let run = crate::git::executions(&server, "site", 2).await[0].clone();
    assert_eq!(run["sourceRevisions"][0]["revisionId"], v3.as_str());

    // A disabled rule starts nothing; an event put with PutEvents that a rule selects does.
    ok(events(
        &server,
        "DisableRule",
        json!({"Name": "site-source"}),
    ));
    put(b"v4\n").await;
    let custom = rule_for(
        &server,
        "deploy-now",
        json!({"source": ["acme.release"], "detail": {"app": ["site"]}}),
        "site",
    );
    let answer = ok(events(
        &server,
        "PutEvents",
        json!({"Entries": [
            {"Source": "acme.release", "DetailType": "Release", "Detail": "{\"app\": \"other\"}"},
            {"Source": "acme.release", "DetailType": "Release", "Detail": "{\"app\": \"site\"}"},
            {"Source": "acme.release", "DetailType": "Release", "Detail": "not json"},
            {"DetailType": "Release", "Detail": "{}"}
        ]}),
    ));
    assert_eq!(answer["FailedEntryCount"], 2);
    assert!(answer["Entries"][0]["EventId"].is_string());
    assert_eq!(answer["Entries"][2]["ErrorCode"], "MalformedDetail");
    assert_eq!(answer["Entries"][3]["ErrorCode"], "InvalidArgument");
    let run = crate::git::executions(&server, "site", 3).await[0].clone();
    assert_eq!(run["trigger"]["triggerType"], "CloudWatchEvent");
    assert_eq!(run["trigger"]["triggerDetail"], custom.as_str());
}

#[tokio::test]
async fn a_codecommit_source_that_does_not_poll_is_started_by_the_repository_rule() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let out = server.aws_cli(&[
        "codecommit",
        "create-repository",
        "--repository-name",
        "app",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = made["repositoryMetadata"]["cloneUrlHttp"]
        .as_str()
        .unwrap()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("app");
    crate::codecommit::push_first(&url, &dir);
    let decl = json!({
        "name": "app", "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"},
                "configuration": {"RepositoryName": "app", "BranchName": "main", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "code"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "app"},
                "inputArtifacts": [{"name": "code"}]}]}
        ]
    });
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "app").await;
    assert_eq!(
        finished(&cp, "app", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    crate::git::executions(&server, "app", 1).await;
    // No rule: a push starts nothing. The rule AWS documents for the branch: the next does.
    crate::git::commit_change(&dir, "<h1>v2</h1>\n", "Second");
    crate::git::git(&dir, &["push", "-q", "origin", "main"]);
    let rule = rule_for(
        &server,
        "app-main",
        json!({"source": ["aws.codecommit"], "detail-type": ["CodeCommit Repository State Change"],
               "resources": ["arn:aws:codecommit:eu-central-1:000000000000:app"],
               "detail": {"event": ["referenceCreated", "referenceUpdated"],
                          "referenceType": ["branch"], "referenceName": ["main"]}}),
        "app",
    );
    let third = crate::git::commit_change(&dir, "<h1>v3</h1>\n", "Third");
    crate::git::git(&dir, &["push", "-q", "origin", "main"]);
    let run = crate::git::executions(&server, "app", 2).await[0].clone();
    assert_eq!(run["trigger"]["triggerType"], "CloudWatchEvent");
    assert_eq!(run["trigger"]["triggerDetail"], rule.as_str());
    let id = run["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "app", id).await,
        PipelineExecutionStatus::Succeeded
    );
    let run = crate::git::executions(&server, "app", 2).await[0].clone();
    assert_eq!(run["sourceRevisions"][0]["revisionId"], third.as_str());
}
