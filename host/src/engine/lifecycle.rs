//! The engine's lifecycle: building instances (every error reported at once), starting their
//! workers, reloading plugins.toml, `check`, the watchdog and health loop, and shutdown.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use logrelay_plugin_api::Purpose;
use logrelay_plugin_api::abi::{HandleBatchFlagged, PluginBox};
use tokio::sync::mpsc;

use super::Engine;
use super::batch::Completed;
use super::instance::Instance;
use super::stats::InstanceStats;
use super::tracker::{Tracker, TrackerState};
use super::worker::Worker;
use crate::config::{InstanceSpec, PluginsConfig, Settings};
use crate::host_api::{Registry, host_for};
use crate::loader::{Loader, ManifestInfo};

/// Everything that failed to start, reported at once.
#[derive(Debug, thiserror::Error)]
#[error("{} instance(s) failed to start:\n  {}", .0.len(), .0.join("\n  "))]
pub struct StartupErrors(pub Vec<String>);

/// Interruptible sleeps for retrying workers, and the flag that tells them to give up.
#[derive(Default)]
pub(super) struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub(super) fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// Sleeps up to `d`; returns true when stopped meanwhile.
    pub(super) fn sleep(&self, d: Duration) -> bool {
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
    /// What the instances are built for: `Run`, or `OneShot` for `replay`.
    pub purpose: Purpose,
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
            purpose: Purpose::Run,
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
            purpose: Purpose::Run,
        }
    }
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
        let registry = Arc::new(Registry::new(options.purpose));
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
            batch_ids: Arc::new(AtomicU64::new(1)),
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

    /// Validates every enabled instance, then shuts them down: `logrelay check`.
    pub fn check(
        config: &PluginsConfig,
        online: bool,
    ) -> Result<Vec<(InstanceSpec, ManifestInfo)>, StartupErrors> {
        // Offline, each connector validates its config without side effects (`Plugin::check`);
        // online, every instance is built and health-checked as for a run.
        let purpose = if online { Purpose::Run } else { Purpose::Check };
        let registry = Arc::new(Registry::new(purpose));
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

    /// Stops retrying: instances failing transiently give their batches up (left unacknowledged,
    /// so RabbitMQ redelivers them) and dispatch no longer waits for them. Healthy instances
    /// finish what they were given. Call it when shutdown begins.
    pub fn stop_retrying(&self) {
        self.stop.set();
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
    let registry = Arc::new(Registry::new(Purpose::OneShot));
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
