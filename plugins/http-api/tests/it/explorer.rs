//! The log explorer's server side: the histogram route its chart reads, and the page itself
//! (served without a token, under a strict Content-Security-Policy; `ui = false` turns it off).
//! The page's behaviour in a browser is tested by `scripts/browser-test`.

use serde_json::Value;

use crate::common::{Api, T0, records};

fn total(h: &Value) -> u64 {
    h["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn histogram_buckets_count_by_level() {
    let mut api = Api::start("");
    // 90 records 1 ms apart; levels cycle through the six.
    api.dispatch(records(0, 90)).await;

    let to = T0 + 90_000_000;
    let h = api
        .ok(&format!("/logs/histogram?from={T0}&to={to}&buckets=9"))
        .await;
    assert_eq!(h["bucket_us"], 10_000, "{h}");
    assert_eq!(h["from_ns"], T0);
    assert_eq!(h["to_ns"], to);
    let buckets = h["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 9, "{h}");
    for (i, b) in buckets.iter().enumerate() {
        assert_eq!(b["index"], i as u64);
        assert_eq!(b["start_ns"], T0 + i as i64 * 10_000_000);
        assert_eq!(b["total"], 10, "{b}");
        let by_level: u64 = b["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_level, 10);
    }
    // Records 0..10: levels 0-5 then 0-3, so two of trace, debug, info and warning.
    assert_eq!(buckets[0]["counts"]["trace"], 2);
    assert_eq!(buckets[0]["counts"]["critical"], 1);

    // Filters apply; empty buckets are left out.
    let h = api
        .ok(&format!(
            "/logs/histogram?from={T0}&to={to}&buckets=3&project=p1&min_level=error"
        ))
        .await;
    assert_eq!(total(&h), 15, "{h}");
    let h = api
        .ok(&format!(
            "/logs/histogram?from={T0}&to={}&buckets=90",
            T0 + 900_000_000
        ))
        .await;
    assert_eq!(h["buckets"].as_array().unwrap().len(), 9, "{h}");
    assert_eq!(total(&h), 90);

    // Without a range: from the oldest match to the newest (plus 1 µs); 60 buckets by default.
    let h = api.ok("/logs/histogram?project=p1").await;
    assert_eq!(h["from_ns"], T0 + 1_000_000);
    assert_eq!(h["to_ns"], T0 + 88_001_000);
    assert_eq!(total(&h), 30);
    assert!(h["buckets"].as_array().unwrap().len() <= 60);

    // Nothing matches: no range, no buckets. An empty range: no buckets.
    let h = api.ok("/logs/histogram?project=none").await;
    assert!(h["from"].is_null() && h["buckets"].as_array().unwrap().is_empty());
    let h = api.ok(&format!("/logs/histogram?from={to}&to={T0}")).await;
    assert!(h["buckets"].as_array().unwrap().is_empty(), "{h}");

    for bad in [
        "buckets=0",
        "buckets=1001",
        "buckets=x",
        "limit=5",
        "cursor=1:a",
    ] {
        let (status, v) = api.get(&format!("/logs/histogram?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_is_served_without_a_token_under_a_strict_policy() {
    let api = Api::start("");
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let res = api
            .client
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let ct = h["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    // The data still needs the token.
    let (status, _) = api.send_as(None, "GET", "/logs", None).await;
    assert_eq!(status, 401);
    let (status, _) = api.send_as(None, "GET", "/ui/other.js", None).await;
    assert_eq!(status, 401);
    let doc = api.ok("/openapi.json").await;
    assert!(doc["paths"]["/"]["get"].is_object());
    assert!(doc["paths"]["/logs/histogram"]["get"].is_object());
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_false_serves_no_page() {
    let api = Api::start_with(None, "ui = false");
    let (status, _) = api.get("/").await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/ui/app.js").await;
    assert_eq!(status, 404);
    let doc = api.ok("/openapi.json").await;
    assert!(doc["paths"].get("/").is_none());
    // The docs page stays.
    let (status, _) = api.get("/docs").await;
    assert_eq!(status, 200);
    api.shutdown();
}
