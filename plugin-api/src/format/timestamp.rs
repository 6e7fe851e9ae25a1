//! Timestamps: a strftime format parsed once, and a per-batch cache of everything in it that
//! changes at most once a second.
//!
//! chrono formats a zoned time item by item, and a zoned `DelayedFormat` allocates the zone's
//! name on every call. Records of a batch mostly share their second, so the parts that depend
//! only on the second (date, time of day, zone) are formatted once per second and copied; only
//! the fraction of a second is formatted per record.

use std::ops::Range;

use chrono::format::{DelayedFormat, Fixed, Item, Numeric, Pad, StrftimeItems};
use chrono::{DateTime, Local, Utc};

use super::FormatError;
use super::spec::Timezone;

/// A run of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Items that depend on nothing finer than the second: cached per second.
    Stable(Range<usize>),
    /// A fraction of a second: the same in every zone, written per record without the zone.
    Fraction(Fraction),
    /// Anything else (`%+`): formatted per record, zoned.
    Zoned(usize),
}

/// How a fraction of a second is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fraction {
    /// `%.3f`, `%.6f`, `%.9f`: a dot and this many digits.
    Dot(u32),
    /// `%.f`: nothing for a whole second, else a dot and 3, 6 or 9 digits, as few as exact.
    DotAuto,
    /// `%f`: nine digits.
    Nanos,
    /// Another fraction item (`%3f`): formatted by chrono, from the item at this index.
    Chrono(usize),
}

enum Kind {
    Stable,
    Fraction(Fraction),
    Zoned,
}

fn kind(index: usize, item: &Item<'_>) -> Kind {
    match item {
        Item::Literal(_) | Item::Space(_) | Item::OwnedLiteral(_) | Item::OwnedSpace(_) => {
            Kind::Stable
        }
        Item::Numeric(Numeric::Nanosecond, Pad::Zero) => Kind::Fraction(Fraction::Nanos),
        Item::Numeric(Numeric::Nanosecond | Numeric::Internal(_), _) => {
            Kind::Fraction(Fraction::Chrono(index))
        }
        Item::Numeric(..) => Kind::Stable,
        Item::Fixed(Fixed::Nanosecond) => Kind::Fraction(Fraction::DotAuto),
        Item::Fixed(Fixed::Nanosecond3) => Kind::Fraction(Fraction::Dot(3)),
        Item::Fixed(Fixed::Nanosecond6) => Kind::Fraction(Fraction::Dot(6)),
        Item::Fixed(Fixed::Nanosecond9) => Kind::Fraction(Fraction::Dot(9)),
        Item::Fixed(Fixed::Internal(_)) => Kind::Fraction(Fraction::Chrono(index)),
        Item::Fixed(
            Fixed::ShortMonthName
            | Fixed::LongMonthName
            | Fixed::ShortWeekdayName
            | Fixed::LongWeekdayName
            | Fixed::LowerAmPm
            | Fixed::UpperAmPm
            | Fixed::TimezoneName
            | Fixed::TimezoneOffsetColon
            | Fixed::TimezoneOffsetDoubleColon
            | Fixed::TimezoneOffsetTripleColon
            | Fixed::TimezoneOffsetColonZ
            | Fixed::TimezoneOffset
            | Fixed::TimezoneOffsetZ
            | Fixed::RFC2822,
        ) => Kind::Stable,
        _ => Kind::Zoned,
    }
}

/// A checked timestamp format in a zone.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    items: Vec<Item<'static>>,
    segments: Vec<Segment>,
    timezone: Timezone,
}

/// What the stable segments of the format gave for one second. Lives for one batch.
#[derive(Debug, Default)]
pub struct TimestampCache {
    second: Option<i64>,
    text: String,
    /// Where each stable segment's text ends in `text`.
    ends: Vec<usize>,
}

impl TimestampFormat {
    /// Parses `format`, refusing what chrono cannot format. `option` names it in errors.
    pub fn new(
        format: &str,
        timezone: Timezone,
        option: &str,
    ) -> Result<TimestampFormat, FormatError> {
        let error = |reason: &str| {
            FormatError::new(option.to_owned(), format.to_owned(), reason.to_owned())
        };
        let items = StrftimeItems::new(format).parse_to_owned().map_err(|_| {
            error(
                "not a chrono strftime format (an unknown or unfinished `%` specifier); write \
                 `%%` for a percent sign",
            )
        })?;
        let mut segments: Vec<Segment> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match kind(i, item) {
                Kind::Stable => match segments.last_mut() {
                    Some(Segment::Stable(run)) => run.end = i + 1,
                    _ => segments.push(Segment::Stable(i..i + 1)),
                },
                Kind::Fraction(fraction) => segments.push(Segment::Fraction(fraction)),
                Kind::Zoned => segments.push(Segment::Zoned(i)),
            }
        }
        let format = TimestampFormat {
            items,
            segments,
            timezone,
        };
        // Some items parse but cannot format a zoned time (`%#z`): try once.
        let mut probe = String::new();
        format
            .try_write(
                1_700_000_000_123_456_789,
                &mut TimestampCache::default(),
                &mut probe,
            )
            .map_err(|_| error("chrono cannot format a timestamp with it"))?;
        Ok(format)
    }

    /// Appends the timestamp `timestamp_ns` (nanoseconds since the epoch).
    pub fn write(&self, timestamp_ns: i64, cache: &mut TimestampCache, out: &mut String) {
        // Every item was tried at build time, and writing to a String cannot fail.
        let _ = self.try_write(timestamp_ns, cache, out);
    }

    fn try_write(
        &self,
        timestamp_ns: i64,
        cache: &mut TimestampCache,
        out: &mut String,
    ) -> std::fmt::Result {
        let utc = DateTime::<Utc>::from_timestamp_nanos(timestamp_ns);
        let second = timestamp_ns.div_euclid(1_000_000_000);
        if cache.second != Some(second) {
            cache.second = None;
            cache.text.clear();
            cache.ends.clear();
            for segment in &self.segments {
                if let Segment::Stable(run) = segment {
                    self.write_zoned(utc, &self.items[run.clone()], &mut cache.text)?;
                    cache.ends.push(cache.text.len());
                }
            }
            cache.second = Some(second);
        }
        let nanos = u32::try_from(timestamp_ns.rem_euclid(1_000_000_000)).unwrap_or(0);
        let mut ends = cache.ends.iter();
        let mut start = 0;
        for segment in &self.segments {
            match segment {
                Segment::Stable(_) => {
                    let end = ends.next().copied().unwrap_or(start);
                    out.push_str(&cache.text[start..end]);
                    start = end;
                }
                Segment::Fraction(Fraction::Dot(digits)) => {
                    out.push('.');
                    push_digits(out, nanos / 10u32.pow(9 - digits), *digits);
                }
                Segment::Fraction(Fraction::DotAuto) => {
                    if nanos % 1_000_000 == 0 {
                        if nanos != 0 {
                            out.push('.');
                            push_digits(out, nanos / 1_000_000, 3);
                        }
                    } else if nanos % 1_000 == 0 {
                        out.push('.');
                        push_digits(out, nanos / 1_000, 6);
                    } else {
                        out.push('.');
                        push_digits(out, nanos, 9);
                    }
                }
                Segment::Fraction(Fraction::Nanos) => push_digits(out, nanos, 9),
                Segment::Fraction(Fraction::Chrono(i)) => {
                    let naive = utc.naive_utc();
                    DelayedFormat::new(
                        Some(naive.date()),
                        Some(naive.time()),
                        self.items[*i..=*i].iter(),
                    )
                    .write_to(out)?;
                }
                Segment::Zoned(i) => self.write_zoned(utc, &self.items[*i..=*i], out)?,
            }
        }
        Ok(())
    }

    fn write_zoned(
        &self,
        utc: DateTime<Utc>,
        items: &[Item<'static>],
        out: &mut String,
    ) -> std::fmt::Result {
        match self.timezone {
            Timezone::Utc => utc.format_with_items(items.iter()).write_to(out),
            Timezone::Local => utc
                .with_timezone(&Local)
                .format_with_items(items.iter())
                .write_to(out),
        }
    }
}

/// Appends `value` as exactly `width` decimal digits (`width` at most 9, `value` below
/// `10^width`).
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut digits = [b'0'; 9];
    let mut value = value;
    for d in digits[..width as usize].iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
    for &d in &digits[..width as usize] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [&str; 9] = [
        "%.f|%f|%-f|%_f",
        "%Y-%m-%dT%H:%M:%S%.3f%:z",
        "%H:%M:%S%.f",
        "%s.%9f %Z",
        "%+",
        "%a %b %e %T %Y",
        "%3f|%6f|%.9f|%f",
        "%c %::z",
        "",
    ];

    #[test]
    fn cached_output_matches_chrono() {
        let stamps = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_700_000_000_123_456_789,
            1_700_000_000_999_000_000,
            1_700_000_001_000_000_001,
            -1,
            -1_500_000_000,
            i64::MAX,
            i64::MIN,
        ];
        for zone in [Timezone::Utc, Timezone::Local] {
            for format in FORMATS {
                let f = TimestampFormat::new(format, zone, "timestamp_format").expect(format);
                let mut cache = TimestampCache::default();
                for ns in stamps {
                    let utc = DateTime::<Utc>::from_timestamp_nanos(ns);
                    let expected = match zone {
                        Timezone::Utc => utc.format(format).to_string(),
                        Timezone::Local => utc.with_timezone(&Local).format(format).to_string(),
                    };
                    let mut out = String::new();
                    f.write(ns, &mut cache, &mut out);
                    assert_eq!(out, expected, "{format} {ns} {zone:?}");
                }
            }
        }
    }

    #[test]
    fn the_fraction_is_the_only_live_part_of_the_default() {
        let f = TimestampFormat::new("%Y-%m-%dT%H:%M:%S%.3f%:z", Timezone::Utc, "x").expect("ok");
        assert_eq!(
            f.segments,
            vec![
                Segment::Stable(0..11),
                Segment::Fraction(Fraction::Dot(3)),
                Segment::Stable(12..13)
            ]
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        for bad in ["%Q", "%Y-%", "%#z"] {
            let e = TimestampFormat::new(bad, Timezone::Utc, "timestamp_format").expect_err(bad);
            assert_eq!((e.option(), e.value()), ("timestamp_format", bad));
        }
    }
}
