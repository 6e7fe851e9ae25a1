//! Settings of the `http-api` connector: the raw [`Config`] as written in plugins.toml, and the
//! validated [`Settings`] the connector runs with (nothing after start-up re-checks them).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use crate::error::HttpApiError;

/// The environment variable the example config takes the listen address from.
pub const ADDR_VAR: &str = "LOGRELAY_HTTP_ADDR";
/// The environment variable the example config takes the bearer token from.
pub const TOKEN_VAR: &str = "LOGRELAY_API_TOKEN";

/// Settings of the `http-api` connector, as written under `[plugins.<name>.config]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`host:port`). Write `"${LOGRELAY_HTTP_ADDR}"`. Default
    /// `127.0.0.1:8080`; port 0 picks a free port (`request("status")` says which).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The name of the store instance in plugins.toml (`[plugins.<name>]` of a `timescale`
    /// instance) that answers the queries. Required.
    pub store: String,
    /// Bearer token every route requires (`Authorization: Bearer <token>`). Write
    /// `"${LOGRELAY_API_TOKEN}"`. Default empty: no token, reading is open to anyone who reaches
    /// the address and changing or deleting logs is refused (403).
    #[serde(default)]
    pub token: String,
    /// Records per page when a request gives no `limit`. Default 100.
    #[serde(default = "default_page_size")]
    pub default_page_size: u32,
    /// Largest `limit` (and `count`) a request may ask for; larger ones are refused with 413.
    /// Default 1000. Keep it at most the store's own `max_page_size`.
    #[serde(default = "default_max_page_size")]
    pub max_page_size: u32,
    /// Largest request body (POST /log, POST /logs/delete); larger ones get 413. Default 65536.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// A request (store call included) running longer than this gets 504. Default 10000.
    /// Does not apply to the live tail.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Batches held for live-tail clients; a client further behind skips them and is told how
    /// many records it missed. Default 1024.
    #[serde(default = "default_stream_buffer_batches")]
    pub stream_buffer_batches: usize,
    /// Live-tail clients at once; more get 503. Default 64.
    #[serde(default = "default_max_stream_clients")]
    pub max_stream_clients: usize,
    /// A keep-alive comment is sent to idle live-tail clients this often. Default 15000.
    #[serde(default = "default_stream_keep_alive_ms")]
    pub stream_keep_alive_ms: u64,
    /// `POST /logs/delete` whose filter matches more rows than this needs `"confirm": true`.
    /// Default 10000; 0: every delete by filter that matches anything needs it.
    #[serde(default = "default_delete_confirm_rows")]
    pub delete_confirm_rows: u64,
    /// `POST /logs/delete` whose filter matches more than this share of the stored rows
    /// (percent of PostgreSQL's estimate) needs `"confirm": true`. Default 50; 100: no share
    /// asks for it.
    #[serde(default = "default_delete_confirm_percent")]
    pub delete_confirm_percent: f64,
    /// Serve the log explorer (a page in the browser) at `/`. Default true.
    #[serde(default = "default_ui")]
    pub ui: bool,
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
const fn default_page_size() -> u32 {
    100
}
const fn default_max_page_size() -> u32 {
    1000
}
const fn default_max_body_bytes() -> usize {
    64 * 1024
}
const fn default_request_timeout_ms() -> u64 {
    10_000
}
const fn default_stream_buffer_batches() -> usize {
    1024
}
const fn default_max_stream_clients() -> usize {
    64
}
const fn default_stream_keep_alive_ms() -> u64 {
    15_000
}
const fn default_delete_confirm_rows() -> u64 {
    10_000
}
const fn default_delete_confirm_percent() -> f64 {
    50.0
}
const fn default_ui() -> bool {
    true
}

/// The checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The store instance's name.
    pub store: String,
    /// The bearer token, if any (never empty).
    pub token: Option<String>,
    /// Page size without `limit`.
    pub default_page_size: NonZeroU32,
    /// Largest page.
    pub max_page_size: NonZeroU32,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Broadcast capacity, in batches.
    pub stream_buffer_batches: usize,
    /// Live-tail clients at once.
    pub max_stream_clients: usize,
    /// Keep-alive period of the live tail.
    pub stream_keep_alive: Duration,
    /// Rows a delete by filter may remove without `confirm`.
    pub delete_confirm_rows: u64,
    /// Share of the rows (percent, 0-100) a delete by filter may remove without `confirm`.
    pub delete_confirm_percent: f64,
    /// Whether the log explorer is served at `/`.
    pub ui: bool,
}

fn invalid(option: &str, reason: impl Into<String>) -> HttpApiError {
    HttpApiError::Invalid {
        option: option.to_owned(),
        reason: reason.into(),
    }
}

impl Config {
    /// Checks every option.
    pub fn validate(self) -> Result<Settings, HttpApiError> {
        let listen_text = if self.listen.trim().is_empty() {
            default_listen()
        } else {
            self.listen.trim().to_owned()
        };
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_text}` is not an address like 127.0.0.1:8080 (set {ADDR_VAR})"),
            )
        })?;
        let store = self.store.trim().to_owned();
        if store.is_empty() {
            return Err(invalid(
                "store",
                "is empty; name the store instance of plugins.toml (`store = \"store\"` for [plugins.store])",
            ));
        }
        let token = match self.token.trim() {
            "" => None,
            t if t.len() < 16 => {
                return Err(invalid(
                    "token",
                    format!(
                        "is {} characters long; use at least 16 (set {TOKEN_VAR})",
                        t.len()
                    ),
                ));
            }
            t => Some(t.to_owned()),
        };
        let nonzero = |option: &str, v: u32| {
            NonZeroU32::new(v).ok_or_else(|| invalid(option, "must be at least 1"))
        };
        let default_page_size = nonzero("default_page_size", self.default_page_size)?;
        let max_page_size = nonzero("max_page_size", self.max_page_size)?;
        if default_page_size > max_page_size {
            return Err(invalid(
                "default_page_size",
                format!("({default_page_size}) is larger than `max_page_size` ({max_page_size})"),
            ));
        }
        if self.max_body_bytes < 256 {
            return Err(invalid("max_body_bytes", "must be at least 256"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms", "must be at least 1"));
        }
        if self.stream_buffer_batches == 0 || self.stream_buffer_batches > 1 << 20 {
            return Err(invalid(
                "stream_buffer_batches",
                "must be between 1 and 1048576",
            ));
        }
        if self.stream_keep_alive_ms == 0 {
            return Err(invalid("stream_keep_alive_ms", "must be at least 1"));
        }
        if !(0.0..=100.0).contains(&self.delete_confirm_percent) {
            return Err(invalid(
                "delete_confirm_percent",
                format!(
                    "is {}; give a percentage from 0 to 100",
                    self.delete_confirm_percent
                ),
            ));
        }
        Ok(Settings {
            listen,
            store,
            token,
            default_page_size,
            max_page_size,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            stream_buffer_batches: self.stream_buffer_batches,
            max_stream_clients: self.max_stream_clients,
            stream_keep_alive: Duration::from_millis(self.stream_keep_alive_ms),
            delete_confirm_rows: self.delete_confirm_rows,
            delete_confirm_percent: self.delete_confirm_percent,
            ui: self.ui,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<Settings, String> {
        let text = format!("{{\"store\": \"store\"{extra}}}");
        let c: Config = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_refusals() {
        let s = config("").unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert!(s.token.is_none());
        assert_eq!(s.max_page_size.get(), 1000);
        assert!(
            config(r#", "listen": "nowhere""#)
                .unwrap_err()
                .contains("listen")
        );
        assert!(
            config(r#", "token": "short""#)
                .unwrap_err()
                .contains("token")
        );
        assert!(
            config(r#", "max_page_size": 0"#)
                .unwrap_err()
                .contains("max_page_size")
        );
        assert!(config(r#", "store": " ""#).is_err());
        assert!(
            config(r#", "delete_confirm_percent": 150"#)
                .unwrap_err()
                .contains("delete_confirm_percent")
        );
        assert!(config(r#", "lisen": "x""#).unwrap_err().contains("lisen"));
    }
}
