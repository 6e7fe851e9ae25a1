//! Dispatch: one bounded channel and one worker thread per instance, routing, retries, the
//! per-batch acceptance tracker, and the watchdog that disables an instance stuck in a call.
//!
//! A batch is built once and every instance gets the same slice (or, behind a route filter, the
//! subset it asked for). A batch is *complete* when every `required` instance it was routed to has
//! accepted it or failed it for good; completion is reported to whoever feeds the engine (the
//! RabbitMQ intake acks then, `replay` counts), together with the records that must be
//! dead-lettered and why. Nothing is acknowledged before that.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use abi_stable::std_types::RSlice;
use logrelay_plugin_api::abi::{HandleBatchFlagged, PluginBox};
use logrelay_plugin_api::refusal::one_line;
use logrelay_plugin_api::{ErrorKind, PluginError, Record, RecordFlags};
use tokio::sync::mpsc;

use crate::config::{Delivery, InstanceSpec, PluginsConfig, Settings};
use crate::host_api::{Registry, host_for};
use crate::loader::{Loader, ManifestInfo};

/// Where a batch's records came from, so the feeder can acknowledge them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef {
    /// The AMQP channel generation (a reconnect starts a new one; old tags cannot be acked).
    pub generation: u64,
    /// The delivery tag.
    pub tag: u64,
}

/// Records handed to the instances together.
#[derive(Debug)]
pub struct Batch {
    /// Unique within the engine.
    pub id: u64,
    /// The records, built once for every instance.
    pub records: Vec<Record>,
    /// What the host knows about each record beyond its fields: `flags[i]` is for
    /// `records[i]`. Empty when nothing is known (instances are then told nothing).
    pub flags: Vec<RecordFlags>,
    /// The deliveries whose records these are.
    pub deliveries: Vec<DeliveryRef>,
}

/// A batch every required instance is done with.
#[derive(Debug)]
pub struct Completed {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Records a required instance refused or could not take, with the reason, by index.
    pub failed: Vec<(u32, String)>,
}

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// Batches accepted.
    pub batches_ok: AtomicU64,
    /// Batches that ended in a permanent or fatal error.
    pub batches_failed: AtomicU64,
    /// Retries after transient errors.
    pub retries: AtomicU64,
    /// Records accepted.
    pub records_ok: AtomicU64,
    /// Records refused as permanently bad.
    pub records_rejected: AtomicU64,
    /// Records a best-effort instance was too slow to take.
    pub records_dropped: AtomicU64,
    /// How long `handle_batch` calls take.
    pub call_seconds: Histogram,
    /// Calls that carried several queued batches at once.
    pub coalesced: AtomicU64,
}

/// A latency histogram with fixed buckets, updated without locks.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; HISTOGRAM_BOUNDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// Upper bounds (seconds) of the histogram buckets; `+Inf` is implied.
pub const HISTOGRAM_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = HISTOGRAM_BOUNDS.iter().position(|b| secs <= *b)
            && let Some(c) = self.counts.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Cumulative counts per bucket bound, the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = HISTOGRAM_BOUNDS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// One running instance.
pub struct Instance {
    /// Its configuration.
    pub spec: InstanceSpec,
    /// What its library says about itself.
    pub manifest: ManifestInfo,
    /// Its counters.
    pub stats: InstanceStats,
    plugin: Arc<PluginBox>,
    /// The library's `handle_batch_flagged`; `None` for a library built against 1.0.0.
    flagged: Option<HandleBatchFlagged>,
    index: usize,
    disabled: AtomicBool,
    disabled_reason: Mutex<Option<String>>,
    /// Milliseconds since the engine's epoch when the current call began; 0 when idle.
    busy_since_ms: AtomicU64,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    last_drop_warning: Mutex<Option<Instant>>,
    /// The last periodic health check's failure, if it failed.
    unhealthy: Mutex<Option<String>>,
    capacity: usize,
    /// Signals when the worker thread has finished (after the instance's `shutdown`).
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
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

    fn disable(&self, reason: &str) -> bool {
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

    fn sender(&self) -> Option<mpsc::Sender<Job>> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The records of a batch one instance gets.
struct Job {
    batch: Arc<Batch>,
    /// The part of the batch a route filter picked, when it is not all of it.
    subset: Option<Subset>,
}

/// The records of a batch a route filter picked.
struct Subset {
    records: Vec<Record>,
    /// Their flags (empty when the batch has none).
    flags: Vec<RecordFlags>,
    /// Their indices in the batch.
    origin: Arc<[u32]>,
}

impl Job {
    fn records(&self) -> &[Record] {
        match &self.subset {
            Some(s) => &s.records,
            None => &self.batch.records,
        }
    }

    /// One per record of [`Job::records`], or empty when unknown.
    fn flags(&self) -> &[RecordFlags] {
        match &self.subset {
            Some(s) => &s.flags,
            None => &self.batch.flags,
        }
    }

    /// Maps indices into [`Job::records`] back to indices into the batch.
    fn origin(&self, i: u32) -> u32 {
        match &self.subset {
            Some(s) => s.origin.get(i as usize).copied().unwrap_or(i),
            None => i,
        }
    }
}

/// Everything that failed to start, reported at once.
#[derive(Debug, thiserror::Error)]
#[error("{} instance(s) failed to start:\n  {}", .0.len(), .0.join("\n  "))]
pub struct StartupErrors(pub Vec<String>);

struct PendingBatch {
    batch: Arc<Batch>,
    /// Required instances still working on it, with the indices they were given (None: all).
    waiting: Vec<(usize, Option<Arc<[u32]>>)>,
    failed: BTreeMap<u32, String>,
}

#[derive(Default)]
struct TrackerState {
    pending: HashMap<u64, PendingBatch>,
    disabled: HashMap<usize, String>,
}

struct Tracker {
    state: Mutex<TrackerState>,
    done: mpsc::UnboundedSender<Completed>,
    idle: tokio::sync::Notify,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, batch: &Arc<Batch>, waiting: Vec<(usize, Option<Arc<[u32]>>)>) {
        let mut st = self.lock();
        let mut pending = PendingBatch {
            batch: batch.clone(),
            waiting: Vec::with_capacity(waiting.len()),
            failed: BTreeMap::new(),
        };
        for (inst, idx) in waiting {
            if let Some(reason) = st.disabled.get(&inst) {
                fail_indices(&mut pending, &idx, reason);
            } else {
                pending.waiting.push((inst, idx));
            }
        }
        if pending.waiting.is_empty() {
            self.complete(pending);
        } else {
            st.pending.insert(batch.id, pending);
        }
    }

    /// An instance is done with a batch; `failed` are batch indices it could not take, each
    /// with its reason.
    fn settle(&self, batch_id: u64, inst: usize, failed: Vec<(u32, String)>) {
        let mut st = self.lock();
        let Some(p) = st.pending.get_mut(&batch_id) else {
            return;
        };
        let Some(pos) = p.waiting.iter().position(|(i, _)| *i == inst) else {
            return;
        };
        p.waiting.swap_remove(pos);
        for (i, reason) in failed {
            p.failed.entry(i).or_insert(reason);
        }
        if p.waiting.is_empty()
            && let Some(p) = st.pending.remove(&batch_id)
        {
            self.complete(p);
        }
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Gives up on a batch without completing it: its deliveries stay unacknowledged and the
    /// broker redelivers them (shutdown while an instance was still retrying).
    fn abandon(&self, batch_id: u64) {
        let mut st = self.lock();
        st.pending.remove(&batch_id);
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Fails every batch still waiting on `inst`, and every later one routed to it.
    fn instance_disabled(&self, inst: usize, reason: &str) {
        let mut st = self.lock();
        st.disabled.insert(inst, reason.to_owned());
        let ids: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.iter().any(|(i, _)| *i == inst))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut p) = st.pending.remove(&id) else {
                continue;
            };
            if let Some(pos) = p.waiting.iter().position(|(i, _)| *i == inst) {
                let (_, idx) = p.waiting.swap_remove(pos);
                fail_indices(&mut p, &idx, reason);
            }
            if p.waiting.is_empty() {
                self.complete(p);
            } else {
                st.pending.insert(id, p);
            }
        }
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    fn complete(&self, p: PendingBatch) {
        let _ = self.done.send(Completed {
            batch: p.batch,
            failed: p.failed.into_iter().collect(),
        });
    }

    fn pending_batches(&self) -> usize {
        self.lock().pending.len()
    }
}

fn fail_indices(p: &mut PendingBatch, idx: &Option<Arc<[u32]>>, reason: &str) {
    let all: Vec<u32>;
    let list: &[u32] = match idx {
        Some(list) => list,
        None => {
            all = (0..p.batch.records.len() as u32).collect();
            &all
        }
    };
    for i in list {
        p.failed.entry(*i).or_insert_with(|| reason.to_owned());
    }
}

/// Interruptible sleeps for retrying workers, and the flag that tells them to give up.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// Sleeps up to `d`; returns true when stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

/// Engine tunables, taken from [`Settings`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Batches queued per instance.
    pub channel_capacity: usize,
    /// A call running longer disables the instance.
    pub call_timeout: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// Queued batches are handed to a busy instance together, up to this many records.
    pub coalesce_max_records: usize,
}

/// The settings' defaults (`LOGRELAY_CHANNEL_CAPACITY` and so on).
impl Default for EngineOptions {
    fn default() -> Self {
        use crate::config::settings::defaults;
        EngineOptions {
            channel_capacity: defaults::CHANNEL_CAPACITY,
            call_timeout: Duration::from_millis(defaults::CALL_TIMEOUT_MS),
            retry_max: Duration::from_millis(defaults::RETRY_MAX_MS),
            coalesce_max_records: defaults::COALESCE_MAX_RECORDS,
        }
    }
}

impl From<&Settings> for EngineOptions {
    fn from(s: &Settings) -> Self {
        EngineOptions {
            channel_capacity: s.channel_capacity.get(),
            call_timeout: s.call_timeout,
            retry_max: s.retry_max,
            coalesce_max_records: s.coalesce_max_records.get(),
        }
    }
}

/// The running instances and the machinery around them.
pub struct Engine {
    /// The running instances; replaced as a whole (copy on write) by a reload.
    instances: std::sync::RwLock<Arc<Vec<Arc<Instance>>>>,
    tracker: Arc<Tracker>,
    registry: Arc<Registry>,
    stop: Arc<Stop>,
    epoch: Instant,
    options: EngineOptions,
    next_batch: AtomicU64,
    next_instance: AtomicUsize,
    /// Held for reading by every dispatch and for writing while a reload swaps instances.
    reloading: tokio::sync::RwLock<()>,
    /// `replay`: best-effort instances back-pressure too instead of skipping records.
    lossless_best_effort: AtomicBool,
    /// Set by [`Engine::shutdown`]: the channels are closed.
    closed: AtomicBool,
}

/// An instance built and health-checked, not yet running.
struct Built {
    spec: InstanceSpec,
    manifest: ManifestInfo,
    plugin: Arc<PluginBox>,
    /// The library's `handle_batch_flagged`; `None` for a library built against 1.0.0.
    flagged: Option<HandleBatchFlagged>,
}

/// Loads every enabled instance, builds it and runs its health check, collecting every error.
/// Blocking: call it from a blocking thread.
fn build_all<'a>(
    specs: impl IntoIterator<Item = &'a InstanceSpec>,
    registry: &Arc<Registry>,
) -> Result<Vec<Built>, StartupErrors> {
    let mut loader = Loader::default();
    let mut errors = Vec::new();
    let mut built = Vec::new();
    let mut loaded = Vec::new();
    for spec in specs {
        let at = format!("[plugins.{}]", spec.name);
        let lib = match loader.load(&spec.library, &spec.type_name) {
            Ok(lib) => lib,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        let manifest = lib.manifest();
        if manifest.type_name != spec.type_name {
            errors.push(format!(
                "{at}: {} is a `{}` connector, not `{}`",
                spec.library.display(),
                manifest.type_name,
                spec.type_name
            ));
            continue;
        }
        loaded.push((spec, lib, manifest));
    }
    // Stores first: connectors that use a store (http-api) can ask it while they start.
    loaded.sort_by_key(|(_, _, m)| !m.capabilities.iter().any(|c| c == "store"));
    for (spec, lib, manifest) in loaded {
        let at = format!("[plugins.{}]", spec.name);
        let host = host_for(&spec.name, registry.clone());
        let plugin = match (lib.new)(
            spec.name.as_str().into(),
            spec.config_json.as_str().into(),
            host,
        )
        .into_result()
        {
            Ok(p) => Arc::new(p),
            Err(e) => {
                errors.push(format!("{at}: {}: {}", e.kind, e.message));
                continue;
            }
        };
        registry.insert(&spec.name, plugin.clone());
        built.push(Built {
            spec: spec.clone(),
            manifest,
            plugin,
            flagged: lib.handle_batch_flagged,
        });
    }
    for b in &built {
        if let Err(e) = b.plugin.healthcheck().into_result() {
            errors.push(format!(
                "[plugins.{}]: health check failed: {}",
                b.spec.name, e.message
            ));
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        for b in &built {
            let _ = b.plugin.shutdown();
            registry.remove(&b.spec.name);
        }
        Err(StartupErrors(errors))
    }
}

impl Engine {
    /// Loads, builds and health-checks every enabled instance, then starts their workers.
    /// Completed batches are sent to the returned receiver. Blocking.
    pub fn start(
        config: &PluginsConfig,
        options: EngineOptions,
    ) -> Result<(Arc<Engine>, mpsc::UnboundedReceiver<Completed>), StartupErrors> {
        let registry = Arc::new(Registry::default());
        let built = build_all(config.enabled(), &registry)?;
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            instances: std::sync::RwLock::new(Arc::new(Vec::new())),
            tracker: Arc::new(Tracker {
                state: Mutex::new(TrackerState::default()),
                done: done_tx,
                idle: tokio::sync::Notify::new(),
            }),
            registry,
            stop: Arc::new(Stop::default()),
            epoch: Instant::now(),
            options,
            next_batch: AtomicU64::new(1),
            next_instance: AtomicUsize::new(0),
            reloading: tokio::sync::RwLock::new(()),
            lossless_best_effort: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let mut instances = Vec::new();
        for b in built {
            instances.push(engine.spawn(b)?);
        }
        engine.publish(instances);
        Ok((engine, done_rx))
    }

    /// Starts the worker thread of a built instance.
    fn spawn(&self, b: Built) -> Result<Arc<Instance>, StartupErrors> {
        let (tx, rx) = mpsc::channel(self.options.channel_capacity);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let inst = Arc::new(Instance {
            spec: b.spec,
            manifest: b.manifest,
            stats: InstanceStats::default(),
            plugin: b.plugin,
            flagged: b.flagged,
            index: self.next_instance.fetch_add(1, Ordering::Relaxed),
            disabled: AtomicBool::new(false),
            disabled_reason: Mutex::new(None),
            busy_since_ms: AtomicU64::new(0),
            tx: Mutex::new(Some(tx)),
            last_drop_warning: Mutex::new(None),
            unhealthy: Mutex::new(None),
            capacity: self.options.channel_capacity,
            done: Mutex::new(Some(done_rx)),
        });
        let worker = Worker {
            inst: inst.clone(),
            tracker: self.tracker.clone(),
            stop: self.stop.clone(),
            epoch: self.epoch,
            retry_max: self.options.retry_max,
            coalesce_max: self.options.coalesce_max_records,
        };
        std::thread::Builder::new()
            .name(format!("inst-{}", inst.spec.name))
            .spawn(move || {
                worker.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| StartupErrors(vec![format!("cannot start a worker thread: {e}")]))?;
        Ok(inst)
    }

    /// Makes `instances` the set dispatch routes to.
    fn publish(&self, mut instances: Vec<Arc<Instance>>) {
        instances.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        *self
            .instances
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(instances);
    }

    /// Stops one instance: no new batches, its queue drained, its `shutdown` called. Waits for
    /// its worker until `deadline`. Blocking.
    fn retire(&self, inst: &Instance, deadline: Instant) {
        inst.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let done = inst
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                tracing::warn!(plugin = %inst.spec.name, "Instance did not finish before the deadline.");
            }
        }
        self.registry.remove(&inst.spec.name);
    }

    /// Applies a new plugins.toml while intake keeps running: starts added instances, stops
    /// removed ones (after they finished their queue), restarts changed ones. Nothing is lost:
    /// batches already handed to a stopping instance are finished by it; later ones go to the
    /// new set. A configuration whose libraries or added instances fail is refused with the
    /// reasons and the running set stays as it is. Blocking.
    pub fn reload(&self, config: &PluginsConfig) -> Result<ReloadReport, StartupErrors> {
        let current = self.instances();
        let wanted: Vec<&InstanceSpec> = config.enabled().collect();
        let added: Vec<&InstanceSpec> = wanted
            .iter()
            .copied()
            .filter(|w| !current.iter().any(|c| c.spec.name == w.name))
            .collect();
        let changed: Vec<&InstanceSpec> = wanted
            .iter()
            .copied()
            .filter(|w| {
                current
                    .iter()
                    .any(|c| c.spec.name == w.name && c.spec != **w)
            })
            .collect();
        let removed: Vec<Arc<Instance>> = current
            .iter()
            .filter(|c| !wanted.iter().any(|w| w.name == c.spec.name))
            .cloned()
            .collect();
        // Check every library (of added and changed instances) before anything changes.
        let mut loader = Loader::default();
        let mut errors = Vec::new();
        for spec in added.iter().chain(&changed) {
            match loader.load(&spec.library, &spec.type_name) {
                Ok(lib) if lib.manifest().type_name != spec.type_name => errors.push(format!(
                    "[plugins.{}]: {} is a `{}` connector, not `{}`",
                    spec.name,
                    spec.library.display(),
                    lib.manifest().type_name,
                    spec.type_name
                )),
                Ok(_) => {}
                Err(e) => errors.push(format!("[plugins.{}]: {e}", spec.name)),
            }
        }
        if !errors.is_empty() {
            return Err(StartupErrors(errors));
        }
        // Added instances are built (and health-checked) while the old set still runs.
        let mut started = Vec::new();
        for b in build_all(added.iter().copied(), &self.registry)? {
            started.push(self.spawn(b)?);
        }
        let deadline = Instant::now() + self.options.call_timeout;
        let mut next: Vec<Arc<Instance>> = current
            .iter()
            .filter(|c| {
                wanted
                    .iter()
                    .any(|w| w.name == c.spec.name && c.spec == **w)
            })
            .cloned()
            .collect();
        next.extend(started.iter().cloned());
        // Dispatch waits while changed instances are swapped (back-pressure, like a slow
        // instance): a batch dispatched meanwhile reaches the new instance, never neither.
        let _swap = self.reloading.blocking_write();
        // Changed instances: the old one finishes its queue and stops before the new one
        // starts (both may hold the same port or file).
        let mut restart_errors = Vec::new();
        for spec in &changed {
            let Some(old) = current.iter().find(|c| c.spec.name == spec.name) else {
                continue;
            };
            self.retire(old, deadline);
            let rebuilt = build_all([*spec], &self.registry).and_then(|mut b| {
                b.pop()
                    .ok_or_else(|| StartupErrors(vec!["nothing was built".into()]))
                    .and_then(|b| self.spawn(b))
            });
            match rebuilt {
                Ok(inst) => next.push(inst),
                Err(e) => {
                    restart_errors.extend(e.0);
                    // Bring the previous configuration back rather than leave a hole.
                    if let Ok(mut b) = build_all([&old.spec], &self.registry)
                        && let Some(b) = b.pop()
                        && let Ok(inst) = self.spawn(b)
                    {
                        next.push(inst);
                    }
                }
            }
        }
        self.publish(next);
        drop(_swap);
        for inst in &removed {
            self.retire(inst, deadline);
        }
        let report = ReloadReport {
            added: added.iter().map(|s| s.name.clone()).collect(),
            changed: changed.iter().map(|s| s.name.clone()).collect(),
            removed: removed.iter().map(|i| i.spec.name.clone()).collect(),
        };
        if restart_errors.is_empty() {
            Ok(report)
        } else {
            Err(StartupErrors(restart_errors))
        }
    }

    /// Loads, builds and health-checks every enabled instance, then shuts them down: `logrelay check`.
    pub fn check(
        config: &PluginsConfig,
    ) -> Result<Vec<(InstanceSpec, ManifestInfo)>, StartupErrors> {
        let registry = Arc::new(Registry::default());
        let built = build_all(config.enabled(), &registry)?;
        let mut out = Vec::new();
        for b in built {
            if let Err(e) = b.plugin.shutdown().into_result() {
                tracing::warn!(plugin = %b.spec.name, error = %e, "Shutdown after the check failed.");
            }
            out.push((b.spec, b.manifest));
        }
        Ok(out)
    }

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
        self.next_batch.fetch_add(1, Ordering::Relaxed)
    }

    /// Batches not yet complete.
    pub fn pending_batches(&self) -> usize {
        self.tracker.pending_batches()
    }

    /// Routes a batch to the instances. Waits while a required instance's channel is full: that
    /// wait is the back-pressure that stops intake.
    pub async fn dispatch(&self, batch: Batch) {
        let _no_swap = self.reloading.read().await;
        let batch = Arc::new(batch);
        let instances = self.instances();
        let mut jobs: Vec<(&Arc<Instance>, Job)> = Vec::with_capacity(instances.len());
        let mut waiting = Vec::new();
        for inst in instances.iter() {
            let subset = if inst.spec.route.is_all() {
                None
            } else {
                let idx: Vec<u32> = batch
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| inst.spec.route.matches(r))
                    .map(|(i, _)| i as u32)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                if idx.len() == batch.records.len() {
                    None
                } else {
                    let records = idx
                        .iter()
                        .filter_map(|i| batch.records.get(*i as usize).cloned())
                        .collect();
                    let flags = if batch.flags.len() == batch.records.len() {
                        idx.iter()
                            .filter_map(|i| batch.flags.get(*i as usize).copied())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Some(Subset {
                        records,
                        flags,
                        origin: Arc::from(idx),
                    })
                }
            };
            if batch.records.is_empty() {
                continue;
            }
            if inst.spec.delivery == Delivery::Required {
                waiting.push((inst.index, subset.as_ref().map(|s| s.origin.clone())));
            } else if inst.is_disabled() {
                continue;
            }
            jobs.push((
                inst,
                Job {
                    batch: batch.clone(),
                    subset,
                },
            ));
        }
        self.tracker.register(&batch, waiting);
        for (inst, job) in jobs {
            if inst.is_disabled() {
                // The tracker already failed (or will fail) what was routed to it.
                continue;
            }
            let Some(tx) = inst.sender() else {
                continue;
            };
            match inst.spec.delivery {
                Delivery::Required => self.send_required(inst, &tx, job).await,
                Delivery::BestEffort if self.lossless_best_effort.load(Ordering::Relaxed) => {
                    let _ = tx.send(job).await;
                }
                Delivery::BestEffort => {
                    if let Err(mpsc::error::TrySendError::Full(job)) = tx.try_send(job) {
                        let n = job.records().len() as u64;
                        inst.stats.records_dropped.fetch_add(n, Ordering::Relaxed);
                        warn_dropped(inst, n);
                    }
                }
            }
        }
    }

    /// Hands a job to a required instance, waiting for room in its channel (back-pressure), but
    /// not past the instance being disabled (the tracker has failed its records then) or the
    /// engine stopping (the batch is abandoned and will be redelivered).
    async fn send_required(&self, inst: &Instance, tx: &mpsc::Sender<Job>, job: Job) {
        let batch_id = job.batch.id;
        loop {
            tokio::select! {
                permit = tx.reserve() => {
                    match permit {
                        Ok(permit) => permit.send(job),
                        Err(_) => self
                            .tracker
                            .instance_disabled(inst.index, "the instance's worker stopped"),
                    }
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if inst.is_disabled() {
                        return;
                    }
                    if self.stop.is_set() {
                        self.tracker.abandon(batch_id);
                        return;
                    }
                }
            }
        }
    }

    /// Makes dispatch wait for best-effort instances too (as for required ones) instead of
    /// skipping their records when they are behind: for `replay`, where the input is finite and
    /// nothing should be skipped. Their failures still never hold up completion.
    pub fn wait_for_best_effort(&self, wait: bool) {
        self.lossless_best_effort.store(wait, Ordering::Relaxed);
    }

    /// Stops retrying: instances failing transiently give their batches up (left unacknowledged,
    /// so RabbitMQ redelivers them) and dispatch no longer waits for them. Healthy instances
    /// finish what they were given. Call it when shutdown begins.
    pub fn stop_retrying(&self) {
        self.stop.set();
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

    /// Disables instances whose current call has run longer than the call timeout. Run it
    /// periodically (see [`Engine::watchdog`]).
    pub fn check_hung(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let limit = self.options.call_timeout.as_millis() as u64;
        for inst in self.instances().iter() {
            let since = inst.busy_since_ms.load(Ordering::Acquire);
            if since != 0 && now.saturating_sub(since) > limit && !inst.is_disabled() {
                let reason = format!(
                    "a call did not return within {} ms (LOGRELAY_CALL_TIMEOUT_MS)",
                    limit
                );
                if inst.disable(&reason) {
                    self.tracker.instance_disabled(inst.index, &reason);
                }
            }
        }
    }

    /// Runs [`Engine::check_hung`] until the engine stops.
    pub async fn watchdog(self: Arc<Self>) {
        let period =
            (self.options.call_timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
        while !self.stop.is_set() {
            tokio::time::sleep(period).await;
            self.check_hung();
        }
    }

    /// Runs every instance's health check every `period` until the engine is shut down.
    pub async fn health_loop(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let engine = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for inst in engine.instances().iter() {
                    inst.run_healthcheck();
                }
            })
            .await;
        }
    }

    /// Stops the engine: retries give up, every worker finishes its queue, calls its instance's
    /// `shutdown`, and exits. Waits for the workers until `deadline`. Blocking.
    pub fn shutdown(&self, deadline: Instant) {
        self.stop.set();
        self.closed.store(true, Ordering::Release);
        let instances = self.instances();
        // Close every channel first so the workers finish in parallel.
        for inst in instances.iter() {
            inst.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        for inst in instances.iter() {
            self.retire(inst, deadline);
        }
    }
}

/// Builds one instance, calls `request(method, body)` on it and shuts it down: for commands
/// such as `logrelay sql` that use a connector without running the pipeline. Blocking.
pub fn request_once(spec: &InstanceSpec, method: &str, body: &str) -> Result<String, String> {
    let registry = Arc::new(Registry::default());
    let mut built = build_all([spec], &registry).map_err(|e| e.to_string())?;
    let Some(b) = built.pop() else {
        return Err(format!("[plugins.{}] could not be started", spec.name));
    };
    let answer = registry
        .request(&spec.name, method, body)
        .map_err(|e| e.message.to_string());
    if let Err(e) = b.plugin.shutdown().into_result() {
        tracing::warn!(plugin = %spec.name, error = %e, "Shutdown failed.");
    }
    registry.remove(&spec.name);
    answer
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Instances started.
    pub added: Vec<String>,
    /// Instances restarted with a new configuration.
    pub changed: Vec<String>,
    /// Instances stopped.
    pub removed: Vec<String>,
}

fn warn_dropped(inst: &Instance, n: u64) {
    let mut last = inst
        .last_drop_warning
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            plugin = %inst.spec.name,
            records = n,
            total_dropped = inst.stats.records_dropped.load(Ordering::Relaxed),
            "Best-effort instance is behind; records skipped for it."
        );
    }
}

struct Worker {
    inst: Arc<Instance>,
    tracker: Arc<Tracker>,
    stop: Arc<Stop>,
    epoch: Instant,
    retry_max: Duration,
    coalesce_max: usize,
}

#[derive(Clone)]
enum Outcome {
    Accepted,
    /// Refused records, by index (ascending, each once), each with its own reason; then the
    /// refusal's summary, for the log.
    Rejected(Vec<(u32, String)>, String),
    /// Refused without naming records: all of them.
    RejectedAll(String),
    Failed(String),
    Abandoned,
}

impl Worker {
    fn run(&self, mut rx: mpsc::Receiver<Job>) {
        let mut carried: Option<Job> = None;
        loop {
            let Some(first) = carried.take().or_else(|| rx.blocking_recv()) else {
                break;
            };
            // An instance that is behind gets what queued up meanwhile in one call: fewer,
            // larger calls are cheaper per record (a store commits once instead of four times)
            // and cost no latency, since the queued batches would wait anyway.
            let mut total = first.records().len();
            let mut jobs = vec![first];
            while total < self.coalesce_max {
                let Ok(next) = rx.try_recv() else {
                    break;
                };
                let n = next.records().len();
                if total + n > self.coalesce_max {
                    carried = Some(next);
                    break;
                }
                total += n;
                jobs.push(next);
            }
            if self.inst.is_disabled() {
                let reason = self.disabled_message();
                for job in &jobs {
                    self.report(job, Outcome::Failed(reason.clone()));
                }
                continue;
            }
            match jobs.as_slice() {
                [job] => {
                    let outcome = self.deliver(job.records(), job.flags());
                    self.report(job, outcome);
                }
                _ => {
                    let merged: Vec<Record> = jobs
                        .iter()
                        .flat_map(|j| j.records().iter().cloned())
                        .collect();
                    // Flags only if every batch has them: they must match the records one for one.
                    let flags: Vec<RecordFlags> =
                        if jobs.iter().all(|j| j.flags().len() == j.records().len()) {
                            jobs.iter()
                                .flat_map(|j| j.flags().iter().copied())
                                .collect()
                        } else {
                            Vec::new()
                        };
                    self.inst.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                    match self.deliver(&merged, &flags) {
                        // Refused as a whole: which batch was bad is unknown, so each is
                        // offered again alone and only the bad ones are refused.
                        Outcome::RejectedAll(_) => {
                            for job in &jobs {
                                let outcome = self.deliver(job.records(), job.flags());
                                self.report(job, outcome);
                            }
                        }
                        outcome => self.report_merged(&jobs, outcome),
                    }
                }
            }
        }
        if !self.inst.is_disabled()
            && let Err(e) = self.inst.plugin.shutdown().into_result()
        {
            tracing::warn!(plugin = %self.inst.spec.name, error = %e, "Instance shutdown failed.");
        }
    }

    fn disabled_message(&self) -> String {
        format!(
            "instance `{}` is disabled: {}",
            self.inst.spec.name,
            self.inst.disabled_reason().unwrap_or_default()
        )
    }

    /// Calls `handle_batch` until it succeeds or fails for good, through the library's
    /// `handle_batch_flagged` when it has one and `flags` has one per record. Indices in the
    /// outcome are into `records`.
    fn deliver(&self, records: &[Record], flags: &[RecordFlags]) -> Outcome {
        let mut attempt: u32 = 0;
        loop {
            let started = (self.epoch.elapsed().as_millis() as u64).max(1);
            self.inst.busy_since_ms.store(started, Ordering::Release);
            let call_started = Instant::now();
            let result = match self.inst.flagged {
                Some(call) if flags.len() == records.len() => call(
                    &self.inst.plugin,
                    RSlice::from_slice(records),
                    RSlice::from_slice(flags),
                ),
                _ => self.inst.plugin.handle_batch(RSlice::from_slice(records)),
            }
            .into_result();
            self.inst.busy_since_ms.store(0, Ordering::Release);
            self.inst.stats.call_seconds.observe(call_started.elapsed());
            if self.inst.is_disabled() {
                // The watchdog gave up on this call while it ran; it has been accounted for.
                return Outcome::Failed(self.disabled_message());
            }
            let e = match result {
                Ok(()) => return Outcome::Accepted,
                Err(e) => e,
            };
            match e.kind {
                ErrorKind::TRANSIENT => {
                    attempt = attempt.saturating_add(1);
                    self.inst.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt, self.retry_max, e.retry_after());
                    if attempt <= 3 || attempt.is_power_of_two() {
                        tracing::warn!(
                            plugin = %self.inst.spec.name,
                            error = %e.message,
                            attempt,
                            retry_in_ms = wait.as_millis() as u64,
                            "Batch delivery failed; will retry."
                        );
                    }
                    if self.stop.sleep(wait) {
                        return Outcome::Abandoned;
                    }
                }
                ErrorKind::PERMANENT => {
                    let mut named: Vec<u32> = e
                        .bad_records
                        .iter()
                        .copied()
                        .filter(|i| (*i as usize) < records.len())
                        .collect();
                    named.sort_unstable();
                    named.dedup();
                    // Each record gets its own reason where the message has one
                    // (logrelay_plugin_api::refusal), else the summary; all on one line, as
                    // each becomes a dead letter's reason header.
                    let reasons = e.record_reasons();
                    let name = &self.inst.spec.name;
                    let summary = format!("refused by `{name}`: {}", reasons.summary());
                    // None named (or only indices outside the batch): the whole batch is bad.
                    return if named.is_empty() {
                        Outcome::RejectedAll(summary)
                    } else {
                        let named = named
                            .into_iter()
                            .map(|i| (i, format!("refused by `{name}`: {}", reasons.get(i))))
                            .collect();
                        Outcome::Rejected(named, summary)
                    };
                }
                _ => {
                    let reason = format!("{} error: {}", e.kind, one_line(&e.message));
                    self.inst.disable(&reason);
                    return Outcome::Failed(self.disabled_message());
                }
            }
        }
    }

    /// Splits the outcome of one call over several jobs back into each job's outcome.
    fn report_merged(&self, jobs: &[Job], outcome: Outcome) {
        let (bad, summary) = match outcome {
            Outcome::Rejected(bad, summary) => (bad, summary),
            other => {
                for job in jobs {
                    self.report(job, other.clone());
                }
                return;
            }
        };
        // The indices are ascending: each job takes the next run of them.
        let mut bad = bad.into_iter().peekable();
        let mut start = 0u32;
        for job in jobs {
            let len = job.records().len() as u32;
            let mut mine = Vec::new();
            while let Some((i, reason)) = bad.next_if(|(i, _)| *i < start + len) {
                mine.push((i - start, reason));
            }
            let own = if mine.is_empty() {
                Outcome::Accepted
            } else {
                Outcome::Rejected(mine, summary.clone())
            };
            self.report(job, own);
            start += len;
        }
    }

    /// Accounts for a job's outcome; indices in `Rejected` are into the job's records.
    fn report(&self, job: &Job, outcome: Outcome) {
        let stats = &self.inst.stats;
        let required = self.inst.spec.delivery == Delivery::Required;
        let n = job.records().len() as u64;
        match outcome {
            Outcome::Accepted => {
                stats.batches_ok.fetch_add(1, Ordering::Relaxed);
                stats.records_ok.fetch_add(n, Ordering::Relaxed);
                if required {
                    self.tracker
                        .settle(job.batch.id, self.inst.index, Vec::new());
                }
            }
            Outcome::Rejected(bad, summary) => {
                let bad = bad
                    .into_iter()
                    .map(|(i, reason)| (job.origin(i), reason))
                    .collect();
                self.report_refused(job, bad, &summary);
            }
            Outcome::RejectedAll(reason) => {
                let bad = (0..n as u32)
                    .map(|i| (job.origin(i), reason.clone()))
                    .collect();
                self.report_refused(job, bad, &reason);
            }
            Outcome::Failed(reason) => {
                stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                if required {
                    self.tracker.instance_disabled(self.inst.index, &reason);
                }
            }
            Outcome::Abandoned => {
                if required {
                    self.tracker.abandon(job.batch.id);
                }
            }
        }
    }

    /// Counts and settles the records of `job` the instance refused (`bad`: indices in the
    /// dispatched batch, each with its reason; `summary`: the refusal's summary, for the log).
    fn report_refused(&self, job: &Job, bad: Vec<(u32, String)>, summary: &str) {
        let stats = &self.inst.stats;
        let n = job.records().len() as u64;
        stats.batches_failed.fetch_add(1, Ordering::Relaxed);
        stats
            .records_rejected
            .fetch_add(bad.len() as u64, Ordering::Relaxed);
        stats
            .records_ok
            .fetch_add(n.saturating_sub(bad.len() as u64), Ordering::Relaxed);
        tracing::warn!(plugin = %self.inst.spec.name, records = bad.len(), reason = %summary, "Records refused.");
        for (index, reason) in &bad {
            tracing::trace!(plugin = %self.inst.spec.name, index, reason = %reason, "Record refused.");
        }
        if self.inst.spec.delivery == Delivery::Required {
            self.tracker.settle(job.batch.id, self.inst.index, bad);
        }
    }
}

/// Exponential backoff with jitter: about 100 ms, 200 ms, 400 ms ... up to about `max` (each
/// wait is spread over 7/8 to 9/8 of its step), never less than the plugin's `retry_after`.
pub fn backoff(attempt: u32, max: Duration, retry_after: Option<Duration>) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let step = Duration::from_millis(100)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max);
    let spread = step.as_millis() as u64 / 4 + 1;
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let wait = step - step / 8 + Duration::from_millis(random % spread);
    wait.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_respects_bounds() {
        let max = Duration::from_secs(5);
        for _ in 0..50 {
            let first = backoff(1, max, None);
            assert!(
                first >= Duration::from_millis(87) && first <= Duration::from_millis(113),
                "{first:?}"
            );
            let tenth = backoff(10, max, None);
            assert!(
                tenth >= max - max / 8 && tenth <= max + max / 8,
                "{tenth:?}"
            );
        }
        assert_eq!(
            backoff(1, max, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
