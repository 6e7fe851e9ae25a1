//! The host's settings: read from `.env` and the environment (which wins), each typed and checked.
//!
//! As the product's first design asks, an invalid value falls back to its default with a warning
//! naming the variable, the bad value and the default; strict mode (`LOGRELAY_STRICT=true` or
//! `--strict`) turns every such warning into a start-up error.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::decode::{DecodeOptions, TextIntake, UserAlias, parse_user_aliases};

/// Which settings file [`Env::load`] reads.
#[derive(Debug, Clone, Copy)]
pub enum EnvFile<'a> {
    /// Named by the user (`--env-file`): it must exist.
    Named(&'a Path),
    /// The default (`.env`): read when it exists.
    Default(&'a Path),
}

/// The environment as logrelay sees it: `.env` values overlaid by the real environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads `env_file` and overlays the process environment. A file named explicitly must
    /// exist; the default one (`.env` in the working directory) is read only when it does.
    pub fn load(env_file: EnvFile<'_>) -> Result<Env, SettingsError> {
        let mut vars = BTreeMap::new();
        let path = match env_file {
            EnvFile::Named(path) if !path.exists() => {
                return Err(SettingsError::EnvFile {
                    path: path.to_path_buf(),
                    reason: "no such file (named by --env-file; leave the option out to run without one)"
                        .to_owned(),
                });
            }
            EnvFile::Named(path) => Some(path),
            EnvFile::Default(path) => path.exists().then_some(path),
        };
        if let Some(path) = path {
            let iter = dotenvy::from_path_iter(path).map_err(|e| SettingsError::EnvFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| SettingsError::EnvFile {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                vars.insert(k, v);
            }
        }
        for (k, v) in std::env::vars_os() {
            if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
                vars.insert(k, v);
            }
        }
        Ok(Env { vars })
    }

    /// An environment made of exactly these pairs (for tests and embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// This environment with the validated settings written over it, so that `${VAR}` in
    /// plugins.toml sees a setting's default when it is unset and never a value that was refused.
    pub fn with_settings(&self, settings: &Settings) -> Env {
        let mut vars = self.vars.clone();
        for (k, v) in settings.exported_vars() {
            vars.insert(k.to_owned(), v);
        }
        Env { vars }
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// How the host writes its own log (`LOGRELAY_LOG_FORMAT`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, target, message, fields.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), for collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be `text` or `json`".to_owned()),
        }
    }
}

impl Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A problem with the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `.env` file could not be read.
    #[error("cannot read {path}: {reason}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Strict mode: one or more values were invalid.
    #[error("invalid settings (strict mode):\n  {}", .0.join("\n  "))]
    Strict(Vec<String>),
}

/// Every setting of the host, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LOGRELAY_AMQP_URL`: the RabbitMQ broker.
    pub amqp_url: String,
    /// `LOGRELAY_QUEUE`: the durable queue logs are consumed from.
    pub queue: String,
    /// `LOGRELAY_EXCHANGE`: the topic exchange bound to the queue.
    pub exchange: String,
    /// `LOGRELAY_PLUGINS`: path of plugins.toml.
    pub plugins_file: PathBuf,
    /// `LOGRELAY_PLUGIN_DIR`: where `liblogrelay_<type>.so` files are found.
    pub plugin_dir: PathBuf,
    /// `LOGRELAY_DATABASE_URL`: the PostgreSQL store (used by plugins.toml as `${LOGRELAY_DATABASE_URL}`).
    pub database_url: String,
    /// `LOGRELAY_HTTP_ADDR`: the HTTP API's listen address.
    pub http_addr: SocketAddr,
    /// `LOGRELAY_ADMIN_ADDR`: metrics and health.
    pub admin_addr: SocketAddr,
    /// `LOGRELAY_API_TOKEN`: bearer token of the HTTP routes (empty: read-only without token).
    pub api_token: Option<String>,
    /// `LOGRELAY_TELEGRAM_TOKEN`: the Telegram bot token.
    pub telegram_token: Option<String>,
    /// `LOGRELAY_LOG`: the host's log filter (`info`, `logrelay=debug,warn`...).
    pub log: String,
    /// `LOGRELAY_LOG_FORMAT`: `text` (for people) or `json` (one object per line, for log
    /// collectors).
    pub log_format: LogFormat,
    /// `LOGRELAY_STRICT`: refuse to start on an invalid setting.
    pub strict: bool,
    /// `LOGRELAY_PREFETCH`: unacknowledged deliveries in flight.
    pub prefetch: u16,
    /// `LOGRELAY_BATCH_MAX_RECORDS`: records per batch handed to connectors.
    pub batch_max_records: NonZeroUsize,
    /// `LOGRELAY_BATCH_MAX_WAIT_MS`: how long a partial batch waits for more records.
    pub batch_max_wait: Duration,
    /// `LOGRELAY_MAX_MESSAGE_BYTES`: larger messages are dead-lettered.
    pub max_message_bytes: usize,
    /// `LOGRELAY_DECODE_THREADS`: threads decoding bursts of deliveries; 0 is one per core, 1
    /// decodes on the intake's own thread.
    pub decode_threads: usize,
    /// `LOGRELAY_CHANNEL_CAPACITY`: batches queued per instance before back-pressure.
    pub channel_capacity: NonZeroUsize,
    /// `LOGRELAY_COALESCE_MAX_RECORDS`: batches queued for a busy instance are handed to it in
    /// one call, up to this many records.
    pub coalesce_max_records: NonZeroUsize,
    /// `LOGRELAY_CALL_TIMEOUT_MS`: a plugin call running longer disables the instance.
    pub call_timeout: Duration,
    /// `LOGRELAY_SHUTDOWN_TIMEOUT_MS`: how long shutdown waits for batches in flight.
    pub shutdown_timeout: Duration,
    /// `LOGRELAY_RETRY_MAX_MS`: the longest wait between retries of a failing batch.
    pub retry_max: Duration,
    /// `LOGRELAY_HEALTHCHECK_INTERVAL_MS`: how often every instance's health check runs.
    pub healthcheck_interval: Duration,
    /// `LOGRELAY_DEFAULT_PROJECT`: project of records that name none.
    pub default_project: String,
    /// `LOGRELAY_DEFAULT_MODULE`: module of records that name none.
    pub default_module: String,
    /// `LOGRELAY_STATE_DIR`: where the crash journal is kept (see [`crate::journal`]).
    pub state_dir: PathBuf,
    /// `LOGRELAY_CRASH_LIMIT`: a message handed on alone that many times without the host
    /// surviving it is dead-lettered.
    pub crash_limit: u32,
    /// `LOGRELAY_FIELD_ALIASES` (extra names of the known fields) and `LOGRELAY_TEXT_INTAKE`
    /// (whether plain-text lines are records), worked out once for the decoder.
    pub decode: DecodeOptions,
}

/// One invalid value that fell back to its default.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingWarning {
    /// The variable.
    pub variable: String,
    /// What it held.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
    /// The default used instead; `None` for a name that is no setting (it is ignored).
    pub default: Option<String>,
}

impl Display for SettingWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.default {
            Some(default) => write!(
                f,
                "{}={:?} is invalid ({}); using the default {}",
                self.variable, self.value, self.reason, default
            ),
            None => write!(f, "{} is ignored: {}", self.variable, self.reason),
        }
    }
}

struct Reader<'a> {
    env: &'a Env,
    warnings: Vec<SettingWarning>,
    /// Every setting read, to find the `LOGRELAY_*` names that are none of them.
    known: Vec<&'static str>,
}

impl Reader<'_> {
    /// Reads `name`, parsing with `parse`; an unset or empty value gives `default`.
    fn get<T: Display>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        self.known.push(name);
        match self.env.get(name).map(str::trim) {
            None | Some("") => default,
            Some(raw) => match parse(raw) {
                Ok(v) => v,
                Err(reason) => {
                    self.warnings.push(SettingWarning {
                        variable: name.to_owned(),
                        value: raw.to_owned(),
                        reason,
                        default: Some(default.to_string()),
                    });
                    default
                }
            },
        }
    }

    fn string(&mut self, name: &'static str, default: &str) -> String {
        self.get(name, default.to_owned(), |s| Ok(s.to_owned()))
    }

    fn optional(&mut self, name: &'static str) -> Option<String> {
        self.known.push(name);
        self.env
            .get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn number<T>(&mut self, name: &'static str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        self.get(name, default, |s| {
            let out_of_range = || format!("out of range: must be between {min} and {max}");
            let v: T = match s.parse() {
                Ok(v) => v,
                // A whole number the type cannot hold (`70000` for a u16, `-1`) is out of
                // range, not "not a number".
                Err(_) if s.parse::<i128>().is_ok() => return Err(out_of_range()),
                Err(e) => return Err(format!("not a number: {e}")),
            };
            if v < min || v > max {
                return Err(out_of_range());
            }
            Ok(v)
        })
    }

    fn millis(&mut self, name: &'static str, default_ms: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.number(name, default_ms, min, max))
    }

    fn addr(&mut self, name: &'static str, default: &str) -> SocketAddr {
        let fallback: SocketAddr = default
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        self.get(name, fallback, |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                "expected HOST:PORT with a numeric address, like 127.0.0.1:8080".into()
            })
        })
    }

    /// A warning for each `LOGRELAY_*` variable that is no setting (a misspelt name would
    /// otherwise be ignored without a word), naming the closest setting when one is close.
    fn unknown_names(&mut self) {
        let env = self.env;
        for name in env.vars.keys().filter(|k| k.starts_with("LOGRELAY_")) {
            if self.known.contains(&name.as_str()) {
                continue;
            }
            let closest = self
                .known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(name, k), *k))
                .min()
                .filter(|(distance, _)| *distance <= 3);
            let reason = match closest {
                Some((_, k)) => format!("not a logrelay setting; did you mean {k}? (docs/CONFIG.md)"),
                None => "not a logrelay setting (the LOGRELAY_ prefix is reserved; docs/CONFIG.md lists the settings)".to_owned(),
            };
            self.warnings.push(SettingWarning {
                variable: name.clone(),
                value: env.vars.get(name).cloned().unwrap_or_default(),
                reason,
                default: None,
            });
        }
    }

    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        self.get(name, default, |s| match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        })
    }
}

/// Defaults of the settings, also shown by `.env`.
pub mod defaults {
    /// `LOGRELAY_AMQP_URL`.
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    /// `LOGRELAY_QUEUE`.
    pub const QUEUE: &str = "logs";
    /// `LOGRELAY_EXCHANGE`.
    pub const EXCHANGE: &str = "logs";
    /// `LOGRELAY_PLUGINS`.
    pub const PLUGINS: &str = "plugins.toml";
    /// `LOGRELAY_DATABASE_URL`.
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/logrelay";
    /// `LOGRELAY_HTTP_ADDR`.
    pub const HTTP_ADDR: &str = "127.0.0.1:8080";
    /// `LOGRELAY_ADMIN_ADDR`.
    pub const ADMIN_ADDR: &str = "127.0.0.1:9464";
    /// `LOGRELAY_LOG`.
    pub const LOG: &str = "info";
    /// `LOGRELAY_CHANNEL_CAPACITY`.
    pub const CHANNEL_CAPACITY: usize = 4;
    /// `LOGRELAY_COALESCE_MAX_RECORDS`.
    pub const COALESCE_MAX_RECORDS: usize = 5000;
    /// `LOGRELAY_CALL_TIMEOUT_MS`.
    pub const CALL_TIMEOUT_MS: u64 = 30_000;
    /// `LOGRELAY_RETRY_MAX_MS`.
    pub const RETRY_MAX_MS: u64 = 30_000;
    /// `LOGRELAY_CRASH_LIMIT`.
    pub const CRASH_LIMIT: u32 = 2;
}

impl Settings {
    /// The settings plugins.toml may refer to as `${VAR}`, with their validated values.
    pub fn exported_vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("LOGRELAY_AMQP_URL", self.amqp_url.clone()),
            ("LOGRELAY_QUEUE", self.queue.clone()),
            ("LOGRELAY_EXCHANGE", self.exchange.clone()),
            ("LOGRELAY_DATABASE_URL", self.database_url.clone()),
            ("LOGRELAY_HTTP_ADDR", self.http_addr.to_string()),
            ("LOGRELAY_ADMIN_ADDR", self.admin_addr.to_string()),
            ("LOGRELAY_DEFAULT_PROJECT", self.default_project.clone()),
            ("LOGRELAY_DEFAULT_MODULE", self.default_module.clone()),
        ];
        // Unset tokens substitute as empty: connectors read an empty token as "none".
        vars.push((
            "LOGRELAY_API_TOKEN",
            self.api_token.clone().unwrap_or_default(),
        ));
        vars.push((
            "LOGRELAY_TELEGRAM_TOKEN",
            self.telegram_token.clone().unwrap_or_default(),
        ));
        vars
    }

    /// Reads and validates every setting. Invalid values fall back to their defaults and are
    /// returned as warnings, or (strict mode, or `force_strict`) fail.
    pub fn from_env(
        env: &Env,
        force_strict: bool,
    ) -> Result<(Settings, Vec<SettingWarning>), SettingsError> {
        let mut r = Reader {
            env,
            warnings: Vec::new(),
            known: Vec::new(),
        };
        let strict = r.boolean("LOGRELAY_STRICT", false) || force_strict;
        let settings = Settings {
            amqp_url: r.get("LOGRELAY_AMQP_URL", defaults::AMQP_URL.to_owned(), |s| {
                if s.starts_with("amqp://") || s.starts_with("amqps://") {
                    Ok(s.to_owned())
                } else {
                    Err("must start with amqp:// or amqps://".into())
                }
            }),
            queue: r.get("LOGRELAY_QUEUE", defaults::QUEUE.to_owned(), queue_name),
            exchange: r.get(
                "LOGRELAY_EXCHANGE",
                defaults::EXCHANGE.to_owned(),
                queue_name,
            ),
            plugins_file: PathBuf::from(r.string("LOGRELAY_PLUGINS", defaults::PLUGINS)),
            plugin_dir: r
                .optional("LOGRELAY_PLUGIN_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_plugin_dir),
            database_url: r.get(
                "LOGRELAY_DATABASE_URL",
                defaults::DATABASE_URL.to_owned(),
                |s| {
                    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                        Ok(s.to_owned())
                    } else {
                        Err("must start with postgres:// or postgresql://".into())
                    }
                },
            ),
            http_addr: r.addr("LOGRELAY_HTTP_ADDR", defaults::HTTP_ADDR),
            admin_addr: r.addr("LOGRELAY_ADMIN_ADDR", defaults::ADMIN_ADDR),
            api_token: r.optional("LOGRELAY_API_TOKEN"),
            telegram_token: r.optional("LOGRELAY_TELEGRAM_TOKEN"),
            log: r.get("LOGRELAY_LOG", defaults::LOG.to_owned(), |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| format!("not a log filter: {e}"))
            }),
            log_format: r.get("LOGRELAY_LOG_FORMAT", LogFormat::Text, |s| s.parse()),
            strict,
            prefetch: r.number("LOGRELAY_PREFETCH", 5000, 1, u16::MAX),
            batch_max_records: nonzero(r.number("LOGRELAY_BATCH_MAX_RECORDS", 1000, 1, 100_000)),
            batch_max_wait: r.millis("LOGRELAY_BATCH_MAX_WAIT_MS", 50, 0, 60_000),
            max_message_bytes: r.number(
                "LOGRELAY_MAX_MESSAGE_BYTES",
                1024 * 1024,
                64,
                128 * 1024 * 1024,
            ),
            decode_threads: r.number("LOGRELAY_DECODE_THREADS", 0, 0, 256),
            channel_capacity: nonzero(r.number(
                "LOGRELAY_CHANNEL_CAPACITY",
                defaults::CHANNEL_CAPACITY,
                1,
                1024,
            )),
            coalesce_max_records: nonzero(r.number(
                "LOGRELAY_COALESCE_MAX_RECORDS",
                defaults::COALESCE_MAX_RECORDS,
                1,
                1_000_000,
            )),
            call_timeout: r.millis(
                "LOGRELAY_CALL_TIMEOUT_MS",
                defaults::CALL_TIMEOUT_MS,
                10,
                3_600_000,
            ),
            shutdown_timeout: r.millis("LOGRELAY_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 3_600_000),
            retry_max: r.millis(
                "LOGRELAY_RETRY_MAX_MS",
                defaults::RETRY_MAX_MS,
                10,
                3_600_000,
            ),
            healthcheck_interval: r.millis(
                "LOGRELAY_HEALTHCHECK_INTERVAL_MS",
                10_000,
                100,
                3_600_000,
            ),
            default_project: r.get("LOGRELAY_DEFAULT_PROJECT", "default".to_owned(), label),
            default_module: r.get("LOGRELAY_DEFAULT_MODULE", "default".to_owned(), label),
            state_dir: r
                .optional("LOGRELAY_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_state_dir),
            crash_limit: r.number("LOGRELAY_CRASH_LIMIT", defaults::CRASH_LIMIT, 1, 100),
            decode: {
                let aliases = r.get("LOGRELAY_FIELD_ALIASES", Aliases(Vec::new()), |s| {
                    parse_user_aliases(s).map(Aliases)
                });
                let text = r.get("LOGRELAY_TEXT_INTAKE", TextIntake::Off, |s| {
                    match s.to_ascii_lowercase().as_str() {
                        "off" => Ok(TextIntake::Off),
                        "lines" => Ok(TextIntake::Lines),
                        _ => Err("expected off or lines".into()),
                    }
                });
                DecodeOptions::new(&aliases.0, text)
            },
        };
        r.unknown_names();
        if strict && !r.warnings.is_empty() {
            return Err(SettingsError::Strict(
                r.warnings.iter().map(ToString::to_string).collect(),
            ));
        }
        Ok((settings, r.warnings))
    }
}

/// The user's field aliases, shown as the setting's text (the default is none).
struct Aliases(Vec<UserAlias>);

impl Display for Aliases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        for (i, a) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ";" };
            write!(f, "{sep}{}={}", a.field, a.name)?;
        }
        Ok(())
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn queue_name(s: &str) -> Result<String, String> {
    if s.len() > 255 {
        return Err("longer than 255 bytes".into());
    }
    if s.starts_with("amq.") {
        return Err("names starting with `amq.` are reserved by RabbitMQ".into());
    }
    Ok(s.to_owned())
}

fn label(s: &str) -> Result<String, String> {
    if s.len() > 200 {
        Err("longer than 200 bytes".into())
    } else {
        Ok(s.to_owned())
    }
}

/// Without `LOGRELAY_PLUGIN_DIR`: the directory holding the `logrelay` executable, where cargo
/// and the Docker image both put the connector libraries.
fn default_plugin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Without `LOGRELAY_STATE_DIR`: systemd's `$STATE_DIRECTORY` (set by `StateDirectory=`) when
/// there is one, else `logrelay` in the system's temporary directory, which survives the
/// restarts of a crash loop (a container's restart keeps its file system).
fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("logrelay"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_aliases_and_text_intake() {
        let env = Env::from_pairs([
            ("LOGRELAY_FIELD_ALIASES", "message=body;level=sev"),
            ("LOGRELAY_TEXT_INTAKE", "LINES"),
        ]);
        let (s, w) = Settings::from_env(&env, false).expect("settings");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.decode.text_intake, TextIntake::Lines);
        assert_eq!(s.decode.user_aliases().len(), 2);
        let env = Env::from_pairs([
            ("LOGRELAY_FIELD_ALIASES", "msg=body"),
            ("LOGRELAY_TEXT_INTAKE", "yes"),
        ]);
        let (s, w) = Settings::from_env(&env, false).expect("settings");
        assert_eq!(s.decode.text_intake, TextIntake::Off);
        assert!(s.decode.user_aliases().is_empty());
        let w: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(
            w,
            [
                "LOGRELAY_FIELD_ALIASES=\"msg=body\" is invalid (`msg` is not a field; the fields are timestamp, level, project, module, message, id); using the default (none)",
                "LOGRELAY_TEXT_INTAKE=\"yes\" is invalid (expected off or lines); using the default off",
            ]
        );
        assert!(Settings::from_env(&env, true).is_err());
    }

    #[test]
    fn defaults_without_variables() {
        let (s, w) = Settings::from_env(&Env::default(), false).expect("settings");
        assert!(w.is_empty());
        assert_eq!(s.queue, "logs");
        assert_eq!(s.prefetch, 5000);
        assert_eq!(s.batch_max_wait, Duration::from_millis(50));
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.api_token, None);
    }

    #[test]
    fn invalid_values_fall_back_with_a_warning_naming_everything() {
        let env = Env::from_pairs([
            ("LOGRELAY_PREFETCH", "lots"),
            ("LOGRELAY_HTTP_ADDR", "localhost"),
            ("LOGRELAY_BATCH_MAX_RECORDS", "0"),
            ("LOGRELAY_QUEUE", "events"),
        ]);
        let (s, w) = Settings::from_env(&env, false).expect("settings");
        assert_eq!(s.prefetch, 5000);
        assert_eq!(s.queue, "events");
        assert_eq!(s.batch_max_records.get(), 1000);
        assert_eq!(w.len(), 3, "{w:?}");
        let text = w[0].to_string();
        assert!(text.contains("LOGRELAY_HTTP_ADDR=\"localhost\""), "{text}");
        assert!(text.contains("127.0.0.1:8080"), "{text}");
        let text = w[2].to_string();
        assert!(text.contains("LOGRELAY_BATCH_MAX_RECORDS"), "{text}");
        assert!(text.contains("between 1 and 100000"), "{text}");
    }

    #[test]
    fn a_misspelt_name_warns_with_the_closest_setting_and_fails_in_strict_mode() {
        let env = Env::from_pairs([
            ("LOGRELAY_BATCH_MAX_RECORD", "5"),
            ("LOGRELAY_SOMETHING_ELSE", "x"),
            ("OTHER_PREFIX", "ignored"),
        ]);
        let (s, w) = Settings::from_env(&env, false).expect("settings");
        assert_eq!(s.batch_max_records.get(), 1000);
        assert_eq!(w.len(), 2, "{w:?}");
        let text = w[0].to_string();
        assert!(
            text.contains("LOGRELAY_BATCH_MAX_RECORD is ignored")
                && text.contains("did you mean LOGRELAY_BATCH_MAX_RECORDS?"),
            "{text}"
        );
        let text = w[1].to_string();
        assert!(
            text.contains("LOGRELAY_SOMETHING_ELSE") && !text.contains("did you mean"),
            "{text}"
        );
        let err = Settings::from_env(&env, true).expect_err("strict");
        assert!(
            err.to_string().contains("LOGRELAY_BATCH_MAX_RECORD "),
            "{err}"
        );
    }

    #[test]
    fn a_whole_number_past_the_limits_is_out_of_range_not_a_non_number() {
        for value in ["70000", "-1", "99999999999999999999999"] {
            let env = Env::from_pairs([("LOGRELAY_PREFETCH", value)]);
            let (_, w) = Settings::from_env(&env, false).expect("settings");
            let text = w[0].to_string();
            assert!(
                text.contains("out of range: must be between 1 and 65535"),
                "{text}"
            );
        }
        let env = Env::from_pairs([("LOGRELAY_PREFETCH", "lots")]);
        let (_, w) = Settings::from_env(&env, false).expect("settings");
        assert!(w[0].to_string().contains("not a number"), "{w:?}");
    }

    #[test]
    fn substitution_sees_defaults_and_never_refused_values() {
        let env = Env::from_pairs([("LOGRELAY_HTTP_ADDR", "nonsense"), ("OTHER", "kept")]);
        let (s, _) = Settings::from_env(&env, false).expect("settings");
        let merged = env.with_settings(&s);
        assert_eq!(merged.get("LOGRELAY_HTTP_ADDR"), Some("127.0.0.1:8080"));
        assert_eq!(
            merged.get("LOGRELAY_DATABASE_URL"),
            Some(defaults::DATABASE_URL)
        );
        assert_eq!(merged.get("OTHER"), Some("kept"));
        assert_eq!(merged.get("LOGRELAY_API_TOKEN"), Some(""));
    }

    #[test]
    fn strict_mode_refuses_invalid_values() {
        let env = Env::from_pairs([("LOGRELAY_STRICT", "true"), ("LOGRELAY_PREFETCH", "-1")]);
        let err = Settings::from_env(&env, false).expect_err("strict");
        assert!(err.to_string().contains("LOGRELAY_PREFETCH"), "{err}");
        let env = Env::from_pairs([("LOGRELAY_AMQP_URL", "http://x")]);
        assert!(Settings::from_env(&env, true).is_err());
    }

    #[test]
    fn env_file_is_overlaid_by_the_real_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "LOGRELAY_TEST_ONLY_VAR=from-file\n# comment\nPATH=from-file\n",
        )
        .expect("write");
        let env = Env::load(EnvFile::Named(&path)).expect("load");
        assert_eq!(env.get("LOGRELAY_TEST_ONLY_VAR"), Some("from-file"));
        assert_ne!(env.get("PATH"), Some("from-file"));
    }

    #[test]
    fn a_named_env_file_must_exist_the_default_need_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("prod.env");
        let err = Env::load(EnvFile::Named(&missing)).expect_err("named and missing");
        assert!(
            err.to_string().contains("prod.env") && err.to_string().contains("no such file"),
            "{err}"
        );
        Env::load(EnvFile::Default(&missing)).expect("the default may be absent");
    }
}
