//! The timestamp field: a date and time, or a number of seconds, milliseconds, microseconds or
//! nanoseconds since the Unix epoch, read exactly into nanoseconds.

use std::ops::Range;

use super::fields::{FieldError, Quoted, json_str, kind};
use super::scan::Entry;

/// Why a timestamp could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeError {
    Invalid,
    OutOfRange,
}

pub(super) fn timestamp_field<'k>(entry: &'k Entry<'_>) -> Result<i64, FieldError<'k>> {
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
pub(super) fn scale(mantissa: u128, exp10: i64) -> Option<u128> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::decode::tests::*;

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
