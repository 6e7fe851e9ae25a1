//! Where formatted batches go: one `write_all` (and so, as a rule, one write syscall) per batch.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::config::Target;
use crate::error::ConsoleError;

/// An open output.
#[derive(Debug)]
pub enum Output {
    /// Standard output, locked for each batch.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file opened for appending.
    File {
        /// Its path, for messages.
        path: PathBuf,
        /// The open file.
        file: File,
    },
    /// Nowhere.
    Discard,
}

impl Output {
    /// Opens the output; a file is created if missing and appended to.
    pub fn open(target: &Target) -> Result<Output, ConsoleError> {
        Ok(match target {
            Target::Stdout => Output::Stdout,
            Target::Stderr => Output::Stderr,
            Target::Discard => Output::Discard,
            Target::File(path) => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ConsoleError::Open {
                        path: path.clone(),
                        source,
                    })?;
                Output::File {
                    path: path.clone(),
                    file,
                }
            }
        })
    }

    /// Whether the output is a terminal (a file can be one too: `/dev/tty`).
    pub fn is_terminal(&self) -> bool {
        match self {
            Output::Stdout => std::io::stdout().is_terminal(),
            Output::Stderr => std::io::stderr().is_terminal(),
            Output::File { file, .. } => file.is_terminal(),
            Output::Discard => false,
        }
    }

    /// A name for messages and logs.
    pub fn name(&self) -> String {
        match self {
            Output::Stdout => "stdout".to_owned(),
            Output::Stderr => "stderr".to_owned(),
            Output::File { path, .. } => path.display().to_string(),
            Output::Discard => "nowhere".to_owned(),
        }
    }

    /// Writes all of `bytes` and flushes.
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), ConsoleError> {
        let result = match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Output::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Output::File { file, .. } => {
                let mut file = file;
                file.write_all(bytes).and_then(|()| file.flush())
            }
            Output::Discard => Ok(()),
        };
        result.map_err(|source| ConsoleError::Write {
            target: self.name(),
            source,
        })
    }

    /// Flushes what the standard streams may still hold.
    pub fn flush(&self) -> Result<(), ConsoleError> {
        self.write_all(&[])
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    #[test]
    fn a_closed_pipe_is_a_transient_write_error_that_says_so() {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = Output::File {
            path: PathBuf::from("a pipe"),
            file: File::from(OwnedFd::from(writer)),
        };
        assert!(!output.is_terminal());
        let err = output.write_all(b"line\n").expect_err("nobody reads");
        let err = logrelay_plugin_api::PluginError::from(err);
        assert_eq!(err.kind, logrelay_plugin_api::ErrorKind::TRANSIENT);
        assert!(
            err.message
                .starts_with("cannot write to a pipe (its reader has gone away): "),
            "{err}"
        );
    }

    #[test]
    fn discard_takes_everything() {
        let output = Output::open(&Target::Discard).expect("opens");
        output.write_all(b"anything\n").expect("dropped");
        output.flush().expect("flushed");
        assert!(!output.is_terminal());
    }
}
