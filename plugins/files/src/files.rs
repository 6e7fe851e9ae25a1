//! The files connector itself: the plugin, its background tasks and its requests.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use logrelay_plugin_api::{Context, Host, Plugin, PluginError, Purpose, Record};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::archive::{self, ArchiveCounters, Job};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Settings};
use crate::error::FilesError;
use crate::http::{self, ApiState};
use crate::writer::Writer;

/// How often the background task checks for rotation by time and the interval fsync.
const TICK: Duration = Duration::from_millis(250);

/// How often the archive counters are reported to the host's `/metrics`.
const METRICS_EVERY: Duration = Duration::from_secs(5);

/// Writes records to rotated, archived and retained log files, and serves them over HTTP.
pub struct Files {
    settings: Arc<Settings>,
    writer: Arc<Mutex<Writer>>,
    jobs: UnboundedSender<Job>,
    http_address: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<ArchiveCounters>,
}

impl Files {
    /// Starts the connector with `clock` (tests pass a [`ManualClock`](crate::ManualClock)).
    /// Must run inside a tokio runtime: the background tasks and the HTTP server are spawned
    /// on it.
    pub async fn start(
        settings: Settings,
        clock: Arc<dyn Clock>,
        instance: &str,
    ) -> Result<Files, FilesError> {
        let settings = Arc::new(settings);
        let (jobs, receiver) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer::open(settings.clone(), clock.clone(), instance, jobs.clone())?;
        let writer = Arc::new(Mutex::new(writer));
        let counters = Arc::new(ArchiveCounters::default());
        let mut tasks = vec![tokio::spawn(archive::run(
            settings.clone(),
            clock.clone(),
            receiver,
            counters.clone(),
        ))];
        tasks.push(tokio::spawn(ticker(
            writer.clone(),
            jobs.clone(),
            settings.retention.check_every,
        )));
        let _ = jobs.send(Job::Retention);
        let mut http_address = None;
        if let Some(http) = &settings.http {
            let listener = tokio::net::TcpListener::bind(http.listen)
                .await
                .map_err(|source| FilesError::Listen {
                    address: http.listen.to_string(),
                    source,
                })?;
            let address = listener.local_addr().ok();
            let app = http::router(ApiState {
                directory: settings.directory.clone(),
                pattern: settings.file_name.clone(),
                token: http.token.as_deref().map(Arc::from),
            });
            tracing::info!(address = ?address, authenticated = http.token.is_some(), "Serving the log files over HTTP.");
            if http.token.is_none() {
                tracing::warn!(
                    "The files HTTP API has no token: anyone who reaches it can read the logs."
                );
            }
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "The files HTTP server stopped.");
                }
            }));
            http_address = address;
        }
        tracing::info!(
            directory = %settings.directory.display(),
            format = ?settings.format,
            rotate = ?settings.rotate_interval,
            durability = ?settings.durability,
            compression = ?settings.compression,
            "Writing log files."
        );
        Ok(Files {
            settings,
            writer,
            jobs,
            http_address,
            tasks,
            counters,
        })
    }

    /// Reports the archive counters to `host` (`logrelay_plugin_files_*{instance=...}` under
    /// its `/metrics`) every few seconds, until the instance shuts down.
    pub fn report_metrics_to(&mut self, host: Host) {
        let counters = self.counters.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                for (name, help, counter) in [
                    (
                        "files_archived_total",
                        "Rotated files compressed.",
                        &counters.archived,
                    ),
                    (
                        "files_archive_failures_total",
                        "Rotated files that could not be compressed (they stay as they are).",
                        &counters.archive_failed,
                    ),
                    (
                        "files_uploads_total",
                        "Archives uploaded.",
                        &counters.uploaded,
                    ),
                    (
                        "files_upload_attempt_failures_total",
                        "Archive upload attempts that failed (each retried up to the limit).",
                        &counters.upload_attempts_failed,
                    ),
                    (
                        "files_upload_failures_total",
                        "Archives whose upload was given up (they stay on disk).",
                        &counters.upload_failed,
                    ),
                ] {
                    // A host older than connector metrics refuses them; nothing else changes.
                    let _ = host.counter_set(name, help, counter.load(Ordering::Relaxed) as f64);
                }
                tokio::time::sleep(METRICS_EVERY).await;
            }
        }));
    }

    /// The address the HTTP server listens on, once bound (useful with port 0).
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http_address
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every queued archive, upload and retention job is done.
    pub async fn flush(&self) -> Result<(), PluginError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job::Flush(tx))
            .map_err(|_| PluginError::fatal("the archive task has stopped"))?;
        rx.await
            .map_err(|_| PluginError::fatal("the archive task has stopped"))
    }
}

/// Rotation by time (also when no record comes), the interval fsync, periodic retention.
async fn ticker(writer: Arc<Mutex<Writer>>, jobs: UnboundedSender<Job>, retention_every: Duration) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // A batch being written holds the lock and checks rotation itself: skip this round.
        if let Ok(mut w) = writer.try_lock()
            && let Err(e) = w.tick()
        {
            tracing::warn!(error = %e.chain(), "Periodic rotation failed; will try again.");
        }
        if last_retention.elapsed() >= retention_every {
            last_retention = tokio::time::Instant::now();
            if jobs.send(Job::Retention).is_err() {
                return;
            }
        }
    }
}

impl Plugin for Files {
    type Config = Config;
    const TYPE_NAME: &'static str = "files";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "writes log files: rotation, archiving, retention, per-field formatting, download over HTTP";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");
    /// `status`, `list`, `rotate`, `tick`, `retention` and `flush` through `request`.
    const CAPABILITIES: &'static [&'static str] = &["files"];

    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(config.check().map_err(PluginError::from))
    }

    async fn new(config: Config, ctx: Context) -> Result<Self, PluginError> {
        let mut settings = config.validate()?;
        if ctx.purpose() == Purpose::OneShot {
            // `replay` beside a running host, whose instance serves the files.
            settings.http = None;
        }
        let mut files = Files::start(settings, Arc::new(SystemClock), ctx.instance_id()).await?;
        files.report_metrics_to(ctx.host().clone());
        Ok(files)
    }

    // Runs on the host's worker thread for this instance (through `block_on`), so blocking file
    // I/O here holds up no other instance.
    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        let bytes = self.writer().write_batch(batch)?;
        tracing::trace!(records = batch.len(), bytes, "Batch written.");
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), PluginError> {
        let dir = &self.settings.directory;
        if dir.is_dir() {
            Ok(())
        } else {
            Err(PluginError::transient(format!(
                "log directory {} is gone",
                dir.display()
            )))
        }
    }

    async fn request(&self, method: &str, _body: &str) -> Result<String, PluginError> {
        match method {
            "status" => Ok(serde_json::json!({
                "directory": self.settings.directory,
                "http_address": self.http_address.map(|a| a.to_string()),
                "open_files": self.writer().open_names(),
            })
            .to_string()),
            "list" => {
                let files = archive::list(&self.settings.directory, &self.settings.file_name)
                    .map_err(|e| {
                        PluginError::transient(format!("cannot list the log directory: {e}"))
                    })?;
                Ok(serde_json::json!({ "files": files }).to_string())
            }
            "rotate" => {
                self.writer().rotate_all()?;
                Ok("{}".to_owned())
            }
            "tick" => {
                self.writer().tick()?;
                Ok("{}".to_owned())
            }
            "retention" => {
                let _ = self.jobs.send(Job::Retention);
                self.flush().await?;
                Ok("{}".to_owned())
            }
            "flush" => {
                self.flush().await?;
                Ok("{}".to_owned())
            }
            other => Err(PluginError::permanent(format!(
                "unknown method `{other}`; the files connector answers status, list, rotate, tick, retention and flush"
            ))),
        }
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        self.writer().close()?;
        for task in &self.tasks {
            task.abort();
        }
        tracing::info!("Log files synced and closed.");
        Ok(())
    }
}
