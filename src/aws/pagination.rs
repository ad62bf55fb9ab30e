//! Pagination tokens, shared by every service: opaque to clients (hex of a versioned prefix and
//! the position a page ends at), and checked when they come back. Each service maps a token it
//! cannot read to its own error code.

const PREFIX: &str = "cpl1:";

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Hex back to bytes; `None` for anything that is not an even run of hex digits.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The token that resumes after `last`.
pub fn encode(last: &str) -> String {
    hex(format!("{PREFIX}{last}").as_bytes())
}

/// The position a token resumes after; `None` for a token this server did not give.
pub fn decode(token: &str) -> Option<String> {
    let text = String::from_utf8(unhex(token)?).ok()?;
    text.strip_prefix(PREFIX).map(str::to_string)
}

/// Where the page after `token` starts among `keys` (0 without a token), or `None` when the
/// token is unreadable or names no key.
pub fn start_after<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    token: Option<&str>,
) -> Option<usize> {
    let Some(token) = token else {
        return Some(0);
    };
    let after = decode(token)?;
    keys.into_iter().position(|k| k == after).map(|p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_others_are_refused() {
        assert_eq!(decode(&encode("p-1")).as_deref(), Some("p-1"));
        for bad in ["", "zz", "abc", "6162"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(unhex(&hex(b"\x00\xffa")), Some(b"\x00\xffa".to_vec()));
    }

    #[test]
    fn pages_start_after_the_named_key() {
        let keys = ["a", "b", "c"];
        assert_eq!(start_after(keys, None), Some(0));
        assert_eq!(start_after(keys, Some(&encode("b"))), Some(2));
        assert_eq!(start_after(keys, Some(&encode("x"))), None);
        assert_eq!(start_after(keys, Some("zz")), None);
    }
}
