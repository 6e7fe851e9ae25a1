//! Settings of the `timescale` connector, and their checked form.

use std::str::FromStr;
use std::time::Duration;

use logrelay_plugin_api::{duration, parse_optional_duration};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::error::TimescaleError;

/// Settings of the `timescale` connector (`[plugins.<name>.config]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL connection URL (`postgres://user:password@host:5432/db?sslmode=require`).
    /// Required; write `"${LOGRELAY_DATABASE_URL}"` so the secret stays in `.env`.
    pub url: String,
    /// Schema holding the table (must exist). Default: `public`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Table name: lowercase letters, digits and `_`, at most 40 characters. Default: `logs`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Most connections in the pool. Default: 4.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Give up opening a connection after this long. Default: 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Give up waiting for a free (or new) pooled connection after this long; the call then fails
    /// as `transient`. Default: 5000.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// `statement_timeout` of every session of the pool (0: none). Default: 30000.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// `auto` (use TimescaleDB when the extension can be created), `require` (refuse to start
    /// without it) or `off` (plain PostgreSQL even when it is there). Default: `auto`.
    #[serde(default = "default_timescale")]
    pub timescale: TimescaleMode,
    /// TimescaleDB chunk size (a duration, see docs/CONFIG.md). Default: `1d`.
    #[serde(
        default = "default_chunk_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub chunk_interval: Duration,
    /// TimescaleDB: compress chunks older than this (a duration or `off`). Default: `7d`.
    #[serde(
        default = "default_compress_after",
        deserialize_with = "duration::deserialize_optional"
    )]
    pub compress_after: Option<Duration>,
    /// Delete records older than this (a duration or `off`): TimescaleDB drops whole chunks,
    /// plain PostgreSQL deletes in batches. Default: `off` (keep everything).
    #[serde(default, deserialize_with = "duration::deserialize_optional")]
    pub retention: Option<Duration>,
    /// Plain PostgreSQL and Apache-only TimescaleDB: how often the store's retention task runs
    /// (a duration). Default: `1h`.
    #[serde(
        default = "default_retention_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub retention_interval: Duration,
    /// Plain PostgreSQL: rows deleted per retention statement. Default: 10000.
    #[serde(default = "default_retention_batch_rows")]
    pub retention_batch_rows: u32,
    /// Index for message text search: `auto` (a pg_trgm GIN index when the extension can be
    /// created) or `off` (a search scans, newest first). The index makes every write about 2.5
    /// times as expensive (BENCHMARKS.md). Default: `off`.
    #[serde(default = "default_message_index")]
    pub message_index: MessageIndex,
    /// A record is also taken as already stored when a row with its id exists whose time is
    /// at most this much earlier (a duration or `off`). This covers records sent without a
    /// timestamp: they get their receive time, so a redelivery carries a later time than the
    /// stored copy. Default: `1d`.
    #[serde(
        default = "default_dedupe_window",
        deserialize_with = "duration::deserialize_optional"
    )]
    pub dedupe_window: Option<Duration>,
    /// Records returned by `query` when the request gives no `limit`. Default: 100.
    #[serde(default = "default_page_size")]
    pub default_page_size: u32,
    /// Largest `limit` a `query` may ask for (larger ones are capped). Default: 1000.
    #[serde(default = "default_max_page_size")]
    pub max_page_size: u32,
    /// `statement_timeout` of one `sql` request. Default: 10000.
    #[serde(default = "default_sql_timeout_ms")]
    pub sql_timeout_ms: u64,
    /// Most rows one `sql` request returns (the answer says `truncated`). Default: 10000.
    #[serde(default = "default_sql_max_rows")]
    pub sql_max_rows: u32,
}

fn default_schema() -> String {
    "public".to_owned()
}
fn default_table() -> String {
    "logs".to_owned()
}
const fn default_max_connections() -> u32 {
    4
}
const fn default_connect_timeout_ms() -> u64 {
    5000
}
const fn default_acquire_timeout_ms() -> u64 {
    5000
}
const fn default_statement_timeout_ms() -> u64 {
    30_000
}
const fn default_timescale() -> TimescaleMode {
    TimescaleMode::Auto
}
const fn default_chunk_interval() -> Duration {
    Duration::from_secs(86_400)
}
const fn default_compress_after() -> Option<Duration> {
    Some(Duration::from_secs(7 * 86_400))
}
const fn default_retention_interval() -> Duration {
    Duration::from_secs(3600)
}
const fn default_retention_batch_rows() -> u32 {
    10_000
}
const fn default_message_index() -> MessageIndex {
    MessageIndex::Off
}
const fn default_dedupe_window() -> Option<Duration> {
    Some(Duration::from_secs(86_400))
}
const fn default_page_size() -> u32 {
    100
}
const fn default_max_page_size() -> u32 {
    1000
}
const fn default_sql_timeout_ms() -> u64 {
    10_000
}
const fn default_sql_max_rows() -> u32 {
    10_000
}

/// Whether to use TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimescaleMode {
    /// When the extension is available.
    Auto,
    /// Always; refuse to start without it.
    Require,
    /// Never.
    Off,
}

/// Whether to index messages for text search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageIndex {
    /// A trigram GIN index when pg_trgm can be created.
    Auto,
    /// None (text search scans).
    Off,
}

/// The checked settings; nothing re-checks them later.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where and how to connect.
    pub connect: PgConnectOptions,
    /// `host:port` (or the socket path), for messages; never the password.
    pub address: String,
    /// The schema name (unquoted, validated).
    pub schema: String,
    /// The table name (unquoted, validated).
    pub table: String,
    /// Pool size, at least 1.
    pub max_connections: u32,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Pool acquire timeout.
    pub acquire_timeout: Duration,
    /// Per-session statement timeout.
    pub statement_timeout: Option<Duration>,
    /// TimescaleDB use.
    pub timescale: TimescaleMode,
    /// Chunk interval.
    pub chunk_interval: Duration,
    /// Compression age.
    pub compress_after: Option<Duration>,
    /// Retention age.
    pub retention: Option<Duration>,
    /// Period of the plain retention task.
    pub retention_interval: Duration,
    /// Rows per retention delete.
    pub retention_batch_rows: i64,
    /// Message index choice.
    pub message_index: MessageIndex,
    /// Redeliveries with a later time are recognised by id within this window.
    pub dedupe_window: Option<Duration>,
    /// Default `query` page.
    pub default_page_size: u32,
    /// Largest `query` page.
    pub max_page_size: u32,
    /// `sql` timeout.
    pub sql_timeout: Duration,
    /// `sql` row cap.
    pub sql_max_rows: usize,
}

impl Settings {
    /// Validates a parsed config.
    pub fn from_config(c: Config) -> Result<Settings, TimescaleError> {
        let bad = |field: &'static str, reason: String| TimescaleError::Config { field, reason };
        if c.url.trim().is_empty() {
            return Err(bad(
                "url",
                "empty (is LOGRELAY_DATABASE_URL set?)".to_owned(),
            ));
        }
        let connect = PgConnectOptions::from_str(c.url.trim())
            .map_err(|e| bad("url", format!("not a PostgreSQL URL: {e}")))?
            .application_name("logrelay-timescale")
            // The server's NOTICEs ("relation ... already exists, skipping" on every start) are
            // logged by the driver at INFO: noise that trains operators to skip the log. Warnings
            // and errors still come through.
            .options([("client_min_messages", "warning")]);
        let connect = match c.statement_timeout_ms {
            0 => connect,
            ms => connect.options([("statement_timeout", ms.to_string())]),
        };
        let address = format!("{}:{}", connect.get_host(), connect.get_port());
        check_ident("schema", &c.schema, 63)?;
        check_ident("table", &c.table, 40)?;
        if c.max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1".to_owned()));
        }
        if c.default_page_size == 0 || c.max_page_size == 0 {
            return Err(bad(
                "default_page_size",
                "page sizes must be at least 1".to_owned(),
            ));
        }
        if c.retention_batch_rows == 0 {
            return Err(bad("retention_batch_rows", "must be at least 1".to_owned()));
        }
        // Durations were parsed with the config (the shared grammar, zero read as off for
        // the optional ones); the required ones must not be zero.
        let required = |field: &'static str, d: Duration| -> Result<Duration, TimescaleError> {
            if d.is_zero() {
                Err(bad(field, "a positive duration is needed".to_owned()))
            } else {
                Ok(d)
            }
        };
        Ok(Settings {
            connect,
            address,
            schema: c.schema,
            table: c.table,
            max_connections: c.max_connections,
            connect_timeout: Duration::from_millis(c.connect_timeout_ms.max(1)),
            acquire_timeout: Duration::from_millis(c.acquire_timeout_ms.max(1)),
            statement_timeout: (c.statement_timeout_ms > 0)
                .then(|| Duration::from_millis(c.statement_timeout_ms)),
            timescale: c.timescale,
            chunk_interval: required("chunk_interval", c.chunk_interval)?,
            compress_after: c.compress_after,
            retention: c.retention,
            retention_interval: required("retention_interval", c.retention_interval)?,
            retention_batch_rows: i64::from(c.retention_batch_rows),
            message_index: c.message_index,
            dedupe_window: c.dedupe_window,
            default_page_size: c.default_page_size.min(c.max_page_size),
            max_page_size: c.max_page_size,
            sql_timeout: Duration::from_millis(c.sql_timeout_ms.max(1)),
            sql_max_rows: c.sql_max_rows as usize,
        })
    }

    /// `"schema"."table"`, for SQL text.
    pub fn qualified(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.table)
    }
}

fn check_ident(field: &'static str, name: &str, max: usize) -> Result<(), TimescaleError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(TimescaleError::Config {
            field,
            reason: format!(
                "`{name}`: use lowercase letters, digits and `_`, starting with a letter or `_`, at most {max} characters"
            ),
        })
    }
}

/// Parses a duration that may be off, in the grammar every connector shares
/// ([`logrelay_plugin_api::duration`]): `30d`, `12h`, `1h30m`, `90s`, `500ms`, `2 weeks`, or
/// `off`/`none`/`never`/`0` for none. Kept under this name for the crate's users.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    parse_optional_duration(text).map_err(|e| e.to_string())
}

/// A duration as a PostgreSQL interval literal (`INTERVAL '90 seconds'`).
pub fn interval_sql(d: Duration) -> String {
    format!("INTERVAL '{} milliseconds'", d.as_millis())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d"),
            Ok(Some(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(parse_duration("1h30m"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(
            parse_duration("2 weeks"),
            Ok(Some(Duration::from_secs(14 * 86_400)))
        );
        assert_eq!(
            parse_duration("500ms"),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_duration("off"), Ok(None));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("d").is_err());
    }

    fn config(extra: &str) -> Result<Config, logrelay_plugin_api::PluginError> {
        logrelay_plugin_api::parse_config(&format!(r#"{{"url":"postgres://u@h/db"{extra}}}"#))
    }

    #[test]
    fn duration_options_take_the_shared_grammar() {
        let c = config("").unwrap();
        assert_eq!(c.chunk_interval, Duration::from_secs(86_400));
        assert_eq!(c.compress_after, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention, None);
        assert_eq!(c.retention_interval, Duration::from_secs(3600));
        assert_eq!(c.dedupe_window, Some(Duration::from_secs(86_400)));
        let c = config(
            r#","chunk_interval":"12h","compress_after":"off","retention":"1h30m","retention_interval":"90 seconds","dedupe_window":"0""#,
        )
        .unwrap();
        assert_eq!(c.chunk_interval, Duration::from_secs(12 * 3600));
        assert_eq!(c.compress_after, None);
        assert_eq!(c.retention, Some(Duration::from_secs(5400)));
        assert_eq!(c.retention_interval, Duration::from_secs(90));
        assert_eq!(c.dedupe_window, None);
        let e = config(r#","retention":"30""#).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid config at `retention`: `30` has no unit"),
            "{e}"
        );
        let e = Settings::from_config(config(r#","chunk_interval":"0s""#).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `chunk_interval`: a positive duration is needed"
        );
    }

    #[test]
    fn identifiers() {
        assert!(check_ident("table", "logs_2", 40).is_ok());
        for bad in ["", "Logs", "1logs", "lo-gs", "x\"; drop", &"a".repeat(41)] {
            assert!(check_ident("table", bad, 40).is_err(), "{bad}");
        }
    }
}
