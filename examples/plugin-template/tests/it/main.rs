//! In-process tests of the `template` connector through the harness: every call goes through the
//! same root module and ABI wrappers the `.so` exports, without loading a library.

use std::path::{Path, PathBuf};

use logrelay_plugin_api::testing::{Harness, conformance, sample_records};
use logrelay_plugin_api::{ErrorKind, Level, Record};
use logrelay_template::Template;
use serde_json::Value;

/// A fresh directory and the output path inside it.
fn output() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.jsonl");
    (dir, path)
}

/// The TOML config table for `path` plus `extra` lines.
fn config(path: &Path, extra: &str) -> String {
    format!("path = {:?}\n{extra}", path.display().to_string())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read output")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn passes_conformance() {
    let (_dir, path) = output();
    conformance::<Template>(&config(&path, "")).expect("conformance");
}

#[test]
fn writes_each_record_as_one_json_line_after_the_prefix() {
    let (_dir, path) = output();
    let h = Harness::start::<Template>(&config(&path, "prefix = \"shop: \"")).expect("start");
    h.handle_batch(&sample_records(3)).expect("accepted");
    h.shutdown().expect("shutdown");

    let lines = lines(&path);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (i, line) in lines.iter().enumerate() {
        let body = line
            .strip_prefix("shop: ")
            .unwrap_or_else(|| panic!("no prefix: {line}"));
        let v = json(body);
        assert_eq!(v["id"], format!("rec-{i}"));
        assert_eq!(v["level"], Level::ALL[i].name());
        assert_eq!(v["project"], format!("p{i}"));
        assert_eq!(v["module"], format!("m{i}"));
        assert_eq!(v["message"], format!("message number {i}"));
        assert_eq!(v["attributes"]["seq"], i);
        assert_eq!(
            v["timestamp_ns"],
            1_700_000_000_000_000_000i64 + i as i64 * 1_000_000
        );
    }
}

#[test]
fn refuses_unwritable_records_by_index_and_writes_the_rest() {
    let (_dir, path) = output();
    let h = Harness::start::<Template>(&config(&path, "max_line_bytes = 400")).expect("start");
    let mut batch = sample_records(4);
    batch[1] = Record::new("long", 0, Level::INFO, "p", "m", "x".repeat(500));
    batch[3] = batch[3].clone().with_attributes("[1, 2]");

    let err = h.handle_batch(&batch).expect_err("two records refused");
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(err.bad_records.as_slice(), &[1, 3]);
    // Each refused record has its own reason, which the host puts on its dead letter.
    let reasons = err.record_reasons();
    assert!(reasons.get(1).contains("record `long`"), "{err}");
    assert!(reasons.get(1).contains("max_line_bytes (400)"), "{err}");
    assert!(reasons.get(3).contains("not a JSON object"), "{err}");
    assert!(!reasons.get(3).contains("max_line_bytes"), "{err}");

    let ids: Vec<Value> = lines(&path).iter().map(|l| json(l)["id"].clone()).collect();
    assert_eq!(ids, ["rec-0", "rec-2"]);
    let stats = json(&h.request("stats", "").expect("stats"));
    assert_eq!(stats["lines"], 2);
    assert_eq!(stats["refused"], 2);
}

#[test]
fn appends_across_batches_and_restarts() {
    let (_dir, path) = output();
    let config = config(&path, "sync_each_batch = false");
    for _ in 0..2 {
        let h = Harness::start::<Template>(&config).expect("start");
        h.handle_batch(&sample_records(2)).expect("first batch");
        h.handle_batch(&sample_records(1)).expect("second batch");
        h.shutdown().expect("shutdown");
    }
    assert_eq!(lines(&path).len(), 6);
}

#[test]
fn answers_stats_and_refuses_other_requests() {
    let (_dir, path) = output();
    let h = Harness::start::<Template>(&config(&path, "")).expect("start");
    h.handle_batch(&sample_records(5)).expect("accepted");
    let stats = json(&h.request("stats", "").expect("stats"));
    assert_eq!(stats["lines"], 5);
    let on_disk = std::fs::metadata(&path).expect("metadata").len();
    assert_eq!(stats["bytes"], on_disk);

    let err = h.request("query", "{}").expect_err("unknown method");
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert!(err.message.contains("`query`"), "{err}");
}

#[test]
fn health_check_fails_once_the_file_is_gone() {
    let (_dir, path) = output();
    let h = Harness::start::<Template>(&config(&path, "")).expect("start");
    h.healthcheck().expect("healthy");
    std::fs::remove_file(&path).expect("remove");
    let err = h.healthcheck().expect_err("file gone");
    assert_eq!(err.kind, ErrorKind::TRANSIENT);
    assert!(err.message.contains("is gone"), "{err}");
}

#[test]
fn bad_config_is_a_config_error_that_names_the_option() {
    let (dir, path) = output();
    let cases = [
        (String::new(), "path"),
        (config(&path, "max_line_bytes = 10"), "max_line_bytes"),
        (config(&path, "prefix = \"a\\nb\""), "prefix"),
        (
            config(&path, "sync_each_batch = \"yes\""),
            "sync_each_batch",
        ),
        (config(&path, "prefx = \">\""), "prefx"),
        (
            config(&dir.path().join("missing/out.jsonl"), ""),
            "cannot open",
        ),
    ];
    for (config, needle) in cases {
        let err = Harness::start::<Template>(&config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {config}"));
        assert_eq!(err.kind, ErrorKind::CONFIG, "{config}: {err}");
        assert!(err.message.contains(needle), "{config}: {err}");
    }
}

#[test]
fn logs_reach_the_host() {
    let (_dir, path) = output();
    let h = Harness::start::<Template>(&config(&path, "")).expect("start");
    h.shutdown().expect("shutdown");
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|l| l.level == Level::INFO && l.message.starts_with("Appending JSON lines.")),
        "{logs:?}"
    );
}
