//! The store, as this connector reaches it: `request(store, method, body)` through the host.
//! No database code lives here; the store (the `timescale` connector) owns it.

use std::sync::Arc;

use logrelay_plugin_api::{ErrorKind, Host, PluginError};

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

    /// Calls `method` with a JSON body; the answer is the store's JSON text.
    pub async fn call(&self, method: &str, body: String) -> Result<String, ApiError> {
        self.host
            .request(&self.name, method, body)
            .await
            .map_err(|e| ApiError::from_store(&self.name, &e))
    }

    /// Asks the store a cheap question (`schema`) to see whether it is there and is a store.
    pub async fn probe(&self) -> Probe {
        match self
            .host
            .request(&self.name, "schema", "{}".to_owned())
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
