//! The `files` connector: writes every record to log files in one directory, with the whole
//! file lifecycle inside the connector.
//!
//! - each batch goes to the current file (or, with `{project}` or `{module}` in `file_name`, to
//!   one file per project or module) with one write per file, in JSON lines, logfmt or a text
//!   layout, all formatted by the shared engine of [`logrelay_plugin_api::format`];
//! - files are rotated by size and by time (hourly or daily in a chosen time zone), archived in
//!   the background (gzip or zstd, written under a temporary name and renamed), optionally pushed
//!   to an HTTP endpoint, and deleted by age, total size and count;
//! - durability is per batch (fsync before the batch is accepted), per interval, or left to the
//!   kernel; a failed write (a full disk) is undone before the batch is refused as `transient`;
//! - an optional HTTP server lists the files and serves them with `Range` support.
//!
//! See README.md for the options, the naming pattern and the HTTP API.

mod archive;
mod clock;
mod config;
mod error;
mod files;
mod http;
mod naming;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Compression, Config, Durability, OutputFormat, Retention, RotateInterval, Settings,
};
pub use error::FilesError;
pub use files::Files;
pub use naming::NamePattern;

logrelay_plugin_api::export_plugin!(Files);
