//! Dispatch through the real loaded `.so`: routing, retries, refusals, panics, hangs, back-pressure.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use logrelay::engine::{Batch, Completed, DeliveryRef, Engine};
use logrelay_plugin_api::RecordFlags;
use logrelay_plugin_api::testing::sample_records;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::{TestDb, next_completed, options, parse_config, read_ids, wait_until};

fn batch(engine: &Engine, n: usize) -> Batch {
    Batch::unflagged(
        engine.next_batch_id(),
        sample_records(n),
        vec![DeliveryRef {
            generation: 1,
            tag: 1,
        }],
    )
}

fn start(config: &str) -> (Arc<Engine>, UnboundedReceiver<Completed>) {
    Engine::start(&parse_config(config), options()).expect("engine starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_instance_gets_its_records_and_routes_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (all, errors) = (dir.path().join("all.txt"), dir.path().join("errors.txt"));
    let (engine, mut done) = start(&format!(
        r#"
[plugins.all]
type = "fixture"
config = {{ record_to = {all:?} }}
[plugins.errors]
type = "fixture"
route = {{ min_level = "error", projects = ["p1"] }}
config = {{ record_to = {errors:?} }}
"#
    ));
    engine.dispatch(batch(&engine, 30)).await;
    let c = next_completed(&mut done).await;
    assert!(c.failed.is_empty(), "{:?}", c.failed);
    assert_eq!(read_ids(&all).len(), 30);
    let expected: Vec<String> = sample_records(30)
        .into_iter()
        .filter(|r| r.level.0 >= 4 && r.project.as_str() == "p1")
        .map(|r| r.id.to_string())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(read_ids(&errors), expected);
    assert_eq!(engine.request("all", "count", "").expect("count"), "30");
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_until_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let (engine, mut done) = start(&format!(
        "[plugins.flaky]\ntype = \"fixture\"\nconfig = {{ record_to = {ids:?}, fail_first_batches = 3 }}\n"
    ));
    engine.dispatch(batch(&engine, 5)).await;
    let c = next_completed(&mut done).await;
    assert!(c.failed.is_empty());
    assert_eq!(read_ids(&ids).len(), 5);
    assert_eq!(
        engine.instances()[0].stats.retries.load(Ordering::Relaxed),
        3
    );
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_refusals_name_exactly_the_bad_records() {
    let (engine, mut done) =
        start("[plugins.picky]\ntype = \"fixture\"\nconfig = { reject_on = \"7\" }\n");
    engine.dispatch(batch(&engine, 30)).await;
    let c = next_completed(&mut done).await;
    let idx: Vec<u32> = c.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, vec![7, 17, 27]);
    assert!(
        c.failed[0].1.contains("refused by `picky`"),
        "{:?}",
        c.failed
    );
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_record_refused_by_the_store_carries_its_own_reason_on_one_line() {
    let db = TestDb::new();
    let (engine, mut done) = start(&format!(
        "[plugins.store]\ntype = \"timescale\"\nconfig = {{ url = {:?} }}\n",
        db.url()
    ));
    let mut records = sample_records(5);
    records[0].project = "sh\0p".into();
    records[2].message = "NUL \0 inside".into();
    records[3] = records[3].clone().with_attributes("not json");
    engine
        .dispatch(Batch::unflagged(
            engine.next_batch_id(),
            records,
            vec![DeliveryRef {
                generation: 1,
                tag: 1,
            }],
        ))
        .await;
    let c = next_completed(&mut done).await;
    let expected = [
        (0, "refused by `store`: `project` contains a NUL byte"),
        (2, "refused by `store`: `message` contains a NUL byte"),
        (3, "refused by `store`: `attributes` is not a JSON object"),
    ];
    assert_eq!(c.failed.len(), expected.len(), "{:?}", c.failed);
    for ((index, reason), (want_index, want)) in c.failed.iter().zip(expected) {
        assert_eq!(*index, want_index, "{:?}", c.failed);
        assert!(reason.starts_with(want), "record {index}: {reason}");
        assert!(!reason.contains(['\n', '\r']), "record {index}: {reason:?}");
    }
    let stats = &engine.instances()[0].stats;
    assert_eq!(stats.records_rejected.load(Ordering::Relaxed), 3);
    assert_eq!(stats.records_ok.load(Ordering::Relaxed), 2);
    let answer = engine.request("store", "stats", "{}").expect("stats");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("stats is JSON");
    assert_eq!(answer["total"], 2, "the good records are stored: {answer}");
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_instance_is_disabled_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let (engine, mut done) = start(&format!(
        r#"
[plugins.boom]
type = "fixture"
config = {{ panic_on = "number 3" }}
[plugins.steady]
type = "fixture"
config = {{ record_to = {ids:?} }}
"#
    ));
    engine.dispatch(batch(&engine, 5)).await;
    let c = next_completed(&mut done).await;
    assert_eq!(
        c.failed.len(),
        5,
        "records routed to the panicked instance cannot be accepted"
    );
    assert!(c.failed[0].1.contains("panicked"), "{:?}", c.failed[0]);
    let instances = engine.instances();
    let boom = &instances[0];
    assert!(boom.is_disabled());
    // The other instance keeps working, and later batches complete.
    engine.dispatch(batch(&engine, 2)).await;
    let c = next_completed(&mut done).await;
    assert_eq!(c.failed.len(), 2);
    assert!(c.failed[0].1.contains("disabled"), "{:?}", c.failed[0]);
    assert_eq!(read_ids(&ids).len(), 7);
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_call_hits_the_call_timeout() {
    let config = parse_config(
        "[plugins.stuck]\ntype = \"fixture\"\nconfig = { hang_on = \"number 1\", hang_ms = 3000 }\n",
    );
    let mut opts = options();
    opts.call_timeout = Duration::from_millis(300);
    let (engine, mut done) = Engine::start(&config, opts).expect("engine");
    tokio::spawn(engine.clone().watchdog());
    let started = Instant::now();
    engine.dispatch(batch(&engine, 2)).await;
    let c = next_completed(&mut done).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.failed.len(), 2);
    assert!(
        c.failed[0].1.contains("LOGRELAY_CALL_TIMEOUT_MS"),
        "{:?}",
        c.failed[0]
    );
    assert!(engine.instances()[0].is_disabled());
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_required_instance_back_pressures_and_a_best_effort_one_never_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let config = parse_config(&format!(
        r#"
[plugins.slow]
type = "fixture"
config = {{ sleep_ms = 200, record_to = {ids:?} }}
[plugins.lazy]
type = "fixture"
delivery = "best_effort"
config = {{ sleep_ms = 4000 }}
"#
    ));
    let mut opts = options();
    opts.channel_capacity = 1;
    // One batch (10 records) per call, so that every call costs its 200 ms.
    opts.coalesce_max_records = 10;
    let (engine, mut done) = Engine::start(&config, opts).expect("engine");
    let started = Instant::now();
    for _ in 0..5 {
        engine.dispatch(batch(&engine, 10)).await;
    }
    // 5 batches, 1 in the call + 1 queued: dispatch had to wait for at least 3 calls of 200 ms.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(550),
        "no back-pressure: {waited:?}"
    );
    for _ in 0..5 {
        assert!(next_completed(&mut done).await.failed.is_empty());
    }
    // The best-effort instance, far slower, neither held the batches nor was waited for.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    let instances = engine.instances();
    let lazy = &instances[0];
    assert_eq!(lazy.spec.name, "lazy");
    assert!(lazy.stats.records_dropped.load(Ordering::Relaxed) > 0);
    assert!(wait_until(Duration::from_secs(2), || read_ids(&ids).len() == 50));
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_instance_does_not_freeze_dispatch() {
    let config = parse_config(
        "[plugins.stuck]\ntype = \"fixture\"\nconfig = { hang_on = \"number\", hang_ms = 4000 }\n",
    );
    let mut opts = options();
    opts.call_timeout = Duration::from_millis(300);
    opts.channel_capacity = 1;
    let (engine, mut done) = Engine::start(&config, opts).expect("engine");
    tokio::spawn(engine.clone().watchdog());
    let started = Instant::now();
    for _ in 0..4 {
        engine.dispatch(batch(&engine, 2)).await;
    }
    for _ in 0..4 {
        assert_eq!(next_completed(&mut done).await.failed.len(), 2);
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    engine.shutdown(Instant::now() + Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_retrying_releases_dispatch_and_abandons_unaccepted_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("failing");
    let config = parse_config(&format!(
        "[plugins.down]\ntype = \"fixture\"\nconfig = {{ fail_while_exists = {flag:?} }}\n"
    ));
    let mut opts = options();
    opts.channel_capacity = 1;
    // One batch (3 records) per call: the worker must not take the queued batches into the call
    // it keeps retrying, or the channel would empty and dispatch would not be held back.
    opts.coalesce_max_records = 3;
    let (engine, _done) = Engine::start(&config, opts).expect("engine");
    std::fs::write(&flag, "").expect("flag");
    let feeder = engine.clone();
    let feeding = tokio::spawn(async move {
        for _ in 0..5 {
            feeder.dispatch(batch(&feeder, 3)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !feeding.is_finished(),
        "a failing required instance must hold dispatch back"
    );
    assert!(engine.pending_batches() >= 2);
    let stopping = Instant::now();
    engine.stop_retrying();
    tokio::time::timeout(Duration::from_secs(2), feeding)
        .await
        .expect("dispatch is released")
        .expect("feeder");
    assert!(
        engine
            .wait_idle(Instant::now() + Duration::from_secs(2))
            .await
    );
    assert!(stopping.elapsed() < Duration::from_secs(3));
    engine.shutdown(Instant::now() + Duration::from_secs(2));
}

/// `n` records with ids `<tag>-<i>`; the odd ones flagged `RECEIVE_TIME`.
fn unique_batch(engine: &Engine, tag: &str, n: usize) -> (Batch, Vec<String>) {
    let mut records = sample_records(n);
    let flags = (0..n)
        .map(|i| {
            if i % 2 == 1 {
                RecordFlags::RECEIVE_TIME
            } else {
                RecordFlags::NONE
            }
        })
        .collect::<Vec<_>>();
    let mut ids = Vec::with_capacity(n);
    for (i, r) in records.iter_mut().enumerate() {
        let id = format!("{tag}-{i}");
        r.id = id.as_str().into();
        ids.push(id);
    }
    (
        Batch::flagged(
            engine.next_batch_id(),
            records.into_iter().zip(flags),
            vec![DeliveryRef {
                generation: 1,
                tag: 1,
            }],
        ),
        ids,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_changes_and_removes_instances_under_load_losing_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let first = format!("[plugins.a]\ntype = \"fixture\"\nconfig = {{ record_to = {a:?} }}\n");
    let (engine, mut done) = start(&first);
    let second = parse_config(&format!(
        "[plugins.a]\ntype = \"fixture\"\nconfig = {{ record_to = {a:?}, sleep_ms = 2 }}\n[plugins.b]\ntype = \"fixture\"\nconfig = {{ record_to = {b:?} }}\n"
    ));
    let third = parse_config(&format!(
        "[plugins.b]\ntype = \"fixture\"\nconfig = {{ record_to = {b:?} }}\n"
    ));
    let feeder = engine.clone();
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(0u8);
    let feeding = tokio::spawn(async move {
        // (phase when dispatched, ids) for every batch.
        let mut sent = Vec::new();
        for i in 0..300 {
            let phase = *phase_rx.borrow();
            let (batch, ids) = unique_batch(&feeder, &format!("b{i}"), 10);
            feeder.dispatch(batch).await;
            sent.push((phase, ids));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reloader = engine.clone();
    let report = tokio::task::spawn_blocking(move || reloader.reload(&second))
        .await
        .expect("task")
        .expect("second config applies");
    assert_eq!(report.added, vec!["b".to_owned()]);
    assert_eq!(report.changed, vec!["a".to_owned()]);
    let _ = phase_tx.send(1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = phase_tx.send(2);
    let reloader = engine.clone();
    let report = tokio::task::spawn_blocking(move || reloader.reload(&third))
        .await
        .expect("task")
        .expect("third config applies");
    assert_eq!(report.removed, vec!["a".to_owned()]);
    let _ = phase_tx.send(3);
    let sent = feeding.await.expect("feeder");
    for _ in 0..sent.len() {
        let c = next_completed(&mut done).await;
        assert!(c.failed.is_empty(), "{:?}", c.failed);
    }
    engine.shutdown(Instant::now() + Duration::from_secs(5));
    let in_a: std::collections::HashSet<String> = read_ids(&a).into_iter().collect();
    let in_b: std::collections::HashSet<String> = read_ids(&b).into_iter().collect();
    for (phase, ids) in &sent {
        for id in ids {
            if *phase <= 1 {
                assert!(in_a.contains(id), "{id} (phase {phase}) lost for a");
            }
            if (1..=3).contains(phase) {
                assert!(in_b.contains(id), "{id} (phase {phase}) lost for b");
            }
        }
    }
    assert!(
        sent.iter().any(|(p, _)| *p == 3),
        "the test never reached its last phase"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_reload_is_refused_and_the_running_set_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.txt");
    let (engine, mut done) = start(&format!(
        "[plugins.a]\ntype = \"fixture\"\nconfig = {{ record_to = {a:?} }}\n"
    ));
    let bad = parse_config(&format!(
        "[plugins.a]\ntype = \"fixture\"\nconfig = {{ record_to = {a:?} }}\n[plugins.ghost]\ntype = \"nosuchconnector\"\n[plugins.sick]\ntype = \"fixture\"\nconfig = {{ unhealthy = true }}\n"
    ));
    let err = engine.reload(&bad).expect_err("refused");
    assert!(err.to_string().contains("[plugins.ghost]"), "{err}");
    let bad = parse_config(&format!(
        "[plugins.a]\ntype = \"fixture\"\nconfig = {{ record_to = {a:?} }}\n[plugins.sick]\ntype = \"fixture\"\nconfig = {{ unhealthy = true }}\n"
    ));
    let err = engine.reload(&bad).expect_err("refused");
    assert!(err.to_string().contains("health check failed"), "{err}");
    let names: Vec<String> = engine
        .instances()
        .iter()
        .map(|i| i.spec.name.clone())
        .collect();
    assert_eq!(names, vec!["a".to_owned()]);
    engine.dispatch(batch(&engine, 3)).await;
    assert!(next_completed(&mut done).await.failed.is_empty());
    assert_eq!(read_ids(&a).len(), 3);
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

/// Room for five batches of 10 in each instance's queue, calls of up to 25 records.
fn coalescing_options() -> logrelay::engine::EngineOptions {
    let mut opts = options();
    opts.channel_capacity = 8;
    opts.coalesce_max_records = 25;
    opts
}

/// Dispatches batches `a` to `e` of 10 records each, the last four while the instances are in
/// their first call (fixtures with `sleep_ms = 300`), and waits for all five to complete. Gives
/// each tag, its record ids and its completion, in dispatch order.
async fn behind_a_busy_call(
    engine: &Engine,
    done: &mut UnboundedReceiver<Completed>,
) -> Vec<(&'static str, Vec<String>, Completed)> {
    let mut sent = Vec::new();
    for (n, tag) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let (b, ids) = unique_batch(engine, tag, 10);
        sent.push((b.id, tag, ids));
        engine.dispatch(b).await;
        if n == 0 {
            // The workers are now in their first call; the next four batches queue behind it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut completed = Vec::new();
    for _ in 0..sent.len() {
        completed.push(next_completed(done).await);
    }
    completed.sort_by_key(|c| c.batch.id);
    sent.into_iter()
        .zip(completed)
        .map(|((id, tag, ids), c)| {
            assert_eq!(c.batch.id, id, "one completion per dispatched batch");
            (tag, ids, c)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_instance_gets_queued_batches_in_one_call_and_each_settles_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (all, p1) = (dir.path().join("all.txt"), dir.path().join("p1.txt"));
    let (all_flags, p1_flags) = (dir.path().join("all.flags"), dir.path().join("p1.flags"));
    let config = parse_config(&format!(
        r#"
[plugins.all]
type = "fixture"
config = {{ sleep_ms = 300, reject_on = "7", record_to = {all:?}, flags_to = {all_flags:?} }}
[plugins.p1]
type = "fixture"
route = {{ projects = ["p1"] }}
config = {{ sleep_ms = 300, reject_on = "4", record_to = {p1:?}, flags_to = {p1_flags:?} }}
"#
    ));
    let (engine, mut done) = Engine::start(&config, coalescing_options()).expect("engine");
    let completed = behind_a_busy_call(&engine, &mut done).await;
    let expected_all: Vec<String> = completed
        .iter()
        .flat_map(|(_, ids, _)| {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| *i != 7)
                .map(|(_, id)| id.clone())
        })
        .collect();
    for (_, _, c) in &completed {
        // Each batch gets back exactly its own refusals, in its own indices: record 4 (the 2nd
        // of the 3 records `p1` was given from each batch) and record 7.
        let failed: Vec<(u32, bool)> = c
            .failed
            .iter()
            .map(|(i, why)| (*i, why.contains(if *i == 4 { "`p1`" } else { "`all`" })))
            .collect();
        assert_eq!(failed, vec![(4, true), (7, true)], "{:?}", c.failed);
    }
    // `all`: batch a alone, then b+c (20 records; d would pass 25), then d+e.
    // `p1`: 3 records per batch, so b, c, d and e fit in one call.
    let instances = engine.instances();
    let coalesced: Vec<(String, u64)> = instances
        .iter()
        .map(|i| {
            (
                i.spec.name.clone(),
                i.stats.coalesced.load(Ordering::Relaxed),
            )
        })
        .collect();
    assert_eq!(
        coalesced,
        vec![("all".to_owned(), 2), ("p1".to_owned(), 1)],
        "calls that carried several batches"
    );
    assert_eq!(
        read_ids(&all),
        expected_all,
        "in order, refused records left out"
    );
    let p1_ids: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|t| [format!("{t}-1"), format!("{t}-7")])
        .collect();
    assert_eq!(read_ids(&p1), p1_ids);
    // Every record reached its instances with its own flags (odd ones `RECEIVE_TIME`), through
    // the coalesced calls and the route subsets alike.
    let flagged = |i: usize| if i % 2 == 1 { "01" } else { "00" };
    let all_expected: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|t| (0..10).map(move |i| format!("{t}-{i} {}", flagged(i))))
        .collect();
    assert_eq!(read_ids(&all_flags), all_expected);
    let p1_expected: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|t| [1, 4, 7].map(|i| format!("{t}-{i} {}", flagged(i))))
        .collect();
    assert_eq!(read_ids(&p1_flags), p1_expected);
    let all_stats = &instances[0].stats;
    assert_eq!(all_stats.records_ok.load(Ordering::Relaxed), 45);
    assert_eq!(all_stats.records_rejected.load(Ordering::Relaxed), 5);
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coalesced_call_refused_as_a_whole_is_retried_batch_by_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let config = parse_config(&format!(
        "[plugins.strict]\ntype = \"fixture\"\nconfig = {{ sleep_ms = 300, refuse_batch_with_id = \"c-3\", record_to = {ids:?} }}\n"
    ));
    let (engine, mut done) = Engine::start(&config, coalescing_options()).expect("engine");
    for (tag, _, c) in behind_a_busy_call(&engine, &mut done).await {
        if tag == "c" {
            assert_eq!(c.failed.len(), 10, "{:?}", c.failed);
            assert!(
                c.failed[0].1.contains("refused by `strict`"),
                "{:?}",
                c.failed
            );
        } else {
            // b shared a refused call with c: it was offered again alone and accepted.
            assert!(c.failed.is_empty(), "batch {tag}: {:?}", c.failed);
        }
    }
    let stored = read_ids(&ids);
    assert_eq!(stored.len(), 40, "{stored:?}");
    assert!(stored.iter().all(|id| !id.starts_with("c-")), "{stored:?}");
    assert!(
        engine.instances()[0]
            .stats
            .coalesced
            .load(Ordering::Relaxed)
            >= 1
    );
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}
