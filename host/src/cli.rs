//! The command line: `run`, `check`, `plugins`, `replay`, `send`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::config::{Env, PluginsConfig, Settings};
use crate::engine::{Engine, EngineOptions};
use crate::intake::{self, IntakeStats};
use crate::loader;

/// logrelay: a log hub that takes structured logs from RabbitMQ and hands them, in batches, to
/// connector plugins.
#[derive(Debug, Parser)]
#[command(name = "logrelay", version)]
pub struct Cli {
    /// The settings file (`.env` format); the real environment overrides it.
    #[arg(long, global = true, default_value = ".env")]
    pub env_file: PathBuf,
    /// Refuse to start on an invalid setting instead of falling back to its default.
    #[arg(long, global = true)]
    pub strict: bool,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume RabbitMQ and hand every record to the configured connectors.
    Run,
    /// Load and start every configured connector, run their health checks, report, and exit.
    Check,
    /// List the connector libraries in the plugin directory.
    Plugins,
    /// Feed a JSON-lines file through the configured connectors, without RabbitMQ.
    Replay {
        /// The file; one log object per line.
        file: PathBuf,
    },
    /// Publish logs to RabbitMQ with publisher confirms.
    Send(crate::send::SendArgs),
    /// Ask a running host for its health (`/health` on LOGRELAY_ADMIN_ADDR); exit 0 when healthy.
    Health,
    /// Run one SQL statement through the store connector (read-only unless --write).
    Sql(crate::sql::SqlArgs),
    /// Make a running host re-read plugins.toml (like SIGHUP); prints what changed or why not.
    Reload,
}

/// Runs the command; the exit code says how it went.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = Env::load(Some(&cli.env_file))?;
    let (settings, warnings) = Settings::from_env(&env, cli.strict)?;
    init_logging(&settings.log);
    for w in &warnings {
        tracing::warn!(variable = w.variable, "{w}");
    }
    let settings = Arc::new(settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => runtime.block_on(run(settings, &env)),
        Command::Check => check(&settings, &env),
        Command::Plugins => plugins(&settings),
        Command::Replay { file } => runtime.block_on(crate::replay::run(settings, &env, &file)),
        Command::Send(args) => runtime.block_on(crate::send::run(&settings, args)),
        Command::Health => admin_call(&settings, "GET", "/health"),
        Command::Reload => admin_call(&settings, "POST", "/reload"),
        Command::Sql(args) => crate::sql::run(&settings, &env, args),
    }
}

/// Re-reads plugins.toml and applies it to the running engine, logging the outcome.
fn reload_now(
    settings: &Settings,
    env: &Env,
    engine: &Engine,
) -> Result<crate::engine::ReloadReport, String> {
    tracing::info!(file = %settings.plugins_file.display(), "Reloading plugins.toml.");
    let outcome = load_plugins_config(settings, env)
        .map_err(|e| format!("{e:#}"))
        .and_then(|config| engine.reload(&config).map_err(|e| e.to_string()));
    match &outcome {
        Ok(r) => tracing::info!(
            added = ?r.added,
            changed = ?r.changed,
            removed = ?r.removed,
            "Reloaded."
        ),
        Err(e) => tracing::error!(error = %e, "Reload refused; the running configuration stays."),
    }
    outcome
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads plugins.toml, reporting every problem.
pub fn load_plugins_config(settings: &Settings, env: &Env) -> anyhow::Result<PluginsConfig> {
    let env = env.with_settings(settings);
    let config = PluginsConfig::load(&settings.plugins_file, &env, &settings.plugin_dir)?;
    if config.enabled().next().is_none() {
        bail!(
            "{} enables no connector; add a [plugins.<name>] table (see docs/CONFIG.md)",
            settings.plugins_file.display()
        );
    }
    Ok(config)
}

/// Starts the engine on a blocking thread (plugins' constructors may block).
pub async fn start_engine(
    settings: &Settings,
    config: PluginsConfig,
) -> anyhow::Result<(
    Arc<Engine>,
    tokio::sync::mpsc::UnboundedReceiver<crate::engine::Completed>,
)> {
    let options = EngineOptions::from(settings);
    let started = tokio::task::spawn_blocking(move || Engine::start(&config, options))
        .await
        .context("the start-up task failed")??;
    Ok(started)
}

async fn run(settings: Arc<Settings>, env: &Env) -> anyhow::Result<ExitCode> {
    let config = load_plugins_config(&settings, env)?;
    let (engine, completions) = start_engine(&settings, config).await?;
    for inst in engine.instances().iter() {
        tracing::info!(
            plugin = %inst.spec.name,
            r#type = %inst.manifest.type_name,
            version = %inst.manifest.version,
            delivery = ?inst.spec.delivery,
            "Instance started."
        );
    }
    tokio::spawn(engine.clone().watchdog());
    tokio::spawn(engine.clone().health_loop(settings.healthcheck_interval));
    let stats = Arc::new(IntakeStats::default());
    let reloader: crate::admin::Reloader = {
        let (settings, env, engine) = (settings.clone(), env.clone(), engine.clone());
        Arc::new(move || reload_now(&settings, &env, &engine))
    };
    let admin = crate::admin::AdminState {
        engine: engine.clone(),
        intake: stats.clone(),
        reload: reloader.clone(),
    };
    let bound = crate::admin::serve(settings.admin_addr, admin)
        .await
        .with_context(|| {
            format!(
                "cannot listen on LOGRELAY_ADMIN_ADDR={} for metrics and health",
                settings.admin_addr
            )
        })?;
    tracing::info!(addr = %bound, "Serving /metrics, /health and /reload.");
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let reload = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reload()).await;
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let signalled = engine.clone();
    let shutdown_timeout = settings.shutdown_timeout;
    let deadline = Arc::new(std::sync::OnceLock::new());
    let deadline_set = deadline.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = deadline_set.set(Instant::now() + shutdown_timeout);
        tracing::info!("Shutting down: finishing the batches in flight.");
        signalled.stop_retrying();
        let _ = stop_tx.send(true);
    });
    intake::run(
        settings.clone(),
        engine.clone(),
        completions,
        stop_rx,
        stats.clone(),
    )
    .await;
    // One budget for the whole shutdown: what the drain left of it goes to the instances.
    let deadline = deadline
        .get()
        .copied()
        .unwrap_or_else(|| Instant::now() + settings.shutdown_timeout)
        .max(Instant::now() + std::time::Duration::from_millis(500));
    let stopping = engine.clone();
    tokio::task::spawn_blocking(move || stopping.shutdown(deadline))
        .await
        .context("the shutdown task failed")?;
    tracing::info!(
        messages = stats.messages.load(std::sync::atomic::Ordering::Relaxed),
        acked = stats.acked.load(std::sync::atomic::Ordering::Relaxed),
        dead_lettered = stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        "Stopped."
    );
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `logrelay health` / `logrelay reload`: one request to the running host's admin address
/// (`health` is the Docker HEALTHCHECK). Exit 0 on a 200 answer.
fn admin_call(settings: &Settings, method: &str, path: &str) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let mut addr = settings.admin_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(60);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| {
        format!("nothing answers on LOGRELAY_ADMIN_ADDR={addr}; is logrelay running?")
    })?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    println!("{body}");
    Ok(if status == "200" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(settings: &Settings, env: &Env) -> anyhow::Result<ExitCode> {
    let config = load_plugins_config(settings, env)?;
    match Engine::check(&config) {
        Ok(instances) => {
            println!(
                "{}: {} instance(s) ready",
                settings.plugins_file.display(),
                instances.len()
            );
            for (spec, manifest) in instances {
                println!(
                    "  [plugins.{}] {} {} ({:?}) from {}",
                    spec.name,
                    manifest.type_name,
                    manifest.version,
                    spec.delivery,
                    spec.library.display()
                );
            }
            for spec in config.instances.iter().filter(|i| !i.enabled) {
                println!("  [plugins.{}] {} (disabled)", spec.name, spec.type_name);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn plugins(settings: &Settings) -> anyhow::Result<ExitCode> {
    let dir = &settings.plugin_dir;
    let found = loader::discover(dir)
        .with_context(|| format!("cannot list the plugin directory {}", dir.display()))?;
    if found.is_empty() {
        eprintln!(
            "error: no liblogrelay_*.so in {} (set LOGRELAY_PLUGIN_DIR)",
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = false;
    for path in found {
        match loader::load_library(&path) {
            Ok(lib) => {
                let m = lib.manifest();
                let caps = if m.capabilities.is_empty() {
                    String::from("-")
                } else {
                    m.capabilities.join(",")
                };
                println!(
                    "{:<12} {:<8} capabilities: {:<12} {}  ({})",
                    m.type_name,
                    m.version,
                    caps,
                    m.description,
                    path.display()
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
