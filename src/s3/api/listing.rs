//! Listings: pages of keys and common prefixes, key encoding, continuation tokens.

use super::*;

/// Keys and common prefixes of a listing page.
pub(super) struct Page {
    pub(super) keys: Vec<(String, Version)>,
    pub(super) prefixes: Vec<String>,
    pub(super) truncated: bool,
    pub(super) next: Option<String>,
}

/// Lists the newest version of each key that is not deleted, S3's way: keys after `after`, with
/// `prefix`, rolled up at `delimiter`, at most `max` entries.
pub(super) fn list_keys(
    objects: &Objects,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let mut page = Page {
        keys: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: None,
    };
    // From the prefix on, or after `after` when that comes later.
    let mut keys = match after {
        Some(after) if after >= prefix => objects.after(after),
        _ => objects.from(prefix),
    };
    while let Some((key, versions)) = keys.next() {
        if !key.starts_with(prefix) {
            if key.as_str() > prefix {
                break;
            }
            continue;
        }
        let Some(latest) = versions.last().filter(|v| !v.is_delete_marker()) else {
            continue;
        };
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(common) = &rolled {
            if page.prefixes.last() == Some(common) {
                continue;
            }
        }
        if page.keys.len() + page.prefixes.len() >= max {
            page.truncated = true;
            break;
        }
        match rolled {
            Some(common) => {
                // Nothing under a rolled-up prefix is listed: go on past all of it.
                keys = objects.after(&format!("{common}{}", char::MAX));
                page.next = Some(common.clone());
                page.prefixes.push(common);
            }
            None => {
                page.next = Some(key.clone());
                page.keys.push((key.clone(), latest.clone()));
            }
        }
    }
    // A rolled-up prefix resumes after every key under it.
    if let Some(next) = &mut page.next {
        if page.prefixes.last() == Some(next) {
            next.push(char::MAX);
        }
    }
    page
}

impl EmbeddedS3 {
    /// A listing page of a bucket; see [`list_keys`].
    pub(super) fn page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> S3Result<Page> {
        self.store
            .with_bucket(bucket, |b| {
                list_keys(&b.objects, prefix, delimiter, after, max)
            })
            .map_err(error)
    }
}

pub(super) fn object_entry(key: String, v: &Version) -> Object {
    Object {
        key: Some(key),
        e_tag: Some(etag(&v.etag)),
        last_modified: Some(timestamp(v.last_modified)),
        size: Some(v.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

pub(super) fn prefixes(list: Vec<String>) -> Option<CommonPrefixList> {
    (!list.is_empty()).then(|| {
        list.into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect()
    })
}

/// What a bucket's LocationConstraint may be besides `EU`: a region name.
/// How a listing writes keys: as they are, or (`EncodingType=url`) percent-encoded, as S3 does
/// so that keys with characters XML cannot carry (or `+`, `%`) reach the client intact.
#[derive(Clone, Copy)]
pub(super) struct KeyEncoding(bool);

impl KeyEncoding {
    pub(super) fn of(encoding: Option<&EncodingType>) -> Self {
        KeyEncoding(encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }

    pub(super) fn key(self, key: String) -> String {
        if !self.0 {
            return key;
        }
        let mut out = String::with_capacity(key.len());
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub(super) fn opt(self, key: Option<String>) -> Option<String> {
        key.map(|k| self.key(k))
    }
}

pub(super) fn max_keys(max: Option<i32>) -> usize {
    max.map_or(1000, |m| m.clamp(0, 1000) as usize)
}

pub(super) fn encode_token(key: &str) -> String {
    crate::aws::pagination::hex(key.as_bytes())
}

pub(super) fn decode_token(token: &str) -> S3Result<String> {
    crate::aws::pagination::unhex(token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::eventstore::shelf::{MemoryShelf, Role};

    /// A bucket on a shelf with keys `a`, `b`, `b/001`…`b/300`, `c/x` and `d`.
    fn bucket() -> Objects {
        let mut objects = Objects::on_shelf(Arc::new(MemoryShelf::default()), "bk", Role::Live, 0);
        let mut keys = vec!["a".to_string(), "b".into(), "c/x".into(), "d".into()];
        keys.extend((1..=300).map(|i| format!("b/{i:03}")));
        for (seq, key) in keys.iter().enumerate() {
            objects.change(key, seq as u64 + 1, |v| {
                v.push(Version {
                    version_id: "null".into(),
                    blob: Some("blob".into()),
                    ..Version::blank()
                });
                Vec::new()
            });
        }
        objects
    }

    fn names(page: &Page) -> (Vec<&str>, Vec<&str>) {
        (
            page.keys.iter().map(|(k, _)| k.as_str()).collect(),
            page.prefixes.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn rolled_up_prefixes_are_passed_over_and_pages_resume_after_them() {
        let objects = bucket();
        let all = list_keys(&objects, "", Some("/"), None, 1000);
        assert_eq!(names(&all), (vec!["a", "b", "d"], vec!["b/", "c/"]));
        assert!(!all.truncated);

        let first = list_keys(&objects, "", Some("/"), None, 3);
        assert_eq!(names(&first), (vec!["a", "b"], vec!["b/"]));
        assert!(first.truncated);
        let next = first.next.clone().unwrap();
        let second = list_keys(&objects, "", Some("/"), Some(&next), 3);
        assert_eq!(names(&second), (vec!["d"], vec!["c/"]));
        assert!(!second.truncated);

        let under = list_keys(&objects, "b/", None, None, 1000);
        assert_eq!(under.keys.len(), 300);
        assert_eq!(under.keys[299].0, "b/300");
        let with_itself = list_keys(&objects, "b", Some("/"), None, 1000);
        assert_eq!(names(&with_itself), (vec!["b"], vec!["b/"]));
        let after_marker = list_keys(&objects, "b/", None, Some("b/298"), 1000);
        assert_eq!(names(&after_marker).0, ["b/299", "b/300"]);
    }
}
