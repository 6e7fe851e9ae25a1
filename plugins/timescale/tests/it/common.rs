//! Shared helpers: a fresh database per test, the PostgreSQL lock, records, requests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use logrelay_plugin_api::testing::Harness;
use logrelay_plugin_api::{Level, PluginError, Record};
use logrelay_timescale::Timescale;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Tests share the server; the one that stops it holds it alone.
static PG: RwLock<()> = RwLock::new(());

pub fn pg_shared() -> RwLockReadGuard<'static, ()> {
    PG.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn pg_exclusive() -> RwLockWriteGuard<'static, ()> {
    PG.write().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one statement on the `postgres` database, on a thread of its own (callable from sync
/// and async tests alike).
pub fn admin(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut c = PgConnection::connect(&format!("{SERVER}/postgres"))
                .await
                .map_err(|e| {
                    format!(
                        "PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres (start it: pg_ctlcluster 15 main start): {e}"
                    )
                })?;
            c.execute(sqlx::AssertSqlSafe(sql))
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("admin thread panicked".to_owned()))
}

/// A database of its own, dropped with the value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "logrelay_t_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
        let url = format!("{SERVER}/{name}");
        TestDb { name, url }
    }

    /// A config table for this database, with extra TOML lines.
    pub fn config(&self, extra: &str) -> String {
        format!("url = \"{}\"\n{extra}\n", self.url)
    }

    pub fn start(&self, extra: &str) -> Harness {
        Harness::start::<Timescale>(&self.config(extra))
            .unwrap_or_else(|e| panic!("the store does not start: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

pub const T0: i64 = 1_700_000_000_000_000_000;

/// `n` records from `first`: levels cycle, projects p0..p2, modules m0..m4, 1 ms apart.
pub fn records(first: usize, n: usize) -> Vec<Record> {
    (first..first + n)
        .map(|i| {
            Record::new(
                format!("r{i:06}"),
                T0 + i as i64 * 1_000_000,
                Level::ALL[i % 6],
                format!("p{}", i % 3),
                format!("m{}", i % 5),
                format!("message number {i}"),
            )
            .with_attributes(format!(r#"{{"seq":{i}}}"#))
        })
        .collect()
}

pub fn request(h: &Harness, method: &str, body: Value) -> Result<Value, PluginError> {
    h.request(method, &body.to_string()).map(|text| {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"))
    })
}

pub fn ok(h: &Harness, method: &str, body: Value) -> Value {
    request(h, method, body).unwrap_or_else(|e| panic!("{method} failed: {e}"))
}

pub fn count(h: &Harness) -> i64 {
    ok(h, "stats", serde_json::json!({}))["total"]
        .as_i64()
        .expect("total")
}

pub fn ids(answer: &Value) -> Vec<String> {
    answer["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Builds liblogrelay_timescale.so (as the host's tests do) and returns its directory.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| logrelay_plugin_api::testing::build_libraries(&["logrelay-timescale"]))
}

/// Stops the cluster now and starts it again when dropped (also on a failed assertion).
pub struct StoppedServer;

fn pg_ctl(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| "15".to_owned());
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

impl StoppedServer {
    pub fn stop() -> StoppedServer {
        pg_ctl("stop");
        StoppedServer
    }
}

impl Drop for StoppedServer {
    fn drop(&mut self) {
        pg_ctl("start");
    }
}
