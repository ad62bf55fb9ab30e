//! Who a request is for: the SigV4 credential scope names the service and region, the access key
//! may name the account.
//!
//! Signatures are not checked: any credentials are accepted, as an emulator on a developer's
//! machine should.

use actix_web::http::header::HeaderMap;

/// The account every resource belongs to unless the access key id is a 12-digit account id.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// The parts of a SigV4 `Authorization` header that route a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// The access key id.
    pub access_key: String,
    /// The region the request was signed for.
    pub region: String,
    /// The service the request was signed for (`codepipeline`, `s3`, `iam`, …).
    pub service: String,
}

/// Reads the credential scope from `Authorization: AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, …`.
pub fn credential_scope(headers: &HeaderMap) -> Option<CredentialScope> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let start = auth.find("Credential=")? + "Credential=".len();
    let rest = &auth[start..];
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    let mut parts = rest[..end].split('/');
    let access_key = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some(CredentialScope {
        access_key,
        region,
        service,
    })
}

/// What every handler knows about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The region resources are created in and looked up from.
    pub region: String,
    /// The account resources belong to.
    pub account_id: String,
    /// The id returned in `x-amzn-RequestId`, for matching logs with client errors.
    pub request_id: String,
    /// The execution a StartPipelineExecution runs again (`codepipeline-local rerun`), from the
    /// `x-codepipeline-local-rerun-of` header.
    pub rerun_of: Option<String>,
    /// The `Host` the request was sent to, for URLs on this endpoint (a webhook's).
    pub host: String,
    /// The server's region (where a request that names none goes).
    pub default_region: String,
}

impl RequestContext {
    /// Builds the context from the credential scope, with the configured region as the fallback.
    pub fn new(scope: Option<&CredentialScope>, default_region: &str) -> Self {
        let region = scope
            .map(|s| s.region.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| default_region.to_string());
        let account_id = scope
            .map(|s| s.access_key.as_str())
            .filter(|k| k.len() == 12 && k.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(DEFAULT_ACCOUNT)
            .to_string();
        RequestContext {
            region,
            account_id,
            request_id: request_id(),
            rerun_of: None,
            host: String::new(),
            default_region: default_region.to_string(),
        }
    }
}

/// A fresh request id in AWS's UUID form, without a system call per request: each thread draws
/// from its own generator (SplitMix64), seeded once from the operating system.
pub fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    let next = || {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next().to_le_bytes());
    bytes[8..].copy_from_slice(&next().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(auth).unwrap(),
        );
        h
    }

    #[test]
    fn reads_service_and_region_from_the_scope() {
        let h = headers("AWS4-HMAC-SHA256 Credential=test/20261126/eu-central-1/codepipeline/aws4_request, SignedHeaders=host, Signature=abc");
        let s = credential_scope(&h).unwrap();
        assert_eq!(s.service, "codepipeline");
        assert_eq!(s.region, "eu-central-1");
        let ctx = RequestContext::new(Some(&s), "us-east-1");
        assert_eq!(ctx.account_id, DEFAULT_ACCOUNT);
        assert_eq!(ctx.region, "eu-central-1");
    }

    #[test]
    fn a_twelve_digit_access_key_names_the_account() {
        let h = headers("AWS4-HMAC-SHA256 Credential=123456789012/20261126/us-west-2/s3/aws4_request,SignedHeaders=host,Signature=x");
        let s = credential_scope(&h).unwrap();
        assert_eq!(
            RequestContext::new(Some(&s), "us-east-1").account_id,
            "123456789012"
        );
    }

    #[test]
    fn request_ids_are_distinct_v4_uuids() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn no_authorization_falls_back_to_the_configured_region() {
        assert!(credential_scope(&HeaderMap::new()).is_none());
        let ctx = RequestContext::new(None, "ap-south-1");
        assert_eq!(ctx.region, "ap-south-1");
    }
}
