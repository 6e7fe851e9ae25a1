//! The connector: connects and migrates at start, writes batches, answers requests, runs the
//! retention task (plain PostgreSQL), closes the pool at shutdown.

use std::sync::{Arc, Mutex, PoisonError};

use logrelay_plugin_api::{Context, Host, Plugin, PluginError, Record, RecordFlags};
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Executor, PgPool};

use crate::api::Api;
use crate::config::{Config, Settings, TimescaleMode};
use crate::error::TimescaleError;
use crate::schema::{self, Storage};
use crate::write::Writer;
use crate::{nodelay, retention};

/// The `timescale` connector: a PostgreSQL store, a TimescaleDB hypertable when it can be.
pub struct Timescale {
    /// The pool every part shares (a handle; closed at shutdown).
    pool: PgPool,
    /// The checked settings.
    settings: Arc<Settings>,
    /// Writes the batches (and the records of `add` requests).
    writer: Writer,
    /// Answers the store's requests.
    api: Api,
    retention: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where the write latency is reported (set by `new`; tests that start the store directly
    /// report nothing).
    metrics: std::sync::OnceLock<Host>,
}

/// Turns Nagle's algorithm off on a new TCP connection (see `nodelay.rs`). Never fails the
/// connection: without it, writes are only slower.
async fn tcp_nodelay(conn: &mut PgConnection, tally: &nodelay::Tally) {
    // Both ends as the server sees them: our socket is the one with exactly these addresses.
    type Ends = (Option<String>, Option<i32>, Option<String>, Option<i32>);
    let ends: Result<Ends, sqlx::Error> = sqlx::query_as(
        "SELECT host(inet_client_addr()), inet_client_port(), \
                    host(inet_server_addr()), inet_server_port()",
    )
    .fetch_one(&mut *conn)
    .await;
    let found = match ends {
        Ok((Some(ca), Some(cp), Some(sa), Some(sp))) => {
            let addr = |ip: &str, port: i32| {
                let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
                let port = u16::try_from(port).map_err(|e| e.to_string())?;
                Ok::<_, String>(std::net::SocketAddr::new(ip, port))
            };
            addr(&ca, cp).and_then(|local| {
                let peer = addr(&sa, sp)?;
                nodelay::set_on_connection(local, peer).map_err(|e| e.to_string())
            })
        }
        Ok(_) => return, // not TCP after all
        Err(e) => Err(e.to_string()),
    };
    tally.count(matches!(found, Ok(true)));
    match found {
        Ok(true) => tracing::debug!("TCP_NODELAY set on a new database connection."),
        Ok(false) => tracing::debug!(
            "The new database connection's socket was not found (through a proxy or NAT?); TCP_NODELAY not set."
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Could not set TCP_NODELAY on a database connection; writes may be slower.")
        }
    }
}

impl Timescale {
    /// Opens the pool (one connection at once, so an unreachable server fails the start).
    async fn connect(s: &Settings, tally: Arc<nodelay::Tally>) -> Result<PgPool, TimescaleError> {
        let tcp = s.connect.get_socket().is_none() && !s.connect.get_host().starts_with('/');
        let options = PgPoolOptions::new()
            .max_connections(s.max_connections)
            .acquire_timeout(s.acquire_timeout.max(s.connect_timeout))
            .after_connect(move |conn, _| {
                let tally = tally.clone();
                Box::pin(async move {
                    if tcp {
                        tcp_nodelay(conn, &tally).await;
                    }
                    Ok(())
                })
            });
        match tokio::time::timeout(s.connect_timeout, options.connect_with(s.connect.clone())).await
        {
            Ok(Ok(pool)) => Ok(pool),
            Ok(Err(source)) => {
                if crate::error::is_connection_error(&source) {
                    Err(TimescaleError::Unreachable {
                        address: s.address.clone(),
                        source,
                    })
                } else {
                    Err(TimescaleError::Db {
                        what: "connecting",
                        source,
                    })
                }
            }
            Err(_) => Err(TimescaleError::ConnectTimeout {
                address: s.address.clone(),
                ms: s.connect_timeout.as_millis(),
            }),
        }
    }

    async fn start(config: Config) -> Result<Timescale, TimescaleError> {
        let settings = Settings::from_config(config)?;
        let tally = Arc::new(nodelay::Tally::default());
        let pool = Self::connect(&settings, tally.clone()).await?;
        let info = schema::migrate(&pool, &settings).await?;
        let t = settings.qualified();
        match &info.storage {
            Storage::Hypertable {
                version,
                policies: true,
            } => tracing::info!(
                table = %t,
                timescaledb = %version,
                compress_after = ?settings.compress_after,
                retention = ?settings.retention,
                applied = ?info.applied,
                "TimescaleDB found: records go to a hypertable, old chunks are compressed and dropped by its policies."
            ),
            Storage::Hypertable {
                version,
                policies: false,
            } => tracing::warn!(
                table = %t,
                timescaledb = %version,
                retention = ?settings.retention,
                applied = ?info.applied,
                "TimescaleDB found, built with the Apache-2.0 licence only: records go to a hypertable, but it cannot compress chunks or run policy jobs, so nothing is compressed (compress_after is ignored) and this store drops chunks older than `retention` itself. For compression, use the Community Edition build (timescaledb.license = 'timescale')."
            ),
            Storage::Plain => match &info.timescaledb_missing {
                Some(why) if settings.timescale != TimescaleMode::Off => tracing::warn!(
                    table = %t,
                    retention = ?settings.retention,
                    message_index = info.message_trigram,
                    applied = ?info.applied,
                    "TimescaleDB not used ({why}): records go to a plain table with B-tree and BRIN indexes; retention by batched deletes."
                ),
                _ => tracing::info!(
                    table = %t,
                    retention = ?settings.retention,
                    message_index = info.message_trigram,
                    applied = ?info.applied,
                    "Records go to a plain table with B-tree and BRIN indexes; retention by batched deletes."
                ),
            },
        }
        // TimescaleDB's own retention job needs its Community licence; otherwise this task.
        let retention = match (&info.storage, settings.retention) {
            (Storage::Hypertable { policies: true, .. }, _) | (_, None) => None,
            (storage, Some(_)) => Some(retention::spawn(
                pool.clone(),
                settings.clone(),
                storage.clone(),
            )),
        };
        let writer = Writer::new(pool.clone(), &t, settings.dedupe_window);
        let settings = Arc::new(settings);
        Ok(Timescale {
            api: Api::new(pool.clone(), settings.clone(), Arc::new(info), tally),
            pool,
            settings,
            writer,
            retention: Mutex::new(retention),
            metrics: std::sync::OnceLock::new(),
        })
    }
}

impl Timescale {
    /// Reports one write's latency and outcome to the host's `/metrics`
    /// (`logrelay_plugin_timescale_*{instance=...}`): the last latency, and sum and count for
    /// the mean over time. A host older than connector metrics refuses them; nothing else changes.
    fn report_write(&self, took: std::time::Duration, ok: bool) {
        let Some(host) = self.metrics.get() else {
            return;
        };
        let seconds = took.as_secs_f64();
        let _ = host.gauge_set(
            "timescale_write_seconds_last",
            "Duration of the last batch write (statement and commit), seconds.",
            seconds,
        );
        let _ = host.counter_add(
            "timescale_write_seconds_total",
            "Time spent writing batches, seconds (divide by timescale_writes_total for the mean).",
            seconds,
        );
        let _ = host.counter_add("timescale_writes_total", "Batch writes.", 1.0);
        if !ok {
            let _ = host.counter_add(
                "timescale_write_errors_total",
                "Batch writes that failed (retried by the host).",
                1.0,
            );
        }
    }

    /// Writes a batch; refused records are named in a permanent error, each with its own
    /// reason (`PluginError::with_refused`); the others are stored.
    async fn store(
        &self,
        batch: &[Record],
        flags: Option<&[RecordFlags]>,
    ) -> Result<(), PluginError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let written = self.writer.write(batch, flags).await;
        self.report_write(started.elapsed(), written.is_ok());
        let (_, refused) = written?;
        if refused.is_empty() {
            return Ok(());
        }
        Err(PluginError::permanent(format!(
            "{} of {} records refused (the others are stored)",
            refused.len(),
            batch.len()
        ))
        .with_refused(refused))
    }
}

impl Plugin for Timescale {
    type Config = Config;
    const TYPE_NAME: &'static str = "timescale";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "stores logs in PostgreSQL (a TimescaleDB hypertable when available) and answers queries";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");
    const CAPABILITIES: &'static [&'static str] = &["store"];
    const WORKER_THREADS: usize = 2;

    /// Without connecting (`check --online` connects and runs the migrations).
    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(
            Settings::from_config(config)
                .map(|_| ())
                .map_err(PluginError::from),
        )
    }

    async fn new(config: Config, ctx: Context) -> Result<Self, PluginError> {
        let store = Timescale::start(config).await?;
        let _ = store.metrics.set(ctx.host().clone());
        Ok(store)
    }

    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        self.store(batch, None).await
    }

    /// The host says which records got their receive time: only those need the dedupe
    /// window's probe (write.rs).
    async fn handle_batch_flagged(
        &self,
        batch: &[Record],
        flags: &[RecordFlags],
    ) -> Result<(), PluginError> {
        self.store(batch, Some(flags)).await
    }

    async fn healthcheck(&self) -> Result<(), PluginError> {
        self.pool
            .execute("SELECT 1")
            .await
            .map_err(|source| TimescaleError::Unreachable {
                address: self.settings.address.clone(),
                source,
            })?;
        Ok(())
    }

    async fn request(&self, method: &str, body: &str) -> Result<String, PluginError> {
        Ok(self.api.handle(&self.writer, method, body).await?)
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        if let Some(task) = self
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.pool.close().await;
        Ok(())
    }
}
