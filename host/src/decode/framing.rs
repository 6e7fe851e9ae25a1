//! The shape of a body: one JSON object, an array of objects, or JSON lines; which element is
//! which, and where in the body a bad one is.

use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer as _};
use serde_json::value::RawValue;

use super::scan::{ArrayVisitor, Item, ItemSeed, Scratch};
use super::shapes::TextIntake;
use super::text::TEXT_HINT;
use super::{BadElement, Decoded, Decoder, Outcome};

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
    pub(super) fn decode_text<'de>(
        &self,
        text: &'de str,
        scratch: &mut Scratch<'de>,
        out: &mut Decoded,
    ) {
        let Some(first) = text.bytes().find(|b| !is_ws(*b)) else {
            out.bad_whole(text.len(), "empty message".to_owned());
            return;
        };
        // With text intake, `[ERROR] disk full` is a line of text, not a broken array.
        let text_not_array = first == b'['
            && self.text_lines()
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err();
        if first == b'[' && !text_not_array {
            self.decode_array(text, scratch, out);
            return;
        }
        // The common case first: one value, on one line or pretty-printed over several.
        let whole = match self.parse(text, scratch, 0) {
            Ok(Outcome::NotObject(_)) if self.text_lines() && !text.trim().contains('\n') => {
                // `42` or `"words"` as a line of text.
                if let Some(outcome) = self.decode_non_json(text, 0) {
                    self.push_single(outcome, text.len(), out);
                }
                return;
            }
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
        if first != b'{' {
            // Not JSON: logfmt or text lines, maybe with JSON lines among them.
            let Some(line1) = lines.next() else {
                return;
            };
            let Some(line2) = lines.next() else {
                match self.decode_non_json(line1.2, 0) {
                    Some(outcome) => self.push_single(outcome, text.len(), out),
                    None => out.bad_whole(
                        text.len(),
                        format!("message is not valid JSON: {whole} ({TEXT_HINT})"),
                    ),
                }
                return;
            };
            self.decode_lines([line1, line2].into_iter().chain(lines), 0, scratch, out);
            return;
        }
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
            let json = line.trim_start().starts_with('{');
            match self.parse(line, scratch, index) {
                Ok(Outcome::NotObject(kind)) if !json && self.text_lines() => {
                    let outcome = self
                        .decode_non_json(line, index)
                        .unwrap_or(Outcome::NotObject(kind));
                    out.push(outcome, index, span, "line");
                }
                Ok(outcome) => out.push(outcome, index, span, "line"),
                Err(e) => match (json, self.decode_non_json(line, index)) {
                    (false, Some(outcome)) => out.push(outcome, index, span, "line"),
                    (false, None) => out.bad.push(BadElement {
                        index: Some(index),
                        span,
                        reason: format!("{} ({TEXT_HINT})", line_error(&e, line_no)),
                    }),
                    (true, _) => out.bad.push(BadElement {
                        index: Some(index),
                        span,
                        reason: line_error(&e, line_no),
                    }),
                },
            }
            index += 1;
        }
    }

    /// Whether plain-text lines are records.
    fn text_lines(&self) -> bool {
        self.ctx.options.text_intake == TextIntake::Lines
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
    pub(super) fn parse<'de>(
        &self,
        src: &'de str,
        scratch: &mut Scratch<'de>,
        index: usize,
    ) -> Result<Outcome, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(src);
        let item = ItemSeed {
            scratch: &mut *scratch,
            options: self.ctx.options,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(self.finish(item, scratch, index))
    }

    pub(super) fn finish(&self, item: Item, scratch: &mut Scratch<'_>, index: usize) -> Outcome {
        match item {
            Item::Object => match self.build(scratch, index) {
                Ok((record, flags)) => Outcome::Record(record, flags),
                Err(reason) => Outcome::Bad(reason),
            },
            Item::Other(kind) => Outcome::NotObject(kind),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::decode::tests::*;

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
        assert_eq!(whole_bad(r#"{"level":"info"}"#), NO_MESSAGE);
    }
}
