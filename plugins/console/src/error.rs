//! Errors of the `console` connector, each with its class.

use std::path::PathBuf;

use logrelay_plugin_api::PluginError;
use logrelay_plugin_api::format::FormatError;

use crate::config::OutputKind;

/// What can go wrong in the console connector.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// `output = "file"` without a `path`.
    #[error("`output = \"file\"` needs `path`, the file to append to")]
    MissingPath,
    /// A `path` with another output.
    #[error("`path` ({}) is only used with `output = \"file\"`, but output is `{}`", path.display(), kind.name())]
    PathWithoutFile {
        /// The output chosen.
        kind: OutputKind,
        /// The path given.
        path: PathBuf,
    },
    /// A layout option has a bad value.
    #[error(transparent)]
    Layout(#[from] FormatError),
    /// The output file cannot be opened.
    #[error("cannot open {} for appending", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing a batch failed.
    #[error("cannot write to {target}{}", if source.kind() == std::io::ErrorKind::BrokenPipe { " (its reader has gone away)" } else { "" })]
    Write {
        /// `stdout`, `stderr` or the file's path.
        target: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ConsoleError {
    /// The message with every cause after it, as `PluginError` carries no source.
    fn chain(&self) -> String {
        logrelay_plugin_api::error_chain(self)
    }
}

impl From<ConsoleError> for PluginError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::MissingPath
            | ConsoleError::PathWithoutFile { .. }
            | ConsoleError::Layout(_)
            | ConsoleError::Open { .. } => PluginError::config(e.chain()),
            // A full disk or a reader that is back later: the host retries (or, for a
            // best-effort instance, counts the failure and goes on).
            ConsoleError::Write { .. } => PluginError::transient(e.chain()),
        }
    }
}

impl OutputKind {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::Stderr => "stderr",
            OutputKind::File => "file",
            OutputKind::Discard => "discard",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_plugin_api::ErrorKind;

    #[test]
    fn classes_and_messages() {
        let e = PluginError::from(ConsoleError::Write {
            target: "stdout".to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        });
        assert_eq!(e.kind, ErrorKind::TRANSIENT);
        assert_eq!(
            e.message.as_str(),
            "cannot write to stdout (its reader has gone away): broken pipe"
        );
        let e = PluginError::from(ConsoleError::MissingPath);
        assert_eq!(e.kind, ErrorKind::CONFIG);
    }
}
