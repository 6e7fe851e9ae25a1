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
//! Field names are case-sensitive. Each known field has aliases, listed here by priority:
//!
//! | field | names |
//! | --- | --- |
//! | timestamp | `timestamp`, `ts`, `time`, `@timestamp`, `datetime`, `created` |
//! | level | `level`, `levelname`, `severity`, `lvl`, `log_level`, `loglevel` |
//! | project | `project`, `service`, `app`, `application` |
//! | module | `module`, `logger`, `name`, `logger_name`, `component` |
//! | message | `message`, `msg`, `text` |
//! | id | `id` |
//!
//! When an object has several names of one field, the one listed first is used and the others stay
//! in the attributes as they were sent, unchecked. When a key occurs more than once in an object,
//! its last occurrence wins and the earlier ones are dropped, for known fields and attributes alike.
//!
//! An element with any of the errors below is bad as a whole; all its errors are given, joined by
//! `; `. `null` counts as a wrong type everywhere.
//!
//! - **message**: required, a string (it may be empty). Missing:
//!   `no message field (looked for message, msg, text)`; not a string:
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
//!     [`Level::from_name`] (`warn`, `err`, `fatal`, `crit`...), or else a number written as a
//!     string (only digits, `-`, `+`, `.`, `e`, `E`).
//!   - A number is on the pino/bunyan scale: 10 trace, 20 debug, 30 info, 40 warning, 50 error,
//!     60 critical; values in between round down (35 is info), below 10 is trace and above 60 is
//!     critical. Python's `levelno` (10 debug ... 50 critical) is another scale: it is not read and
//!     stays in the attributes.
//!   - An unknown name is bad (``field `level` has an unknown level name: "loud"``), another type
//!     too (``field `level` must be a level name or a number, got boolean``).
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

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use logrelay_plugin_api::{Level, Record, RecordFlags};
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

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
    let mut scratch = Scratch {
        slots: Slots::default(),
        attrs: Vec::with_capacity(16),
        out_of_order: false,
    };
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

/// The project, module and level named by the routing key's segments
/// (`<project>.<module>[.<level>]`), worked out once per message.
#[derive(Debug, Clone, Copy, Default)]
struct RoutingKeySegments<'a> {
    project: Option<&'a str>,
    module: Option<&'a str>,
    level: Option<Level>,
}

impl<'a> RoutingKeySegments<'a> {
    fn new(ctx: &DecodeContext<'a>) -> RoutingKeySegments<'a> {
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

/// The known fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Timestamp,
    Level,
    Project,
    Module,
    Message,
    Id,
}

/// The known field a key names, and the rank of that name (0 for the canonical name).
fn classify(key: &str) -> Option<(Field, u8)> {
    Some(match key {
        "timestamp" => (Field::Timestamp, 0),
        "ts" => (Field::Timestamp, 1),
        "time" => (Field::Timestamp, 2),
        "@timestamp" => (Field::Timestamp, 3),
        "datetime" => (Field::Timestamp, 4),
        "created" => (Field::Timestamp, 5),
        "level" => (Field::Level, 0),
        "levelname" => (Field::Level, 1),
        "severity" => (Field::Level, 2),
        "lvl" => (Field::Level, 3),
        "log_level" => (Field::Level, 4),
        "loglevel" => (Field::Level, 5),
        "project" => (Field::Project, 0),
        "service" => (Field::Project, 1),
        "app" => (Field::Project, 2),
        "application" => (Field::Project, 3),
        "module" => (Field::Module, 0),
        "logger" => (Field::Module, 1),
        "name" => (Field::Module, 2),
        "logger_name" => (Field::Module, 3),
        "component" => (Field::Module, 4),
        "message" => (Field::Message, 0),
        "msg" => (Field::Message, 1),
        "text" => (Field::Message, 2),
        "id" => (Field::Id, 0),
        _ => return None,
    })
}

/// One field of an object as sent: its position, its key (unescaped) and its value's JSON text.
#[derive(Debug)]
struct Entry<'de> {
    pos: u32,
    key: Cow<'de, str>,
    value: &'de RawValue,
}

/// The field that currently holds a known field, and the rank of its name.
#[derive(Debug)]
struct Slot<'de> {
    rank: u8,
    entry: Entry<'de>,
}

/// The known fields of one object.
#[derive(Debug, Default)]
struct Slots<'de> {
    timestamp: Option<Slot<'de>>,
    level: Option<Slot<'de>>,
    project: Option<Slot<'de>>,
    module: Option<Slot<'de>>,
    message: Option<Slot<'de>>,
    id: Option<Slot<'de>>,
}

impl<'de> Slots<'de> {
    fn get_mut(&mut self, field: Field) -> &mut Option<Slot<'de>> {
        match field {
            Field::Timestamp => &mut self.timestamp,
            Field::Level => &mut self.level,
            Field::Project => &mut self.project,
            Field::Module => &mut self.module,
            Field::Message => &mut self.message,
            Field::Id => &mut self.id,
        }
    }
}

/// The fields of the object read last; reused from one object to the next.
#[derive(Debug, Default)]
struct Scratch<'de> {
    /// Its known fields.
    slots: Slots<'de>,
    /// Its other fields.
    attrs: Vec<Entry<'de>>,
    /// Whether `attrs` is out of the order the fields were sent in.
    out_of_order: bool,
}

/// A JSON value, as far as one pass over it tells.
enum Item {
    /// An object, whose fields are in the [`Scratch`].
    Object,
    /// Anything else, by the name of its type.
    Other(&'static str),
}

/// What one element decoded into.
enum Outcome {
    Record(Record, RecordFlags),
    Bad(String),
    NotObject(&'static str),
}

/// Reads one JSON value; for an object, fills the scratch with its fields.
struct ItemSeed<'v, 'de> {
    scratch: &'v mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Item, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let Scratch {
            slots,
            attrs,
            out_of_order,
        } = self.scratch;
        *slots = Slots::default();
        attrs.clear();
        *out_of_order = false;
        let mut pos: u32 = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            let entry = Entry { pos, key, value };
            pos = pos.saturating_add(1);
            let Some((field, rank)) = classify(&entry.key) else {
                attrs.push(entry);
                continue;
            };
            let slot = slots.get_mut(field);
            match slot {
                None => *slot = Some(Slot { rank, entry }),
                // The same key again: the last occurrence wins.
                Some(held) if held.rank == rank => held.entry = entry,
                // A name listed earlier: the one held goes back to the attributes.
                Some(held) if rank < held.rank => {
                    let old = std::mem::replace(held, Slot { rank, entry });
                    attrs.push(old.entry);
                    *out_of_order = true;
                }
                Some(_) => attrs.push(entry),
            }
        }
        Ok(Item::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        // Skipped as raw values: no recursion, however deep the nesting.
        while seq.next_element::<&'de RawValue>()?.is_some() {}
        Ok(Item::Other("array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
        Ok(Item::Other("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
        Ok(Item::Other("string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item::Other("null"))
    }
}

/// Reads an object key, borrowing it from the body when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// Reads the elements of a top-level array, decoding each as it comes.
struct ArrayVisitor<'x, 'c, 'a, 'de> {
    decoder: &'x Decoder<'c, 'a>,
    scratch: &'x mut Scratch<'de>,
    out: &'x mut Decoded,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_, '_, 'de> {
    /// How many elements there were.
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element_seed(ItemSeed {
            scratch: &mut *self.scratch,
        })? {
            let outcome = self.decoder.finish(item, self.scratch, index);
            // The element's span is filled in afterwards, only when it is bad.
            self.out.push(outcome, index, 0..0, "element");
            index += 1;
        }
        Ok(index)
    }
}

/// Decodes one message: its context, and what its routing key says.
struct Decoder<'c, 'a> {
    ctx: &'c DecodeContext<'a>,
    key_segments: RoutingKeySegments<'a>,
}

/// Whether a byte is JSON whitespace.
const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether a line holds only whitespace.
fn is_blank(line: &str) -> bool {
    line.bytes().all(is_ws)
}

/// The range of `line` (at `start` in the body) without its leading and trailing whitespace.
fn trimmed_span(line: &str, start: usize) -> Range<usize> {
    let bytes = line.as_bytes();
    let lead = bytes.iter().take_while(|b| is_ws(**b)).count();
    let trail = bytes.iter().rev().take_while(|b| is_ws(**b)).count();
    let end = start + bytes.len().saturating_sub(trail);
    (start + lead).min(end)..end
}

/// The error of a line parsed on its own, with the line's number in the body.
fn line_error(e: &serde_json::Error, line_no: usize) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return format!("line is not valid JSON: {text}");
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let code = text.strip_suffix(&suffix).unwrap_or(&text);
    let line = (line_no + e.line()).saturating_sub(1);
    format!(
        "line is not valid JSON: {code} at line {line} column {}",
        e.column()
    )
}

impl Decoder<'_, '_> {
    fn decode_text<'de>(&self, text: &'de str, scratch: &mut Scratch<'de>, out: &mut Decoded) {
        let Some(first) = text.bytes().find(|b| !is_ws(*b)) else {
            out.bad_whole(text.len(), "empty message".to_owned());
            return;
        };
        if first == b'[' {
            self.decode_array(text, scratch, out);
            return;
        }
        // The common case first: one value, on one line or pretty-printed over several.
        let whole = match self.parse(text, scratch, 0) {
            Ok(outcome) => {
                self.push_single(outcome, text.len(), out);
                return;
            }
            Err(e) => e,
        };
        // The non-blank lines: (number from 1, offset, text without the line break).
        let mut offset = 0;
        let mut lines = text.split('\n').enumerate().filter_map(|(i, line)| {
            let start = offset;
            offset += line.len() + 1;
            (!is_blank(line)).then_some((i + 1, start, line))
        });
        let (Some(line1), Some(line2)) = (lines.next(), lines.next()) else {
            out.bad_whole(text.len(), format!("message is not valid JSON: {whole}"));
            return;
        };
        match self.parse(line1.2, scratch, 0) {
            Ok(outcome) => {
                out.push(outcome, 0, trimmed_span(line1.2, line1.1), "line");
                self.decode_lines(std::iter::once(line2).chain(lines), 1, scratch, out);
            }
            Err(e1) => match self.parse(line2.2, scratch, 1) {
                Ok(outcome @ (Outcome::Record(..) | Outcome::Bad(_))) => {
                    out.bad.push(BadElement {
                        index: Some(0),
                        span: trimmed_span(line1.2, line1.1),
                        reason: line_error(&e1, line1.0),
                    });
                    out.push(outcome, 1, trimmed_span(line2.2, line2.1), "line");
                    self.decode_lines(lines, 2, scratch, out);
                }
                _ => out.bad_whole(text.len(), format!("message is not valid JSON: {whole}")),
            },
        }
    }

    /// Decodes the lines of JSON lines, numbering the elements from `index`.
    fn decode_lines<'de>(
        &self,
        lines: impl Iterator<Item = (usize, usize, &'de str)>,
        mut index: usize,
        scratch: &mut Scratch<'de>,
        out: &mut Decoded,
    ) {
        for (line_no, start, line) in lines {
            let span = trimmed_span(line, start);
            match self.parse(line, scratch, index) {
                Ok(outcome) => out.push(outcome, index, span, "line"),
                Err(e) => out.bad.push(BadElement {
                    index: Some(index),
                    span,
                    reason: line_error(&e, line_no),
                }),
            }
            index += 1;
        }
    }

    fn push_single(&self, outcome: Outcome, len: usize, out: &mut Decoded) {
        match outcome {
            Outcome::Record(record, flags) => {
                out.records.push(record);
                out.indices.push(0);
                out.flags.push(flags);
            }
            Outcome::Bad(reason) => out.bad_whole(len, reason),
            Outcome::NotObject(kind) => out.bad_whole(
                len,
                format!("message is not a JSON object or array, got {kind}"),
            ),
        }
    }

    fn decode_array<'de>(&self, text: &'de str, scratch: &mut Scratch<'de>, out: &mut Decoded) {
        let mut de = serde_json::Deserializer::from_str(text);
        let visitor = ArrayVisitor {
            decoder: self,
            scratch,
            out: &mut *out,
        };
        let result = de
            .deserialize_seq(visitor)
            .and_then(|n| de.end().map(|()| n));
        match result {
            Ok(0) => out.bad_whole(text.len(), "empty message".to_owned()),
            Ok(_) if out.bad.is_empty() => {}
            Ok(_) => {
                // Rare: read the array again to find where its bad elements are.
                let spans = element_spans(text);
                for bad in &mut out.bad {
                    bad.span = bad
                        .index
                        .and_then(|i| spans.as_ref().and_then(|s| s.get(i)))
                        .cloned()
                        .unwrap_or(0..text.len());
                }
            }
            Err(e) => out.bad_whole(text.len(), format!("message is not valid JSON: {e}")),
        }
    }

    /// Parses `src` as exactly one JSON value and decodes it as element `index`.
    fn parse<'de>(
        &self,
        src: &'de str,
        scratch: &mut Scratch<'de>,
        index: usize,
    ) -> Result<Outcome, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(src);
        let item = ItemSeed {
            scratch: &mut *scratch,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(self.finish(item, scratch, index))
    }

    fn finish(&self, item: Item, scratch: &mut Scratch<'_>, index: usize) -> Outcome {
        match item {
            Item::Object => match self.build(scratch, index) {
                Ok((record, flags)) => Outcome::Record(record, flags),
                Err(reason) => Outcome::Bad(reason),
            },
            Item::Other(kind) => Outcome::NotObject(kind),
        }
    }

    /// Builds the record of the object in the scratch, with what it does not say itself.
    fn build(
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
                errors.push("no message field (looked for message, msg, text)");
                None
            }
            Some(slot) => errors.check(string_field(&slot.entry)),
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
            Some(slot) => errors.check(level_field(&slot.entry)),
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

    /// The id of a record that has none, and whether the host derived it from the message's
    /// bytes (rather than from the producer's `message_id`).
    fn new_id(&self, index: usize) -> (Cow<'static, str>, bool) {
        match self.ctx.message_id {
            Some(id) if !id.is_empty() => {
                let mut digits = [0u8; 20];
                let mut n = index;
                let mut len = 0;
                for slot in digits.iter_mut().rev() {
                    *slot = b'0' + (n % 10) as u8;
                    n /= 10;
                    len += 1;
                    if n == 0 {
                        break;
                    }
                }
                let digits = digits.get(digits.len() - len..).unwrap_or_default();
                let mut out = String::with_capacity(id.len() + 1 + len);
                out.push_str(id);
                out.push(':');
                out.push_str(std::str::from_utf8(digits).unwrap_or_default());
                (Cow::Owned(out), false)
            }
            _ => (Cow::Owned(self.ctx.fingerprint.record_id(index)), true),
        }
    }
}

/// The spans of the elements of a top-level array.
fn element_spans(text: &str) -> Option<Vec<Range<usize>>> {
    let elements: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let base = text.as_ptr().addr();
    Some(
        elements
            .iter()
            .map(|raw| {
                let start = raw.get().as_ptr().addr().saturating_sub(base);
                start..start + raw.get().len()
            })
            .collect(),
    )
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
enum FieldError<'k> {
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
    #[error("field `{key}` has an unknown level name: {value}")]
    UnknownLevel { key: &'k str, value: Quoted<'k> },
    #[error("field `{key}` must be a string or an integer, got {got}")]
    IdType { key: &'k str, got: &'static str },
    #[error("field `{key}` must not be empty")]
    EmptyId { key: &'k str },
    #[error("field `{key}` holds a string that cannot be read")]
    Unreadable { key: &'k str },
}

/// A value's JSON text in an error message, cut after 64 characters.
#[derive(Debug)]
struct Quoted<'a>(&'a str);

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
fn kind(raw: &RawValue) -> &'static str {
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
fn json_str(raw: &RawValue) -> Option<Result<Cow<'_, str>, ()>> {
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

fn id_field<'k, 'de>(entry: &'k Entry<'de>) -> Result<Cow<'de, str>, FieldError<'k>> {
    let key = &*entry.key;
    let text = entry.value.get();
    if let Some(s) = json_str(entry.value) {
        return match s {
            Ok(s) if s.is_empty() => Err(FieldError::EmptyId { key }),
            Ok(s) => Ok(s),
            Err(()) => Err(FieldError::Unreadable { key }),
        };
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Cow::Borrowed(text));
    }
    let got = match kind(entry.value) {
        "number" => "a number that is not an integer",
        other => other,
    };
    Err(FieldError::IdType { key, got })
}

fn level_field<'k>(entry: &'k Entry<'_>) -> Result<Level, FieldError<'k>> {
    let key = &*entry.key;
    let text = entry.value.get();
    match json_str(entry.value) {
        Some(Ok(name)) => Level::from_name(&name)
            .or_else(|| numeric_level(&name))
            .ok_or(FieldError::UnknownLevel {
                key,
                value: Quoted(text),
            }),
        Some(Err(())) => Err(FieldError::Unreadable { key }),
        None if kind(entry.value) == "number" => {
            numeric_level(text).ok_or(FieldError::LevelType { key, got: "number" })
        }
        None => Err(FieldError::LevelType {
            key,
            got: kind(entry.value),
        }),
    }
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

/// Why a timestamp could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeError {
    Invalid,
    OutOfRange,
}

fn timestamp_field<'k>(entry: &'k Entry<'_>) -> Result<i64, FieldError<'k>> {
    let key = &*entry.key;
    let text = entry.value.get();
    let result = match json_str(entry.value) {
        Some(Ok(s)) => {
            if s.bytes().next().is_some_and(|b| b.is_ascii_digit())
                && s.as_bytes().get(4) == Some(&b'-')
            {
                parse_datetime(&s)
            } else {
                parse_epoch(&s)
            }
        }
        Some(Err(())) => Err(TimeError::Invalid),
        None => match kind(entry.value) {
            "number" => parse_epoch(text),
            got => return Err(FieldError::TimestampType { key, got }),
        },
    };
    result.map_err(|e| match e {
        TimeError::Invalid => FieldError::BadTimestamp {
            key,
            value: Quoted(text),
        },
        TimeError::OutOfRange => FieldError::TimestampRange {
            key,
            value: Quoted(text),
        },
    })
}

/// `10^n` for `n <= 38`.
fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

/// A number of seconds, milliseconds, microseconds or nanoseconds since the epoch, by magnitude.
///
/// The decimal text is read exactly (no floating point): `1712345678.123456789` is that many
/// nanoseconds.
fn parse_epoch(text: &str) -> Result<i64, TimeError> {
    // At most this many significant digits are kept; the rest only move the exponent.
    const MAX_MANTISSA: u128 = 10u128.pow(36);
    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: u128 = 0;
    let mut exp10: i64 = 0;
    let mut digits = 0;
    while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        if mantissa < MAX_MANTISSA {
            mantissa = mantissa * 10 + u128::from(d - b'0');
        } else {
            exp10 += 1;
        }
        digits += 1;
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            if mantissa < MAX_MANTISSA {
                mantissa = mantissa * 10 + u128::from(d - b'0');
                exp10 -= 1;
            }
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return Err(TimeError::Invalid);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut exp: i64 = 0;
        let mut exp_digits = 0;
        while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
            exp_digits += 1;
            i += 1;
        }
        if exp_digits == 0 {
            return Err(TimeError::Invalid);
        }
        exp10 += if exp_negative { -exp } else { exp };
    }
    if i != bytes.len() {
        return Err(TimeError::Invalid);
    }
    if mantissa == 0 {
        return Ok(0);
    }
    // The integer part of the magnitude decides the unit.
    let integer_part = scale(mantissa, exp10);
    let unit_exp: i64 = match integer_part {
        Some(n) if n < 100_000_000_000 => 9,
        Some(n) if n < 100_000_000_000_000 => 6,
        Some(n) if n < 100_000_000_000_000_000 => 3,
        _ => 0,
    };
    let nanos = scale(mantissa, exp10 + unit_exp).ok_or(TimeError::OutOfRange)?;
    let nanos = i128::try_from(nanos).map_err(|_| TimeError::OutOfRange)?;
    let nanos = if negative { -nanos } else { nanos };
    i64::try_from(nanos).map_err(|_| TimeError::OutOfRange)
}

/// `mantissa * 10^exp10`, truncated towards zero; `None` when it does not fit a `u128`.
fn scale(mantissa: u128, exp10: i64) -> Option<u128> {
    if exp10 >= 0 {
        let exp = u32::try_from(exp10).ok()?;
        mantissa.checked_mul(pow10(exp)?)
    } else {
        match u32::try_from(-exp10).ok().and_then(pow10) {
            Some(divisor) => Some(mantissa / divisor),
            None => Some(0),
        }
    }
}

/// A date and time: `YYYY-MM-DD[Tt ]HH:MM:SS[(.|,)fraction][Z|z|±HH:MM|±HHMM]`, UTC when no offset.
fn parse_datetime(text: &str) -> Result<i64, TimeError> {
    let b = text.as_bytes();
    let num = |range: Range<usize>| -> Result<u32, TimeError> {
        let digits = b.get(range).ok_or(TimeError::Invalid)?;
        digits.iter().try_fold(0u32, |acc, d| {
            if d.is_ascii_digit() {
                Ok(acc * 10 + u32::from(d - b'0'))
            } else {
                Err(TimeError::Invalid)
            }
        })
    };
    let at = |i: usize, expected: &[u8]| b.get(i).is_some_and(|c| expected.contains(c));
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return Err(TimeError::Invalid);
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if at(i, b".,") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b.get(i).map_or(0, |d| d - b'0'));
            }
            i += 1;
        }
        let len = i - start;
        if len == 0 {
            return Err(TimeError::Invalid);
        }
        for _ in len..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let (om, len) = if at(i + 3, b":") {
                (num(i + 4..i + 6)?, 6)
            } else {
                (num(i + 3..i + 5)?, 5)
            };
            if oh > 23 || om > 59 {
                return Err(TimeError::Invalid);
            }
            i += len;
            let secs = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        Some(_) => return Err(TimeError::Invalid),
    };
    if i != b.len() || hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError::Invalid);
    }
    let year = i32::try_from(year).map_err(|_| TimeError::Invalid)?;
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day).ok_or(TimeError::Invalid)?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or(TimeError::Invalid)?
        .and_utc()
        .timestamp();
    let secs = midnight + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or(TimeError::OutOfRange)
}

/// The attributes' JSON text, or `None` when there are none (`{}`).
///
/// Of keys that occur more than once, only the last occurrence is kept.
fn attributes(attrs: &mut [Entry<'_>], out_of_order: bool) -> Option<String> {
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
    use super::*;

    const RECEIVED: i64 = 1_700_000_000_123_456_789;
    const AMQP: i64 = 1_600_000_000_000_000_000;

    fn ctx() -> DecodeContext<'static> {
        DecodeContext {
            routing_key: "logs",
            queue: "logs",
            amqp_timestamp_ns: None,
            message_id: Some("m1"),
            fingerprint: Fingerprint(7),
            redelivered: false,
            received_ns: RECEIVED,
            default_project: "default-project",
            default_module: "default-module",
            max_bytes: 1024 * 1024,
        }
    }

    fn decode_str(body: &str) -> Decoded {
        decode(body.as_bytes(), &ctx())
    }

    /// The one record of a body that must decode to exactly one.
    #[track_caller]
    fn one(body: &str) -> Record {
        one_with(body, &ctx())
    }

    #[track_caller]
    fn one_with(body: &str, ctx: &DecodeContext<'_>) -> Record {
        let d = decode(body.as_bytes(), ctx);
        assert_eq!(d.bad, vec![], "body {body:?}");
        assert_eq!(d.records.len(), 1, "body {body:?}");
        d.records.into_iter().next().unwrap()
    }

    /// The reason a single-object body is bad as a whole.
    #[track_caller]
    fn whole_bad(body: &str) -> String {
        whole_bad_bytes(body.as_bytes(), &ctx())
    }

    #[track_caller]
    fn whole_bad_bytes(body: &[u8], ctx: &DecodeContext<'_>) -> String {
        let d = decode(body, ctx);
        assert!(d.records.is_empty(), "body {body:?}: {d:?}");
        assert!(d.indices.is_empty());
        assert_eq!(d.bad.len(), 1, "body {body:?}: {d:?}");
        assert_eq!(d.bad[0].index, None);
        assert_eq!(d.bad[0].span, 0..body.len());
        d.bad.into_iter().next().unwrap().reason
    }

    fn attrs(r: &Record) -> &str {
        r.attributes.as_str()
    }

    // ---- whole-body rules ----

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
    fn over_the_size_limit() {
        let mut c = ctx();
        c.max_bytes = 10;
        let body = br#"{"message":"x"}"#;
        assert_eq!(
            whole_bad_bytes(body, &c),
            "message is 15 bytes, over the limit of 10 (LOGRELAY_MAX_MESSAGE_BYTES)"
        );
        c.max_bytes = body.len();
        assert_eq!(decode(body, &c).records.len(), 1);
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        assert_eq!(
            whole_bad_bytes(b"{\"message\":\"ab\xff\"}", &ctx()),
            "message is not valid UTF-8 at byte 14"
        );
        assert_eq!(
            whole_bad_bytes(b"\xc3", &ctx()),
            "message is not valid UTF-8 at byte 0"
        );
    }

    #[test]
    fn not_json_gives_line_and_column() {
        assert_eq!(
            whole_bad(r#"{"message": ?}"#),
            "message is not valid JSON: expected value at line 1 column 13"
        );
        assert_eq!(
            whole_bad("{\n  \"message\": \"x\",\n  oops\n}"),
            "message is not valid JSON: key must be a string at line 3 column 3"
        );
        assert_eq!(
            whole_bad(r#"{"message":"x"} {"#),
            "message is not valid JSON: trailing characters at line 1 column 17"
        );
        assert_eq!(
            whole_bad(r#"[{"message":"x"}] 5"#),
            "message is not valid JSON: trailing characters at line 1 column 19"
        );
    }

    #[test]
    fn empty_bodies() {
        for body in ["", " ", "\n\n\r\n\t", "[]", " [ \n ] "] {
            assert_eq!(whole_bad(body), "empty message", "body {body:?}");
        }
    }

    #[test]
    fn top_level_scalars_are_bad() {
        assert_eq!(
            whole_bad("42"),
            "message is not a JSON object or array, got number"
        );
        assert_eq!(
            whole_bad(r#""hello""#),
            "message is not a JSON object or array, got string"
        );
        assert_eq!(
            whole_bad("null"),
            "message is not a JSON object or array, got null"
        );
        assert_eq!(
            whole_bad("true"),
            "message is not a JSON object or array, got boolean"
        );
    }

    #[test]
    fn array_of_objects() {
        let body = r#"[{"message":"a"}, 7, {"msg":"b"}, {"text":1}, [1,[2]], {"message":"c"}]"#;
        let d = decode_str(body);
        let messages: Vec<_> = d.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["a", "b", "c"]);
        assert_eq!(d.indices, [0, 2, 5]);
        let ids: Vec<_> = d.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m1:0", "m1:2", "m1:5"]);
        assert_eq!(
            d.bad,
            vec![
                BadElement {
                    index: Some(1),
                    span: 18..19,
                    reason: "element is not a JSON object, got number".into(),
                },
                BadElement {
                    index: Some(3),
                    span: 34..44,
                    reason: "field `text` must be a string, got number".into(),
                },
                BadElement {
                    index: Some(4),
                    span: 46..53,
                    reason: "element is not a JSON object, got array".into(),
                },
            ]
        );
        assert_eq!(&body[18..19], "7");
        assert_eq!(&body[34..44], r#"{"text":1}"#);
        assert_eq!(&body[46..53], "[1,[2]]");
    }

    #[test]
    fn array_syntax_error_makes_the_whole_body_bad() {
        assert_eq!(
            whole_bad(r#"[{"message":"a"}, {"message":"b"} {"message":"c"}]"#),
            "message is not valid JSON: expected `,` or `]` at line 1 column 35"
        );
    }

    #[test]
    fn json_lines() {
        let body = "{\"message\":\"a\"}\r\n\n  \n{\"message\":\"b\"}\n{broken\n\"str\"\n{\"message\":\"c\"}\n";
        let d = decode_str(body);
        let messages: Vec<_> = d.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["a", "b", "c"]);
        assert_eq!(d.indices, [0, 1, 4]);
        let ids: Vec<_> = d.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m1:0", "m1:1", "m1:4"]);
        assert_eq!(d.bad.len(), 2);
        assert_eq!(d.bad[0].index, Some(2));
        assert_eq!(&body[d.bad[0].span.clone()], "{broken");
        assert_eq!(
            d.bad[0].reason,
            "line is not valid JSON: key must be a string at line 5 column 2"
        );
        assert_eq!(d.bad[1].index, Some(3));
        assert_eq!(&body[d.bad[1].span.clone()], "\"str\"");
        assert_eq!(d.bad[1].reason, "line is not a JSON object, got string");
    }

    #[test]
    fn json_lines_with_a_bad_first_line() {
        let body = "{\"message\":\"a\"\n{\"message\":\"b\"}\n{\"message\":\"c\"}";
        let d = decode_str(body);
        let messages: Vec<_> = d.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["b", "c"]);
        assert_eq!(d.indices, [1, 2]);
        assert_eq!(
            d.bad,
            vec![BadElement {
                index: Some(0),
                span: 0..14,
                reason: "line is not valid JSON: EOF while parsing an object at line 1 column 14"
                    .into(),
            }]
        );
        // A bad element on the second line is kept apart too.
        let body = "nope\n{\"msg\":5}\n{\"message\":\"c\"}";
        let d = decode_str(body);
        assert_eq!(d.indices, [2]);
        assert_eq!(d.bad.len(), 2);
        assert_eq!(d.bad[1].reason, "field `msg` must be a string, got number");
    }

    #[test]
    fn json_lines_semantic_errors_stay_per_line() {
        let d = decode_str("{\"message\":\"a\"}\n{\"message\":null}\n[]");
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.bad[0].index, Some(1));
        assert_eq!(
            d.bad[0].reason,
            "field `message` must be a string, got null"
        );
        assert_eq!(d.bad[1].index, Some(2));
        assert_eq!(d.bad[1].reason, "line is not a JSON object, got array");
    }

    #[test]
    fn pretty_printed_single_object() {
        let body = "\n{\n  \"message\": \"multi\",\n  \"ctx\": {\n    \"a\": [1, 2]\n  }\n}\n";
        let r = one(body);
        assert_eq!(r.message.as_str(), "multi");
        assert_eq!(r.id.as_str(), "m1:0");
        assert_eq!(attrs(&r), "{\"ctx\":{\n    \"a\": [1, 2]\n  }}");
        // Broken: the whole body is bad, with the position in the body.
        assert_eq!(
            whole_bad("{\n  \"message\": \"multi\",\n  \"ctx\": {\n    \"a\": [1, 2\n  }\n}\n"),
            "message is not valid JSON: expected `,` or `]` at line 5 column 3"
        );
    }

    #[test]
    fn single_line_with_trailing_newline_is_one_object() {
        let r = one("{\"message\":\"x\"}\n");
        assert_eq!(r.id.as_str(), "m1:0");
    }

    #[test]
    fn single_object_errors_are_whole_body() {
        assert_eq!(
            whole_bad(r#"{"level":"info"}"#),
            "no message field (looked for message, msg, text)"
        );
    }

    // ---- fields ----

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

    #[test]
    fn escaped_known_keys_are_recognised() {
        let r = one(r#"{"mess\u0061ge":"x","\u006cevel":"error"}"#);
        assert_eq!(r.message.as_str(), "x");
        assert_eq!(r.level, Level::ERROR);
    }

    #[test]
    fn message_rules() {
        assert_eq!(
            whole_bad(r#"{"a":1}"#),
            "no message field (looked for message, msg, text)"
        );
        assert_eq!(
            whole_bad("{}"),
            "no message field (looked for message, msg, text)"
        );
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
            "no message field (looked for message, msg, text); \
             field `ts` is not a valid timestamp: \"soon\"; \
             field `level` must be a level name or a number, got boolean; \
             field `project` must be a string, got number; \
             field `module` must be a string, got null; \
             field `id` must be a string or an integer, got a number that is not an integer"
        );
    }

    // ---- timestamp ----

    fn ts(value: &str) -> Result<i64, String> {
        let d = decode_str(&format!(r#"{{"message":"m","ts":{value}}}"#));
        match d.records.first() {
            Some(r) => Ok(r.timestamp_ns),
            None => Err(d.bad[0].reason.clone()),
        }
    }

    #[test]
    fn timestamp_strings() {
        let base = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
        let ok = [
            ("\"2024-05-01T12:00:00Z\"", base),
            ("\"2024-05-01t12:00:00z\"", base),
            ("\"2024-05-01 12:00:00\"", base),
            ("\"2024-05-01T12:00:00\"", base),
            ("\"2024-05-01T12:00:00.5Z\"", base + 500_000_000),
            ("\"2024-05-01 12:00:00,123\"", base + 123_000_000),
            ("\"2024-05-01 12:00:00.123456\"", base + 123_456_000),
            ("\"2024-05-01T12:00:00.123456789Z\"", base + 123_456_789),
            ("\"2024-05-01T12:00:00.1234567891234Z\"", base + 123_456_789),
            ("\"2024-05-01T14:30:00+02:30\"", base),
            ("\"2024-05-01T09:00:00-0300\"", base),
            ("\"2024-05-01T12:00:00-00:00\"", base),
            ("\"2024-05-01T11:59:60Z\"", base),
            ("\"1970-01-01T00:00:00Z\"", 0),
            ("\"1969-12-31T23:59:59.5Z\"", -500_000_000),
            ("\"2024-02-29T00:00:00Z\"", 1_709_164_800_000_000_000),
        ];
        for (value, expected) in ok {
            assert_eq!(ts(value), Ok(expected), "{value}");
        }
        let invalid = [
            "\"yesterday\"",
            "\"\"",
            "\"2024-05-01\"",
            "\"2024-05-01T12:00Z\"",
            "\"2024-13-01T12:00:00Z\"",
            "\"2023-02-29T12:00:00Z\"",
            "\"2024-05-01T24:00:00Z\"",
            "\"2024-05-01T12:60:00Z\"",
            "\"2024-05-01T12:00:61Z\"",
            "\"2024-05-01T12:00:00.Z\"",
            "\"2024-05-01T12:00:00+24:00\"",
            "\"2024-05-01T12:00:00+02\"",
            "\"2024-05-01T12:00:00Z \"",
            "\"2024-05-01X12:00:00Z\"",
            "\"2024/05/01 12:00:00\"",
            "\"NaN\"",
            "\"inf\"",
            "\"1e\"",
            "\"1.2.3\"",
            "\" 12\"",
        ];
        for value in invalid {
            assert_eq!(
                ts(value),
                Err(format!("field `ts` is not a valid timestamp: {value}")),
                "{value}"
            );
        }
        assert_eq!(
            ts("\"2262-04-12T00:00:00Z\""),
            Err("field `ts` is out of range for a timestamp: \"2262-04-12T00:00:00Z\"".into())
        );
        assert_eq!(
            ts("\"1677-09-21T00:00:00Z\""),
            Err("field `ts` is out of range for a timestamp: \"1677-09-21T00:00:00Z\"".into())
        );
    }

    #[test]
    fn timestamp_numbers_by_magnitude() {
        let ok = [
            ("0", 0),
            ("1714564800", 1_714_564_800_000_000_000),
            ("1714564800.123456789", 1_714_564_800_123_456_789),
            ("1714564800.5", 1_714_564_800_500_000_000),
            ("9000000000", 9_000_000_000_000_000_000),
            ("9000000000.9", 9_000_000_000_900_000_000),
            ("100000000000", 100_000_000_000_000_000),
            ("1714564800123", 1_714_564_800_123_000_000),
            ("1714564800123.5", 1_714_564_800_123_500_000),
            ("1714564800123456", 1_714_564_800_123_456_000),
            ("1714564800123456789", 1_714_564_800_123_456_789),
            ("1.7145648e9", 1_714_564_800_000_000_000),
            ("17145648E-1", 1_714_564_800_000_000),
            ("-1.5", -1_500_000_000),
            ("-1714564800123", -1_714_564_800_123_000_000),
            ("\"1714564800\"", 1_714_564_800_000_000_000),
            ("\"1714564800.25\"", 1_714_564_800_250_000_000),
            ("\"+5\"", 5_000_000_000),
            ("1e-30", 0),
            // Python's `created`.
            ("1714564800.0012345", 1_714_564_800_001_234_500),
        ];
        for (value, expected) in ok {
            assert_eq!(ts(value), Ok(expected), "{value}");
        }
        for value in [
            "99999999999",
            "99999999999.9",
            "1e20",
            "1e300",
            "1e400",
            "-1e19",
            "99999999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                ts(value),
                Err(format!(
                    "field `ts` is out of range for a timestamp: {value}"
                )),
                "{value}"
            );
        }
        // Nanoseconds up to the edge of i64.
        assert_eq!(ts("9223372036854775807"), Ok(i64::MAX));
        assert!(ts("9223372036854775808").is_err());
    }

    #[test]
    fn timestamp_wrong_types() {
        for (value, got) in [
            ("true", "boolean"),
            ("{}", "object"),
            ("[1]", "array"),
            ("null", "null"),
        ] {
            assert_eq!(
                ts(value),
                Err(format!(
                    "field `ts` must be a string or a number, got {got}"
                ))
            );
        }
        let long = format!("\"{}\"", "x".repeat(100));
        assert_eq!(
            ts(&long),
            Err(format!(
                "field `ts` is not a valid timestamp: \"{}...",
                "x".repeat(63)
            ))
        );
    }

    #[test]
    fn missing_timestamp_falls_back() {
        assert_eq!(one(r#"{"message":"m"}"#).timestamp_ns, RECEIVED);
        let mut c = ctx();
        c.amqp_timestamp_ns = Some(AMQP);
        assert_eq!(one_with(r#"{"message":"m"}"#, &c).timestamp_ns, AMQP);
        assert_eq!(
            one_with(r#"{"message":"m","ts":1}"#, &c).timestamp_ns,
            1_000_000_000
        );
    }

    /// Only a record given the receive time is flagged so; flags match the records one for one,
    /// in arrays and lines too, and are dropped with the records of a message bad as a whole.
    #[test]
    fn flags_say_which_records_got_the_receive_time() {
        use logrelay_plugin_api::RecordFlags as F;
        let d = decode_str(r#"[{"message":"a"},{"message":"b","ts":1},{"message":"c"}]"#);
        assert_eq!(d.flags, vec![F::RECEIVE_TIME, F::NONE, F::RECEIVE_TIME]);
        let d = decode_str("{\"message\":\"a\",\"ts\":1}\n{\"message\":\"b\"}\n");
        assert_eq!(d.flags, vec![F::NONE, F::RECEIVE_TIME]);
        let mut c = ctx();
        c.amqp_timestamp_ns = Some(AMQP);
        let d = decode(br#"[{"message":"a"},{"message":"b","ts":1}]"#, &c);
        assert_eq!(d.flags, vec![F::NONE, F::NONE]);
        // A bad element leaves no flag behind; a message bad as a whole leaves none at all.
        let d = decode_str(r#"[{"message":"a"},{"nomessage":1},{"message":"c","ts":2}]"#);
        assert_eq!((d.records.len(), d.flags.len()), (2, 2));
        assert_eq!(d.flags, vec![F::RECEIVE_TIME, F::NONE]);
        let d = decode_str(r#"{"message":"a"} trailing"#);
        assert!(d.records.is_empty() && d.flags.is_empty());
    }

    // ---- level ----

    fn level(value: &str) -> Result<Level, String> {
        let d = decode_str(&format!(r#"{{"message":"m","level":{value}}}"#));
        match d.records.first() {
            Some(r) => Ok(r.level),
            None => Err(d.bad[0].reason.clone()),
        }
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
                Err(format!("field `level` has an unknown level name: {value}"))
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

    // ---- project and module ----

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

    // ---- id ----

    #[test]
    fn id_rules() {
        assert_eq!(one(r#"{"message":"m","id":"abc"}"#).id.as_str(), "abc");
        assert_eq!(one(r#"{"message":"m","id":"a\"b"}"#).id.as_str(), "a\"b");
        assert_eq!(one(r#"{"message":"m","id":42}"#).id.as_str(), "42");
        assert_eq!(one(r#"{"message":"m","id":-7}"#).id.as_str(), "-7");
        assert_eq!(
            one(r#"{"message":"m","id":123456789012345678901234567890}"#)
                .id
                .as_str(),
            "123456789012345678901234567890"
        );
        for (value, got) in [
            ("1.5", "a number that is not an integer"),
            ("1e3", "a number that is not an integer"),
            ("true", "boolean"),
            ("{}", "object"),
            ("null", "null"),
        ] {
            assert_eq!(
                whole_bad(&format!(r#"{{"message":"m","id":{value}}}"#)),
                format!("field `id` must be a string or an integer, got {got}")
            );
        }
        assert_eq!(
            whole_bad(r#"{"message":"m","id":""}"#),
            "field `id` must not be empty"
        );
    }

    #[test]
    fn missing_id_from_the_message_id() {
        assert_eq!(one(r#"{"message":"m"}"#).id.as_str(), "m1:0");
        let d = decode_str(r#"[{"message":"a"},{"message":"b"}]"#);
        assert_eq!(d.records[1].id.as_str(), "m1:1");
        let d = decode_str(
            "{\"message\":\"a\"}\n{\"message\":\"b\",\"id\":\"own\"}\n{\"message\":\"c\"}",
        );
        let ids: Vec<_> = d.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m1:0", "own", "m1:2"]);
    }

    #[test]
    fn missing_id_without_message_id_is_derived_from_the_fingerprint() {
        use logrelay_plugin_api::RecordFlags as F;
        for message_id in [None, Some("")] {
            let mut c = ctx();
            c.message_id = message_id;
            let d = decode(
                br#"[{"message":"a"},{"message":"b","id":"own"},{"message":"c"}]"#,
                &c,
            );
            assert_eq!(d.records[0].id.as_str(), Fingerprint(7).record_id(0));
            assert_eq!(d.records[1].id.as_str(), "own");
            assert_eq!(d.records[2].id.as_str(), Fingerprint(7).record_id(2));
            // Seen for the first time: only the derived ids are unseen.
            let unseen = F::RECEIVE_TIME.with(F::UNSEEN);
            assert_eq!(d.flags, vec![unseen, F::RECEIVE_TIME, unseen]);
            // A redelivery gives the same ids, and nothing is unseen.
            c.redelivered = true;
            c.received_ns += 5_000_000_000;
            let again = decode(
                br#"[{"message":"a"},{"message":"b","id":"own"},{"message":"c"}]"#,
                &c,
            );
            let ids = |d: &Decoded| {
                d.records
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&again), ids(&d));
            assert_eq!(again.flags, vec![F::RECEIVE_TIME; 3]);
        }
        // Ids from the message id are the producer's: never unseen.
        let d = decode_str(r#"{"message":"m"}"#);
        assert_eq!(d.flags, vec![F::RECEIVE_TIME]);
    }

    // ---- robustness ----

    #[test]
    fn deep_nesting_never_crashes() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // As the body: one bad element.
        let d = decode_str(&deep);
        assert!(d.records.is_empty());
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].reason, "element is not a JSON object, got array");
        // Inside an attribute: kept as sent.
        let body = format!(r#"{{"message":"m","deep":{deep}}}"#);
        assert_eq!(attrs(&one(&body)), format!(r#"{{"deep":{deep}}}"#));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        let body = format!(r#"{{"message":"m","deep":{objects}}}"#);
        assert_eq!(attrs(&one(&body)), format!(r#"{{"deep":{objects}}}"#));
        // As a known field: a wrong type.
        let body = format!(r#"{{"message":{deep}}}"#);
        assert_eq!(
            whole_bad(&body),
            "field `message` must be a string, got array"
        );
        // As JSON lines.
        let body = format!("{{\"message\":\"a\"}}\n{deep}\n{objects}");
        let d = decode_str(&body);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.bad.len(), 2);
        // Unbalanced: a syntax error.
        let reason = whole_bad(&"[".repeat(10_000));
        assert!(
            reason.starts_with("message is not valid JSON: "),
            "{reason}"
        );
        let reason = whole_bad(&r#"{"a":"#.repeat(10_000));
        assert!(
            reason.starts_with("message is not valid JSON: "),
            "{reason}"
        );
    }

    #[test]
    fn nul_bytes() {
        assert_eq!(
            whole_bad("{\"message\":\"a\0b\"}"),
            "message is not valid JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 13"
        );
        assert_eq!(
            whole_bad("\0"),
            "message is not valid JSON: expected value at line 1 column 1"
        );
        let r = one(r#"{"message":"a\u0000b","k\u0000":"\u0000"}"#);
        assert_eq!(r.message.as_str(), "a\0b");
        assert_eq!(attrs(&r), r#"{"k\u0000":"\u0000"}"#);
    }

    #[test]
    fn huge_numbers() {
        let r =
            one(r#"{"message":"m","big":1e99999,"long":123456789012345678901234567890123456789}"#);
        assert_eq!(
            attrs(&r),
            r#"{"big":1e99999,"long":123456789012345678901234567890123456789}"#
        );
        assert_eq!(level("1e99999"), Ok(Level::CRITICAL));
        assert!(ts("1e99999").is_err());
        assert!(ts(&"9".repeat(1000)).is_err());
        assert_eq!(ts(&format!("0.{}1", "0".repeat(1000))), Ok(0));
    }

    #[test]
    fn truncated_json_never_panics() {
        let body = "[{\"id\":\"x\",\"ts\":\"2024-05-01T12:00:00.5+02:00\",\"level\":30,\"msg\":\"caf\\u00e9\",\"ctx\":{\"a\":[1,2.5e3,null,true]}},\
                    {\"message\":\"b\"}]\n{\"message\":\"c\"}\n";
        for end in 0..=body.len() {
            let Some(prefix) = body.get(..end) else {
                continue;
            };
            let d = decode_str(prefix);
            assert!(!d.bad.is_empty() || !d.records.is_empty(), "{prefix:?}");
            for bad in &d.bad {
                assert!(
                    prefix.get(bad.span.clone()).is_some(),
                    "{prefix:?}: {bad:?}"
                );
            }
        }
        for end in 0..=body.len() {
            let _ = decode(&body.as_bytes()[..end], &ctx());
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let alphabet = b"{}[]\":,\\ \n\r\t0123456789.eE+-abcnulltrue\x00\xff\xc3";
        let mut state: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (next(&mut state) % 64) as usize;
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[(next(&mut state) % alphabet.len() as u64) as usize])
                .collect();
            let d = decode(&body, &ctx());
            assert_eq!(d.records.len(), d.indices.len());
            for bad in &d.bad {
                assert!(bad.span.end <= body.len());
            }
        }
        fn next(s: &mut u64) -> u64 {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        }
    }

    #[test]
    fn every_element_is_accounted_for() {
        let body = r#"[{"message":"a"},1,{"x":1},{"message":"b","level":"nope"},{"message":"c"}]"#;
        let d = decode_str(body);
        assert_eq!(d.records.len() + d.bad.len(), 5);
        let mut all: Vec<usize> = d.indices.clone();
        all.extend(d.bad.iter().filter_map(|b| b.index));
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn more_edges() {
        // Seconds up to what i64 nanoseconds hold; 1e11 and up is milliseconds.
        assert_eq!(ts("9223372036"), Ok(9_223_372_036_000_000_000));
        assert_eq!(
            ts("9223372037"),
            Err("field `ts` is out of range for a timestamp: 9223372037".into())
        );
        assert_eq!(ts("1e11"), Ok(100_000_000_000_000_000));
        // Level names with whitespace; a numeric routing-key segment is not a level.
        assert_eq!(level("\" error \""), Ok(Level::ERROR));
        let mut c = ctx();
        c.routing_key = "shop.pay.50";
        assert_eq!(one_with(r#"{"message":"m"}"#, &c).level, Level::INFO);
        // A pretty-printed array.
        let d = decode_str("[\n  {\"message\": \"a\"},\n  {\"message\": \"b\"}\n]\n");
        assert_eq!(d.records.len(), 2);
        assert_eq!(d.indices, [0, 1]);
        // Two values on one line of JSON lines: that line is bad.
        let body =
            "{\"message\":\"a\"}\n{\"message\":\"b\"} {\"message\":\"c\"}\n{\"message\":\"d\"}";
        let d = decode_str(body);
        assert_eq!(d.indices, [0, 2]);
        assert_eq!(
            d.bad[0].reason,
            "line is not valid JSON: trailing characters at line 2 column 17"
        );
        // Bad lines at both the first and the second line: the whole body is bad.
        assert_eq!(
            whole_bad("nope\nnope\n{\"message\":\"a\"}"),
            "message is not valid JSON: expected ident at line 1 column 2"
        );
    }

    #[test]
    fn parse_epoch_edge_cases() {
        assert_eq!(parse_epoch(""), Err(TimeError::Invalid));
        assert_eq!(parse_epoch("-"), Err(TimeError::Invalid));
        assert_eq!(parse_epoch("."), Err(TimeError::Invalid));
        assert_eq!(parse_epoch("1e+"), Err(TimeError::Invalid));
        assert_eq!(parse_epoch(".5"), Ok(500_000_000));
        assert_eq!(parse_epoch("5."), Ok(5_000_000_000));
        assert_eq!(parse_epoch("1e-99999999999999"), Ok(0));
        assert_eq!(parse_epoch("0e99999999999"), Ok(0));
    }
}
