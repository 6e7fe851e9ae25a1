//! The attributes: every field that is not a known one, written as the text of one JSON object.

use std::collections::HashSet;
use std::fmt;

use super::scan::Entry;

/// The attributes' JSON text, or `None` when there are none (`{}`).
///
/// Of keys that occur more than once, only the last occurrence is kept.
pub(super) fn attributes(attrs: &mut [Entry<'_>], out_of_order: bool) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    if out_of_order {
        attrs.sort_by_key(|e| e.pos);
    }
    // Which entries a later one with the same key overrides.
    const SMALL: usize = 16;
    let overridden: Vec<bool> = if attrs.len() <= SMALL {
        Vec::new()
    } else {
        let mut seen = HashSet::with_capacity(attrs.len());
        let mut flags: Vec<bool> = attrs.iter().rev().map(|e| !seen.insert(&*e.key)).collect();
        flags.reverse();
        flags
    };
    let is_overridden = |i: usize, entry: &Entry<'_>| match overridden.get(i) {
        Some(flag) => *flag,
        None => attrs
            .get(i + 1..)
            .is_some_and(|later| later.iter().any(|e| e.key == entry.key)),
    };
    let capacity = 2 + attrs
        .iter()
        .map(|e| e.key.len() + e.value.get().len() + 4)
        .sum::<usize>();
    let mut json = String::with_capacity(capacity);
    json.push('{');
    for (i, entry) in attrs.iter().enumerate() {
        if is_overridden(i, entry) {
            continue;
        }
        if json.len() > 1 {
            json.push(',');
        }
        json.push('"');
        escape_into(&mut json, &entry.key);
        json.push_str("\":");
        json.push_str(entry.value.get());
    }
    json.push('}');
    Some(json)
}

/// Appends `s` as the content of a JSON string, escaping what JSON requires.
fn escape_into(out: &mut String, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                use fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use crate::decode::tests::*;

    #[test]
    fn attributes_byte_exact() {
        let body = "{\"message\":\"m\",\"n\":1.50e3,\"s\":\"caf\\u00e9 \\\"q\\\"\",\"nested\":{ \"a\" : [ 1 , {\"b\":null} ] },\
                    \"t\":true,\"z\":null,\"u\":\"\u{1F600}\",\"e\":[]}";
        let r = one(body);
        assert_eq!(
            attrs(&r),
            "{\"n\":1.50e3,\"s\":\"caf\\u00e9 \\\"q\\\"\",\"nested\":{ \"a\" : [ 1 , {\"b\":null} ] },\
             \"t\":true,\"z\":null,\"u\":\"\u{1F600}\",\"e\":[]}"
        );
        serde_json::from_str::<serde_json::Value>(attrs(&r)).unwrap();
    }

    #[test]
    fn attribute_keys_are_re_escaped() {
        let body = r#"{"message":"m","a\"b":1,"back\\slash":2,"caf\u00e9":3,"nl\nx":4,"ctl\u0001":5,"sl\/":6}"#;
        let r = one(body);
        assert_eq!(
            attrs(&r),
            r#"{"a\"b":1,"back\\slash":2,"café":3,"nl\nx":4,"ctl\u0001":5,"sl/":6}"#
        );
        let v: serde_json::Value = serde_json::from_str(attrs(&r)).unwrap();
        assert_eq!(v["a\"b"], 1);
        assert_eq!(v["ctl\u{1}"], 5);
    }
}
