//! In-process, with a fake store answering through the test host: conformance, and the 503
//! answers when the store is unreachable or not running.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use logrelay_http_api::HttpApi;
use logrelay_plugin_api::PluginError;
use logrelay_plugin_api::testing::{Harness, conformance};

#[test]
fn passes_conformance() {
    conformance::<HttpApi>("store = \"store\"\nlisten = \"127.0.0.1:0\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_unreachable_store_is_503() {
    // 0: answers; 1: transient (database down); 2: the instance is gone.
    let mode = Arc::new(AtomicU8::new(0));
    let m = mode.clone();
    let h = Harness::builder()
        .on_request(move |_, method, _| match m.load(Ordering::SeqCst) {
            0 if method == "query" => Ok(r#"{"records": [], "next": null}"#.to_owned()),
            0 => Ok("{}".to_owned()),
            1 => Err(PluginError::transient(
                "cannot reach PostgreSQL at 127.0.0.1:5432",
            )),
            _ => Err(PluginError::permanent(
                "no running instance named `store`; check [plugins.store] in plugins.toml",
            )),
        })
        .start::<HttpApi>("store = \"store\"\nlisten = \"127.0.0.1:0\"\n")
        .expect("starts");
    let status: serde_json::Value =
        serde_json::from_str(&h.request("status", "").expect("status")).expect("json");
    let base = format!("http://{}", status["listen"].as_str().expect("listen"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let get = |path: &str| {
        rt.block_on(async {
            let res = reqwest::get(format!("{base}{path}")).await.expect("answer");
            let status = res.status().as_u16();
            (status, res.text().await.expect("body"))
        })
    };
    assert_eq!(get("/logs").0, 200);
    mode.store(1, Ordering::SeqCst);
    let (status, body) = get("/logs");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("PostgreSQL"), "{body}");
    h.healthcheck()
        .expect("a store that is down is the store's health, not ours");
    mode.store(2, Ordering::SeqCst);
    let (status, body) = get("/log?id=x");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not running"), "{body}");
    let e = h
        .healthcheck()
        .expect_err("a missing store fails the health check");
    assert!(
        e.message
            .contains("[plugins.test.config] store = \"store\""),
        "{e}"
    );
    h.shutdown().expect("shutdown");
}
