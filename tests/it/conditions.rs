//! Stage conditions: VariableCheck rules before entry and on success, their results (FAIL, SKIP,
//! ROLLBACK), their states and rule executions, and the declarations AWS refuses.

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use serde_json::{json, Value};

use crate::common::{tutorial_declaration, Server};
use crate::engine::{finished, latest_execution, tutorial_buckets};

fn window(cron: &str, zone: Option<&str>) -> Value {
    let mut config = json!({ "Cron": cron });
    if let Some(zone) = zone {
        config["TimeZone"] = zone.into();
    }
    json!({"name": "window",
           "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "DeploymentWindow", "version": "1"},
           "configuration": config})
}

fn variable_check(value: &str, operator: &str) -> Value {
    json!({"name": "check-env",
           "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "VariableCheck", "version": "1"},
           "configuration": {"Variable": "#{variables.Env}", "Value": value, "Operator": operator}})
}

/// The tutorial as a V2 pipeline with an `Env` variable and a condition on its deploy stage.
fn with_condition(name: &str, kind: &str, condition: Value) -> Value {
    let mut decl = tutorial_declaration(name);
    decl["pipelineType"] = "V2".into();
    decl["variables"] = json!([{"name": "Env", "defaultValue": "prod"}]);
    decl["stages"][1][kind] = json!({ "conditions": [condition] });
    decl
}

fn start(server: &Server, name: &str, env: &str) -> String {
    let r = server.call(
        "StartPipelineExecution",
        json!({"name": name, "variables": [{"name": "Env", "value": env}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn deploys(server: &Server, pipeline: &str, id: &str) -> usize {
    let r = server.call(
        "ListActionExecutions",
        json!({"pipelineName": pipeline, "filter": {"pipelineExecutionId": id}}),
    );
    r.json()["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["stageName"] == "stage2")
        .count()
}

#[tokio::test]
async fn a_before_entry_condition_lets_in_fails_or_skips_the_stage() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let condition = json!({"result": "FAIL", "rules": [variable_check("prod", "EQ")]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("gated", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "gated").await;
    assert_eq!(
        finished(&cp, "gated", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "gated", &first), 1);

    let dev = start(&server, "gated", "dev");
    assert_eq!(
        finished(&cp, "gated", &dev).await,
        PipelineExecutionStatus::Failed
    );
    assert_eq!(deploys(&server, "gated", &dev), 0);
    let e = cp
        .get_pipeline_execution()
        .pipeline_name("gated")
        .pipeline_execution_id(&dev)
        .send()
        .await
        .unwrap();
    let summary = e
        .pipeline_execution()
        .unwrap()
        .status_summary()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("beforeEntry condition was not met"),
        "{summary}"
    );
    assert!(
        summary.contains("'dev' EQ 'prod' does not hold"),
        "{summary}"
    );
    let state = server
        .call("GetPipelineState", json!({"name": "gated"}))
        .json();
    let condition = &state["stageStates"][1]["beforeEntryConditionState"];
    assert_eq!(condition["latestExecution"]["status"], "Failed", "{state}");
    let rule = &condition["conditionStates"][0]["ruleStates"][0];
    assert_eq!(rule["ruleName"], "check-env");
    assert_eq!(rule["latestExecution"]["status"], "Failed");

    // The rule executions are listed, newest first, and paged.
    let rules = server
        .call("ListRuleExecutions", json!({"pipelineName": "gated"}))
        .json();
    let details = rules["ruleExecutionDetails"].as_array().unwrap().clone();
    assert_eq!(details.len(), 2, "{rules}");
    assert_eq!(details[0]["pipelineExecutionId"], dev.as_str());
    assert_eq!(details[0]["status"], "Failed");
    assert_eq!(
        details[0]["input"]["resolvedConfiguration"]["Variable"],
        "dev"
    );
    assert_eq!(details[1]["status"], "Succeeded");
    let page = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "gated", "maxResults": 1}),
        )
        .json();
    assert_eq!(page["ruleExecutionDetails"].as_array().unwrap().len(), 1);
    let rest = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "gated", "nextToken": page["nextToken"]}),
        )
        .json();
    assert_eq!(
        rest["ruleExecutionDetails"][0]["pipelineExecutionId"],
        first.as_str()
    );
    let filtered = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "gated", "filter": {"pipelineExecutionId": first}}),
        )
        .json();
    assert_eq!(
        filtered["ruleExecutionDetails"].as_array().unwrap().len(),
        1
    );
    let r = server.call(
        "ListRuleExecutions",
        json!({"pipelineName": "gated", "nextToken": "junk"}),
    );
    assert_eq!(r.error_code(), "InvalidNextTokenException");
    let r = server.call(
        "OverrideStageCondition",
        json!({"pipelineName": "gated", "stageName": "stage2", "pipelineExecutionId": dev, "conditionType": "BEFORE_ENTRY"}),
    );
    assert_eq!(r.error_code(), "ConditionNotOverridableException");

    // SKIP: the stage is skipped and the execution goes on.
    let condition = json!({"result": "SKIP", "rules": [variable_check("prod", "EQ")]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("skipping", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "skipping").await;
    assert_eq!(
        finished(&cp, "skipping", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let skipped = start(&server, "skipping", "staging");
    assert_eq!(
        finished(&cp, "skipping", &skipped).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "skipping", &skipped), 0);
    let state = server
        .call("GetPipelineState", json!({"name": "skipping"}))
        .json();
    assert_eq!(
        state["stageStates"][1]["latestExecution"]["status"], "Skipped",
        "{state}"
    );
}

#[tokio::test]
async fn an_on_success_condition_fails_the_stage_or_rolls_it_back() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    let condition = json!({"result": "FAIL", "rules": [variable_check("^p.*", "MATCHES")]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("checked", "onSuccess", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "checked").await;
    assert_eq!(
        finished(&cp, "checked", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    let dev = start(&server, "checked", "dev");
    assert_eq!(
        finished(&cp, "checked", &dev).await,
        PipelineExecutionStatus::Failed
    );
    // The deploy ran and succeeded; the stage failed by its condition.
    assert_eq!(deploys(&server, "checked", &dev), 1);
    let state = server
        .call("GetPipelineState", json!({"name": "checked"}))
        .json();
    assert_eq!(
        state["stageStates"][1]["onSuccessConditionState"]["latestExecution"]["status"],
        "Failed"
    );
    assert_eq!(
        state["stageStates"][1]["latestExecution"]["status"],
        "Failed"
    );

    // ROLLBACK: the stage is rolled back to its last success.
    let condition = json!({"result": "ROLLBACK", "rules": [variable_check("prod", "EQ")]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("rolling", "onSuccess", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let good = latest_execution(&cp, "rolling").await;
    assert_eq!(
        finished(&cp, "rolling", &good).await,
        PipelineExecutionStatus::Succeeded
    );
    let bad = start(&server, "rolling", "dev");
    assert_eq!(
        finished(&cp, "rolling", &bad).await,
        PipelineExecutionStatus::Failed
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rollback = loop {
        let listed = server
            .call("ListPipelineExecutions", json!({"pipelineName": "rolling"}))
            .json();
        let newest = listed["pipelineExecutionSummaries"][0].clone();
        if newest["executionType"] == "ROLLBACK" {
            break newest;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rollback after 30 s: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(rollback["trigger"]["triggerType"], "AutomatedRollback");
    assert_eq!(
        rollback["rollbackMetadata"]["rollbackTargetPipelineExecutionId"],
        good.as_str()
    );
    let id = rollback["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "rolling", id).await,
        PipelineExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn conditions_are_declared_as_aws_allows_and_rule_types_are_listed() {
    let server = Server::start();
    let refused = |kind: &str, condition: Value| {
        let r = server.call(
            "CreatePipeline",
            json!({"pipeline": with_condition("p", kind, condition)}),
        );
        (
            r.error_code(),
            r.json()["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let rule = variable_check("prod", "EQ");
    assert_eq!(
        refused("onSuccess", json!({"result": "SKIP", "rules": [rule]})).0,
        "InvalidStageDeclarationException"
    );
    let mut missing = rule.clone();
    missing["configuration"]
        .as_object_mut()
        .unwrap()
        .remove("Operator");
    let (code, message) = refused("beforeEntry", json!({"result": "FAIL", "rules": [missing]}));
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("'Operator'"), "{message}");
    assert_eq!(
        refused(
            "beforeEntry",
            json!({"result": "FAIL", "rules": [variable_check("x", "ABOUT")]})
        )
        .0,
        "InvalidStageDeclarationException"
    );
    let build = json!({"name": "ask",
        "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
        "configuration": {"ProjectName": "decide"}});
    let (code, message) = refused("beforeEntry", json!({"result": "FAIL", "rules": [build]}));
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("CodeBuild"), "{message}");
    let alarm = json!({"name": "alarm",
        "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "1"},
        "configuration": {"AlarmName": "errors", "AlarmStates": "ALARM,BROKEN"}});
    let (code, message) = refused("beforeEntry", json!({"result": "FAIL", "rules": [alarm]}));
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("AlarmStates"), "{message}");
    let lambda = json!({"name": "ask",
        "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "LambdaInvoke", "version": "1"},
        "configuration": {"UserParameters": "x"}});
    let (code, message) = refused("beforeEntry", json!({"result": "FAIL", "rules": [lambda]}));
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("'FunctionName'"), "{message}");
    let (code, message) = refused(
        "beforeEntry",
        json!({"result": "FAIL", "rules": [window("0 0 25 ? * * *", None)]}),
    );
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("Cron"), "{message}");
    let (code, message) = refused(
        "beforeEntry",
        json!({"result": "FAIL", "rules": [window("0 0 9 ? * * *", Some("Mars/Olympus"))]}),
    );
    assert_eq!(code, "InvalidStageDeclarationException");
    assert!(message.contains("TimeZone"), "{message}");
    let unknown = json!({"name": "u", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "Nope", "version": "1"}});
    assert_eq!(
        refused("beforeEntry", json!({"result": "FAIL", "rules": [unknown]})).0,
        "InvalidStageDeclarationException"
    );
    let mut two = with_condition(
        "p",
        "beforeEntry",
        json!({"result": "FAIL", "rules": [rule.clone()]}),
    );
    two["stages"][1]["beforeEntry"]["conditions"] = json!([
        {"result": "FAIL", "rules": [rule.clone()]}, {"result": "SKIP", "rules": [rule.clone()]}
    ]);
    // The model allows one condition per kind.
    let r = server.call("CreatePipeline", json!({ "pipeline": two }));
    assert_eq!(r.error_code(), "ValidationException", "{}", r.text());
    assert_eq!(
        server.call("ListPipelines", json!({})).json()["pipelines"],
        json!([])
    );

    let types = server.call("ListRuleTypes", json!({})).json();
    let ids: Vec<&str> = types["ruleTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"]["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "CloudWatchAlarm",
            "DeploymentWindow",
            "LambdaInvoke",
            "VariableCheck"
        ]
    );
    let sdk = server
        .codepipeline()
        .list_rule_types()
        .send()
        .await
        .unwrap();
    let properties = sdk.rule_types()[3].rule_configuration_properties();
    assert_eq!(properties.len(), 3);
    assert!(properties.iter().all(|p| p.required()));
}

#[tokio::test]
async fn a_closed_deployment_window_holds_the_stage_until_overridden() {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    // Open every minute of 2099 only: closed for this test.
    let condition =
        json!({"result": "FAIL", "rules": [window("0 * * ? * * 2099", Some("Europe/Berlin"))]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("held", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "held").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let state = loop {
        let state = server
            .call("GetPipelineState", json!({"name": "held"}))
            .json();
        if state["stageStates"][1]["beforeEntryConditionState"].is_object() {
            break state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the condition was never checked: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let condition = &state["stageStates"][1]["beforeEntryConditionState"];
    assert_eq!(
        condition["latestExecution"]["status"], "InProgress",
        "{state}"
    );
    assert_eq!(
        condition["conditionStates"][0]["ruleStates"][0]["latestExecution"]["status"],
        "InProgress"
    );
    assert_eq!(deploys(&server, "held", &id), 0);
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
    let overridden = cp
        .override_stage_condition()
        .pipeline_name("held")
        .stage_name("stage2")
        .pipeline_execution_id(&id)
        .condition_type(aws_sdk_codepipeline::types::ConditionType::BeforeEntry)
        .send()
        .await;
    assert!(overridden.is_ok(), "{overridden:?}");
    assert_eq!(
        finished(&cp, "held", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "held", &id), 1);
    let state = server
        .call("GetPipelineState", json!({"name": "held"}))
        .json();
    assert_eq!(
        state["stageStates"][1]["beforeEntryConditionState"]["latestExecution"]["status"],
        "Overridden"
    );
    let again = server.call(
        "OverrideStageCondition",
        json!({"pipelineName": "held", "stageName": "stage2", "pipelineExecutionId": id, "conditionType": "BEFORE_ENTRY"}),
    );
    assert_eq!(again.error_code(), "ConditionNotOverridableException");

    // An open window lets the stage in at once.
    let condition = json!({"result": "FAIL", "rules": [window("0 * * ? * * *", None)]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("open", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "open").await;
    assert_eq!(
        finished(&cp, "open", &id).await,
        PipelineExecutionStatus::Succeeded
    );
}

/// The state of the deploy stage's `beforeEntry` condition once it was checked.
async fn before_entry_state(server: &Server, pipeline: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = server
            .call("GetPipelineState", json!({ "name": pipeline }))
            .json();
        let condition = &state["stageStates"][1]["beforeEntryConditionState"];
        if condition.is_object() {
            return condition.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the condition was never checked: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn alarm_rule(wait_minutes: Option<&str>) -> Value {
    let mut config = json!({ "AlarmName": "errors" });
    if let Some(wait) = wait_minutes {
        config["WaitTime"] = wait.into();
    }
    json!({"name": "no-alarm",
           "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "1"},
           "configuration": config})
}

async fn set_alarm(server: &Server, state: aws_sdk_cloudwatch::types::StateValue) {
    server
        .cloudwatch()
        .set_alarm_state()
        .alarm_name("errors")
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .unwrap();
}

/// A server whose pipeline `watched` waits before its deploy stage, on an alarm in ALARM that
/// its rule waits up to ten minutes to leave: (server, execution id, the condition's state).
async fn held_by_alarm() -> (Server, String, Value) {
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    crate::cloudwatch::put(&server.cloudwatch(), "errors").await;
    set_alarm(&server, aws_sdk_cloudwatch::types::StateValue::Alarm).await;
    let condition = json!({"result": "FAIL", "rules": [alarm_rule(Some("10"))]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("watched", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "watched").await;
    let condition = before_entry_state(&server, "watched").await;
    assert_eq!(
        condition["latestExecution"]["status"], "InProgress",
        "{condition}"
    );
    (server, id, condition)
}

#[tokio::test]
async fn a_cloudwatch_alarm_holds_the_stage_until_set_alarm_state_releases_it() {
    use aws_sdk_cloudwatch::types::StateValue;
    let (server, id, condition) = held_by_alarm().await;
    let cp = server.codepipeline();
    assert_eq!(
        condition["conditionStates"][0]["ruleStates"][0]["latestExecution"]["status"],
        "InProgress"
    );
    assert_eq!(deploys(&server, "watched", &id), 0);
    set_alarm(&server, StateValue::Ok).await;
    assert_eq!(
        finished(&cp, "watched", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "watched", &id), 1);
    let rules = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "watched", "filter": {"pipelineExecutionId": id}}),
        )
        .json();
    let details = rules["ruleExecutionDetails"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{rules}");
    assert_eq!(details[0]["status"], "Succeeded");
    assert_eq!(
        details[0]["output"]["executionResult"]["externalExecutionSummary"],
        "The alarm errors is OK"
    );

    // Without a wait, an alarm in ALARM fails the condition at once.
    set_alarm(&server, StateValue::Alarm).await;
    let condition = json!({"result": "FAIL", "rules": [alarm_rule(None)]});
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": with_condition("strict", "beforeEntry", condition)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = latest_execution(&cp, "strict").await;
    assert_eq!(
        finished(&cp, "strict", &id).await,
        PipelineExecutionStatus::Failed
    );
    assert_eq!(deploys(&server, "strict", &id), 0);
    let condition = before_entry_state(&server, "strict").await;
    assert_eq!(
        condition["latestExecution"]["status"], "Failed",
        "{condition}"
    );
}

/// A function for the LambdaInvoke rule: passes or fails the rule as its user parameters say,
/// through the job API, with boto3.
const RULE_APP: &str = r#"
import boto3
def handler(event, context):
    job = event["CodePipeline.job"]
    verdict = job["data"]["actionConfiguration"]["configuration"]["UserParameters"]
    cp = boto3.client("codepipeline")
    if verdict == "pass":
        cp.put_job_success_result(jobId=job["id"], executionDetails={"summary": "looks good"})
    else:
        cp.put_job_failure_result(jobId=job["id"],
            failureDetails={"type": "JobFailed", "message": "not today"})
"#;

#[tokio::test]
async fn a_lambda_invoke_rule_lets_its_function_decide() {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    let server = Server::start();
    let (cp, s3) = (server.codepipeline(), server.s3());
    tutorial_buckets(&s3).await;
    server
        .lambda()
        .create_function()
        .function_name("decide")
        .runtime(Runtime::Python312)
        .handler("app.handler")
        .role("arn:aws:iam::000000000000:role/role")
        .timeout(30)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(crate::engine::zip_of(&[("app.py", RULE_APP)])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let rule = json!({"name": "ask",
        "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "LambdaInvoke", "version": "1"},
        "configuration": {"FunctionName": "decide", "UserParameters": "#{variables.Env}"}});
    let condition = json!({"result": "FAIL", "rules": [rule]});
    let mut decl = with_condition("asked", "beforeEntry", condition);
    decl["variables"] = json!([{"name": "Env", "defaultValue": "pass"}]);
    let r = server.call("CreatePipeline", json!({ "pipeline": decl }));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = latest_execution(&cp, "asked").await;
    assert_eq!(
        finished(&cp, "asked", &first).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "asked", &first), 1);
    let failing = start(&server, "asked", "fail");
    assert_eq!(
        finished(&cp, "asked", &failing).await,
        PipelineExecutionStatus::Failed
    );
    assert_eq!(deploys(&server, "asked", &failing), 0);
    let rules = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "asked", "filter": {"pipelineExecutionId": failing}}),
        )
        .json();
    let detail = &rules["ruleExecutionDetails"][0];
    assert_eq!(detail["status"], "Failed", "{rules}");
    assert_eq!(
        detail["input"]["resolvedConfiguration"]["UserParameters"],
        "fail"
    );
    assert_eq!(
        detail["output"]["executionResult"]["externalExecutionSummary"],
        "not today"
    );
    // The rule's job took its one result: a second is refused.
    let job = detail["ruleExecutionId"].as_str().unwrap();
    let again = server.call("PutJobSuccessResult", json!({ "jobId": job }));
    assert_eq!(
        again.error_code(),
        "InvalidJobStateException",
        "{}",
        again.text()
    );
    let passed = server
        .call(
            "ListRuleExecutions",
            json!({"pipelineName": "asked", "filter": {"pipelineExecutionId": first}}),
        )
        .json();
    assert_eq!(
        passed["ruleExecutionDetails"][0]["output"]["executionResult"]["externalExecutionSummary"],
        "looks good"
    );
}

/// A rule still being evaluated when the server dies is evaluated again when it starts.
#[tokio::test]
async fn a_pending_alarm_rule_is_evaluated_again_after_sigkill() {
    use aws_sdk_cloudwatch::types::StateValue;
    let (server, id, _) = held_by_alarm().await;
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let server = Server::start_in(&dir);
    let cp = server.codepipeline();
    let condition = before_entry_state(&server, "watched").await;
    assert_eq!(
        condition["latestExecution"]["status"], "InProgress",
        "{condition}"
    );
    set_alarm(&server, StateValue::Ok).await;
    assert_eq!(
        finished(&cp, "watched", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    assert_eq!(deploys(&server, "watched", &id), 1);
}
