//! The database stopped mid-stream: transient errors while it is down, nothing lost after.

use std::time::{Duration, Instant};

use logrelay_plugin_api::ErrorKind;

use crate::common::{StoppedServer, TestDb, count, pg_exclusive, records, server_address};

#[test]
fn a_stopped_database_is_transient_and_loses_nothing() {
    let _pg = pg_exclusive();
    let db = TestDb::new();
    let h = db.start("acquire_timeout_ms = 1000\nconnect_timeout_ms = 1000");
    h.handle_batch(&records(0, 500)).expect("before the outage");
    let server = StoppedServer::stop();
    let err = h
        .handle_batch(&records(500, 500))
        .expect_err("the server is down");
    assert_eq!(err.kind, ErrorKind::TRANSIENT, "{err}");
    let err = h.healthcheck().expect_err("health check while down");
    assert_eq!(err.kind, ErrorKind::TRANSIENT, "{err}");
    let address = server_address();
    assert!(err.message.contains(&address), "{address}: {err}");
    let err = h.request("query", "{}").expect_err("query while down");
    assert_eq!(err.kind, ErrorKind::TRANSIENT, "{err}");
    drop(server); // starts it again
    // The host retries the same batch until it is accepted.
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match h.handle_batch(&records(500, 500)) {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::TRANSIENT, "{e}");
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "still failing: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    println!(
        "accepted after {attempts} attempt(s), {:?} after the restart",
        start.elapsed()
    );
    h.healthcheck().expect("healthy again");
    assert_eq!(count(&h), 1000);
}
