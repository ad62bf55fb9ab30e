//! The AWS JSON 1.1 envelope: how requests are read and answers and errors are written.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{AwsError, RequestContext};

/// The content type of AWS JSON 1.1 answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Parses a request body into a JSON object; an empty body counts as `{}` as it does on AWS.
pub fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(AwsError::serialization(
            "Start of structure or map found where not expected",
        )),
        Err(e) => Err(AwsError::serialization(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// Reads an already validated JSON value into a typed input; a mismatch is a `SerializationException`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, AwsError> {
    serde_json::from_value(value).map_err(|e| AwsError::serialization(e.to_string()))
}

/// A successful answer with a JSON body.
pub fn ok(ctx: &RequestContext, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
        .body(body)
}

/// A successful answer serialised from a value.
pub fn ok_json(ctx: &RequestContext, value: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(bytes) => ok(ctx, bytes),
        Err(e) => error(ctx, &AwsError::internal(e.to_string())),
    }
}

/// An error answer exactly as botocore parses it: `{"__type", "message"}` and `X-Amzn-Errortype`.
pub fn error(ctx: &RequestContext, err: &AwsError) -> HttpResponse {
    let body = serde_json::json!({ "__type": err.code, "message": err.message });
    HttpResponse::build(StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type(CONTENT_TYPE)
        .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
        .insert_header(("X-Amzn-Errortype", err.code.as_str()))
        .body(body.to_string())
}
