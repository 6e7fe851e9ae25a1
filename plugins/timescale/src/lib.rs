//! The `timescale` connector: stores every record in PostgreSQL — a TimescaleDB hypertable with
//! compression and retention policies when the extension is there, a plain table with B-tree and
//! BRIN indexes and batched-delete retention when it is not — and answers the store's requests
//! (`query`, `get`, `add`, `update`, `delete`, `delete_by_filter`, `stats`, `sql`...) for the
//! HTTP API and the CLI. See README.md for the options, the schema and the request API.

mod api;
mod config;
mod error;
mod nodelay;
mod out;
mod retention;
mod schema;
mod timescale;
mod write;

pub use config::{Config, MessageIndex, Settings, TimescaleMode, parse_duration};
pub use error::TimescaleError;
/// The methods `request` answers (the store protocol of `logrelay_plugin_api::store`).
pub use logrelay_plugin_api::store::METHODS;
pub use schema::Storage;

/// The store's per-record checks and row encoding, for the fuzz target over the record path
/// (`fuzz/fuzz_targets/record_path.rs`). Not part of any API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::write::{check_record, copy_data};
}
pub use timescale::Timescale;

logrelay_plugin_api::export_plugin!(Timescale);
