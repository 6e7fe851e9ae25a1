//! File names: the `file_name` pattern, what its placeholders become, which names in the
//! directory are ours, and the rotation periods.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::RotateInterval;

/// One piece of a name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Project,
    Module,
    Date,
    Hour,
    Instance,
}

/// A checked `file_name` pattern: literal text with `{project}`, `{module}`, `{date}`
/// (`YYYY-MM-DD`), `{hour}` (`HH`) and `{instance}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    segments: Vec<Segment>,
    by_record: bool,
}

/// What a name in the directory is, as far as the connector is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A file records are (or were last) written to: the pattern's own name.
    Current,
    /// A rotated file, not compressed: `<current>.<n>`.
    Rotated,
    /// A compressed rotated file: `<current>.<n>.gz` or `.zst`.
    Archive,
}

impl FileKind {
    /// The lowercase name used in listings.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Current => "current",
            FileKind::Rotated => "rotated",
            FileKind::Archive => "archive",
        }
    }
}

/// The values a pattern is rendered with.
pub struct NameValues<'a> {
    /// The record's project.
    pub project: &'a str,
    /// The record's module.
    pub module: &'a str,
    /// `YYYY-MM-DD` in the rotation time zone.
    pub date: &'a str,
    /// `HH` in the rotation time zone.
    pub hour: &'a str,
    /// The instance name.
    pub instance: &'a str,
}

impl NamePattern {
    /// Parses and checks a pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<NamePattern, String> {
        if pattern.is_empty() {
            return Err("the pattern is empty".to_owned());
        }
        if pattern.contains(['/', '\\', '\0']) {
            return Err(
                "a file name cannot hold `/`, `\\` or NUL: files all go in `directory`".to_owned(),
            );
        }
        if pattern.starts_with('.') {
            return Err("names starting with `.` are kept for temporary files".to_owned());
        }
        let mut segments = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| "a `{` is not closed by `}`".to_owned())?;
                    segments.push(match &rest[1..end] {
                        "project" => Segment::Project,
                        "module" => Segment::Module,
                        "date" => Segment::Date,
                        "hour" => Segment::Hour,
                        "instance" => Segment::Instance,
                        other => {
                            return Err(format!(
                                "unknown placeholder `{{{other}}}`; expected {{project}}, {{module}}, {{date}}, {{hour}} or {{instance}}"
                            ));
                        }
                    });
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if literal.contains('}') {
                        return Err("a `}` without its `{`".to_owned());
                    }
                    segments.push(Segment::Literal(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        for pair in segments.windows(2) {
            if !matches!(pair[0], Segment::Literal(_)) && !matches!(pair[1], Segment::Literal(_)) {
                return Err(
                    "two placeholders must be kept apart by some text (`{project}-{module}`)"
                        .to_owned(),
                );
            }
        }
        let by_record = segments
            .iter()
            .any(|s| matches!(s, Segment::Project | Segment::Module));
        let pattern = NamePattern {
            segments,
            by_record,
        };
        let sample = pattern.render(&NameValues {
            project: "p",
            module: "m",
            date: "2024-01-31",
            hour: "00",
            instance: "i",
        });
        let last = sample.rsplit('.').next().unwrap_or("");
        let looks_finished = [".gz", ".zst", ".tmp"].iter().any(|s| sample.ends_with(s))
            || (sample.contains('.')
                && !last.is_empty()
                && last.bytes().all(|b| b.is_ascii_digit()));
        if looks_finished || pattern.classify(&sample) != Some(FileKind::Current) {
            return Err(
                "names must not end like rotated files or archives (`.1`, `.gz`, `.zst`, `.tmp`)"
                    .to_owned(),
            );
        }
        Ok(pattern)
    }

    /// Whether the name depends on the record (`{project}` or `{module}`).
    pub fn by_record(&self) -> bool {
        self.by_record
    }

    /// The file name for these values; project, module and instance are made safe first
    /// (characters other than ASCII letters, digits, `-` and `_` become `_`).
    pub fn render(&self, values: &NameValues<'_>) -> String {
        let mut out = String::with_capacity(64);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Project => push_safe(&mut out, values.project),
                Segment::Module => push_safe(&mut out, values.module),
                Segment::Instance => push_safe(&mut out, values.instance),
                Segment::Date => out.push_str(values.date),
                Segment::Hour => out.push_str(values.hour),
            }
        }
        out
    }

    /// What `name` is to the connector, or `None` when it is not one of its files.
    pub fn classify(&self, name: &str) -> Option<FileKind> {
        if name.starts_with('.') {
            return None;
        }
        if self.matches(name) {
            return Some(FileKind::Current);
        }
        let (base, compressed) = match name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
        {
            Some(base) => (base, true),
            None => (name, false),
        };
        let (current, seq) = base.rsplit_once('.')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || !self.matches(current) {
            return None;
        }
        Some(if compressed {
            FileKind::Archive
        } else {
            FileKind::Rotated
        })
    }

    /// The sequence number of a rotated file or archive of the current file `current`.
    pub fn sequence_of(current: &str, name: &str) -> Option<u64> {
        let name = name.strip_prefix('.').unwrap_or(name);
        let rest = name.strip_prefix(current)?.strip_prefix('.')?;
        let digits = rest.split('.').next()?;
        digits.parse().ok()
    }

    fn matches(&self, name: &str) -> bool {
        match_segments(&self.segments, name)
    }
}

fn match_segments(segments: &[Segment], name: &str) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return name.is_empty();
    };
    match first {
        Segment::Literal(text) => name
            .strip_prefix(text.as_str())
            .is_some_and(|tail| match_segments(rest, tail)),
        Segment::Date => {
            name.len() >= 10
                && name.is_char_boundary(10)
                && name[..10].bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
                && match_segments(rest, &name[10..])
        }
        Segment::Hour => {
            name.len() >= 2
                && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && match_segments(rest, &name[2..])
        }
        Segment::Project | Segment::Module | Segment::Instance => {
            let run = name.bytes().take_while(|&b| is_safe(b)).count();
            (1..=run).any(|n| match_segments(rest, &name[n..]))
        }
    }
}

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn push_safe(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    for (i, c) in value.chars().enumerate() {
        if i >= 64 {
            break;
        }
        out.push(if c.is_ascii() && is_safe(c as u8) {
            c
        } else {
            '_'
        });
    }
}

/// A rotation period: files written in one period are rotated when the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    local: i64,
    offset: i32,
}

/// The time as the pattern and the rotation see it, in the configured zone.
pub struct LocalTime {
    /// The period `now` falls in.
    pub period: Period,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `HH`.
    pub hour: String,
}

/// The period and date parts of `now` in `tz`.
pub fn local_time(now: DateTime<Utc>, tz: Tz, interval: RotateInterval) -> LocalTime {
    let local = tz.from_utc_datetime(&now.naive_utc());
    let offset = local.offset().fix().local_minus_utc();
    let days = i64::from(local.num_days_from_ce());
    let period = match interval {
        RotateInterval::Hourly => Period {
            local: days * 24 + i64::from(local.hour()),
            offset,
        },
        RotateInterval::Daily => Period {
            local: days,
            offset: 0,
        },
        RotateInterval::Never => Period {
            local: 0,
            offset: 0,
        },
    };
    let mut date = String::with_capacity(10);
    let _ = write!(
        date,
        "{:04}-{:02}-{:02}",
        local.year(),
        local.month(),
        local.day()
    );
    LocalTime {
        period,
        date,
        hour: format!("{:02}", local.hour()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(project: &'a str, module: &'a str) -> NameValues<'a> {
        NameValues {
            project,
            module,
            date: "2024-05-01",
            hour: "13",
            instance: "files",
        }
    }

    #[test]
    fn renders_and_classifies() {
        let p = NamePattern::parse("{project}-{module}.{date}.log").expect("valid");
        assert!(p.by_record());
        let name = p.render(&values("shop/../x", ""));
        assert_eq!(name, "shop____x-_.2024-05-01.log");
        assert_eq!(p.classify(&name), Some(FileKind::Current));
        assert_eq!(p.classify(&format!("{name}.3")), Some(FileKind::Rotated));
        assert_eq!(
            p.classify(&format!("{name}.12.gz")),
            Some(FileKind::Archive)
        );
        assert_eq!(
            p.classify(&format!("{name}.12.zst")),
            Some(FileKind::Archive)
        );
        assert_eq!(p.classify(&format!(".{name}.1.gz.tmp")), None);
        assert_eq!(p.classify("notes.txt"), None);
        assert_eq!(p.classify("shop-x.2024-5-01.log"), None);
        assert_eq!(
            NamePattern::sequence_of(&name, &format!("{name}.12.gz")),
            Some(12)
        );
        assert_eq!(
            NamePattern::sequence_of(&name, &format!(".{name}.7.gz.tmp")),
            Some(7)
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        for (bad, why) in [
            ("", "empty"),
            ("../x.log", "`/`"),
            ("logs/{project}.log", "`/`"),
            (".hidden", "`.`"),
            ("{project}{module}.log", "apart"),
            ("{nope}.log", "unknown placeholder"),
            ("x.log.gz", "rotated"),
            ("x.1", "rotated"),
            ("x{.log", "not closed"),
        ] {
            let e = NamePattern::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(
            !NamePattern::parse("logrelay.log")
                .expect("valid")
                .by_record()
        );
    }

    #[test]
    fn periods_follow_the_zone() {
        let tz: Tz = "Europe/Paris".parse().expect("zone");
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let a = local_time(at("2024-05-01T21:59:00Z"), tz, RotateInterval::Daily);
        let b = local_time(at("2024-05-01T22:00:00Z"), tz, RotateInterval::Daily);
        assert_eq!(a.date, "2024-05-01");
        assert_eq!(b.date, "2024-05-02");
        assert_ne!(a.period, b.period);
        let c = local_time(at("2024-05-01T22:59:59Z"), tz, RotateInterval::Hourly);
        let d = local_time(at("2024-05-01T22:00:00Z"), tz, RotateInterval::Hourly);
        assert_eq!(c.period, d.period);
        assert_eq!(c.hour, "00");
    }
}
