//! The store, as this connector reaches it: `request(store, method, body)` through the host.
//! No database code lives here; the store (the `timescale` connector) owns it. The bodies are
//! the types of `logrelay_plugin_api::store`, which the store reads.

use std::sync::Arc;

use axum::http::StatusCode;
use logrelay_plugin_api::store::{self as protocol, method};
use logrelay_plugin_api::{ErrorKind, Host, PluginError};
use serde::Serialize;

use crate::error::ApiError;

/// What the start-up and health probes found.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// The store answered.
    Ready,
    /// The host has no instance of that name (yet: instances are built in name order).
    Missing,
    /// The instance exists but answers no store requests.
    NotAStore(String),
    /// The store exists but cannot answer now (database down...).
    Unavailable(String),
}

/// A handle to the store instance.
#[derive(Clone)]
pub struct Store {
    host: Host,
    name: Arc<str>,
}

impl Store {
    /// The store named `name` in plugins.toml, reached through `host`.
    pub fn new(host: Host, name: &str) -> Store {
        Store {
            host,
            name: Arc::from(name),
        }
    }

    /// The store instance's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `method` with `body` (one of the protocol's request types); the answer is the
    /// store's JSON text.
    pub async fn call<T: Serialize>(&self, method: &str, body: &T) -> Result<String, ApiError> {
        let body = protocol::to_body(body).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request to the store cannot be written: {e}"),
            )
        })?;
        self.host
            .request(&self.name, method, body)
            .await
            .map_err(|e| ApiError::from_store(&self.name, &e))
    }

    /// Asks the store a cheap question (`schema`) to see whether it is there and is a store.
    pub async fn probe(&self) -> Probe {
        match self
            .host
            .request(&self.name, method::SCHEMA, "{}".to_owned())
            .await
        {
            Ok(_) => Probe::Ready,
            Err(e) => classify(&e),
        }
    }
}

/// Reads a probe's error. The host's registry says `no running instance named ...` when the
/// instance does not exist; a connector without requests says it `answers no requests`.
fn classify(e: &PluginError) -> Probe {
    let msg = e.message.as_str();
    if e.kind == ErrorKind::PERMANENT && msg.starts_with("no running instance named") {
        Probe::Missing
    } else if e.kind == ErrorKind::PERMANENT
        && (msg.contains("answers no requests") || msg.contains("unknown method"))
    {
        Probe::NotAStore(msg.to_owned())
    } else {
        Probe::Unavailable(msg.to_owned())
    }
}
