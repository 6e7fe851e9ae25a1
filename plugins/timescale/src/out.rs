//! Stored records as JSON text, written straight from the database rows.
//!
//! This is the hot path of the HTTP API (a page of 100 records per request). The text is written
//! into one buffer from borrowed column values: no `String` per column, no `serde_json::Value`
//! tree, no re-parse of `attributes` (PostgreSQL's own `jsonb` output, valid JSON by
//! construction). Before, decoding each row into owned strings and serializing them cost the API
//! as much CPU as PostgreSQL spent answering the query (BENCHMARKS.md, "HTTP API").

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use logrelay_plugin_api::Level;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::TimescaleError;

/// The columns every record query selects, in the order [`write_record`] reads them.
pub const COLUMNS: &str = "id, ts, level, project, module, message, attributes::text";

/// Bytes a record of typical size takes, for the first allocation of a page.
const TYPICAL_RECORD: usize = 320;

/// The time and id of a row, as the keyset cursor needs them.
pub fn key(row: &PgRow) -> Result<(DateTime<Utc>, &str), TimescaleError> {
    Ok((
        row.try_get_unchecked(1).map_err(decode)?,
        row.try_get_unchecked(0).map_err(decode)?,
    ))
}

/// `{"records":[...],"next":...}`: the answer of `query`.
pub fn page(rows: &[PgRow], next: Option<&str>) -> Result<String, TimescaleError> {
    let mut out = String::with_capacity(64 + rows.len() * TYPICAL_RECORD);
    out.push_str(r#"{"records":["#);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_record(&mut out, row)?;
    }
    out.push_str(r#"],"next":"#);
    match next {
        Some(cursor) => push_json_str(&mut out, cursor),
        None => out.push_str("null"),
    }
    out.push('}');
    Ok(out)
}

/// One record: the answer of `get`.
pub fn record(row: &PgRow) -> Result<String, TimescaleError> {
    let mut out = String::with_capacity(TYPICAL_RECORD);
    write_record(&mut out, row)?;
    Ok(out)
}

/// Appends `{"id":..,"timestamp":..,"timestamp_ns":..,"level":..,"project":..,"module":..,
/// "message":..,"attributes":{..}}` for a row selected with [`COLUMNS`].
fn write_record(out: &mut String, row: &PgRow) -> Result<(), TimescaleError> {
    // Unchecked: the columns are this store's own, selected by `COLUMNS`; the values are still
    // decoded (and checked) by their types' decoders.
    let id: &str = row.try_get_unchecked(0).map_err(decode)?;
    let ts: DateTime<Utc> = row.try_get_unchecked(1).map_err(decode)?;
    let level: i16 = row.try_get_unchecked(2).map_err(decode)?;
    let project: &str = row.try_get_unchecked(3).map_err(decode)?;
    let module: &str = row.try_get_unchecked(4).map_err(decode)?;
    let message: &str = row.try_get_unchecked(5).map_err(decode)?;
    let attributes: &str = row.try_get_unchecked(6).map_err(decode)?;

    out.push_str(r#"{"id":"#);
    push_json_str(out, id);
    out.push_str(r#","timestamp":""#);
    push_rfc3339(out, ts);
    // Writing into a `String` cannot fail.
    let _ = write!(
        out,
        r#"","timestamp_ns":{},"level":"#,
        ts.timestamp_nanos_opt().unwrap_or(0)
    );
    push_json_str(out, &level_name(level));
    out.push_str(r#","project":"#);
    push_json_str(out, project);
    out.push_str(r#","module":"#);
    push_json_str(out, module);
    out.push_str(r#","message":"#);
    push_json_str(out, message);
    out.push_str(r#","attributes":"#);
    // PostgreSQL's text form of a jsonb value is JSON; an empty one cannot be stored (the column
    // is NOT NULL), but stay valid JSON whatever happens.
    if attributes.is_empty() {
        out.push_str("{}");
    } else {
        out.push_str(attributes);
    }
    out.push('}');
    Ok(())
}

/// A stored level's name (`error`), or its number for a level no name is known for.
pub fn level_name(level: i16) -> Cow<'static, str> {
    match u8::try_from(level) {
        Ok(l) if l <= Level::CRITICAL.0 => Cow::Borrowed(Level(l).name()),
        _ => Cow::Owned(level.to_string()),
    }
}

/// Appends `s` as a JSON string literal (quotes and escapes as serde_json writes them).
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte that needs escaping is ASCII, so `i` is on a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends the time as RFC 3339 in UTC with microseconds (`2024-05-01T12:00:00.250000Z`), as
/// chrono's `to_rfc3339_opts(Micros, true)` does, without its intermediate `String`.
fn push_rfc3339(out: &mut String, ts: DateTime<Utc>) {
    let (date, time) = (ts.date_naive(), ts.time());
    if !(0..=9999).contains(&date.year()) {
        // Outside four-digit years chrono adds a sign; leave that to it.
        out.push_str(&ts.to_rfc3339_opts(SecondsFormat::Micros, true));
        return;
    }
    // A leap second shows as second 59 with more than 1,000,000 µs, as chrono shows it.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        date.year(),
        date.month(),
        date.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.nanosecond() / 1_000
    );
}

fn decode(e: sqlx::Error) -> TimescaleError {
    TimescaleError::Db {
        what: "reading a record",
        source: e,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_serde_json_does() {
        for s in [
            "",
            "plain",
            "quote \" and backslash \\",
            "lines\nand\ttabs\r",
            "controls \u{0} \u{1} \u{8} \u{c} \u{1f} \u{7f}",
            "unicode é ✓ 🚀 and </script>",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "for {s:?}");
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn times_match_chrono() {
        for micros in [
            0_i64,
            1_714_564_800_250_000,
            1_717_021_596_750_001,
            -62_135_596_800_000_000, // 0001-01-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01
            -62_198_755_200_000_000, // year -1
        ] {
            let ts = DateTime::from_timestamp_micros(micros).unwrap();
            let mut out = String::new();
            push_rfc3339(&mut out, ts);
            assert_eq!(out, ts.to_rfc3339_opts(SecondsFormat::Micros, true));
        }
    }
}
