//! Starts the real `codepipeline-local` binary on a free port with its own data dir and builds
//! real AWS SDK clients against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_codepipeline::config::{BehaviorVersion, Credentials, Region};

/// How long a server may take to start before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The data dir (owned by `_tmp` unless given).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The last 32–64 KiB of what the server logged.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// What the server logged so far (its last 32–64 KiB).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A server on a fresh temporary data dir.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::start_in(tmp.path());
        s._tmp = Some(tmp);
        s
    }

    /// A server on a fresh temporary data dir, with extra environment (configuration).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::try_start(tmp.path(), env)
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        s._tmp = Some(tmp);
        s
    }

    /// A server on `data_dir`, which the caller keeps.
    pub fn start_in(data_dir: &Path) -> Server {
        match Server::try_start_in(data_dir) {
            Ok(s) => s,
            Err(e) => panic!("server did not start: {e}"),
        }
    }

    /// Starts a server; the error is what the process printed when it failed to start.
    pub fn try_start_in(data_dir: &Path) -> Result<Server, String> {
        Server::try_start(data_dir, &[])
    }

    /// Starts a server on `data_dir` with extra environment; the error is what it printed.
    pub fn try_start_with(data_dir: &Path, env: &[(&str, &str)]) -> Result<Server, String> {
        Server::try_start(data_dir, env)
    }

    fn try_start(data_dir: &Path, env: &[(&str, &str)]) -> Result<Server, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn codepipeline-local");
        let stdout = child.stdout.take().expect("stdout");
        // The server's log is read as it comes (the last 64 KiB kept), so that a server that logs
        // much never blocks on a full pipe.
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(Ok(line)) = lines.next() {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                if log.len() > 64 * 1024 {
                    let cut = log.len() - 32 * 1024;
                    let cut = (cut..log.len())
                        .find(|i| log.is_char_boundary(*i))
                        .unwrap_or(0);
                    log.replace_range(..cut, "");
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(url) = line.strip_prefix("codepipeline-local listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(endpoint) => Ok(Server {
                addr: endpoint.trim_start_matches("http://").to_string(),
                endpoint,
                child,
                data_dir: data_dir.to_path_buf(),
                _tmp: None,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // Give the reader a moment to take the last lines the process wrote.
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while std::sync::Arc::strong_count(&log) > 1 && std::time::Instant::now() < deadline
                {
                    std::thread::yield_now();
                }
                let err = log.lock().unwrap().clone();
                Err(format!("exit {status:?}: {err}"))
            }
        }
    }

    /// Stops the process with SIGTERM (a graceful stop) and waits (at most 60 s) for its exit.
    pub fn terminate(mut self) -> Option<tempfile::TempDir> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "the server exited with {status}");
                return self._tmp.take();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub fn kill9(mut self) -> Option<tempfile::TempDir> {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
        self._tmp.take()
    }

    /// A CodePipeline client for this server, region eu-central-1.
    pub fn codepipeline(&self) -> aws_sdk_codepipeline::Client {
        let config = aws_sdk_codepipeline::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_codepipeline::Client::from_conf(config)
    }

    /// A CodeBuild client for this server, region eu-central-1.
    pub fn codebuild(&self) -> aws_sdk_codebuild::Client {
        let config = aws_sdk_codebuild::Config::builder()
            .behavior_version(aws_sdk_codebuild::config::BehaviorVersion::latest())
            .region(aws_sdk_codebuild::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_codebuild::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_codebuild::Client::from_conf(config)
    }

    /// Runs the binary's command line against this server; its standard output (it must succeed).
    pub fn run_cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_codepipeline-local"))
            .args(args)
            .args(["--endpoint", &self.endpoint])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run the binary");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A Lambda client for this server, region eu-central-1.
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    /// A CloudFormation client for this server (it speaks the query protocol), region
    /// eu-central-1.
    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        let config = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_cloudformation::Client::from_conf(config)
    }

    /// An ECR client for this server, region eu-central-1.
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        let config = aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_ecr::Client::from_conf(config)
    }

    /// An ECS client for this server, region eu-central-1.
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_ecs::Client::from_conf(config)
    }

    /// A CloudWatch client for this server (it speaks RPC v2 CBOR), region eu-central-1.
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }

    /// Runs the AWS CLI against this server, region eu-central-1.
    pub fn aws_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "eu-central-1")
            .output()
            .expect("the AWS CLI must be installed (pip install awscli)")
    }

    /// An S3 client for this server, path-style, region eu-central-1.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint, "eu-central-1")
    }

    /// A raw HTTP client for this server.
    pub fn client(&self) -> RawClient {
        RawClient {
            addr: self.addr.clone(),
        }
    }

    /// Sends one raw HTTP request; see [`RawClient::raw`].
    pub fn raw(&self, target: Option<&str>, body: &[u8]) -> RawResponse {
        self.client().raw(target, body)
    }

    /// Calls a CodePipeline operation with a raw JSON body.
    pub fn call(&self, operation: &str, body: serde_json::Value) -> RawResponse {
        self.client().call(operation, body)
    }

    /// Calls a CodeBuild operation with a raw JSON body.
    pub fn raw_codebuild(&self, operation: &str, body: serde_json::Value) -> RawResponse {
        self.client().raw_for(
            "codebuild",
            Some(&format!("CodeBuild_20161006.{operation}")),
            body.to_string().as_bytes(),
        )
    }

    /// Sends a query-protocol request; see [`RawClient::query`].
    pub fn query(&self, service: &str, form: &str) -> RawResponse {
        self.client().query(service, form)
    }
}

/// Speaks HTTP/1.1 to the server without any SDK, for checks below the SDKs.
#[derive(Clone)]
pub struct RawClient {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl RawClient {
    /// Sends a query-protocol request (IAM, STS) signed for `service`.
    pub fn query(&self, service: &str, form: &str) -> RawResponse {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\n\r\n{form}",
            form.len()
        );
        self.exchange(head.as_bytes(), b"")
    }

    /// Sends any HTTP request (for S3 checks below the SDKs: virtual hosts, odd keys).
    pub fn http(&self, method: &str, path: &str, host: &str, body: &[u8]) -> RawResponse {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.exchange(head.as_bytes(), body)
    }

    /// One request on a fresh connection (the head, then the body), and its answer.
    pub fn exchange(&self, head: &[u8], body: &[u8]) -> RawResponse {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head).unwrap();
        // A server that refuses a body may close before reading it all.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        RawResponse::parse(&raw)
    }

    /// Sends a request with no body signed for `service` (REST services).
    pub fn http_signed(&self, service: &str, method: &str, path: &str) -> RawResponse {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: 0\r\n\r\n"
        );
        self.exchange(head.as_bytes(), b"")
    }

    /// Sends one raw HTTP request and returns the answer, the answer.
    pub fn raw(&self, target: Option<&str>, body: &[u8]) -> RawResponse {
        self.raw_for("codepipeline", target, body)
    }

    /// A JSON request signed for `service` (the credential scope's service name).
    pub fn raw_for(&self, service: &str, target: Option<&str>, body: &[u8]) -> RawResponse {
        self.try_raw_for(service, target, body)
            .expect("an HTTP answer")
    }

    /// Like [`RawClient::raw_for`], but `None` when no answer came (the server is gone).
    pub fn try_raw_for(
        &self,
        service: &str,
        target: Option<&str>,
        body: &[u8],
    ) -> Option<RawResponse> {
        self.try_raw_as("test", service, target, body)
    }

    /// Calls a CodePipeline operation signed with `access_key` (a 12-digit one names the
    /// account).
    pub fn call_as(
        &self,
        access_key: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> RawResponse {
        self.try_raw_as(
            access_key,
            "codepipeline",
            Some(&format!("CodePipeline_20150709.{operation}")),
            body.to_string().as_bytes(),
        )
        .expect("an HTTP answer")
    }

    fn try_raw_as(
        &self,
        access_key: &str,
        service: &str,
        target: Option<&str>,
        body: &[u8],
    ) -> Option<RawResponse> {
        let mut head = String::from("POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        head.push_str("Content-Type: application/x-amz-json-1.1\r\n");
        head.push_str(&format!("Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20261126/eu-central-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n"));
        if let Some(t) = target {
            head.push_str(&format!("X-Amz-Target: {t}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut stream = TcpStream::connect(&self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head.as_bytes()).ok()?;
        // A server that refuses a large body may close before reading it all.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        raw.windows(4)
            .any(|w| w == b"\r\n\r\n")
            .then(|| RawResponse::parse(&raw))
    }

    /// Calls a CodePipeline operation; `None` when no answer came (the server is gone).
    pub fn try_call(&self, operation: &str, body: serde_json::Value) -> Option<RawResponse> {
        self.try_raw_for(
            "codepipeline",
            Some(&format!("CodePipeline_20150709.{operation}")),
            body.to_string().as_bytes(),
        )
    }

    /// Calls a CodePipeline operation with a raw JSON body.
    pub fn call(&self, operation: &str, body: serde_json::Value) -> RawResponse {
        self.raw(
            Some(&format!("CodePipeline_20150709.{operation}")),
            body.to_string().as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(raw: &[u8]) -> RawResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        RawResponse {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `__type` of an error answer.
    pub fn error_code(&self) -> String {
        self.json()["__type"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The `<Code>` of an XML error (query and REST-XML protocols).
    pub fn xml_code(&self) -> String {
        let text = self.text();
        text.split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_string())
            .unwrap_or_default()
    }
}

/// The declaration of the tutorial pipeline, named `name`.
pub fn tutorial_declaration(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "executionMode": "SUPERSEDED", "pipelineType": "V1",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "version": 1,
        "stages": [
            {"name": "stage1", "actions": [{"name": "action1",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "runOrder": 1,
                "configuration": {"S3Bucket": "source-bucket", "S3ObjectKey": "file", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "intermediate-file"}], "inputArtifacts": []}]},
            {"name": "stage2", "actions": [{"name": "action1",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "runOrder": 1,
                "configuration": {"BucketName": "target-bucket", "Extract": "false", "ObjectKey": "output-file"},
                "inputArtifacts": [{"name": "intermediate-file"}], "outputArtifacts": []}]}
        ]
    })
}

/// The path of a file in the repository.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// An S3 client for `endpoint`, path-style, with test credentials.
pub fn s3_client(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
