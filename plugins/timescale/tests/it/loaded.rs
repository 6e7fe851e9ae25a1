//! The real `.so`, loaded by the host's loader and driven by the host's engine.

use std::time::{Duration, Instant};

use logrelay::config::{Env, PluginsConfig};
use logrelay::engine::{Batch, DeliveryRef, Engine, EngineOptions};
use logrelay::loader::load_library;

use crate::common::{TestDb, pg_shared, plugin_dir, records};

// The test future runs on this test's thread (block_on): holding the std lock across its awaits
// only keeps the outage test out, as intended.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread")]
async fn the_library_loads_and_stores_through_the_engine() {
    let dir = plugin_dir();
    let lib = load_library(&dir.join("liblogrelay_timescale.so")).expect("the library loads");
    let m = lib.manifest();
    assert_eq!(m.type_name, "timescale");
    assert_eq!(m.capabilities, vec!["store".to_owned()]);
    assert!(lib.example_config().contains("LOGRELAY_DATABASE_URL"));

    let _pg = pg_shared();
    let db = TestDb::new();
    let env = Env::from_pairs([("LOGRELAY_DATABASE_URL", db.url.as_str())]);
    let config = PluginsConfig::parse(
        "[plugins.store]\ntype = \"timescale\"\nconfig = { url = \"${LOGRELAY_DATABASE_URL}\" }\n",
        &env,
        dir,
    )
    .unwrap_or_else(|p| panic!("config refused: {p:?}"));
    let options = EngineOptions {
        retry_max: Duration::from_millis(200),
        ..EngineOptions::default()
    };
    let (engine, mut done) = Engine::start(&config, options).expect("engine starts");
    let mut batch = records(0, 50);
    batch[9].message = "bad \0".into();
    engine
        .dispatch(Batch::unflagged(
            engine.next_batch_id(),
            batch,
            vec![DeliveryRef {
                generation: 1,
                tag: 1,
            }],
        ))
        .await;
    let c = tokio::time::timeout(Duration::from_secs(20), done.recv())
        .await
        .expect("completes")
        .expect("engine alive");
    let failed: Vec<u32> = c.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, vec![9], "{:?}", c.failed);
    assert!(c.failed[0].1.contains("NUL"), "{:?}", c.failed);
    let answer = engine
        .request("store", "stats", "{}")
        .expect("stats through the engine");
    let stats: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(stats["total"], 49);
    let page = engine
        .request("store", "query", r#"{"limit": 2, "project": "p0"}"#)
        .expect("query");
    assert!(page.contains("r000048"), "{page}");
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}
