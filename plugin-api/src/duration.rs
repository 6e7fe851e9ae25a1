//! The one duration grammar of logrelay's config values, and serde helpers for config fields.
//!
//! # Grammar
//!
//! A duration is one or more terms, each a whole number followed by its unit, optionally
//! separated by spaces: `30s`, `15m`, `1h30m`, `1h 30m`, `7d`, `2w`, `500ms`, `2 weeks`.
//! Letters may be upper or lower case; spaces around the value are ignored.
//!
//! | unit | also written |
//! |------|--------------|
//! | `ms` | `msec`, `millis` |
//! | `s` | `sec`, `secs`, `second`, `seconds` |
//! | `m` | `min`, `mins`, `minute`, `minutes` |
//! | `h` | `hr`, `hrs`, `hour`, `hours` |
//! | `d` | `day`, `days` |
//! | `w` | `week`, `weeks` |
//!
//! Every term needs a unit: a bare number such as `30` is refused, because seconds, minutes
//! and days are all plausible readings. The one exception is `0`, which is zero in any unit.
//! Options that may be switched off ([`parse_optional_duration`]) also take `off`, `none`,
//! `never` or an empty string, and read a zero duration as off.
//!
//! Options whose name carries a unit (`fsync_interval_ms`, `poll_timeout_secs`) take a plain
//! number in that unit instead, and are not parsed here.
//!
//! In a config struct:
//!
//! ```
//! use std::time::Duration;
//!
//! use logrelay_plugin_api::{duration, parse_config};
//! use serde::Deserialize;
//!
//! /// Settings of a connector that cleans up now and then.
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     /// How often to clean up (a duration). Default: `1h`.
//!     #[serde(default = "default_interval", deserialize_with = "duration::deserialize")]
//!     pub interval: Duration,
//!     /// Delete entries older than this (a duration or `off`). Default: `off`.
//!     #[serde(default, deserialize_with = "duration::deserialize_optional")]
//!     pub max_age: Option<Duration>,
//! }
//!
//! const fn default_interval() -> Duration {
//!     Duration::from_secs(3600)
//! }
//!
//! let c: Config = parse_config(r#"{"interval": "1h30m", "max_age": "2w"}"#).unwrap();
//! assert_eq!(c.interval, Duration::from_secs(5400));
//! assert_eq!(c.max_age, Some(Duration::from_secs(14 * 86_400)));
//! let e = parse_config::<Config>(r#"{"interval": "90"}"#).unwrap_err();
//! assert!(e.message.contains("at `interval`"), "{e}");
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{Error as _, Visitor};

/// Examples of accepted values, quoted in every error message.
const EXAMPLES: &str = "write e.g. `30s`, `15m`, `1h30m`, `7d` or `2w`; units: ms, s, m, h, d, w";

/// Why a text is not a duration; the message quotes the text and says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but spaces.
    #[error("an empty value is not a duration ({EXAMPLES})")]
    Empty,
    /// Something that does not start with a number where a term should.
    #[error("`{text}` is not a duration ({EXAMPLES})")]
    NotADuration {
        /// The text as given.
        text: String,
    },
    /// A number without a unit (other than `0`).
    #[error("`{text}` has no unit ({EXAMPLES})")]
    MissingUnit {
        /// The text as given.
        text: String,
    },
    /// A unit that is not in the grammar.
    #[error("`{text}`: unknown unit `{unit}` ({EXAMPLES})")]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// More than `Duration` can hold.
    #[error("`{text}` is too long a duration")]
    TooLarge {
        /// The text as given.
        text: String,
    },
}

/// Parses a duration in the [grammar](self): `30s`, `15m`, `1h30m`, `7d`, `2w`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err(DurationError::Empty);
    }
    if lower == "0" {
        return Ok(Duration::ZERO);
    }
    let too_large = || DurationError::TooLarge {
        text: text.to_owned(),
    };
    let mut total = Duration::ZERO;
    let mut rest = lower.as_str();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotADuration {
                text: text.to_owned(),
            });
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let term = match unit {
            // A number that ends the text lacks its unit; one followed by anything else
            // (`1.5h`, `3-4d`) is not in the grammar at all.
            "" if rest.is_empty() => {
                return Err(DurationError::MissingUnit {
                    text: text.to_owned(),
                });
            }
            "" => {
                return Err(DurationError::NotADuration {
                    text: text.to_owned(),
                });
            }
            "ms" | "msec" | "millis" => Some(Duration::from_millis(n)),
            "s" | "sec" | "secs" | "second" | "seconds" => Some(Duration::from_secs(n)),
            "m" | "min" | "mins" | "minute" | "minutes" => {
                n.checked_mul(60).map(Duration::from_secs)
            }
            "h" | "hr" | "hrs" | "hour" | "hours" => n.checked_mul(3600).map(Duration::from_secs),
            "d" | "day" | "days" => n.checked_mul(86_400).map(Duration::from_secs),
            "w" | "week" | "weeks" => n.checked_mul(7 * 86_400).map(Duration::from_secs),
            _ => {
                return Err(DurationError::UnknownUnit {
                    text: text.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        total = term
            .and_then(|t| total.checked_add(t))
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

/// Parses a duration that may be switched off: `off`, `none`, `never`, an empty text and
/// any zero duration (`0`, `0s`) are `None`; anything else as [`parse_duration`].
pub fn parse_optional_duration(text: &str) -> Result<Option<Duration>, DurationError> {
    let lower = text.trim().to_ascii_lowercase();
    if matches!(lower.as_str(), "off" | "none" | "never" | "") {
        return Ok(None);
    }
    parse_duration(text).map(|d| (!d.is_zero()).then_some(d))
}

/// Serde `deserialize_with` helper for a `Duration` config field written in the
/// [grammar](self) (a string).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = deserializer.deserialize_str(TextVisitor)?;
    parse_duration(&text).map_err(D::Error::custom)
}

/// Serde `deserialize_with` helper for an `Option<Duration>` config field that may be switched
/// off, as [`parse_optional_duration`]. Pair it with `#[serde(default)]` (off) or a default
/// function when the option may be left out.
pub fn deserialize_optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = deserializer.deserialize_str(TextVisitor)?;
    parse_optional_duration(&text).map_err(D::Error::custom)
}

/// Takes the string; anything else is refused with the grammar's examples.
struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration as a string ({EXAMPLES})")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn accepts_every_unit_and_combination() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("15m"), Ok(secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(secs(14 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2 weeks"), Ok(secs(14 * 86_400)));
        assert_eq!(parse_duration("  3 Hours "), Ok(secs(3 * 3600)));
        assert_eq!(parse_duration("1D"), Ok(secs(86_400)));
        assert_eq!(parse_duration("90 seconds"), Ok(secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007m"), Ok(secs(420)));
    }

    #[test]
    fn refuses_with_a_message_that_says_what_is_accepted() {
        let e = parse_duration("30").unwrap_err();
        assert_eq!(e, DurationError::MissingUnit { text: "30".into() });
        assert_eq!(
            e.to_string(),
            "`30` has no unit (write e.g. `30s`, `15m`, `1h30m`, `7d` or `2w`; units: ms, s, m, h, d, w)"
        );
        let e = parse_duration("3 fortnights").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`3 fortnights`: unknown unit `fortnights` (write e.g. `30s`, `15m`, `1h30m`, `7d` or `2w`; units: ms, s, m, h, d, w)"
        );
        assert!(matches!(
            parse_duration("d"),
            Err(DurationError::NotADuration { .. })
        ));
        assert!(matches!(
            parse_duration("soon"),
            Err(DurationError::NotADuration { .. })
        ));
        assert!(matches!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5m"),
            Err(DurationError::NotADuration { .. })
        ));
        assert!(matches!(
            parse_duration("1.5h"),
            Err(DurationError::NotADuration { .. })
        ));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("off"),
            Err(DurationError::NotADuration { .. })
        ));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        for big in [
            "99999999999999999999999s",
            "18446744073709551615w",
            "18446744073709551615s 18446744073709551615s",
        ] {
            let e = parse_duration(big).unwrap_err();
            assert!(matches!(e, DurationError::TooLarge { .. }), "{big}: {e}");
            assert!(e.to_string().contains("too long"), "{e}");
        }
    }

    #[test]
    fn optional_values_switch_off() {
        for off in ["off", "OFF", "none", "never", "", "0", "0s", " 0ms "] {
            assert_eq!(parse_optional_duration(off), Ok(None), "{off}");
        }
        assert_eq!(parse_optional_duration("30d"), Ok(Some(secs(30 * 86_400))));
        assert!(parse_optional_duration("30").is_err());
    }

    #[test]
    fn serde_helpers_take_strings_only() {
        #[derive(Debug, serde::Deserialize)]
        struct C {
            #[serde(deserialize_with = "deserialize")]
            every: Duration,
            #[serde(default, deserialize_with = "deserialize_optional")]
            keep: Option<Duration>,
        }
        let c: C = serde_json::from_str(r#"{"every":"1h30m","keep":"off"}"#).unwrap();
        assert_eq!((c.every, c.keep), (secs(5400), None));
        let c: C = serde_json::from_str(r#"{"every":"2w"}"#).unwrap();
        assert_eq!(c.keep, None);
        let e = serde_json::from_str::<C>(r#"{"every":"15"}"#).unwrap_err();
        assert!(e.to_string().starts_with("`15` has no unit"), "{e}");
        let e = serde_json::from_str::<C>(r#"{"every":15}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a duration as a string (write e.g. `30s`"),
            "{e}"
        );
    }
}
