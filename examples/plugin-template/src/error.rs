//! Errors of the `template` connector, each with its class.
//!
//! The class alone decides what the host does: `config` stops start-up, `transient` makes the
//! host retry the same batch with backoff, `permanent` dead-letters the records named bad (the
//! whole batch when none are named), each with its own reason, `fatal` disables the instance.

use std::path::PathBuf;
use std::time::Duration;

use logrelay_plugin_api::PluginError;

/// How long the host should wait before retrying after a failed write.
const WRITE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What can go wrong in the `template` connector.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An option has a value the connector cannot run with.
    #[error("`{option}` {reason}")]
    Invalid {
        /// The option, as written in plugins.toml.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The output file cannot be opened at start-up.
    #[error("cannot open {} for appending (does its directory exist and is it writable?)", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing or syncing a batch failed (disk full, file system gone read-only).
    #[error("cannot write to {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output file is no longer where the config says (deleted or moved away).
    #[error("{} is gone; lines would be written to a file nobody sees", path.display())]
    Gone {
        /// The file.
        path: PathBuf,
    },
    /// Some records of a batch cannot ever be written.
    #[error("{} of {batch} record(s) refused (the others are written)", refused.len())]
    Refused {
        /// Their indices in the batch, each with why it was refused.
        refused: Vec<(u32, String)>,
        /// How many records the batch had.
        batch: usize,
    },
}

impl TemplateError {
    /// The message with every cause after it, as `PluginError` carries no source.
    fn chain(&self) -> String {
        logrelay_plugin_api::error_chain(self)
    }
}

impl From<TemplateError> for PluginError {
    fn from(e: TemplateError) -> Self {
        let message = e.chain();
        match e {
            TemplateError::Invalid { .. } | TemplateError::Open { .. } => {
                PluginError::config(message)
            }
            TemplateError::Write { .. } => {
                PluginError::transient(message).with_retry_after(WRITE_RETRY_AFTER)
            }
            TemplateError::Gone { .. } => PluginError::transient(message),
            // Each refused record is dead-lettered with its own reason.
            TemplateError::Refused { refused, .. } => {
                PluginError::permanent(message).with_refused(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use logrelay_plugin_api::ErrorKind;

    use super::*;

    #[test]
    fn each_error_has_its_class() {
        let io = || std::io::Error::other("disk full");
        let path = PathBuf::from("/x/out.jsonl");
        let e = PluginError::from(TemplateError::Write {
            path: path.clone(),
            source: io(),
        });
        assert_eq!(e.kind, ErrorKind::TRANSIENT);
        assert_eq!(e.retry_after(), Some(WRITE_RETRY_AFTER));
        assert_eq!(
            e.message.as_str(),
            "cannot write to /x/out.jsonl: disk full"
        );
        let e = PluginError::from(TemplateError::Open { path, source: io() });
        assert_eq!(e.kind, ErrorKind::CONFIG);
        let e = PluginError::from(TemplateError::Refused {
            refused: vec![(2, "too long".into()), (5, "not JSON".into())],
            batch: 8,
        });
        assert_eq!(e.kind, ErrorKind::PERMANENT);
        assert_eq!(e.bad_records.as_slice(), &[2, 5]);
        assert_eq!(e.reason_for(2), "too long");
        assert_eq!(e.reason_for(5), "not JSON");
        assert_eq!(
            e.record_reasons().summary(),
            "2 of 8 record(s) refused (the others are written)"
        );
    }
}
