//! Writing, formats, rotation, archives, retention, restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use logrelay_files::{Config, Files, ManualClock};
use logrelay_plugin_api::testing::{check_example_config, conformance};
use logrelay_plugin_api::{ErrorKind, Level, Plugin as _, Record};

use crate::common::{TS, config, gunzip, ids, names, read, records, start};

#[test]
fn passes_conformance_and_the_example_config_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::<Files>(&config(dir.path(), "")).expect("conformance");
    check_example_config::<Files>().expect("example config");
}

#[test]
fn a_missing_directory_is_created_and_an_unusable_one_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("a/b/logs");
    let h = logrelay_plugin_api::testing::Harness::start::<Files>(&format!(
        "directory = \"{}\"",
        missing.display()
    ))
    .expect("a missing directory is created");
    h.handle_batch(&[one_record()]).expect("write");
    assert!(missing.is_dir(), "{} created", missing.display());
    drop(h);

    let file = tempfile::NamedTempFile::new().expect("temp file");
    let under_file = file.path().join("logs");
    let e = Harness_start_err(&format!("directory = \"{}\"", under_file.display()));
    assert_eq!(e.kind, ErrorKind::CONFIG);
    assert!(
        e.message.contains(&under_file.display().to_string())
            && e.message.contains("cannot be created"),
        "{e}"
    );
    let e = Harness_start_err(&format!("directory = \"{}\"", file.path().display()));
    assert_eq!(e.kind, ErrorKind::CONFIG);
    assert!(e.message.contains("is not a directory"), "{e}");
}

#[allow(non_snake_case)]
fn Harness_start_err(toml: &str) -> logrelay_plugin_api::PluginError {
    match logrelay_plugin_api::testing::Harness::start::<Files>(toml) {
        Ok(_) => panic!("started with {toml}"),
        Err(e) => e,
    }
}

fn one_record() -> Record {
    Record::new(
        "r1",
        TS,
        Level::WARNING,
        "shop",
        "cart",
        "paid \"ok\"\nnext",
    )
    .with_attributes(r#"{"user":"ann","n":5,"tags":["a","b"],"note":"x y"}"#)
}

#[test]
fn every_format_byte_for_byte() {
    let cases = [
        (
            "",
            "{\"timestamp\":\"2023-11-14T22:13:20.123+00:00\",\"level\":\"WARNING\",\"project\":\"shop\",\
             \"module\":\"cart\",\"message\":\"paid \\\"ok\\\"\\nnext\",\"id\":\"r1\",\
             \"attributes\":{\"user\":\"ann\",\"n\":5,\"tags\":[\"a\",\"b\"],\"note\":\"x y\"}}\n",
        ),
        (
            "format = \"logfmt\"",
            "timestamp=2023-11-14T22:13:20.123+00:00 level=WARNING project=shop module=cart \
             message=\"paid \\\"ok\\\"\\nnext\" id=r1 user=ann n=5 tags=\"[\\\"a\\\",\\\"b\\\"]\" note=\"x y\"\n",
        ),
        (
            "format = \"text\"\n[layout]\nfields = [\"timestamp\", \"level\", \"message\", \"attr.user\", \"attributes\"]\nseparator = \" | \"",
            "2023-11-14T22:13:20.123+00:00 | WARNING | paid \"ok\"\\nnext | ann | n=5 tags=[\"a\",\"b\"] note=\"x y\"\n",
        ),
        (
            "[layout]\nfields = [\"timestamp\", \"level\", \"message\", \"attr.user\", \"attributes\"]\nhidden = [\"attr.note\"]\ntimestamp_format = \"%s%.9f\"\nlevel_case = \"lower\"",
            "{\"timestamp\":\"1700000000.123456789\",\"level\":\"warning\",\"message\":\"paid \\\"ok\\\"\\nnext\",\
             \"user\":\"ann\",\"attributes\":{\"n\":5,\"tags\":[\"a\",\"b\"]}}\n",
        ),
    ];
    for (extra, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = start(dir.path(), extra);
        h.handle_batch(&[one_record()]).expect("written");
        h.shutdown().expect("shutdown");
        let text = read(&dir.path().join("logrelay.log"));
        assert_eq!(text, expected, "with {extra:?}");
        if !extra.contains("text") && !extra.contains("logfmt") {
            let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("valid JSON");
            assert_eq!(v["message"], "paid \"ok\"\nnext");
        }
    }
}

#[test]
fn one_instance_splits_by_project_and_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start(dir.path(), "file_name = \"{project}.{module}.log\"");
    let mut batch = records("a", 6);
    batch[5].project = "../evil".into();
    h.handle_batch(&batch).expect("written");
    assert_eq!(names(dir.path()), ["___evil.m.log", "p0.m.log", "p1.m.log"]);
    assert_eq!(
        ids(&read(&dir.path().join("p0.m.log"))),
        ["a-0", "a-2", "a-4"]
    );
    assert_eq!(ids(&read(&dir.path().join("p1.m.log"))), ["a-1", "a-3"]);
}

#[test]
fn rotation_by_size_keeps_every_record_once_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start(dir.path(), "max_file_bytes = 2000\ncompression = \"none\"");
    let mut all = Vec::new();
    for b in 0..10 {
        let batch = records(&format!("b{b}"), 5);
        h.handle_batch(&batch).expect("written");
        all.extend(batch.into_iter().map(|r| r.id.to_string()));
    }
    h.request("flush", "").expect("flush");
    let files = names(dir.path());
    assert!(files.len() > 3, "{files:?}");
    let mut seen = Vec::new();
    let mut rotated: Vec<(u64, String)> = files
        .iter()
        .filter_map(|n| {
            n.strip_prefix("logrelay.log.")
                .map(|s| (s.parse().expect("seq"), n.clone()))
        })
        .collect();
    rotated.sort();
    for (_, name) in &rotated {
        let text = read(&dir.path().join(name));
        assert!(text.len() <= 2000, "{name} is {} bytes", text.len());
        seen.extend(ids(&text));
    }
    seen.extend(ids(&read(&dir.path().join("logrelay.log"))));
    assert_eq!(seen, all);
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

/// Runs `f` on a runtime of its own, as the plugin's instance runtime would.
fn on_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn settings(dir: &std::path::Path, extra: &str) -> logrelay_files::Settings {
    let json =
        logrelay_plugin_api::testing::config_json_from_toml(&config(dir, extra)).expect("toml");
    logrelay_plugin_api::parse_config::<Config>(&json)
        .expect("config")
        .validate()
        .expect("valid")
}

#[test]
fn rotation_by_time_follows_the_injected_clock_and_the_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(at("2024-05-01T21:30:00Z")));
    let s = settings(
        dir.path(),
        "file_name = \"app-{date}.log\"\nrotate_interval = \"daily\"\ntimezone = \"Europe/Paris\"\ncompression = \"gzip\"",
    );
    on_runtime(async {
        let files = Files::start(s, clock.clone(), "t").await.expect("start");
        files
            .handle_batch(&records("day1", 3))
            .await
            .expect("day 1");
        // 23:59 in Paris: same day.
        clock.set(at("2024-05-01T21:59:59Z"));
        files.request("tick", "").await.expect("tick");
        assert_eq!(names(dir.path()), ["app-2024-05-01.log"]);
        // Midnight in Paris: the file is rotated even though no record came.
        clock.set(at("2024-05-01T22:00:00Z"));
        files.request("tick", "").await.expect("tick");
        files.flush().await.expect("flush");
        assert_eq!(names(dir.path()), ["app-2024-05-01.log.1.gz"]);
        files
            .handle_batch(&records("day2", 2))
            .await
            .expect("day 2");
        assert_eq!(
            names(dir.path()),
            ["app-2024-05-01.log.1.gz", "app-2024-05-02.log"]
        );
        let archived =
            gunzip(&std::fs::read(dir.path().join("app-2024-05-01.log.1.gz")).expect("read"));
        assert_eq!(
            ids(&String::from_utf8(archived).expect("utf8")),
            ["day1-0", "day1-1", "day1-2"]
        );

        // Hourly, without a date in the name: rotated to .1, .2 ...
        files.shutdown().await.expect("shutdown");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(at("2024-05-01T10:00:00Z")));
    let s = settings(
        dir.path(),
        "rotate_interval = \"hourly\"\ncompression = \"none\"",
    );
    on_runtime(async {
        let files = Files::start(s, clock.clone(), "t").await.expect("start");
        for hour in 0..3 {
            files
                .handle_batch(&records(&format!("h{hour}"), 1))
                .await
                .expect("write");
            clock.advance(TimeDelta::minutes(59));
            files
                .handle_batch(&records(&format!("h{hour}x"), 1))
                .await
                .expect("write");
            clock.advance(TimeDelta::minutes(1));
        }
        files.flush().await.expect("flush");
        assert_eq!(
            names(dir.path()),
            ["logrelay.log", "logrelay.log.1", "logrelay.log.2"]
        );
        assert_eq!(
            ids(&read(&dir.path().join("logrelay.log.2"))),
            ["h1-0", "h1x-0"]
        );
        files.shutdown().await.expect("shutdown");
    });
}

#[test]
fn archives_hold_exactly_what_was_written() {
    for (compression, suffix) in [("gzip", "gz"), ("zstd", "zst")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = start(dir.path(), &format!("compression = \"{compression}\""));
        h.handle_batch(&records("x", 500)).expect("written");
        let written = std::fs::read(dir.path().join("logrelay.log")).expect("read");
        h.request("rotate", "").expect("rotate");
        h.request("flush", "").expect("flush");
        let archive = dir.path().join(format!("logrelay.log.1.{suffix}"));
        assert_eq!(names(dir.path()), [format!("logrelay.log.1.{suffix}")]);
        let bytes = std::fs::read(&archive).expect("archive");
        let back = if suffix == "gz" {
            gunzip(&bytes)
        } else {
            zstd::decode_all(&bytes[..]).expect("unzstd")
        };
        assert_eq!(back, written);
        let listed: serde_json::Value =
            serde_json::from_str(&h.request("list", "").expect("list")).expect("json");
        assert_eq!(listed["files"][0]["kind"], "archive");
    }
}

fn make(dir: &std::path::Path, name: &str, bytes: usize, age: Duration) {
    let path = dir.join(name);
    std::fs::write(&path, vec![b'x'; bytes]).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_modified(SystemTime::now() - age).expect("mtime");
}

#[test]
fn retention_by_count_and_total_size_deletes_the_oldest_finished_files() {
    let hour = Duration::from_secs(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 1..=5u32 {
        make(
            dir.path(),
            &format!("logrelay.log.{i}.gz"),
            100,
            hour * (10 - i),
        );
    }
    make(dir.path(), "logrelay.log", 100, Duration::ZERO);
    make(dir.path(), "other.txt", 100, hour * 20);
    let h = start(dir.path(), "retention_max_files = 3");
    h.request("retention", "").expect("retention");
    assert_eq!(
        names(dir.path()),
        [
            "logrelay.log",
            "logrelay.log.3.gz",
            "logrelay.log.4.gz",
            "logrelay.log.5.gz",
            "other.txt"
        ]
    );
    h.shutdown().expect("shutdown");
    drop(h);
    // 4 files of ours, 400 bytes: a 250-byte cap leaves the current file and the newest one.
    let h = start(dir.path(), "retention_max_total_bytes = 250");
    h.request("retention", "").expect("retention");
    assert_eq!(
        names(dir.path()),
        ["logrelay.log", "logrelay.log.5.gz", "other.txt"]
    );
}

#[test]
fn retention_by_age_uses_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hour = Duration::from_secs(3600);
    make(dir.path(), "logrelay.log.1.gz", 10, hour * 30);
    make(dir.path(), "logrelay.log.2", 10, hour * 2);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = settings(
        dir.path(),
        "retention_max_age_hours = 24\ncompression = \"none\"",
    );
    on_runtime(async {
        let files = Files::start(s, clock.clone(), "t").await.expect("start");
        files.request("retention", "").await.expect("retention");
        assert_eq!(names(dir.path()), ["logrelay.log.2"]);
        clock.advance(TimeDelta::hours(23));
        files.request("retention", "").await.expect("retention");
        assert!(names(dir.path()).is_empty());
        files.shutdown().await.expect("shutdown");
    });
}

#[test]
fn restart_continues_the_file_and_ends_a_partial_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start(dir.path(), "");
    h.handle_batch(&records("before", 2)).expect("written");
    h.shutdown().expect("shutdown");
    drop(h);
    // A crash in the middle of a write leaves half a line.
    let path = dir.path().join("logrelay.log");
    let mut f = std::fs::File::options()
        .append(true)
        .open(&path)
        .expect("open");
    std::io::Write::write_all(&mut f, b"{\"timestamp\":\"2023-11").expect("partial");
    drop(f);
    let h = start(dir.path(), "");
    h.handle_batch(&records("after", 2)).expect("written");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[2], "{\"timestamp\":\"2023-11");
    let good: Vec<&str> = lines.iter().copied().filter(|l| l.ends_with('}')).collect();
    assert_eq!(
        ids(&good.join("\n")),
        ["before-0", "before-1", "after-0", "after-1"]
    );
}

#[test]
fn a_rotated_file_left_unarchived_by_a_crash_is_archived_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("logrelay.log.1"), b"line\n").expect("write");
    std::fs::write(dir.path().join(".logrelay.log.1.gz.tmp"), b"half").expect("write");
    let h = start(dir.path(), "");
    h.request("flush", "").expect("flush");
    assert_eq!(names(dir.path()), ["logrelay.log.1.gz"]);
    assert!(!dir.path().join(".logrelay.log.1.gz.tmp").exists());
    assert_eq!(
        gunzip(&std::fs::read(dir.path().join("logrelay.log.1.gz")).expect("read")),
        b"line\n"
    );
}
