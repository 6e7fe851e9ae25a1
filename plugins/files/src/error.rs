//! Errors of the `files` connector, each with its class.

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
    /// Files the connector would write are symbolic links, which it never follows: a link in
    /// the directory could otherwise make it append records to any file it may write. The
    /// records bound for them were refused; the rest of the batch was written.
    #[error("{}", symbolic_link_message(paths))]
    SymbolicLink {
        /// The links, in the log directory.
        paths: Vec<PathBuf>,
        /// Indices (into the batch) of the records bound for them; empty outside a batch.
        records: Vec<u32>,
    },
}

/// `refusing to write log file <path>: it is a symbolic link (...)`, or the same for several.
fn symbolic_link_message(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    match names.as_slice() {
        [one] => format!(
            "refusing to write log file {one}: it is a symbolic link (remove it or point `directory` elsewhere)"
        ),
        many => format!(
            "refusing to write log files {}: they are symbolic links (remove them or point `directory` elsewhere)",
            many.join(", ")
        ),
    }
}

impl FilesError {
    /// The message with every cause after it, as `PluginError` carries no source.
    pub fn chain(&self) -> String {
        logrelay_plugin_api::error_chain(self)
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
            // Permanent, naming only the records bound for the links: those go to the
            // dead-letter queue with this message (to be replayed once the link is removed)
            // and the host warns about every refused batch, while the other files of the batch
            // are written and the host carries on. Not transient: a link does not go away by
            // itself, so the host would retry the batch forever, holding up every record
            // behind it and warning only now and then. Not config or fatal: that disables the
            // whole instance, so anyone able to create a file in the directory could stop all
            // logging to files with one link.
            FilesError::SymbolicLink { ref records, .. } => {
                PluginError::permanent(e.chain()).with_bad_records(records.iter().copied())
            }
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

    #[test]
    fn a_symbolic_link_refuses_the_records_bound_for_it() {
        let e = PluginError::from(FilesError::SymbolicLink {
            paths: vec!["/logs/shop-x.log".into()],
            records: vec![1, 3],
        });
        assert_eq!(e.kind, ErrorKind::PERMANENT);
        assert_eq!(e.bad_records.as_slice(), &[1, 3]);
        assert_eq!(
            e.message.as_str(),
            "refusing to write log file /logs/shop-x.log: it is a symbolic link \
             (remove it or point `directory` elsewhere)"
        );
        let e = FilesError::SymbolicLink {
            paths: vec!["/logs/a.log".into(), "/logs/b.log".into()],
            records: vec![0],
        };
        assert_eq!(
            e.to_string(),
            "refusing to write log files /logs/a.log, /logs/b.log: they are symbolic links \
             (remove them or point `directory` elsewhere)"
        );
    }
}
