//! The conformance corpus of logger shapes (`tests/fixtures/shapes`) through the real intake into
//! the real store: what each logger writes is stored with the right level, project, module,
//! message, time and attributes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use logrelay_plugin_api::Level;

use crate::common::{
    TestDb, broker_shared, declare_bound, delete, rabbit, settings_for, unique, wait_until,
};
use crate::intake::start_host;

/// One file of the corpus (its README says what the keys mean).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    body: String,
    #[serde(default = "default_routing_key")]
    routing_key: String,
    #[serde(default)]
    text_intake: Option<String>,
    expect: Vec<Expect>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    level: String,
    project: String,
    module: String,
    message: String,
    timestamp_ns: Option<i64>,
    attributes: Vec<String>,
}

fn default_routing_key() -> String {
    "corpus.shapes".to_owned()
}

fn corpus() -> Vec<(String, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes");
    let mut out: Vec<(String, Fixture)> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("fixture");
            let fixture: Fixture =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_stem().expect("name").to_string_lossy().into_owned(),
                fixture,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn shape_corpus_reaches_the_store() {
    let _broker = broker_shared().await;
    let db = TestDb::new();
    let queue = unique("shapes");
    let exchange = format!("{queue}-ex");
    let (_conn, ch) = rabbit().await;
    // Declared here as the host declares them, so that nothing published before the host has
    // bound its queue is lost.
    declare_bound(&ch, &queue, &exchange).await;
    // Text intake on: the corpus has a plain-text shape, and every other shape must decode the
    // same with it on.
    let host = start_host(
        settings_for(&queue, &[("LOGRELAY_TEXT_INTAKE", "lines")]),
        &format!(
            "[plugins.store]\ntype = \"timescale\"\nconfig = {{ url = {:?} }}\n",
            db.url()
        ),
    );
    let corpus = corpus();
    assert!(corpus.len() >= 19, "{} fixtures", corpus.len());
    let mut expected = 0;
    for (name, fixture) in &corpus {
        if let Some(mode) = &fixture.text_intake {
            assert_eq!(mode, "lines", "{name}: the test runs with text intake on");
        }
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                fixture.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                fixture.body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack(), "{name}");
        expected += fixture.expect.len();
    }
    let count = || db.query("SELECT count(*) FROM logs");
    assert!(
        wait_until(Duration::from_secs(60), || count() == expected.to_string()),
        "stored {} of {expected} records (dead-lettered: {})",
        count(),
        host.stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    // Every stored row, by (project, module, message).
    let rows = db.query(
        "SELECT json_build_object('level', level, 'project', project, 'module', module, \
         'message', message, 'ts_us', (extract(epoch FROM ts) * 1000000)::bigint, \
         'attributes', attributes) FROM logs",
    );
    let mut stored: BTreeMap<(String, String, String), serde_json::Value> = BTreeMap::new();
    for line in rows.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("a row as JSON");
        let key = (
            row["project"].as_str().expect("project").to_owned(),
            row["module"].as_str().expect("module").to_owned(),
            row["message"].as_str().expect("message").to_owned(),
        );
        assert!(
            stored.insert(key, row.clone()).is_none(),
            "stored twice: {row}"
        );
    }
    for (name, fixture) in &corpus {
        for (i, e) in fixture.expect.iter().enumerate() {
            let at = format!("{name} record {i}");
            let key = (e.project.clone(), e.module.clone(), e.message.clone());
            let row = stored
                .get(&key)
                .unwrap_or_else(|| panic!("{at}: no row {key:?} among {:#?}", stored.keys()));
            let level = Level::from_name(&e.level).expect("a level name");
            assert_eq!(row["level"], i64::from(level.0), "{at}: {row}");
            if let Some(ns) = e.timestamp_ns {
                // The store keeps microseconds.
                let us = row["ts_us"].as_i64().expect("ts");
                assert!(
                    (us - ns.div_euclid(1000)).abs() <= 1,
                    "{at}: {us} µs, expected {ns} ns"
                );
            }
            for attribute in &e.attributes {
                assert!(
                    row["attributes"].get(attribute).is_some(),
                    "{at}: no attribute {attribute} in {row}"
                );
            }
        }
    }
    // Exceptions and stack traces are kept whole, and queryable by name.
    assert_eq!(
        db.query("SELECT attributes->>'@x' FROM logs WHERE module = 'Shop.Api'"),
        "System.InvalidOperationException: Nothing to do\n   at Shop.Api.Run() in Api.cs:line 12"
    );
    assert_eq!(
        db.query(
            "SELECT attributes->'fields'->>'error' FROM logs WHERE message = 'shaving failed'"
        ),
        "razor blunt"
    );
    host.stop().await;
    delete(&ch, &queue).await;
}
