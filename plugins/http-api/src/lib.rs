//! The `http-api` connector: REST access to the stored logs, a live tail and an OpenAPI
//! document, served by axum on the instance's own runtime.
//!
//! - It holds no database code: every read and change is a `request` to the store instance
//!   named by `store` (the `timescale` connector), through the host.
//! - It is also a sink: `handle_batch` publishes each batch to the live-tail clients of
//!   `GET /logs/stream` (server-sent events) and never waits for them.
//! - With `token` set, every route but `/docs` needs `Authorization: Bearer <token>`, compared
//!   in constant time; without one, reading is open and changing or deleting is refused (403).
//! - Errors are JSON, `{"error": "...", "parameter": "..."}`: 400 naming the bad parameter, 401,
//!   403, 404 (the store has no such record), 413 (body or page too large), 503 (the store is
//!   unreachable or not running), 504 (slower than `request_timeout_ms`).
//!
//! See README.md for the options and the routes.

mod config;
mod error;
mod http_api;
mod openapi;
mod params;
mod records;
mod routes;
mod store;
mod stream;
mod ui;

pub use config::{ADDR_VAR, Config, Settings, TOKEN_VAR};
pub use error::{ApiError, HttpApiError};
pub use http_api::HttpApi;

logrelay_plugin_api::export_plugin!(HttpApi);
