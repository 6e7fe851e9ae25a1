//! The validated layout and the one code path that turns records into lines.

use anstyle::Style;

use super::json::{self, Entry};
use super::spec::{AttributesFormat, LayoutSpec, LevelCase, StyleSpec};
use super::style::{Codes, overlay, parse_style};
use super::timestamp::{TimestampCache, TimestampFormat};
use super::{FormatError, Renderer};
use crate::abi::{Level, Record};
use crate::escape::{push_escaped, push_json_escaped};

mod keyed;

pub use keyed::KeyedFormat;

/// Styles are resolved per level: the six known levels, then one slot for any other value.
const LEVEL_SLOTS: usize = Level::ALL.len() + 1;

/// The width `pad_level` pads to: the longest level name (`CRITICAL`).
const LEVEL_WIDTH: usize = 8;

/// What one field shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Timestamp,
    Level,
    Project,
    Module,
    Message,
    Id,
    /// The attributes not named on their own.
    Attributes,
    /// One attribute, by key.
    Attribute(Box<str>),
}

impl Field {
    const NAMES: &'static str =
        "timestamp, level, project, module, message, id, attributes, attr.<key>";

    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "timestamp" => Field::Timestamp,
            "level" => Field::Level,
            "project" => Field::Project,
            "module" => Field::Module,
            "message" => Field::Message,
            "id" => Field::Id,
            "attributes" => Field::Attributes,
            _ => match name.strip_prefix("attr.") {
                Some(key) if !key.is_empty() => Field::Attribute(key.into()),
                _ => return None,
            },
        })
    }
}

/// One shown field with its escape codes for each level.
#[derive(Debug, Clone)]
struct Slot {
    field: Field,
    codes: [Codes; LEVEL_SLOTS],
}

/// A checked layout, ready to format records many times over.
///
/// Built once from a [`LayoutSpec`]; formatting never fails and allocates nothing per record
/// (beyond growing the output buffer), except to decode the rare attribute key or value that
/// holds JSON escapes.
///
/// ```
/// use logrelay_plugin_api::format::{Ansi, Layout, LayoutSpec, Plain};
/// use logrelay_plugin_api::{Level, Record};
///
/// let spec: LayoutSpec = serde_json::from_str(
///     r#"{"fields": ["level", "message", "attr.user"], "separator": " | ",
///         "styles": {"message": "bold"}, "level_styles": {}}"#,
/// )
/// .unwrap();
/// let layout = Layout::new(&spec).unwrap();
/// let record = Record::new("id-1", 0, Level::INFO, "shop", "cart", "paid")
///     .with_attributes(r#"{"user":"ann"}"#);
///
/// let mut out = String::new();
/// layout.write_record::<Plain>(&record, &mut out);
/// assert_eq!(out, "INFO | paid | ann\n");
///
/// out.clear();
/// layout.write_record::<Ansi>(&record, &mut out);
/// assert_eq!(out, "INFO | \x1b[1mpaid\x1b[0m | ann\n");
/// ```
#[derive(Debug, Clone)]
pub struct Layout {
    slots: Vec<Slot>,
    separator: Box<str>,
    separator_codes: [Codes; LEVEL_SLOTS],
    timestamp: TimestampFormat,
    level_case: LevelCase,
    pad_level: bool,
    attributes_format: AttributesFormat,
    attribute_separator: Box<str>,
    /// Attribute keys kept out of `attributes`: shown on their own, or hidden.
    named_keys: Vec<Box<str>>,
    escape_control: bool,
}

fn level_slot(level: Level) -> usize {
    usize::from(level.0).min(LEVEL_SLOTS - 1)
}

/// Styles by level, from a table keyed by level name; `option` names the table in errors.
fn level_table(
    table: &std::collections::BTreeMap<String, StyleSpec>,
    option: &str,
) -> Result<[Style; LEVEL_SLOTS], FormatError> {
    let mut styles = [Style::new(); LEVEL_SLOTS];
    for (name, spec) in table {
        let level = Level::from_name(name).ok_or_else(|| {
            FormatError::new(
                option.to_owned(),
                name.clone(),
                "unknown level; expected trace, debug, info, warning, error or critical".to_owned(),
            )
        })?;
        styles[level_slot(level)] = parse_style(spec, &format!("{option}.{name}"))?;
    }
    Ok(styles)
}

impl Layout {
    /// Checks `spec` and builds the layout. Errors name the option and the value refused.
    pub fn new(spec: &LayoutSpec) -> Result<Layout, FormatError> {
        let parse_field = |option: &str, name: &str| {
            Field::parse(name).ok_or_else(|| {
                FormatError::new(
                    option.to_owned(),
                    name.to_owned(),
                    format!("unknown field; expected one of {}", Field::NAMES),
                )
            })
        };

        let mut hidden = Vec::with_capacity(spec.hidden.len());
        for name in &spec.hidden {
            hidden.push(parse_field("hidden", name)?);
        }
        let mut fields: Vec<Field> = Vec::with_capacity(spec.fields.len());
        for name in &spec.fields {
            let field = parse_field("fields", name)?;
            if fields.contains(&field) {
                return Err(FormatError::new(
                    "fields".to_owned(),
                    name.clone(),
                    "listed twice".to_owned(),
                ));
            }
            fields.push(field);
        }
        fields.retain(|f| !hidden.contains(f));
        if fields.is_empty() {
            return Err(FormatError::new(
                "fields".to_owned(),
                format!("{:?}", spec.fields),
                "no field is left to show once `hidden` is taken out".to_owned(),
            ));
        }

        let mut field_styles = Vec::with_capacity(fields.len());
        field_styles.resize(fields.len(), Style::new());
        let mut separator_style = Style::new();
        for (name, style_spec) in &spec.styles {
            let option = format!("styles.{name}");
            let style = parse_style(style_spec, &option)?;
            if name == "separator" {
                separator_style = style;
                continue;
            }
            let field = Field::parse(name).ok_or_else(|| {
                FormatError::new(
                    "styles".to_owned(),
                    name.clone(),
                    format!(
                        "unknown field; expected one of {}, or separator",
                        Field::NAMES
                    ),
                )
            })?;
            // A style for a field not shown is allowed: it may be hidden for a while.
            if let Some(i) = fields.iter().position(|f| *f == field) {
                field_styles[i] = style;
            }
        }
        let level_styles = level_table(&spec.level_styles, "level_styles")?;
        let line_styles = level_table(&spec.line_styles, "line_styles")?;

        let slots = fields
            .into_iter()
            .zip(field_styles)
            .map(|(field, style)| {
                let codes = std::array::from_fn(|slot| {
                    let mut s = overlay(line_styles[slot], style);
                    if field == Field::Level {
                        s = overlay(s, level_styles[slot]);
                    }
                    Codes::of(s)
                });
                Slot { field, codes }
            })
            .collect::<Vec<_>>();
        let separator_codes =
            std::array::from_fn(|slot| Codes::of(overlay(line_styles[slot], separator_style)));

        let mut named_keys: Vec<Box<str>> = Vec::new();
        for field in slots.iter().map(|s| &s.field).chain(&hidden) {
            if let Field::Attribute(key) = field
                && !named_keys.contains(key)
            {
                named_keys.push(key.clone());
            }
        }

        let timestamp =
            TimestampFormat::new(&spec.timestamp_format, spec.timezone, "timestamp_format")?;

        Ok(Layout {
            slots,
            separator: spec.separator.as_str().into(),
            separator_codes,
            timestamp,
            level_case: spec.level_case,
            pad_level: spec.pad_level,
            attributes_format: spec.attributes_format,
            attribute_separator: spec.attribute_separator.as_str().into(),
            named_keys,
            escape_control: spec.escape_control_characters,
        })
    }

    /// Appends every record of `batch`, one line each, to `out`.
    pub fn write_batch<R: Renderer>(&self, batch: &[Record], out: &mut String) {
        let mut cache = TimestampCache::default();
        for record in batch {
            self.write_line::<R>(record, &mut cache, out);
        }
    }

    /// Appends one record as one line (ending in `\n`) to `out`.
    ///
    /// `R` decides only whether escape codes are written: [`Plain`](super::Plain) output is the
    /// [`Ansi`](super::Ansi) output with its escape codes taken out.
    ///
    /// Prefer [`Layout::write_batch`] for many records: it formats the parts of timestamps that
    /// change once a second only once a second.
    pub fn write_record<R: Renderer>(&self, record: &Record, out: &mut String) {
        self.write_line::<R>(record, &mut TimestampCache::default(), out);
    }

    fn write_line<R: Renderer>(
        &self,
        record: &Record,
        cache: &mut TimestampCache,
        out: &mut String,
    ) {
        let slot = level_slot(record.level);
        let mut first = true;
        for field in &self.slots {
            let mark = out.len();
            if !first {
                let codes = &self.separator_codes[slot];
                if R::STYLED {
                    out.push_str(&codes.open);
                }
                out.push_str(&self.separator);
                if R::STYLED {
                    out.push_str(&codes.close);
                }
            }
            let codes = &field.codes[slot];
            if R::STYLED {
                out.push_str(&codes.open);
            }
            let text_start = out.len();
            self.write_field(&field.field, record, cache, out);
            if out.len() == text_start {
                // Nothing to show: leave the field and its separator out.
                out.truncate(mark);
                continue;
            }
            if R::STYLED {
                out.push_str(&codes.close);
            }
            first = false;
        }
        out.push('\n');
    }

    fn write_field(
        &self,
        field: &Field,
        record: &Record,
        cache: &mut TimestampCache,
        out: &mut String,
    ) {
        match field {
            Field::Timestamp => self.timestamp.write(record.timestamp_ns, cache, out),
            Field::Level => {
                let name = match self.level_case {
                    LevelCase::Upper => record.level.upper_name(),
                    LevelCase::Lower => record.level.name(),
                };
                out.push_str(name);
                if self.pad_level {
                    for _ in name.len()..LEVEL_WIDTH {
                        out.push(' ');
                    }
                }
            }
            Field::Project => self.push_text(out, &record.project),
            Field::Module => self.push_text(out, &record.module),
            Field::Message => self.push_text(out, &record.message),
            Field::Id => self.push_text(out, &record.id),
            Field::Attributes => self.write_attributes(&record.attributes, out),
            Field::Attribute(key) => {
                if let Some(value) = json::find(&record.attributes, key) {
                    self.write_value(value, out);
                }
            }
        }
    }

    /// One attribute value: strings as their text, anything else as JSON.
    fn write_value(&self, value: &str, out: &mut String) {
        if value.starts_with('"') {
            self.push_text(out, &json::string_text(value));
        } else {
            self.push_json(out, value);
        }
    }

    fn write_attributes(&self, attributes: &str, out: &mut String) {
        if attributes == "{}" {
            return;
        }
        let start = out.len();
        let mut first = true;
        for entry in json::entries(attributes) {
            let Ok(entry) = entry else {
                // Not an object this can read: show the text as it is.
                out.truncate(start);
                self.push_text(out, attributes);
                return;
            };
            if !self.named_keys.is_empty() && self.is_named(&entry) {
                continue;
            }
            match self.attributes_format {
                AttributesFormat::KeyValue => {
                    if !first {
                        out.push_str(&self.attribute_separator);
                    }
                    self.push_logfmt(out, entry.key);
                    out.push('=');
                    self.push_logfmt(out, entry.value);
                }
                AttributesFormat::Json => {
                    out.push(if first { '{' } else { ',' });
                    self.push_json(out, entry.key);
                    out.push(':');
                    self.push_json(out, entry.value);
                }
            }
            first = false;
        }
        if !first && self.attributes_format == AttributesFormat::Json {
            out.push('}');
        }
    }

    fn is_named(&self, entry: &Entry<'_>) -> bool {
        let key = entry.key_text();
        self.named_keys.iter().any(|k| **k == *key)
    }

    /// A key or value in `key=value` form: a simple string without its quotes, anything else
    /// as JSON text.
    fn push_logfmt(&self, out: &mut String, raw: &str) {
        if let Some(inner) = raw.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
            && !inner.is_empty()
            && !inner
                .bytes()
                .any(|b| matches!(b, b'\\' | b'"' | b'=' | b' ') || b.is_ascii_whitespace())
        {
            self.push_text(out, inner);
        } else {
            self.push_json(out, raw);
        }
    }

    /// Appends JSON text, keeping it valid JSON while escaping control characters if the layout
    /// says so.
    fn push_json(&self, out: &mut String, json: &str) {
        if self.escape_control {
            push_json_escaped(out, json);
        } else {
            out.push_str(json);
        }
    }

    /// Appends record text, escaping control characters if the layout says so.
    fn push_text(&self, out: &mut String, text: &str) {
        if self.escape_control {
            push_escaped(out, text);
        } else {
            out.push_str(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Local, Utc};

    use super::*;
    use crate::format::{Ansi, Plain};

    /// 2023-11-14T22:13:20.123Z
    const TS: i64 = 1_700_000_000_123_456_789;

    fn spec(json: &str) -> LayoutSpec {
        serde_json::from_str(json).expect("valid spec")
    }

    fn layout(json: &str) -> Layout {
        Layout::new(&spec(json)).expect("valid layout")
    }

    fn record(level: Level) -> Record {
        Record::new("id-7", TS, level, "shop", "cart", "paid")
            .with_attributes(r#"{"user":"ann","seq":5,"note":"two words"}"#)
    }

    fn ansi(layout: &Layout, record: &Record) -> String {
        let mut out = String::new();
        layout.write_record::<Ansi>(record, &mut out);
        out
    }

    fn plain(layout: &Layout, record: &Record) -> String {
        let mut out = String::new();
        layout.write_record::<Plain>(record, &mut out);
        out
    }

    fn varied_records() -> Vec<Record> {
        (0..40)
            .map(|i| {
                Record::new(
                    format!("rec-{i}"),
                    TS + i * 1_000_000,
                    Level(u8::try_from(i % 8).expect("small")),
                    if i % 4 == 0 {
                        String::new()
                    } else {
                        format!("p{}", i % 3)
                    },
                    format!("m{}", i % 5),
                    format!("message\u{1b} number {i}"),
                )
                .with_attributes(match i % 3 {
                    0 => "{}".to_owned(),
                    1 => format!(r#"{{"seq":{i},"user":"u{}"}}"#, i % 7),
                    _ => format!(r#"{{"seq":{i},"tags":["a","b"]}}"#),
                })
            })
            .collect()
    }

    /// Takes out every `ESC [ ... m` sequence.
    fn strip(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('\x1b') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('m').expect("escape ends in m");
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn default_layout() {
        let l = Layout::new(&LayoutSpec::default()).expect("default is valid");
        let r = record(Level::WARNING);
        assert_eq!(
            plain(&l, &r),
            "2023-11-14T22:13:20.123+00:00 WARNING shop cart paid user=ann seq=5 note=\"two words\"\n"
        );
        assert_eq!(
            ansi(&l, &r),
            "\x1b[2m2023-11-14T22:13:20.123+00:00\x1b[0m \x1b[1m\x1b[33mWARNING\x1b[0m shop cart \
             paid user=ann seq=5 note=\"two words\"\n"
        );
    }

    #[test]
    fn order_hidden_and_separator() {
        let l = layout(
            r#"{"fields": ["message", "id", "level", "project", "module"],
                "hidden": ["project"], "separator": " | ", "styles": {}, "level_styles": {}}"#,
        );
        let r = record(Level::INFO);
        assert_eq!(plain(&l, &r), "paid | id-7 | INFO | cart\n");
        assert_eq!(ansi(&l, &r), "paid | id-7 | INFO | cart\n");
    }

    #[test]
    fn empty_fields_are_left_out_with_their_separator() {
        let l = layout(
            r#"{"fields": ["project", "module", "message", "attr.nothing", "attributes"],
                "separator": "|", "styles": {"module": "bold"}}"#,
        );
        let r = Record::new("", TS, Level::INFO, "", "", "hi");
        assert_eq!(plain(&l, &r), "hi\n");
        assert_eq!(ansi(&l, &r), "hi\n");
        let r = Record::new("", TS, Level::INFO, "p", "", "");
        assert_eq!(plain(&l, &r), "p\n");
    }

    #[test]
    fn named_attributes_leave_the_rest() {
        let l = layout(
            r#"{"fields": ["attr.user", "message", "attributes"], "hidden": ["attr.seq"],
                "styles": {"attr.user": "cyan", "attributes": "dim"}}"#,
        );
        let r = record(Level::INFO);
        assert_eq!(plain(&l, &r), "ann paid note=\"two words\"\n");
        assert_eq!(
            ansi(&l, &r),
            "\x1b[36mann\x1b[0m paid \x1b[2mnote=\"two words\"\x1b[0m\n"
        );
        let r = record(Level::INFO).with_attributes(r#"{"user":"ann","seq":1}"#);
        assert_eq!(plain(&l, &r), "ann paid\n");
    }

    #[test]
    fn attributes_as_json_and_key_value() {
        let json =
            layout(r#"{"fields": ["attributes", "attr.note"], "attributes_format": "json"}"#);
        let r = record(Level::INFO)
            .with_attributes(r#"{ "user" : "ann", "n": {"a": [1, 2]}, "note":"x y" }"#);
        assert_eq!(
            plain(&json, &r),
            "{\"user\":\"ann\",\"n\":{\"a\": [1, 2]}} x y\n"
        );

        let kv = layout(r#"{"fields": ["attributes"], "attribute_separator": ", "}"#);
        let r = record(Level::INFO).with_attributes(
            r#"{"s":"plain","e":"","q":"a=b","t":"tab\there","n":null,"o":{"k":1},"x y":2}"#,
        );
        assert_eq!(
            plain(&kv, &r),
            "s=plain, e=\"\", q=\"a=b\", t=\"tab\\there\", n=null, o={\"k\":1}, \"x y\"=2\n"
        );
        let r = record(Level::INFO).with_attributes("not json");
        assert_eq!(plain(&kv, &r), "not json\n");
        let r = record(Level::INFO).with_attributes("{}");
        assert_eq!(plain(&kv, &r), "\n");
    }

    #[test]
    fn attribute_values_are_decoded() {
        let l = layout(r#"{"fields": ["attr.a", "attr.b", "attr.c"], "separator": ","}"#);
        let r = record(Level::INFO).with_attributes(r#"{"a":"x\"y","b":[1,"z"],"c":"l1\nl2"}"#);
        assert_eq!(plain(&l, &r), "x\"y,[1,\"z\"],l1\\nl2\n");
    }

    #[test]
    fn control_characters_are_escaped_unless_asked() {
        let r = Record::new("", TS, Level::INFO, "", "", "a\nb\r\x1b[31m\tc\x7f\u{9b}é°");
        let l = layout(r#"{"fields": ["message"]}"#);
        assert_eq!(plain(&l, &r), "a\\nb\\r\\x1b[31m\tc\\x7f\\u{9b}é°\n");
        let l = layout(r#"{"fields": ["message"], "escape_control_characters": false}"#);
        assert_eq!(plain(&l, &r), "a\nb\r\x1b[31m\tc\x7f\u{9b}é°\n");
    }

    #[test]
    fn bidi_characters_are_escaped_unless_asked() {
        let r = Record::new(
            "",
            TS,
            Level::INFO,
            "",
            "",
            "a\u{202e}b\u{2067}c\u{2069}\u{200f}\u{61c}—",
        )
        .with_attributes("{\"u\":\"x\\u202dy\",\"o\":{\"k\":\"\u{2066}\"}}");
        let l = layout(r#"{"fields": ["message", "attr.u", "attributes"]}"#);
        assert_eq!(
            plain(&l, &r),
            "a\\u{202e}b\\u{2067}c\\u{2069}\\u{200f}\\u{61c}— x\\u{202d}y o={\"k\":\"\\u2066\"}\n"
        );
        let l = layout(r#"{"fields": ["message"], "escape_control_characters": false}"#);
        assert_eq!(
            plain(&l, &r),
            "a\u{202e}b\u{2067}c\u{2069}\u{200f}\u{61c}—\n"
        );
    }

    #[test]
    fn json_stays_valid_when_control_characters_are_escaped() {
        let attributes = "{\"a\":\n{\"b\":\t\"x\u{7f}y\u{85}\"},\"c\":[1,\r2]}";
        let r = record(Level::INFO).with_attributes(attributes);
        let json = layout(r#"{"fields": ["attributes"], "attributes_format": "json"}"#);
        let out = plain(&json, &r);
        assert_eq!(out, "{\"a\":{\"b\":\t\"x\\u007fy\\u0085\"},\"c\":[1, 2]}\n");
        let reparsed: serde_json::Value = serde_json::from_str(out.trim_end()).expect("valid");
        let original: serde_json::Value = serde_json::from_str(attributes).expect("valid");
        assert_eq!(reparsed, original);

        let kv = layout(r#"{"fields": ["attributes", "attr.c"], "hidden": ["attr.b"]}"#);
        assert_eq!(plain(&kv, &r), "a={\"b\":\t\"x\\u007fy\\u0085\"} [1, 2]\n");
    }

    #[test]
    fn level_case_padding_and_unknown_levels() {
        let l = layout(
            r#"{"fields": ["level", "message"], "level_case": "lower", "pad_level": true,
                "level_styles": {"warn": "yellow"}}"#,
        );
        assert_eq!(plain(&l, &record(Level::INFO)), "info     paid\n");
        assert_eq!(
            ansi(&l, &record(Level::WARNING)),
            "\x1b[33mwarning \x1b[0m paid\n"
        );
        assert_eq!(plain(&l, &record(Level(9))), "unknown  paid\n");
        assert_eq!(ansi(&l, &record(Level(9))), "unknown  paid\n");
    }

    #[test]
    fn level_and_line_styles_combine() {
        let l = layout(
            r##"{"fields": ["level", "message", "module"], "separator": "|",
                "styles": {"level": "underline", "message": "#ff8800", "separator": "dim"},
                "level_styles": {"error": "red"},
                "line_styles": {"error": "bold on 236"}}"##,
        );
        assert_eq!(
            ansi(&l, &record(Level::ERROR)),
            "\x1b[1m\x1b[4m\x1b[31m\x1b[48;5;236mERROR\x1b[0m\
             \x1b[1m\x1b[2m\x1b[48;5;236m|\x1b[0m\
             \x1b[1m\x1b[38;2;255;136;0m\x1b[48;5;236mpaid\x1b[0m\
             \x1b[1m\x1b[2m\x1b[48;5;236m|\x1b[0m\
             \x1b[1m\x1b[48;5;236mcart\x1b[0m\n"
        );
        assert_eq!(
            ansi(&l, &record(Level::INFO)),
            "\x1b[4mINFO\x1b[0m\x1b[2m|\x1b[0m\x1b[38;2;255;136;0mpaid\x1b[0m\x1b[2m|\x1b[0mcart\n"
        );
    }

    #[test]
    fn plain_is_ansi_without_escapes() {
        let specs = [
            "{}",
            r##"{"fields": ["id", "level", "timestamp", "attributes", "message", "attr.user"],
                "separator": " ~ ", "pad_level": true, "attributes_format": "json",
                "styles": {"id": "bold italic underline strikethrough dim #123456 on 99",
                           "separator": "on blue", "attr.user": {"fg": 200}},
                "line_styles": {"critical": "on red", "debug": "italic"}}"##,
        ];
        let records = varied_records();
        for s in specs {
            let l = layout(s);
            let (mut a, mut p) = (String::new(), String::new());
            l.write_batch::<Ansi>(&records, &mut a);
            l.write_batch::<Plain>(&records, &mut p);
            assert!(!p.contains('\x1b'));
            assert_eq!(strip(&a), p, "{s}");
            assert_eq!(p.lines().count(), records.len());
        }
    }

    #[test]
    fn timestamp_formats_and_zones() {
        let l = layout(r#"{"fields": ["timestamp"], "timestamp_format": "%H:%M:%S%.6f %Z"}"#);
        assert_eq!(plain(&l, &record(Level::INFO)), "22:13:20.123456 UTC\n");
        let l = layout(r#"{"fields": ["timestamp"], "timestamp_format": "%s|%%"}"#);
        assert_eq!(plain(&l, &record(Level::INFO)), "1700000000|%\n");
        let local = layout(r#"{"fields": ["timestamp"], "timezone": "local"}"#);
        let expected = DateTime::<Utc>::from_timestamp_nanos(TS)
            .with_timezone(&Local)
            .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string();
        assert_eq!(plain(&local, &record(Level::INFO)), format!("{expected}\n"));
    }

    #[test]
    fn invalid_values_name_option_and_value() {
        let err = |json: &str| Layout::new(&spec(json)).expect_err("refused");

        let e = err(r#"{"timestamp_format": "%Y-%Q"}"#);
        assert_eq!((e.option(), e.value()), ("timestamp_format", "%Y-%Q"));
        assert!(e.to_string().contains("strftime"), "{e}");
        let e = err(r#"{"timestamp_format": "%Y %"}"#);
        assert_eq!(e.option(), "timestamp_format");

        let e = err(r#"{"fields": ["message", "mesage"]}"#);
        assert_eq!((e.option(), e.value()), ("fields", "mesage"));
        assert!(e.to_string().contains("attr.<key>"), "{e}");
        let e = err(r#"{"fields": ["message", "message"]}"#);
        assert!(e.to_string().contains("twice"), "{e}");
        let e = err(r#"{"fields": ["attr."]}"#);
        assert_eq!(e.value(), "attr.");
        let e = err(r#"{"fields": ["message"], "hidden": ["message"]}"#);
        assert_eq!((e.option(), e.value()), ("fields", r#"["message"]"#));
        let e = err(r#"{"fields": []}"#);
        assert!(e.to_string().contains("no field"), "{e}");
        let e = err(r#"{"hidden": ["ts"]}"#);
        assert_eq!((e.option(), e.value()), ("hidden", "ts"));
        let e = err(r#"{"styles": {"msg": "bold"}}"#);
        assert_eq!((e.option(), e.value()), ("styles", "msg"));
        let e = err(r#"{"styles": {"message": "bold purple"}}"#);
        assert_eq!((e.option(), e.value()), ("styles.message", "bold purple"));
        let e = err(r##"{"styles": {"message": {"fg": "#12345"}}}"##);
        assert_eq!((e.option(), e.value()), ("styles.message.fg", "#12345"));
        let e = err(r#"{"level_styles": {"loud": "red"}}"#);
        assert_eq!((e.option(), e.value()), ("level_styles", "loud"));
        let e = err(r#"{"line_styles": {"error": {"bg": 300}}}"#);
        assert_eq!((e.option(), e.value()), ("line_styles.error.bg", "300"));
    }
}
