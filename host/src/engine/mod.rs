//! The engine: routes batches of records to the connector instances and reports when each batch
//! is done with, so that whoever feeds it (the RabbitMQ intake, `replay`) can acknowledge.
//!
//! # What the engine guarantees
//!
//! - **Ack only after acceptance.** A batch is *complete* when every `required` instance it was
//!   routed to has accepted its records, refused some of them for good (a permanent error naming
//!   them, or the whole batch), or was disabled (fatal error, panic, a call past
//!   `LOGRELAY_CALL_TIMEOUT_MS`). Completion is the one signal that the records are safe; it
//!   carries the records that must be dead-lettered, each with its reason ([`Completed`]).
//!   Nothing is reported complete before that, and a batch given up at shutdown while an
//!   instance was still retrying is never reported: its deliveries stay unacknowledged and the
//!   broker redelivers them.
//! - **Best effort never holds an ack.** A `best_effort` instance gets the same records, but its
//!   failures are only counted and logged, and when its queue is full its records are skipped
//!   (counted as dropped) instead of waiting. `replay` asks for best-effort instances to be
//!   waited for too ([`Engine::wait_for_best_effort`]); their failures still never hold up
//!   completion.
//! - **Transient errors are retried** with exponential backoff and jitter ([`backoff`]) until
//!   the call succeeds, fails for good, or the engine stops retrying.
//! - **Ordering.** Each instance has one worker thread taking its batches in dispatch order; a
//!   busy instance gets several queued batches in one call, still in order (coalescing, up to
//!   `LOGRELAY_COALESCE_MAX_RECORDS`). Completions may come in any order across batches.
//! - **Back-pressure.** Each instance has a bounded queue (`LOGRELAY_CHANNEL_CAPACITY` batches).
//!   [`Engine::dispatch`] waits while a required instance's queue is full: that wait is what
//!   stops the intake from taking more from RabbitMQ.
//! - **Routing.** A batch is built once ([`BatchBuilder`]); every instance gets the same records,
//!   or behind a route filter the subset it asked for, each record with its flags.
//! - **Reload** swaps the instance set without losing a batch: what a stopping instance was
//!   given it finishes; later batches go to the new set.
//!
//! # Where things are
//!
//! - `batch.rs`: [`Batch`], [`BatchBuilder`], [`DeliveryRef`], [`Completed`].
//! - `dispatch.rs`: [`Engine::dispatch`], routing and back-pressure.
//! - `worker.rs`: the worker thread of an instance: coalescing, retries, outcomes.
//! - `tracker.rs`: the per-batch acceptance tracker that decides completion.
//! - `instance.rs`: [`Instance`] and its health; `stats.rs`: its counters and [`Histogram`].
//! - `lifecycle.rs`: start, reload, check, the watchdog, shutdown, [`request_once`].
//! - `backoff.rs`: [`backoff`] with jitter.

mod backoff;
mod batch;
mod dispatch;
mod instance;
mod lifecycle;
mod stats;
mod tracker;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use logrelay_plugin_api::PluginError;

use crate::host_api::Registry;

pub use backoff::backoff;
pub use batch::{Batch, BatchBuilder, Completed, DeliveryRef};
pub use instance::{Instance, InstanceHealth};
pub use lifecycle::{EngineOptions, ReloadReport, StartupErrors, request_once};
pub use stats::{HISTOGRAM_BOUNDS, Histogram, InstanceStats};

use lifecycle::Stop;
use tracker::Tracker;

/// The running instances and the machinery around them.
pub struct Engine {
    /// The running instances; replaced as a whole (copy on write) by a reload.
    instances: std::sync::RwLock<Arc<Vec<Arc<Instance>>>>,
    tracker: Arc<Tracker>,
    registry: Arc<Registry>,
    stop: Arc<Stop>,
    epoch: Instant,
    options: EngineOptions,
    /// The next batch id, shared with every [`BatchBuilder`].
    batch_ids: Arc<AtomicU64>,
    next_instance: AtomicUsize,
    /// Held for reading by every dispatch and for writing while a reload swaps instances.
    reloading: tokio::sync::RwLock<()>,
    /// `replay`: best-effort instances back-pressure too instead of skipping records.
    lossless_best_effort: AtomicBool,
    /// Set by [`Engine::shutdown`]: the channels are closed.
    closed: AtomicBool,
}

impl Engine {
    /// The running instances, sorted by name (a snapshot: a reload replaces the set).
    pub fn instances(&self) -> Arc<Vec<Arc<Instance>>> {
        self.instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls `request` on a named instance (blocking).
    pub fn request(&self, instance: &str, method: &str, body: &str) -> Result<String, PluginError> {
        self.registry.request(instance, method, body)
    }

    /// A new batch id.
    pub fn next_batch_id(&self) -> u64 {
        self.batch_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// A builder of batches of up to `max_records` records, numbered by this engine.
    pub fn batch_builder(&self, max_records: usize) -> BatchBuilder {
        BatchBuilder::new(self.batch_ids.clone(), max_records)
    }

    /// The metrics the connectors reported (`Host::counter_add`, `Host::gauge_set`), by name.
    pub fn plugin_metrics(
        &self,
    ) -> std::collections::BTreeMap<String, crate::host_api::MetricFamily> {
        self.registry.metrics()
    }

    /// Batches not yet complete.
    pub fn pending_batches(&self) -> usize {
        self.tracker.pending_batches()
    }

    /// Waits until no batch is pending, or `deadline`. Returns true when idle.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.tracker.idle.notified();
            if self.tracker.pending_batches() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_millis(100)), notified)
                    .await;
        }
    }
}
