//! Start-up, schema, writes, retention and the TimescaleDB branch.

use logrelay_plugin_api::testing::{Harness, check_example_config, conformance, postgres};
use logrelay_plugin_api::{ErrorKind, Level, Record, RecordFlags};
use logrelay_timescale::Timescale;
use serde_json::json;

use crate::common::{TestDb, count, ok, pg_shared, records};

#[test]
fn passes_the_conformance_checks() {
    let _pg = pg_shared();
    let db = TestDb::new();
    conformance::<Timescale>(&db.config("")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn example_config_parses_and_manifest_says_store() {
    check_example_config::<Timescale>().unwrap_or_else(|e| panic!("{e}"));
    let m = logrelay_plugin_api::export::manifest_of::<Timescale>();
    assert_eq!(m.type_name.as_str(), "timescale");
    assert!(m.capabilities.iter().any(|c| c.as_str() == "store"));
}

#[test]
fn an_unreachable_server_is_named_by_host_and_port() {
    let err = Harness::start::<Timescale>(
        "url = \"postgres://postgres@127.0.0.1:1/x\"\nconnect_timeout_ms = 3000\n",
    )
    .err()
    .expect("nothing listens on port 1");
    assert_eq!(err.kind, ErrorKind::TRANSIENT, "{err}");
    assert!(err.message.contains("127.0.0.1:1"), "{err}");
    assert!(
        !err.message.contains("postgres://"),
        "no URL in messages: {err}"
    );
}

#[test]
fn bad_options_are_config_errors_naming_the_option() {
    for (extra, field) in [
        ("table = \"Bad-Name\"", "`table`"),
        ("retention = \"30\"", "`retention`"),
        ("max_connections = 0", "`max_connections`"),
        ("colour = \"red\"", "colour"),
    ] {
        let err = Harness::start::<Timescale>(&format!(
            "url = \"{}/postgres\"\n{extra}\n",
            postgres::server()
        ))
        .err()
        .unwrap_or_else(|| panic!("{extra} accepted"));
        assert_eq!(err.kind, ErrorKind::CONFIG, "{extra}: {err}");
        assert!(err.message.contains(field), "{extra}: {err}");
    }
    let err = Harness::start::<Timescale>("url = \"\"\n")
        .err()
        .expect("empty url");
    assert!(err.message.contains("LOGRELAY_DATABASE_URL"), "{err}");
    let _pg = pg_shared();
    let err = Harness::start::<Timescale>(&format!(
        "url = \"{}/logrelay_no_such_database\"\n",
        postgres::server()
    ))
    .err()
    .expect("missing database");
    assert_eq!(err.kind, ErrorKind::CONFIG, "{err}");
}

#[test]
fn batches_are_stored_once_even_when_redelivered() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let batch = records(0, 1000);
    h.handle_batch(&batch).expect("first delivery");
    h.handle_batch(&batch).expect("redelivery");
    h.handle_batch(&records(500, 1000))
        .expect("overlapping batch");
    assert_eq!(count(&h), 1500);
    // The same records twice in one batch: the probe cannot see them, the key refuses the COPY,
    // and the fallback statement writes each once.
    let mut twice = records(5000, 300);
    twice.extend(records(5000, 300));
    h.handle_batch(&twice)
        .expect("a batch with each record twice");
    assert_eq!(count(&h), 1800);
    let r = ok(&h, "get", json!({"id": "r000042"}));
    assert_eq!(r["message"], "message number 42");
    assert_eq!(r["timestamp_ns"], T0_PLUS(42));
    assert_eq!(r["level"], "trace");
    assert_eq!(r["attributes"], json!({"seq": 42}));
    h.shutdown().expect("shutdown");
}

/// With `dedupe_window = "off"` there is no probe: a redelivery fails the `COPY` on the primary
/// key and the fallback statement writes only what is new. That statement binds times through
/// sqlx while the `COPY` encodes them itself: both must give the same stored time, or the
/// fallback would store a second row. Times with nanoseconds, before 2000 and before 1970
/// check the rounding on each side of both epochs.
#[test]
fn without_a_window_the_key_alone_recognises_redeliveries() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("dedupe_window = \"off\"\n");
    let mut batch = records(0, 200);
    for (r, ts) in batch.iter_mut().zip([
        1_700_000_000_123_456_789i64,
        946_684_799_999_999_999, // 1999-12-31T23:59:59.999999999Z
        900_000_000_123_456_789,
        -1_000_000_000_987_654_321,
        -1,
        0,
    ]) {
        r.timestamp_ns = ts;
    }
    h.handle_batch(&batch).expect("first delivery");
    assert_eq!(count(&h), 200);
    h.handle_batch(&batch).expect("redelivery");
    let mut overlapping = batch[..6].to_vec();
    overlapping.extend(records(1000, 50));
    h.handle_batch(&overlapping).expect("overlapping batch");
    assert_eq!(count(&h), 250, "a redelivered record was stored twice");
    let r = ok(&h, "get", json!({"id": "r000003"}));
    // Stored in microseconds, truncated toward zero from PostgreSQL's epoch (2000).
    assert_eq!(r["timestamp_ns"], -1_000_000_000_987_654_000i64);
    assert_eq!(r["timestamp"], "1938-04-24T22:13:19.012346Z");
    h.shutdown().expect("shutdown");
}

/// `records` with their times `delay` nanoseconds later (a redelivery with a later receive time).
fn shifted(records: &[Record], delay: i64) -> Vec<Record> {
    records
        .iter()
        .cloned()
        .map(|mut r| {
            r.timestamp_ns += delay;
            r
        })
        .collect()
}

/// The host flags the records that got their receive time: only those are probed for the
/// dedupe window. A record with its own time is a repeat only with the same time (the key), so
/// the same id with another own time is another record, even within the window; unflagged
/// (`handle_batch`, flags unknown), every record is probed.
#[test]
fn only_records_flagged_with_their_receive_time_are_probed() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("dedupe_window = \"10m\"\n");
    let minute = 60_000_000_000i64;
    let first = records(0, 100);
    let own = vec![RecordFlags::NONE; 100];
    let received = vec![RecordFlags::RECEIVE_TIME; 100];
    h.handle_batch_flagged(&first, &own)
        .expect("first delivery");
    let later = |delay: i64| shifted(&first, delay);
    h.handle_batch_flagged(&later(minute), &received)
        .expect("redelivery with a later receive time");
    assert_eq!(count(&h), 100, "a flagged redelivery was stored again");
    h.handle_batch(&later(2 * minute)).expect("flags unknown");
    assert_eq!(count(&h), 100, "an unflagged redelivery was stored again");
    h.handle_batch_flagged(&later(3 * minute), &own)
        .expect("the same ids with other own times");
    assert_eq!(count(&h), 200, "records with their own times were probed");
    // A mixed batch: exact repeats with their own time (the key refuses the COPY; the fallback
    // writes only what is new), a flagged redelivery and new records.
    let mut mixed = first[..10].to_vec();
    mixed.extend(later(4 * minute)[10..20].iter().cloned());
    mixed.extend(records(500, 10));
    let mut flags = vec![RecordFlags::NONE; 10];
    flags.extend([RecordFlags::RECEIVE_TIME; 10]);
    flags.extend([RecordFlags(RecordFlags::RECEIVE_TIME.0 | 0x80); 10]);
    h.handle_batch_flagged(&mixed, &flags).expect("mixed batch");
    assert_eq!(count(&h), 210);
    // An exact repeat (the key refuses the COPY, so the fallback statement runs) beside the same
    // id with another own time, within the window: the second is a new record on every path.
    let mut moved = first[50].clone();
    moved.timestamp_ns += 5 * minute;
    h.handle_batch_flagged(&[first[50].clone(), moved], &own[..2])
        .expect("a repeat and a new time");
    assert_eq!(
        count(&h),
        211,
        "a record with its own time was taken for a repeat"
    );
    h.shutdown().expect("shutdown");
}

/// A record sent without a timestamp gets its receive time, so its redelivery carries a later
/// one: recognised by id within `dedupe_window`, and only within it.
#[test]
fn redeliveries_with_a_later_time_are_recognised_within_the_dedupe_window() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("dedupe_window = \"10m\"\n");
    let minute = 60_000_000_000i64;
    let first = records(0, 100);
    h.handle_batch(&first).expect("first delivery");
    let later = |delay: i64| shifted(&first, delay);
    h.handle_batch(&later(3 * minute))
        .expect("redelivery 3 minutes later");
    assert_eq!(
        count(&h),
        100,
        "a redelivery within the window is a second row"
    );
    // Outside the window the same ids are new records (two rows each): the window is a bound.
    h.handle_batch(&later(11 * minute))
        .expect("11 minutes later");
    assert_eq!(count(&h), 200);
    // An earlier time is never taken for a redelivery (ids are unique per producer).
    h.handle_batch(&later(-minute)).expect("earlier");
    assert_eq!(count(&h), 300);
    // A record and its redelivery in the same call (the host coalesces queued batches): the
    // statement's probe cannot see the first, the writer leaves the second out.
    let fresh = records(1000, 50);
    let mut both = fresh.clone();
    both.extend(fresh.iter().cloned().map(|mut r| {
        r.timestamp_ns += 2 * minute;
        r
    }));
    h.handle_batch(&both)
        .expect("record and redelivery together");
    assert_eq!(count(&h), 350, "one row per record of the same call");
    h.shutdown().expect("shutdown");

    let db = TestDb::new();
    let h = db.start("dedupe_window = \"off\"\n");
    h.handle_batch(&first).expect("first delivery");
    h.handle_batch(&later(minute)).expect("a minute later");
    assert_eq!(count(&h), 200, "`off` recognises only the same (id, time)");
    h.shutdown().expect("shutdown");
}

#[allow(non_snake_case)]
fn T0_PLUS(i: i64) -> i64 {
    crate::common::T0 + i * 1_000_000
}

#[test]
fn refused_rows_are_named_and_the_good_ones_stored() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let mut batch = records(0, 40);
    batch[3].message = "NUL \0 inside".into();
    batch[7] = batch[7].clone().with_attributes("not json");
    // Valid JSON that jsonb refuses: only the server finds it (the batch is bisected).
    batch[12] = batch[12].clone().with_attributes(r#"{"a":"\u0000"}"#);
    batch[15] = batch[15].clone().with_attributes("[1,2]");
    batch[33] = batch[33].clone().with_attributes(r#"{"b":"x\u0000y"}"#);
    for _ in 0..2 {
        let err = h.handle_batch(&batch).expect_err("bad rows");
        assert_eq!(err.kind, ErrorKind::PERMANENT, "{err}");
        assert_eq!(err.bad_records.as_slice(), &[3, 7, 12, 15, 33], "{err}");
        assert!(err.message.contains("5 of 40"), "{err}");
        assert_eq!(count(&h), 35);
    }
    let err = ok(&h, "query", json!({"ids": ["r000012", "r000013"]}));
    assert_eq!(crate::common::ids(&err), vec!["r000013"]);
}

/// Incompressible text over the 2704 bytes a B-tree entry can hold, so that PostgreSQL refuses
/// a row whose indexed column holds it (SQLSTATE 54000).
fn over_btree_limit() -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..3200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    [(x % 62) as usize],
            )
        })
        .collect()
}

#[test]
fn each_refused_record_gets_its_own_reason() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let mut batch = records(0, 7);
    batch[0].project = "sh\0p".into();
    // Over the limit of the (module, ts, id) index: found by the server, the batch is bisected.
    batch[1].module = over_btree_limit().as_str().into();
    batch[3].message = "NUL \0 inside".into();
    batch[4].project = over_btree_limit().as_str().into();
    batch[5] = batch[5].clone().with_attributes(r#"{"k\u0000":1}"#);
    // 2 and 6 are good.
    let err = h.handle_batch(&batch).expect_err("bad rows");
    assert_eq!(err.kind, ErrorKind::PERMANENT, "{err}");
    assert_eq!(err.bad_records.as_slice(), &[0, 1, 3, 4, 5], "{err}");
    let reasons = err.record_reasons();
    assert_eq!(
        reasons.summary(),
        "5 of 7 records refused (the others are stored)",
        "{err}"
    );
    let expect = [
        (0, "`project` contains a NUL byte"),
        (1, "refused by PostgreSQL: index row size"),
        (3, "`message` contains a NUL byte"),
        (4, "refused by PostgreSQL: index row size"),
        (
            5,
            "refused by PostgreSQL: unsupported Unicode escape sequence",
        ),
    ];
    for (i, start) in expect {
        let reason = reasons
            .own(i)
            .unwrap_or_else(|| panic!("no reason for {i}: {err}"));
        assert!(reason.starts_with(start), "record {i}: {reason}");
        assert!(!reason.contains('\n'), "record {i}: {reason}");
    }
    assert!(reasons.get(1).contains("module_ts_idx"), "{err}");
    assert!(reasons.get(4).contains("project_ts_idx"), "{err}");
    assert_eq!(reasons.own(2), None);
    assert_eq!(reasons.own(6), None);
    assert_eq!(count(&h), 2, "the good records are stored");
    let stored = ok(&h, "query", json!({"ids": ["r000002", "r000006"]}));
    assert_eq!(crate::common::ids(&stored).len(), 2, "{stored}");
}

#[test]
fn rows_over_postgres_limits_are_refused_not_retried_forever() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let mut batch = records(0, 5);
    // An id no B-tree entry can hold (SQLSTATE 54000).
    batch[1].id = over_btree_limit().as_str().into();
    // Attributes nested past jsonb's parser stack (SQLSTATE 54001).
    let depth = 40_000;
    batch[3] = batch[3].clone().with_attributes(format!(
        "{{\"a\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    ));
    let err = h.handle_batch(&batch).expect_err("bad rows");
    assert_eq!(err.kind, ErrorKind::PERMANENT, "{err}");
    assert_eq!(err.bad_records.as_slice(), &[1, 3], "{err}");
    assert_eq!(count(&h), 3);
}

#[test]
fn migrations_are_idempotent_across_restarts_and_concurrent_starts() {
    let _pg = pg_shared();
    let db = TestDb::new();
    // With the (optional) message index, so every step runs.
    let h = db.start("message_index = \"auto\"");
    let first = ok(&h, "schema", json!({}));
    // Run against both servers (scripts/test): a hypertable exactly where TimescaleDB is usable.
    let expected = if first["timescaledb_missing"].is_null() {
        "hypertable"
    } else {
        "plain"
    };
    assert_eq!(first["storage"], expected, "{first}");
    if std::env::var("LOGRELAY_TEST_EXPECT_TIMESCALEDB").as_deref() == Ok("1") {
        assert_eq!(
            first["storage"], "hypertable",
            "scripts/test's TimescaleDB pass: {first}"
        );
    }
    assert_eq!(first["message_index"], "trigram");
    // Every connection so far is over TCP and got TCP_NODELAY (nodelay.rs).
    let set = first["tcp_nodelay"]["set"].as_u64().unwrap_or(0);
    assert!(set >= 1, "{first}");
    assert_eq!(first["tcp_nodelay"]["not_set"], 0, "{first}");
    assert_eq!(
        first["migrations"].as_array().map(Vec::len),
        Some(4),
        "{first}"
    );
    // The key columns compare bytewise whatever the database's collation (schema.rs, step 1).
    let collations = ok(
        &h,
        "sql",
        json!({"query": "SELECT column_name::text, collation_name::text FROM information_schema.columns
                         WHERE table_name = 'logs' AND data_type = 'text' ORDER BY column_name"}),
    );
    assert_eq!(
        collations["rows"],
        json!([
            ["id", "C"],
            ["message", null],
            ["module", "C"],
            ["project", "C"]
        ])
    );
    h.handle_batch(&records(0, 10)).expect("write");
    h.shutdown().expect("shutdown");
    drop(h);
    // Two hosts starting together on an existing schema, then a restart with another table.
    let config = db.config("");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || Harness::start::<Timescale>(&config).map(|h| count(&h)))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("start"), 10);
    }
    // A later start without the option changes nothing recorded (steps are never undone).
    let h = db.start("");
    let again = ok(&h, "schema", json!({}));
    assert_eq!(again["migrations"], first["migrations"]);
    assert_eq!(count(&h), 10);
    let other = db.start("table = \"other_logs\"");
    assert_eq!(count(&other), 0);
    assert_eq!(
        ok(&other, "schema", json!({}))["table"],
        "\"public\".\"other_logs\""
    );
}

#[test]
fn retention_deletes_old_records_in_batches() {
    let _pg = pg_shared();
    let db = TestDb::new();
    // Batched row deletes are the plain table's retention, on either server.
    let h = db.start(
        "timescale = \"off\"\nretention = \"1d\"\nretention_batch_rows = 7\nretention_interval = \"1h\"",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let day = 86_400 * 1_000_000_000i64;
    let batch: Vec<Record> = (0..40)
        .map(|i| {
            let ts = if i < 30 { now - 10 * day + i } else { now - i };
            Record::new(format!("k{i}"), ts, Level::INFO, "p", "m", "x")
        })
        .collect();
    h.handle_batch(&batch).expect("write");
    let answer = ok(&h, "retention_run", json!({}));
    assert_eq!(answer["unit"], "rows");
    assert_eq!(count(&h), 10, "{answer}");
    assert_eq!(ok(&h, "retention_run", json!({}))["deleted"], 0);
    h.shutdown().expect("shutdown stops the retention task");
}
