//! In-process testing for connector authors (feature `testing`).
//!
//! [`Harness`] builds an instance through the same root module the `.so` exports (no dynamic
//! loading), with a host that records the plugin's log lines and answers `request` calls from a
//! closure. [`conformance`] runs the checks every connector must pass. With the feature
//! `testing-postgres`, the `postgres` module gives each test a PostgreSQL database of its own.

#[cfg(feature = "testing-postgres")]
pub mod postgres;

use std::sync::{Arc, Mutex, PoisonError};

use abi_stable::sabi_trait::TD_CanDowncast;
use abi_stable::std_types::{RArc, RResult, RSlice, RStr, RString};

use crate::abi::{
    HostBox, HostObj, HostObj_TO, Level, PluginBox, PluginError, PluginModuleRef, Record,
    RecordFlags,
};
use crate::export::root_module;
use crate::plugin::{PURPOSE_METHOD, Plugin, Purpose};

/// One log line a plugin forwarded to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The `tracing` target (module path) it came from.
    pub target: String,
    /// The message and its fields.
    pub message: String,
}

type RequestHandler = dyn Fn(&str, &str, &str) -> Result<String, PluginError> + Send + Sync;

/// The host side of the harness.
#[derive(Clone)]
struct TestHost {
    logs: Arc<Mutex<Vec<LogLine>>>,
    requests: Arc<RequestHandler>,
    purpose: Option<Purpose>,
}

impl HostObj for TestHost {
    fn max_log_level(&self) -> Level {
        Level::TRACE
    }

    fn log(&self, level: Level, target: RStr<'_>, message: RStr<'_>) {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LogLine {
                level,
                target: target.to_string(),
                message: message.to_string(),
            });
    }

    fn request(
        &self,
        instance: RStr<'_>,
        method: RStr<'_>,
        body: RStr<'_>,
    ) -> RResult<RString, PluginError> {
        if let Some(purpose) = self.purpose
            && instance.is_empty()
            && method.as_str() == PURPOSE_METHOD
        {
            return RResult::ROk(RString::from(purpose.name()));
        }
        (self.requests)(instance.as_str(), method.as_str(), body.as_str())
            .map(RString::from)
            .into()
    }
}

/// Converts a TOML table (as written under `[plugins.<name>.config]`) into the JSON text the host
/// passes to a plugin.
pub fn config_json_from_toml(config_toml: &str) -> Result<String, String> {
    let value: toml::Table =
        toml::from_str(config_toml).map_err(|e| format!("not valid TOML: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("cannot convert to JSON: {e}"))
}

/// A plugin instance built in-process through the exported root module.
pub struct Harness {
    instance: PluginBox,
    module: PluginModuleRef,
    logs: Arc<Mutex<Vec<LogLine>>>,
}

/// Builds a [`Harness`].
pub struct HarnessBuilder {
    instance_id: String,
    requests: Arc<RequestHandler>,
    purpose: Option<Purpose>,
}

impl HarnessBuilder {
    /// Names the instance (default `test`).
    pub fn instance_id(mut self, id: &str) -> Self {
        self.instance_id = id.to_owned();
        self
    }

    /// Builds the instance for `purpose`, as the host says it (default: the host does not say,
    /// as one that predates purposes, and the instance is built for [`Purpose::Run`]).
    pub fn purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = Some(purpose);
        self
    }

    /// Answers the plugin's `host.request(instance, method, body)` calls.
    pub fn on_request(
        mut self,
        handler: impl Fn(&str, &str, &str) -> Result<String, PluginError> + Send + Sync + 'static,
    ) -> Self {
        self.requests = Arc::new(handler);
        self
    }

    /// Builds the instance of `P` from a TOML config table.
    pub fn start<P: Plugin>(self, config_toml: &str) -> Result<Harness, PluginError> {
        let json = config_json_from_toml(config_toml).map_err(PluginError::config)?;
        self.start_json::<P>(&json)
    }

    /// Builds the instance of `P` from the config as JSON text.
    pub fn start_json<P: Plugin>(self, config_json: &str) -> Result<Harness, PluginError> {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let host = TestHost {
            logs: logs.clone(),
            requests: self.requests,
            purpose: self.purpose,
        };
        let host: HostBox = HostObj_TO::from_ptr(RArc::new(host), TD_CanDowncast);
        let module = root_module::<P>();
        let instance = (module.new())(
            RStr::from(self.instance_id.as_str()),
            RStr::from(config_json),
            host,
        )
        .into_result()?;
        Ok(Harness {
            instance,
            module,
            logs,
        })
    }
}

impl Harness {
    /// A builder with instance id `test` and a host that answers every request with an error.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            instance_id: "test".to_owned(),
            requests: Arc::new(|instance, method, _| {
                Err(PluginError::permanent(format!(
                    "the test host has no instance `{instance}` to ask for `{method}`"
                )))
            }),
            purpose: None,
        }
    }

    /// Builds an instance of `P` from a TOML config table with the default builder.
    pub fn start<P: Plugin>(config_toml: &str) -> Result<Harness, PluginError> {
        Harness::builder().start::<P>(config_toml)
    }

    /// Calls `handle_batch` through the ABI.
    pub fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        self.instance
            .handle_batch(RSlice::from_slice(batch))
            .into_result()
    }

    /// Calls `handle_batch_flagged` through the ABI, as the host does.
    #[cfg(not(feature = "__abi_1_0"))]
    pub fn handle_batch_flagged(
        &self,
        batch: &[Record],
        flags: &[RecordFlags],
    ) -> Result<(), PluginError> {
        match self.module.handle_batch_flagged() {
            Some(call) => call(
                &self.instance,
                RSlice::from_slice(batch),
                RSlice::from_slice(flags),
            )
            .into_result(),
            None => self.handle_batch(batch),
        }
    }

    /// Calls `healthcheck` through the ABI.
    pub fn healthcheck(&self) -> Result<(), PluginError> {
        self.instance.healthcheck().into_result()
    }

    /// Calls `request` through the ABI.
    pub fn request(&self, method: &str, body: &str) -> Result<String, PluginError> {
        self.instance
            .request(RStr::from(method), RStr::from(body))
            .into_result()
            .map(String::from)
    }

    /// Calls `shutdown` through the ABI.
    pub fn shutdown(&self) -> Result<(), PluginError> {
        self.instance.shutdown().into_result()
    }

    /// The log lines the plugin forwarded so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `n` varied records for tests: levels cycle, projects `p0..p2`, modules `m0..m4`.
pub fn sample_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                format!("rec-{i}"),
                1_700_000_000_000_000_000 + i as i64 * 1_000_000,
                Level::ALL[i % Level::ALL.len()],
                format!("p{}", i % 3),
                format!("m{}", i % 5),
                format!("message number {i}"),
            )
            .with_attributes(format!(r#"{{"seq":{i},"user":"u{}"}}"#, i % 7))
        })
        .collect()
}

/// Checks that `P`'s example config is valid TOML and parses into its config type.
pub fn check_example_config<P: Plugin>() -> Result<(), String> {
    let json = config_json_from_toml(P::EXAMPLE_CONFIG)
        .map_err(|e| format!("{}: example config: {e}", P::TYPE_NAME))?;
    crate::plugin::parse_config::<P::Config>(&json)
        .map(|_| ())
        .map_err(|e| format!("{}: example config does not parse: {e}", P::TYPE_NAME))
}

/// The checks every connector passes, given a config under which an instance can start here.
///
/// - the example config parses;
/// - an unknown key in the config is refused with a message naming it;
/// - an instance starts, accepts an empty batch, passes its health check and shuts down.
pub fn conformance<P: Plugin>(instance_config_toml: &str) -> Result<(), String> {
    check_example_config::<P>()?;

    let mut table: toml::Table = toml::from_str(P::EXAMPLE_CONFIG)
        .map_err(|e| format!("{}: example config: {e}", P::TYPE_NAME))?;
    let bogus = "definitely_not_an_option";
    table.insert(bogus.to_owned(), toml::Value::Boolean(true));
    let json = serde_json::to_string(&table).map_err(|e| e.to_string())?;
    match Harness::builder().start_json::<P>(&json) {
        Ok(h) => {
            let _ = h.shutdown();
            return Err(format!(
                "{}: an unknown config key was accepted; add #[serde(deny_unknown_fields)]",
                P::TYPE_NAME
            ));
        }
        Err(e) if !e.message.contains(bogus) => {
            return Err(format!(
                "{}: the error for an unknown key does not name it: {e}",
                P::TYPE_NAME
            ));
        }
        Err(_) => {}
    }

    let h = Harness::start::<P>(instance_config_toml)
        .map_err(|e| format!("{}: cannot start: {e}", P::TYPE_NAME))?;
    h.handle_batch(&[])
        .map_err(|e| format!("{}: empty batch refused: {e}", P::TYPE_NAME))?;
    h.healthcheck()
        .map_err(|e| format!("{}: health check failed: {e}", P::TYPE_NAME))?;
    h.shutdown()
        .map_err(|e| format!("{}: shutdown failed: {e}", P::TYPE_NAME))?;
    Ok(())
}

/// Builds connector crates of the running test's workspace with the same cargo, profile and
/// target directory as the test binary, so an integration test can load the real `.so` through
/// the host's loader. Returns the directory holding the libraries (`liblogrelay_<name>.so`).
///
/// Each package is built at most once per test process; a failed build panics with the package
/// names (tests only).
pub fn build_libraries(packages: &[&str]) -> std::path::PathBuf {
    use std::collections::HashSet;
    use std::sync::OnceLock;

    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    #[allow(clippy::expect_used)]
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let built = BUILT.get_or_init(|| Mutex::new(HashSet::new()));
    let mut built = built.lock().unwrap_or_else(PoisonError::into_inner);
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !built.contains(*p))
        .collect();
    if missing.is_empty() {
        return profile_dir;
    }
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.arg("build");
    for p in &missing {
        cmd.args(["-p", p]);
    }
    if let Some(target) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    assert!(ok, "cargo build of {missing:?} for the test failed");
    built.extend(missing.iter().map(|p| (*p).to_owned()));
    profile_dir
}
