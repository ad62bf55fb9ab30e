//! The embedded CloudWatch alarms, in the three protocols clients send: RPC v2 CBOR
//! (aws-sdk-cloudwatch), JSON 1.0 (the AWS CLI's botocore) and the query protocol (older
//! clients).

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};

use crate::common::Server;

/// Puts a metric alarm on `Errors` with an alarm action.
pub(crate) async fn put(cw: &aws_sdk_cloudwatch::Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .metric_name("Errors")
        .namespace("App")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .alarm_actions("arn:aws:sns:eu-central-1:000000000000:page")
        .send()
        .await
        .unwrap();
}

async fn state(cw: &aws_sdk_cloudwatch::Client, name: &str) -> Option<StateValue> {
    let out = cw.describe_alarms().alarm_names(name).send().await.unwrap();
    out.metric_alarms()
        .first()
        .and_then(|a| a.state_value().cloned())
}

#[tokio::test]
async fn alarms_are_put_described_set_and_deleted_over_cbor() {
    let server = Server::start();
    let cw = server.cloudwatch();
    put(&cw, "errors").await;
    put(&cw, "latency").await;
    let out = cw.describe_alarms().send().await.unwrap();
    let alarms = out.metric_alarms();
    assert_eq!(alarms.len(), 2);
    let errors = &alarms[0];
    assert_eq!(errors.alarm_name(), Some("errors"));
    assert_eq!(
        errors.alarm_arn(),
        Some("arn:aws:cloudwatch:eu-central-1:000000000000:alarm:errors")
    );
    assert_eq!(errors.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(errors.metric_name(), Some("Errors"));
    assert_eq!(errors.threshold(), Some(1.0));
    assert_eq!(errors.evaluation_periods(), Some(1));
    assert_eq!(
        errors.alarm_actions(),
        ["arn:aws:sns:eu-central-1:000000000000:page"]
    );
    let updated = errors.state_updated_timestamp().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - updated).abs() < 60, "{updated} vs {now}");

    cw.set_alarm_state()
        .alarm_name("errors")
        .state_value(StateValue::Alarm)
        .state_reason("testing")
        .state_reason_data("{\"why\": 1}")
        .send()
        .await
        .unwrap();
    let alarming = cw
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(alarming.metric_alarms().len(), 1);
    assert_eq!(alarming.metric_alarms()[0].state_reason(), Some("testing"));
    // Pages of one, by name.
    let first = cw.describe_alarms().max_records(1).send().await.unwrap();
    assert_eq!(first.metric_alarms()[0].alarm_name(), Some("errors"));
    let token = first.next_token().unwrap().to_string();
    let second = cw
        .describe_alarms()
        .max_records(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.metric_alarms()[0].alarm_name(), Some("latency"));
    assert!(second.next_token().is_none());
    // Updating an alarm keeps its state.
    put(&cw, "errors").await;
    assert_eq!(state(&cw, "errors").await, Some(StateValue::Alarm));

    let missing = cw
        .set_alarm_state()
        .alarm_name("nope")
        .state_value(StateValue::Ok)
        .state_reason("x")
        .send()
        .await
        .unwrap_err();
    assert!(
        missing.as_service_error().unwrap().is_resource_not_found(),
        "{missing:?}"
    );
    let bad = cw
        .set_alarm_state()
        .alarm_name("errors")
        .state_value(StateValue::Ok)
        .state_reason("x")
        .state_reason_data("not json")
        .send()
        .await
        .unwrap_err();
    assert!(
        bad.as_service_error().unwrap().is_invalid_format_fault(),
        "{bad:?}"
    );
    // A delete naming a missing alarm deletes none.
    let partial = cw
        .delete_alarms()
        .alarm_names("errors")
        .alarm_names("nope")
        .send()
        .await
        .unwrap_err();
    assert!(partial.as_service_error().unwrap().is_resource_not_found());
    assert_eq!(
        cw.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .len(),
        2
    );
    cw.delete_alarms()
        .alarm_names("errors")
        .send()
        .await
        .unwrap();
    assert_eq!(state(&cw, "errors").await, None);
    assert_eq!(
        state(&cw, "latency").await,
        Some(StateValue::InsufficientData)
    );
}

#[tokio::test]
async fn alarms_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path());
    let cw = server.cloudwatch();
    put(&cw, "kept").await;
    cw.set_alarm_state()
        .alarm_name("kept")
        .state_value(StateValue::Ok)
        .state_reason("fine")
        .send()
        .await
        .unwrap();
    server.kill9();
    let server = Server::start_in(dir.path());
    assert_eq!(
        state(&server.cloudwatch(), "kept").await,
        Some(StateValue::Ok)
    );
}

fn aws(server: &Server, args: &[&str]) -> std::process::Output {
    server.aws_cli(args)
}

/// The AWS CLI, whose botocore sends JSON 1.0 (or CBOR, in newer versions), sets and reads
/// alarms, and reads their errors by their query codes.
#[tokio::test]
async fn the_aws_cli_sets_an_alarm_s_state() {
    let server = Server::start();
    put(&server.cloudwatch(), "errors").await;
    let set = aws(
        &server,
        &[
            "cloudwatch",
            "set-alarm-state",
            "--alarm-name",
            "errors",
            "--state-value",
            "ALARM",
            "--state-reason",
            "from the CLI",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let described = aws(
        &server,
        &["cloudwatch", "describe-alarms", "--alarm-names", "errors"],
    );
    assert!(described.status.success());
    let v: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    let alarm = &v["MetricAlarms"][0];
    assert_eq!(alarm["StateValue"], "ALARM");
    assert_eq!(alarm["StateReason"], "from the CLI");
    // Epoch seconds on the JSON protocol (the CLI v1 prints them as they came).
    assert!(
        alarm["StateUpdatedTimestamp"].is_number() || alarm["StateUpdatedTimestamp"].is_string(),
        "{alarm}"
    );
    assert_eq!(
        alarm["AlarmActions"][0],
        "arn:aws:sns:eu-central-1:000000000000:page"
    );
    let missing = aws(
        &server,
        &[
            "cloudwatch",
            "set-alarm-state",
            "--alarm-name",
            "nope",
            "--state-value",
            "OK",
            "--state-reason",
            "x",
        ],
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("(ResourceNotFound)"), "{stderr}");
}

/// The query protocol: form parameters in, XML with ISO 8601 timestamps out, errors as
/// `<ErrorResponse>`.
#[test]
fn the_query_protocol_is_served() {
    let server = Server::start();
    let put = server.query(
        "monitoring",
        "Action=PutMetricAlarm&Version=2010-08-01&AlarmName=q&MetricName=Errors&Namespace=App\
         &Statistic=Sum&Period=60&EvaluationPeriods=1&Threshold=1&ComparisonOperator=GreaterThanThreshold\
         &Dimensions.member.1.Name=Service&Dimensions.member.1.Value=web",
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        put.text().contains("<PutMetricAlarmResponse"),
        "{}",
        put.text()
    );
    let set = server.query(
        "monitoring",
        "Action=SetAlarmState&Version=2010-08-01&AlarmName=q&StateValue=ALARM&StateReason=query",
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let described = server.query(
        "monitoring",
        "Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=q",
    );
    let text = described.text();
    assert_eq!(described.status, 200, "{text}");
    assert!(
        text.contains("<MetricAlarms><member><AlarmName>q</AlarmName>"),
        "{text}"
    );
    assert!(text.contains("<StateValue>ALARM</StateValue>"), "{text}");
    assert!(
        text.contains(
            "<Dimensions><member><Name>Service</Name><Value>web</Value></member></Dimensions>"
        ),
        "{text}"
    );
    assert!(text.contains("<StateUpdatedTimestamp>20"), "{text}");
    let missing = server.query(
        "monitoring",
        "Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.1=nope",
    );
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("<Code>ResourceNotFound</Code>"),
        "{}",
        missing.text()
    );
    let bad = server.query(
        "monitoring",
        "Action=DescribeAlarms&Version=2010-08-01&MaxRecords=many",
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("<Code>ValidationError</Code>"),
        "{}",
        bad.text()
    );
}

/// Malformed CBOR, an operation not served and an unknown one get CloudWatch's errors, and
/// change nothing.
#[tokio::test]
async fn bad_cbor_and_unserved_operations_are_answered() {
    let server = Server::start();
    put(&server.cloudwatch(), "kept").await;
    let cbor = |operation: &str, body: &[u8]| {
        let head = format!(
            "POST /service/GraniteServiceVersion20100801/operation/{operation} HTTP/1.1\r\nHost: localhost\r\n\
             Connection: close\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/monitoring/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        server.client().exchange(head.as_bytes(), body)
    };
    let query_error = |r: &crate::common::RawResponse| {
        r.headers
            .iter()
            .find(|(k, _)| k == "x-amzn-query-error")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // A map header announcing more entries than follow.
    let truncated = cbor("DeleteAlarms", &[0xbf, 0x6a]);
    assert_eq!(truncated.status, 400);
    assert_eq!(query_error(&truncated), "ValidationError;Sender");
    // A declared length of 2^63 bytes allocates nothing.
    let huge = cbor(
        "DeleteAlarms",
        &[0xa1, 0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
    assert_eq!(huge.status, 400);
    let not_a_map = cbor("DeleteAlarms", &[0x01]);
    assert_eq!(not_a_map.status, 400);
    let unserved = cbor("PutMetricData", &[0xa0]);
    assert_eq!(unserved.status, 501);
    assert_eq!(query_error(&unserved), "NotImplementedException;Receiver");
    let unknown = cbor("Nope", &[0xa0]);
    assert_eq!(unknown.status, 400);
    assert_eq!(query_error(&unknown), "InvalidAction;Sender");
    assert_eq!(
        state(&server.cloudwatch(), "kept").await,
        Some(StateValue::InsufficientData)
    );
}
