//! Which key names which known field, the rules of each field, and the record built from them.
//! The timestamp and the id have files of their own (`time.rs`, `id.rs`).

use std::borrow::Cow;
use std::fmt;

use logrelay_plugin_api::{Level, Record, RecordFlags};
use serde_json::value::RawValue;

use super::attributes::attributes;
use super::id::id_field;
use super::scan::{Entry, Scratch};
use super::shapes::{Field, Rule};
use super::time::timestamp_field;
use super::{DecodeContext, Decoder};

/// The project, module and level named by the routing key's segments
/// (`<project>.<module>[.<level>]`), worked out once per message.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RoutingKeySegments<'a> {
    project: Option<&'a str>,
    module: Option<&'a str>,
    level: Option<Level>,
}

impl<'a> RoutingKeySegments<'a> {
    pub(super) fn new(ctx: &DecodeContext<'a>) -> RoutingKeySegments<'a> {
        let key = ctx.routing_key;
        if key.is_empty() || key == ctx.queue {
            return RoutingKeySegments::default();
        }
        let mut segments = key.split('.');
        let project = segments.next().filter(|s| !s.is_empty());
        let module = segments.next().filter(|s| !s.is_empty());
        let level = segments.next().and_then(Level::from_name);
        RoutingKeySegments {
            project,
            module,
            level,
        }
    }
}

impl Decoder<'_, '_> {
    /// Builds the record of the object in the scratch, with what it does not say itself.
    pub(super) fn build(
        &self,
        scratch: &mut Scratch<'_>,
        index: usize,
    ) -> Result<(Record, RecordFlags), String> {
        let Scratch {
            slots,
            attrs,
            out_of_order,
        } = scratch;
        let mut errors = Errors::default();
        let message = match &slots.message {
            None => {
                errors.push(format_args!(
                    "no message field (looked for {})",
                    self.ctx.options.looked_for(Field::Message)
                ));
                None
            }
            Some(slot) => errors
                .check(string_field(&slot.entry))
                .map(|text| match slot.rule {
                    Rule::TrimLineBreak => trim_line_break(text),
                    Rule::Template => Cow::Owned(render_template(&text, attrs)),
                    _ => text,
                }),
        };
        let mut flags = match (&slots.timestamp, self.ctx.amqp_timestamp_ns) {
            (None, None) => RecordFlags::RECEIVE_TIME,
            _ => RecordFlags::NONE,
        };
        let timestamp_ns = match &slots.timestamp {
            None => Some(self.ctx.amqp_timestamp_ns.unwrap_or(self.ctx.received_ns)),
            Some(slot) => errors.check(timestamp_field(&slot.entry)),
        };
        let level = match &slots.level {
            None => Some(self.key_segments.level.unwrap_or(Level::INFO)),
            Some(slot) => {
                let gelf = slots.message.as_ref().is_some_and(|m| m.rule == Rule::Gelf);
                let scale = match slot.rule {
                    Rule::Syslog => Scale::Syslog,
                    _ if gelf => Scale::Syslog,
                    _ => Scale::Pino,
                };
                errors.check(level_field(&slot.entry, scale))
            }
        };
        let project = match &slots.project {
            None => Some(Cow::Borrowed(
                self.key_segments
                    .project
                    .unwrap_or(self.ctx.default_project),
            )),
            Some(slot) => errors.check(string_field(&slot.entry)),
        };
        let module = match &slots.module {
            None => Some(Cow::Borrowed(
                self.key_segments.module.unwrap_or(self.ctx.default_module),
            )),
            Some(slot) => errors.check(string_field(&slot.entry)),
        };
        let id = match &slots.id {
            None => {
                let (id, derived) = self.new_id(index);
                if derived && !self.ctx.redelivered {
                    flags = flags.with(RecordFlags::UNSEEN);
                }
                Some(id)
            }
            Some(slot) => errors.check(id_field(&slot.entry)),
        };
        match (message, timestamp_ns, level, project, module, id) {
            (
                Some(message),
                Some(timestamp_ns),
                Some(level),
                Some(project),
                Some(module),
                Some(id),
            ) if errors.0.is_empty() => {
                let record = Record::new(id, timestamp_ns, level, project, module, message);
                let record = match attributes(attrs, *out_of_order) {
                    Some(json) => record.with_attributes(json),
                    None => record,
                };
                Ok((record, flags))
            }
            _ => Err(errors.0),
        }
    }
}

/// The errors of one element, joined by `; `.
#[derive(Default)]
struct Errors(String);

impl Errors {
    fn push(&mut self, error: impl fmt::Display) {
        use fmt::Write as _;
        if !self.0.is_empty() {
            self.0.push_str("; ");
        }
        let _ = write!(self.0, "{error}");
    }

    fn check<T>(&mut self, result: Result<T, FieldError<'_>>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }
}

/// Why a known field was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum FieldError<'k> {
    #[error("field `{key}` must be a string, got {got}")]
    NotString { key: &'k str, got: &'static str },
    #[error("field `{key}` must be a string or a number, got {got}")]
    TimestampType { key: &'k str, got: &'static str },
    #[error("field `{key}` is not a valid timestamp: {value}")]
    BadTimestamp { key: &'k str, value: Quoted<'k> },
    #[error("field `{key}` is out of range for a timestamp: {value}")]
    TimestampRange { key: &'k str, value: Quoted<'k> },
    #[error("field `{key}` must be a level name or a number, got {got}")]
    LevelType { key: &'k str, got: &'static str },
    #[error(
        "field `{key}` has an unknown level name: {value} (known: trace, debug, info, warning, error, critical, their usual spellings and slog offsets like ERROR+4; docs/SHAPES.md)"
    )]
    UnknownLevel { key: &'k str, value: Quoted<'k> },
    #[error("field `{key}` is not a syslog severity from 0 (emergency) to 7 (debug): {value}")]
    UnknownSeverity { key: &'k str, value: Quoted<'k> },
    #[error("field `{key}` must be a string or an integer, got {got}")]
    IdType { key: &'k str, got: &'static str },
    #[error("field `{key}` must not be empty")]
    EmptyId { key: &'k str },
    #[error("field `{key}` holds a string that cannot be read")]
    Unreadable { key: &'k str },
}

/// A value's JSON text in an error message, cut after 64 characters.
#[derive(Debug)]
pub(super) struct Quoted<'a>(pub(super) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX_CHARS: usize = 64;
        match self.0.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => write!(f, "{}...", self.0.get(..cut).unwrap_or_default()),
            None => f.write_str(self.0),
        }
    }
}

/// The JSON type of a value, from its text.
pub(super) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// The content of a JSON string value; `None` when the value is not a string.
pub(super) fn json_str(raw: &RawValue) -> Option<Result<Cow<'_, str>, ()>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    Some(if inner.as_bytes().contains(&b'\\') {
        serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|_| ())
    } else {
        Ok(Cow::Borrowed(inner))
    })
}

fn string_field<'k, 'de>(entry: &'k Entry<'de>) -> Result<Cow<'de, str>, FieldError<'k>> {
    match json_str(entry.value) {
        Some(Ok(s)) => Ok(s),
        Some(Err(())) => Err(FieldError::Unreadable { key: &entry.key }),
        None => Err(FieldError::NotString {
            key: &entry.key,
            got: kind(entry.value),
        }),
    }
}

/// The scale a numeric level is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// pino/bunyan: 10 trace, 20 debug, 30 info, 40 warning, 50 error, 60 critical.
    Pino,
    /// syslog (GELF, journald): 0-2 critical, 3 error, 4 warning, 5-6 info, 7 debug.
    Syslog,
}

fn level_field<'k>(entry: &'k Entry<'_>, scale: Scale) -> Result<Level, FieldError<'k>> {
    let key = &*entry.key;
    let text = entry.value.get();
    let numeric = |n: &str| match scale {
        Scale::Pino => numeric_level(n),
        Scale::Syslog => syslog_level(n),
    };
    let unknown = || match scale {
        Scale::Pino => FieldError::UnknownLevel {
            key,
            value: Quoted(text),
        },
        Scale::Syslog => FieldError::UnknownSeverity {
            key,
            value: Quoted(text),
        },
    };
    match json_str(entry.value) {
        Some(Ok(name)) => level_name(&name)
            .or_else(|| numeric(&name))
            .ok_or_else(unknown),
        Some(Err(())) => Err(FieldError::Unreadable { key }),
        None if kind(entry.value) == "number" => match scale {
            Scale::Pino => numeric_level(text).ok_or(FieldError::LevelType { key, got: "number" }),
            Scale::Syslog => syslog_level(text).ok_or_else(unknown),
        },
        None => Err(FieldError::LevelType {
            key,
            got: kind(entry.value),
        }),
    }
}

/// A level name: [`Level::from_name`]'s, the names of a few more loggers, and Go slog's offsets.
pub(super) fn level_name(name: &str) -> Option<Level> {
    if let Some(level) = Level::from_name(name) {
        return Some(level);
    }
    let name = name.trim();
    let mut buf = [0u8; 16];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        // zap: DPanic is an error that panics in development, above error.
        b"dpanic" => Level::CRITICAL,
        // java.util.logging.
        b"severe" => Level::ERROR,
        b"config" => Level::DEBUG,
        b"finer" => Level::TRACE,
        // Google Cloud Logging: "no assigned severity", shown as info there.
        b"default" => Level::INFO,
        _ => return slog_level(lower),
    })
}

/// Go slog's `NAME+N` / `NAME-N` (`ERROR+4`, `DEBUG-4`), on slog's scale (DEBUG -4, INFO 0,
/// WARN 4, ERROR 8): below -4 trace, below 0 debug, below 4 info, below 8 warning, below 12
/// error, else critical.
fn slog_level(lower: &[u8]) -> Option<Level> {
    let split = lower.iter().position(|b| matches!(b, b'+' | b'-'))?;
    let (name, offset) = lower.split_at(split);
    let base: i64 = match name {
        b"debug" => -4,
        b"info" => 0,
        b"warn" => 4,
        b"error" => 8,
        _ => return None,
    };
    let offset = std::str::from_utf8(offset).ok()?;
    let digits = offset.get(1..)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = offset.parse().ok()?;
    let value = base.checked_add(n)?;
    Some(match value {
        ..-4 => Level::TRACE,
        -4..0 => Level::DEBUG,
        0..4 => Level::INFO,
        4..8 => Level::WARNING,
        8..12 => Level::ERROR,
        _ => Level::CRITICAL,
    })
}

/// A syslog severity, an integer from 0 to 7 (as a number or a string of digits).
fn syslog_level(text: &str) -> Option<Level> {
    Some(match text.trim() {
        "0" | "1" | "2" => Level::CRITICAL,
        "3" => Level::ERROR,
        "4" => Level::WARNING,
        "5" | "6" => Level::INFO,
        "7" => Level::DEBUG,
        _ => return None,
    })
}

/// Docker's `log` without the line break the container wrote.
fn trim_line_break(text: Cow<'_, str>) -> Cow<'_, str> {
    let Some(trimmed) = text.strip_suffix('\n') else {
        return text;
    };
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(..trimmed.len()).unwrap_or(s)),
        Cow::Owned(ref s) => Cow::Owned(s.get(..trimmed.len()).unwrap_or(s).to_owned()),
    }
}

/// A Serilog message template rendered with the object's properties: `{Name}`, `{@Name}`,
/// `{$Name}`, `{Name:format}` and `{Name,width}` become the property's value (a string without
/// its quotes, anything else as its JSON text; formats and widths are not applied), `{{` and
/// `}}` are braces, and a hole without a property stays as written.
fn render_template(template: &str, attrs: &[Entry<'_>]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let (text, tail) = rest.split_at(i);
        out.push_str(text);
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{')
            && let Some(end) = after.find('}')
        {
            let hole = after.get(..end).unwrap_or_default();
            let name = hole.trim_start_matches(['@', '$']);
            let name = name.split([':', ',']).next().unwrap_or_default();
            let value = attrs.iter().rev().find(|e| e.key == name).map(|e| e.value);
            match value.map(|v| (v, json_str(v))) {
                Some((_, Some(Ok(s)))) => out.push_str(&s),
                Some((v, _)) => out.push_str(v.get()),
                None => {
                    out.push('{');
                    out.push_str(hole);
                    out.push('}');
                }
            }
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            // A lone brace.
            out.push_str(tail.get(..1).unwrap_or_default());
            rest = tail.get(1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    out
}

/// A level on the pino/bunyan scale, from a number's text.
fn numeric_level(text: &str) -> Option<Level> {
    let looks_numeric = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !looks_numeric {
        return None;
    }
    let n: f64 = text.parse().ok()?;
    Some(if n < 20.0 {
        Level::TRACE
    } else if n < 30.0 {
        Level::DEBUG
    } else if n < 40.0 {
        Level::INFO
    } else if n < 50.0 {
        Level::WARNING
    } else if n < 60.0 {
        Level::ERROR
    } else {
        Level::CRITICAL
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::decode::tests::*;

    #[test]
    fn canonical_fields() {
        let r = one(
            r#"{"id":"a1","timestamp":"2024-05-01T12:00:00Z","level":"error","project":"shop","module":"pay","message":"card declined"}"#,
        );
        assert_eq!(r.id.as_str(), "a1");
        assert_eq!(r.timestamp_ns, 1_714_564_800_000_000_000);
        assert_eq!(r.level, Level::ERROR);
        assert_eq!(r.project.as_str(), "shop");
        assert_eq!(r.module.as_str(), "pay");
        assert_eq!(r.message.as_str(), "card declined");
        assert_eq!(attrs(&r), "{}");
    }

    #[test]
    fn field_aliases() {
        let cases = [
            (r#"{"msg":"x","ts":1}"#, Field::Timestamp),
            (r#"{"msg":"x","time":1}"#, Field::Timestamp),
            (r#"{"msg":"x","@timestamp":1}"#, Field::Timestamp),
            (r#"{"msg":"x","datetime":1}"#, Field::Timestamp),
            (r#"{"msg":"x","created":1}"#, Field::Timestamp),
        ];
        for (body, _) in cases {
            assert_eq!(one(body).timestamp_ns, 1_000_000_000, "{body}");
            assert_eq!(attrs(&one(body)), "{}");
        }
        for key in [
            "level",
            "levelname",
            "severity",
            "lvl",
            "log_level",
            "loglevel",
        ] {
            let r = one(&format!(r#"{{"message":"x","{key}":"WARN"}}"#));
            assert_eq!(r.level, Level::WARNING, "{key}");
            assert_eq!(attrs(&r), "{}");
        }
        for key in ["project", "service", "app", "application"] {
            let r = one(&format!(r#"{{"message":"x","{key}":"p"}}"#));
            assert_eq!(r.project.as_str(), "p", "{key}");
            assert_eq!(attrs(&r), "{}");
        }
        for key in ["module", "logger", "name", "logger_name", "component"] {
            let r = one(&format!(r#"{{"message":"x","{key}":"m"}}"#));
            assert_eq!(r.module.as_str(), "m", "{key}");
            assert_eq!(attrs(&r), "{}");
        }
        for key in ["message", "msg", "text"] {
            let r = one(&format!(r#"{{"{key}":"hello"}}"#));
            assert_eq!(r.message.as_str(), "hello", "{key}");
            assert_eq!(attrs(&r), "{}");
        }
        // Keys are case-sensitive.
        let r = one(r#"{"message":"x","Level":"error"}"#);
        assert_eq!(r.level, Level::INFO);
        assert_eq!(attrs(&r), r#"{"Level":"error"}"#);
    }

    #[test]
    fn canonical_name_wins_and_the_alias_stays() {
        let r = one(
            r#"{"msg":"short","a":1,"message":"long","time":5,"ts":6,"name":"n","module":"m","levelname":"ERROR","level":"debug"}"#,
        );
        assert_eq!(r.message.as_str(), "long");
        assert_eq!(r.timestamp_ns, 6_000_000_000);
        assert_eq!(r.module.as_str(), "m");
        assert_eq!(r.level, Level::DEBUG);
        assert_eq!(
            attrs(&r),
            r#"{"msg":"short","a":1,"time":5,"name":"n","levelname":"ERROR"}"#
        );
        // The winner does not depend on the order of the fields.
        let r = one(r#"{"text":"t","msg":"m"}"#);
        assert_eq!(r.message.as_str(), "m");
        assert_eq!(attrs(&r), r#"{"text":"t"}"#);
        // A losing alias is not checked: its value is only an attribute.
        let r = one(r#"{"message":"m","msg":{"k":[1]},"level":"info","severity":true}"#);
        assert_eq!(attrs(&r), r#"{"msg":{"k":[1]},"severity":true}"#);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let r = one(r#"{"message":"first","a":1,"b":2,"message":"second","a":3}"#);
        assert_eq!(r.message.as_str(), "second");
        assert_eq!(attrs(&r), r#"{"b":2,"a":3}"#);
        // A displaced alias and a later duplicate of it.
        let r =
            one(r#"{"ts":1,"x":0,"timestamp":5,"ts":2}"#.replace('}', r#","msg":"m"}"#).as_str());
        assert_eq!(r.timestamp_ns, 5_000_000_000);
        assert_eq!(attrs(&r), r#"{"x":0,"ts":2}"#);
        // Many keys (the hashed path).
        let mut body = String::from(r#"{"message":"m""#);
        for i in 0..40 {
            body.push_str(&format!(r#","k{}":{i}"#, i % 20));
        }
        body.push('}');
        let r = one(&body);
        let expected: Vec<String> = (20..40).map(|i| format!(r#""k{}":{i}"#, i % 20)).collect();
        assert_eq!(attrs(&r), format!("{{{}}}", expected.join(",")));
    }

    #[test]
    fn escaped_known_keys_are_recognised() {
        let r = one(r#"{"mess\u0061ge":"x","\u006cevel":"error"}"#);
        assert_eq!(r.message.as_str(), "x");
        assert_eq!(r.level, Level::ERROR);
    }

    #[test]
    fn message_rules() {
        assert_eq!(whole_bad(r#"{"a":1}"#), NO_MESSAGE);
        assert_eq!(whole_bad("{}"), NO_MESSAGE);
        assert_eq!(
            whole_bad(r#"{"message":{"a":1}}"#),
            "field `message` must be a string, got object"
        );
        assert_eq!(
            whole_bad(r#"{"message":5}"#),
            "field `message` must be a string, got number"
        );
        assert_eq!(
            whole_bad(r#"{"msg":null}"#),
            "field `msg` must be a string, got null"
        );
        assert_eq!(
            whole_bad(r#"{"text":[]}"#),
            "field `text` must be a string, got array"
        );
        let r = one(r#"{"message":"line\nnext \"q\" \u00e9 \ud83d\ude00"}"#);
        assert_eq!(r.message.as_str(), "line\nnext \"q\" é 😀");
        assert_eq!(one(r#"{"message":""}"#).message.as_str(), "");
    }

    #[test]
    fn several_errors_are_joined() {
        assert_eq!(
            whole_bad(r#"{"level":true,"ts":"soon","project":1,"module":null,"id":1.5}"#),
            "no message field (looked for message, msg, text, @m, event, fields.message, short_message, MESSAGE, log, @mt); \
             field `ts` is not a valid timestamp: \"soon\"; \
             field `level` must be a level name or a number, got boolean; \
             field `project` must be a string, got number; \
             field `module` must be a string, got null; \
             field `id` must be a string or an integer, got a number that is not an integer"
        );
    }

    #[test]
    fn level_names() {
        let cases = [
            ("\"trace\"", Level::TRACE),
            ("\"DEBUG\"", Level::DEBUG),
            ("\"Info\"", Level::INFO),
            ("\"warn\"", Level::WARNING),
            ("\"WARNING\"", Level::WARNING),
            ("\"err\"", Level::ERROR),
            ("\"fatal\"", Level::CRITICAL),
            ("\"CRIT\"", Level::CRITICAL),
            ("\"40\"", Level::WARNING),
            ("\"35.5\"", Level::INFO),
        ];
        for (value, expected) in cases {
            assert_eq!(level(value), Ok(expected), "{value}");
        }
        for value in ["\"loud\"", "\"\"", "\"infinity\"", "\"NaN\""] {
            assert_eq!(
                level(value),
                Err(format!(
                    "field `level` has an unknown level name: {value} (known: trace, debug, info, warning, error, critical, their usual spellings and slog offsets like ERROR+4; docs/SHAPES.md)"
                ))
            );
        }
    }

    #[test]
    fn level_numbers_pino_scale() {
        let cases = [
            ("-5", Level::TRACE),
            ("0", Level::TRACE),
            ("9", Level::TRACE),
            ("10", Level::TRACE),
            ("19.99", Level::TRACE),
            ("20", Level::DEBUG),
            ("30", Level::INFO),
            ("35", Level::INFO),
            ("40", Level::WARNING),
            ("50", Level::ERROR),
            ("59", Level::ERROR),
            ("60", Level::CRITICAL),
            ("70", Level::CRITICAL),
            ("1e400", Level::CRITICAL),
            ("-1e400", Level::TRACE),
        ];
        for (value, expected) in cases {
            assert_eq!(level(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn level_wrong_types() {
        for (value, got) in [
            ("true", "boolean"),
            ("{\"a\":1}", "object"),
            ("[]", "array"),
            ("null", "null"),
        ] {
            assert_eq!(
                level(value),
                Err(format!(
                    "field `level` must be a level name or a number, got {got}"
                ))
            );
        }
    }

    #[test]
    fn missing_level_comes_from_the_routing_key() {
        let body = r#"{"message":"m"}"#;
        let mut c = ctx();
        assert_eq!(one_with(body, &c).level, Level::INFO);
        c.routing_key = "shop.payments.error";
        assert_eq!(one_with(body, &c).level, Level::ERROR);
        c.routing_key = "shop.payments.WARN";
        assert_eq!(one_with(body, &c).level, Level::WARNING);
        c.routing_key = "shop.payments.api";
        assert_eq!(one_with(body, &c).level, Level::INFO);
        c.routing_key = "shop.payments";
        assert_eq!(one_with(body, &c).level, Level::INFO);
        c.routing_key = "shop.payments.error";
        assert_eq!(
            one_with(r#"{"message":"m","level":"debug"}"#, &c).level,
            Level::DEBUG
        );
    }

    #[test]
    fn project_and_module_sources() {
        let body = r#"{"message":"m"}"#;
        let mut c = ctx();
        let pm = |c: &DecodeContext<'_>, body: &str| {
            let r = one_with(body, c);
            (r.project.to_string(), r.module.to_string())
        };
        // Routing key equal to the queue: defaults.
        assert_eq!(
            pm(&c, body),
            ("default-project".into(), "default-module".into())
        );
        c.routing_key = "";
        assert_eq!(
            pm(&c, body),
            ("default-project".into(), "default-module".into())
        );
        c.routing_key = "shop.payments.error";
        assert_eq!(pm(&c, body), ("shop".into(), "payments".into()));
        c.routing_key = "shop.payments.error.extra";
        assert_eq!(pm(&c, body), ("shop".into(), "payments".into()));
        c.routing_key = "shop";
        assert_eq!(pm(&c, body), ("shop".into(), "default-module".into()));
        c.routing_key = ".payments";
        assert_eq!(pm(&c, body), ("default-project".into(), "payments".into()));
        c.routing_key = "shop.payments";
        assert_eq!(
            pm(&c, r#"{"message":"m","service":"api"}"#),
            ("api".into(), "payments".into())
        );
        assert_eq!(
            pm(&c, r#"{"message":"m","project":"p","logger":"l"}"#),
            ("p".into(), "l".into())
        );
        assert_eq!(
            pm(&c, r#"{"message":"m","project":""}"#),
            (String::new(), "payments".into())
        );
    }

    #[test]
    fn project_and_module_wrong_types() {
        assert_eq!(
            whole_bad(r#"{"message":"m","service":5}"#),
            "field `service` must be a string, got number"
        );
        assert_eq!(
            whole_bad(r#"{"message":"m","logger":{"name":"x"}}"#),
            "field `logger` must be a string, got object"
        );
    }

    #[test]
    fn more_level_names_and_slog_offsets() {
        let cases = [
            ("\"dpanic\"", Level::CRITICAL),
            ("\"SEVERE\"", Level::ERROR),
            ("\"config\"", Level::DEBUG),
            ("\"finer\"", Level::TRACE),
            ("\"DEFAULT\"", Level::INFO),
            ("\"ERROR+4\"", Level::CRITICAL),
            ("\"ERROR+3\"", Level::ERROR),
            ("\"WARN+4\"", Level::ERROR),
            ("\"INFO+2\"", Level::INFO),
            ("\"INFO-1\"", Level::DEBUG),
            ("\"DEBUG-4\"", Level::TRACE),
            ("\"debug-1\"", Level::TRACE),
        ];
        for (value, expected) in cases {
            assert_eq!(level(value), Ok(expected), "{value}");
        }
        for value in [
            "\"ERROR+\"",
            "\"ERROR+x\"",
            "\"LOUD+1\"",
            "\"ERROR++1\"",
            "\"ERROR+99999999999999999999\"",
        ] {
            assert!(
                level(value).unwrap_err().contains("unknown level name"),
                "{value}"
            );
        }
    }

    #[test]
    fn syslog_severities() {
        let prio = |v: &str| {
            let d = decode_str(&format!(r#"{{"MESSAGE":"m","PRIORITY":{v}}}"#));
            d.records
                .first()
                .map(|r| r.level)
                .ok_or_else(|| d.bad[0].reason.clone())
        };
        assert_eq!(prio("\"0\""), Ok(Level::CRITICAL));
        assert_eq!(prio("\"3\""), Ok(Level::ERROR));
        assert_eq!(prio("4"), Ok(Level::WARNING));
        assert_eq!(prio("\"5\""), Ok(Level::INFO));
        assert_eq!(prio("\"7\""), Ok(Level::DEBUG));
        assert_eq!(prio("\"err\""), Ok(Level::ERROR));
        assert_eq!(
            prio("\"8\""),
            Err(
                "field `PRIORITY` is not a syslog severity from 0 (emergency) to 7 (debug): \"8\""
                    .into()
            )
        );
        assert_eq!(
            prio("30"),
            Err(
                "field `PRIORITY` is not a syslog severity from 0 (emergency) to 7 (debug): 30"
                    .into()
            )
        );
        // GELF: a numeric `level` beside `short_message` is syslog; elsewhere it is pino's.
        let r = one(r#"{"short_message":"m","level":3}"#);
        assert_eq!(r.level, Level::ERROR);
        assert_eq!(
            whole_bad(r#"{"short_message":"m","level":30}"#),
            "field `level` is not a syslog severity from 0 (emergency) to 7 (debug): 30"
        );
        assert_eq!(
            one(r#"{"message":"m","short_message":"s","level":3}"#).level,
            Level::TRACE
        );
    }

    #[test]
    fn dotted_names_and_members() {
        // Either form; the object stays an attribute whole.
        let r =
            one(r#"{"message":"m","log":{"level":"error","logger":"l"},"service":{"name":"s"}}"#);
        assert_eq!(
            (r.level, r.module.as_str(), r.project.as_str()),
            (Level::ERROR, "l", "s")
        );
        assert_eq!(
            attrs(&r),
            r#"{"log":{"level":"error","logger":"l"},"service":{"name":"s"}}"#
        );
        let r = one(r#"{"message":"m","log.level":"warn","service.name":"s"}"#);
        assert_eq!((r.level, r.project.as_str()), (Level::WARNING, "s"));
        assert_eq!(attrs(&r), "{}");
        // A better name wins over a member; the member is not added again.
        let r = one(r#"{"log":{"level":"error"},"level":"debug","message":"m"}"#);
        assert_eq!(r.level, Level::DEBUG);
        assert_eq!(attrs(&r), r#"{"log":{"level":"error"}}"#);
        // Both forms of one name: the first stays, a later dotted key is kept as an attribute.
        let r = one(r#"{"message":"m","log":{"level":"error"},"log.level":"info"}"#);
        assert_eq!(r.level, Level::ERROR);
        assert_eq!(attrs(&r), r#"{"log":{"level":"error"},"log.level":"info"}"#);
        // A member's errors name it by its dotted name.
        assert_eq!(
            whole_bad(r#"{"fields":{"message":5}}"#),
            "field `fields.message` must be a string, got number"
        );
        // `log` as a string is Docker's line; `service` as a string is the project.
        let r = one(r#"{"log":"line\n","service":"svc"}"#);
        assert_eq!((r.message.as_str(), r.project.as_str()), ("line", "svc"));
        // Members of arrays are not searched.
        assert_eq!(whole_bad(r#"{"fields":[{"message":"m"}]}"#), NO_MESSAGE);
    }

    #[test]
    fn message_templates() {
        let r = one(
            r#"{"@mt":"{A} {@B} {$C} {D:0.0} {E,5} {Missing} {{x}} } {","A":"a","B":{"k":1},"C":[1],"D":1.5,"E":null}"#,
        );
        assert_eq!(
            r.message.as_str(),
            r#"a {"k":1} [1] 1.5 null {Missing} {x} } {"#
        );
        assert!(attrs(&r).starts_with(r#"{"@mt":"#));
        // A rendered message wins; the template stays once.
        let r = one(r#"{"@mt":"Hi {N}","@m":"Hi 5","N":5}"#);
        assert_eq!(r.message.as_str(), "Hi 5");
        assert_eq!(attrs(&r), r#"{"@mt":"Hi {N}","N":5}"#);
    }

    #[test]
    fn user_aliases_in_decoding() {
        let user =
            crate::decode::parse_user_aliases("message=body;level=sev;module=origin.unit").unwrap();
        let options = crate::decode::DecodeOptions::new(&user, crate::decode::TextIntake::Off);
        let mut c = ctx();
        c.options = &options;
        let r = one_with(
            r#"{"body":"b","msg":"m","sev":"error","origin":{"unit":"u"}}"#,
            &c,
        );
        assert_eq!(
            (r.message.as_str(), r.level, r.module.as_str()),
            ("b", Level::ERROR, "u")
        );
        assert_eq!(attrs(&r), r#"{"msg":"m","origin":{"unit":"u"}}"#);
        let d = crate::decode::decode(br#"{"x":1}"#, &c);
        assert!(
            d.bad[0]
                .reason
                .starts_with("no message field (looked for body, message, msg")
        );
    }
}
