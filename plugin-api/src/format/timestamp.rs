//! Timestamps: a strftime format parsed once, and a per-batch cache of everything in it that
//! changes at most once a second.
//!
//! chrono formats a zoned time item by item, and a zoned `DelayedFormat` allocates the zone's
//! name on every call. Records of a batch mostly share their second, so the parts that depend
//! only on the second (date, time of day, zone) are formatted once per second and copied; only
//! the fraction of a second is formatted per record.

use std::ops::Range;

use chrono::format::{DelayedFormat, Fixed, Item, Numeric, StrftimeItems};
use chrono::{DateTime, Local, Utc};

use super::FormatError;
use super::spec::Timezone;

/// A run of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Items that depend on nothing finer than the second: cached per second.
    Stable(Range<usize>),
    /// A fraction of a second: the same in every zone, formatted per record without the zone.
    Fraction(usize),
    /// Anything else (`%+`): formatted per record, zoned.
    Zoned(usize),
}

enum Kind {
    Stable,
    Fraction,
    Zoned,
}

fn kind(item: &Item<'_>) -> Kind {
    match item {
        Item::Literal(_) | Item::Space(_) | Item::OwnedLiteral(_) | Item::OwnedSpace(_) => {
            Kind::Stable
        }
        Item::Numeric(Numeric::Nanosecond | Numeric::Internal(_), _) => Kind::Fraction,
        Item::Numeric(..) => Kind::Stable,
        Item::Fixed(
            Fixed::Nanosecond
            | Fixed::Nanosecond3
            | Fixed::Nanosecond6
            | Fixed::Nanosecond9
            | Fixed::Internal(_),
        ) => Kind::Fraction,
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
            match kind(item) {
                Kind::Stable => match segments.last_mut() {
                    Some(Segment::Stable(run)) => run.end = i + 1,
                    _ => segments.push(Segment::Stable(i..i + 1)),
                },
                Kind::Fraction => segments.push(Segment::Fraction(i)),
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
        let mut ends = cache.ends.iter();
        let mut start = 0;
        for segment in &self.segments {
            match segment {
                Segment::Stable(_) => {
                    let end = ends.next().copied().unwrap_or(start);
                    out.push_str(&cache.text[start..end]);
                    start = end;
                }
                Segment::Fraction(i) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [&str; 8] = [
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
                Segment::Fraction(11),
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
