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
