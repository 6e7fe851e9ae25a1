//! Shared helpers: building the plugin libraries, configs, waiting, RabbitMQ access.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use logrelay::config::{Env, PluginsConfig, Settings};
use logrelay::engine::{Completed, EngineOptions};
use tokio::sync::mpsc::UnboundedReceiver;

/// Tests that use the broker share it; a test that disrupts it (closing every connection)
/// holds it alone.
static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn broker_shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    BROKER.read().await
}

pub async fn broker_exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    BROKER.write().await
}

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The target directory and profile directory the test binary was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The directory holding freshly built fixture, console and timescale libraries.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        logrelay_plugin_api::testing::build_libraries(&[
            "logrelay-fixture",
            "logrelay-console",
            "logrelay-timescale",
        ])
    })
}

/// The fixture built against a changed record layout, in its own target directory.
pub fn drifted_fixture() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| fixture_with("__layout_drift", "layout-drift"))
        .clone()
}

/// The fixture built with plugin-api 1.0.0's root module (no fields added since), in its own
/// target directory.
pub fn fixture_1_0() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| fixture_with("__abi_1_0", "abi-1-0"))
        .clone()
}

/// Builds the fixture with a test-only feature of plugin-api in the target directory `dir` of
/// its own (so that cargo's feature unification cannot switch it on for the host); the library.
fn fixture_with(feature: &str, dir: &str) -> PathBuf {
    let target = profile_dir().parent().expect("target dir").join(dir);
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "logrelay-fixture", "--features"])
        .arg(format!("logrelay-plugin-api/{feature}"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for the fixture with {feature}: {e}"));
    assert!(
        status.success(),
        "building the fixture with {feature} failed"
    );
    target.join("debug").join("liblogrelay_fixture.so")
}

pub fn parse_config(text: &str) -> PluginsConfig {
    PluginsConfig::parse(text, &Env::default(), plugin_dir())
        .unwrap_or_else(|problems| panic!("test config refused: {problems:?}"))
}

pub fn options() -> EngineOptions {
    EngineOptions {
        retry_max: Duration::from_millis(200),
        ..EngineOptions::default()
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("logrelay-test-{prefix}-{}-{nanos}", std::process::id())
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn read_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Settings for an in-process intake on its own queue and exchange.
pub fn settings_for(queue: &str, extra: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        ("LOGRELAY_AMQP_URL".into(), AMQP_URL.into()),
        ("LOGRELAY_QUEUE".into(), queue.into()),
        ("LOGRELAY_EXCHANGE".into(), format!("{queue}-ex")),
        ("LOGRELAY_BATCH_MAX_WAIT_MS".into(), "20".into()),
        ("LOGRELAY_SHUTDOWN_TIMEOUT_MS".into(), "5000".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let (settings, warnings) =
        Settings::from_env(&Env::from_pairs(pairs), true).expect("valid test settings");
    assert!(warnings.is_empty());
    settings
}

/// Connects to the local RabbitMQ, failing with a clear message when it is not there.
pub async fn rabbit() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at {AMQP_URL}: {e}. Start it with `rabbitmq-server -detached` (scripts/services does this)."
            )
        });
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm select");
    (conn, channel)
}

/// Publishes each body to the default exchange (straight to `queue`), waiting for confirms.
pub async fn publish(channel: &Channel, queue: &str, bodies: &[String]) {
    let mut confirms = Vec::new();
    for body in bodies {
        confirms.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish"),
        );
    }
    for c in confirms {
        assert!(
            c.await.expect("confirm").is_ack(),
            "broker refused a test message"
        );
    }
}

/// The next batch the engine completes (20 s at most).
pub async fn next_completed(done: &mut UnboundedReceiver<Completed>) -> Completed {
    tokio::time::timeout(Duration::from_secs(20), done.recv())
        .await
        .expect("a batch completes within 20 s")
        .expect("engine alive")
}

/// Declares `queue` durable (as the host does) so tests can publish before the host starts.
pub async fn declare(channel: &Channel, queue: &str) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare queue");
}

/// Declares `queue` and the durable topic `exchange` bound to it with `#`, as the host declares
/// them, so that nothing published to the exchange before the host connects is unroutable.
pub async fn declare_bound(channel: &Channel, queue: &str, exchange: &str) {
    declare(channel, queue).await;
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the exchange");
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind the queue to the exchange");
}

/// Messages ready in `queue`.
pub async fn ready(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare")
        .message_count()
}

pub async fn delete(channel: &Channel, queue: &str) {
    for q in [queue.to_owned(), format!("{queue}.dead")] {
        let _ = channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// `n` logs with ids `<prefix>-<i>`.
pub fn logs(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{prefix}-{i}","level":"info","project":"shop","module":"cart","message":"log number {i}"}}"#
            )
        })
        .collect()
}

/// A fresh PostgreSQL database on 127.0.0.1, dropped at the end.
pub struct TestDb(String);

impl TestDb {
    pub fn new() -> TestDb {
        let name = unique("db").replace('-', "_");
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql must be installed to run this test");
        assert!(
            out.status.success(),
            "PostgreSQL is not reachable on 127.0.0.1:5432 (start it with scripts/services): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestDb(name)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }

    /// Runs `sql` through psql: the rows as lines, columns separated by `|`.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-tA",
                "-d",
                &self.0,
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// What one run of a command gave, for asserting its outcome. Every failed assertion shows the
/// command, its exit status, its stdout and its stderr.
pub struct Ran {
    command: String,
    pub output: Output,
}

/// Runs `cmd` to its end, capturing its output.
#[track_caller]
pub fn run(cmd: &mut Command) -> Ran {
    let command = format!("{cmd:?}");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {command}: {e}"));
    Ran { command, output }
}

impl Ran {
    pub fn stdout(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.output.stdout)
    }

    pub fn stderr(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.output.stderr)
    }

    /// Asserts that it exited with success.
    #[track_caller]
    pub fn succeeds(&self) -> &Self {
        assert!(self.output.status.success(), "expected success: {self}");
        self
    }

    /// Asserts its exit code.
    #[track_caller]
    pub fn exits_with(&self, code: i32) -> &Self {
        assert_eq!(self.output.status.code(), Some(code), "exit code: {self}");
        self
    }

    /// Asserts that it exited with a failure.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.output.status.success(), "expected failure: {self}");
        self
    }

    /// Asserts that its stdout contains each of `parts`.
    #[track_caller]
    pub fn stdout_has(&self, parts: &[&str]) -> &Self {
        self.has("stdout", &self.stdout(), parts)
    }

    /// Asserts that its stderr contains each of `parts`.
    #[track_caller]
    pub fn stderr_has(&self, parts: &[&str]) -> &Self {
        self.has("stderr", &self.stderr(), parts)
    }

    #[track_caller]
    fn has(&self, stream: &str, text: &str, parts: &[&str]) -> &Self {
        for part in parts {
            assert!(text.contains(part), "{stream} lacks {part:?}: {self}");
        }
        self
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// Starts the broker application again even when the test fails half-way.
pub struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

/// Runs `rabbitmqctl` with `args`; it must succeed.
#[track_caller]
pub fn rabbitmqctl(args: &[&str]) {
    run(Command::new("rabbitmqctl").args(args)).succeeds();
}
