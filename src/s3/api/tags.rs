//! Object tags: S3's rules for them, and the forms they come in.

use super::*;

/// The most tags an object may carry.
pub(super) const MAX_TAGS: usize = 10;

pub(super) fn invalid_tag(message: &str) -> S3Error {
    custom_error("InvalidTag", message, http::StatusCode::BAD_REQUEST)
}

/// Checks tags as S3 does (at most 10, unique keys of 1–128 characters, values of at most 256,
/// letters, digits, spaces and `+-=._:/@`, no `aws:` prefix) and returns them as a map.
pub(super) fn checked_tags(pairs: Vec<(String, String)>) -> S3Result<BTreeMap<String, String>> {
    if pairs.len() > MAX_TAGS {
        return Err(custom_error(
            "BadRequest",
            "Object tags cannot be greater than 10",
            http::StatusCode::BAD_REQUEST,
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c);
    let mut tags = BTreeMap::new();
    for (key, value) in pairs {
        if key.chars().count() > 128 {
            return Err(invalid_tag(
                "The TagKey you have provided is too long, max 128",
            ));
        }
        if value.chars().count() > 256 {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if key.is_empty() || !key.chars().all(allowed) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if !value.chars().all(allowed) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if tags.insert(key, value).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(tags)
}

/// The tags of an `x-amz-tagging` header: a URL-encoded query string, `k1=v1&k2=v2`.
pub(super) fn header_tags(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let pairs = header
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (crate::aws::query::decode(k), crate::aws::query::decode(v))
        })
        .collect();
    checked_tags(pairs)
}

pub(super) fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}
