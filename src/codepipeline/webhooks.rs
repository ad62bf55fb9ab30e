//! Webhooks (PutWebhook and its siblings): kept one stream per account and region
//! (`webhooks:<account>:<region>`), each with the URL that starts its pipeline when a POST to it
//! passes its authentication (`GITHUB_HMAC`, `IP`, `UNAUTHENTICATED`) and all its filters
//! (a JSONPath into the body whose value must equal `matchEquals`, in which `{Key}` stands for
//! the target action's configuration value `Key`).
//!
//! # LIMITATIONS
//! - RegisterWebhookWithThirdParty and DeregisterWebhookWithThirdParty record the registration
//!   only: no third party is reached. A webhook's URL is on this endpoint,
//!   `/_codepipeline_local/webhooks/<account>/<region>/<name>`.
//! - JSONPath filters take the forms `$.a.b`, `$['a']` and `$.a[0]` (no wildcards or
//!   expressions).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pipeline::Tag;
use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of webhook streams.
pub const STREAM_PREFIX: &str = "webhooks:";

/// The path prefix of webhook URLs.
pub const URL_PREFIX: &str = "/_codepipeline_local/webhooks/";

/// How many webhooks an account may have in a region (AWS's quota).
pub const MAX_WEBHOOKS: usize = 300;

/// A webhook as its events built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its definition (the wire shape `WebhookDefinition`).
    pub definition: Value,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// When it last started its pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_triggered: Option<f64>,
    /// Whether RegisterWebhookWithThirdParty was asked (and not undone).
    #[serde(default)]
    pub registered: bool,
}

impl Webhook {
    /// Its name.
    pub fn name(&self) -> &str {
        self.definition["name"].as_str().unwrap_or_default()
    }

    /// A member of its definition.
    pub fn text(&self, member: &str) -> &str {
        self.definition[member].as_str().unwrap_or_default()
    }
}

/// What can happen to a region's webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// PutWebhook: created or replaced (its registration and last trigger kept).
    Put(Box<Webhook>),
    /// DeleteWebhook.
    Deleted(String),
    /// Register (true) or Deregister (false) WithThirdParty.
    Registered(String, bool),
    /// A POST started its pipeline.
    Triggered(String, f64),
    /// TagResource: tags added, an existing key getting the new value.
    Tagged(String, Vec<Tag>),
    /// UntagResource: keys removed.
    Untagged(String, Vec<String>),
}

impl EventType for WebhookEvent {
    fn type_name(&self) -> &'static str {
        "WebhookEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "WebhookEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        WebhookEvent::deserialize(data)
    }
}

/// A region's webhooks, by name.
pub type RegionWebhooks = BTreeMap<String, Webhook>;

fn fold(hooks: &mut RegionWebhooks, event: WebhookEvent) {
    match event {
        WebhookEvent::Put(hook) => {
            let mut hook = *hook;
            if let Some(old) = hooks.get(hook.name()) {
                hook.registered = old.registered;
                hook.last_triggered = old.last_triggered;
            }
            hooks.insert(hook.name().to_string(), hook);
        }
        WebhookEvent::Deleted(name) => {
            hooks.remove(&name);
        }
        WebhookEvent::Registered(name, on) => {
            if let Some(h) = hooks.get_mut(&name) {
                h.registered = on;
            }
        }
        WebhookEvent::Triggered(name, at) => {
            if let Some(h) = hooks.get_mut(&name) {
                h.last_triggered = Some(at);
            }
        }
        WebhookEvent::Tagged(name, tags) => {
            if let Some(h) = hooks.get_mut(&name) {
                h.tags = super::pipeline::merged(&h.tags, &tags);
            }
        }
        WebhookEvent::Untagged(name, keys) => {
            if let Some(h) = hooks.get_mut(&name) {
                h.tags.retain(|t| !keys.contains(&t.key));
            }
        }
    }
}

/// The webhooks of every account and region.
pub type Webhooks = Regional<WebhookEvent, RegionWebhooks>;

/// The webhooks, empty, from `log`.
pub fn webhooks(log: Arc<dyn EventStore>) -> Webhooks {
    Regional::new(log, STREAM_PREFIX, "webhooks", fold)
}

/// A webhook's ARN.
pub fn arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:codepipeline:{region}:{account}:webhook:{name}")
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Member(String),
    Index(usize),
}

/// Parses the JSONPath forms webhooks take: `$`, then `.name`, `['name']` or `[N]` steps.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Member(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match quoted {
                Some(name) => steps.push(Step::Member(name.to_string())),
                None => steps.push(Step::Index(inner.trim().parse().ok()?)),
            }
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Whether a JSONPath is one webhooks take.
pub fn valid_path(path: &str) -> bool {
    parse_path(path).is_some()
}

/// The value a JSONPath selects in `body`.
fn select<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    parse_path(path)?
        .iter()
        .try_fold(body, |v, step| match step {
            Step::Member(name) => v.get(name),
            Step::Index(i) => v.get(*i),
        })
}

/// `matchEquals` with `{Key}` replaced by the action's configuration value `Key`.
fn expected(match_equals: &str, configuration: &BTreeMap<String, String>) -> String {
    let mut out = match_equals.to_string();
    for (k, v) in configuration {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Whether every filter of the webhook selects the body. A filter without `matchEquals` asks
/// only that its path selects something.
pub fn filters_match(
    definition: &Value,
    body: &Value,
    configuration: &BTreeMap<String, String>,
) -> bool {
    definition["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|rule| {
            let path = rule["jsonPath"].as_str().unwrap_or_default();
            let Some(value) = select(body, path) else {
                return false;
            };
            match rule["matchEquals"].as_str() {
                None => true,
                Some(want) => {
                    let got = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    got == expected(want, configuration)
                }
            }
        })
}

/// Whether `ip` is in the CIDR range (`10.0.0.0/24`, `2001:db8::/32`, or one address).
pub fn in_range(range: &str, ip: IpAddr) -> Option<bool> {
    let (base, bits) = match range.split_once('/') {
        Some((b, n)) => (b, Some(n.trim().parse::<u32>().ok()?)),
        None => (range, None),
    };
    let base: IpAddr = base.trim().parse().ok()?;
    let (a, b, width) = match (base, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V4(a), IpAddr::V6(b)) => match b.to_ipv4_mapped() {
            Some(b) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return Some(false),
        },
        (IpAddr::V6(_), IpAddr::V4(_)) => return Some(false),
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return None;
    }
    let mask = if bits == 0 {
        0
    } else {
        (!0u128 << (width - bits)) & (if width == 32 { 0xffff_ffff } else { !0u128 })
    };
    Some(a & mask == b & mask)
}

/// The hex HMAC-SHA256 of `body` with `secret`, as GitHub signs it (`X-Hub-Signature-256`).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_select_with_json_paths_and_configuration_placeholders() {
        let body = json!({"ref": "refs/heads/main", "repository": {"name": "web"},
                          "commits": [{"id": "abc"}], "n": 3});
        let config: BTreeMap<String, String> = [("Branch".to_string(), "main".to_string())].into();
        let def = |rules: Value| json!({ "filters": rules });
        assert!(filters_match(
            &def(
                json!([{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"},
                        {"jsonPath": "$['repository'].name", "matchEquals": "web"},
                        {"jsonPath": "$.commits[0].id"},
                        {"jsonPath": "$.n", "matchEquals": "3"}])
            ),
            &body,
            &config
        ));
        assert!(!filters_match(
            &def(json!([{"jsonPath": "$.ref", "matchEquals": "refs/heads/dev"}])),
            &body,
            &config
        ));
        assert!(!filters_match(
            &def(json!([{"jsonPath": "$.missing"}])),
            &body,
            &config
        ));
        assert!(!valid_path("ref"));
        assert!(!valid_path("$..ref"));
        assert!(valid_path("$"));
    }

    #[test]
    fn ip_ranges_and_signatures() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(in_range("10.0.0.0/24", ip("10.0.0.7")), Some(true));
        assert_eq!(in_range("10.0.0.0/24", ip("10.0.1.7")), Some(false));
        assert_eq!(in_range("127.0.0.1", ip("127.0.0.1")), Some(true));
        assert_eq!(in_range("0.0.0.0/0", ip("8.8.8.8")), Some(true));
        assert_eq!(in_range("::1/128", ip("::1")), Some(true));
        assert_eq!(in_range("10.0.0.0/33", ip("10.0.0.1")), None);
        assert_eq!(in_range("nope", ip("10.0.0.1")), None);
        // GitHub's documented example.
        assert_eq!(
            github_signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
