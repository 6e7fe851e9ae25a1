//! Bad input gets a 4xx naming the parameter; SQL-looking input is only ever data; the OpenAPI
//! document lists the routes that exist and the docs page needs nothing from outside.

use serde_json::json;

use crate::common::{Api, enc, ids, records};

async fn refused(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<String>,
    status: u16,
    parameter: &str,
) {
    let (got, v) = api.send(method, path, body).await;
    assert_eq!(got, status, "{method} {path}: {v}");
    assert_eq!(
        v["parameter"].as_str(),
        Some(parameter),
        "{method} {path}: {v}"
    );
    let msg = v["error"].as_str().unwrap_or("");
    assert!(
        msg.contains(parameter) || parameter == "body",
        "{method} {path}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_gets_a_clear_4xx() {
    let mut api = Api::start("max_body_bytes = 1024\nmax_page_size = 500\n");
    api.dispatch(records(0, 20)).await;
    for (path, status, parameter) in [
        ("/log/by_dates?from=yesterday&to=2024-01-01", 400, "from"),
        ("/log/by_dates?from=2024-01-01&to=2024-13-45", 400, "to"),
        ("/log/by_dates?from=2024-01-01", 400, "to"),
        ("/log/by_dates?from=&to=2024-01-01", 400, "from"),
        ("/log?id=r000001&timestamp=2024-13-01", 400, "timestamp"),
        ("/log/by_level?level=%20warn", 400, "level"),
        ("/log/by_level?level=loud", 400, "level"),
        ("/log/by_level?level=6", 400, "level"),
        ("/log/by_level", 400, "level"),
        ("/log/by_count?count=abc", 400, "count"),
        ("/log/by_count?count=0", 400, "count"),
        ("/log/by_count?count=-5", 400, "count"),
        ("/log/by_count?count=99999999999999999999999", 400, "count"),
        ("/log/by_count?count=501", 400, "count"),
        ("/logs?limit=501", 400, "limit"),
        ("/logs?cursor=1234567890123456789:a", 400, "cursor"),
        ("/logs?limit=1.5", 400, "limit"),
        ("/logs?cursor=garbage", 400, "cursor"),
        ("/logs?min_level=", 400, "min_level"),
        ("/logs?levle=error", 400, "levle"),
        ("/logs?limit=1&limit=2", 400, "limit"),
        ("/log", 400, "id"),
        ("/log?id=a&color=red", 400, "color"),
        ("/logs/stream?limit=5", 400, "limit"),
    ] {
        refused(&api, "GET", path, None, status, parameter).await;
    }
    for (body, status, parameter) in [
        ("not json".to_owned(), 400, "body"),
        (String::new(), 400, "body"),
        ("[1]".to_owned(), 400, "body"),
        (json!({"level": "error"}).to_string(), 400, "id"),
        (
            json!({"id": "r000001", "level": "loud"}).to_string(),
            400,
            "level",
        ),
        (
            json!({"id": "r000001", "colour": "red"}).to_string(),
            400,
            "colour",
        ),
        (json!({"id": 5, "level": "error"}).to_string(), 400, "id"),
        (
            json!({"id": "r000001", "message": "a\u{0}b"}).to_string(),
            400,
            "message",
        ),
        (
            json!({"id": "r000001", "message": "x".repeat(2000)}).to_string(),
            413,
            "body",
        ),
    ] {
        refused(&api, "POST", "/log", Some(body), status, parameter).await;
    }
    for (body, status, parameter) in [
        (json!({"from": "soon"}).to_string(), 400, "from"),
        (json!({"project": []}).to_string(), 400, "project"),
        (json!({"level": "loud"}).to_string(), 400, "level"),
        (json!({"everything": true}).to_string(), 400, "everything"),
        (
            json!({"project": "x".repeat(5000)}).to_string(),
            413,
            "body",
        ),
    ] {
        refused(&api, "POST", "/logs/delete", Some(body), status, parameter).await;
    }
    // Empty ranges and times past the nanosecond range are answered, with nothing in them.
    for path in [
        "/log/by_dates?from=2024-01-02&to=2024-01-01",
        "/log/by_dates?from=9999-01-01T00:00:00Z&to=9999-01-02T00:00:00Z",
        "/logs?from=2023-11-14T22:13:20Z&to=2023-11-14T22:13:20Z",
        "/logs?cursor=-999999999999999999:x",
    ] {
        assert_eq!(api.ok(path).await["records"], json!([]), "{path}");
    }
    // A level or time written as an integral float is the integer (JSON Schema's reading).
    let body = json!({"id": "r000001", "level": 4.0});
    let (status, v) = api.send("POST", "/log", Some(body.to_string())).await;
    assert_eq!(
        (status, &v["record"]["level"]),
        (200, &json!("error")),
        "{v}"
    );
    let body = json!({"from": 0.0, "to": 1000.0});
    let (status, v) = api
        .send("POST", "/logs/delete", Some(body.to_string()))
        .await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(0)), "{v}");
    let body = json!({"from": 0.5});
    let (status, v) = api
        .send("POST", "/logs/delete", Some(body.to_string()))
        .await;
    assert_eq!(
        (status, v["parameter"].as_str()),
        (400, Some("from")),
        "{v}"
    );
    // A route that does not exist, a method a route does not take: JSON too.
    let (status, v) = api.get("/nothing").await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = api.send("PUT", "/log", None).await;
    assert_eq!(status, 405, "{v}");
    // Nothing was deleted by any of it.
    assert_eq!(api.ok("/logs/stats").await["total"], 20);
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_looking_input_is_only_data() {
    let mut api = Api::start("");
    let mut recs = records(0, 30);
    recs[7].message = "50% off_sale; DROP TABLE logs; --".into();
    recs[8].project = "p0' OR '1'='1".into();
    api.dispatch(recs).await;
    for q in [
        "project=p0' OR '1'='1' --",
        "module=m1'); DELETE FROM logs; --",
        "id=' OR 1=1 --",
        "text=%' OR '1'='1",
        "text=e_n",
    ] {
        let (k, v) = q.split_once('=').unwrap_or_default();
        let page = api.ok(&format!("/logs?{k}={}", enc(v))).await;
        assert!(ids(&page).is_empty(), "{q}: {page}");
    }
    // Literal `%` and `_` match only themselves; the quoted project is a project like others.
    let page = api.ok(&format!("/logs?text={}", enc("50% off_"))).await;
    assert_eq!(ids(&page), vec!["r000007"]);
    let page = api
        .ok(&format!("/logs?project={}", enc("p0' OR '1'='1")))
        .await;
    assert_eq!(ids(&page), vec!["r000008"]);
    let body = json!({"id": "r000001", "message": "'; DROP TABLE logs; --", "project": "x\"y"});
    let (status, v) = api.send("POST", "/log", Some(body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["record"]["message"], "'; DROP TABLE logs; --");
    let (status, v) = api
        .send(
            "POST",
            "/logs/delete",
            Some(json!({"project": "' OR 1=1 --"}).to_string()),
        )
        .await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(api.ok("/logs/stats").await["total"], 30);
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_the_routes_and_docs_are_self_contained() {
    let api = Api::start("");
    let doc = api.ok("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "{paths:?}");
    for (path, item) in paths {
        if path == "/logs/stream" {
            continue;
        }
        for method in item.as_object().expect("operations").keys() {
            let (status, v) = api.send(&method.to_uppercase(), path, None).await;
            let text = v.to_string();
            assert!(
                !(status == 404 && text.contains("no route")) && status != 405,
                "{method} {path} is documented but not routed: {status} {text}"
            );
        }
    }
    let html = api
        .client
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .expect("docs")
        .text()
        .await
        .expect("html");
    assert!(html.contains("openapi.json"));
    for external in ["src=\"http", "href=\"http", "url(http", "import("] {
        assert!(!html.contains(external), "the docs page loads `{external}`");
    }
    api.shutdown();
}
