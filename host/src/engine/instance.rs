//! A running instance: its plugin, its queue, whether it is disabled, and its health.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use logrelay_plugin_api::abi::{HandleBatchFlagged, PluginBox};
use tokio::sync::mpsc;

use super::stats::InstanceStats;
use super::worker::Job;
use crate::config::InstanceSpec;
use crate::loader::ManifestInfo;

/// One running instance.
pub struct Instance {
    /// Its configuration.
    pub spec: InstanceSpec,
    /// What its library says about itself.
    pub manifest: ManifestInfo,
    /// Its counters.
    pub stats: InstanceStats,
    pub(super) plugin: Arc<PluginBox>,
    /// The library's `handle_batch_flagged`; `None` for a library built against 1.0.0.
    pub(super) flagged: Option<HandleBatchFlagged>,
    pub(super) index: usize,
    pub(super) disabled: AtomicBool,
    pub(super) disabled_reason: Mutex<Option<String>>,
    /// Milliseconds since the engine's epoch when the current call began; 0 when idle.
    pub(super) busy_since_ms: AtomicU64,
    pub(super) tx: Mutex<Option<mpsc::Sender<Job>>>,
    pub(super) last_drop_warning: Mutex<Option<Instant>>,
    /// The last periodic health check's failure, if it failed.
    pub(super) unhealthy: Mutex<Option<String>>,
    pub(super) capacity: usize,
    /// Signals when the worker thread has finished (after the instance's `shutdown`).
    pub(super) done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// What `/health` says of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceHealth {
    /// Working.
    Ok,
    /// Its last health check failed; it still receives batches (and retries them).
    Unhealthy(String),
    /// Disabled for good (fatal error, panic, hung call) until the host restarts.
    Disabled(String),
}

impl Instance {
    /// The instance's state for `/health`.
    pub fn health(&self) -> InstanceHealth {
        if self.is_disabled() {
            return InstanceHealth::Disabled(self.disabled_reason().unwrap_or_default());
        }
        match self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            Some(reason) => InstanceHealth::Unhealthy(reason),
            None => InstanceHealth::Ok,
        }
    }

    /// Batches queued for the instance's worker.
    pub fn channel_depth(&self) -> usize {
        self.sender()
            .map(|tx| self.capacity.saturating_sub(tx.capacity()))
            .unwrap_or(0)
    }

    /// Runs the instance's health check (blocking) and records the result.
    pub fn run_healthcheck(&self) -> InstanceHealth {
        if !self.is_disabled() {
            let result = self.plugin.healthcheck().into_result();
            let mut state = self
                .unhealthy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(()) => {
                    if state.take().is_some() {
                        tracing::info!(plugin = %self.spec.name, "Instance healthy again.");
                    }
                }
                Err(e) => {
                    if state.is_none() {
                        tracing::warn!(plugin = %self.spec.name, error = %e.message, "Health check failed.");
                    }
                    *state = Some(e.message.to_string());
                }
            }
        }
        self.health()
    }

    /// True once the instance was disabled (fatal error, panic, hung call).
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    /// Why it was disabled.
    pub fn disabled_reason(&self) -> Option<String> {
        self.disabled_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn disable(&self, reason: &str) -> bool {
        let first = !self.disabled.swap(true, Ordering::AcqRel);
        if first {
            *self
                .disabled_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
            tracing::error!(
                plugin = %self.spec.name,
                reason,
                "Instance disabled; the other instances keep running."
            );
        }
        first
    }

    pub(super) fn sender(&self) -> Option<mpsc::Sender<Job>> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
