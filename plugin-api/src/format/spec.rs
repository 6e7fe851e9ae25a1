//! The layout as written in a connector's config: plain data, checked by [`Layout::new`].
//!
//! [`Layout::new`]: super::Layout::new

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// How records become lines of text, as written in a connector's config (a `layout` table).
///
/// Every value is checked by [`Layout::new`](super::Layout::new), which names the option and the
/// value of anything it refuses.
///
/// Field names, used by `fields`, `hidden` and `styles`:
///
/// | name | shows |
/// | --- | --- |
/// | `timestamp` | the record's time, formatted with `timestamp_format` in `timezone` |
/// | `level` | the level name (`INFO`), in `level_case` |
/// | `project` | the producing application |
/// | `module` | the part of the application |
/// | `message` | the message |
/// | `id` | the record id |
/// | `attributes` | every attribute not named on its own (see `attr.<key>`), as `attributes_format` says |
/// | `attr.<key>` | the value of one attribute, e.g. `attr.user`: strings without quotes, other values as JSON |
///
/// A field with no text (an empty module, a missing attribute, no remaining attributes) is left
/// out together with its separator.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    /// The fields shown, in this order; at least one must be left once `hidden` is taken out.
    /// Default:
    /// `["timestamp", "level", "project", "module", "message", "attributes"]`.
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// Fields taken out of `fields`; `attr.<key>` here also keeps that attribute out of
    /// `attributes`. Default: none.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<String>,
    /// Written between two fields. Default: `" "`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// A chrono strftime format for `timestamp`. Default: `"%Y-%m-%dT%H:%M:%S%.3f%:z"`
    /// (`2023-11-14T22:13:20.000+00:00`).
    #[serde(default = "default_timestamp_format")]
    pub timestamp_format: String,
    /// The time zone of `timestamp`: `utc` or `local` (the machine's, from `TZ` or
    /// `/etc/localtime`). Default: `utc`.
    #[serde(default = "default_timezone")]
    pub timezone: Timezone,
    /// `upper` (`WARNING`) or `lower` (`warning`) level names. Default: `upper`.
    #[serde(default = "default_level_case")]
    pub level_case: LevelCase,
    /// Pads the level name with spaces to the longest name (8 characters), so that the fields
    /// after it line up. Default: `false`.
    #[serde(default = "default_pad_level")]
    pub pad_level: bool,
    /// How `attributes` shows the remaining attributes: `key_value` (`user=u3 seq=5`; strings
    /// without quotes unless they hold spaces, `=`, quotes or escapes) or `json`
    /// (`{"user":"u3","seq":5}`). Default: `key_value`.
    #[serde(default = "default_attributes_format")]
    pub attributes_format: AttributesFormat,
    /// Written between two `key=value` pairs of `attributes`. Default: `" "`.
    #[serde(default = "default_attribute_separator")]
    pub attribute_separator: String,
    /// Writes control characters and bidirectional formatting characters found in the records'
    /// text as escapes (`\n`, `\r`, `\x1b`, `\u{9b}`, `\u{202e}`; `\u202e` inside JSON), so
    /// that one record is one line, no record can send escape sequences to a terminal and none
    /// can reorder how the text after it is shown. Tabs are kept. The set is
    /// [`escape`](crate::escape)'s. Default: `true`.
    #[serde(default = "default_escape_control_characters")]
    pub escape_control_characters: bool,
    /// Styles by field name (see the table above), plus `separator` for the separators.
    /// Setting this table replaces the default, which is `{ timestamp = "dim" }`.
    #[serde(default = "default_styles")]
    pub styles: BTreeMap<String, StyleSpec>,
    /// Styles of the `level` field by level name (`trace`, `debug`, `info`, `warning`, `error`,
    /// `critical`; the usual aliases such as `warn` are accepted), drawn over `styles.level`.
    /// Setting this table replaces the default: trace `bright_black`, debug `blue`, info
    /// `green`, warning `bold yellow`, error `bold red`, critical `bold bright_white on red`.
    #[serde(default = "default_level_styles")]
    pub level_styles: BTreeMap<String, StyleSpec>,
    /// Styles of whole lines by level name, under the field styles (a field's own colour wins,
    /// effects add up). Default: none.
    #[serde(default = "default_line_styles")]
    pub line_styles: BTreeMap<String, StyleSpec>,
}

impl Default for LayoutSpec {
    fn default() -> Self {
        LayoutSpec {
            fields: default_fields(),
            hidden: default_hidden(),
            separator: default_separator(),
            timestamp_format: default_timestamp_format(),
            timezone: default_timezone(),
            level_case: default_level_case(),
            pad_level: default_pad_level(),
            attributes_format: default_attributes_format(),
            attribute_separator: default_attribute_separator(),
            escape_control_characters: default_escape_control_characters(),
            styles: default_styles(),
            level_styles: default_level_styles(),
            line_styles: default_line_styles(),
        }
    }
}

fn default_fields() -> Vec<String> {
    [
        "timestamp",
        "level",
        "project",
        "module",
        "message",
        "attributes",
    ]
    .map(String::from)
    .to_vec()
}

fn default_hidden() -> Vec<String> {
    Vec::new()
}

fn default_separator() -> String {
    " ".to_owned()
}

fn default_timestamp_format() -> String {
    "%Y-%m-%dT%H:%M:%S%.3f%:z".to_owned()
}

const fn default_timezone() -> Timezone {
    Timezone::Utc
}

const fn default_level_case() -> LevelCase {
    LevelCase::Upper
}

const fn default_pad_level() -> bool {
    false
}

const fn default_attributes_format() -> AttributesFormat {
    AttributesFormat::KeyValue
}

fn default_attribute_separator() -> String {
    " ".to_owned()
}

const fn default_escape_control_characters() -> bool {
    true
}

fn default_styles() -> BTreeMap<String, StyleSpec> {
    BTreeMap::from([("timestamp".to_owned(), StyleSpec::short("dim"))])
}

fn default_level_styles() -> BTreeMap<String, StyleSpec> {
    [
        ("trace", "bright_black"),
        ("debug", "blue"),
        ("info", "green"),
        ("warning", "bold yellow"),
        ("error", "bold red"),
        ("critical", "bold bright_white on red"),
    ]
    .into_iter()
    .map(|(level, style)| (level.to_owned(), StyleSpec::short(style)))
    .collect()
}

fn default_line_styles() -> BTreeMap<String, StyleSpec> {
    BTreeMap::new()
}

/// The time zone timestamps are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timezone {
    /// Coordinated Universal Time.
    Utc,
    /// The machine's zone (`TZ`, else `/etc/localtime`).
    Local,
}

/// The case of level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelCase {
    /// `WARNING`.
    Upper,
    /// `warning`.
    Lower,
}

/// How the remaining attributes are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributesFormat {
    /// `user=u3 seq=5`.
    KeyValue,
    /// `{"user":"u3","seq":5}`.
    Json,
}

/// A style: either a string of words, or a table.
///
/// The string form lists effects (`bold`, `italic`, `underline`, `strikethrough`, `dim`), at
/// most one foreground colour, and `on <colour>` for the background: `"bold yellow"`,
/// `"italic #ff8800 on 236"`, `""` (no style).
///
/// The table form: `{ fg = "yellow", bg = 236, bold = true }` (see [`StyleTable`]).
///
/// A colour is a name (`black`, `red`, `green`, `yellow`, `blue`, `magenta`, `cyan`, `white`,
/// and the same with `bright_` in front), a 256-colour palette index (`208` or `"208"`), or RGB
/// hex (`"#ff8800"`).
#[derive(Debug, Clone, PartialEq)]
pub enum StyleSpec {
    /// `"bold red on black"`.
    Short(String),
    /// `{ fg = "red", bold = true }`.
    Table(StyleTable),
}

impl StyleSpec {
    /// The string form.
    pub fn short(words: &str) -> StyleSpec {
        StyleSpec::Short(words.to_owned())
    }
}

impl<'de> Deserialize<'de> for StyleSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StyleVisitor;

        impl<'de> Visitor<'de> for StyleVisitor {
            type Value = StyleSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a style: a string such as "bold red on black" or a table such as { fg = "red", bold = true }"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StyleSpec, E> {
                Ok(StyleSpec::Short(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StyleSpec, A::Error> {
                StyleTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(StyleSpec::Table)
            }
        }

        deserializer.deserialize_any(StyleVisitor)
    }
}

/// The table form of a style. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleTable {
    /// Foreground (text) colour. Default: the terminal's.
    #[serde(default)]
    pub fg: Option<ColorSpec>,
    /// Background colour. Default: the terminal's.
    #[serde(default)]
    pub bg: Option<ColorSpec>,
    /// Bold text. Default: `false`.
    #[serde(default)]
    pub bold: bool,
    /// Italic text. Default: `false`.
    #[serde(default)]
    pub italic: bool,
    /// Underlined text. Default: `false`.
    #[serde(default)]
    pub underline: bool,
    /// Struck-through text. Default: `false`.
    #[serde(default)]
    pub strikethrough: bool,
    /// Dim (faint) text. Default: `false`.
    #[serde(default)]
    pub dim: bool,
}

/// A colour as written: a name, a palette index (an integer or its digits as a string) or RGB
/// hex. Checked by [`Layout::new`](super::Layout::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColorSpec(pub String);

impl<'de> Deserialize<'de> for ColorSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColorVisitor;

        impl Visitor<'_> for ColorVisitor {
            type Value = ColorSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r##"a colour: a name such as "red", a palette index 0-255 or "#rrggbb""##,
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ColorSpec, E> {
                Ok(ColorSpec(v.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ColorSpec, E> {
                Ok(ColorSpec(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ColorSpec, E> {
                Ok(ColorSpec(v.to_string()))
            }
        }

        deserializer.deserialize_any(ColorVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<LayoutSpec, String> {
        crate::parse_config::<LayoutSpec>(json).map_err(|e| e.message.to_string())
    }

    #[test]
    fn defaults_fill_an_empty_table() {
        assert_eq!(parse("{}").expect("empty"), LayoutSpec::default());
    }

    #[test]
    fn styles_in_both_forms_and_colours_as_numbers() {
        let spec = parse(
            r##"{"styles": {"message": "bold red", "level": {"fg": 208, "bg": "#102030", "italic": true}}}"##,
        )
        .expect("parses");
        assert_eq!(spec.styles["message"], StyleSpec::short("bold red"));
        assert_eq!(
            spec.styles["level"],
            StyleSpec::Table(StyleTable {
                fg: Some(ColorSpec("208".to_owned())),
                bg: Some(ColorSpec("#102030".to_owned())),
                italic: true,
                ..StyleTable::default()
            })
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let e = parse(r#"{"styles": {"message": {"colour": "red"}}}"#).expect_err("refused");
        assert!(e.contains("styles.message") && e.contains("colour"), "{e}");
        let e = parse(r#"{"sparator": "|"}"#).expect_err("refused");
        assert!(e.contains("sparator"), "{e}");
        let e = parse(r#"{"timezone": "mars"}"#).expect_err("refused");
        assert!(e.contains("timezone") && e.contains("mars"), "{e}");
        let e = parse(r#"{"styles": {"message": true}}"#).expect_err("refused");
        assert!(e.contains("styles.message") && e.contains("a style"), "{e}");
    }
}
