//! The command line: parses the arguments and dispatches to the command (the wiring is in
//! [`crate::app`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app;
use crate::config::{Env, EnvFile, LogFormat, Settings};

/// logrelay: a log hub that takes structured logs from RabbitMQ and hands them, in batches, to
/// connector plugins.
#[derive(Debug, Parser)]
#[command(name = "logrelay", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The settings file (`.env` format); the real environment overrides it. Default: `.env` in
    /// the working directory when there is one; a file named here must exist.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Refuse to start on an invalid setting instead of falling back to its default.
    #[arg(long, global = true)]
    pub strict: bool,
    /// The host's log format: `text`, or `json` (one object per line); overrides
    /// LOGRELAY_LOG_FORMAT.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The exit codes, the same for every command (shown by `--help`).
pub const EXIT_CODES: &str = "\
Exit codes (every command):
  0  done
  1  done, and it reports a failure: a record not delivered or not confirmed, a host unhealthy,
     a statement refused
  2  the command line or configuration cannot be used: a setting or the --env-file,
     plugins.toml, a connector library, a connector refusing its config or failing to start
  3  something it needs could not be reached or failed while running: RabbitMQ, the store,
     a running host's admin address";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume RabbitMQ and hand every record to the configured connectors.
    Run,
    /// Validate the settings, plugins.toml and every connector's config, without side effects
    /// (no port bound, nothing written, no connection), report, and exit.
    Check {
        /// Also start every connector as `run` does and run its health check (tests database,
        /// broker and API connections; binds its ports, so not beside a running host).
        #[arg(long)]
        online: bool,
    },
    /// List the connector libraries in the plugin directory.
    Plugins {
        /// Print the options of the connector of this type instead (names, types, values and
        /// docs, from the library's own example config).
        #[arg(long, value_name = "TYPE")]
        describe: Option<String>,
    },
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
    /// Watch a running host: intake and per-instance rates, queued batches, errors and call
    /// times, from its /metrics on LOGRELAY_ADMIN_ADDR.
    Top(crate::top::TopArgs),
    /// Follow the records a running host stores, live, through the http-api connector's
    /// /logs/stream with the API's filters; printed as the console connector would.
    Tail(crate::tail::TailArgs),
}

/// Runs the command; the exit code says how it went.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let env_file = match &cli.env_file {
        Some(path) => EnvFile::Named(path),
        None => EnvFile::Default(std::path::Path::new(".env")),
    };
    let env = Env::load(env_file)?;
    let (settings, warnings) = Settings::from_env(&env, cli.strict)?;
    app::init_logging(&settings.log, cli.log_format.unwrap_or(settings.log_format));
    for w in &warnings {
        tracing::warn!(variable = %w.variable, "{w}");
    }
    let settings = Arc::new(settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => runtime.block_on(app::run(settings, &env)),
        Command::Check { online } => app::check(&settings, &env, online),
        Command::Plugins { describe: None } => app::plugins(&settings),
        Command::Plugins {
            describe: Some(type_name),
        } => app::describe(&settings, &type_name),
        Command::Replay { file } => runtime.block_on(crate::replay::run(settings, &env, &file)),
        Command::Send(args) => runtime.block_on(crate::send::run(&settings, args)),
        Command::Health => app::admin_call(&settings, "GET", "/health"),
        Command::Reload => app::admin_call(&settings, "POST", "/reload"),
        Command::Top(args) => crate::top::run(&settings, &args),
        Command::Tail(args) => runtime.block_on(crate::tail::run(&settings, args)),
        Command::Sql(args) => crate::sql::run(&settings, &env, args),
    }
}
