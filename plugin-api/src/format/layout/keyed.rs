//! Machine-readable lines from a [`Layout`]: JSON lines and logfmt, for connectors that write
//! files other programs read.
//!
//! The same layout decides what is shown: `fields` (and their order), `hidden`,
//! `timestamp_format`, `timezone`, `level_case` and `escape_control_characters` apply exactly as
//! they do for text; styles, separators and `pad_level` do not (nothing is styled or padded).
//! Each shown field becomes a key named after the field; `attr.<key>` becomes the attribute's own
//! key, and `attributes` holds the attributes not shown on their own: a nested object in JSON,
//! flattened `key=value` pairs in logfmt.

use std::fmt::Write as _;

use super::{Field, Layout};
use crate::abi::Record;
use crate::escape::{is_bidi_control, needs_escape, push_json_char_escape, push_json_escaped};
use crate::format::json;
use crate::format::spec::LevelCase;
use crate::format::timestamp::TimestampCache;

/// A machine-readable line format: every shown field as a key with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedFormat {
    /// One JSON object per line; every string escaped, attributes as a nested object:
    /// `{"timestamp":"2023-11-14T22:13:20.123+00:00","level":"INFO","message":"paid","attributes":{"user":"ann"}}`.
    Json,
    /// logfmt: `timestamp=2023-11-14T22:13:20.123+00:00 level=INFO message="two words" user=ann`.
    /// Values are bare when they hold no space, `=`, quote, backslash or control character, and
    /// quoted with JSON escapes otherwise; nested objects and arrays are quoted JSON text.
    Logfmt,
}

impl Layout {
    /// Appends every record of `records`, one line each, in `format`.
    pub fn write_keyed<'a>(
        &self,
        format: KeyedFormat,
        records: impl IntoIterator<Item = &'a Record>,
        out: &mut String,
    ) {
        let mut cache = TimestampCache::default();
        for record in records {
            match format {
                KeyedFormat::Json => self.write_json_line(record, &mut cache, out),
                KeyedFormat::Logfmt => self.write_logfmt_line(record, &mut cache, out),
            }
        }
    }

    /// Appends every record of `records`, one text line each, like
    /// [`Layout::write_batch`] but from any iterator (a group picked out of a batch).
    pub fn write_records<'a, R: super::super::Renderer>(
        &self,
        records: impl IntoIterator<Item = &'a Record>,
        out: &mut String,
    ) {
        let mut cache = TimestampCache::default();
        for record in records {
            self.write_line::<R>(record, &mut cache, out);
        }
    }

    fn level_name(&self, record: &Record) -> &'static str {
        match self.level_case {
            LevelCase::Upper => record.level.upper_name(),
            LevelCase::Lower => record.level.name(),
        }
    }

    fn write_json_line(&self, record: &Record, cache: &mut TimestampCache, out: &mut String) {
        out.push('{');
        let mut first = true;
        for slot in &self.slots {
            let mark = out.len();
            if !first {
                out.push(',');
            }
            match &slot.field {
                Field::Timestamp => {
                    out.push_str("\"timestamp\":");
                    let start = out.len();
                    self.timestamp.write(record.timestamp_ns, cache, out);
                    requote_json(out, start, self.escape_control);
                }
                Field::Level => {
                    out.push_str("\"level\":\"");
                    out.push_str(self.level_name(record));
                    out.push('"');
                }
                Field::Project => {
                    out.push_str("\"project\":");
                    push_json_string(out, &record.project, self.escape_control);
                }
                Field::Module => {
                    out.push_str("\"module\":");
                    push_json_string(out, &record.module, self.escape_control);
                }
                Field::Message => {
                    out.push_str("\"message\":");
                    push_json_string(out, &record.message, self.escape_control);
                }
                Field::Id => {
                    out.push_str("\"id\":");
                    push_json_string(out, &record.id, self.escape_control);
                }
                Field::Attributes => {
                    out.push_str("\"attributes\":");
                    self.write_json_attributes(&record.attributes, out);
                }
                Field::Attribute(key) => match json::find(&record.attributes, key) {
                    Some(value) => {
                        push_json_string(out, key, self.escape_control);
                        out.push(':');
                        self.push_json_value(out, value);
                    }
                    None => {
                        out.truncate(mark);
                        continue;
                    }
                },
            }
            first = false;
        }
        out.push_str("}\n");
    }

    fn push_json_value(&self, out: &mut String, value: &str) {
        if self.escape_control {
            push_json_escaped(out, value);
        } else {
            out.push_str(value);
        }
    }

    /// The attributes not shown on their own, as one JSON object (`{}` when none are left); text
    /// that is not an object this can read is written as a JSON string instead.
    fn write_json_attributes(&self, attributes: &str, out: &mut String) {
        let start = out.len();
        out.push('{');
        let mut first = true;
        for entry in json::entries(attributes) {
            let Ok(entry) = entry else {
                out.truncate(start);
                push_json_string(out, attributes, self.escape_control);
                return;
            };
            if !self.named_keys.is_empty() && self.is_named(&entry) {
                continue;
            }
            if !first {
                out.push(',');
            }
            self.push_json_value(out, entry.key);
            out.push(':');
            self.push_json_value(out, entry.value);
            first = false;
        }
        out.push('}');
    }

    fn write_logfmt_line(&self, record: &Record, cache: &mut TimestampCache, out: &mut String) {
        let mut first = true;
        for slot in &self.slots {
            let mark = out.len();
            if !first {
                out.push(' ');
            }
            match &slot.field {
                Field::Timestamp => {
                    out.push_str("timestamp=");
                    let start = out.len();
                    self.timestamp.write(record.timestamp_ns, cache, out);
                    if !is_bare(&out[start..], self.escape_control) {
                        let text = out.split_off(start);
                        push_json_string(out, &text, self.escape_control);
                    }
                }
                Field::Level => {
                    out.push_str("level=");
                    out.push_str(self.level_name(record));
                }
                Field::Project => self.push_logfmt_pair(out, "project", &record.project),
                Field::Module => self.push_logfmt_pair(out, "module", &record.module),
                Field::Message => self.push_logfmt_pair(out, "message", &record.message),
                Field::Id => self.push_logfmt_pair(out, "id", &record.id),
                Field::Attributes => {
                    if !self.write_logfmt_attributes(&record.attributes, out) {
                        out.truncate(mark);
                        continue;
                    }
                }
                Field::Attribute(key) => match json::find(&record.attributes, key) {
                    Some(value) => {
                        push_logfmt_key(out, key);
                        out.push('=');
                        self.push_logfmt_json_value(out, value);
                    }
                    None => {
                        out.truncate(mark);
                        continue;
                    }
                },
            }
            first = false;
        }
        out.push('\n');
    }

    fn push_logfmt_pair(&self, out: &mut String, key: &str, text: &str) {
        out.push_str(key);
        out.push('=');
        push_logfmt_text(out, text, self.escape_control);
    }

    /// A JSON value as a logfmt value: strings by their text, objects and arrays as quoted JSON
    /// text, numbers, booleans and null bare.
    fn push_logfmt_json_value(&self, out: &mut String, value: &str) {
        if value.starts_with('"') {
            push_logfmt_text(out, &json::string_text(value), self.escape_control);
        } else if is_bare(value, self.escape_control) {
            out.push_str(value);
        } else {
            push_json_string(out, value, self.escape_control);
        }
    }

    /// The attributes not shown on their own as `key=value` pairs; false when none were written.
    fn write_logfmt_attributes(&self, attributes: &str, out: &mut String) -> bool {
        if attributes == "{}" {
            return false;
        }
        let start = out.len();
        let mut first = true;
        for entry in json::entries(attributes) {
            let Ok(entry) = entry else {
                out.truncate(start);
                out.push_str("attributes=");
                push_json_string(out, attributes, self.escape_control);
                return true;
            };
            if !self.named_keys.is_empty() && self.is_named(&entry) {
                continue;
            }
            if !first {
                out.push(' ');
            }
            push_logfmt_key(out, &entry.key_text());
            out.push('=');
            self.push_logfmt_json_value(out, entry.value);
            first = false;
        }
        !first
    }
}

/// Whether `text` can be a bare logfmt value: not empty, and no space, `=`, quote, backslash or
/// control character (C1 controls and bidirectional formatting characters count only when they
/// are escaped).
fn is_bare(text: &str, escape_control: bool) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b > b' '
                && b != b'='
                && b != b'"'
                && b != b'\\'
                && b != 0x7f
                && !(escape_control && b == 0xc2)
        })
        && !(escape_control
            && text.bytes().any(|b| b == 0xd8 || b == 0xe2)
            && text.contains(is_bidi_control))
}

fn push_logfmt_text(out: &mut String, text: &str, escape_control: bool) {
    if is_bare(text, escape_control) {
        out.push_str(text);
    } else {
        push_json_string(out, text, escape_control);
    }
}

/// A logfmt key: characters that would end or split it become `_`.
fn push_logfmt_key(out: &mut String, key: &str) {
    if key.is_empty() {
        out.push('_');
        return;
    }
    for c in key.chars() {
        if c.is_control() || is_bidi_control(c) || c == ' ' || c == '=' || c == '"' || c == '\\' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
}

/// Takes the text appended since `start` back out and appends it again as a JSON string.
fn requote_json(out: &mut String, start: usize, escape_control: bool) {
    let text = out.split_off(start);
    push_json_string(out, &text, escape_control);
}

/// Appends `text` as a JSON string with its quotes. Quote, backslash and C0 controls are always
/// escaped (JSON requires it); DEL, C1 controls and bidirectional formatting characters too when
/// `escape_control` is set.
pub(crate) fn push_json_string(out: &mut String, text: &str, escape_control: bool) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut clean = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let needs = b < 0x20
            || b == b'"'
            || b == b'\\'
            || (escape_control && matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2));
        if !needs {
            i += 1;
            continue;
        }
        if b >= 0x80 {
            // The lead byte of a character (0xc2, 0xd8, 0xe2 are never continuation bytes):
            // escaped only if it is a C1 control or a bidirectional formatting character.
            match text[i..].chars().next() {
                Some(c) if needs_escape(c) => {
                    out.push_str(&text[clean..i]);
                    push_json_char_escape(out, c);
                    i += c.len_utf8();
                    clean = i;
                }
                _ => i += 1,
            }
            continue;
        }
        out.push_str(&text[clean..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        i += 1;
        clean = i;
    }
    out.push_str(&text[clean..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Level;
    use crate::format::LayoutSpec;

    const TS: i64 = 1_700_000_000_123_456_789;

    fn layout(json: &str) -> Layout {
        let spec: LayoutSpec = serde_json::from_str(json).expect("valid spec");
        Layout::new(&spec).expect("valid layout")
    }

    fn record() -> Record {
        Record::new(
            "id-7",
            TS,
            Level::WARNING,
            "shop",
            "",
            "two \"words\"\n\u{1b}",
        )
        .with_attributes(r#"{"user":"ann","seq":5,"tags":["a","b"],"note":"x y"}"#)
    }

    fn keyed(l: &Layout, format: KeyedFormat, r: &Record) -> String {
        let mut out = String::new();
        l.write_keyed(format, [r], &mut out);
        out
    }

    #[test]
    fn json_lines_are_valid_json_with_nested_attributes() {
        let l = layout(
            r#"{"fields": ["timestamp", "level", "project", "module", "message", "id", "attr.seq", "attr.nope", "attributes"]}"#,
        );
        let line = keyed(&l, KeyedFormat::Json, &record());
        assert_eq!(
            line,
            "{\"timestamp\":\"2023-11-14T22:13:20.123+00:00\",\"level\":\"WARNING\",\"project\":\"shop\",\
             \"module\":\"\",\"message\":\"two \\\"words\\\"\\n\\u001b\",\"id\":\"id-7\",\"seq\":5,\
             \"attributes\":{\"user\":\"ann\",\"tags\":[\"a\",\"b\"],\"note\":\"x y\"}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("valid JSON");
        assert_eq!(v["message"], "two \"words\"\n\u{1b}");
        assert_eq!(v["attributes"]["tags"][1], "b");
    }

    #[test]
    fn json_keeps_odd_attributes_valid() {
        let l = layout(r#"{"fields": ["message", "attributes"]}"#);
        let r = Record::new("i", TS, Level::INFO, "p", "m", "\u{85}x").with_attributes("[1, 2]");
        let line = keyed(&l, KeyedFormat::Json, &r);
        assert_eq!(
            line,
            "{\"message\":\"\\u0085x\",\"attributes\":\"[1, 2]\"}\n"
        );
        serde_json::from_str::<serde_json::Value>(line.trim_end()).expect("valid JSON");
    }

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        let l = layout(
            r#"{"fields": ["level", "project", "module", "message", "attributes"], "level_case": "lower"}"#,
        );
        assert_eq!(
            keyed(&l, KeyedFormat::Logfmt, &record()),
            "level=warning project=shop module=\"\" message=\"two \\\"words\\\"\\n\\u001b\" user=ann seq=5 \
             tags=\"[\\\"a\\\",\\\"b\\\"]\" note=\"x y\"\n"
        );
        let r = Record::new("i", TS, Level::INFO, "p", "m", "ok");
        let l = layout(
            r#"{"fields": ["message", "attributes"], "timestamp_format": "%Y-%m-%d %H:%M"}"#,
        );
        assert_eq!(keyed(&l, KeyedFormat::Logfmt, &r), "message=ok\n");
        let l = layout(r#"{"fields": ["timestamp"], "timestamp_format": "%Y-%m-%d %H:%M"}"#);
        assert_eq!(
            keyed(&l, KeyedFormat::Logfmt, &r),
            "timestamp=\"2023-11-14 22:13\"\n"
        );
    }
    #[test]
    fn bidi_characters_are_escaped_in_both_formats_unless_asked() {
        let r = Record::new("i", TS, Level::INFO, "p", "m", "abc\u{202e}fed\u{2066}—°")
            .with_attributes("{\"k\\u202e\":\"v\\u2067w\",\"plain\":\"x\u{61c}y\"}");
        let l = layout(r#"{"fields": ["message", "attributes"]}"#);
        let line = keyed(&l, KeyedFormat::Json, &r);
        assert_eq!(
            line,
            "{\"message\":\"abc\\u202efed\\u2066—°\",\
             \"attributes\":{\"k\\u202e\":\"v\\u2067w\",\"plain\":\"x\\u061cy\"}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("valid JSON");
        assert_eq!(v["message"], "abc\u{202e}fed\u{2066}—°");
        assert_eq!(
            keyed(&l, KeyedFormat::Logfmt, &r),
            "message=\"abc\\u202efed\\u2066—°\" k_=\"v\\u2067w\" plain=\"x\\u061cy\"\n"
        );
        // Text with no bidi character but the same lead bytes stays bare.
        let r = Record::new("i", TS, Level::INFO, "p", "m", "a—b…c\u{61b}");
        assert_eq!(keyed(&l, KeyedFormat::Logfmt, &r), "message=a—b…c\u{61b}\n");

        let raw = layout(r#"{"fields": ["message"], "escape_control_characters": false}"#);
        let r = Record::new("i", TS, Level::INFO, "p", "m", "abc\u{202e}fed");
        assert_eq!(
            keyed(&raw, KeyedFormat::Json, &r),
            "{\"message\":\"abc\u{202e}fed\"}\n"
        );
        assert_eq!(
            keyed(&raw, KeyedFormat::Logfmt, &r),
            "message=abc\u{202e}fed\n"
        );
    }
}
