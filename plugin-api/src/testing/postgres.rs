//! A PostgreSQL database of its own for each test (feature `testing-postgres`).
//!
//! Tests use the real server on 127.0.0.1:5432 as user `postgres`; when it is not reachable they
//! fail with a message that says so and how to start it, never skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// The test server, without a database name.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Runs one statement on the `postgres` database, on a thread of its own (callable from sync
/// and async tests alike). The error says when the server is not reachable.
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

/// A database of its own, created on the test server and dropped with the value.
pub struct TestDb {
    /// The database name.
    pub name: String,
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
        admin(format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
        let url = format!("{SERVER}/{name}");
        TestDb { name, url }
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
