//! The plugin interface of logrelay: the stable ABI every connector library exports, and the
//! author-facing layer that makes writing one ordinary async Rust.
//!
//! A complete connector that counts the records it receives:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use logrelay_plugin_api::{Context, Plugin, PluginError, Record};
//! use serde::Deserialize;
//!
//! /// Settings of the `counter` connector.
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     /// Log a line every this many records.
//!     #[serde(default = "default_every")]
//!     pub every: u64,
//! }
//!
//! const fn default_every() -> u64 {
//!     1000
//! }
//!
//! pub struct Counter {
//!     every: u64,
//!     seen: AtomicU64,
//! }
//!
//! impl Plugin for Counter {
//!     type Config = Config;
//!     const TYPE_NAME: &'static str = "counter";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DESCRIPTION: &'static str = "counts records";
//!     const EXAMPLE_CONFIG: &'static str = "every = 1000\n";
//!
//!     async fn new(config: Config, _ctx: Context) -> Result<Self, PluginError> {
//!         if config.every == 0 {
//!             return Err(PluginError::config("`every` must be at least 1"));
//!         }
//!         Ok(Counter { every: config.every, seen: AtomicU64::new(0) })
//!     }
//!
//!     async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
//!         let before = self.seen.fetch_add(batch.len() as u64, Ordering::Relaxed);
//!         if (before + batch.len() as u64) / self.every > before / self.every {
//!             tracing::info!(seen = before + batch.len() as u64, "Counted more records.");
//!         }
//!         Ok(())
//!     }
//! }
//!
//! logrelay_plugin_api::export_plugin!(Counter);
//! # fn main() {}
//! ```
//!
//! Build the crate as a `cdylib` (`crate-type = ["cdylib", "rlib"]`), put the `.so` in the plugin
//! directory as `liblogrelay_counter.so`, and name it in plugins.toml:
//!
//! ```toml
//! [plugins.counter]
//! type = "counter"
//! [plugins.counter.config]
//! every = 500
//! ```
//!
//! What the macro generates: the root module ([`abi::PluginModule`]), a tokio runtime owned by each
//! instance, `catch_unwind` around every call (a panic becomes a `fatal` error for that instance
//! only), config parsing with the path of a bad value in the message, and forwarding of the
//! plugin's `tracing` events to the host's log, tagged with the instance name.
//!
//! `docs/PLUGIN_GUIDE.md` walks from the template to a loaded library; `docs/ABI_POLICY.md` says
//! what may change within 1.x.

pub mod abi;
pub mod backoff;
pub mod constant_time;
pub mod duration;
pub mod error_chain;
pub mod escape;
pub mod export;
#[cfg(feature = "format")]
pub mod format;
pub mod json_body;
pub mod metrics;
mod plugin;
pub mod refusal;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

/// The version of this interface crate; plugins built against another 1.x load, others do not.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use abi::{ErrorKind, Level, Manifest, PluginError, Record, RecordFlags};
pub use backoff::Backoff;
pub use constant_time::constant_time_eq;
pub use duration::{DurationError, parse_duration, parse_optional_duration};
pub use error_chain::error_chain;
pub use json_body::{JsonError, from_json_exact, from_json_with_path};
pub use metrics::{METRICS_METHOD, MetricKind, MetricOp, MetricUpdate};
pub use plugin::{Context, Host, PURPOSE_METHOD, Plugin, Purpose, parse_config};

/// Items the export macro expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{
        __call_root_module_loader as call_root_module_loader, CheckTypeLayout, LibHeader,
        RootModuleResult,
    };
}
