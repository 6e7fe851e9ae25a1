//! The live tail delivers records dispatched through the engine while a client is connected,
//! filtered; a missing store is refused at start naming the plugins.toml key.

use std::time::Duration;

use logrelay_plugin_api::Level;

use crate::common::{Api, TOKEN, TestDb, plugins_toml, records, start_engine};

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_delivers_new_records_with_the_filters() {
    let mut api = Api::start("stream_keep_alive_ms = 200\n");
    api.dispatch(records(0, 12)).await;
    let mut res = api
        .client
        .get(format!(
            "{}/logs/stream?min_level=error&project=p1",
            api.base
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("the stream answers");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let status: serde_json::Value =
        serde_json::from_str(&api.engine.request("api", "status", "").expect("status"))
            .expect("json");
    assert_eq!(status["stream_clients"], 1);
    // Dispatched after the client connected: only these can show up.
    let batch = records(100, 60);
    let want: Vec<String> = batch
        .iter()
        .filter(|r| r.level >= Level::ERROR && r.project.as_str() == "p1")
        .map(|r| r.id.to_string())
        .collect();
    assert!(!want.is_empty());
    api.dispatch(batch).await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !want.iter().all(|id| text.contains(&format!("id: {id}\n"))) {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("not every record arrived: {text}"))
            .expect("stream alive")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(events.len(), want.len(), "{text}");
    for line in events {
        let v: serde_json::Value = serde_json::from_str(&line["data: ".len()..]).expect("json");
        assert_eq!(v["project"], "p1");
        assert!(
            ["error", "critical"].contains(&v["level"].as_str().unwrap_or("")),
            "{v}"
        );
        assert!(v["attributes"]["seq"].is_number(), "{v}");
    }
    assert!(text.contains("event: log\n"), "{text}");
    drop(res);
    api.shutdown();
}

#[test]
fn a_missing_store_is_refused_at_start_naming_the_key() {
    let db = TestDb::new();
    let text = plugins_toml(&db, "store = \"nope\"\n");
    let err = match start_engine(&text) {
        Ok(_) => panic!("started without a store"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        err.contains("[plugins.api.config] store = \\\"nope\\\""),
        "{err}"
    );
    // The store itself is not a store of the API when the name points elsewhere.
    let text = plugins_toml(&db, "store = \"api\"\n");
    let err = match start_engine(&text) {
        Ok(_) => panic!("started with itself as the store"),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("not a store"), "{err}");
}
