//! The connector itself: the plugin, its HTTP server and its sink side (the live tail).

use std::net::SocketAddr;
use std::sync::Arc;

use logrelay_plugin_api::{Context, Plugin, PluginError, Purpose, Record};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::config::{Config, Settings};
use crate::error::HttpApiError;
use crate::openapi;
use crate::routes::{AppState, router};
use crate::store::{Probe, Store};
use crate::stream::Hub;

/// REST access to the stored logs through the store instance, and a live tail of new ones.
pub struct HttpApi {
    settings: Arc<Settings>,
    store: Store,
    hub: Arc<Hub>,
    address: SocketAddr,
    /// The server; none in a one-shot instance (`replay`, `sql`), which serves nobody.
    server: Option<JoinHandle<()>>,
    instance: String,
}

impl HttpApi {
    /// The address the server listens on (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The error for a store that is missing or not a store, naming the plugins.toml key.
    fn store_error(&self, what: &str) -> HttpApiError {
        store_error(&self.instance, self.store.name(), what)
    }
}

fn store_error(instance: &str, store: &str, what: &str) -> HttpApiError {
    HttpApiError::Store(format!(
        "[plugins.{instance}.config] store = \"{store}\": {what}; name the [plugins.<name>] of a running `timescale` instance in plugins.toml"
    ))
}

impl Plugin for HttpApi {
    type Config = Config;
    const TYPE_NAME: &'static str = "http-api";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "REST access to stored logs (through a store instance), live tail, OpenAPI";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");
    const CAPABILITIES: &'static [&'static str] = &["status"];
    const WORKER_THREADS: usize = 2;

    /// Without binding the listen address (a running host holds it).
    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(config.validate().map(|_| ()).map_err(PluginError::from))
    }

    async fn new(config: Config, ctx: Context) -> Result<Self, PluginError> {
        let settings = Arc::new(config.validate()?);
        let instance = ctx.instance_id().to_owned();
        let store = Store::new(ctx.host().clone(), &settings.store);
        // Instances are built in name order, so the store may not exist yet: a missing store
        // is decided by the health check, which the host runs once every instance is built.
        match store.probe().await {
            Probe::Ready => {}
            Probe::Missing => {
                tracing::debug!(store = %settings.store, "The store is not built yet; the health check will look again.")
            }
            Probe::NotAStore(why) => {
                return Err(store_error(
                    &instance,
                    &settings.store,
                    &format!("it is not a store ({why})"),
                )
                .into());
            }
            Probe::Unavailable(why) => {
                tracing::warn!(store = %settings.store, error = %why, "The store does not answer yet; requests get 503 until it does.");
            }
        }
        let hub = Arc::new(Hub::new(
            settings.stream_buffer_batches,
            settings.max_stream_clients,
        ));
        if ctx.purpose() == Purpose::OneShot {
            // `replay` beside a running host, whose instance holds the address.
            tracing::debug!(address = %settings.listen, "A one-shot instance: the HTTP API is not served.");
            return Ok(HttpApi {
                address: settings.listen,
                settings,
                store,
                hub,
                server: None,
                instance,
            });
        }
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| HttpApiError::Listen {
                address: settings.listen.to_string(),
                source,
            })?;
        let address = listener.local_addr().unwrap_or(settings.listen);
        let app = router(AppState {
            settings: settings.clone(),
            store: store.clone(),
            hub: hub.clone(),
            openapi: Arc::from(openapi::document(&settings).to_string()),
        });
        let server = Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "The HTTP API server stopped.");
            }
        }));
        tracing::info!(address = %address, store = %settings.store, authenticated = settings.token.is_some(), "Serving the HTTP API.");
        if settings.token.is_none() {
            tracing::warn!(
                "The HTTP API has no token: anyone who reaches it can read the logs, and changing or deleting them is disabled (set LOGRELAY_API_TOKEN)."
            );
        }
        Ok(HttpApi {
            settings,
            store,
            hub,
            address,
            server,
            instance,
        })
    }

    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        self.hub.publish(batch);
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), PluginError> {
        if self.server.as_ref().is_some_and(JoinHandle::is_finished) {
            return Err(PluginError::fatal("the HTTP API server has stopped"));
        }
        match self.store.probe().await {
            Probe::Ready | Probe::Unavailable(_) => Ok(()),
            Probe::Missing => Err(self
                .store_error("no instance of that name is running")
                .into()),
            Probe::NotAStore(why) => Err(self
                .store_error(&format!("it is not a store ({why})"))
                .into()),
        }
    }

    async fn request(&self, method: &str, _body: &str) -> Result<String, PluginError> {
        match method {
            "status" => Ok(json!({
                "listen": self.address.to_string(),
                "store": self.settings.store,
                "token": self.settings.token.is_some(),
                "stream_clients": self.hub.clients(),
            })
            .to_string()),
            other => Err(PluginError::permanent(format!(
                "unknown method `{other}`; the http-api connector answers `status`"
            ))),
        }
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        // Live-tail connections never end by themselves: stop the server outright.
        if let Some(server) = &self.server {
            server.abort();
        }
        Ok(())
    }
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}
