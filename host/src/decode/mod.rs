//! Decoding of RabbitMQ message bodies into [`Record`]s.
//!
//! [`decode`] turns one message body into records and a list of the parts that could not be
//! decoded ([`BadElement`]), each with a reason. One bad element never takes the good ones of its
//! message down with it, and no input makes it panic.
//!
//! # Body
//!
//! - The body must be at most `LOGRELAY_MAX_MESSAGE_BYTES` long; a longer one is bad as a whole:
//!   `message is 2000000 bytes, over the limit of 1048576 (LOGRELAY_MAX_MESSAGE_BYTES)`.
//! - It must be UTF-8; otherwise it is bad as a whole, naming the offset of the first invalid byte:
//!   `message is not valid UTF-8 at byte 17`. A byte order mark is not skipped.
//! - A body that is empty or only whitespace, or an empty array, is bad: `empty message`.
//! - A body whose first non-whitespace character is `[` is one JSON array of objects. A syntax error
//!   anywhere in it (or anything after its closing `]`) makes the whole body bad, with serde_json's
//!   position: `message is not valid JSON: expected value at line 1 column 12`. An element that is
//!   not an object is bad on its own (`element is not a JSON object, got string`); the other elements
//!   flow on.
//! - A body that does not parse as one JSON value and does not start with `{` (or `[`, see
//!   below) is read line by line (a single line is the whole body, bad as a whole): a line that
//!   is JSON is decoded as in JSON lines; otherwise a line of only `key=value` pairs is logfmt
//!   (the pairs are an object's fields, every value a string); otherwise, with
//!   `LOGRELAY_TEXT_INTAKE=lines`, the line is a record whose message is the line and whose level
//!   is a leading level word (`ERROR`, `[warn]`, `INFO:`), and JSON that is not an object is such
//!   a line too; otherwise it is bad with the JSON error and how to take text:
//!   `line is not valid JSON: expected value at line 2 column 1 (nor logfmt; set
//!   LOGRELAY_TEXT_INTAKE=lines to store plain text lines)`. With text intake, a body starting with
//!   `[` that is not valid JSON is such lines too (`[ERROR] disk full`).
//! - Otherwise the body is one JSON object, or JSON lines:
//!   - When the whole body parses as one JSON value (on one line, or pretty-printed over several), it
//!     is that value, and it must be an object: `message is not a JSON object or array, got number`.
//!   - Otherwise, when the body has at least two non-blank lines and its first non-blank line is a
//!     complete JSON value by itself, it is JSON lines.
//!   - Otherwise, when its second non-blank line is a complete JSON object by itself, it is JSON
//!     lines whose first line is bad.
//!   - Otherwise the whole body is bad with the error of parsing it as one value, e.g.
//!     `message is not valid JSON: trailing characters at line 1 column 18`.
//!   - In JSON lines each non-blank line is decoded on its own (a value may not span lines there):
//!     a line that is not JSON (`line is not valid JSON: expected value at line 3 column 1`, the
//!     line number counting every line of the body from 1) or not an object
//!     (`line is not a JSON object, got array`) is bad on its own, and the other lines flow on.
//! - Elements are numbered from 0: the elements of an array, or the non-blank lines of JSON lines
//!   (blank lines are not counted). A single object is element 0. [`Decoded::indices`] gives the
//!   element of every record, [`BadElement::index`] the element that was bad (`None` when the whole
//!   body is), and [`BadElement::span`] its bytes in the body (the array element as sent, the line
//!   without surrounding whitespace, or the whole body).
//! - Nesting: field values are only scanned (without recursion) to find where they end, so they may
//!   nest to any depth. Whatever serde_json reports (a syntax error, its recursion limit) makes the
//!   input bad as described above; nothing crashes.
//!
//! # Fields
//!
//! Field names are case-sensitive. Each known field has aliases, listed here by priority (the
//! table is `shapes.rs`; `docs/SHAPES.md` shows which logger writes which):
//!
//! | field | names |
//! | --- | --- |
//! | timestamp | `timestamp`, `ts`, `time`, `@timestamp`, `datetime`, `created`, `asctime`, `@t`, `_SOURCE_REALTIME_TIMESTAMP`, `__REALTIME_TIMESTAMP` |
//! | level | `level`, `levelname`, `severity`, `lvl`, `log_level`, `loglevel`, `log.level`, `@l`, `PRIORITY` |
//! | project | `project`, `service`, `app`, `application`, `service.name` |
//! | module | `module`, `logger`, `name`, `logger_name`, `component`, `log.logger`, `SourceContext`, `SYSLOG_IDENTIFIER`, `target` |
//! | message | `message`, `msg`, `text`, `@m`, `event`, `fields.message`, `short_message`, `MESSAGE`, `log`, `@mt` |
//! | id | `id` |
//!
//! `LOGRELAY_FIELD_ALIASES` puts the user's names ahead of these ([`DecodeOptions::new`]).
//! A dotted name is either a key with the dots or a member of an object: `log.level` is
//! `{"log.level":..}` or `{"log":{"level":..}}`; the object stays an attribute whole, and a
//! member displaced by a better name is not added to the attributes again. Members are searched
//! one object deep per dot (never inside arrays); `log` and `service`, also names of fields, are
//! containers only when their value is an object. When both forms of one name occur, the first
//! is used and a later dotted key stays an attribute.
//!
//! Some names read their value in a shape's way:
//! - `PRIORITY` (journald) is a syslog severity, as is a numeric `level` in an object whose message
//!   is `short_message` (GELF): 0-2 critical, 3 error, 4 warning, 5-6 info, 7 debug; another
//!   value is bad: ``field `PRIORITY` is not a syslog severity from 0 (emergency) to 7 (debug): "9"``.
//! - `log` (Docker's json-file) loses one trailing `\n` or `\r\n`.
//! - `@mt` (Serilog) is a message template: `{Name}`, `{@Name}`, `{$Name}`, `{Name:fmt}` and
//!   `{Name,width}` become the property's value (a string without quotes, anything else as its
//!   JSON text), `{{`/`}}` are braces, holes without a property stay as written; the template
//!   also stays in the attributes.
//!
//! When an object has several names of one field, the one listed first is used and the others stay
//! in the attributes as they were sent, unchecked. When a key occurs more than once in an object,
//! its last occurrence wins and the earlier ones are dropped, for known fields and attributes alike.
//!
//! An element with any of the errors below is bad as a whole; all its errors are given, joined by
//! `; `. `null` counts as a wrong type everywhere.
//!
//! - **message**: required, a string (it may be empty). Missing:
//!   `no message field (looked for message, msg, text, ...)` naming every name of the field;
//!   not a string:
//!   ``field `message` must be a string, got object`` (with the name actually used, e.g. `msg`).
//! - **timestamp**: a string or a number.
//!   - A string that starts with four digits and a `-` is a date and time: `YYYY-MM-DD`, then `T`,
//!     `t` or a space, then `HH:MM:SS`, then optionally a fraction of a second after `.` or `,` (one
//!     digit or more; digits past the 9th are ignored), then optionally `Z`, `z`, `+HH:MM`,
//!     `-HH:MM`, `+HHMM` or `-HHMM` (up to 23:59), and nothing else. This covers RFC 3339 and
//!     Python's `asctime` (`2024-05-01 12:00:00,123`); a time without an offset is taken as UTC.
//!     Second 60 (a leap second) is accepted and counts as the first second of the next minute.
//!   - A number, or any other string holding one (fractions and exponents allowed, read exactly to
//!     the nanosecond; a fraction of a nanosecond is dropped), is a time since the Unix epoch whose
//!     unit follows from its absolute value: below 1e11 seconds (so Python's `created`), below
//!     1e14 milliseconds, below 1e17 microseconds, otherwise nanoseconds.
//!   - A time that nanoseconds in an `i64` cannot hold (before 1677-09-21 or after 2262-04-11, so
//!     also any number of seconds from 9223372037 up) is bad:
//!     ``field `ts` is out of range for a timestamp: 1e300``; a string that is neither is bad:
//!     ``field `time` is not a valid timestamp: "yesterday"``; another type too:
//!     ``field `timestamp` must be a string or a number, got boolean``.
//!   - Missing: the AMQP `timestamp` property, else the time the message was received.
//! - **level**: a string or a number.
//!   - A string is a level name in any case, surrounding whitespace ignored, with the aliases of
//!     [`Level::from_name`](logrelay_plugin_api::Level::from_name) (`warn`, `err`, `fatal`, `crit`...) and `dpanic` (critical),
//!     `severe` (error), `config` (debug), `finer` (trace), `default` (info), or Go slog's
//!     `NAME+N`/`NAME-N` on slog's scale (DEBUG -4, INFO 0, WARN 4, ERROR 8; below -4 trace,
//!     below 0 debug, below 4 info, below 8 warning, below 12 error, else critical), or else a
//!     number written as a string (only digits, `-`, `+`, `.`, `e`, `E`).
//!   - A number is on the pino/bunyan scale: 10 trace, 20 debug, 30 info, 40 warning, 50 error,
//!     60 critical; values in between round down (35 is info), below 10 is trace and above 60 is
//!     critical. Python's `levelno` (10 debug ... 50 critical) is another scale: it is not read and
//!     stays in the attributes.
//!   - An unknown name is bad, never info: ``field `level` has an unknown level name: "loud"
//!     (known: ...; docs/SHAPES.md)``; another type too
//!     (``field `level` must be a level name or a number, got boolean``).
//!   - Missing: the third segment of the routing key when it is a level name (not a number), else
//!     info.
//! - **project**, **module**: strings, kept even when empty
//!   (``field `service` must be a string, got number``). Missing: the first (project) and second
//!   (module) dot-separated segments of the routing key `<project>.<module>[.<level>]`, where an
//!   empty segment counts as missing and segments after the third are ignored, unless the routing
//!   key is empty or equal to the queue's name; then the configured defaults.
//! - **id**: a non-empty string, or an integer (an optional `-` and digits, kept as written, of any
//!   size); anything else is bad (``field `id` must be a string or an integer, got object``,
//!   ``field `id` must not be empty``). Missing: `<message id>:<element>` when the AMQP
//!   `message_id` property is set and not empty, else a UUID (version 8) derived from the
//!   message's fingerprint and the element (see [`crate::fingerprint`]): a redelivered message
//!   gets the same ids either way.
//! - **attributes**: every other field, as the text of one JSON object in the order the fields were
//!   sent (`{}` when there are none). Each value is kept byte for byte as sent, whitespace and
//!   escapes included; keys are written with minimal JSON escaping (a key sent as `"caf\u00e9"`
//!   comes out as `"café"`), and no whitespace is added between entries.
//!
//! # Code
//!
//! - `framing.rs`: the body's shape (one object, an array, JSON lines), element numbers and spans.
//! - `scan.rs`: the serde visitors that read an object's fields in one pass without recursion.
//! - `shapes.rs`: which key names which field (the alias table), the options from the settings.
//! - `fields.rs`: the rules of each field, the level scales, message templates.
//! - `text.rs`: logfmt and plain-text lines.
//! - `time.rs`: the timestamp field (epoch numbers and date-times).
//! - `id.rs`: the id field, and the id of a record that has none.
//! - `attributes.rs`: the attributes' JSON text.

mod attributes;
mod fields;
mod framing;
mod id;
mod scan;
mod shapes;
#[cfg(test)]
mod tests;
mod text;
mod time;

use std::ops::Range;

use logrelay_plugin_api::{Record, RecordFlags};

use self::fields::RoutingKeySegments;
use self::scan::Scratch;
pub use self::shapes::{DecodeOptions, Field, TextIntake, UserAlias, parse_user_aliases};
use crate::fingerprint::Fingerprint;

/// Where a message came from, and the limits it is decoded under.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// The AMQP routing key, e.g. `shop.payments` or `shop.payments.error`.
    pub routing_key: &'a str,
    /// The name of the queue consumed; a routing key equal to it carries no project or module.
    pub queue: &'a str,
    /// The AMQP `timestamp` property, converted to nanoseconds since the Unix epoch.
    pub amqp_timestamp_ns: Option<i64>,
    /// The AMQP `message_id` property.
    pub message_id: Option<&'a str>,
    /// What identifies the message across redeliveries: ids of records that carry none are
    /// derived from it (see [`crate::fingerprint`]).
    pub fingerprint: Fingerprint,
    /// Whether the message may have been handed on before (RabbitMQ's `redelivered` flag). Records
    /// of a message seen for the first time whose ids the host derived are flagged
    /// [`RecordFlags::UNSEEN`].
    pub redelivered: bool,
    /// When the message was received, in nanoseconds since the Unix epoch.
    pub received_ns: i64,
    /// The project of records that name none, when the routing key does not either.
    pub default_project: &'a str,
    /// The module of records that name none, when the routing key does not either.
    pub default_module: &'a str,
    /// The largest body accepted, in bytes (`LOGRELAY_MAX_MESSAGE_BYTES`).
    pub max_bytes: usize,
    /// The names of the known fields and the text intake mode (`LOGRELAY_FIELD_ALIASES`,
    /// `LOGRELAY_TEXT_INTAKE`); [`DecodeOptions::builtin`] without settings.
    pub options: &'a DecodeOptions,
}

/// A part of a message that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadElement {
    /// The element that was bad (0-based: an array element, or a non-blank line of JSON lines);
    /// `None` when the whole message is bad.
    pub index: Option<usize>,
    /// The element's bytes in the body: the array element as sent, the line without surrounding
    /// whitespace, or the whole body when `index` is `None`.
    pub span: Range<usize>,
    /// What is wrong: lowercase, without a trailing period.
    pub reason: String,
}

/// What one message decoded into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// The records, in the order of their elements.
    pub records: Vec<Record>,
    /// The element each record came from: `indices[i]` is the element of `records[i]`.
    pub indices: Vec<usize>,
    /// What the record does not say itself: `flags[i]` is for `records[i]`
    /// ([`RecordFlags::RECEIVE_TIME`] when it got the receive time).
    pub flags: Vec<RecordFlags>,
    /// The elements that could not be decoded, in order.
    pub bad: Vec<BadElement>,
}

/// Decodes one message body into records; never panics, whatever the input.
///
/// The rules are those of the [module documentation](self).
pub fn decode(body: &[u8], ctx: &DecodeContext<'_>) -> Decoded {
    let mut out = Decoded::default();
    if body.len() > ctx.max_bytes {
        out.bad_whole(
            body.len(),
            format!(
                "message is {} bytes, over the limit of {} (LOGRELAY_MAX_MESSAGE_BYTES)",
                body.len(),
                ctx.max_bytes
            ),
        );
        return out;
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            out.bad_whole(
                body.len(),
                format!("message is not valid UTF-8 at byte {}", e.valid_up_to()),
            );
            return out;
        }
    };
    let decoder = Decoder {
        ctx,
        key_segments: RoutingKeySegments::new(ctx),
    };
    let mut scratch = Scratch::new();
    decoder.decode_text(text, &mut scratch, &mut out);
    out
}

impl Decoded {
    fn bad_whole(&mut self, len: usize, reason: String) {
        self.records.clear();
        self.indices.clear();
        self.flags.clear();
        self.bad.clear();
        self.bad.push(BadElement {
            index: None,
            span: 0..len,
            reason,
        });
    }

    fn push(&mut self, outcome: Outcome, index: usize, span: Range<usize>, what: &str) {
        match outcome {
            Outcome::Record(record, flags) => {
                self.records.push(record);
                self.indices.push(index);
                self.flags.push(flags);
            }
            Outcome::Bad(reason) => self.bad.push(BadElement {
                index: Some(index),
                span,
                reason,
            }),
            Outcome::NotObject(kind) => self.bad.push(BadElement {
                index: Some(index),
                span,
                reason: format!("{what} is not a JSON object, got {kind}"),
            }),
        }
    }
}

/// What one element decoded into.
enum Outcome {
    Record(Record, RecordFlags),
    Bad(String),
    NotObject(&'static str),
}

/// Decodes one message: its context, and what its routing key says.
struct Decoder<'c, 'a> {
    ctx: &'c DecodeContext<'a>,
    key_segments: RoutingKeySegments<'a>,
}
