//! The stable ABI: every type that crosses the boundary between the host and a plugin library.
//!
//! Only the types in this module cross the boundary. They are `#[repr(C)]` (or `#[repr(transparent)]`)
//! and derive [`StableAbi`], so abi_stable checks at load time that a plugin was built against a
//! compatible layout, and refuses it with an error otherwise.
//!
//! The policy (see `docs/ABI_POLICY.md`): within the 1.x major version the root module only gains
//! fields at its end (each earlier layout kept in a module of its own, such as [`v1_0`], for the
//! host's loader), the plugin and host traits never change, and the record envelope never
//! changes: new data travels inside [`Record::attributes`].

// The derives and `#[sabi_trait]` generate unsafe code and undocumented helper items.
#![allow(unsafe_code, missing_docs, non_local_definitions)]

use std::fmt;
use std::time::Duration;

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};

/// Severity of a record: a `u8` with named constants, not a Rust enum, so that a value a future
/// version adds cannot be undefined behaviour in an older plugin.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(pub u8);

impl Level {
    /// Finest-grained diagnostics.
    pub const TRACE: Level = Level(0);
    /// Diagnostics for developers.
    pub const DEBUG: Level = Level(1);
    /// Normal operation.
    pub const INFO: Level = Level(2);
    /// Something unexpected that the program survived.
    pub const WARNING: Level = Level(3);
    /// An operation failed.
    pub const ERROR: Level = Level(4);
    /// The program or a part of it cannot go on.
    pub const CRITICAL: Level = Level(5);

    /// Every level, lowest first.
    pub const ALL: [Level; 6] = [
        Level::TRACE,
        Level::DEBUG,
        Level::INFO,
        Level::WARNING,
        Level::ERROR,
        Level::CRITICAL,
    ];

    /// The canonical lowercase name (`"warning"`), or `"unknown"` for a value no version defines.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "trace",
            1 => "debug",
            2 => "info",
            3 => "warning",
            4 => "error",
            5 => "critical",
            _ => "unknown",
        }
    }

    /// The canonical uppercase name (`"WARNING"`).
    pub const fn upper_name(self) -> &'static str {
        match self.0 {
            0 => "TRACE",
            1 => "DEBUG",
            2 => "INFO",
            3 => "WARNING",
            4 => "ERROR",
            5 => "CRITICAL",
            _ => "UNKNOWN",
        }
    }

    /// Parses a level name in any case, with the usual aliases (`warn`, `err`, `fatal`, `crit`...).
    pub fn from_name(name: &str) -> Option<Level> {
        let mut buf = [0u8; 16];
        let bytes = name.trim().as_bytes();
        if bytes.len() > buf.len() {
            return None;
        }
        for (dst, src) in buf.iter_mut().zip(bytes) {
            *dst = src.to_ascii_lowercase();
        }
        Some(match &buf[..bytes.len()] {
            b"trace" | b"trc" | b"verbose" | b"finest" => Level::TRACE,
            b"debug" | b"dbg" | b"fine" => Level::DEBUG,
            b"info" | b"inf" | b"information" | b"informational" | b"notice" => Level::INFO,
            b"warning" | b"warn" | b"wrn" => Level::WARNING,
            b"error" | b"err" | b"eror" => Level::ERROR,
            b"critical" | b"crit" | b"fatal" | b"panic" | b"alert" | b"emerg" | b"emergency" => {
                Level::CRITICAL
            }
            _ => return None,
        })
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Level({})", self.name())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One log record: a fixed envelope plus every other field as a JSON object.
///
/// The envelope never changes within a major version; new data goes into `attributes`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Record {
    /// Unique and deterministic where the producer gave one, so stores can drop redeliveries.
    pub id: RString,
    /// Nanoseconds since the Unix epoch (UTC).
    pub timestamp_ns: i64,
    /// Severity.
    pub level: Level,
    /// The application that produced it.
    pub project: RString,
    /// The part of the application (logger name, component).
    pub module: RString,
    /// The human-readable message.
    pub message: RString,
    /// Every other field, as the text of one JSON object (`{}` when there are none).
    pub attributes: RString,
    /// Test-only: a field that makes the layout differ, so the loader's refusal can be tested.
    #[cfg(feature = "__layout_drift")]
    pub drift: u64,
}

impl Record {
    /// A record with the given envelope and no attributes.
    pub fn new(
        id: impl Into<RString>,
        timestamp_ns: i64,
        level: Level,
        project: impl Into<RString>,
        module: impl Into<RString>,
        message: impl Into<RString>,
    ) -> Record {
        Record {
            id: id.into(),
            timestamp_ns,
            level,
            project: project.into(),
            module: module.into(),
            message: message.into(),
            attributes: RString::from("{}"),
            #[cfg(feature = "__layout_drift")]
            drift: 0,
        }
    }

    /// Replaces the attributes (the text of a JSON object).
    pub fn with_attributes(mut self, attributes_json: impl Into<RString>) -> Record {
        self.attributes = attributes_json.into();
        self
    }
}

/// What kind of failure an error is; the kind alone decides what the host does next.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The configuration is wrong: fix it and restart. Retrying does not help.
    pub const CONFIG: ErrorKind = ErrorKind(0);
    /// A passing failure (connection lost, disk full): the host retries the same batch with backoff.
    pub const TRANSIENT: ErrorKind = ErrorKind(1);
    /// Some records can never be accepted: the host dead-letters those named bad (or the whole
    /// batch when none are named) and carries on.
    pub const PERMANENT: ErrorKind = ErrorKind(2);
    /// The instance cannot go on: the host disables it and reports why.
    pub const FATAL: ErrorKind = ErrorKind(3);

    /// The lowercase name of the kind.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "config",
            1 => "transient",
            2 => "permanent",
            3 => "fatal",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error crossing the boundary: its kind, a message, and optionally when to retry and which
/// records of the batch were bad.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct PluginError {
    /// What the host should do about it.
    pub kind: ErrorKind,
    /// Lowercase, no trailing period, saying what went wrong and what to do. With refused
    /// records, a summary line and then one line of reasons per record or group of records, as
    /// [`crate::refusal`] says ([`PluginError::with_refused`] writes it).
    pub message: RString,
    /// For transient errors: wait at least this long before retrying.
    pub retry_after_ms: ROption<u64>,
    /// For permanent errors: indices (into the batch) of the records that were refused.
    pub bad_records: RVec<u32>,
}

impl PluginError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PluginError {
        PluginError {
            kind,
            message: RString::from(message.into()),
            retry_after_ms: ROption::RNone,
            bad_records: RVec::new(),
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::CONFIG, message)
    }

    /// A transient error: the host retries.
    pub fn transient(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::TRANSIENT, message)
    }

    /// A permanent error: the records are dead-lettered.
    pub fn permanent(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::PERMANENT, message)
    }

    /// A fatal error: the instance is disabled.
    pub fn fatal(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::FATAL, message)
    }

    /// Asks the host to wait at least this long before retrying.
    pub fn with_retry_after(mut self, after: Duration) -> PluginError {
        self.retry_after_ms = ROption::RSome(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Names the records of the batch (by index) that were refused, all for the reason in the
    /// message. To give each its own reason, use [`PluginError::with_refused`].
    pub fn with_bad_records(mut self, indices: impl IntoIterator<Item = u32>) -> PluginError {
        self.bad_records = indices.into_iter().collect();
        self
    }

    /// The retry delay asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .as_ref()
            .into_option()
            .map(|ms| Duration::from_millis(*ms))
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginError")
            .field("kind", &self.kind)
            .field("message", &self.message.as_str())
            .field("retry_after_ms", &self.retry_after_ms)
            .field("bad_records", &self.bad_records.as_slice())
            .finish()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// What a plugin library says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The connector type, as written in `type = "..."` in plugins.toml (`console`).
    pub type_name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line saying what it does.
    pub description: RString,
    /// What it offers beyond a sink, e.g. `store` for a plugin answering queries via `request`.
    pub capabilities: RVec<RString>,
}

/// What the host knows about a record that the record itself does not say: a set of bits, one
/// byte per record, given beside a batch to [`PluginModule::handle_batch_flagged`]. Bits this
/// version does not name may be set by a later host; ignore them.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RecordFlags(pub u8);

impl RecordFlags {
    /// Nothing to say.
    pub const NONE: RecordFlags = RecordFlags(0);
    /// The message gave the record no time (no field and no AMQP `timestamp` property): its
    /// timestamp is when the host received it, so a redelivery of it carries a later one.
    /// Without this bit, a redelivered record has the same timestamp as before.
    pub const RECEIVE_TIME: RecordFlags = RecordFlags(1);
    /// No earlier copy of this record can have been handed on: its message reached the host for
    /// the first time (RabbitMQ did not flag it redelivered) and its id was derived from that
    /// message by the host, not sent by the producer. A store need not look for a stored
    /// repeat of it, even with [`RecordFlags::RECEIVE_TIME`].
    pub const UNSEEN: RecordFlags = RecordFlags(2);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: RecordFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These bits and those of `other`.
    pub const fn with(self, other: RecordFlags) -> RecordFlags {
        RecordFlags(self.0 | other.0)
    }
}

impl fmt::Debug for RecordFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordFlags({:#04x})", self.0)
    }
}

/// A live connector instance, as the host sees it.
///
/// Every method takes `&self` and the object is `Sync`: the host calls `handle_batch` from the
/// instance's worker thread while other plugins may call `request` from theirs.
///
/// Frozen for 1.x: abi_stable 0.11 refuses to load a plugin whose vtable has fewer methods than
/// the host's (rodrimati1992/abi_stable_crates#118; the same check as for the root module's
/// fields, which `host/tests/it/loading.rs` shows), so new calls go into [`PluginModule`].
#[sabi_trait]
pub trait PluginObj: Send + Sync {
    /// Accepts a batch of records; `Ok` means the instance has taken responsibility for all of them.
    fn handle_batch(&self, batch: RSlice<'_, Record>) -> RResult<(), PluginError>;

    /// Reports whether the instance can do its work now.
    fn healthcheck(&self) -> RResult<(), PluginError>;

    /// Answers a capability request (for example a store query); `body` and the answer are JSON.
    fn request(&self, method: RStr<'_>, body: RStr<'_>) -> RResult<RString, PluginError>;

    /// Flushes and releases everything; called once, after the last batch.
    #[sabi(last_prefix_field)]
    fn shutdown(&self) -> RResult<(), PluginError>;
}

/// The type of [`PluginModule::handle_batch_flagged`]: `handle_batch` on `instance` (one the same
/// library built) with `flags[i]` for `batch[i]`.
pub type HandleBatchFlagged = extern "C" fn(
    instance: &PluginBox,
    batch: RSlice<'_, Record>,
    flags: RSlice<'_, RecordFlags>,
) -> RResult<(), PluginError>;

/// An owned plugin instance behind the stable vtable.
pub type PluginBox = PluginObj_TO<'static, RBox<()>>;

/// What the host offers every instance.
#[sabi_trait]
pub trait HostObj: Clone + Send + Sync {
    /// The most verbose level the host will print; plugins skip formatting anything finer.
    fn max_log_level(&self) -> Level;

    /// Prints a plugin's log line in the host's output, tagged with the instance name.
    fn log(&self, level: Level, target: RStr<'_>, message: RStr<'_>);

    /// Calls `request(method, body)` on another instance, named as in plugins.toml.
    #[sabi(last_prefix_field)]
    fn request(
        &self,
        instance: RStr<'_>,
        method: RStr<'_>,
        body: RStr<'_>,
    ) -> RResult<RString, PluginError>;
}

/// A shared handle to the host behind the stable vtable.
pub type HostBox = HostObj_TO<'static, RArc<()>>;

/// The root module every plugin library exports (with [`export_plugin!`](crate::export_plugin)).
///
/// A prefix type: fields are only ever appended at the end. abi_stable refuses a library with
/// fewer fields than this, so the host loads one built against 1.0.0 as [`v1_0::PluginModule`]
/// and treats the later fields as missing.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
pub struct PluginModule {
    /// What the library is.
    pub manifest: extern "C" fn() -> Manifest,
    /// A documented example of the `[plugins.<name>.config]` table, as TOML text.
    pub example_config: extern "C" fn() -> RString,
    /// Builds an instance from its name, its config (as JSON text) and the host handle.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(
        instance_id: RStr<'_>,
        config_json: RStr<'_>,
        host: HostBox,
    ) -> RResult<PluginBox, PluginError>,
    /// Added after 1.0.0: `handle_batch` with what the host knows about each record
    /// ([`RecordFlags`]). `None` from the getter for a library built against 1.0.0: call
    /// `handle_batch` then. (Left out under the test-only feature `__abi_1_0`, to build a
    /// library with 1.0.0's root module.)
    #[cfg(not(feature = "__abi_1_0"))]
    pub handle_batch_flagged: extern "C" fn(
        instance: &PluginBox,
        batch: RSlice<'_, Record>,
        flags: RSlice<'_, RecordFlags>,
    ) -> RResult<(), PluginError>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "logrelay_plugin";
    const NAME: &'static str = "logrelay_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The root module as logrelay-plugin-api 1.0.0 defined it, kept so that the host can load a
/// library built against 1.0.0.
///
/// abi_stable 0.11 refuses a library whose root module has fewer fields than the host's (its
/// layout check takes the host's type as the minimum), so a library built before
/// [`PluginModule::handle_batch_flagged`] existed fails the check against [`PluginModule`]. The
/// host then checks it against this type, which has 1.0.0's fields under the same names, and
/// gives it batches through `handle_batch` alone. Every later root-module layout gets a module
/// like this one.
pub mod v1_0 {
    use super::*;

    /// 1.0.0's root module: `manifest`, `example_config`, `new`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
    pub struct PluginModule {
        /// What the library is.
        pub manifest: extern "C" fn() -> Manifest,
        /// A documented example of the `[plugins.<name>.config]` table, as TOML text.
        pub example_config: extern "C" fn() -> RString,
        /// Builds an instance from its name, its config (as JSON text) and the host handle.
        #[sabi(last_prefix_field)]
        pub new: extern "C" fn(
            instance_id: RStr<'_>,
            config_json: RStr<'_>,
            host: HostBox,
        ) -> RResult<PluginBox, PluginError>,
    }

    impl RootModule for PluginModuleRef {
        declare_root_module_statics! {PluginModuleRef}
        const BASE_NAME: &'static str = "logrelay_plugin";
        const NAME: &'static str = "logrelay_plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_and_aliases() {
        for level in Level::ALL {
            assert_eq!(Level::from_name(level.name()), Some(level));
            assert_eq!(Level::from_name(level.upper_name()), Some(level));
        }
        assert_eq!(Level::from_name("Warn"), Some(Level::WARNING));
        assert_eq!(Level::from_name(" ERR "), Some(Level::ERROR));
        assert_eq!(Level::from_name("fatal"), Some(Level::CRITICAL));
        assert_eq!(Level::from_name("crit"), Some(Level::CRITICAL));
        assert_eq!(Level::from_name("loud"), None);
        assert_eq!(Level::from_name("a-very-long-level-name-indeed"), None);
        assert!(Level::ERROR > Level::WARNING);
    }

    #[test]
    fn error_builders() {
        let e = PluginError::transient("db down").with_retry_after(Duration::from_millis(1500));
        assert_eq!(e.kind, ErrorKind::TRANSIENT);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(e.to_string(), "transient error: db down");
        let e = PluginError::permanent("bad rows").with_bad_records([1, 3]);
        assert_eq!(e.bad_records.as_slice(), &[1, 3]);
    }
}
