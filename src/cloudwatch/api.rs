//! CloudWatch's alarm operations on the wire: each request, whichever of its three protocols it
//! came in, is read into the JSON value of its input shape, checked against AWS's model, handled
//! once, and answered in the protocol it came in. Errors carry the query code CloudWatch's
//! clients match on (`ResourceNotFound`, `InvalidFormat`, …), in the `x-amzn-query-error` header
//! too, as AWS's query-compatible JSON and CBOR services answer.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{Alarm, AlarmFailure, Alarms};
use crate::aws::model::ServiceModel;
use crate::aws::shapes::{self, Shapes};
use crate::aws::{AwsError, RequestContext};

const MODEL_TEXT: &str = include_str!("../../models/monitoring-2010-08-01.json");

static MODEL: LazyLock<ServiceModel> = LazyLock::new(|| ServiceModel::parse(MODEL_TEXT));
static SHAPES: LazyLock<Shapes> = LazyLock::new(|| Shapes::parse(MODEL_TEXT));

/// The XML namespace of query answers.
const NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// The service name of CBOR requests' paths and the prefix of JSON requests' targets.
pub const SERVICE_NAME: &str = "GraniteServiceVersion20100801";

/// The operations served here.
const SERVED: &[&str] = &[
    "PutMetricAlarm",
    "DescribeAlarms",
    "SetAlarmState",
    "DeleteAlarms",
];

/// Which protocol a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Smithy RPC v2 CBOR: `POST /service/GraniteServiceVersion20100801/operation/NAME`.
    Cbor,
    /// JSON 1.0: `X-Amz-Target: GraniteServiceVersion20100801.NAME`.
    Json,
    /// The query protocol: `Action=NAME&Version=2010-08-01&…`.
    Query,
}

/// A CloudWatch request, as the gateway read it.
pub struct CloudWatchRequest<'a> {
    /// Its protocol.
    pub protocol: Protocol,
    /// The path (CBOR names the operation there).
    pub path: &'a str,
    /// `X-Amz-Target` (JSON).
    pub target: &'a str,
    /// The query string and form parameters (query).
    pub params: BTreeMap<String, String>,
    /// The body.
    pub body: &'a [u8],
}

/// An error as CloudWatch answers it.
struct Failure {
    status: u16,
    code: String,
    message: String,
    sender: bool,
}

impl Failure {
    fn new(code: &str, message: impl Into<String>) -> Self {
        let (status, sender) = SHAPES.error(code).unwrap_or((400, true));
        Failure {
            status,
            code: code.to_string(),
            message: message.into(),
            sender,
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Failure::new("ValidationError", message)
    }

    fn from_aws(e: AwsError) -> Self {
        let code = match e.code.as_str() {
            "ValidationException" if e.message.contains("Member must not be null") => {
                "MissingParameter"
            }
            "ValidationException" | "SerializationException" => "ValidationError",
            other => other,
        };
        Failure {
            status: e.status,
            code: code.to_string(),
            message: e.message,
            sender: e.status < 500,
        }
    }
}

/// Answers a CloudWatch request.
pub async fn handle(
    alarms: &Alarms,
    ctx: &RequestContext,
    request: CloudWatchRequest<'_>,
) -> HttpResponse {
    let protocol = request.protocol;
    let (operation, result) = match read(&request) {
        Ok((operation, input)) => {
            let result = run(alarms, ctx, &operation, input).await;
            (operation, result)
        }
        Err(failure) => (String::new(), Err(failure)),
    };
    match result {
        Ok(output) => answer(ctx, protocol, &operation, &output),
        Err(failure) => {
            if failure.status >= 500 && failure.status != 501 {
                log::error!(
                    "CloudWatch {operation}: {}: {}",
                    failure.code,
                    failure.message
                );
            }
            error(ctx, protocol, &failure)
        }
    }
}

/// The operation a request names and its input as JSON.
fn read(request: &CloudWatchRequest<'_>) -> Result<(String, Value), Failure> {
    let operation = match request.protocol {
        Protocol::Cbor => request
            .path
            .strip_prefix(&format!("/service/{SERVICE_NAME}/operation/"))
            .unwrap_or_default()
            .to_string(),
        Protocol::Json => request
            .target
            .strip_prefix(&format!("{SERVICE_NAME}."))
            .unwrap_or_default()
            .to_string(),
        Protocol::Query => request.params.get("Action").cloned().unwrap_or_default(),
    };
    if !MODEL.operations().contains(&operation) {
        return Err(Failure {
            status: 400,
            code: "InvalidAction".into(),
            message: format!("Operation '{operation}' is not known to CloudWatch"),
            sender: true,
        });
    }
    if !SERVED.contains(&operation.as_str()) {
        let e = AwsError::not_supported("CloudWatch", &operation);
        return Err(Failure {
            status: e.status,
            code: e.code,
            message: e.message,
            sender: false,
        });
    }
    let input_shape = SHAPES.input(&operation).unwrap_or_default();
    let input = match request.protocol {
        Protocol::Cbor => {
            if request.body.is_empty() {
                json!({})
            } else {
                let cbor: ciborium::Value =
                    ciborium::de::from_reader(request.body).map_err(|e| {
                        Failure::validation(format!("The request body is not valid CBOR: {e}"))
                    })?;
                let value = shapes::cbor_to_json(cbor).map_err(Failure::validation)?;
                if !value.is_object() {
                    return Err(Failure::validation("The request body must be a CBOR map"));
                }
                value
            }
        }
        Protocol::Json => crate::aws::json::parse_body(request.body).map_err(Failure::from_aws)?,
        Protocol::Query => {
            let mut params = request.params.clone();
            params.remove("Action");
            params.remove("Version");
            SHAPES
                .from_query(input_shape, &params)
                .map_err(Failure::validation)?
        }
    };
    MODEL
        .validate_input(&operation, &input)
        .map_err(Failure::from_aws)?;
    Ok((operation, input))
}

async fn run(
    alarms: &Alarms,
    ctx: &RequestContext,
    operation: &str,
    input: Value,
) -> Result<Value, Failure> {
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let stored = |e: AlarmFailure| match e {
        AlarmFailure::NotFound(name) => {
            Failure::new("ResourceNotFound", format!("Alarm {name} not found"))
        }
        AlarmFailure::Limit => Failure::new(
            "LimitExceeded",
            format!(
                "The maximum number of alarms ({}) is reached",
                super::MAX_ALARMS
            ),
        ),
        AlarmFailure::Store(e) => Failure {
            status: 500,
            code: "InternalServiceError".into(),
            message: e.to_string(),
            sender: false,
        },
    };
    match operation {
        "PutMetricAlarm" => {
            let has = |k: &str| input.get(k).is_some_and(|v| !v.is_null());
            if has("MetricName") == has("Metrics") {
                return Err(Failure::validation(
                    "Exactly one of MetricName and Metrics must be given",
                ));
            }
            if has("MetricName") && !(has("Statistic") ^ has("ExtendedStatistic")) {
                return Err(Failure::validation(
                    "Exactly one of Statistic and ExtendedStatistic must be given with MetricName",
                ));
            }
            for k in ["EvaluationPeriods", "ComparisonOperator"] {
                if !has(k) {
                    return Err(Failure::new(
                        "MissingParameter",
                        format!("The parameter {k} is required"),
                    ));
                }
            }
            let now = crate::aws::now_epoch();
            let mut configuration = input.clone();
            if let Some(c) = configuration.as_object_mut() {
                c.remove("AlarmName");
                c.remove("Tags");
            }
            let alarm = Alarm {
                name: text("AlarmName"),
                configuration,
                state: "INSUFFICIENT_DATA".into(),
                reason: "Unchecked: Initial alarm creation".into(),
                reason_data: None,
                state_updated: now,
                state_transitioned: now,
                configured: now,
            };
            alarms.put(account, region, alarm).await.map_err(stored)?;
            Ok(json!({}))
        }
        "SetAlarmState" => {
            let data = input["StateReasonData"].as_str().map(str::to_string);
            if let Some(data) = &data {
                if serde_json::from_str::<Value>(data).is_err() {
                    return Err(Failure::new(
                        "InvalidFormat",
                        "StateReasonData is not valid JSON",
                    ));
                }
            }
            alarms
                .set_state(
                    account,
                    region,
                    &text("AlarmName"),
                    &text("StateValue"),
                    &text("StateReason"),
                    data,
                )
                .await
                .map_err(stored)?;
            Ok(json!({}))
        }
        "DeleteAlarms" => {
            let names: Vec<String> = input["AlarmNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            alarms
                .delete(account, region, names)
                .await
                .map_err(stored)?;
            Ok(json!({}))
        }
        _ => describe(alarms, ctx, &input),
    }
}

fn describe(alarms: &Alarms, ctx: &RequestContext, input: &Value) -> Result<Value, Failure> {
    let strings = |k: &str| -> Vec<String> {
        input[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let names = strings("AlarmNames");
    let types = strings("AlarmTypes");
    let prefix = input["AlarmNamePrefix"].as_str().unwrap_or_default();
    let state = input["StateValue"].as_str();
    let action_prefix = input["ActionPrefix"].as_str();
    if !names.is_empty() && !prefix.is_empty() {
        return Err(Failure::new(
            "InvalidParameterCombination",
            "AlarmNames and AlarmNamePrefix cannot be given together",
        ));
    }
    // Only metric alarms exist here; without AlarmTypes, DescribeAlarms lists those.
    let metric = types.is_empty() || types.iter().any(|t| t == "MetricAlarm");
    let max = input["MaxRecords"].as_u64().unwrap_or(50) as usize;
    let after = input["NextToken"].as_str();
    let actions = |a: &Alarm| {
        ["OKActions", "AlarmActions", "InsufficientDataActions"]
            .iter()
            .flat_map(|k| a.configuration[*k].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    if let Some(token) = after {
        if token.is_empty() || token.len() > 255 {
            return Err(Failure::new(
                "InvalidNextToken",
                "The next token is not valid",
            ));
        }
    }
    let selected = alarms.list(&ctx.account_id, &ctx.region, |a| {
        metric
            && (names.is_empty() || names.contains(&a.name))
            && a.name.starts_with(prefix)
            && state.is_none_or(|s| a.state == s)
            && action_prefix.is_none_or(|p| actions(a).iter().any(|x| x.starts_with(p)))
            && after.is_none_or(|t| a.name.as_str() > t)
    });
    let more = selected.len() > max;
    let page: Vec<Value> = selected
        .iter()
        .take(max)
        .map(|a| a.to_wire(&ctx.account_id, &ctx.region))
        .collect();
    let mut out = json!({"MetricAlarms": page, "CompositeAlarms": []});
    if more {
        out["NextToken"] = json!(selected[max - 1].name);
    }
    Ok(out)
}

fn answer(
    ctx: &RequestContext,
    protocol: Protocol,
    operation: &str,
    output: &Value,
) -> HttpResponse {
    let shape = SHAPES.output(operation);
    match protocol {
        Protocol::Cbor => {
            let body = match shape {
                Some(shape) => shapes::encode(&SHAPES.to_cbor(shape, output)),
                None => shapes::encode(&ciborium::Value::Map(vec![])),
            };
            HttpResponse::Ok()
                .content_type("application/cbor")
                .insert_header(("smithy-protocol", "rpc-v2-cbor"))
                .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
                .body(body)
        }
        Protocol::Json => HttpResponse::Ok()
            .content_type("application/x-amz-json-1.0")
            .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
            .body(output.to_string()),
        Protocol::Query => {
            let result = shape.map(|s| SHAPES.to_xml(s, output)).unwrap_or_default();
            crate::aws::query::respond(NAMESPACE, operation, &result, ctx)
        }
    }
}

fn error(ctx: &RequestContext, protocol: Protocol, f: &Failure) -> HttpResponse {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
    let fault = if f.sender { "Sender" } else { "Receiver" };
    let query_error = format!("{};{fault}", f.code);
    let envelope = json!({"__type": f.code, "message": f.message});
    match protocol {
        Protocol::Cbor => HttpResponse::build(status)
            .content_type("application/cbor")
            .insert_header(("smithy-protocol", "rpc-v2-cbor"))
            .insert_header(("x-amzn-query-error", query_error))
            .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
            .body(shapes::encode(&ciborium::Value::Map(vec![
                (
                    ciborium::Value::Text("__type".into()),
                    ciborium::Value::Text(envelope["__type"].as_str().unwrap_or_default().into()),
                ),
                (
                    ciborium::Value::Text("message".into()),
                    ciborium::Value::Text(f.message.clone()),
                ),
            ]))),
        Protocol::Json => HttpResponse::build(status)
            .content_type("application/x-amz-json-1.0")
            .insert_header(("x-amzn-query-error", query_error))
            .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
            .body(envelope.to_string()),
        Protocol::Query => crate::aws::query::error(
            NAMESPACE,
            &crate::aws::query::QueryError::new(f.status, f.code.clone(), f.message.clone()),
            ctx,
        ),
    }
}
