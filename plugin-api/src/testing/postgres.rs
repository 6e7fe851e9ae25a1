//! A PostgreSQL database of its own for each test (feature `testing-postgres`).
//!
//! Tests use the real server on 127.0.0.1:5432 as user `postgres`, or the one named by
//! `LOGRELAY_TEST_POSTGRES` (a URL without a database name: `scripts/test` runs the store's and the
//! HTTP API's suites a second time against the TimescaleDB cluster on 5433 that way). When the
//! server is not reachable they fail with a message that says so and how to start it, never skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// The default test server, without a database name.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The environment variable that names another test server (a URL without a database name).
pub const SERVER_VARIABLE: &str = "LOGRELAY_TEST_POSTGRES";

/// The test server, without a database name: `LOGRELAY_TEST_POSTGRES`, else [`DEFAULT_SERVER`].
pub fn server() -> String {
    match std::env::var(SERVER_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => DEFAULT_SERVER.to_owned(),
    }
}

/// Runs one statement on the `postgres` database, on a thread of its own (callable from sync
/// and async tests alike). The error says when the server is not reachable.
pub fn admin(sql: String) -> Result<(), String> {
    admin_on(server(), sql)
}

/// [`admin`] on a given server (a URL without a database name).
pub fn admin_on(server: String, sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut c = PgConnection::connect(&format!("{server}/postgres"))
                .await
                .map_err(|e| {
                    format!(
                        "PostgreSQL is not reachable at {server} (start it: scripts/services; for the TimescaleDB cluster, ../shared/tools/install-timescaledb): {e}"
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

/// A database of its own, created on the test server and dropped with the value.
pub struct TestDb {
    /// The database name.
    pub name: String,
    /// The server it is on (a URL without a database name).
    pub server: String,
    /// Its connection URL.
    pub url: String,
}

impl TestDb {
    /// Creates a database named `logrelay_test_<pid>_<n>_<nanos>`, unique across the test
    /// processes running at once.
    ///
    /// # Panics
    /// When PostgreSQL is not reachable or refuses to create it; the message says which.
    #[allow(clippy::new_without_default)] // `Default` would hide that this creates a database.
    pub fn new() -> TestDb {
        TestDb::on(server())
    }

    /// The same on another server (a URL without a database name), such as a TimescaleDB
    /// cluster beside the default one.
    ///
    /// # Panics
    /// As [`TestDb::new`].
    pub fn on(server: String) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "logrelay_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin_on(server.clone(), format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!("{server}/{name}");
        TestDb { name, server, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin_on(
            self.server.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
