//! The connector itself: the [`Plugin`] impl that owns the shared state and the background tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use logrelay_plugin_api::{Context, Host, Plugin, PluginError, Record};
use teloxide::Bot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::TelegramError;
use crate::state::Shared;
use crate::{commands, sender};

/// Sends alerts for records that match its rules to Telegram chats; see the crate docs.
pub struct Telegram {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sender_alive: Arc<AtomicBool>,
    shut_down: AtomicBool,
}

impl Plugin for Telegram {
    type Config = Config;
    const TYPE_NAME: &'static str = "telegram";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "sends alerts for records matching allow-list rules to Telegram chats, grouped and rate-limited";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");
    /// Answers `request("status", "")` with its counters, queue and muted rules.
    const CAPABILITIES: &'static [&'static str] = &["status"];

    /// Without a call to the Bot API (`check --online` makes one).
    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(config.validate().map(|_| ()).map_err(PluginError::from))
    }

    async fn new(config: Config, ctx: Context) -> Result<Self, PluginError> {
        let settings = config.validate()?;
        let url = url::Url::parse(&settings.api_url).map_err(|e| TelegramError::Invalid {
            option: "api_url".into(),
            reason: format!("is not a URL: {e}"),
        })?;
        let client = teloxide::net::default_reqwest_settings()
            .build()
            .map_err(|e| TelegramError::Client(e.to_string()))?;
        let bot = Bot::with_client(settings.token.0.clone(), client).set_api_url(url);
        let rules = settings.rules.len();
        let commands = settings.commands;
        let shared = Arc::new(Shared::new(settings, ctx.instance_id().to_owned()));
        let (stop, stop_rx) = watch::channel(false);
        let sender_alive = Arc::new(AtomicBool::new(true));
        let mut tasks = Vec::new();
        {
            let shared = shared.clone();
            let bot = bot.clone();
            let stop_rx = stop_rx.clone();
            let alive = sender_alive.clone();
            tasks.push(tokio::spawn(async move {
                sender::run(shared, bot, stop_rx).await;
                alive.store(false, Ordering::Release);
            }));
        }
        tasks.push(tokio::spawn(report_metrics(
            shared.clone(),
            ctx.host().clone(),
            stop_rx.clone(),
        )));
        if commands {
            tasks.push(tokio::spawn(commands::run(shared.clone(), bot, stop_rx)));
        }
        if rules == 0 {
            tracing::warn!("No rules are configured: no alert will be sent.");
        }
        tracing::info!(
            rules,
            commands,
            api_url = %shared.settings.api_url,
            "Sending alerts to Telegram."
        );
        Ok(Telegram {
            shared,
            stop,
            tasks: Mutex::new(tasks),
            sender_alive,
            shut_down: AtomicBool::new(false),
        })
    }

    /// Matches and queues; never waits on Telegram. Always accepts the batch.
    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        self.shared.accept(batch);
        Ok(())
    }

    /// Healthy while the sender runs. Telegram being unreachable is not a failure here (the
    /// connector is best-effort; `/status` and `request("status")` show failed attempts).
    async fn healthcheck(&self) -> Result<(), PluginError> {
        if self.sender_alive.load(Ordering::Acquire) || self.shut_down.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(TelegramError::SenderStopped.into())
        }
    }

    async fn request(&self, method: &str, _body: &str) -> Result<String, PluginError> {
        match method {
            "status" => serde_json::to_string(&self.shared.status())
                .map_err(|e| PluginError::permanent(format!("cannot encode the status: {e}"))),
            other => Err(PluginError::permanent(format!(
                "unknown method `{other}`; the {} connector answers `status`",
                Self::TYPE_NAME
            ))),
        }
    }

    /// Sends pending grouped messages and what is queued, for at most `shutdown_flush_ms`, then
    /// stops the background tasks.
    async fn shutdown(&self) -> Result<(), PluginError> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.flush_all_groups();
        let deadline = Instant::now() + self.shared.settings.shutdown_flush;
        while !self.shared.idle() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.shared.status().queued;
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            task.abort();
        }
        let status = self.shared.status();
        tracing::info!(
            sent = status.sent,
            failed = status.failed,
            unsent = left,
            "Telegram connector stopped."
        );
        Ok(())
    }
}

/// How often the counters are reported to the host's `/metrics`.
const METRICS_EVERY: Duration = Duration::from_secs(5);

/// Reports the counters to the host (`logrelay_plugin_telegram_*{instance=...}` under
/// `/metrics`) every [`METRICS_EVERY`] until `stop` is raised. A host older than
/// connector metrics refuses them; that changes nothing else.
async fn report_metrics(shared: Arc<Shared>, host: Host, mut stop: watch::Receiver<bool>) {
    loop {
        let s = shared.status();
        for (name, help, total) in [
            (
                "telegram_rate_limited_total",
                "429 answers from Telegram; each was retried after its retry_after.",
                s.rate_limited,
            ),
            (
                "telegram_rejected_total",
                "Messages Telegram refused for good (chat not found, bot blocked); dropped.",
                s.rejected,
            ),
            (
                "telegram_folded_total",
                "Alerts dropped into a summary because the queue was full.",
                s.folded,
            ),
            (
                "telegram_failed_total",
                "Send attempts that failed and were retried (network, timeout, 5xx).",
                s.failed,
            ),
            (
                "telegram_sent_total",
                "Telegram messages delivered.",
                s.sent,
            ),
            (
                "telegram_alerts_total",
                "Alerts produced by rules.",
                s.alerts,
            ),
        ] {
            let _ = host.counter_set(name, help, total as f64);
        }
        let _ = host.gauge_set(
            "telegram_queued",
            "Messages waiting to be sent.",
            s.queued as f64,
        );
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(METRICS_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
