//! Settings of the `template` connector: the raw [`Config`] as written in plugins.toml, and the
//! validated [`Settings`] the connector runs with.
//!
//! The host passes `[plugins.<name>.config]` as JSON; `export_plugin!` deserializes it into
//! [`Config`] (an unknown key is a `config` error naming it), and [`Config::validate`] turns it
//! into [`Settings`], which cannot hold an invalid value. Nothing after start-up re-checks config.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::TemplateError;

/// Settings of the `template` connector, as written under `[plugins.<name>.config]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file every record is appended to, one JSON object per line. Created when missing;
    /// its directory must exist. A relative path is relative to the host's working directory.
    pub path: PathBuf,
    /// Text written at the start of every line, before the JSON object. Empty by default (each
    /// line is then pure JSON); must not contain a line break.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A record whose line (prefix, JSON and newline) would be longer than this is refused as
    /// permanently bad and dead-lettered by the host; the rest of its batch is written.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Flush the file to disk (`fdatasync`) after every batch before accepting it, so that an
    /// accepted batch survives a power loss. Turn off to trade that for speed.
    #[serde(default = "default_sync_each_batch")]
    pub sync_each_batch: bool,
}

fn default_prefix() -> String {
    String::new()
}

const fn default_max_line_bytes() -> usize {
    1024 * 1024
}

const fn default_sync_each_batch() -> bool {
    true
}

/// The smallest accepted `max_line_bytes`: room for the envelope of a short record.
pub const MIN_LINE_BYTES: usize = 64;

/// Validated settings: what the connector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file appended to.
    pub path: PathBuf,
    /// Written before every JSON object; holds no line break.
    pub prefix: String,
    /// The longest line written, newline included.
    pub max_line_bytes: NonZeroUsize,
    /// Whether every batch is synced to disk before it is accepted.
    pub sync_each_batch: bool,
}

impl Config {
    /// Checks every value and converts the config into [`Settings`].
    pub fn validate(self) -> Result<Settings, TemplateError> {
        if self.path.as_os_str().is_empty() {
            return Err(TemplateError::Invalid {
                option: "path",
                reason: "must name a file".into(),
            });
        }
        if self.prefix.contains(['\n', '\r']) {
            return Err(TemplateError::Invalid {
                option: "prefix",
                reason: "must not contain a line break".into(),
            });
        }
        let max_line_bytes = NonZeroUsize::new(self.max_line_bytes)
            .filter(|n| n.get() >= MIN_LINE_BYTES + self.prefix.len())
            .ok_or_else(|| TemplateError::Invalid {
                option: "max_line_bytes",
                reason: format!(
                    "must be at least {} (64 plus the length of `prefix`), got {}",
                    MIN_LINE_BYTES + self.prefix.len(),
                    self.max_line_bytes
                ),
            })?;
        Ok(Settings {
            path: self.path,
            prefix: self.prefix,
            max_line_bytes,
            sync_each_batch: self.sync_each_batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str, max_line_bytes: usize) -> Config {
        Config {
            path: PathBuf::from("out.jsonl"),
            prefix: prefix.to_owned(),
            max_line_bytes,
            sync_each_batch: true,
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = config(&default_prefix(), default_max_line_bytes())
            .validate()
            .expect("valid");
        assert_eq!(s.max_line_bytes.get(), 1024 * 1024);
        assert!(s.prefix.is_empty());
    }

    #[test]
    fn refuses_line_breaks_and_tiny_limits() {
        let e = config("a\nb", 1000).validate().expect_err("line break");
        assert!(e.to_string().contains("`prefix`"), "{e}");
        let e = config("", 10).validate().expect_err("too small");
        assert!(e.to_string().contains("at least 64"), "{e}");
        let e = config("0123456789", 70)
            .validate()
            .expect_err("prefix counts");
        assert!(e.to_string().contains("at least 74"), "{e}");
    }
}
