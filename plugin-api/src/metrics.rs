//! Connector metrics: counters and gauges a connector reports to the host, which exposes them
//! under `/metrics` as `logrelay_plugin_<name>{instance="<instance>"}`.
//!
//! They travel as a convention over the frozen ABI (no layout change, see docs/ABI_POLICY.md):
//! [`Host::counter_add`] and [`Host::gauge_set`] send `request("", METRICS_METHOD, <json>)` to
//! the host with a [`MetricUpdate`]. The host knows which instance's handle made the call. A
//! host older than this convention refuses the request (no instance has the empty name): the
//! call returns that error, and a connector loses nothing but the metric, so callers ignore it.
//!
//! ```no_run
//! # fn example(host: &logrelay_plugin_api::Host) {
//! // In `handle_batch`, after Telegram answered 429:
//! let _ = host.counter_add("telegram_rate_limited_total", "429 answers from Telegram.", 1.0);
//! # }
//! ```

use serde::{Deserialize, Serialize};

use crate::{Host, PluginError};

/// The request method of a metric update, sent to the empty instance name.
pub const METRICS_METHOD: &str = "logrelay.metrics";

/// The longest metric name the host takes.
pub const MAX_NAME_BYTES: usize = 100;

/// What a metric is, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Only goes up: updated with [`MetricOp::Add`], or [`MetricOp::Set`] to the connector's
    /// own running total (which must not decrease).
    Counter,
    /// Any value; updated with [`MetricOp::Set`] or [`MetricOp::Add`].
    Gauge,
}

/// How the value changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricOp {
    /// Adds `value` (at least 0 for a counter).
    Add,
    /// Sets the metric to `value` (for a counter: its running total, at least 0).
    Set,
}

/// The body of a [`METRICS_METHOD`] request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricUpdate {
    /// `[a-z_][a-z0-9_]*`, at most [`MAX_NAME_BYTES`]; the host exposes it as
    /// `logrelay_plugin_<name>`. Counters end with `_total`, durations are in `_seconds`.
    pub name: String,
    /// One line saying what it counts (the `# HELP` line).
    pub help: String,
    /// Counter or gauge; a name keeps the kind it was first reported with.
    pub kind: MetricKind,
    /// Add or set.
    pub op: MetricOp,
    /// The amount or the new value; finite.
    pub value: f64,
}

impl MetricUpdate {
    /// Checks what the host checks: the name's form, a finite value, no negative value for a
    /// counter. The message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.as_bytes();
        let well_formed = !name.is_empty()
            && name.len() <= MAX_NAME_BYTES
            && (name[0].is_ascii_lowercase() || name[0] == b'_')
            && name
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !well_formed {
            return Err(format!(
                "metric name `{}` is not [a-z_][a-z0-9_]* of at most {MAX_NAME_BYTES} bytes",
                self.name
            ));
        }
        if !self.value.is_finite() {
            return Err(format!("metric `{}`: the value is not finite", self.name));
        }
        if self.kind == MetricKind::Counter && self.value < 0.0 {
            return Err(format!(
                "metric `{}` is a counter: it cannot be negative or decrease",
                self.name
            ));
        }
        Ok(())
    }
}

impl Host {
    /// Adds `delta` (at least 0) to this instance's counter `name` (created at 0 on first use).
    /// An error means the host did not take it (a host older than metrics, a bad name); the
    /// connector can ignore it.
    pub fn counter_add(&self, name: &str, help: &str, delta: f64) -> Result<(), PluginError> {
        self.send_metric(MetricUpdate {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Counter,
            op: MetricOp::Add,
            value: delta,
        })
    }

    /// Sets this instance's counter `name` to `total`, a running total the connector keeps
    /// itself (an atomic it already has), which must not decrease. For reporting such totals
    /// periodically. Errors as for [`Host::counter_add`].
    pub fn counter_set(&self, name: &str, help: &str, total: f64) -> Result<(), PluginError> {
        self.send_metric(MetricUpdate {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Counter,
            op: MetricOp::Set,
            value: total,
        })
    }

    /// Sets this instance's gauge `name` to `value`. Errors as for [`Host::counter_add`].
    pub fn gauge_set(&self, name: &str, help: &str, value: f64) -> Result<(), PluginError> {
        self.send_metric(MetricUpdate {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Gauge,
            op: MetricOp::Set,
            value,
        })
    }

    /// Sends one update (checked here first, so a bad one never crosses).
    pub fn send_metric(&self, update: MetricUpdate) -> Result<(), PluginError> {
        update.validate().map_err(PluginError::permanent)?;
        let body = serde_json::to_string(&update)
            .map_err(|e| PluginError::permanent(format!("metric `{}`: {e}", update.name)))?;
        self.request_blocking("", METRICS_METHOD, &body).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, kind: MetricKind, op: MetricOp, value: f64) -> MetricUpdate {
        MetricUpdate {
            name: name.to_owned(),
            help: "h".to_owned(),
            kind,
            op,
            value,
        }
    }

    #[test]
    fn validates_names_values_and_counters() {
        use MetricKind::*;
        use MetricOp::*;
        assert!(update("sent_total", Counter, Add, 1.0).validate().is_ok());
        assert!(update("_x9", Gauge, Set, -3.5).validate().is_ok());
        for bad in ["", "9x", "Sent", "a-b", "a.b", &"x".repeat(101)] {
            assert!(update(bad, Gauge, Set, 1.0).validate().is_err(), "{bad}");
        }
        assert!(update("g", Gauge, Set, f64::NAN).validate().is_err());
        assert!(update("c_total", Counter, Set, 7.0).validate().is_ok());
        assert!(update("c_total", Counter, Set, -1.0).validate().is_err());
        assert!(update("c_total", Counter, Add, -1.0).validate().is_err());
    }

    #[test]
    fn the_body_round_trips_as_json() {
        let u = update("write_seconds", MetricKind::Gauge, MetricOp::Set, 0.25);
        let text = serde_json::to_string(&u).expect("json");
        assert_eq!(
            text,
            r#"{"name":"write_seconds","help":"h","kind":"gauge","op":"set","value":0.25}"#
        );
        assert_eq!(
            serde_json::from_str::<MetricUpdate>(&text).expect("back"),
            u
        );
    }
}
