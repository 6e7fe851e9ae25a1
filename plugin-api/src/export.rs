//! The glue [`export_plugin!`](crate::export_plugin) generates around a [`Plugin`]: the root
//! module, a runtime owned by each instance, panic containment and log forwarding.
//!
//! The in-process test harness builds instances through exactly this code, so what is tested
//! in-process is what runs behind the `.so`.

use std::any::Any;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_CanDowncast;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

#[cfg(not(feature = "__abi_1_0"))]
use crate::abi::RecordFlags;
use crate::abi::{
    HostBox, Level, Manifest, PluginBox, PluginError, PluginModule, PluginModuleRef, PluginObj,
    PluginObj_TO, Record,
};
use crate::plugin::{Context, Host, PURPOSE_METHOD, Plugin, Purpose, parse_config};

/// The name of the static that holds an abi_stable library header; the export macro gives its
/// static this exact symbol name (checked against abi_stable's own constant in a test).
#[doc(hidden)]
pub const ROOT_MODULE_LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// [`PluginModule::handle_batch_flagged`] for `P`: the flags reach `P::handle_batch_flagged`
/// when `instance` is one of this library's `P` instances and they match the batch one for one;
/// otherwise the batch goes to `handle_batch` without them.
#[cfg(not(feature = "__abi_1_0"))]
extern "C" fn handle_batch_flagged<P: Plugin>(
    instance: &PluginBox,
    batch: RSlice<'_, Record>,
    flags: RSlice<'_, RecordFlags>,
) -> RResult<(), PluginError> {
    match instance.obj.downcast_as::<Instance<P>>() {
        Ok(own) => own.handle_batch_flagged(batch, flags),
        Err(_) => instance.handle_batch(batch),
    }
}

/// Builds the root module for `P`. The export macro calls this; so does the test harness.
pub fn root_module<P: Plugin>() -> PluginModuleRef {
    PluginModule {
        manifest: manifest::<P>,
        example_config: example_config::<P>,
        new: new_instance::<P>,
        #[cfg(not(feature = "__abi_1_0"))]
        handle_batch_flagged: handle_batch_flagged::<P>,
    }
    .leak_into_prefix()
}

/// The manifest of `P`.
pub fn manifest_of<P: Plugin>() -> Manifest {
    Manifest {
        type_name: RString::from(P::TYPE_NAME),
        version: RString::from(P::VERSION),
        description: RString::from(P::DESCRIPTION),
        capabilities: P::CAPABILITIES.iter().map(|c| RString::from(*c)).collect(),
    }
}

extern "C" fn manifest<P: Plugin>() -> Manifest {
    contain(|| manifest_of::<P>()).unwrap_or_else(|_| Manifest {
        type_name: RString::from(P::TYPE_NAME),
        version: RString::from("unknown"),
        description: RString::new(),
        capabilities: RVec::new(),
    })
}

extern "C" fn example_config<P: Plugin>() -> RString {
    RString::from(P::EXAMPLE_CONFIG)
}

extern "C" fn new_instance<P: Plugin>(
    instance_id: RStr<'_>,
    config_json: RStr<'_>,
    host: HostBox,
) -> RResult<PluginBox, PluginError> {
    let instance_id = instance_id.as_str().to_owned();
    let config_json = config_json.as_str().to_owned();
    match contain(move || Instance::<P>::build(instance_id, &config_json, host)) {
        // Downcastable, so that `handle_batch_flagged` can find the instance behind the box.
        Ok(Ok(instance)) => RResult::ROk(PluginObj_TO::from_value(instance, TD_CanDowncast)),
        Ok(Err(e)) => RResult::RErr(e),
        Err(panic) => RResult::RErr(PluginError::fatal(format!(
            "the plugin panicked while starting: {panic}"
        ))),
    }
}

/// Runs `f`, turning a panic into its message so it never unwinds into an `extern "C"` frame.
fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(&*payload))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

struct Core<P> {
    plugin: P,
    runtime: tokio::runtime::Runtime,
}

/// One live instance: the plugin, its runtime, its log dispatcher.
struct Instance<P: Plugin> {
    core: Option<Core<P>>,
    dispatch: tracing::Dispatch,
    /// Set after a panic: the plugin's state may be broken, so every later call fails.
    poisoned: AtomicBool,
    id: Arc<str>,
    /// Built for `logrelay check` by [`Plugin::check`] alone: nothing runs; the health check and
    /// shutdown succeed, anything else is refused.
    checked_only: bool,
}

impl<P: Plugin> Instance<P> {
    fn build(id: String, config_json: &str, host: HostBox) -> Result<Self, PluginError> {
        let id: Arc<str> = Arc::from(id);
        let dispatch = forwarding_dispatch(&host);
        let config: P::Config = parse_config(config_json)?;
        let purpose = host
            .request(RStr::from(""), RStr::from(PURPOSE_METHOD), RStr::from(""))
            .into_result()
            .map_or(Purpose::Run, |name| Purpose::from_name(name.as_str()));
        let config = if purpose == Purpose::Check {
            let checked = tracing::dispatcher::with_default(&dispatch, || P::check(config));
            match checked {
                Some(Ok(())) => {
                    return Ok(Instance {
                        core: None,
                        dispatch,
                        poisoned: AtomicBool::new(false),
                        id,
                        checked_only: true,
                    });
                }
                Some(Err(e)) => return Err(e),
                // No check of its own: built as for a run (the config was consumed).
                None => parse_config(config_json)?,
            }
        } else {
            config
        };
        let thread_dispatch = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(P::WORKER_THREADS.max(1))
            .thread_name(format!("{}-{id}", P::TYPE_NAME))
            .enable_all()
            .on_thread_start(move || install_thread_dispatch(&thread_dispatch))
            .on_thread_stop(|| THREAD_DISPATCH.with(|g| drop(g.borrow_mut().take())))
            .build()
            .map_err(|e| PluginError::fatal(format!("cannot start the plugin's runtime: {e}")))?;
        let ctx = Context {
            instance_id: id.clone(),
            host: Host { inner: host },
            purpose,
        };
        let plugin = tracing::dispatcher::with_default(&dispatch, || {
            block_on(&runtime, P::new(config, ctx))
        })?;
        Ok(Instance {
            core: Some(Core { plugin, runtime }),
            dispatch,
            poisoned: AtomicBool::new(false),
            id,
            checked_only: false,
        })
    }

    /// The live core, unless the instance is poisoned by an earlier panic.
    fn core(&self) -> Result<&Core<P>, PluginError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(PluginError::fatal(format!(
                "instance `{}` is disabled after an earlier panic",
                self.id
            )));
        }
        if self.checked_only {
            return Err(PluginError::fatal(format!(
                "instance `{}` was built by `logrelay check` and does not run",
                self.id
            )));
        }
        self.core
            .as_ref()
            .ok_or_else(|| PluginError::fatal("instance is already torn down"))
    }

    /// Runs one plugin future to completion on the instance's runtime, containing panics.
    fn run<T: Send>(
        &self,
        what: &str,
        core: &Core<P>,
        fut: impl Future<Output = Result<T, PluginError>> + Send,
    ) -> RResult<T, PluginError> {
        let outcome = contain(|| {
            tracing::dispatcher::with_default(&self.dispatch, || block_on(&core.runtime, fut))
        });
        match outcome {
            Ok(result) => result.into(),
            Err(panic) => {
                self.poisoned.store(true, Ordering::Release);
                RResult::RErr(PluginError::fatal(format!(
                    "the plugin panicked in {what}: {panic}"
                )))
            }
        }
    }
}

/// Drives `fut` on `runtime`. When the calling thread is already inside a runtime of this same
/// copy of tokio (an instance calling itself, or in-process tests), the future runs on a scoped
/// thread instead, since tokio refuses to nest `block_on`.
fn block_on<F: Future + Send>(runtime: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            match s.spawn(|| runtime.block_on(fut)).join() {
                Ok(out) => out,
                // Re-raise on this thread so the caller's containment reports it.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    } else {
        runtime.block_on(fut)
    }
}

impl<P: Plugin> PluginObj for Instance<P> {
    fn handle_batch(&self, batch: RSlice<'_, Record>) -> RResult<(), PluginError> {
        match self.core() {
            Ok(core) => self.run(
                "handle_batch",
                core,
                core.plugin.handle_batch(batch.as_slice()),
            ),
            Err(e) => RResult::RErr(e),
        }
    }

    fn healthcheck(&self) -> RResult<(), PluginError> {
        if self.checked_only {
            return RResult::ROk(());
        }
        match self.core() {
            Ok(core) => self.run("healthcheck", core, core.plugin.healthcheck()),
            Err(e) => RResult::RErr(e),
        }
    }

    fn request(&self, method: RStr<'_>, body: RStr<'_>) -> RResult<RString, PluginError> {
        let core = match self.core() {
            Ok(core) => core,
            Err(e) => return RResult::RErr(e),
        };
        let fut = core.plugin.request(method.as_str(), body.as_str());
        self.run("request", core, fut).map(RString::from)
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        if self.checked_only {
            return RResult::ROk(());
        }
        match self.core() {
            Ok(core) => self.run("shutdown", core, core.plugin.shutdown()),
            Err(e) => RResult::RErr(e),
        }
    }
}

#[cfg(not(feature = "__abi_1_0"))]
impl<P: Plugin> Instance<P> {
    /// `handle_batch` with flags, for [`handle_batch_flagged`].
    fn handle_batch_flagged(
        &self,
        batch: RSlice<'_, Record>,
        flags: RSlice<'_, RecordFlags>,
    ) -> RResult<(), PluginError> {
        match self.core() {
            // Flags that do not match the batch one for one say nothing.
            Ok(core) if flags.len() == batch.len() => self.run(
                "handle_batch",
                core,
                core.plugin
                    .handle_batch_flagged(batch.as_slice(), flags.as_slice()),
            ),
            Ok(core) => self.run(
                "handle_batch",
                core,
                core.plugin.handle_batch(batch.as_slice()),
            ),
            Err(e) => RResult::RErr(e),
        }
    }
}

impl<P: Plugin> Drop for Instance<P> {
    fn drop(&mut self) {
        if let Some(Core { plugin, runtime }) = self.core.take() {
            // Drop the plugin inside its runtime (pools and timers expect one), then let the
            // runtime go without waiting on tasks that may never finish.
            let _ = contain(|| {
                let _guard = runtime.enter();
                drop(plugin);
            });
            runtime.shutdown_background();
        }
    }
}

thread_local! {
    static THREAD_DISPATCH: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::RefCell::new(None) };
}

fn install_thread_dispatch(dispatch: &tracing::Dispatch) {
    let guard = tracing::dispatcher::set_default(dispatch);
    THREAD_DISPATCH.with(|g| *g.borrow_mut() = Some(guard));
}

/// A subscriber, in this library's copy of `tracing`, that hands every event to the host.
fn forwarding_dispatch(host: &HostBox) -> tracing::Dispatch {
    let max = match host.max_log_level() {
        Level::TRACE => LevelFilter::TRACE,
        Level::DEBUG => LevelFilter::DEBUG,
        Level::INFO => LevelFilter::INFO,
        Level::WARNING => LevelFilter::WARN,
        _ => LevelFilter::ERROR,
    };
    let layer = Forward { host: host.clone() }.with_filter(max);
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

struct Forward {
    host: HostBox,
}

impl<S: tracing::Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::TRACE => Level::TRACE,
            tracing::Level::DEBUG => Level::DEBUG,
            tracing::Level::INFO => Level::INFO,
            tracing::Level::WARN => Level::WARNING,
            tracing::Level::ERROR => Level::ERROR,
        };
        let mut text = LineBuilder::default();
        event.record(&mut text);
        self.host.log(
            level,
            RStr::from(meta.target()),
            RStr::from(text.finish().as_str()),
        );
    }
}

/// Renders an event as `message key=value key=value`.
#[derive(Default)]
struct LineBuilder {
    message: String,
    fields: String,
}

impl LineBuilder {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(self.fields.trim_start());
        }
        self.message
    }
}

impl Visit for LineBuilder {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// Exports a [`Plugin`] as a logrelay plugin library (call once, at the crate root of a
/// `cdylib` crate).
///
/// ```text
/// logrelay_plugin_api::export_plugin!(MyConnector);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __LOGRELAY_LIB_HEADER: $crate::__private::LibHeader = {
            extern "C" fn __logrelay_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::call_root_module_loader($crate::export::root_module::<$plugin>)
            }
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::abi::PluginModuleRef>(
                    __logrelay_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_matches_abi_stable() {
        assert_eq!(
            super::ROOT_MODULE_LOADER_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
