//! Every call addresses exactly what it names: an id that names several rows is answered 409
//! with the candidates and nothing changes; `timestamp` picks one. Deletes by filter that match
//! more than the configured limits need `"confirm": true`.

use serde_json::{Value, json};

use crate::common::{Api, records};

/// Stores a second row with the id of `r000001`, 1 s later, through the store's `sql`.
fn add_twin(api: &Api) -> (i64, i64) {
    let answer = api
        .engine
        .request(
            "store",
            "sql",
            &json!({
                "query": "INSERT INTO logs (id, ts, level, project, module, message, attributes)
                          SELECT id, ts + interval '1 second', level, project, module, 'twin', attributes
                          FROM logs WHERE id = 'r000001'
                          RETURNING (extract(epoch FROM ts - interval '1 second') * 1000000)::int8,
                                    (extract(epoch FROM ts) * 1000000)::int8",
                "write": true
            })
            .to_string(),
        )
        .expect("twin inserted");
    let v: Value = serde_json::from_str(&answer).expect("sql answer");
    let old = v["rows"][0][0].as_i64().expect("old time") * 1000;
    let new = v["rows"][0][1].as_i64().expect("new time") * 1000;
    (old, new)
}

fn candidate_times(v: &Value) -> Vec<i64> {
    v["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("no candidates in {v}"))
        .iter()
        .map(|c| {
            assert_eq!(c["id"], "r000001", "{c}");
            c["timestamp_ns"].as_i64().expect("timestamp_ns")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ambiguous_id_is_409_with_the_candidates_and_timestamp_picks_one() {
    let mut api = Api::start("");
    api.dispatch(records(0, 10)).await;
    let (old, new) = add_twin(&api);
    assert_eq!(api.ok("/logs/stats").await["total"], 11);

    let (status, v) = api.get("/log?id=r000001").await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(candidate_times(&v), vec![new, old], "newest first");
    assert_eq!(v["parameter"], "timestamp");
    assert!(
        v["error"].as_str().unwrap_or("").contains("timestamp"),
        "{v}"
    );
    let change = json!({"id": "r000001", "message": "changed"});
    let (status, v) = api.send("POST", "/log", Some(change.to_string())).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(candidate_times(&v), vec![new, old]);
    let (status, v) = api.send("DELETE", "/log?id=r000001", None).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(candidate_times(&v), vec![new, old]);
    // Nothing was changed or deleted.
    assert_eq!(api.ok("/logs/stats").await["total"], 11);
    assert_eq!(api.ok("/logs?text=changed").await["records"], json!([]));

    // `timestamp` picks one: the `timestamp_ns` the API returns, or RFC 3339 text.
    let one = api.ok(&format!("/log?id=r000001&timestamp={old}")).await;
    assert_eq!(
        (one["timestamp_ns"].as_i64(), &one["message"]),
        (Some(old), &json!("Message number 1"))
    );
    let text = one["timestamp"].as_str().expect("timestamp").to_owned();
    let same = api.ok(&format!("/log?id=r000001&timestamp={text}")).await;
    assert_eq!(same["timestamp_ns"].as_i64(), Some(old));
    let twin = api.ok(&format!("/log?id=r000001&timestamp={new}")).await;
    assert_eq!(twin["message"], "twin");
    let (status, v) = api
        .get(&format!("/log?id=r000001&timestamp={}", old + 1000))
        .await;
    assert_eq!(status, 404, "{v}");

    let change = json!({"id": "r000001", "timestamp": text, "message": "changed"});
    let (status, v) = api.send("POST", "/log", Some(change.to_string())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["updated"], 1);
    assert_eq!(v["record"]["timestamp_ns"].as_i64(), Some(old));
    assert_eq!(v["record"]["message"], "changed");
    assert_eq!(
        api.ok(&format!("/log?id=r000001&timestamp={new}")).await["message"],
        "twin"
    );

    let (status, v) = api
        .send("DELETE", &format!("/log?id=r000001&timestamp={new}"), None)
        .await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(1)), "{v}");
    // One row left: the id alone names it again.
    assert_eq!(api.ok("/log?id=r000001").await["message"], "changed");
    let (status, v) = api.get("/log?id=r000001&id=r000002").await;
    assert_eq!((status, v["parameter"].as_str()), (400, Some("id")), "{v}");
    let (status, v) = api.get("/log?id=r000001&timestamp=soon").await;
    assert_eq!(
        (status, v["parameter"].as_str()),
        (400, Some("timestamp")),
        "{v}"
    );
    assert_eq!(api.ok("/logs/stats").await["total"], 10);
    api.shutdown();
}

async fn delete(api: &Api, body: Value) -> (u16, Value) {
    api.send("POST", "/logs/delete", Some(body.to_string()))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_by_filter_past_the_limits_needs_confirm() {
    let mut api = Api::start("delete_confirm_rows = 20\ndelete_confirm_percent = 50\n");
    api.dispatch(records(0, 60)).await;

    // A range covering all time is no narrower than no filter at all.
    for body in [
        json!({"all": false, "from": 0}),
        json!({"from": "1970-01-01", "to": "2200-01-01"}),
        json!({"min_level": "trace"}),
    ] {
        let (status, v) = delete(&api, body.clone()).await;
        assert_eq!(
            (status, v["parameter"].as_str()),
            (409, Some("confirm")),
            "{body}: {v}"
        );
        assert_eq!(v["matched"], 60, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("\"confirm\": true"),
            "{v}"
        );
    }
    // 30 rows (warning and worse): more than 20 rows, not more than half.
    let (status, v) = delete(&api, json!({"min_level": "warning"})).await;
    assert_eq!((status, v["matched"].as_u64()), (409, Some(30)), "{v}");
    assert_eq!(api.ok("/logs/stats").await["total"], 60);
    // 20 rows (a third) is allowed; the answer counts them.
    let (status, v) = delete(&api, json!({"project": "p1"})).await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(20)), "{v}");
    // Confirmed, any count.
    let (status, v) = delete(&api, json!({"from": 0, "confirm": true})).await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(40)), "{v}");
    assert_eq!(api.ok("/logs/stats").await["total"], 0);
    api.shutdown();
}
