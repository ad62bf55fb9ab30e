//! Mounts the s3s service inside actix-web.
//!
//! - The request body is pumped from actix's payload (which is not `Send`) through a bounded
//!   channel, so uploads stream with back-pressure and are never held whole in memory.
//! - Signatures are not checked (as everywhere in codepipeline-local): the `Authorization` header
//!   is dropped before s3s sees the request, and `aws-chunked` bodies (signed or unsigned, with
//!   or without trailing checksums) are decoded here.
//! - HEAD answers declare their size with `SizedStream`, or actix would send `Content-Length: 0`.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::StdError;
use tokio::sync::mpsc;

use super::RequestRegion;

/// A stream fed by a channel: `Send` and `Sync` whatever produced the items.
pub struct ChannelStream<T> {
    rx: mpsc::Receiver<T>,
    length: Option<usize>,
}

impl<T> ChannelStream<T> {
    /// A stream of what arrives on `rx`.
    pub fn new(rx: mpsc::Receiver<T>) -> Self {
        ChannelStream { rx, length: None }
    }
}

impl<T> Stream for ChannelStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

impl ByteStream for ChannelStream<Result<Bytes, StdError>> {
    fn remaining_length(&self) -> RemainingLength {
        self.length
            .map_or_else(RemainingLength::unknown, RemainingLength::new_exact)
    }
}

/// Decodes an `aws-chunked` body: `<hex size>[;chunk-signature=…]\r\n<data>\r\n…0…\r\n<trailers>\r\n`.
#[derive(Default)]
struct ChunkedDecoder {
    buf: BytesMut,
    state: ChunkState,
}

#[derive(Default, PartialEq)]
enum ChunkState {
    #[default]
    Header,
    Data(usize),
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    /// Feeds raw bytes; returns the decoded data they complete.
    fn feed(&mut self, input: &[u8]) -> Result<Vec<Bytes>, String> {
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            match self.state {
                ChunkState::Header => {
                    let Some(end) = find_crlf(&self.buf) else {
                        break;
                    };
                    let line =
                        std::str::from_utf8(&self.buf[..end]).map_err(|_| "bad chunk header")?;
                    let size_text = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| format!("bad aws-chunked size '{size_text}'"))?;
                    self.buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if self.buf.is_empty() {
                        break;
                    }
                    let n = left.min(self.buf.len());
                    out.push(self.buf.split_to(n).freeze());
                    self.state = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd => {
                    if self.buf.len() < 2 {
                        break;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err("aws-chunked data is not followed by CRLF".into());
                    }
                    self.buf.advance(2);
                    self.state = ChunkState::Header;
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(&self.buf) else {
                        break;
                    };
                    self.buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => {
                    self.buf.clear();
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether the body ended where a complete encoding may end.
    fn complete(&self) -> bool {
        matches!(self.state, ChunkState::Done | ChunkState::Trailers) && self.buf.is_empty()
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn is_aws_chunked(req: &HttpRequest) -> bool {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    header("x-amz-content-sha256").starts_with("STREAMING-")
        || header("content-encoding").contains("aws-chunked")
}

/// The most bytes of an XML request body read to check its `Content-MD5` (DeleteObjects of
/// 1,000 keys of 1,024 bytes, escaped, stays well below).
const MAX_CHECKED_BODY: usize = 8 << 20;

/// Whether the request's body is a document s3s reads whole (DeleteObjects, tagging,
/// versioning, CompleteMultipartUpload) rather than object bytes the store streams (PutObject
/// and UploadPart, whose `Content-MD5` the store checks as it writes).
fn is_document_body(req: &HttpRequest) -> bool {
    let method = req.method();
    if method == actix_web::http::Method::POST {
        return true;
    }
    method == actix_web::http::Method::PUT
        && req.query_string().split('&').any(|p| {
            let name = p.split('=').next().unwrap_or_default();
            !name.is_empty() && !matches!(name, "x-id" | "partNumber" | "uploadId" | "versionId")
        })
}

/// Reads a document body within [`MAX_CHECKED_BODY`] and checks it against its `Content-MD5`:
/// the body to serve, or S3's error answer.
async fn checked_document(
    req: &HttpRequest,
    payload: &mut web::Payload,
    header: &str,
    idle: std::time::Duration,
) -> Result<Bytes, s3s::S3Error> {
    use md5::{Digest, Md5};
    let expected = super::api::content_md5(Some(header))?;
    let mut body = BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout(idle, payload.next()).await {
            Err(_) => {
                return Err(s3s::s3_error!(
                    RequestTimeout,
                    "{}",
                    super::store::BODY_TIMEOUT
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(s3s::s3_error!(IncompleteBody, "{e}")),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if body.len() + chunk.len() > MAX_CHECKED_BODY {
            return Err(s3s::s3_error!(
                MaxMessageLengthExceeded,
                "Your request was too big."
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let body = if is_aws_chunked(req) {
        let mut decoder = ChunkedDecoder::default();
        let decoded = decoder
            .feed(&body)
            .map_err(|e| s3s::s3_error!(IncompleteBody, "{e}"))?;
        if !decoder.complete() {
            return Err(s3s::s3_error!(
                IncompleteBody,
                "the aws-chunked body ended early"
            ));
        }
        decoded.concat().into()
    } else {
        body.freeze()
    };
    let digest: [u8; 16] = Md5::digest(&body).into();
    if expected.is_some_and(|e| e != digest) {
        return Err(s3s::s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    Ok(body)
}

/// An S3 error document, as s3s writes them.
fn error_answer(e: s3s::S3Error) -> HttpResponse {
    let status = e.status_code().unwrap_or(http::StatusCode::BAD_REQUEST);
    let code = e.code().as_str().to_string();
    let message = e.message().unwrap_or_default().to_string();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        crate::aws::query::xml(&code),
        crate::aws::query::xml(&message)
    );
    HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/xml")
        .body(xml)
}

/// Serves one S3 request with `service`; a body that sends nothing for `idle` is refused.
pub async fn serve(
    service: &s3s::service::S3Service,
    req: &HttpRequest,
    mut payload: web::Payload,
    region: Option<String>,
    idle: std::time::Duration,
) -> HttpResponse {
    let mut chunked = is_aws_chunked(req);
    let md5_header = req
        .headers()
        .get("content-md5")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    // A document body with a Content-MD5 is read and checked here, before s3s parses it.
    let checked = match md5_header.as_deref() {
        Some(header) if is_document_body(req) => {
            match checked_document(req, &mut payload, header, idle).await {
                Ok(body) => Some(body),
                Err(e) => return error_answer(e),
            }
        }
        _ => None,
    };
    let decoded_length = req
        .headers()
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let content_length = if let Some(body) = &checked {
        Some(body.len())
    } else if chunked {
        decoded_length
    } else {
        req.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
    };

    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(strip_presigning(req));
    for (name, value) in req.headers() {
        let name = name.as_str();
        let dropped = matches!(
            name,
            "authorization"
                | "x-amz-decoded-content-length"
                | "content-length"
                | "x-amz-content-sha256"
                | "x-amz-trailer"
        );
        if dropped {
            continue;
        }
        if name == "content-encoding" && chunked {
            let rest: Vec<&str> = value
                .to_str()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && *e != "aws-chunked")
                .collect();
            if !rest.is_empty() {
                builder = builder.header(name, rest.join(","));
            }
            continue;
        }
        builder = builder.header(name, value.as_bytes());
    }
    if let Some(n) = content_length {
        builder = builder.header("content-length", n);
    }
    if let Some(region) = region {
        builder = builder.extension(RequestRegion(region));
    }

    let (tx, rx) = mpsc::channel::<Result<Bytes, StdError>>(4);
    if let Some(body) = checked {
        // Already read and decoded: s3s gets the plain document.
        chunked = false;
        let _ = tx.try_send(Ok(body));
    }
    // Why the body failed, if it did: s3s answers a body it could not read with a bare 500,
    // which is replaced by S3's answer for what went wrong.
    let body_failure: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let failure = body_failure.clone();
    actix_rt::spawn(async move {
        let fail = |message: String| {
            *failure.lock().expect("body failure") = Some(message.clone());
            Err::<Bytes, StdError>(message.into())
        };
        let mut decoder = chunked.then(ChunkedDecoder::default);
        loop {
            let chunk = match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    let _ = tx.send(fail(super::store::BODY_TIMEOUT.into())).await;
                    return;
                }
            };
            let items: Vec<Result<Bytes, StdError>> = match (chunk, decoder.as_mut()) {
                (Ok(bytes), Some(d)) => match d.feed(&bytes) {
                    Ok(out) => out.into_iter().map(Ok).collect(),
                    Err(e) => vec![fail(e)],
                },
                (Ok(bytes), None) => vec![Ok(bytes)],
                (Err(e), _) => vec![fail(e.to_string())],
            };
            for item in items {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        }
        if decoder.is_some_and(|d| !d.complete()) {
            let _ = tx
                .send(fail("the aws-chunked body ended early".into()))
                .await;
        }
    });
    let mut body_stream = ChannelStream::new(rx);
    body_stream.length = content_length;
    let body = s3s::Body::from(Box::pin(body_stream) as s3s::stream::DynByteStream);

    let request = match builder.body(body) {
        Ok(r) => r,
        Err(e) => return error_answer(s3s::s3_error!(InvalidRequest, "invalid request: {e}")),
    };
    let response = service.call(request).await;
    let failure = body_failure.lock().expect("body failure").take();
    match (response, failure) {
        (Ok(r), Some(message)) if r.status().is_server_error() => body_error(message),
        (Ok(response), _) => into_actix(response, req.method() == actix_web::http::Method::HEAD),
        (Err(_), Some(message)) => body_error(message),
        (Err(e), None) => {
            log::error!("s3: {:?}", StdError::from(e));
            error_answer(s3s::s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            ))
        }
    }
}

/// S3's answer to a body that could not be read: `RequestTimeout` when the client stopped
/// sending, else `IncompleteBody`.
fn body_error(message: String) -> HttpResponse {
    if message == super::store::BODY_TIMEOUT {
        error_answer(s3s::s3_error!(RequestTimeout, "{message}"))
    } else {
        error_answer(s3s::s3_error!(IncompleteBody, "{message}"))
    }
}

/// Query parameters of presigned URLs would make s3s check a signature; they are dropped.
fn strip_presigning(req: &HttpRequest) -> String {
    let uri = req.uri();
    let Some(query) = uri.query() else {
        return uri.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("X-Amz-") && !p.starts_with("x-amz-"))
        .collect();
    if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    }
}

/// A header an S3 handler sets to give its answer a status s3s would not write; the bridge
/// applies it and does not send it.
pub const STATUS_HEADER: &str = "x-codepipeline-local-status";

fn into_actix(response: http::Response<s3s::Body>, head: bool) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status = parts
        .headers
        .get(STATUS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(parts.status.as_u16());
    let mut builder = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    let mut length = None;
    for (name, value) in &parts.headers {
        if name == STATUS_HEADER {
            continue;
        }
        if name == http::header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        builder.append_header((name.as_str(), value.as_bytes()));
    }
    if head {
        let empty = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
        return builder.body(SizedStream::new(length.unwrap_or(0), empty));
    }
    // `bytes()` only looks; `take_bytes()` would drop a streaming body.
    if let Some(bytes) = body.bytes() {
        return builder.body(bytes);
    }
    let body = body.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    match length {
        Some(n) => builder.body(SizedStream::new(n, body)),
        None => builder.streaming(body),
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedDecoder;

    fn decode(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for p in pieces {
            for b in d.feed(p).unwrap() {
                out.extend_from_slice(&b);
            }
        }
        (out, d.complete())
    }

    #[test]
    fn decodes_signed_chunks() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=000\r\n\r\n";
        assert_eq!(decode(&[body]), (b"hello world".to_vec(), true));
    }

    #[test]
    fn decodes_unsigned_chunks_with_trailing_checksums_split_anywhere() {
        let body: &[u8] = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n";
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(decode(&[a, b]), (b"abc".to_vec(), true), "split at {split}");
        }
    }

    #[test]
    fn a_truncated_body_is_not_complete() {
        let (_, complete) = decode(&[b"5\r\nhel"]);
        assert!(!complete);
        assert!(ChunkedDecoder::default().feed(b"zz\r\n").is_err());
    }
}
