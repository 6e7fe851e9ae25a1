//! The TimescaleDB path, on real TimescaleDB servers: the hypertable, compression, the policies,
//! the Apache-licence build, and the plain server where the extension is installed but not
//! preloaded. The jobs run through `CALL run_job`, not by waiting for their schedules.
//!
//! Servers: `LOGRELAY_TEST_TIMESCALEDB` (default `postgres://postgres@127.0.0.1:5433`, the
//! cluster `../shared/tools/install-timescaledb` makes) and `LOGRELAY_TEST_TIMESCALEDB_APACHE`
//! (default 127.0.0.1:5434, the same build with `timescaledb.license = 'apache'`; both made by
//! `scripts/timescaledb`). A test whose server is neither named nor listening says so on
//! standard error and checks nothing else; a named server that does not answer fails it.
//! `scripts/test` names both when it could make them.

use std::io::Write as _;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use logrelay_plugin_api::testing::{Harness, postgres};
use logrelay_plugin_api::{ErrorKind, Level, Record};
use logrelay_timescale::Timescale;
use serde_json::{Value, json};

use crate::common::{TestDb, count, ids, ok, pg_shared, request};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A database on the TimescaleDB server named by `variable`, or `None` (said on standard
/// error) when that server is neither named nor listening.
fn timescale_db(variable: &str, default: &str) -> Option<TestDb> {
    let named = std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let server = named
        .clone()
        .unwrap_or_else(|| format!("postgres://postgres@{default}"));
    if named.is_none() && std::net::TcpStream::connect(default).is_err() {
        // Past the harness's capture, so that it shows in every run's output.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: no TimescaleDB server at {default} and {variable} is not set \
             (make one with scripts/timescaledb)"
        );
        return None;
    }
    Some(TestDb::on(server.trim_end_matches('/').to_owned()))
}

fn now_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_nanos()).expect("time fits")
}

/// `per_day` records on each of the days `days` back from `now`, one second apart.
fn spread(prefix: &str, now: i64, days: &[i64], per_day: usize) -> Vec<Record> {
    let mut out = Vec::new();
    for &d in days {
        for i in 0..per_day {
            out.push(
                Record::new(
                    format!("{prefix}{d:03}-{i:04}"),
                    now - d * DAY_NS - i as i64 * 1_000_000_000,
                    Level::ALL[i % 6],
                    format!("p{}", i % 3),
                    format!("m{}", i % 5),
                    format!("message {d} number {i}"),
                )
                .with_attributes(format!(r#"{{"day":{d},"i":{i}}}"#)),
            );
        }
    }
    out
}

/// Runs SQL on a test database with psql; returns its unaligned output.
fn psql(db: &TestDb, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atq",
            "-d",
            &db.url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the table's job of `proc_name` now.
fn run_job(db: &TestDb, proc_name: &str) {
    let job = psql(
        db,
        &format!(
            "SELECT job_id FROM timescaledb_information.jobs
             WHERE hypertable_name = 'logs' AND proc_name = '{proc_name}'"
        ),
    );
    assert!(!job.is_empty(), "no {proc_name} job");
    psql(db, &format!("CALL run_job({job})"));
}

/// Stops the scheduler from running the table's jobs by itself, so that the test runs them.
fn unschedule_jobs(db: &TestDb) {
    psql(
        db,
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
         WHERE hypertable_name = 'logs'",
    );
}

/// (compressed, all) chunks of the table.
fn chunks(db: &TestDb) -> (i64, i64) {
    let line = psql(
        db,
        "SELECT count(*) FILTER (WHERE is_compressed), count(*)
         FROM timescaledb_information.chunks WHERE hypertable_name = 'logs'",
    );
    let (a, b) = line.split_once('|').expect("two columns");
    (a.parse().expect("count"), b.parse().expect("count"))
}

/// Every page of a query, following the cursor.
fn walk(h: &Harness, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut body = body.clone();
    for _ in 0..1000 {
        let answer = ok(h, "query", body.clone());
        out.extend(ids(&answer));
        match answer["next"].as_str() {
            Some(next) => body["cursor"] = json!(next),
            None => return out,
        }
    }
    panic!("more than 1000 pages for {body}");
}

/// The answers of every query route, for comparing two stores holding the same records.
fn answers(h: &Harness, now: i64) -> Vec<(String, Value)> {
    let ns = |days: i64| now - days * DAY_NS;
    let mut out = Vec::new();
    for body in [
        json!({"limit": 37}),
        json!({"project": "p1", "min_level": "warn", "limit": 25}),
        json!({"modules": ["m1", "m3"], "level": "error", "limit": 50}),
        json!({"from": ns(12) - 3_600_000_000_000, "to": ns(8), "limit": 40}),
        json!({"text": "number 7", "limit": 30}),
        json!({"ids": ["a010-0003", "a000-0005", "a020-0001", "nope"]}),
    ] {
        out.push((format!("query {body}"), json!(walk(h, &body))));
    }
    for id in ["a010-0003", "a000-0005", "a020-0001"] {
        out.push((format!("get {id}"), ok(h, "get", json!({ "id": id }))));
    }
    for body in [
        json!({}),
        json!({"project": "p2"}),
        json!({"from": ns(11), "to": ns(5), "min_level": "info"}),
    ] {
        out.push((format!("stats {body}"), ok(h, "stats", body.clone())));
    }
    // `time_bucket` on the hypertable, integer arithmetic on the plain table: the same buckets.
    for body in [
        json!({"buckets": 25}),
        json!({"from": ns(21), "to": ns(0), "buckets": 21, "project": "p1"}),
        json!({"from": ns(12) - 3_600_000_000_000, "to": ns(8), "buckets": 7, "min_level": "warning"}),
    ] {
        let answer = ok(h, "histogram", body.clone());
        let buckets = answer["buckets"].as_array().map_or(0, Vec::len);
        assert!(buckets > 1, "histogram {body}: {answer}");
        out.push((format!("histogram {body}"), answer));
    }
    out
}

#[test]
fn the_hypertable_compresses_drops_and_answers_every_route_like_a_plain_table() {
    let _pg = pg_shared();
    let Some(db) = timescale_db("LOGRELAY_TEST_TIMESCALEDB", "127.0.0.1:5433") else {
        return;
    };
    let h = db.start(
        "timescale = \"require\"\nchunk_interval = \"1d\"\ncompress_after = \"7d\"\nretention = \"30d\"",
    );
    let schema = ok(&h, "schema", json!({}));
    assert_eq!(schema["storage"], "hypertable", "{schema}");
    assert_eq!(schema["timescaledb_policies"], true, "{schema}");
    assert_eq!(
        psql(
            &db,
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'logs'"
        ),
        "1 day"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(proc_name, ',' ORDER BY proc_name) FROM timescaledb_information.jobs WHERE hypertable_name = 'logs'"
        ),
        "policy_compression,policy_retention"
    );
    unschedule_jobs(&db);

    // Days 0..2 stay uncompressed, days 8..20 are compressed by the job, day 40 is dropped.
    let now = now_ns();
    let days = [0, 1, 2, 8, 10, 12, 20];
    let all = spread("a", now, &days, 60);
    h.handle_batch(&all).expect("write");
    h.handle_batch(&spread("old", now, &[40], 10))
        .expect("write old");
    assert_eq!(count(&h), (all.len() + 10) as i64);

    // The same records in a plain table: every route must answer alike.
    let plain_db = TestDb::on(db.server.clone());
    let plain = plain_db.start("timescale = \"off\"");
    plain.handle_batch(&all).expect("write plain");
    let expected = answers(&plain, now);

    run_job(&db, "policy_retention");
    assert_eq!(count(&h), all.len() as i64, "day 40 dropped");
    let (compressed, before) = chunks(&db);
    assert_eq!(compressed, 0);
    run_job(&db, "policy_compression");
    let (compressed, total) = chunks(&db);
    assert_eq!(total, before);
    assert!(
        compressed >= 4 && compressed < total,
        "{compressed} of {total} chunks compressed"
    );
    for (route, answer) in answers(&h, now).into_iter().zip(&expected) {
        assert_eq!(route.0, answer.0);
        assert_eq!(
            &route.1, &answer.1,
            "{} differs over compressed chunks",
            route.0
        );
    }

    // A redelivery into compressed chunks stores no second row, also with probed flags.
    let old: Vec<Record> = all
        .iter()
        .filter(|r| r.id.starts_with("a010"))
        .cloned()
        .collect();
    h.handle_batch(&old).expect("redelivery");
    assert_eq!(count(&h), all.len() as i64);
    assert_eq!(
        psql(&db, "SELECT count(*) FROM logs WHERE id LIKE 'a010-%'"),
        "60"
    );

    // Update and delete of a record in a compressed chunk.
    let updated = ok(
        &h,
        "update",
        json!({"id": "a010-0003", "message": "changed in a compressed chunk", "merge_attributes": {"fixed": true}}),
    );
    assert_eq!(updated["updated"], 1, "{updated}");
    let got = ok(&h, "get", json!({"id": "a010-0003"}));
    assert_eq!(got["message"], "changed in a compressed chunk", "{got}");
    assert_eq!(got["attributes"]["fixed"], true, "{got}");
    assert_eq!(got["attributes"]["day"], 10, "{got}");
    assert_eq!(ok(&h, "delete", json!({"id": "a012-0004"}))["deleted"], 1);
    let err = request(&h, "get", json!({"id": "a012-0004"})).expect_err("deleted");
    assert!(err.message.contains("a012-0004"), "{err}");
    assert_eq!(count(&h), all.len() as i64 - 1);
}

#[test]
fn changed_policies_follow_the_config_at_the_next_start_and_a_plain_table_stays_plain() {
    let _pg = pg_shared();
    let Some(db) = timescale_db("LOGRELAY_TEST_TIMESCALEDB", "127.0.0.1:5433") else {
        return;
    };
    let config = |db: &TestDb| {
        psql(
            db,
            "SELECT proc_name || '=' || extract(epoch FROM coalesce(config->>'compress_after', config->>'drop_after')::interval)::bigint / 86400 || 'd'
             FROM timescaledb_information.jobs WHERE hypertable_name = 'logs' ORDER BY proc_name",
        )
        .replace('\n', " ")
    };
    drop(db.start("compress_after = \"7d\"\nretention = \"30d\""));
    assert_eq!(config(&db), "policy_compression=7d policy_retention=30d");
    drop(db.start("compress_after = \"3d\"\nretention = \"60d\""));
    assert_eq!(config(&db), "policy_compression=3d policy_retention=60d");
    let h = db.start("compress_after = \"off\"\nretention = \"off\"");
    assert_eq!(config(&db), "");
    h.handle_batch(&spread("b", now_ns(), &[0], 5))
        .expect("write");
    assert_eq!(count(&h), 5);
    drop(h);

    // A table created plain (TimescaleDB then off) stays plain when it is on.
    let plain_db = TestDb::on(db.server.clone());
    drop(plain_db.start("timescale = \"off\""));
    let h = plain_db.start("");
    assert_eq!(ok(&h, "schema", json!({}))["storage"], "plain");
    drop(h);
    let err = Harness::start::<Timescale>(&plain_db.config("timescale = \"require\""))
        .err()
        .expect("require over a plain table");
    assert_eq!(err.kind, ErrorKind::CONFIG, "{err}");
    assert!(err.message.contains("create_hypertable"), "{err}");
}

#[test]
fn an_apache_only_build_gets_a_hypertable_and_retention_without_compression() {
    let _pg = pg_shared();
    let Some(db) = timescale_db("LOGRELAY_TEST_TIMESCALEDB_APACHE", "127.0.0.1:5434") else {
        return;
    };
    assert_eq!(psql(&db, "SHOW timescaledb.license"), "apache");
    let h = db.start("compress_after = \"7d\"\nretention = \"30d\"");
    let schema = ok(&h, "schema", json!({}));
    assert_eq!(schema["storage"], "hypertable", "{schema}");
    assert_eq!(schema["timescaledb_policies"], false, "{schema}");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name = 'logs'"
        ),
        "0"
    );
    let now = now_ns();
    h.handle_batch(&spread("c", now, &[0, 10, 40, 50], 20))
        .expect("write");
    h.handle_batch(&spread("c", now, &[40], 20))
        .expect("redelivery");
    assert_eq!(count(&h), 80);
    // The store's own retention drops the old chunks (the task runs at start too; the
    // request runs a pass now, whatever the task already did).
    let answer = ok(&h, "retention_run", json!({}));
    assert_eq!(answer["unit"], "chunks", "{answer}");
    assert_eq!(count(&h), 40, "{answer}");
    assert_eq!(
        ids(&ok(&h, "query", json!({"ids": ["c040-0001", "c010-0001"]}))),
        ["c010-0001"]
    );
}

/// On a server where the extension's files are installed but it is not preloaded (this
/// machine's plain server once install-timescaledb ran), `auto` goes plain and says what to
/// change, and `require` refuses to start with the same words. Without the files, `require`
/// says the extension is not installed.
#[test]
fn timescaledb_installed_but_not_preloaded_is_explained() {
    let _pg = pg_shared();
    let db = TestDb::on(postgres::DEFAULT_SERVER.to_owned());
    let probe = db.start("timescale = \"off\"");
    let row = ok(
        &probe,
        "sql",
        json!({"query": "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), current_setting('shared_preload_libraries') LIKE '%timescaledb%'"}),
    )["rows"][0]
        .clone();
    drop(probe);
    let (installed, preloaded) = (row[0] == true, row[1] == true);
    if preloaded {
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: the server at {} preloads timescaledb",
            postgres::DEFAULT_SERVER
        );
        return;
    }
    let h = db.start("");
    let schema = ok(&h, "schema", json!({}));
    assert_eq!(schema["storage"], "plain", "{schema}");
    let why = schema["timescaledb_missing"].as_str().expect("a reason");
    drop(h);
    let other = TestDb::on(postgres::DEFAULT_SERVER.to_owned());
    let err = Harness::start::<Timescale>(&other.config("timescale = \"require\""))
        .err()
        .expect("require without a usable extension");
    assert_eq!(err.kind, ErrorKind::CONFIG, "{err}");
    if installed {
        for text in [why, err.message.as_str()] {
            assert!(
                text.contains("not preloaded") && text.contains("shared_preload_libraries"),
                "{text}"
            );
        }
    } else {
        assert!(err.message.contains("not installed"), "{err}");
    }
}
