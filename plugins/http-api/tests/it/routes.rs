//! Every route and every combination of the `/logs` filters, pagination while logs arrive,
//! changes and deletes.

use std::collections::HashSet;

use logrelay_plugin_api::Level;
use serde_json::json;

use crate::common::{Api, T0, enc, expect, ids, records};

fn ms(i: i64) -> i64 {
    T0 + i * 1_000_000
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_route_and_filter_combination() {
    let mut api = Api::start("");
    let recs = records(0, 90);
    api.dispatch(recs.clone()).await;

    let one = api.ok("/log?id=r000005").await;
    assert_eq!(one["id"], "r000005");
    assert_eq!(one["level"], "critical");
    assert_eq!(one["project"], "p2");
    assert_eq!(one["attributes"]["seq"], 5);
    let (status, e) = api.get("/log?id=nope").await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("nope"), "{e}");

    let page = api.ok("/log/by_count?count=5").await;
    assert_eq!(ids(&page), expect(&recs, |r| r.timestamp_ns >= ms(85)));
    let next = page["next"].as_str().expect("next").to_owned();
    let page2 = api
        .ok(&format!("/log/by_count?count=5&cursor={}", enc(&next)))
        .await;
    assert_eq!(
        ids(&page2),
        expect(&recs, |r| r.timestamp_ns >= ms(80)
            && r.timestamp_ns < ms(85))
    );

    let from = "2023-11-14T22:13:20.010Z";
    let to = "2023-11-14T22:13:20.020Z";
    let page = api
        .ok(&format!("/log/by_dates?from={}&to={}", enc(from), enc(to)))
        .await;
    assert_eq!(
        ids(&page),
        expect(&recs, |r| r.timestamp_ns >= ms(10)
            && r.timestamp_ns < ms(20))
    );
    // Nanoseconds work too, and so does a `+` offset sent unencoded (read as a space).
    let page = api
        .ok(&format!("/log/by_dates?from={}&to={}", ms(10), ms(20)))
        .await;
    assert_eq!(ids(&page).len(), 10);
    let page = api
        .ok("/log/by_dates?from=2023-11-14T23:13:20.010+01:00&to=2023-11-14T23:13:20.020+01:00")
        .await;
    assert_eq!(ids(&page).len(), 10);

    let page = api.ok("/log/by_level?level=error").await;
    assert_eq!(ids(&page), expect(&recs, |r| r.level == Level::ERROR));
    let page = api.ok("/log/by_level?level=4&limit=3").await;
    assert_eq!(ids(&page).len(), 3);
    assert!(page["next"].is_string());
    let page = api.ok("/log/by_module?module=m1").await;
    assert_eq!(ids(&page), expect(&recs, |r| r.module.as_str() == "m1"));
    let page = api.ok("/log/by_project?project=p2").await;
    assert_eq!(ids(&page), expect(&recs, |r| r.project.as_str() == "p2"));

    // Every combination of the six filter groups on /logs, against the same filter in Rust.
    for mask in 0u32..64 {
        let mut q = vec!["limit=1000".to_owned()];
        let id_set = ["r000010", "r000011", "r000012", "r000040", "r000077"];
        if mask & 1 != 0 {
            for id in id_set {
                q.push(format!("id={id}"));
            }
        }
        if mask & 2 != 0 {
            q.push(format!("from={}&to={}", ms(5), ms(70)));
        }
        let (level_q, min) = if mask & 4 != 0 {
            if mask & 32 != 0 {
                ("level=warning", false)
            } else {
                ("min_level=warn", true)
            }
        } else {
            ("", false)
        };
        if mask & 4 != 0 {
            q.push(level_q.to_owned());
        }
        if mask & 8 != 0 {
            q.push("project=p1&project=p0".to_owned());
        }
        if mask & 16 != 0 {
            q.push("module=m2".to_owned());
        }
        if mask & 32 != 0 {
            q.push("text=NUMBER%201".to_owned());
        }
        let path = format!("/logs?{}", q.join("&"));
        let page = api.ok(&path).await;
        let want = expect(&recs, |r| {
            (mask & 1 == 0 || id_set.contains(&r.id.as_str()))
                && (mask & 2 == 0 || (r.timestamp_ns >= ms(5) && r.timestamp_ns < ms(70)))
                && (mask & 4 == 0
                    || if min {
                        r.level >= Level::WARNING
                    } else {
                        r.level == Level::WARNING
                    })
                && (mask & 8 == 0 || ["p0", "p1"].contains(&r.project.as_str()))
                && (mask & 16 == 0 || r.module.as_str() == "m2")
                && (mask & 32 == 0 || r.message.to_lowercase().contains("number 1"))
        });
        assert_eq!(ids(&page), want, "{path}");
        assert!(page["next"].is_null(), "{path}");
    }

    let stats = api.ok("/logs/stats?project=p0").await;
    assert_eq!(stats["total"], 30);
    let (status, _) = api.get("/logs/stats?limit=3").await;
    assert_eq!(status, 400);
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_have_no_gaps_or_duplicates_while_logs_arrive() {
    let mut api = Api::start("");
    let first = records(0, 300);
    api.dispatch(first.clone()).await;
    let want = expect(&first, |r| r.project.as_str() == "p0");
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arriving = 300;
    loop {
        let path = match &cursor {
            Some(c) => format!("/logs?project=p0&limit=7&cursor={}", enc(c)),
            None => "/logs?project=p0&limit=7".to_owned(),
        };
        let page = api.ok(&path).await;
        got.extend(ids(&page));
        // Newer logs arrive between pages: they sort before the cursor and never shift it.
        api.dispatch(records(arriving, 9)).await;
        arriving += 9;
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates");
    assert_eq!(got, want, "gaps or order");
    api.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn change_and_delete_records() {
    let mut api = Api::start("");
    let recs = records(0, 60);
    api.dispatch(recs.clone()).await;

    let body = json!({"id": "r000003", "level": "error", "message": "handled", "merge_attributes": {"ticket": 7}});
    let (status, v) = api.send("POST", "/log", Some(body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["updated"], 1);
    assert_eq!(v["record"]["level"], "error");
    assert_eq!(v["record"]["message"], "handled");
    assert_eq!(v["record"]["attributes"], json!({"seq": 3, "ticket": 7}));
    let again = api.ok("/log?id=r000003").await;
    assert_eq!(again["message"], "handled");

    let (status, v) = api
        .send(
            "POST",
            "/log",
            Some(json!({"id": "nope", "level": 1}).to_string()),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    // Nothing to change: the record as it is.
    let (status, v) = api
        .send("POST", "/log", Some(json!({"id": "r000003"}).to_string()))
        .await;
    assert_eq!((status, v["updated"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(v["record"]["message"], "handled");

    let (status, v) = api.send("DELETE", "/log?id=r000004", None).await;
    assert_eq!((status, v["deleted"].as_i64()), (200, Some(1)), "{v}");
    let (status, _) = api.send("DELETE", "/log?id=r000004", None).await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/log?id=r000004").await;
    assert_eq!(status, 404);

    // By filter: errors and worse of p1 (the filter in the body, never in the URL).
    let want = recs
        .iter()
        .filter(|r| {
            r.project.as_str() == "p1" && r.level >= Level::ERROR && r.id.as_str() != "r000004"
        })
        .count();
    let (status, v) = api
        .send(
            "POST",
            "/logs/delete",
            Some(json!({"project": "p1", "min_level": "error"}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"].as_u64(), Some(want as u64));
    let page = api.ok("/logs?project=p1&min_level=error").await;
    assert!(ids(&page).is_empty());
    let (status, v) = api
        .send("POST", "/logs/delete", Some("{}".to_owned()))
        .await;
    assert_eq!((status, v["parameter"].as_str()), (409, Some("all")), "{v}");
    let (status, v) = api
        .send(
            "POST",
            "/logs/delete",
            Some(json!({"all": true}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"].as_u64(), Some((60 - 1 - want) as u64));
    assert_eq!(api.ok("/logs/stats").await["total"], 0);
    api.shutdown();
}

/// `attr[<name>]=<value>` and `has=<name>` on the filter routes and in the delete body, with
/// the other filters and cursors.
#[tokio::test(flavor = "multi_thread")]
async fn attribute_filters() {
    let mut api = Api::start("");
    let recs: Vec<_> = records(0, 60)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let trace = if i % 10 == 0 {
                format!(r#","trace_id":"t{i}""#)
            } else {
                String::new()
            };
            r.with_attributes(format!(
                r#"{{"seq":{i},"user":"u{}","code":{}{trace}}}"#,
                i % 3,
                i % 4
            ))
        })
        .collect();
    api.dispatch(recs.clone()).await;
    let attr = |r: &logrelay_plugin_api::Record| -> serde_json::Value {
        serde_json::from_str(r.attributes.as_str()).expect("attributes")
    };
    let page = api.ok("/logs?attr[user]=u1&limit=1000").await;
    assert_eq!(ids(&page), expect(&recs, |r| attr(r)["user"] == "u1"));
    // Brackets percent-encoded, as clients send them; a number matches its text.
    let page = api.ok("/logs?attr%5Bcode%5D=2&project=p0&limit=1000").await;
    assert_eq!(
        ids(&page),
        expect(&recs, |r| attr(r)["code"] == 2
            && r.project.as_str() == "p0")
    );
    let page = api.ok("/logs?has=trace_id&limit=1000").await;
    assert_eq!(
        ids(&page),
        expect(&recs, |r| attr(r).get("trace_id").is_some())
    );
    assert_eq!(
        api.ok("/logs/stats?has=trace_id&attr[user]=u0").await["total"],
        2
    );
    // Cursors under an attribute filter.
    let mut got = Vec::new();
    let mut path = "/logs?attr[user]=u2&limit=4".to_owned();
    loop {
        let page = api.ok(&path).await;
        got.extend(ids(&page));
        match page["next"].as_str() {
            Some(n) => path = format!("/logs?attr[user]=u2&limit=4&cursor={}", enc(n)),
            None => break,
        }
    }
    assert_eq!(got, expect(&recs, |r| attr(r)["user"] == "u2"));
    for bad in [
        "/logs?attr=u1",
        "/logs?attr[]=x",
        "/logs?attr[a][b]=x",
        "/logs?has=",
        "/logs?attr[u]=1&attr[u]=2",
    ] {
        let (status, v) = api.get(bad).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(
            matches!(v["parameter"].as_str(), Some("attr" | "has")),
            "{bad}: {v}"
        );
    }
    let (status, v) = api
        .send(
            "POST",
            "/logs/delete",
            Some(json!({"attr": {"user": "u0"}, "has": ["trace_id"]}).to_string()),
        )
        .await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(api.ok("/logs/stats").await["total"], 58);
    api.shutdown();
}
