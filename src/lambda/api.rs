//! The Lambda REST-JSON API: requests are routed by method and path with the operations' HTTP
//! bindings from AWS's model, their parameters checked against the model, then handled.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::functions::{Function, FunctionCommand, FunctionRefusal};
use super::runtime::Outcome;
use super::{Lambda, LambdaFailure};
use crate::aws::model::ServiceModel;
use crate::aws::{AwsError, RequestContext};
use crate::s3::objects::ObjectStore;

const MODEL_TEXT: &str = include_str!("../../models/lambda-2015-03-31.json");

static MODEL: LazyLock<ServiceModel> = LazyLock::new(|| ServiceModel::parse(MODEL_TEXT));

/// The largest code zip read from S3 (AWS: 250 MB unzipped).
const MAX_CODE_BYTES: usize = 250 * 1024 * 1024;

/// The largest event a synchronous invocation takes (AWS: 6 MB).
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;

/// The largest event an asynchronous invocation takes (AWS: 1 MB).
const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;

/// One segment of an operation's URI.
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// An operation's HTTP binding.
struct Route {
    operation: String,
    method: String,
    segments: Vec<Segment>,
    /// Query keys its URI requires.
    query: Vec<String>,
}

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(MODEL_TEXT).expect("lambda model");
    doc["operations"]
        .as_object()
        .expect("operations")
        .iter()
        .map(|(name, op)| {
            let uri = op["http"]["requestUri"].as_str().unwrap_or("/");
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            let segments = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(p) if p.ends_with('+') => {
                            Segment::Greedy(p.trim_end_matches('+').into())
                        }
                        Some(p) => Segment::Param(p.into()),
                        None => Segment::Literal(s.into()),
                    },
                )
                .collect();
            let query = query
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| q.split('=').next().unwrap_or_default().to_string())
                .collect();
            Route {
                operation: name.clone(),
                method: op["http"]["method"].as_str().unwrap_or("GET").into(),
                segments,
                query,
            }
        })
        .collect()
});

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The operation a request is for, with its path parameters.
fn route(
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Option<(&'static str, BTreeMap<String, String>)> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(&Route, BTreeMap<String, String>, usize)> = None;
    for r in ROUTES.iter().filter(|r| r.method == method) {
        if !r.query.iter().all(|q| query.contains_key(q)) {
            continue;
        }
        let mut params = BTreeMap::new();
        let mut literals = 0;
        let mut i = 0;
        let mut ok = true;
        for seg in &r.segments {
            match seg {
                Segment::Literal(l) => {
                    if parts.get(i) != Some(&l.as_str()) {
                        ok = false;
                        break;
                    }
                    literals += 1;
                    i += 1;
                }
                Segment::Param(p) => match parts.get(i) {
                    Some(v) => {
                        params.insert(p.clone(), decode(v));
                        i += 1;
                    }
                    None => {
                        ok = false;
                        break;
                    }
                },
                Segment::Greedy(p) => {
                    params.insert(p.clone(), decode(&parts[i.min(parts.len())..].join("/")));
                    i = parts.len();
                }
            }
        }
        if !ok || i != parts.len() {
            continue;
        }
        let score = literals * 10 + r.query.len();
        if best.as_ref().is_none_or(|b| score > b.2) {
            best = Some((r, params, score));
        }
    }
    best.map(|(r, params, _)| (r.operation.as_str(), params))
}

/// A function name from what the caller gave: a name, a partial ARN or an ARN, with an optional
/// `$LATEST` qualifier.
pub fn function_name(given: &str) -> String {
    let name = given
        .rsplit_once("function:")
        .map_or(given, |(_, rest)| rest);
    name.split(':').next().unwrap_or(name).to_string()
}

fn arn(ctx: &RequestContext, name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        ctx.region, ctx.account_id
    )
}

fn not_found(ctx: &RequestContext, name: &str) -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        format!("Function not found: {}", arn(ctx, name)),
    )
    .with_status(404)
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValueException", message)
}

fn failure(e: LambdaFailure, ctx: &RequestContext, name: &str) -> AwsError {
    match e {
        LambdaFailure::Refused(FunctionRefusal::Exists) => AwsError::new(
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        )
        .with_status(409),
        LambdaFailure::Refused(FunctionRefusal::NotFound) => not_found(ctx, name),
        LambdaFailure::Refused(FunctionRefusal::RevisionMismatch) => AwsError::new(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
        .with_status(412),
        LambdaFailure::Store(e) => AwsError::internal(e.to_string()),
    }
}

fn json_response(ctx: &RequestContext, status: u16, value: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json")
        .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
        .body(value.to_string())
}

/// What a request brings.
pub struct LambdaRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// Path, without the query.
    pub path: &'a str,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// A header by name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    /// The body.
    pub body: Bytes,
}

/// Serves one Lambda request.
pub async fn handle(
    lambda: &std::sync::Arc<Lambda>,
    objects: &dyn ObjectStore,
    ctx: &RequestContext,
    request: LambdaRequest<'_>,
) -> HttpResponse {
    match serve(lambda, objects, ctx, request).await {
        Ok(response) => response,
        Err(err) => {
            if err.status >= 500 && err.status != 501 {
                log::error!("lambda: {err}");
            }
            crate::aws::json::error(ctx, &err)
        }
    }
}

/// One operation called in-process (CloudFormation's providers), with AWS's JSON input (the
/// function's name as `FunctionName`), through the model's checks and the operation's own code.
pub async fn call(
    lambda: &std::sync::Arc<Lambda>,
    objects: &dyn ObjectStore,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    MODEL.validate_input(operation, input)?;
    let name = function_name(input["FunctionName"].as_str().unwrap_or_default());
    let response = match operation {
        "CreateFunction" => create(lambda, objects, ctx, input.clone()).await?,
        "UpdateFunctionCode" => update_code(lambda, objects, ctx, &name, input.clone()).await?,
        "UpdateFunctionConfiguration" => {
            update_configuration(lambda, ctx, &name, input.clone()).await?
        }
        "DeleteFunction" => {
            lambda
                .execute(&ctx.account_id, &ctx.region, &name, FunctionCommand::Delete)
                .await
                .map_err(|e| failure(e, ctx, &name))?;
            return Ok(json!({}));
        }
        other => return Err(AwsError::not_supported("Lambda", other)),
    };
    // The answers here are whole JSON bodies.
    let bytes = actix_web::body::MessageBody::try_into_bytes(response.into_body())
        .map_err(|_| AwsError::internal("the answer is not a whole body"))?;
    serde_json::from_slice(&bytes).map_err(|e| AwsError::internal(e.to_string()))
}

async fn serve(
    lambda: &std::sync::Arc<Lambda>,
    objects: &dyn ObjectStore,
    ctx: &RequestContext,
    request: LambdaRequest<'_>,
) -> Result<HttpResponse, AwsError> {
    let Some((operation, params)) = route(request.method, request.path, &request.query) else {
        return Err(AwsError::new(
            "UnknownOperationException",
            format!("No Lambda operation is {} {}", request.method, request.path),
        )
        .with_status(404));
    };
    let served = matches!(
        operation,
        "CreateFunction"
            | "GetFunction"
            | "GetFunctionConfiguration"
            | "ListFunctions"
            | "UpdateFunctionCode"
            | "UpdateFunctionConfiguration"
            | "DeleteFunction"
            | "Invoke"
    );
    if !served {
        return Err(AwsError::not_supported("Lambda", operation));
    }
    // The input as the model sees it: the body's members, the path's and the bound headers.
    let mut input = if operation == "Invoke" || request.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice::<Value>(&request.body)
            .map_err(|e| AwsError::serialization(format!("The request body is not JSON: {e}")))?
    };
    if !input.is_object() {
        return Err(AwsError::serialization(
            "The request body must be a JSON object",
        ));
    }
    for (k, v) in &params {
        input[k] = v.clone().into();
    }
    if operation == "Invoke" {
        for (member, header) in [
            ("InvocationType", "x-amz-invocation-type"),
            ("LogType", "x-amz-log-type"),
        ] {
            if let Some(v) = (request.header)(header) {
                input[member] = v.into();
            }
        }
    }
    if operation == "ListFunctions" {
        if let Some(max) = request.query.get("MaxItems") {
            let max: i64 = max
                .parse()
                .map_err(|_| invalid(format!("MaxItems must be a number, not {max}")))?;
            input["MaxItems"] = max.into();
        }
    }
    MODEL.validate_input(operation, &input)?;
    let name = params
        .get("FunctionName")
        .map(|n| function_name(n))
        .unwrap_or_default();
    match operation {
        "CreateFunction" => create(lambda, objects, ctx, input).await,
        "GetFunction" => {
            let f = lambda
                .function(&ctx.account_id, &ctx.region, &name)
                .ok_or_else(|| not_found(ctx, &name))?;
            let location = format!(
                "http://{}{}{}",
                lambda.runtime_endpoint(),
                super::CODE_PREFIX,
                f.code_digest
            );
            let mut out = json!({
                "Configuration": f.configuration(),
                "Code": {"RepositoryType": "S3", "Location": location},
            });
            if !f.tags.is_empty() {
                out["Tags"] = json!(f.tags);
            }
            Ok(json_response(ctx, 200, &out))
        }
        "GetFunctionConfiguration" => {
            let f = lambda
                .function(&ctx.account_id, &ctx.region, &name)
                .ok_or_else(|| not_found(ctx, &name))?;
            Ok(json_response(ctx, 200, &f.configuration()))
        }
        "ListFunctions" => list(lambda, ctx, &request.query),
        "UpdateFunctionCode" => update_code(lambda, objects, ctx, &name, input).await,
        "UpdateFunctionConfiguration" => update_configuration(lambda, ctx, &name, input).await,
        "DeleteFunction" => {
            lambda
                .execute(&ctx.account_id, &ctx.region, &name, FunctionCommand::Delete)
                .await
                .map_err(|e| failure(e, ctx, &name))?;
            Ok(HttpResponse::NoContent()
                .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
                .finish())
        }
        "Invoke" => invoke(lambda, ctx, &name, &input, request.body).await,
        _ => Err(AwsError::not_supported("Lambda", operation)),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Code {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    s3_object_version: Option<String>,
    image_uri: Option<String>,
}

/// The zip of a function's code: given inline (base64) or read from S3.
async fn code_bytes(objects: &dyn ObjectStore, code: &Code) -> Result<Vec<u8>, AwsError> {
    if code.image_uri.is_some() {
        return Err(invalid(
            "Container images are not supported by codepipeline-local: give the code as a zip (ZipFile, or S3Bucket and S3Key)",
        ));
    }
    let zip = match (&code.zip_file, &code.s3_bucket, &code.s3_key) {
        (Some(zip), None, None) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(zip)
                .map_err(|_| invalid("ZipFile is not valid base64"))?
        }
        (None, Some(bucket), Some(key)) => {
            let s3_error = |code: &str, message: &str| {
                invalid(format!(
                    "Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}"
                ))
            };
            let (_, mut body) = objects
                .get(bucket, key, code.s3_object_version.as_deref())
                .await
                .map_err(|e| match e {
                    crate::s3::store::S3StoreError::NoSuchBucket => {
                        s3_error("NoSuchBucket", "The specified bucket does not exist")
                    }
                    _ => s3_error("NoSuchKey", "The specified key does not exist."),
                })?;
            let mut zip = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| AwsError::internal(e.to_string()))?;
                if zip.len() + chunk.len() > MAX_CODE_BYTES {
                    return Err(invalid(format!(
                        "Unzipped size must be smaller than {MAX_CODE_BYTES} bytes"
                    )));
                }
                zip.extend_from_slice(&chunk);
            }
            zip
        }
        _ => {
            return Err(invalid(
                "Please provide a source for function code: ZipFile, or S3Bucket and S3Key",
            ))
        }
    };
    if zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).is_err() {
        return Err(invalid(
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        ));
    }
    Ok(zip)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Environment {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ephemeral {
    size: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    function_name: String,
    runtime: Option<String>,
    role: String,
    handler: Option<String>,
    #[serde(default)]
    description: String,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    code: Code,
    environment: Option<Environment>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    package_type: Option<String>,
    architectures: Option<Vec<String>>,
    ephemeral_storage: Option<Ephemeral>,
}

fn from_input<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| AwsError::serialization(e.to_string()))
}

fn check_runtime(runtime: &str) -> Result<(), AwsError> {
    let runs = runtime.starts_with("python3")
        || runtime.starts_with("nodejs")
        || runtime.starts_with("provided");
    if runs {
        Ok(())
    } else {
        Err(invalid(format!(
            "The runtime parameter of {runtime} is not supported by codepipeline-local: it runs python3.x, nodejs and provided runtimes on this machine"
        )))
    }
}

fn revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn create(
    lambda: &Lambda,
    objects: &dyn ObjectStore,
    ctx: &RequestContext,
    input: Value,
) -> Result<HttpResponse, AwsError> {
    let input: CreateInput = from_input(input)?;
    if input.package_type.as_deref() == Some("Image") {
        return Err(invalid(
            "Container images are not supported by codepipeline-local: create the function from a zip",
        ));
    }
    let (Some(runtime), Some(handler)) = (input.runtime, input.handler) else {
        return Err(invalid(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
        ));
    };
    check_runtime(&runtime)?;
    let name = function_name(&input.function_name);
    if lambda
        .function(&ctx.account_id, &ctx.region, &name)
        .is_some()
    {
        return Err(failure(
            LambdaFailure::Refused(FunctionRefusal::Exists),
            ctx,
            &name,
        ));
    }
    let zip = code_bytes(objects, &input.code).await?;
    let (sha, digest, size) = lambda.store_code(&zip).map_err(AwsError::internal)?;
    let function = Function {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        name: name.clone(),
        runtime,
        role: input.role,
        handler,
        description: input.description,
        timeout: input.timeout.unwrap_or(3),
        memory_size: input.memory_size.unwrap_or(128),
        environment: input.environment.map(|e| e.variables).unwrap_or_default(),
        code_sha256: sha,
        code_digest: digest,
        code_size: size,
        architectures: input.architectures.unwrap_or_else(|| vec!["x86_64".into()]),
        ephemeral_storage: input.ephemeral_storage.map_or(512, |e| e.size),
        tags: input.tags,
        last_modified: crate::aws::now_epoch(),
        revision_id: revision(),
    };
    let created = lambda
        .execute(
            &ctx.account_id,
            &ctx.region,
            &name,
            FunctionCommand::Create(Box::new(function)),
        )
        .await
        .map_err(|e| failure(e, ctx, &name))?
        .ok_or_else(|| AwsError::internal("the function was not recorded"))?;
    Ok(json_response(ctx, 201, &created.configuration()))
}

fn list(
    lambda: &Lambda,
    ctx: &RequestContext,
    query: &BTreeMap<String, String>,
) -> Result<HttpResponse, AwsError> {
    let max = query
        .get("MaxItems")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 50);
    let after = match query.get("Marker") {
        Some(marker) => Some(
            crate::aws::pagination::decode(marker)
                .ok_or_else(|| invalid("The marker is not valid"))?,
        ),
        None => None,
    };
    let all = lambda.functions_of(&ctx.account_id, &ctx.region);
    let page: Vec<&Function> = all
        .iter()
        .filter(|f| after.as_ref().is_none_or(|a| f.name > *a))
        .take(max + 1)
        .collect();
    let more = page.len() > max;
    let page = &page[..page.len().min(max)];
    let mut out = json!({
        "Functions": page.iter().map(|f| f.configuration()).collect::<Vec<_>>(),
    });
    if more {
        if let Some(last) = page.last() {
            out["NextMarker"] = crate::aws::pagination::encode(&last.name).into();
        }
    }
    Ok(json_response(ctx, 200, &out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateCodeInput {
    #[serde(flatten)]
    code: CodeFields,
    revision_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeFields {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    s3_object_version: Option<String>,
    image_uri: Option<String>,
}

async fn update_code(
    lambda: &Lambda,
    objects: &dyn ObjectStore,
    ctx: &RequestContext,
    name: &str,
    input: Value,
) -> Result<HttpResponse, AwsError> {
    let input: UpdateCodeInput = from_input(input)?;
    let current = lambda
        .function(&ctx.account_id, &ctx.region, name)
        .ok_or_else(|| not_found(ctx, name))?;
    let c = input.code;
    let code = Code {
        zip_file: c.zip_file,
        s3_bucket: c.s3_bucket,
        s3_key: c.s3_key,
        s3_object_version: c.s3_object_version,
        image_uri: c.image_uri,
    };
    let zip = code_bytes(objects, &code).await?;
    if input.dry_run {
        return Ok(json_response(ctx, 200, &current.configuration()));
    }
    let (sha, digest, size) = lambda.store_code(&zip).map_err(AwsError::internal)?;
    let function = Function {
        code_sha256: sha,
        code_digest: digest,
        code_size: size,
        last_modified: crate::aws::now_epoch(),
        revision_id: revision(),
        ..current
    };
    update(lambda, ctx, name, function, input.revision_id).await
}

async fn update(
    lambda: &Lambda,
    ctx: &RequestContext,
    name: &str,
    function: Function,
    expected_revision: Option<String>,
) -> Result<HttpResponse, AwsError> {
    let command = FunctionCommand::Update {
        function: Box::new(function),
        expected_revision,
    };
    let updated = lambda
        .execute(&ctx.account_id, &ctx.region, name, command)
        .await
        .map_err(|e| failure(e, ctx, name))?
        .ok_or_else(|| not_found(ctx, name))?;
    Ok(json_response(ctx, 200, &updated.configuration()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfigurationInput {
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    environment: Option<Environment>,
    runtime: Option<String>,
    revision_id: Option<String>,
    ephemeral_storage: Option<Ephemeral>,
}

async fn update_configuration(
    lambda: &Lambda,
    ctx: &RequestContext,
    name: &str,
    input: Value,
) -> Result<HttpResponse, AwsError> {
    let input: UpdateConfigurationInput = from_input(input)?;
    let current = lambda
        .function(&ctx.account_id, &ctx.region, name)
        .ok_or_else(|| not_found(ctx, name))?;
    if let Some(runtime) = &input.runtime {
        check_runtime(runtime)?;
    }
    let function = Function {
        role: input.role.unwrap_or(current.role.clone()),
        handler: input.handler.unwrap_or(current.handler.clone()),
        description: input.description.unwrap_or(current.description.clone()),
        timeout: input.timeout.unwrap_or(current.timeout),
        memory_size: input.memory_size.unwrap_or(current.memory_size),
        environment: input
            .environment
            .map(|e| e.variables)
            .unwrap_or(current.environment.clone()),
        runtime: input.runtime.unwrap_or(current.runtime.clone()),
        ephemeral_storage: input
            .ephemeral_storage
            .map_or(current.ephemeral_storage, |e| e.size),
        last_modified: crate::aws::now_epoch(),
        revision_id: revision(),
        ..current
    };
    update(lambda, ctx, name, function, input.revision_id).await
}

async fn invoke(
    lambda: &std::sync::Arc<Lambda>,
    ctx: &RequestContext,
    name: &str,
    input: &Value,
    payload: Bytes,
) -> Result<HttpResponse, AwsError> {
    let function = lambda
        .function(&ctx.account_id, &ctx.region, name)
        .ok_or_else(|| not_found(ctx, name))?;
    let kind = input["InvocationType"]
        .as_str()
        .unwrap_or("RequestResponse");
    let limit = if kind == "Event" {
        MAX_EVENT_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    if payload.len() > limit {
        return Err(AwsError::new(
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        )
        .with_status(413));
    }
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return Err(AwsError::new(
            "InvalidRequestContentException",
            "Could not parse request body into json: the payload is not valid JSON",
        ));
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    match kind {
        "DryRun" => Ok(HttpResponse::NoContent()
            .insert_header(("x-amzn-RequestId", request_id.as_str()))
            .finish()),
        "Event" => {
            lambda.invoke_detached(function, request_id.clone(), payload);
            Ok(HttpResponse::Accepted()
                .insert_header(("x-amzn-RequestId", request_id.as_str()))
                .finish())
        }
        _ => {
            let ran = lambda.invoke(&function, &request_id, payload).await;
            let mut response = HttpResponse::Ok();
            response
                .content_type("application/json")
                .insert_header(("x-amzn-RequestId", request_id.as_str()))
                .insert_header(("X-Amz-Executed-Version", "$LATEST"));
            if input["LogType"].as_str() == Some("Tail") {
                use base64::Engine;
                let tail = &ran.log[ran.log.len().saturating_sub(4096)..];
                response.insert_header((
                    "X-Amz-Log-Result",
                    base64::engine::general_purpose::STANDARD.encode(tail),
                ));
            }
            let body = match ran.outcome {
                Outcome::Response(body) => body,
                Outcome::Error(body) => {
                    response.insert_header(("X-Amz-Function-Error", "Unhandled"));
                    body
                }
            };
            Ok(response.body(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_found_by_method_and_path() {
        let q = BTreeMap::new();
        assert_eq!(
            route("POST", "/2015-03-31/functions", &q).unwrap().0,
            "CreateFunction"
        );
        assert_eq!(
            route("GET", "/2015-03-31/functions/", &q).unwrap().0,
            "ListFunctions"
        );
        let (op, params) = route("POST", "/2015-03-31/functions/f%3A1/invocations", &q).unwrap();
        assert_eq!((op, params["FunctionName"].as_str()), ("Invoke", "f:1"));
        assert_eq!(
            route("GET", "/2015-03-31/functions/f/configuration", &q)
                .unwrap()
                .0,
            "GetFunctionConfiguration"
        );
        assert_eq!(
            route("GET", "/2015-03-31/functions/f", &q).unwrap().0,
            "GetFunction"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:notify:$LATEST"),
            "notify"
        );
    }
}
