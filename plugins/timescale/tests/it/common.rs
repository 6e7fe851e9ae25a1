//! Shared helpers: a fresh database per test, the PostgreSQL lock, records, requests.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use logrelay_plugin_api::testing::Harness;
use logrelay_plugin_api::testing::postgres;
use logrelay_plugin_api::{Level, PluginError, Record};
use logrelay_timescale::Timescale;
use serde_json::Value;

/// Tests share the server; the one that stops it holds it alone.
static PG: RwLock<()> = RwLock::new(());

pub fn pg_shared() -> RwLockReadGuard<'static, ()> {
    PG.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn pg_exclusive() -> RwLockWriteGuard<'static, ()> {
    PG.write().unwrap_or_else(PoisonError::into_inner)
}

/// A database of its own (the shared helper), with the store's config and start-up.
pub struct TestDb(postgres::TestDb);

impl TestDb {
    pub fn new() -> TestDb {
        TestDb(postgres::TestDb::new())
    }

    /// A database on another server (a URL without a database name).
    pub fn on(server: String) -> TestDb {
        TestDb(postgres::TestDb::on(server))
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

impl Deref for TestDb {
    type Target = postgres::TestDb;

    fn deref(&self) -> &postgres::TestDb {
        &self.0
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

/// `host:port` of the test server (`LOGRELAY_TEST_POSTGRES`, default 127.0.0.1:5432).
pub fn server_address() -> String {
    let server = postgres::server();
    let after_scheme = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    let host_port = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, r)| r);
    host_port.split('/').next().unwrap_or(host_port).to_owned()
}

/// Stops the test server's cluster now and starts it again when dropped (also on a failed
/// assertion). The cluster is the one `pg_lsclusters` lists on the test server's port.
pub struct StoppedServer {
    version: String,
    cluster: String,
}

fn cluster_of_test_server() -> (String, String) {
    let address = server_address();
    let port = address.rsplit_once(':').map_or("5432", |(_, p)| p);
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("run pg_lsclusters");
    let listing = String::from_utf8_lossy(&out.stdout);
    listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == port)
        .map(|f| (f[0].to_owned(), f[1].to_owned()))
        .unwrap_or_else(|| {
            panic!("no PostgreSQL cluster on port {port} in pg_lsclusters:\n{listing}")
        })
}

fn pg_ctl(version: &str, cluster: &str, action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, cluster, action])
        .status()
        .expect("run pg_ctlcluster");
    assert!(
        status.success(),
        "pg_ctlcluster {version} {cluster} {action} failed"
    );
}

impl StoppedServer {
    pub fn stop() -> StoppedServer {
        let (version, cluster) = cluster_of_test_server();
        pg_ctl(&version, &cluster, "stop");
        StoppedServer { version, cluster }
    }
}

impl Drop for StoppedServer {
    fn drop(&mut self) {
        pg_ctl(&self.version, &self.cluster, "start");
    }
}
