//! Lines that are not JSON: logfmt (always), and plain text (with `LOGRELAY_TEXT_INTAKE=lines`).
//!
//! Both are turned into the text of a JSON object and decoded as one, so that every field rule
//! (aliases, levels, timestamps, attributes) is the same whatever the body's format.

use std::fmt::Write as _;

use super::fields::level_name;
use super::scan::Scratch;
use super::shapes::TextIntake;
use super::{Decoder, Outcome};

/// The hint of a reason for a line that is neither JSON nor logfmt, when text intake is off.
pub(super) const TEXT_HINT: &str =
    "nor logfmt; set LOGRELAY_TEXT_INTAKE=lines to store plain text lines";

/// A logfmt line (`level=info msg="cart is full" user=17`) as the text of a JSON object whose
/// values are all strings; `None` when the line is not logfmt: it must be only `key=value`
/// pairs separated by spaces or tabs (at least one), keys without `"`, `=`, `\` or control
/// characters, values bare (no `"`, space or tab) or double-quoted with JSON's escapes.
pub(super) fn logfmt_to_json(line: &str) -> Option<String> {
    let mut out = String::with_capacity(line.len() + 16);
    out.push('{');
    let mut rest = line.trim_matches([' ', '\t', '\r']);
    let mut pairs = 0;
    while !rest.is_empty() {
        let eq = rest.find(['=', ' ', '\t', '"'])?;
        let (key, tail) = rest.split_at(eq);
        let tail = tail.strip_prefix('=')?;
        if key.is_empty() || key.chars().any(|c| c == '\\' || c.is_control()) {
            return None;
        }
        let (value, tail) = if tail.starts_with('"') {
            let end = closing_quote(tail)?;
            let (quoted, tail) = tail.split_at(end + 1);
            serde_json::from_str::<String>(quoted).ok()?;
            (quoted, tail)
        } else {
            let end = tail.find([' ', '\t']).unwrap_or(tail.len());
            let (bare, tail) = tail.split_at(end);
            if bare.contains('"') || bare.chars().any(char::is_control) {
                return None;
            }
            (bare, tail)
        };
        if !tail.is_empty() && !tail.starts_with([' ', '\t']) {
            return None;
        }
        if pairs > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        if value.starts_with('"') {
            out.push_str(value);
        } else {
            let _ = write!(out, "\"{}\"", value.replace('\\', "\\\\"));
        }
        pairs += 1;
        rest = tail.trim_start_matches([' ', '\t']);
    }
    out.push('}');
    (pairs > 0).then_some(out)
}

/// The offset of the quote that closes the string opening `s`.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A plain text line as the text of a JSON object: the line (without surrounding whitespace) is
/// the message, and a leading level word (`ERROR`, `[warn]`, `INFO:`, `<debug>`) is the level.
pub(super) fn text_to_json(line: &str) -> String {
    let line = line.trim();
    let word = line.trim_start_matches(['[', '<', '(']);
    let end = word
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-'))
        .unwrap_or(word.len());
    let word = word.get(..end).unwrap_or_default();
    let message = serde_json::Value::from(line).to_string();
    match level_name(word) {
        Some(_) if !word.is_empty() => {
            let word = serde_json::Value::from(word).to_string();
            format!("{{\"message\":{message},\"level\":{word}}}")
        }
        _ => format!("{{\"message\":{message}}}"),
    }
}

impl Decoder<'_, '_> {
    /// Decodes a line that is not JSON: as logfmt, or as plain text when text intake is on;
    /// `None` when it is neither.
    pub(super) fn decode_non_json(&self, line: &str, index: usize) -> Option<Outcome> {
        let json = match logfmt_to_json(line) {
            Some(json) => json,
            None if self.ctx.options.text_intake == TextIntake::Lines => text_to_json(line),
            None => return None,
        };
        let mut scratch = Scratch::new();
        // Both texts are JSON objects by construction; an error would be a bug here, and is
        // reported as the line's reason rather than lost.
        Some(
            self.parse(&json, &mut scratch, index)
                .unwrap_or_else(|e| Outcome::Bad(format!("line could not be converted: {e}"))),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::decode::tests::*;
    use crate::decode::{DecodeOptions, TextIntake, decode};
    use logrelay_plugin_api::Level;

    #[test]
    fn logfmt_lines() {
        assert_eq!(
            logfmt_to_json(r#"level=warn msg="cart is \"full\"" user=17 path=C:\x empty="#)
                .as_deref(),
            Some(
                r#"{"level":"warn","msg":"cart is \"full\"","user":"17","path":"C:\\x","empty":""}"#
            )
        );
        for not in [
            "hello world",
            "a=1 word",
            "=1",
            r#"a="unterminated"#,
            r#"a=b"c"#,
            r#"a="x"b"#,
            "GET / HTTP/1.1",
            "",
        ] {
            assert_eq!(logfmt_to_json(not), None, "{not:?}");
        }
    }

    #[test]
    fn logfmt_bodies_decode_by_the_same_rules() {
        let body = "time=2024-05-01T12:00:00.5Z level=error msg=\"payment failed\" logger=pay order=A-1\n\
                    ts=1714564800 lvl=debug message=second";
        let d = decode_str(body);
        assert_eq!(d.bad, vec![]);
        let r = &d.records[0];
        assert_eq!(r.message.as_str(), "payment failed");
        assert_eq!(r.level, Level::ERROR);
        assert_eq!(r.module.as_str(), "pay");
        assert_eq!(r.timestamp_ns, 1_714_564_800_500_000_000);
        assert_eq!(attrs(r), r#"{"order":"A-1"}"#);
        assert_eq!(d.records[1].level, Level::DEBUG);
        assert_eq!(d.indices, [0, 1]);
        // One logfmt line is one record, as the whole body.
        assert_eq!(one("msg=alone").message.as_str(), "alone");
        // Logfmt without a message is bad like JSON without one.
        assert_eq!(whole_bad("a=1"), NO_MESSAGE);
    }

    #[test]
    fn text_is_refused_with_how_to_enable_it() {
        assert_eq!(
            whole_bad("ERROR disk full"),
            format!("message is not valid JSON: expected value at line 1 column 1 ({TEXT_HINT})")
        );
        let d = decode_str("msg=ok\nplain words\n{\"message\":\"json\"}");
        assert_eq!(d.indices, [0, 2]);
        assert_eq!(
            d.bad[0].reason,
            format!("line is not valid JSON: expected value at line 2 column 1 ({TEXT_HINT})")
        );
    }

    #[test]
    fn text_lines_when_enabled() {
        let options = DecodeOptions::new(&[], TextIntake::Lines);
        let mut c = ctx();
        c.options = &options;
        let body = "[ERROR] disk full\nWARN: low memory\nplain words \"quoted\"\nmsg=logfmt level=debug\n{\"message\":\"json\"}\n42\ninfo";
        let d = decode(body.as_bytes(), &c);
        assert_eq!(d.bad, vec![]);
        let got: Vec<(&str, Level)> = d
            .records
            .iter()
            .map(|r| (r.message.as_str(), r.level))
            .collect();
        assert_eq!(
            got,
            [
                ("[ERROR] disk full", Level::ERROR),
                ("WARN: low memory", Level::WARNING),
                ("plain words \"quoted\"", Level::INFO),
                ("logfmt", Level::DEBUG),
                ("json", Level::INFO),
                ("42", Level::INFO),
                ("info", Level::INFO),
            ]
        );
        assert_eq!(d.records[0].attributes.as_str(), "{}");
        // A single line of text is one record.
        let r = one_with("Something happened", &c);
        assert_eq!(r.message.as_str(), "Something happened");
        // Broken JSON objects stay bad: text intake is for lines that are not JSON.
        let d = decode(b"{\"message\":", &c);
        assert_eq!(d.records.len(), 0);
    }
}
