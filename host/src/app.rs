//! The wiring the commands share: loading plugins.toml, starting the engine, and the `run`,
//! `check`, `plugins`, `health` and `reload` commands. `replay` and `sql` build on
//! [`load_plugins_config`] and [`start_engine`]; `cli.rs` only parses and dispatches.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use logrelay_plugin_api::Purpose;
use tokio::sync::watch;

use crate::config::{Env, LogFormat, PluginsConfig, PluginsConfigError, Settings, SettingsError};
use crate::engine::{Engine, EngineOptions, StartupErrors};
use crate::intake::{self, IntakeStats};
use crate::loader;

/// The command line or configuration cannot be used (exit code 2), for problems found outside
/// the typed configuration errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

/// The exit code for an error that ended a command (the table is [`crate::cli::EXIT_CODES`]):
/// 2 when the command line or configuration cannot be used, 3 when something it needs could not
/// be reached or failed while running.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let config = e.chain().any(|c| {
        c.is::<SettingsError>()
            || c.is::<PluginsConfigError>()
            || c.is::<loader::LoadError>()
            || c.is::<StartupErrors>()
            || c.is::<ConfigProblem>()
    });
    if config { 2 } else { 3 }
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

/// Logs to stderr with `filter` (an `EnvFilter`; `info` when it does not parse).
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Colour only for a person at a terminal: never into a file, journald or `docker logs`, and
/// never when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Loads plugins.toml, reporting every problem.
pub fn load_plugins_config(settings: &Settings, env: &Env) -> anyhow::Result<PluginsConfig> {
    let env = env.with_settings(settings);
    let config = PluginsConfig::load(&settings.plugins_file, &env, &settings.plugin_dir)?;
    if config.enabled().next().is_none() {
        return Err(ConfigProblem(format!(
            "{} enables no connector; add a [plugins.<name>] table (see docs/CONFIG.md)",
            settings.plugins_file.display()
        ))
        .into());
    }
    Ok(config)
}

/// Starts the engine on a blocking thread (plugins' constructors may block).
pub async fn start_engine(
    settings: &Settings,
    config: PluginsConfig,
    purpose: Purpose,
) -> anyhow::Result<(
    Arc<Engine>,
    tokio::sync::mpsc::UnboundedReceiver<crate::engine::Completed>,
)> {
    let options = EngineOptions {
        purpose,
        ..EngineOptions::from(settings)
    };
    let started = tokio::task::spawn_blocking(move || Engine::start(&config, options))
        .await
        .context("the start-up task failed")??;
    Ok(started)
}

/// `logrelay run`: consumes RabbitMQ until a signal, then drains and stops.
pub async fn run(settings: Arc<Settings>, env: &Env) -> anyhow::Result<ExitCode> {
    let config = load_plugins_config(&settings, env)?;
    let (engine, completions) = start_engine(&settings, config, Purpose::Run).await?;
    for inst in engine.instances().iter() {
        tracing::info!(
            plugin = %inst.spec.name,
            r#type = %inst.manifest.type_name,
            version = %inst.manifest.version,
            acceptance = ?inst.spec.acceptance,
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
pub fn admin_call(settings: &Settings, method: &str, path: &str) -> anyhow::Result<ExitCode> {
    let (status, body) = admin_request(settings, method, path)?;
    println!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One request to a running host's admin address (`LOGRELAY_ADMIN_ADDR`; an unspecified IP is
/// asked on 127.0.0.1): the status code and the body.
pub fn admin_request(
    settings: &Settings,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
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
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// `logrelay check`: validates every enabled instance's config without side effects (with
/// `online`, builds and health-checks each as for a run), then stops them.
pub fn check(settings: &Settings, env: &Env, online: bool) -> anyhow::Result<ExitCode> {
    let config = load_plugins_config(settings, env)?;
    match Engine::check(&config, online) {
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
                    spec.acceptance,
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
            describe_refused_options(&config, &e.0);
            Ok(ExitCode::from(2))
        }
    }
}

/// Under `check`'s errors: for each instance whose connector refused an option (unknown or of
/// the wrong type), the options its library describes, and the closest name to an unknown one.
fn describe_refused_options(config: &PluginsConfig, errors: &[String]) {
    for spec in config.enabled() {
        let prefix = format!("[plugins.{}]: config: invalid config", spec.name);
        let Some(error) = errors.iter().find(|e| e.starts_with(&prefix)) else {
            continue;
        };
        let Ok(lib) = loader::load_library(&spec.library) else {
            continue;
        };
        let options = crate::describe::options(&lib.example_config());
        if options.is_empty() {
            continue;
        }
        if let Some(unknown) = error
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name)
            && let Some(closest) = options
                .iter()
                .map(|o| (strsim::jaro_winkler(unknown, &o.key), &o.key))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            eprintln!(
                "  [plugins.{}]: `{unknown}` is not an option of `{}`; did you mean `{}`?",
                spec.name, spec.type_name, closest.1
            );
        }
        eprintln!(
            "  [plugins.{}] `{}` options (logrelay plugins --describe {}):\n{}",
            spec.name,
            spec.type_name,
            spec.type_name,
            crate::describe::render(&options).trim_end()
        );
    }
}

/// `logrelay plugins --describe TYPE`: the options of a connector, from its library.
pub fn describe(settings: &Settings, type_name: &str) -> anyhow::Result<ExitCode> {
    let path = settings
        .plugin_dir
        .join(format!("liblogrelay_{}.so", type_name.replace('-', "_")));
    let lib = match loader::load_library(&path) {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("error: {e} (set LOGRELAY_PLUGIN_DIR)");
            return Ok(ExitCode::from(2));
        }
    };
    let m = lib.manifest();
    if m.type_name != type_name {
        eprintln!(
            "error: {} is a `{}` connector, not `{type_name}`",
            path.display(),
            m.type_name
        );
        return Ok(ExitCode::from(2));
    }
    println!("{} {}: {}", m.type_name, m.version, m.description);
    println!("  ({})", path.display());
    println!();
    println!("Options under [plugins.<name>.config], from the library's example config:");
    print!(
        "{}",
        crate::describe::render(&crate::describe::options(&lib.example_config()))
    );
    Ok(ExitCode::SUCCESS)
}

/// `logrelay plugins`: lists the connector libraries in the plugin directory.
pub fn plugins(settings: &Settings) -> anyhow::Result<ExitCode> {
    let dir = &settings.plugin_dir;
    let found = loader::discover(dir)
        .with_context(|| format!("cannot list the plugin directory {}", dir.display()))?;
    if found.is_empty() {
        eprintln!(
            "error: no liblogrelay_*.so in {} (set LOGRELAY_PLUGIN_DIR)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
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
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
