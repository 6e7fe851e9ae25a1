//! What the host offers every instance: log forwarding, requests to other instances and the
//! connector metrics it reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RStr, RString};
use logrelay_plugin_api::abi::{HostBox, HostObj, HostObj_TO, PluginBox};
use logrelay_plugin_api::{
    Level, METRICS_METHOD, MetricKind, MetricOp, MetricUpdate, PURPOSE_METHOD, PluginError, Purpose,
};

/// The live instances by name, for `request` between instances, and why they are built.
#[derive(Default)]
pub struct Registry {
    instances: RwLock<HashMap<String, Arc<PluginBox>>>,
    purpose: Purpose,
    metrics: Mutex<BTreeMap<String, MetricFamily>>,
}

/// One connector metric, by instance: what `/metrics` shows as `logrelay_plugin_<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// Counter or gauge, as first reported.
    pub kind: MetricKind,
    /// The `# HELP` text of the last update, on one line.
    pub help: String,
    /// The value of each instance that reported it.
    pub values: BTreeMap<String, f64>,
}

/// At most this many distinct metric names over every instance; more are refused.
const MAX_METRIC_FAMILIES: usize = 1000;

impl Registry {
    /// An empty registry whose instances are built for `purpose` (they ask, see
    /// [`PURPOSE_METHOD`]).
    pub fn new(purpose: Purpose) -> Registry {
        Registry {
            instances: RwLock::default(),
            purpose,
            metrics: Mutex::default(),
        }
    }

    /// Applies a metric update from `instance` (a [`METRICS_METHOD`] request).
    pub fn record_metric(&self, instance: &str, body: &str) -> Result<(), PluginError> {
        let update: MetricUpdate = serde_json::from_str(body)
            .map_err(|e| PluginError::permanent(format!("bad metric update: {e}")))?;
        update.validate().map_err(PluginError::permanent)?;
        let mut metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        if !metrics.contains_key(&update.name) && metrics.len() >= MAX_METRIC_FAMILIES {
            return Err(PluginError::permanent(format!(
                "metric `{}` refused: the host keeps at most {MAX_METRIC_FAMILIES} connector metrics",
                update.name
            )));
        }
        let family = metrics
            .entry(update.name.clone())
            .or_insert_with(|| MetricFamily {
                kind: update.kind,
                help: String::new(),
                values: BTreeMap::new(),
            });
        if family.kind != update.kind {
            return Err(PluginError::permanent(format!(
                "metric `{}` is a {:?}, not a {:?}",
                update.name, family.kind, update.kind
            )));
        }
        family.help = update.help.replace(['\\', '\n', '\r'], " ");
        let value = family.values.entry(instance.to_owned()).or_insert(0.0);
        match update.op {
            MetricOp::Add => *value += update.value,
            MetricOp::Set => *value = update.value,
        }
        Ok(())
    }

    /// Every connector metric, by name.
    pub fn metrics(&self) -> BTreeMap<String, MetricFamily> {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds (or replaces) an instance.
    pub fn insert(&self, name: &str, instance: Arc<PluginBox>) {
        self.instances
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), instance);
    }

    /// Removes an instance, and its metrics.
    pub fn remove(&self, name: &str) {
        self.instances
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        let mut metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        for family in metrics.values_mut() {
            family.values.remove(name);
        }
        metrics.retain(|_, f| !f.values.is_empty());
    }

    /// Looks an instance up.
    pub fn get(&self, name: &str) -> Option<Arc<PluginBox>> {
        self.instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Calls `request` on the named instance.
    pub fn request(&self, instance: &str, method: &str, body: &str) -> Result<String, PluginError> {
        if instance.is_empty() && method == PURPOSE_METHOD {
            return Ok(self.purpose.name().to_owned());
        }
        let target = self.get(instance).ok_or_else(|| {
            PluginError::permanent(format!(
                "no running instance named `{instance}`; check [plugins.{instance}] in plugins.toml"
            ))
        })?;
        target
            .request(RStr::from(method), RStr::from(body))
            .into_result()
            .map(RString::into_string)
    }
}

/// The host handle of one instance.
#[derive(Clone)]
struct InstanceHost {
    instance: Arc<str>,
    registry: Arc<Registry>,
    max_level: Level,
}

/// The most verbose level the host's log filter lets through.
pub fn current_max_level() -> Level {
    match tracing::level_filters::LevelFilter::current() {
        f if f >= tracing::level_filters::LevelFilter::TRACE => Level::TRACE,
        f if f >= tracing::level_filters::LevelFilter::DEBUG => Level::DEBUG,
        f if f >= tracing::level_filters::LevelFilter::INFO => Level::INFO,
        f if f >= tracing::level_filters::LevelFilter::WARN => Level::WARNING,
        _ => Level::ERROR,
    }
}

/// Builds the host handle given to the instance `instance`.
pub fn host_for(instance: &str, registry: Arc<Registry>) -> HostBox {
    let host = InstanceHost {
        instance: Arc::from(instance),
        registry,
        max_level: current_max_level(),
    };
    HostObj_TO::from_ptr(RArc::new(host), TD_Opaque)
}

impl HostObj for InstanceHost {
    fn max_log_level(&self) -> Level {
        self.max_level
    }

    fn log(&self, level: Level, target: RStr<'_>, message: RStr<'_>) {
        let (plugin, target, message) = (&*self.instance, target.as_str(), message.as_str());
        match level {
            Level::TRACE => {
                tracing::trace!(target: "logrelay::plugin", plugin, target, "{message}")
            }
            Level::DEBUG => {
                tracing::debug!(target: "logrelay::plugin", plugin, target, "{message}")
            }
            Level::INFO => tracing::info!(target: "logrelay::plugin", plugin, target, "{message}"),
            Level::WARNING => {
                tracing::warn!(target: "logrelay::plugin", plugin, target, "{message}")
            }
            _ => tracing::error!(target: "logrelay::plugin", plugin, target, "{message}"),
        }
    }

    fn request(
        &self,
        instance: RStr<'_>,
        method: RStr<'_>,
        body: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        if instance.is_empty() && method.as_str() == METRICS_METHOD {
            return self
                .registry
                .record_metric(&self.instance, body.as_str())
                .map(|()| RString::new())
                .into();
        }
        self.registry
            .request(instance.as_str(), method.as_str(), body.as_str())
            .map(RString::from)
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, kind: &str, op: &str, value: f64) -> String {
        format!(
            r#"{{"name":"{name}","help":"h\nmore","kind":"{kind}","op":"{op}","value":{value}}}"#
        )
    }

    #[test]
    fn metrics_add_and_set_per_instance_keep_their_kind_and_go_with_the_instance() {
        let r = Registry::new(Purpose::Run);
        let add = update("sent_total", "counter", "add", 2.0);
        r.record_metric("a", &add).expect("add");
        r.record_metric("a", &add).expect("add");
        r.record_metric("b", &update("sent_total", "counter", "set", 7.0))
            .expect("set");
        let m = r.metrics();
        assert_eq!(m["sent_total"].values["a"], 4.0);
        assert_eq!(m["sent_total"].values["b"], 7.0);
        assert_eq!(m["sent_total"].help, "h more");
        let err = r
            .record_metric("a", &update("sent_total", "gauge", "set", 1.0))
            .expect_err("kind kept");
        assert!(err.message.contains("is a Counter"), "{err}");
        assert!(
            r.record_metric("a", &update("Bad-Name", "gauge", "set", 1.0))
                .is_err()
        );
        assert!(r.record_metric("a", "not json").is_err());
        r.remove("a");
        assert!(!r.metrics()["sent_total"].values.contains_key("a"));
        r.remove("b");
        assert!(r.metrics().is_empty());
    }
}
