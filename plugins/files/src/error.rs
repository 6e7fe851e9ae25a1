//! Errors of the `files` connector, each with its class.

use std::error::Error as _;
use std::path::PathBuf;

use logrelay_plugin_api::PluginError;
use logrelay_plugin_api::format::FormatError;

/// What can go wrong in the files connector.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// An option has a value that cannot be used.
    #[error("invalid `{option}`: {reason}")]
    Invalid {
        /// The option.
        option: String,
        /// Why.
        reason: String,
    },
    /// A layout option has a bad value.
    #[error(transparent)]
    Layout(#[from] FormatError),
    /// The directory is missing or cannot take files.
    #[error("log directory {} {reason}", path.display())]
    Directory {
        /// The directory as configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP server cannot listen.
    #[error("cannot listen on {address} (`http_listen_address`)")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file operation failed; the batch was undone and can be retried.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`write to`, `open`, `rotate`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl FilesError {
    /// The message with every cause after it, as `PluginError` carries no source.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

impl From<FilesError> for PluginError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Invalid { .. }
            | FilesError::Layout(_)
            | FilesError::Directory { .. }
            | FilesError::Listen { .. } => PluginError::config(e.chain()),
            // A full disk, a file removed under us: the batch was undone; the host retries.
            FilesError::Io { .. } => PluginError::transient(e.chain())
                .with_retry_after(std::time::Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_plugin_api::ErrorKind;

    #[test]
    fn classes() {
        let e = PluginError::from(FilesError::Io {
            action: "write to",
            path: "/logs/x.log".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(e.kind, ErrorKind::TRANSIENT);
        assert!(
            e.message.starts_with("cannot write to /logs/x.log: "),
            "{e}"
        );
        let e = PluginError::from(FilesError::Directory {
            path: "/nope".into(),
            reason: "is not a directory".into(),
        });
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert_eq!(e.message.as_str(), "log directory /nope is not a directory");
    }
}
