//! The `template` connector: appends every record it receives to a file, one JSON object per
//! line, each line optionally starting with a fixed `prefix`.
//!
//! A line holds the record's envelope and its attributes as they came:
//!
//! ```text
//! {"id":"…","timestamp_ns":1700000000000000000,"level":"info","project":"shop","module":"cart","message":"paid","attributes":{"user":"ann"}}
//! ```
//!
//! A batch is accepted only once it is written (and, by default, synced to disk). A record that
//! can never be written (its line longer than `max_line_bytes`, or attributes that are not a
//! JSON object) is refused by index with its own reason, so the host dead-letters it alone,
//! saying why. A failed write is transient: the host retries the batch. `request("stats", "")`
//! answers `{"lines":…,"bytes":…,"refused":…}`. See README.md for the options.

mod config;
mod error;
mod template;

pub use config::{Config, Settings};
pub use error::TemplateError;
pub use template::Template;

logrelay_plugin_api::export_plugin!(Template);

// template-only:start (scripts/new-plugin leaves this out of a copy)
/// The Rust code blocks of docs/PLUGIN_GUIDE.md, compiled as doc tests of this crate, so that
/// the guide's examples use the template as a connector's own tests do.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/PLUGIN_GUIDE.md")]
pub struct PluginGuide;
// template-only:end
