//! Tokens: required on every route but /docs, wrong ones refused; without a token, reading only.

use serde_json::json;

use crate::common::{Api, TOKEN, records};

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_route_needs_it() {
    let mut api = Api::start("");
    api.dispatch(records(0, 10)).await;
    let paths = [
        ("GET", "/log?id=r000001"),
        ("GET", "/log/by_count?count=1"),
        ("GET", "/logs"),
        ("GET", "/logs/stats"),
        ("GET", "/openapi.json"),
        ("POST", "/log"),
        ("DELETE", "/log?id=r000001"),
        ("POST", "/logs/delete"),
        ("GET", "/logs/stream"),
        ("GET", "/no/such/route"),
    ];
    let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    for (method, path) in paths {
        for token in [
            None,
            Some(""),
            Some("nope"),
            Some(wrong.as_str()),
            Some(&TOKEN[1..]),
        ] {
            let (status, v) = api.send_as(token, method, path, None).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {v}");
            assert!(v["error"].is_string(), "{v}");
        }
    }
    // Another scheme is refused too.
    let res = api
        .client
        .get(format!("{}/logs", api.base))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("")),
        Some("Bearer")
    );
    // The right token works; the static docs page needs none (it holds no data).
    let (status, _) = api.get("/logs").await;
    assert_eq!(status, 200);
    let res = api
        .client
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(res.status().as_u16(), 200);
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_reading_works_and_changes_are_refused() {
    let mut api = Api::start_with(None, "");
    api.dispatch(records(0, 10)).await;
    assert_eq!(
        api.ok("/logs?limit=3").await["records"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(api.ok("/log?id=r000002").await["id"], "r000002");
    for (method, path, body) in [
        (
            "POST",
            "/log",
            Some(json!({"id": "r000002", "level": "error"}).to_string()),
        ),
        ("DELETE", "/log?id=r000002", None),
        (
            "POST",
            "/logs/delete",
            Some(json!({"all": true}).to_string()),
        ),
    ] {
        let (status, v) = api.send(method, path, body).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("LOGRELAY_API_TOKEN"),
            "{v}"
        );
    }
    // Nothing changed.
    assert_eq!(api.ok("/logs/stats").await["total"], 10);
    assert_eq!(api.ok("/log?id=r000002").await["level"], "info");
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let api = Api::start("");
    for (header, status) in [
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER {TOKEN}"), 200),
        (format!("BeArEr \t {TOKEN}"), 200),
        (format!("Bearer {TOKEN} "), 200),
        (format!("Bearer{TOKEN}"), 401),
        (format!("Basic {TOKEN}"), 401),
        ("bearer".to_owned(), 401),
    ] {
        let res = api
            .client
            .get(format!("{}/logs", api.base))
            .header("Authorization", &header)
            .send()
            .await
            .expect("answer");
        assert_eq!(res.status().as_u16(), status, "{header:?}");
    }
    api.shutdown();
}
