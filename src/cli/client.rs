//! Where the commands read: a running server (its read-only history API, over a minimal
//! HTTP/1.1 client), or the data dir read directly when none answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::args::Common;
use crate::admin::{HEALTH_PATH, HISTORY_PREFIX, RERUN_HEADER};
use crate::config::Config;
use crate::history::{self, ActionFilter, HistoryReader};

/// The server's address: `--endpoint`, else the user's AWS configuration's endpoint, else the
/// configured host and port.
pub fn endpoint(common: &Common, config: &Config) -> String {
    common
        .endpoint
        .clone()
        .or_else(|| super::aws_config::load(&|k| std::env::var(k).ok()).endpoint_url)
        .unwrap_or_else(|| format!("http://{}:{}", config.host, config.port))
}

/// The region: `--region`, else the user's AWS configuration's, else the configured one.
pub fn region(common: &Common, config: &Config) -> String {
    common
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| super::aws_config::load(&|k| std::env::var(k).ok()).region)
        .unwrap_or(config.region.clone())
}

/// The server, or the data dir read directly.
pub enum Source {
    /// A server at `host:port`.
    Remote(String),
    /// The data dir, read directly.
    Local(Box<HistoryReader>),
}

impl Source {
    pub fn find(common: &Common, config: &Config) -> Result<Source, String> {
        let endpoint = endpoint(common, config);
        if let Some(dir) = &common.data_dir {
            if common.endpoint.is_none() {
                return HistoryReader::open(dir, config.cache_mb)
                    .map(|r| Source::Local(Box::new(r)))
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()));
            }
        }
        let addr = host_port(&endpoint)?;
        match http(&addr, "GET", HEALTH_PATH, &[], b"") {
            Ok((200, _)) => return Ok(Source::Remote(addr)),
            Ok(_) | Err(_) if common.endpoint.is_some() => {
                return Err(format!(
                    "no codepipeline-local server answers at {endpoint}"
                ))
            }
            _ => {}
        }
        let dir = &config.data_dir;
        HistoryReader::open(dir, config.cache_mb)
            .map(|r| Source::Local(Box::new(r)))
            .map_err(|e| {
                format!(
                    "no server answers at {endpoint}, and {} cannot be read: {e}",
                    dir.display()
                )
            })
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let Source::Remote(addr) = self else {
            unreachable!("only a remote source is asked over HTTP")
        };
        let (status, body) = http(addr, "GET", path, &[], b"")?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the server answered {status} with no JSON"))?;
        if status == 200 {
            Ok(value)
        } else {
            Err(value["message"]
                .as_str()
                .unwrap_or("the server refused the request")
                .to_string())
        }
    }

    pub fn pipelines(&self) -> Result<Value, String> {
        match self {
            Source::Local(r) => Ok(r.pipelines()),
            Source::Remote(_) => self.get(&format!("{HISTORY_PREFIX}/pipelines")),
        }
    }

    pub fn executions(
        &self,
        region: &str,
        pipeline: &str,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Value, String> {
        match self {
            Source::Local(r) => r
                .executions(region, pipeline, status, limit)
                .map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{HISTORY_PREFIX}/executions?{}",
                query(&[
                    ("region", Some(region)),
                    ("pipeline", Some(pipeline)),
                    ("status", status),
                    ("limit", Some(&limit.to_string())),
                ])
            )),
        }
    }

    pub fn actions(
        &self,
        region: &str,
        pipeline: &str,
        filter: &ActionFilter,
        limit: usize,
    ) -> Result<Value, String> {
        match self {
            Source::Local(r) => r
                .actions(region, pipeline, filter, limit)
                .map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{HISTORY_PREFIX}/actions?{}",
                query(&[
                    ("region", Some(region)),
                    ("pipeline", Some(pipeline)),
                    ("execution", filter.execution.as_deref()),
                    ("stage", filter.stage.as_deref()),
                    ("action", filter.action.as_deref()),
                    ("status", filter.status.as_deref()),
                    ("since", filter.since.map(|s| s.to_string()).as_deref()),
                    ("limit", Some(&limit.to_string())),
                ])
            )),
        }
    }

    pub fn execution(&self, id: &str) -> Result<Value, String> {
        match self {
            Source::Local(r) => r.execution(id).map_err(|e| e.to_string()),
            Source::Remote(_) => self.get(&format!(
                "{HISTORY_PREFIX}/execution?{}",
                query(&[("id", Some(id))])
            )),
        }
    }
}

/// `host:port` of an `http://host:port` endpoint.
pub fn host_port(endpoint: &str) -> Result<String, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("the endpoint {endpoint} is not an http:// address"))?;
    Ok(rest.trim_end_matches('/').to_string())
}

pub use crate::aws::query::build as query;

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let unreachable =
        |e: std::io::Error| format!("no codepipeline-local server answers at http://{addr}: {e}");
    let socket = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| format!("{addr} names no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, Duration::from_secs(2)).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(unreachable)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    stream.write_all(body).map_err(unreachable)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(unreachable)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the server's answer has no head")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the server's answer has no status")?;
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok((status, body))
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || data.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[(line_end + 4 + size).min(data.len())..];
    }
    out
}

/// Calls one of CodePipeline's operations on the server at `addr` in `region`, as the AWS CLI
/// would; its answer, or `Code: message`.
pub fn call(
    addr: &str,
    region: &str,
    operation: &str,
    input: &Value,
    extra: &[(&str, &str)],
) -> Result<Value, String> {
    let credential = format!(
        "AWS4-HMAC-SHA256 Credential=test/{}/{region}/codepipeline/aws4_request, SignedHeaders=host, Signature=0",
        chrono::Utc::now().format("%Y%m%d")
    );
    let target = format!("CodePipeline_20150709.{operation}");
    let mut headers = vec![
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", target.as_str()),
        ("Authorization", credential.as_str()),
    ];
    headers.extend_from_slice(extra);
    let (status, body) = http(addr, "POST", "/", &headers, input.to_string().as_bytes())?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        return Err(format!(
            "{}: {}",
            answer["__type"].as_str().unwrap_or("error"),
            answer["message"].as_str().unwrap_or_default()
        ));
    }
    Ok(answer)
}

/// Starts the execution again on the server at `addr`, with its recorded variables and source
/// revisions; the new execution's id.
pub fn rerun(addr: &str, record: &Value) -> Result<String, String> {
    let input = history::rerun_input(record)?;
    let original = record["pipelineExecutionId"].as_str().unwrap_or_default();
    let region = record["region"].as_str().unwrap_or_default();
    let answer = call(
        addr,
        region,
        "StartPipelineExecution",
        &input,
        &[(RERUN_HEADER, original)],
    )
    .map_err(|e| format!("the server refused the rerun: {e}"))?;
    answer["pipelineExecutionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the server started no execution".to_string())
}
