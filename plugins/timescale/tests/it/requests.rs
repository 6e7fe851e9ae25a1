//! The store's request API: query with filters and cursors, get, add, update, delete,
//! delete_by_filter, stats, sql.

use logrelay_plugin_api::store::{Ambiguous, TooMany};
use logrelay_plugin_api::{ErrorKind, Record};
use serde_json::{Value, json};

use crate::common::{T0, TestDb, count, ids, ok, pg_shared, records, request};

/// The expected ids newest first, from the same records filtered in Rust.
fn expect(all: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<String> {
    let mut v: Vec<&Record> = all.iter().filter(|r| keep(r)).collect();
    v.sort_by(|a, b| (b.timestamp_ns, &b.id).cmp(&(a.timestamp_ns, &a.id)));
    v.into_iter().map(|r| r.id.to_string()).collect()
}

fn refused(h: &logrelay_plugin_api::testing::Harness, method: &str, body: Value, needle: &str) {
    let err = request(h, method, body.clone()).expect_err(&format!("{method} {body} accepted"));
    assert_eq!(err.kind, ErrorKind::PERMANENT, "{err}");
    assert!(err.message.contains(needle), "{method} {body}: {err}");
}

#[test]
fn query_combines_filters() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("max_page_size = 1000");
    let all = records(0, 600);
    h.handle_batch(&all).expect("write");
    let ns = |i: i64| T0 + i * 1_000_000;
    let cases: Vec<(Value, Vec<String>)> = vec![
        (json!({"limit": 5}), expect(&all, |_| true)[..5].to_vec()),
        (
            json!({"project": "p1", "min_level": "error", "module": "m2", "limit": 1000}),
            expect(&all, |r| {
                r.project.as_str() == "p1" && r.level.0 >= 4 && r.module.as_str() == "m2"
            }),
        ),
        (
            json!({"projects": ["p0", "p2"], "level": "warn", "limit": 1000}),
            expect(&all, |r| r.project.as_str() != "p1" && r.level.0 == 3),
        ),
        (
            json!({"from": ns(100), "to": "2023-11-14T22:13:20.200Z", "modules": ["m1", "m3"], "limit": 1000}),
            expect(&all, |r| {
                (ns(100)..ns(200)).contains(&r.timestamp_ns)
                    && matches!(r.module.as_str(), "m1" | "m3")
            }),
        ),
        (
            json!({"text": "NUMBER 12", "level": 0, "limit": 1000}),
            expect(&all, |r| r.message.contains("number 12") && r.level.0 == 0),
        ),
        (
            json!({"ids": ["r000001", "r000002", "nope"]}),
            vec!["r000002".to_owned(), "r000001".to_owned()],
        ),
        (json!({"text": "100%_"}), vec![]),
    ];
    assert_eq!(T0 + 200_000_000, 1_700_000_000_200_000_000);
    for (body, expected) in cases {
        let answer = ok(&h, "query", body.clone());
        assert_eq!(ids(&answer), expected, "{body}");
        assert!(
            !expected.is_empty() || body["text"] == "100%_",
            "{body} matches something"
        );
    }
    // The page size is capped.
    let capped = db.start("max_page_size = 50");
    assert_eq!(
        ids(&ok(&capped, "query", json!({"limit": 10_000}))).len(),
        50
    );
    assert_eq!(ids(&ok(&capped, "query", json!({}))).len(), 50);
    let r = &ok(&h, "query", json!({"limit": 1}))["records"][0];
    assert_eq!(r["id"], "r000599");
    assert_eq!(r["timestamp"], "2023-11-14T22:13:20.599000Z");
    assert_eq!(r["project"], "p2");
    // Bad input names the field.
    refused(&h, "query", json!({"levle": 1}), "levle");
    refused(&h, "query", json!({"level": "loud"}), "`level`");
    refused(&h, "query", json!({"min_level": 9}), "`min_level`");
    refused(&h, "query", json!({"from": "yesterday"}), "`from`");
    // from == to, and to before from: empty ranges, not errors.
    assert_eq!(
        ids(&ok(&h, "query", json!({"from": ns(5), "to": ns(5)}))).len(),
        0
    );
    assert_eq!(
        ids(&ok(&h, "query", json!({"from": ns(5), "to": ns(1)}))).len(),
        0
    );
    // A cursor before all time: past every record.
    assert_eq!(
        ids(&ok(&h, "query", json!({"cursor": "-999999999999999999:x"}))).len(),
        0
    );
    refused(&h, "query", json!({"cursor": "x"}), "`cursor`");
    refused(&h, "query", json!({"project": []}), "`project`");
    refused(&h, "query", json!({"all": true}), "`all`");
    refused(&h, "query", json!({"limit": "ten"}), "limit");
    refused(&h, "frobnicate", json!({}), "unknown method");
}

#[test]
fn pagination_has_no_gaps_or_duplicates_while_inserting() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let original = records(0, 250);
    h.handle_batch(&original).expect("write");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut newer = 1000;
    for page in 0.. {
        assert!(page < 20, "paging does not end");
        let body = match &cursor {
            Some(c) => json!({"limit": 40, "cursor": c}),
            None => json!({"limit": 40}),
        };
        let answer = ok(&h, "query", body);
        seen.extend(ids(&answer));
        // Newer records arrive while the reader pages through older ones.
        h.handle_batch(&records(newer, 7)).expect("write newer");
        newer += 7;
        match answer["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // The first page was taken before any newer record: it and every page after hold exactly
    // the original records, newest first.
    assert_eq!(seen, expect(&original, |_| true));
    // Pages under a filter too.
    let mut seen = Vec::new();
    let mut body = json!({"project": "p1", "limit": 9});
    loop {
        let answer = ok(&h, "query", body.clone());
        seen.extend(ids(&answer));
        match answer["next"].as_str() {
            Some(c) => body["cursor"] = json!(c),
            None => break,
        }
    }
    let everything: Vec<Record> = original
        .iter()
        .cloned()
        .chain((1000..newer).flat_map(|i| records(i, 1)))
        .collect();
    assert_eq!(seen, expect(&everything, |r| r.project.as_str() == "p1"));
}

#[test]
fn get_add_update_delete() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let added = ok(
        &h,
        "add",
        json!({"records": [
            {"id": "a1", "timestamp": "2024-05-01T12:00:00Z", "level": "error", "project": "shop",
             "module": "cart", "message": "boom", "attributes": {"user": "u1"}},
            {"project": "shop", "message": "generated id, now, info"}
        ]}),
    );
    assert_eq!(added["inserted"], 2);
    let generated = added["ids"][1].as_str().expect("generated id").to_owned();
    assert_eq!(
        ok(
            &h,
            "add",
            json!({"records": [{"id": "a1", "timestamp": "2024-05-01T12:00:00Z", "project": "shop", "message": "again"}]})
        )["inserted"],
        0
    );
    let a1 = ok(&h, "get", json!({"id": "a1"}));
    assert_eq!(a1["level"], "error");
    assert_eq!(a1["timestamp"], "2024-05-01T12:00:00.000000Z");
    assert_eq!(a1["attributes"], json!({"user": "u1"}));
    assert_eq!(ok(&h, "get", json!({"id": generated}))["level"], "info");

    refused(
        &h,
        "add",
        json!({"records": [{"project": "p"}]}),
        "records[0]",
    );
    refused(
        &h,
        "add",
        json!({"records": [{"project": "p", "message": "x", "level": "loud"}]}),
        "records[0].level",
    );
    refused(
        &h,
        "add",
        json!({"records": [{"project": "p", "message": "a\u{0}b"}]}),
        "records[0]",
    );

    let updated = ok(
        &h,
        "update",
        json!({"id": "a1", "level": "warning", "message": "boom (handled)", "merge_attributes": {"ticket": 7}}),
    );
    assert_eq!(updated["updated"], 1);
    let a1 = ok(&h, "get", json!({"id": "a1"}));
    assert_eq!(a1["level"], "warning");
    assert_eq!(a1["message"], "boom (handled)");
    assert_eq!(a1["attributes"], json!({"user": "u1", "ticket": 7}));
    ok(
        &h,
        "update",
        json!({"id": "a1", "attributes": {"only": true}, "project": "shop2", "module": "pay"}),
    );
    let a1 = ok(&h, "get", json!({"id": "a1"}));
    assert_eq!(
        (
            a1["project"].clone(),
            a1["module"].clone(),
            a1["attributes"].clone()
        ),
        (json!("shop2"), json!("pay"), json!({"only": true}))
    );

    let err = request(&h, "update", json!({"id": "missing", "level": 1})).expect_err("missing");
    assert!(err.message.starts_with("not found:"), "{err}");
    let err = request(&h, "get", json!({"id": "missing"})).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert!(err.message.starts_with("not found:"), "{err}");
    // Nothing to change: the record as it is.
    let same = ok(&h, "update", json!({"id": "a1"}));
    assert_eq!(
        (same["updated"].as_u64(), &same["record"]["project"]),
        (Some(0), &json!("shop2"))
    );
    // Both attribute forms: replaced, then merged into the replacement.
    let both = ok(
        &h,
        "update",
        json!({"id": "a1", "attributes": {"a": 1, "b": 1}, "merge_attributes": {"b": 2}}),
    );
    assert_eq!(both["record"]["attributes"], json!({"a": 1, "b": 2}));
    refused(&h, "get", json!({}), "id");

    assert_eq!(ok(&h, "delete", json!({"id": "a1"}))["deleted"], 1);
    assert_eq!(ok(&h, "delete", json!({"id": "a1"}))["deleted"], 0);
    assert_eq!(
        ok(&h, "delete", json!({"ids": [generated, "x"]}))["deleted"],
        1
    );
    refused(&h, "delete", json!({}), "`id`");
    assert_eq!(count(&h), 0);
}

/// Two rows with the same id (the key is (id, time)): a call naming only the id is refused with
/// the candidates and changes nothing; the time picks one.
#[test]
fn an_id_naming_several_rows_is_refused_with_the_candidates() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("dedupe_window = \"off\"");
    let mut twins = records(0, 2);
    twins[1].id = twins[0].id.clone();
    h.handle_batch(&twins).expect("write");
    let (old_ns, new_ns) = (twins[0].timestamp_ns, twins[1].timestamp_ns);
    assert_eq!(count(&h), 2);

    let candidates = |method: &str, body: Value| -> Ambiguous {
        let err =
            request(&h, method, body.clone()).expect_err(&format!("{method} {body} accepted"));
        assert_eq!(err.kind, ErrorKind::PERMANENT, "{err}");
        Ambiguous::from_message(&err.message)
            .unwrap_or_else(|| panic!("{method} {body}: not an ambiguity: {err}"))
    };
    let a = candidates("get", json!({"id": "r000000"}));
    assert_eq!(a.matched, 2);
    assert_eq!(
        a.candidates
            .iter()
            .map(|c| (c.id.as_str(), c.timestamp_ns))
            .collect::<Vec<_>>(),
        vec![("r000000", new_ns), ("r000000", old_ns)],
        "newest first"
    );
    assert!(a.error.contains("`timestamp`"), "{}", a.error);
    assert_eq!(
        candidates("update", json!({"id": "r000000", "message": "changed"})).matched,
        2
    );
    assert_eq!(candidates("delete", json!({"id": "r000000"})).matched, 2);
    let both = candidates("delete", json!({"ids": ["r000000", "nope"]}));
    assert_eq!(both.candidates.len(), 2);
    // Nothing was changed or deleted.
    assert_eq!(count(&h), 2);
    let page = ok(&h, "query", json!({"text": "changed"}));
    assert_eq!(ids(&page).len(), 0);

    // The time picks one: as `timestamp_ns` or as RFC 3339 text.
    let old = ok(&h, "get", json!({"id": "r000000", "timestamp": old_ns}));
    assert_eq!(old["timestamp_ns"], old_ns);
    let new = ok(
        &h,
        "get",
        json!({"id": "r000000", "timestamp": a.candidates[0].timestamp}),
    );
    assert_eq!(new["timestamp_ns"], new_ns);
    let updated = ok(
        &h,
        "update",
        json!({"id": "r000000", "timestamp": old_ns, "message": "changed"}),
    );
    assert_eq!(updated["updated"], 1);
    assert_eq!(updated["record"]["timestamp_ns"], old_ns);
    assert_eq!(updated["record"]["message"], "changed");
    assert_eq!(ids(&ok(&h, "query", json!({"text": "changed"}))).len(), 1);
    // A time that names no row of this id.
    let err = request(
        &h,
        "get",
        json!({"id": "r000000", "timestamp": old_ns + 1000}),
    )
    .expect_err("no such row");
    assert!(err.message.starts_with("not found:"), "{err}");
    assert_eq!(
        ok(&h, "delete", json!({"id": "r000000", "timestamp": old_ns}))["deleted"],
        1
    );
    // Now the id alone names one row again.
    assert_eq!(
        ok(&h, "get", json!({"id": "r000000"}))["timestamp_ns"],
        new_ns
    );
    assert_eq!(ok(&h, "delete", json!({"id": "r000000"}))["deleted"], 1);
    assert_eq!(count(&h), 0);
    refused(
        &h,
        "delete",
        json!({"ids": ["a"], "timestamp": 1}),
        "`timestamp`",
    );
}

/// `refuse_over_rows` / `refuse_over_percent`: a filter that matches more is refused with the
/// count, whatever the filter is (a range covering every stored time is no narrower than none).
#[test]
fn delete_by_filter_refuses_more_than_its_limits() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    h.handle_batch(&records(0, 300)).expect("write");
    let too_many = |body: Value| -> TooMany {
        let err =
            request(&h, "delete_by_filter", body.clone()).expect_err(&format!("{body} accepted"));
        TooMany::from_message(&err.message)
            .unwrap_or_else(|| panic!("{body}: not a refusal of too many rows: {err}"))
    };
    let t = too_many(json!({"from": 0, "refuse_over_rows": 299}));
    assert_eq!((t.matched, t.limit), (300, 299));
    assert!(t.error.contains("confirm"), "{}", t.error);
    let t = too_many(json!({"from": 0, "all": false, "refuse_over_percent": 50.0}));
    assert_eq!(t.matched, 300);
    assert_eq!(count(&h), 300);
    // One project is a third: under 50 %, over 20 %.
    too_many(json!({"project": "p1", "refuse_over_percent": 20.0}));
    let n = ok(
        &h,
        "delete_by_filter",
        json!({"project": "p1", "refuse_over_percent": 50.0, "refuse_over_rows": 100}),
    );
    assert_eq!(n["deleted"], 100);
    refused(
        &h,
        "delete_by_filter",
        json!({"project": "p1", "refuse_over_percent": 101.0}),
        "refuse_over_percent",
    );
    refused(
        &h,
        "query",
        json!({"refuse_over_rows": 1}),
        "does not apply",
    );
    assert_eq!(count(&h), 200);
}

#[test]
fn delete_by_filter_and_stats() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let all = records(0, 300);
    h.handle_batch(&all).expect("write");
    let stats = ok(&h, "stats", json!({}));
    assert_eq!(stats["total"], 300);
    assert_eq!(
        stats["by_level"],
        json!({"critical": 50, "debug": 50, "error": 50, "info": 50, "trace": 50, "warning": 50})
    );
    assert_eq!(
        stats["by_project"],
        json!({"p0": 100, "p1": 100, "p2": 100})
    );
    assert_eq!(stats["by_module"]["m0"], 60);
    assert_eq!(stats["oldest"], "2023-11-14T22:13:20.000000Z");
    let ranged = ok(
        &h,
        "stats",
        json!({"from": T0 + 100_000_000, "to": T0 + 160_000_000, "project": "p0"}),
    );
    assert_eq!(ranged["total"], 20);
    assert_eq!(ranged["from"], "2023-11-14T22:13:20.100000Z");
    refused(&h, "stats", json!({"limit": 3}), "`limit`");

    refused(&h, "delete_by_filter", json!({}), "\"all\": true");
    refused(&h, "delete_by_filter", json!({"cursor": "1:x"}), "`cursor`");
    let n = ok(
        &h,
        "delete_by_filter",
        json!({"project": "p1", "min_level": "error"}),
    );
    assert_eq!(n["deleted"], 50);
    assert_eq!(count(&h), 250);
    assert_eq!(
        ok(&h, "delete_by_filter", json!({"all": true}))["deleted"],
        250
    );
    assert_eq!(count(&h), 0);
}

#[test]
fn sql_is_read_only_unless_write_and_bounded() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("sql_timeout_ms = 300\nsql_max_rows = 50");
    h.handle_batch(&records(0, 120)).expect("write");
    let answer = ok(
        &h,
        "sql",
        json!({"query": "SELECT project, count(*) AS n, avg(level) AS avg_level, min(ts) AS first, bool_and(true) AS b, (array_agg(attributes ORDER BY ts))[1] AS a FROM logs GROUP BY project ORDER BY project"}),
    );
    assert_eq!(
        answer["columns"],
        json!(["project", "n", "avg_level", "first", "b", "a"])
    );
    assert_eq!(answer["types"][1], "int8");
    assert_eq!(
        answer["rows"][0],
        json!(["p0", 40, 1.5, "2023-11-14T22:13:20.000000Z", true, {"seq": 0}])
    );
    let empty = ok(
        &h,
        "sql",
        json!({"query": "SELECT id FROM logs WHERE false"}),
    );
    assert_eq!(
        (empty["columns"].clone(), empty["rows"].clone()),
        (json!(["id"]), json!([]))
    );
    let many = ok(&h, "sql", json!({"query": "SELECT id FROM logs"}));
    assert_eq!(many["rows"].as_array().map(Vec::len), Some(50));
    assert_eq!(many["truncated"], true);
    let few = ok(
        &h,
        "sql",
        json!({"query": "SELECT id FROM logs", "max_rows": 3}),
    );
    assert_eq!(few["rows"].as_array().map(Vec::len), Some(3));

    refused(&h, "sql", json!({"query": "DELETE FROM logs"}), "read-only");
    refused(
        &h,
        "sql",
        json!({"query": "COMMIT; DELETE FROM logs"}),
        "multiple commands",
    );
    refused(
        &h,
        "sql",
        json!({"query": "SELECT pg_sleep(3)"}),
        "statement timeout",
    );
    refused(&h, "sql", json!({"query": "SELEC 1"}), "syntax");
    refused(
        &h,
        "sql",
        json!({"query": "SELECT '127.0.0.1'::inet"}),
        "::text",
    );
    refused(&h, "sql", json!({"query": "  "}), "`query`");
    refused(&h, "sql", json!({"sql": "SELECT 1"}), "sql");
    assert_eq!(count(&h), 120);
    let deleted = ok(
        &h,
        "sql",
        json!({"query": "DELETE FROM logs WHERE project = 'p0'", "write": true}),
    );
    assert_eq!(deleted["rows_affected"], 40);
    assert_eq!(count(&h), 80);
    // The session is usable after a refused or truncated statement.
    assert_eq!(
        ok(
            &h,
            "sql",
            json!({"query": "SELECT 1::numeric(10,2) AS x, NULL::text AS y"})
        )["rows"],
        json!([[1.0, null]])
    );
}

/// `attr` (equality on top-level attributes, a string or the number/boolean it spells) and
/// `has` (key existence) combine with the other filters, page with cursors, and apply to
/// `stats` and `delete_by_filter` alike.
#[test]
fn attribute_filters() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    let all: Vec<Record> = records(0, 120)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let trace = if i % 10 == 0 {
                format!(r#","trace":"t{i}""#)
            } else {
                String::new()
            };
            r.with_attributes(format!(
                r#"{{"seq":{i},"user":"u{}","code":{},"flag":{},"tag":"{}"{trace}}}"#,
                i % 3,
                i % 4,
                i % 2 == 0,
                i % 4
            ))
        })
        .collect();
    h.handle_batch(&all).expect("write");
    let attr =
        |r: &Record| -> Value { serde_json::from_str(r.attributes.as_str()).expect("attributes") };
    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!({"attr": {"user": "u1"}, "limit": 1000}),
            expect(&all, |r| attr(r)["user"] == "u1"),
        ),
        // "2" matches the number 2 and the string "2".
        (
            json!({"attr": {"code": "2", "tag": "2"}, "limit": 1000}),
            expect(&all, |r| attr(r)["code"] == 2),
        ),
        (
            json!({"attr": {"flag": "true"}, "project": "p1", "limit": 1000}),
            expect(&all, |r| {
                attr(r)["flag"] == true && r.project.as_str() == "p1"
            }),
        ),
        (
            json!({"has": ["trace"], "limit": 1000}),
            expect(&all, |r| attr(r).get("trace").is_some()),
        ),
        (
            json!({"has": ["trace", "user"], "attr": {"user": "u0"}, "min_level": "info", "limit": 1000}),
            expect(&all, |r| {
                attr(r).get("trace").is_some() && attr(r)["user"] == "u0" && r.level.0 >= 2
            }),
        ),
        (json!({"attr": {"user": "nobody"}}), vec![]),
        (json!({"has": ["nothing"]}), vec![]),
    ];
    for (body, expected) in cases {
        assert_eq!(ids(&ok(&h, "query", body.clone())), expected, "{body}");
    }
    // Pages under an attribute filter.
    let mut seen = Vec::new();
    let mut body = json!({"attr": {"user": "u2"}, "limit": 7});
    loop {
        let answer = ok(&h, "query", body.clone());
        seen.extend(ids(&answer));
        match answer["next"].as_str() {
            Some(c) => body["cursor"] = json!(c),
            None => break,
        }
    }
    assert_eq!(seen, expect(&all, |r| attr(r)["user"] == "u2"));
    assert_eq!(ok(&h, "stats", json!({"has": ["trace"]}))["total"], 12);
    refused(&h, "query", json!({"has": []}), "`has`");
    refused(&h, "query", json!({"attr": {"": "x"}}), "`attr`");
    refused(&h, "query", json!({"attr": {"a": "x\u{0}"}}), "`attr`");
    let n = ok(
        &h,
        "delete_by_filter",
        json!({"attr": {"user": "u0"}, "has": ["trace"]}),
    );
    assert_eq!(n["deleted"], 4);
    assert_eq!(count(&h), 116);
}

/// Statistics taken when the table was small do not make a share look larger than it is:
/// before refusing by a share, the store counts the table.
#[test]
fn the_share_rule_counts_the_table_when_its_statistics_are_behind() {
    let _pg = pg_shared();
    let db = TestDb::new();
    let h = db.start("");
    h.handle_batch(&records(0, 10)).expect("write");
    ok(&h, "sql", json!({"query": "ANALYZE logs", "write": true}));
    h.handle_batch(&records(10, 290)).expect("write");
    // 100 of 300 rows is a third, under half, though the statistics say 10 rows.
    let n = ok(
        &h,
        "delete_by_filter",
        json!({"project": "p1", "refuse_over_percent": 50.0}),
    );
    assert_eq!(n["deleted"], 100);
    let err = request(
        &h,
        "delete_by_filter",
        json!({"min_level": "trace", "refuse_over_percent": 50.0}),
    )
    .expect_err("every row is more than half");
    let t = TooMany::from_message(&err.message).expect("too many");
    assert_eq!((t.matched, t.rows_estimate), (200, 200));
}
