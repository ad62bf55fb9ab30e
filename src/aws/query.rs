//! The AWS query protocol (IAM, STS, and the services to come: CloudFormation, SNS): form-encoded
//! parameters in, XML out, errors as `<ErrorResponse>`.

use std::collections::BTreeMap;

use actix_web::HttpResponse;

use super::RequestContext;

/// The parameters of a query request.
pub type Params = BTreeMap<String, String>;

/// An error of a query service: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    /// HTTP status.
    pub status: u16,
    /// The error code, e.g. `NoSuchEntity`.
    pub code: String,
    /// The message.
    pub message: String,
}

impl QueryError {
    /// An error with this status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The answer to `action`: `<ActionResponse xmlns=ns><ActionResult>result</ActionResult>…`.
pub fn respond(ns: &str, action: &str, result: &str, ctx: &RequestContext) -> HttpResponse {
    let result = if result.is_empty() {
        String::new()
    } else {
        format!("<{action}Result>{result}</{action}Result>")
    };
    HttpResponse::Ok()
        .content_type("text/xml")
        .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"{ns}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
            ctx.request_id
        ))
}

/// An error as query services write it: `<ErrorResponse><Error><Type/><Code/><Message/>`.
pub fn error(ns: &str, e: &QueryError, ctx: &RequestContext) -> HttpResponse {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("text/xml")
    .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
    .body(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.code,
        xml(&e.message),
        ctx.request_id
    ))
}

/// An error as REST-XML services (S3 and its kind) write it: `<Error><Code/><Message/>`.
pub fn rest_error(e: &QueryError, ctx: &RequestContext) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("application/xml")
    .insert_header(("x-amzn-RequestId", ctx.request_id.as_str()))
    .body(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
        e.code,
        xml(&e.message),
        ctx.request_id
    ))
}

/// A timestamp as query services write it (ISO 8601, UTC).
pub fn iso8601(epoch: f64) -> String {
    chrono::DateTime::from_timestamp(epoch as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Decodes `application/x-www-form-urlencoded` text (also a URL's query string).
pub fn parse_form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding, with `+` as a space; a `%` not followed by two hex digits stays as it is.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string of the pairs that have a value, each value percent-encoded.
pub fn build(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", encode(v.as_ref()?))))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encoding of everything but unreserved characters: how IAM returns policy documents.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for XML.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The members of a query list parameter: `Name.member.1`, `Name.member.2`, … (or `Name.1`).
pub fn members(params: &BTreeMap<String, String>, name: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for i in 1.. {
        let prefixes = [format!("{name}.member.{i}"), format!("{name}.{i}")];
        let mut found = BTreeMap::new();
        for prefix in &prefixes {
            for (k, v) in params {
                if k == prefix {
                    found.insert(String::new(), v.clone());
                } else if let Some(rest) = k.strip_prefix(&format!("{prefix}.")) {
                    found.insert(rest.to_string(), v.clone());
                }
            }
        }
        if found.is_empty() {
            break;
        }
        out.push(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let p = parse_form("Action=CreateRole&RoleName=my+role&Doc=%7B%22a%22%3A1%7D&Bad=%zz%4");
        assert_eq!(p["Action"], "CreateRole");
        assert_eq!(p["RoleName"], "my role");
        assert_eq!(p["Doc"], "{\"a\":1}");
        assert_eq!(p["Bad"], "%zz%4");
    }

    #[test]
    fn encoding_round_trips() {
        let doc = "{\"Version\": \"2012-10-17\", \"Statement\": [1]}";
        assert_eq!(decode(&encode(doc)), doc);
        assert_eq!(xml("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;");
    }

    #[test]
    fn list_members_are_collected() {
        let p = parse_form("Tags.member.1.Key=k1&Tags.member.1.Value=v1&Tags.member.2.Key=k2&Tags.member.2.Value=v2");
        let tags = members(&p, "Tags");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[1]["Key"], "k2");
    }
}
