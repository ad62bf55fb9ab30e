//! Starts that are not StartPipelineExecution: PutActionRevision; webhooks, created and listed
//! with aws-sdk-codepipeline, their URLs receiving POSTs that pass or fail their authentication
//! and filters; and S3 sources that poll for changes.

use aws_sdk_codepipeline::types::{
    ActionRevision, PipelineExecutionStatus, WebhookAuthConfiguration, WebhookAuthenticationType,
    WebhookDefinition, WebhookFilterRule,
};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, RawResponse, Server};
use crate::engine::{finished, latest_execution, tutorial_buckets};

async fn tutorial(server: &Server) -> String {
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("pipeline")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    first
}

fn executions(server: &Server) -> Vec<Value> {
    server
        .call(
            "ListPipelineExecutions",
            json!({ "pipelineName": "pipeline" }),
        )
        .json()["pipelineExecutionSummaries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn put_action_revision_starts_a_run_for_a_revision_not_read_yet() {
    let server = Server::start();
    let first = tutorial(&server).await;
    let (cp, s3) = (server.codepipeline(), server.s3());
    let read = executions(&server)[0]["sourceRevisions"][0]["revisionId"]
        .as_str()
        .unwrap()
        .to_string();
    let revision = |id: &str| {
        ActionRevision::builder()
            .revision_id(id)
            .revision_change_id(id)
            .created(aws_sdk_codepipeline::primitives::DateTime::from_secs(
                1_800_000_000,
            ))
            .build()
            .unwrap()
    };
    let same = cp
        .put_action_revision()
        .pipeline_name("pipeline")
        .stage_name("stage1")
        .action_name("action1")
        .action_revision(revision(&read))
        .send()
        .await
        .unwrap();
    assert!(!same.new_revision());
    assert!(same.pipeline_execution_id().is_none());
    assert_eq!(executions(&server).len(), 1);
    let put = s3
        .put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"second\n"))
        .send()
        .await
        .unwrap();
    let version = put.version_id().unwrap().to_string();
    let new = cp
        .put_action_revision()
        .pipeline_name("pipeline")
        .stage_name("stage1")
        .action_name("action1")
        .action_revision(revision(&version))
        .send()
        .await
        .unwrap();
    assert!(new.new_revision());
    let id = new.pipeline_execution_id().unwrap().to_string();
    assert_ne!(id, first);
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let run = &executions(&server)[0];
    assert_eq!(run["trigger"]["triggerType"], "PutActionRevision");
    assert_eq!(run["sourceRevisions"][0]["revisionId"], version.as_str());
    let call = |pipeline: &str, stage: &str, action: &str| {
        server
            .call(
                "PutActionRevision",
                json!({"pipelineName": pipeline, "stageName": stage, "actionName": action,
                       "actionRevision": {"revisionId": "x", "revisionChangeId": "x", "created": 1}}),
            )
            .error_code()
    };
    assert_eq!(
        call("nope", "stage1", "action1"),
        "PipelineNotFoundException"
    );
    assert_eq!(
        call("pipeline", "nope", "action1"),
        "StageNotFoundException"
    );
    assert_eq!(
        call("pipeline", "stage1", "nope"),
        "ActionNotFoundException"
    );
}

/// POSTs `body` to a webhook URL, with GitHub's signature header when given.
fn post(server: &Server, url: &str, body: &str, signature: Option<&str>) -> RawResponse {
    let path = &url[url.find("/_codepipeline_local/").unwrap()..];
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(s) = signature {
        head.push_str(&format!("X-Hub-Signature-256: {s}\r\n"));
    }
    head.push_str("\r\n");
    server.client().exchange(head.as_bytes(), body.as_bytes())
}

/// GitHub's signature of `body` with `secret`, computed here with Python's hmac.
fn sign(secret: &str, body: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys;print('sha256='+hmac.new(sys.argv[1].encode(),sys.argv[2].encode(),hashlib.sha256).hexdigest())",
            secret,
            body,
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn definition(
    name: &str,
    auth: WebhookAuthenticationType,
    config: WebhookAuthConfiguration,
) -> WebhookDefinition {
    WebhookDefinition::builder()
        .name(name)
        .target_pipeline("pipeline")
        .target_action("action1")
        .filters(
            WebhookFilterRule::builder()
                .json_path("$.object.key")
                .match_equals("{S3ObjectKey}")
                .build()
                .unwrap(),
        )
        .authentication(auth)
        .authentication_configuration(config)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_webhook_starts_its_pipeline_when_authenticated_and_selected() {
    let server = Server::start();
    tutorial(&server).await;
    let cp = server.codepipeline();
    let secret = "s3cr3t";
    let put = cp
        .put_webhook()
        .webhook(definition(
            "github",
            WebhookAuthenticationType::GithubHmac,
            WebhookAuthConfiguration::builder()
                .secret_token(secret)
                .build(),
        ))
        .send()
        .await
        .unwrap();
    let hook = put.webhook().unwrap();
    let url = hook.url().to_string();
    assert_eq!(
        hook.arn(),
        Some("arn:aws:codepipeline:eu-central-1:000000000000:webhook:github")
    );
    let body = r#"{"object": {"key": "file"}}"#;
    // A wrong signature, a missing one, and a body the filter does not select start nothing.
    assert_eq!(post(&server, &url, body, Some("sha256=00")).status, 403);
    assert_eq!(post(&server, &url, body, None).status, 403);
    let other = r#"{"object": {"key": "other"}}"#;
    let unselected = post(&server, &url, other, Some(&sign(secret, other)));
    assert_eq!(unselected.status, 200);
    assert!(
        unselected.text().contains("did not select"),
        "{}",
        unselected.text()
    );
    assert_eq!(executions(&server).len(), 1);
    let started = post(&server, &url, body, Some(&sign(secret, body)));
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let runs = executions(&server);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["trigger"]["triggerType"], "Webhook");
    assert_eq!(
        runs[0]["trigger"]["triggerDetail"],
        "arn:aws:codepipeline:eu-central-1:000000000000:webhook:github"
    );

    // IP authentication: loopback is in 127.0.0.0/8, not in 10.0.0.0/8.
    for (name, range) in [("local", "127.0.0.0/8"), ("far", "10.0.0.0/8")] {
        cp.put_webhook()
            .webhook(definition(
                name,
                WebhookAuthenticationType::Ip,
                WebhookAuthConfiguration::builder()
                    .allowed_ip_range(range)
                    .build(),
            ))
            .send()
            .await
            .unwrap();
    }
    let listed = cp.list_webhooks().max_results(2).send().await.unwrap();
    let page: Vec<&str> = listed
        .webhooks()
        .iter()
        .map(|w| w.definition().unwrap().name())
        .collect();
    assert_eq!(page, ["far", "github"]);
    assert!(listed.webhooks()[1].last_triggered().is_some());
    let rest = cp
        .list_webhooks()
        .max_results(2)
        .next_token(listed.next_token().unwrap())
        .send()
        .await
        .unwrap();
    let local = &rest.webhooks()[0];
    assert_eq!(local.definition().unwrap().name(), "local");
    assert!(rest.next_token().is_none());
    assert_eq!(post(&server, local.url(), body, None).status, 200);
    let far = listed.webhooks()[0].url();
    assert_eq!(post(&server, far, body, None).status, 403);

    // Webhooks are taggable resources.
    let arn = "arn:aws:codepipeline:eu-central-1:000000000000:webhook:github";
    cp.tag_resource()
        .resource_arn(arn)
        .tags(
            aws_sdk_codepipeline::types::Tag::builder()
                .key("team")
                .value("web")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tags = cp
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "team");
    cp.untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = cp
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty());
    let missing = server.call(
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:codepipeline:eu-central-1:000000000000:webhook:nope"}),
    );
    assert_eq!(missing.error_code(), "ResourceNotFoundException");

    // Registration is recorded; a deleted webhook is gone, and its URL with it.
    cp.register_webhook_with_third_party()
        .webhook_name("github")
        .send()
        .await
        .unwrap();
    cp.deregister_webhook_with_third_party()
        .webhook_name("github")
        .send()
        .await
        .unwrap();
    let missing = server.call(
        "RegisterWebhookWithThirdParty",
        json!({ "webhookName": "nope" }),
    );
    assert_eq!(missing.error_code(), "WebhookNotFoundException");
    cp.delete_webhook().name("github").send().await.unwrap();
    assert_eq!(
        post(&server, &url, body, Some(&sign(secret, body))).status,
        404
    );
}

#[tokio::test]
async fn put_webhook_refuses_what_aws_refuses() {
    let server = Server::start();
    tutorial(&server).await;
    let hook = |pipeline: &str, auth: &str, config: Value, path: &str| {
        server.call(
            "PutWebhook",
            json!({"webhook": {"name": "w", "targetPipeline": pipeline, "targetAction": "action1",
                "filters": [{"jsonPath": path}], "authentication": auth,
                "authenticationConfiguration": config}}),
        )
    };
    assert_eq!(
        hook("nope", "UNAUTHENTICATED", json!({}), "$.a").error_code(),
        "PipelineNotFoundException"
    );
    assert_eq!(
        hook("pipeline", "GITHUB_HMAC", json!({}), "$.a").error_code(),
        "InvalidWebhookAuthenticationParametersException"
    );
    assert_eq!(
        hook("pipeline", "IP", json!({"AllowedIPRange": "ten"}), "$.a").error_code(),
        "InvalidWebhookAuthenticationParametersException"
    );
    assert_eq!(
        hook("pipeline", "UNAUTHENTICATED", json!({}), "a.b").error_code(),
        "InvalidWebhookFilterPatternException"
    );
    assert_eq!(
        server.call("ListWebhooks", json!({})).json()["webhooks"],
        json!([])
    );
}

#[tokio::test]
async fn a_new_version_of_a_polled_s3_source_starts_the_pipeline_at_once() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let mut decl = tutorial_declaration("pipeline");
    decl["stages"][0]["actions"][0]["configuration"]
        .as_object_mut()
        .unwrap()
        .remove("PollForSourceChanges");
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "pipeline").await;
    assert_eq!(
        finished(&cp, "pipeline", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let put = s3
        .put_object()
        .bucket("source-bucket")
        .key("file")
        .body(ByteStream::from_static(b"polled\n"))
        .send()
        .await
        .unwrap();
    let version = put.version_id().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        let runs = executions(&server);
        if runs.len() == 2 {
            break runs[0]["pipelineExecutionId"].as_str().unwrap().to_string();
        }
        assert!(runs.len() < 3, "{runs:?}");
        assert!(std::time::Instant::now() < deadline, "no run started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        finished(&cp, "pipeline", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let runs = executions(&server);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["trigger"]["triggerType"], "PollForSourceChanges");
    assert_eq!(
        runs[0]["sourceRevisions"][0]["revisionId"],
        version.as_str()
    );
}
