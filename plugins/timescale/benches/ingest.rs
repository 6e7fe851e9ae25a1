//! Timescale connector benchmarks against the local PostgreSQL (fresh databases, dropped after).
//!
//! 1. Ingest: `handle_batch_flagged` of 1000-record batches, as the host calls it, vs one raw
//!    `COPY ... FROM STDIN` of the same rows into the same (truncated) table, in the same run,
//!    three rounds each, in turn. The records carry their own times (flags `NONE`);
//!    `--receive-time` flags them `RECEIVE_TIME`, as if the messages gave no time, so that every
//!    record is probed for the dedupe window.
//!    On a TimescaleDB server both are run twice: into the hypertable the store makes there, and
//!    into a plain table (`timescale = "off"`), in the same run.
//! 2. Queries: p50/p95 latency of newest-100 by project, by level, by module, of a one-hour
//!    range, and of one day's stats, through `request`, on N generated rows over 30 days
//!    (20 projects, 50 modules), with the EXPLAIN ANALYZE plan of each query, and the table's
//!    size on disk. On a TimescaleDB server the same again after compressing every chunk older
//!    than a day (`compress_chunk`), with the size after.
//!
//! ```text
//! cargo bench -p logrelay-timescale --bench ingest -- [--rows 200000] [--query-rows 2000000] [--samples 200]
//!     [--batch 1000] [--config 'message_index = "auto"'] [--socket /var/run/postgresql] [--receive-time]
//!     [--server postgres://postgres@127.0.0.1:5433]
//! ```
//! `--query-rows 0` skips part 2. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), or
//! the server `--server` names (a URL without a database name).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use logrelay_plugin_api::testing::Harness;
use logrelay_plugin_api::{Level, Record, RecordFlags};
use logrelay_timescale::Timescale;
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};

/// The server: `--server`, else the local PostgreSQL.
fn server() -> String {
    match text_arg("--server") {
        url if url.is_empty() => "postgres://postgres@127.0.0.1:5432".to_owned(),
        url => url.trim_end_matches('/').to_owned(),
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value after `name` as text (default: empty).
fn text_arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_default()
}

fn admin(rt: &tokio::runtime::Runtime, sql: &str) {
    rt.block_on(async {
        let server = server();
        let mut c = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL reachable at {server}: {e}"));
        c.execute(AssertSqlSafe(sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

fn records(n: usize) -> Vec<Record> {
    let base = 1_700_000_000_000_000_000i64;
    (0..n)
        .map(|i| {
            Record::new(
                format!("0190a1b2-c3d4-7e5f-8a9b-{i:012}"),
                base + i as i64 * 1_000_000,
                Level::ALL[i % 6],
                format!("project-{}", i % 20),
                format!("module-{}", i % 50),
                format!(
                    "request handled: GET /api/v1/items/{i} status=200 duration_ms={}",
                    i % 997
                ),
            )
            .with_attributes(format!(
                r#"{{"host":"web-{}","user":"u{}","trace":"{:016x}"}}"#,
                i % 8,
                i % 1000,
                i * 7919
            ))
        })
        .collect()
}

fn copy_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn copy_text(rows: &[Record]) -> String {
    let mut out = String::with_capacity(rows.len() * 220);
    for r in rows {
        let ts = chrono::DateTime::from_timestamp_nanos(r.timestamp_ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        copy_escape(&mut out, &r.id);
        let _ = write!(out, "\t{ts}\t{}\t", r.level.0);
        copy_escape(&mut out, &r.project);
        out.push('\t');
        copy_escape(&mut out, &r.module);
        out.push('\t');
        copy_escape(&mut out, &r.message);
        out.push('\t');
        copy_escape(&mut out, &r.attributes);
        out.push('\n');
    }
    out
}

/// Whether the server preloads TimescaleDB (so the store makes hypertables there).
fn has_timescaledb(rt: &tokio::runtime::Runtime) -> bool {
    rt.block_on(async {
        let mut c = PgConnection::connect(&format!("{}/postgres", server()))
            .await
            .expect("connect");
        let preload: String =
            sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
                .fetch_one(&mut c)
                .await
                .expect("shared_preload_libraries");
        preload.contains("timescaledb")
    })
}

fn ingest(rt: &tokio::runtime::Runtime, rows: usize, storage_config: &str) {
    let db = format!("logrelay_bench_ingest_{}", std::process::id());
    admin(rt, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin(rt, &format!("CREATE DATABASE {db}"));
    // `--socket /var/run/postgresql` connects both sides through the Unix socket instead.
    let url = match text_arg("--socket") {
        dir if dir.is_empty() => format!("{}/{db}", server()),
        dir => format!("postgres://postgres@localhost/{db}?host={dir}"),
    };
    let extra = format!("{storage_config}\n{}", text_arg("--config"));
    let extra = extra.trim();
    let batch = arg("--batch", 1000).max(1) as usize;
    let flag = if std::env::args().any(|a| a == "--receive-time") {
        RecordFlags::RECEIVE_TIME
    } else {
        RecordFlags::NONE
    };
    let flags = vec![flag; batch];
    let h =
        Harness::start::<Timescale>(&format!("url = \"{url}\"\n{extra}\n")).expect("store starts");
    let storage: Value =
        serde_json::from_str(&h.request("schema", "{}").expect("schema")).expect("json");
    let data = records(rows);
    let text = copy_text(&data);
    let mut conn = rt.block_on(PgConnection::connect(&url)).expect("connect");
    let truncate = |conn: &mut PgConnection| {
        rt.block_on(async {
            conn.execute("TRUNCATE logs").await.expect("truncate");
            conn.execute("CHECKPOINT").await.expect("checkpoint");
        });
    };
    println!(
        "ingest: {rows} rows (~{} bytes each) into a {} table with its indexes, config: {}, records {}",
        text.len() / rows,
        storage["storage"].as_str().unwrap_or("?"),
        if extra.is_empty() { "defaults" } else { extra },
        if flag == RecordFlags::NONE {
            "with their own time"
        } else {
            "with their receive time (all probed)"
        }
    );
    // The two are timed in turn, three rounds, alternating which goes first: this machine's
    // speed swings by up to 40% from one minute to the next, and a round compares neighbours.
    let mut ratios = Vec::new();
    let (mut best_batch, mut best_copy) = (0f64, 0f64);
    for round in 1..=3 {
        let mut batch_rate = 0.0;
        let mut copy_rate = 0.0;
        for step in 0..2 {
            truncate(&mut conn);
            let start = Instant::now();
            if (round + step) % 2 == 1 {
                for chunk in data.chunks(batch) {
                    h.handle_batch_flagged(chunk, &flags[..chunk.len()])
                        .expect("batch");
                }
                batch_rate = rows as f64 / start.elapsed().as_secs_f64();
            } else {
                rt.block_on(async {
                    let mut copy = conn
                        .copy_in_raw(
                            "COPY logs (id, ts, level, project, module, message, attributes) FROM STDIN",
                        )
                        .await
                        .expect("copy");
                    for piece in text.as_bytes().chunks(1 << 20) {
                        copy.send(piece).await.expect("send");
                    }
                    copy.finish().await.expect("finish");
                });
                copy_rate = rows as f64 / start.elapsed().as_secs_f64();
            }
        }
        println!(
            "  round {round}: handle_batch x{batch}: {batch_rate:>9.0} rows/s   raw COPY (one stream): {copy_rate:>9.0} rows/s   ratio {:.0}%",
            100.0 * batch_rate / copy_rate
        );
        ratios.push(batch_rate / copy_rate);
        best_batch = best_batch.max(batch_rate);
        best_copy = best_copy.max(copy_rate);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "  median ratio {:.0}% (goal >= 80%); best handle_batch {best_batch:.0} rows/s, best COPY {best_copy:.0} rows/s: {:.0}%",
        100.0 * ratios[1],
        100.0 * best_batch / best_copy
    );
    drop(h);
    drop(conn);
    admin(rt, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}

/// A named request: method and body generator.
type Case = (&'static str, &'static str, Box<dyn Fn(usize) -> Value>);

fn p95(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)])
}

fn queries(rt: &tokio::runtime::Runtime, n: u64, samples: usize) {
    let db = format!("logrelay_bench_query_{}", std::process::id());
    admin(rt, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin(rt, &format!("CREATE DATABASE {db}"));
    let url = format!("{}/{db}", server());
    let h = Harness::start::<Timescale>(&format!(
        "url = \"{url}\"\nmessage_index = \"off\"\nstatement_timeout_ms = 0\n"
    ))
    .expect("store starts");
    let start = Instant::now();
    rt.block_on(async {
        let mut c = PgConnection::connect(&url).await.expect("connect");
        c.execute("SET maintenance_work_mem = '512MB'")
            .await
            .expect("set");
        c.execute(AssertSqlSafe(format!(
            "INSERT INTO logs (id, ts, level, project, module, message, attributes)
             SELECT 'g' || g,
                    now() - ((g::float8 / {n}) * interval '30 days'),
                    (g % 6)::int2,
                    'project-' || (g % 20),
                    'module-' || ((g / 7) % 50),
                    'generated message number ' || g || ' status=200',
                    jsonb_build_object('seq', g, 'user', 'u' || (g % 1000))
             FROM generate_series(1, {n}) g"
        )))
        .await
        .expect("generate");
        c.execute("VACUUM ANALYZE logs").await.expect("analyze");
    });
    let schema: Value =
        serde_json::from_str(&h.request("schema", "{}").expect("schema")).expect("json");
    let hypertable = schema["storage"] == "hypertable";
    println!(
        "queries: {n} rows over 30 days, 20 projects, 50 modules, 6 levels, in a {} table; generated in {:.0} s",
        schema["storage"].as_str().unwrap_or("?"),
        start.elapsed().as_secs_f64()
    );
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let hour = 3_600_000_000_000i64;
    let cases: Vec<Case> = vec![
        (
            "newest 100 by project",
            "query",
            Box::new(|i| json!({"project": format!("project-{}", i % 20), "limit": 100})),
        ),
        (
            "newest 100 by level",
            "query",
            Box::new(|i| json!({"level": i % 6, "limit": 100})),
        ),
        (
            "newest 100 by module",
            "query",
            Box::new(|i| json!({"module": format!("module-{}", i % 50), "limit": 100})),
        ),
        (
            "newest 100 in a one-hour range",
            "query",
            Box::new(move |i| {
                let from = now_ns - 30 * 24 * hour + ((i as i64 * 7919) % (29 * 24)) * hour;
                json!({"from": from, "to": from + hour, "limit": 100})
            }),
        ),
        (
            "stats of one project over a day",
            "stats",
            Box::new(move |i| {
                let from = now_ns - 30 * 24 * hour + ((i as i64 * 7919) % (29 * 24)) * hour;
                json!({"project": format!("project-{}", i % 20), "from": from, "to": from + 24 * hour})
            }),
        ),
    ];
    let size = |h: &Harness| {
        let sql = if hypertable {
            "SELECT pg_size_pretty(hypertable_size('logs'))"
        } else {
            "SELECT pg_size_pretty(pg_total_relation_size('logs'))"
        };
        let v: Value = serde_json::from_str(
            &h.request("sql", &json!({ "query": sql }).to_string())
                .expect("size"),
        )
        .expect("json");
        v["rows"][0][0].as_str().unwrap_or("?").to_owned()
    };
    println!("  on disk, with indexes: {}", size(&h));
    let measure = |h: &Harness| {
        for (name, method, body) in &cases {
            for i in 0..20 {
                h.request(method, &body(i).to_string()).expect("warm-up");
            }
            let mut times = Vec::with_capacity(samples);
            for i in 0..samples {
                let b = body(i).to_string();
                let t = Instant::now();
                let answer = h.request(method, &b).expect("request");
                times.push(t.elapsed());
                assert!(answer.len() > 100);
            }
            let (p50, p95) = p95(times);
            println!(
                "  {name:<32} p50 {:>7.2} ms   p95 {:>7.2} ms   (goal p95 < 20 ms)",
                p50.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3
            );
        }
    };
    measure(&h);
    let plans = [
        "SELECT id FROM logs WHERE project = 'project-7' ORDER BY ts DESC, id DESC LIMIT 101",
        "SELECT id FROM logs WHERE level = 4 ORDER BY ts DESC, id DESC LIMIT 101",
        "SELECT id FROM logs WHERE module = 'module-33' ORDER BY ts DESC, id DESC LIMIT 101",
        "SELECT id FROM logs WHERE ts >= now() - interval '15 days' AND ts < now() - interval '15 days' + interval '1 hour' ORDER BY ts DESC, id DESC LIMIT 101",
    ];
    for q in plans {
        let answer = h
            .request(
                "sql",
                &json!({"query": format!("EXPLAIN (ANALYZE, BUFFERS) {q}")}).to_string(),
            )
            .expect("explain");
        let v: Value = serde_json::from_str(&answer).expect("json");
        println!("\n  {q}");
        for row in v["rows"].as_array().into_iter().flatten() {
            println!("    {}", row[0].as_str().unwrap_or_default());
        }
    }
    if hypertable {
        let start = Instant::now();
        rt.block_on(async {
            let mut c = PgConnection::connect(&url).await.expect("connect");
            c.execute(
                "SELECT count(compress_chunk(c, if_not_compressed => true))
                 FROM show_chunks('logs', older_than => interval '1 day') c",
            )
            .await
            .expect("compress");
            c.execute("ANALYZE logs").await.expect("analyze");
        });
        println!(
            "\n  compressed every chunk older than a day in {:.0} s; on disk, with indexes: {}",
            start.elapsed().as_secs_f64(),
            size(&h)
        );
        measure(&h);
    }
    drop(h);
    admin(rt, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = arg("--rows", 200_000) as usize;
    let query_rows = arg("--query-rows", 2_000_000);
    let samples = arg("--samples", 200) as usize;
    if rows > 0 {
        if has_timescaledb(&rt) {
            ingest(&rt, rows, "");
            ingest(&rt, rows, "timescale = \"off\"");
        } else {
            ingest(&rt, rows, "");
        }
    }
    if query_rows > 0 {
        queries(&rt, query_rows, samples.max(20));
    }
}
