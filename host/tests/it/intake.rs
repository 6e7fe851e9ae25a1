//! The intake against the real RabbitMQ: end to end, dead letters, held acks, reconnects.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use logrelay::config::Settings;
use logrelay::engine::Engine;
use logrelay::intake::{self, IntakeStats};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::{
    StartAppOnDrop, declare, delete, logs, options, parse_config, publish, rabbit, rabbitmqctl,
    read_ids, ready, settings_for, unique, wait_until,
};
use crate::common::{broker_exclusive, broker_shared};

/// An in-process host: engine + intake on the test's runtime.
pub struct Host {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    pub stats: Arc<IntakeStats>,
}

/// Runs an in-process host (engine + intake) with the given plugins.toml text.
pub fn start_host(settings: Settings, plugins: &str) -> Host {
    let (engine, completions) =
        Engine::start(&parse_config(plugins), options()).expect("engine starts");
    let (stop, stop_rx) = watch::channel(false);
    let stats = Arc::new(IntakeStats::default());
    let settings = Arc::new(settings);
    let (s, e, st) = (settings.clone(), engine.clone(), stats.clone());
    tokio::spawn(engine.clone().watchdog());
    let task = tokio::spawn(async move {
        intake::run(s, e.clone(), completions, stop_rx, st).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        tokio::task::spawn_blocking(move || e.shutdown(deadline))
            .await
            .expect("shutdown");
    });
    Host { stop, task, stats }
}

impl Host {
    /// Stops it as SIGTERM would, within 20 s.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the host stops within 20 s")
            .expect("host task");
    }
}

fn fixture(ids: &Path, extra: &str) -> String {
    format!("[plugins.sink]\ntype = \"fixture\"\nconfig = {{ record_to = {ids:?}{extra} }}\n")
}

async fn wait_ids(ids: &Path, n: usize, secs: u64) -> Vec<String> {
    let ids = ids.to_path_buf();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(secs), || {
            read_ids(&ids)
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                >= n
        });
        read_ids(&ids)
    })
    .await
    .expect("wait")
}

fn assert_all_present(got: &[String], prefix: &str, n: usize) {
    let set: std::collections::HashSet<&str> = got.iter().map(String::as_str).collect();
    let missing: Vec<String> = (0..n)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|id| !set.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} record(s) lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_objects_arrays_and_json_lines_are_delivered_and_acked() {
    let _broker = broker_shared().await;
    let queue = unique("e2e");
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let flags = dir.path().join("flags.txt");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let host = start_host(
        settings_for(&queue, &[]),
        &fixture(&ids, &format!(", flags_to = {flags:?}")),
    );
    let singles = logs("obj", 300);
    let array = format!("[{}]", logs("arr", 100).join(","));
    let lines = logs("line", 100).join("\n");
    publish(&ch, &queue, &singles).await;
    publish(&ch, &queue, &[array, lines]).await;
    // With a time of its own: no flag; without (and no AMQP timestamp): its receive time.
    let timed = r#"{"id":"timed","message":"m","timestamp":"2026-01-01T00:00:00Z"}"#;
    publish(&ch, &queue, &[timed.to_owned()]).await;
    let got = wait_ids(&ids, 501, 20).await;
    assert_all_present(&got, "obj", 300);
    assert_all_present(&got, "arr", 100);
    assert_all_present(&got, "line", 100);
    let flags = read_ids(&flags);
    assert!(flags.contains(&"timed 00".to_owned()), "{:?}", &flags[..]);
    assert!(flags.contains(&"obj-0 01".to_owned()), "{:?}", &flags[..5]);
    assert!(
        flags.contains(&"line-99 01".to_owned()),
        "{:?}",
        &flags[..5]
    );
    host.stop().await;
    assert_eq!(
        ready(&ch, &queue).await,
        0,
        "everything delivered was acked"
    );
    delete(&ch, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_goes_to_the_dead_letter_queue_with_its_reason() {
    let _broker = broker_shared().await;
    let queue = unique("dlq");
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let host = start_host(
        settings_for(&queue, &[("LOGRELAY_MAX_MESSAGE_BYTES", "2048")]),
        &fixture(&ids, ""),
    );
    let bad: Vec<String> = vec![
        "this is not json".into(),
        "42".into(),
        r#"{"level":"info"}"#.into(),
        r#"{"message":{"nested":true}}"#.into(),
        r#"{"message":"x","level":{"no":1}}"#.into(),
        format!(r#"{{"message":"{}"}}"#, "y".repeat(4000)),
        "{\"message\": \"truncated".into(),
    ];
    let mixed = r#"[{"id":"good-0","message":"fine"}, 7, {"id":"good-1","message":"also fine"}]"#
        .to_owned();
    publish(&ch, &queue, &bad).await;
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        Default::default(),
        &[0xff, 0xfe, b'{'],
        Default::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    publish(&ch, &queue, &[mixed]).await;
    let got = wait_ids(&ids, 2, 20).await;
    assert_eq!(got, vec!["good-0".to_owned(), "good-1".to_owned()]);
    let dead = format!("{queue}.dead");
    let expected = bad.len() + 2;
    let mut reasons = Vec::new();
    let start = Instant::now();
    while reasons.len() < expected && start.elapsed() < Duration::from_secs(20) {
        match ch
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
        {
            Some(msg) => {
                let headers = msg
                    .delivery
                    .properties
                    .headers()
                    .clone()
                    .unwrap_or_default();
                let reason = match headers.inner().get("x-logrelay-reason") {
                    Some(AMQPValue::LongString(s)) => s.to_string(),
                    other => panic!("dead letter without a reason header: {other:?}"),
                };
                let element = headers.inner().get("x-logrelay-element").cloned();
                reasons.push((reason, element));
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reasons.len(), expected, "{reasons:#?}");
    assert!(reasons.iter().all(|(r, _)| !r.is_empty()));
    assert!(
        reasons
            .iter()
            .any(|(_, e)| matches!(e, Some(AMQPValue::LongLongInt(1)))),
        "the bad array element is named: {reasons:#?}"
    );
    host.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_required_instance_holds_the_ack_and_nothing_is_lost() {
    let _broker = broker_shared().await;
    let queue = unique("hold");
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let flag = dir.path().join("failing");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let plugins = fixture(&ids, &format!(", fail_while_exists = {flag:?}"));
    let host = start_host(settings_for(&queue, &[]), &plugins);
    std::fs::write(&flag, "").expect("flag");
    publish(&ch, &queue, &logs("held", 50)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(read_ids(&ids).is_empty());
    // Stopping while the instance still fails leaves every message in the queue.
    host.stop().await;
    assert_eq!(
        ready(&ch, &queue).await,
        50,
        "unaccepted messages must stay in the queue"
    );
    std::fs::remove_file(&flag).expect("unflag");
    let host = start_host(settings_for(&queue, &[]), &plugins);
    let got = wait_ids(&ids, 50, 20).await;
    assert_all_present(&got, "held", 50);
    host.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_connections_are_reopened_and_nothing_is_lost() {
    let _broker = broker_exclusive().await;
    survives(
        Disruption::CloseConnections,
        "reconnect",
        "rc",
        1000,
        100,
        60,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_stopped_and_started_mid_stream_loses_nothing() {
    let _broker = broker_exclusive().await;
    survives(Disruption::StopApp, "stopapp", "sa", 600, 50, 90).await;
}

/// What happens to the broker while the host has deliveries in flight.
enum Disruption {
    /// Every connection is closed.
    CloseConnections,
    /// The broker application stops for 2 s and starts again.
    StopApp,
}

/// Publishes `n` logs with ids `<prefix>-<i>` to a host with a small prefetch, lets at least
/// `first` of them in, stalls the connector, disrupts the broker, and checks that the host
/// reconnects by itself and, released, delivers every log within `secs` and acks them all.
async fn survives(
    disruption: Disruption,
    queue_prefix: &str,
    prefix: &str,
    n: usize,
    first: usize,
    secs: u64,
) {
    let queue = unique(queue_prefix);
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let hold = dir.path().join("hold");
    let (conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let host = start_disrupted_host(&queue, &ids, &hold);
    publish(&ch, &queue, &logs(prefix, n)).await;
    drop((ch, conn));
    // Some records in, then the connector stalls (transient failures) so that deliveries are
    // in flight, unacknowledged, when the broker is disrupted: the test cannot pass by being
    // slow.
    wait_ids(&ids, first, 20).await;
    std::fs::write(&hold, "").expect("hold");
    match disruption {
        Disruption::CloseConnections => {
            rabbitmqctl(&["close_all_connections", "logrelay reconnect test"]);
        }
        Disruption::StopApp => {
            let guard = StartAppOnDrop;
            rabbitmqctl(&["stop_app"]);
            tokio::time::sleep(Duration::from_secs(2)).await;
            rabbitmqctl(&["start_app"]);
            drop(guard);
        }
    }
    wait_reconnected(&host).await;
    std::fs::remove_file(&hold).expect("release");
    let got = wait_ids(&ids, n, secs).await;
    assert_all_present(&got, prefix, n);
    let (_conn, ch) = rabbit().await;
    host.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

/// A host with a small prefetch and a connector that fails while `hold` exists.
fn start_disrupted_host(queue: &str, ids: &Path, hold: &Path) -> Host {
    let small = [
        ("LOGRELAY_PREFETCH", "50"),
        ("LOGRELAY_BATCH_MAX_RECORDS", "25"),
        ("LOGRELAY_RETRY_MAX_MS", "200"),
    ];
    start_host(
        settings_for(queue, &small),
        &fixture(
            ids,
            &format!(", sleep_ms = 20, fail_while_exists = {hold:?}"),
        ),
    )
}

/// Waits (bounded) until the host has consumed on a second connection.
async fn wait_reconnected(host: &Host) {
    let stats = host.stats.clone();
    let reconnected = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), || {
            stats.connections.load(std::sync::atomic::Ordering::Relaxed) >= 2
        })
    })
    .await
    .expect("wait");
    assert!(
        reconnected,
        "the host did not reconnect by itself within 60 s"
    );
}
