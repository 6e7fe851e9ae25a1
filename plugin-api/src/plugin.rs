//! The author-facing layer: the [`Plugin`] trait and the [`Host`] handle.

use std::future::Future;
use std::sync::Arc;

use abi_stable::std_types::RStr;
use serde::de::DeserializeOwned;

use crate::abi::{HostBox, PluginError, Record, RecordFlags};

/// A connector, written as ordinary async Rust. [`export_plugin!`](crate::export_plugin) turns it
/// into a plugin library.
///
/// Every method takes `&self`: the host calls `handle_batch` from one worker thread per instance,
/// while other instances may call `request` at the same time. Keep mutable state behind a lock.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// The connector's settings, deserialized from `[plugins.<name>.config]`. Use
    /// `#[serde(deny_unknown_fields)]` so that typos are reported, naming the key.
    type Config: DeserializeOwned + Send + 'static;

    /// The connector type, as written in `type = "..."` in plugins.toml.
    const TYPE_NAME: &'static str;
    /// The connector's version; write `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line saying what the connector does.
    const DESCRIPTION: &'static str;
    /// A documented `[plugins.<name>.config]` table (TOML) that parses into [`Plugin::Config`].
    const EXAMPLE_CONFIG: &'static str;
    /// What the connector offers beyond a sink (`store` answers queries through `request`).
    const CAPABILITIES: &'static [&'static str] = &[];
    /// Worker threads of the instance's own tokio runtime.
    const WORKER_THREADS: usize = 1;

    /// `logrelay check`: validates `config` as [`Plugin::new`] would, without side effects: no
    /// port bound, no file or directory created, no connection opened. `Some(Ok(()))` when
    /// `new` would accept it as far as can be told without those, `Some(Err(..))` naming the
    /// option otherwise.
    ///
    /// The default, `None`, says the connector has no check of its own: `logrelay check` then
    /// builds the instance with `new`, health-checks it and shuts it down, with whatever side
    /// effects `new` has (so a connector that listens on a port fails the check beside a
    /// running host). `logrelay check --online` always does that, to test connections too.
    fn check(config: Self::Config) -> Option<Result<(), PluginError>> {
        let _ = config;
        None
    }

    /// Builds an instance. Runs on the instance's own runtime.
    fn new(
        config: Self::Config,
        ctx: Context,
    ) -> impl Future<Output = Result<Self, PluginError>> + Send;

    /// Accepts a batch. Return `Ok` only once the records are safe: the host acknowledges them to
    /// RabbitMQ after that. Batches come in order; one call may carry several of the host's
    /// batches when the instance is behind (up to `LOGRELAY_COALESCE_MAX_RECORDS` records), so
    /// do not assume a batch is at most `LOGRELAY_BATCH_MAX_RECORDS` long.
    fn handle_batch(
        &self,
        batch: &[Record],
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// [`Plugin::handle_batch`] with what the host knows about each record: `flags[i]` is for
    /// `batch[i]` (see [`RecordFlags`]). The host calls this one; the default ignores the flags.
    /// A connector that can use them overrides it (the timescale store skips its redelivery
    /// probe for records that carry their own time).
    fn handle_batch_flagged(
        &self,
        batch: &[Record],
        flags: &[RecordFlags],
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        let _ = flags;
        self.handle_batch(batch)
    }

    /// Reports whether the instance can work now (database reachable, directory writable...).
    fn healthcheck(&self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }

    /// Answers a capability request; `body` and the answer are JSON text.
    fn request(
        &self,
        method: &str,
        body: &str,
    ) -> impl Future<Output = Result<String, PluginError>> + Send {
        let _ = body;
        let message = format!(
            "the {} connector answers no requests (asked for `{method}`)",
            Self::TYPE_NAME
        );
        async move { Err(PluginError::permanent(message)) }
    }

    /// Flushes and releases everything. Called once, after the last batch.
    fn shutdown(&self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }
}

/// Why the host builds an instance (see [`Context::purpose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// `logrelay run` (and every host that predates purposes): the live pipeline.
    #[default]
    Run,
    /// `logrelay check`: only [`Plugin::check`] is called, unless the connector has none.
    Check,
    /// `logrelay replay`, `logrelay sql`: a short-lived instance beside (perhaps) a running host;
    /// a connector need not start what serves only a live host, such as an HTTP listener.
    OneShot,
}

impl Purpose {
    /// The host's answer to [`PURPOSE_METHOD`].
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Run => "run",
            Purpose::Check => "check",
            Purpose::OneShot => "one-shot",
        }
    }

    /// The purpose named `name`; an unknown name (a newer host) is taken as `Run`.
    pub fn from_name(name: &str) -> Purpose {
        match name {
            "check" => Purpose::Check,
            "one-shot" => Purpose::OneShot,
            _ => Purpose::Run,
        }
    }
}

/// The request a library sends to the host, as `request("", PURPOSE_METHOD, "")`, to learn why
/// an instance is being built: a convention on the frozen `HostObj::request`, so that neither
/// side's layout changes. A host that predates it refuses the request, and the instance is then
/// built for [`Purpose::Run`], as before.
pub const PURPOSE_METHOD: &str = "logrelay.purpose";

/// What an instance gets at construction: its name, why it is built, and the host handle.
#[derive(Clone)]
pub struct Context {
    pub(crate) instance_id: Arc<str>,
    pub(crate) host: Host,
    pub(crate) purpose: Purpose,
}

impl Context {
    /// Why the host builds this instance.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The instance name, as chosen in plugins.toml (`[plugins.<name>]`).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The handle to the host, to keep for later calls.
    pub fn host(&self) -> &Host {
        &self.host
    }
}

/// The host, as an instance sees it: lets one plugin use another's capability.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: HostBox,
}

impl Host {
    /// Calls `request(method, body)` on the instance named `instance`, blocking this thread.
    ///
    /// Call this from a blocking context; from async code use [`Host::request`].
    pub fn request_blocking(
        &self,
        instance: &str,
        method: &str,
        body: &str,
    ) -> Result<String, PluginError> {
        self.inner
            .request(RStr::from(instance), RStr::from(method), RStr::from(body))
            .into_result()
            .map(String::from)
    }

    /// Calls `request(method, body)` on the instance named `instance` without stalling the
    /// runtime. On a multi-threaded runtime (every instance's own) the call runs in place and
    /// the worker's other tasks move to other workers (`block_in_place`): no hand-over to another
    /// thread and back (the HTTP API's throughput went from 1,440-1,610 to 1,490-1,740
    /// requests/s, within this machine's noise). Elsewhere it runs on the blocking pool.
    pub async fn request(
        &self,
        instance: &str,
        method: &str,
        body: String,
    ) -> Result<String, PluginError> {
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(|| self.request_blocking(instance, method, &body));
        }
        let host = self.clone();
        let instance = instance.to_owned();
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || host.request_blocking(&instance, &method, &body))
            .await
            .map_err(|e| PluginError::transient(format!("host request task failed: {e}")))?
    }
}

/// Parses a plugin's config from the JSON text the host passes, with the path of the bad value in
/// the message (`rules[2].level: unknown variant ...`).
pub fn parse_config<C: DeserializeOwned>(config_json: &str) -> Result<C, PluginError> {
    crate::json_body::from_json_with_path(config_json.as_bytes()).map_err(|e| match e.path {
        Some(path) => PluginError::config(format!("invalid config at `{path}`: {}", e.message)),
        None => PluginError::config(format!("invalid config: {}", e.message)),
    })
}
