//! Per-record reasons in a [`PluginError`]: the convention both sides of the boundary follow,
//! written ([`PluginError::with_refused`]) and read ([`PluginError::record_reasons`]) only here.
//!
//! `PluginError` is frozen for 1.x: it has one `message` and the refused indices in
//! `bad_records`, and a field added for the reasons would change its layout, so abi_stable would
//! refuse every plugin built against 1.0. The reasons therefore travel inside the message:
//!
//! ```text
//! 3 of 40 records refused (the others are stored)
//! record 3: `project` contains a NUL byte, which PostgreSQL text cannot hold
//! records 7, 12: `message` contains a NUL byte, which PostgreSQL text cannot hold
//! ```
//!
//! - The first line is the summary, whatever it says. It is the reason of every refused record
//!   without a line of its own.
//! - Each further line is `record <index>: <reason>`, or `records <index>, <index>, ...: <reason>`
//!   for several records with the same reason; indices are into the call's records, as in
//!   `bad_records`, in decimal.
//! - Every reason is one line: line breaks in it (`\n`, `\r`, vertical tab, form feed, U+0085,
//!   U+2028, U+2029) become one space. A reason is cut at [`MAX_REASON_BYTES`] (ending in `…`),
//!   and lines stop before the message would pass [`MAX_MESSAGE_BYTES`]: the records left out
//!   get the summary, which then says how many were left out.
//! - `bad_records` still says which records are refused; a line only gives a reason. The host
//!   reads lines only for indices in `bad_records`; the first line for an index wins.
//! - When reading, every further line not of that form also belongs to the summary (joined with
//!   spaces). A message without record lines, such as an older plugin's, is its own summary,
//!   as before.
//!
//! A host built before this convention puts the whole message into the reason of every refused
//! record: each dead letter then lists the reasons of all the call's refused records by index,
//! which still tells what was wrong with each one. That is why the message's size is bounded.
//!
//! ```
//! use logrelay_plugin_api::PluginError;
//!
//! let err = PluginError::permanent("2 of 5 records refused")
//!     .with_refused([(1, "`project` is empty"), (3, "not\nJSON")]);
//! assert_eq!(err.bad_records.as_slice(), &[1, 3]);
//! assert_eq!(
//!     err.message.as_str(),
//!     "2 of 5 records refused\nrecord 1: `project` is empty\nrecord 3: not JSON"
//! );
//! let reasons = err.record_reasons();
//! assert_eq!(reasons.get(3), "not JSON");
//! assert_eq!(reasons.get(4), "2 of 5 records refused");
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::PluginError;

/// A record's reason is cut to at most this many bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// The message with its record lines stays within this many bytes (a longer summary is kept
/// whole, with no record lines).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// What a record's reason reads when the message gives it none (an empty message).
pub const NO_REASON: &str = "no reason given";

/// Room kept for the note the summary gets when lines are left out.
const NOTE_BYTES: usize = 64;

/// Whether `c` breaks a line, for the convention's purposes.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// `text` on one line: each run of line breaks (see the module docs) becomes one space.
/// Borrowed when there is none.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(is_line_break) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_break = false;
    for c in text.chars() {
        if is_line_break(c) {
            if !in_break {
                out.push(' ');
            }
            in_break = true;
        } else {
            out.push(c);
            in_break = false;
        }
    }
    Cow::Owned(out)
}

/// A reason as it goes into a line: one line, trimmed, at most [`MAX_REASON_BYTES`].
fn reason_line(reason: &str) -> String {
    let flat = one_line(reason);
    let flat = flat.trim();
    if flat.len() <= MAX_REASON_BYTES {
        return flat.to_owned();
    }
    let cut = flat.floor_char_boundary(MAX_REASON_BYTES - '…'.len_utf8());
    format!("{}…", &flat[..cut])
}

/// Writes `summary` and the reasons of `refused` as the convention says; returns the message
/// and the refused indices (each once, in the order given).
pub(crate) fn write<R: AsRef<str>>(
    summary: &str,
    refused: impl IntoIterator<Item = (u32, R)>,
) -> (String, Vec<u32>) {
    let mut indices = Vec::new();
    let mut seen = HashSet::new();
    // Records with the same reason share a line; lines in the order of their first record.
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for (index, reason) in refused {
        if !seen.insert(index) {
            continue;
        }
        indices.push(index);
        let reason = reason_line(reason.as_ref());
        if reason.is_empty() {
            continue;
        }
        match by_reason.get(&reason).and_then(|&g| groups.get_mut(g)) {
            Some((_, group)) => group.push(index),
            None => {
                by_reason.insert(reason.clone(), groups.len());
                groups.push((reason, vec![index]));
            }
        }
    }
    let summary = one_line(summary);
    let default_summary;
    let summary = match summary.trim() {
        "" => {
            default_summary = format!("{} record(s) refused", indices.len());
            default_summary.as_str()
        }
        text => text,
    };
    let mut budget = MAX_MESSAGE_BYTES.saturating_sub(summary.len() + NOTE_BYTES);
    let mut lines = String::new();
    let mut left_out = 0usize;
    for (reason, group) in &groups {
        // "\nrecords " + at least one index + ": " + reason
        let fixed = "\nrecords ".len() + ": ".len() + reason.len();
        let mut line = String::new();
        let mut written = 0usize;
        for index in group {
            let digits = decimal_len(*index) + if written == 0 { 0 } else { ", ".len() };
            if fixed + line.len() + digits > budget {
                break;
            }
            if written > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, "{index}");
            written += 1;
        }
        left_out += group.len() - written;
        if written == 0 {
            continue;
        }
        let head = if written == 1 { "record" } else { "records" };
        let before = lines.len();
        let _ = write!(lines, "\n{head} {line}: {reason}");
        budget = budget.saturating_sub(lines.len() - before);
    }
    let mut message = String::with_capacity(summary.len() + NOTE_BYTES + lines.len());
    message.push_str(summary);
    if left_out > 0 {
        let _ = write!(
            message,
            " ({left_out} record reason(s) left out of this message)"
        );
    }
    message.push_str(&lines);
    (message, indices)
}

/// The number of decimal digits of `n`.
fn decimal_len(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The per-record reasons of a [`PluginError`], read from its message (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordReasons<'a> {
    summary: Cow<'a, str>,
    /// Sorted by index, one entry per index (the first line for it).
    reasons: Vec<(u32, Cow<'a, str>)>,
}

impl<'a> RecordReasons<'a> {
    /// Reads a message written as the convention says; any other message is all summary.
    pub fn parse(message: &'a str) -> RecordReasons<'a> {
        let mut summary: Vec<Cow<'a, str>> = Vec::new();
        let mut reasons: Vec<(u32, Cow<'a, str>)> = Vec::new();
        for (n, line) in message.split('\n').enumerate() {
            match record_line(line).filter(|_| n > 0) {
                Some((list, reason)) => {
                    let reason = trimmed(one_line(reason));
                    for index in list.split(',') {
                        if let Ok(index) = index.trim().parse::<u32>() {
                            reasons.push((index, reason.clone()));
                        }
                    }
                }
                None => {
                    let part = trimmed(one_line(line));
                    if !part.is_empty() {
                        summary.push(part);
                    }
                }
            }
        }
        // Stable: of several lines for one index, the first stays.
        reasons.sort_by_key(|(i, _)| *i);
        reasons.dedup_by_key(|(i, _)| *i);
        let summary = match summary.len() {
            0 => Cow::Borrowed(NO_REASON),
            1 => summary.swap_remove(0),
            _ => Cow::Owned(summary.join(" ")),
        };
        RecordReasons { summary, reasons }
    }

    /// The summary: the reason of records without a line of their own. One line, never empty.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The reason of the record at `index` (into the call's records): its own line, or the
    /// summary. One line.
    pub fn get(&self, index: u32) -> &str {
        self.own(index).unwrap_or(&self.summary)
    }

    /// The record's own reason, if the message has a line for it.
    pub fn own(&self, index: u32) -> Option<&str> {
        self.reasons
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .and_then(|pos| self.reasons.get(pos))
            .map(|(_, reason)| reason.as_ref())
    }

    /// Every record the message has a line for, by index, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.reasons.iter().map(|(i, r)| (*i, r.as_ref()))
    }
}

/// `line` as `record(s) <indices>: <reason>`: the index list and the reason, if it is one.
fn record_line(line: &str) -> Option<(&str, &str)> {
    let rest = line
        .strip_prefix("records ")
        .or_else(|| line.strip_prefix("record "))?;
    let (list, reason) = rest.split_once(": ")?;
    let valid = !list.is_empty()
        && list
            .split(',')
            .all(|i| !i.trim().is_empty() && i.trim().bytes().all(|b| b.is_ascii_digit()));
    valid.then_some((list, reason))
}

/// `text` without surrounding whitespace, borrowed where it was.
fn trimmed(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

impl PluginError {
    /// Names the refused records of the batch (by index), each with its own reason: fills
    /// `bad_records` and appends one line per reason to the message, which becomes their
    /// summary (see [`crate::refusal`]). Replaces earlier `bad_records`; call it once.
    ///
    /// ```
    /// use logrelay_plugin_api::PluginError;
    ///
    /// let refused = vec![(0, "`project` is empty".to_owned()), (2, "not JSON".to_owned())];
    /// let err = PluginError::permanent(format!("{} of 3 records refused", refused.len()))
    ///     .with_refused(refused);
    /// assert_eq!(err.bad_records.as_slice(), &[0, 2]);
    /// assert_eq!(err.reason_for(2), "not JSON");
    /// ```
    pub fn with_refused<R: AsRef<str>>(
        mut self,
        refused: impl IntoIterator<Item = (u32, R)>,
    ) -> PluginError {
        let (message, indices) = write(self.message.as_str(), refused);
        self.message = message.into();
        self.bad_records = indices.into();
        self
    }

    /// The reason of each refused record, read from the message (see [`crate::refusal`]).
    /// Parses the message on each call: to look up many records, keep the result.
    pub fn record_reasons(&self) -> RecordReasons<'_> {
        RecordReasons::parse(self.message.as_str())
    }

    /// The reason of the record at `index`: its own line in the message, or the summary.
    pub fn reason_for(&self, index: u32) -> String {
        self.record_reasons().get(index).to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_reason_each() {
        let err = PluginError::permanent("3 of 9 records refused").with_refused([
            (2, "`project` contains a NUL byte".to_owned()),
            (
                5,
                "refused by PostgreSQL: index row size 3216 exceeds maximum".to_owned(),
            ),
            (7, "`message` contains a NUL byte".to_owned()),
        ]);
        assert_eq!(err.bad_records.as_slice(), &[2, 5, 7]);
        let r = err.record_reasons();
        assert_eq!(r.summary(), "3 of 9 records refused");
        assert_eq!(r.get(2), "`project` contains a NUL byte");
        assert_eq!(
            r.get(5),
            "refused by PostgreSQL: index row size 3216 exceeds maximum"
        );
        assert_eq!(r.get(7), "`message` contains a NUL byte");
        assert_eq!(r.iter().count(), 3);
        assert_eq!(err.reason_for(7), "`message` contains a NUL byte");
    }

    #[test]
    fn reasons_with_line_breaks_are_flattened() {
        let err = PluginError::permanent("two\nlines of summary").with_refused([
            (0, "first\nsecond\r\nthird"),
            (1, "a\u{2028}b\u{85}c\rd"),
            (2, "  \n  padded\n  "),
            (3, "record 9: not an injected line"),
        ]);
        assert_eq!(
            err.message.as_str(),
            "two lines of summary\nrecord 0: first second third\nrecord 1: a b c d\n\
             record 2: padded\nrecord 3: record 9: not an injected line"
        );
        let r = err.record_reasons();
        assert_eq!(r.summary(), "two lines of summary");
        assert_eq!(r.get(0), "first second third");
        assert_eq!(r.get(1), "a b c d");
        assert_eq!(r.get(2), "padded");
        assert_eq!(r.get(3), "record 9: not an injected line");
        assert_eq!(r.own(9), None);
        for i in 0..4 {
            assert!(!r.get(i).contains(is_line_break), "{:?}", r.get(i));
        }
    }

    #[test]
    fn same_reasons_share_a_line_and_indices_without_one_get_the_summary() {
        let err = PluginError::permanent("4 refused").with_refused([
            (1, "too long"),
            (4, "NUL"),
            (6, "too long"),
            (6, "counted once"),
            (8, ""),
        ]);
        assert_eq!(err.bad_records.as_slice(), &[1, 4, 6, 8]);
        assert_eq!(
            err.message.as_str(),
            "4 refused\nrecords 1, 6: too long\nrecord 4: NUL"
        );
        let r = err.record_reasons();
        assert_eq!(r.get(1), "too long");
        assert_eq!(r.get(6), "too long");
        assert_eq!(r.get(4), "NUL");
        // Refused without a reason of its own, or not named at all: the summary.
        assert_eq!(r.get(8), "4 refused");
        assert_eq!(r.own(8), None);
        assert_eq!(r.get(100), "4 refused");
    }

    #[test]
    fn an_old_style_message_is_its_own_summary() {
        let err =
            PluginError::permanent("2 records refused; the first: bad").with_bad_records([0, 3]);
        let r = err.record_reasons();
        assert_eq!(r.summary(), "2 records refused; the first: bad");
        assert_eq!(r.get(0), "2 records refused; the first: bad");
        assert_eq!(r.get(3), "2 records refused; the first: bad");
        assert_eq!(r.iter().count(), 0);
        // Several lines without the form: all summary, on one line.
        let r = RecordReasons::parse("cannot write\r\ncaused by: disk full\nrecords: 3");
        assert_eq!(r.summary(), "cannot write caused by: disk full records: 3");
        assert_eq!(r.get(3), r.summary());
        assert_eq!(RecordReasons::parse("").summary(), NO_REASON);
        // The first line is the summary even when it looks like a record line.
        let r = RecordReasons::parse("record 1: x\nrecord 2: y");
        assert_eq!((r.get(1), r.get(2)), ("record 1: x", "y"));
        // An empty summary is given one by the builder.
        let err = PluginError::permanent("").with_refused([(4, "bad")]);
        assert_eq!(err.message.as_str(), "1 record(s) refused\nrecord 4: bad");
    }

    #[test]
    fn lines_written_by_hand_are_read_leniently() {
        let r = RecordReasons::parse(
            "summary\nrecord 2: a\nrecords 4,5 , 6: b\nrecord x: not a line\nrecord 2: second\n\
             record 99999999999: out of range\nrecords : empty list",
        );
        assert_eq!(r.get(2), "a", "the first line for an index wins");
        assert_eq!(r.get(4), "b");
        assert_eq!(r.get(5), "b");
        assert_eq!(r.get(6), "b");
        assert_eq!(
            r.summary(),
            "summary record x: not a line records : empty list"
        );
        assert_eq!(r.get(7), r.summary());
    }

    #[test]
    fn sizes_are_bounded_and_left_out_records_get_the_summary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let err = PluginError::permanent("1 refused").with_refused([(0, long.as_str())]);
        let reason = err.reason_for(0);
        assert!(reason.len() <= MAX_REASON_BYTES, "{}", reason.len());
        assert!(reason.ends_with('…'));

        // Distinct reasons for 5000 records: the message stops at the bound.
        let many: Vec<(u32, String)> = (0..5000)
            .map(|i| (i, format!("reason number {i} for this record")))
            .collect();
        let err = PluginError::permanent("5000 refused").with_refused(many);
        assert!(
            err.message.len() <= MAX_MESSAGE_BYTES,
            "{}",
            err.message.len()
        );
        assert_eq!(err.bad_records.len(), 5000);
        let r = err.record_reasons();
        let given = r.iter().count();
        assert!(given > 100 && given < 5000, "{given}");
        assert_eq!(r.get(0), "reason number 0 for this record");
        assert!(r.get(4999).starts_with("5000 refused ("), "{}", r.get(4999));
        assert!(
            r.summary()
                .contains(&format!("{} record reason(s) left out", 5000 - given)),
            "{}",
            r.summary()
        );

        // One reason for 5000 records: as many indices as fit share the line.
        let err =
            PluginError::permanent("5000 refused").with_refused((0..5000).map(|i| (i, "same")));
        assert!(
            err.message.len() <= MAX_MESSAGE_BYTES,
            "{}",
            err.message.len()
        );
        let r = err.record_reasons();
        assert_eq!(r.get(0), "same");
        assert!(r.iter().count() > 2000, "{}", r.iter().count());
    }

    #[test]
    fn decimal_lengths() {
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(u32::MAX), 10);
    }
}
