//! Loading the real libraries: manifests, refusals, errors reported together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logrelay::admin::{AdminState, render_metrics};
use logrelay::config::{Env, PluginsConfig};
use logrelay::engine::{Batch, DeliveryRef, Engine};
use logrelay::intake::IntakeStats;
use logrelay::loader::{LoadError, Loader, load_library};
use logrelay_plugin_api::RecordFlags;
use logrelay_plugin_api::testing::sample_records;

use crate::common::{
    drifted_fixture, fixture_1_0, next_completed, options, parse_config, plugin_dir, read_ids,
};

#[test]
fn loads_fixture_and_console_with_their_manifests() {
    let dir = plugin_dir();
    let fixture = load_library(&dir.join("liblogrelay_fixture.so")).expect("fixture loads");
    let m = fixture.manifest();
    assert_eq!(m.type_name, "fixture");
    assert_eq!(m.capabilities, vec!["count".to_owned()]);
    let console = load_library(&dir.join("liblogrelay_console.so")).expect("console loads");
    assert_eq!(console.manifest().type_name, "console");
    assert!(console.example_config().contains('='));
}

#[test]
fn two_libraries_are_two_modules_not_one_cached() {
    let dir = plugin_dir();
    let mut loader = Loader::default();
    let a = loader
        .load(&dir.join("liblogrelay_fixture.so"), "fixture")
        .expect("fixture");
    let b = loader
        .load(&dir.join("liblogrelay_console.so"), "console")
        .expect("console");
    assert_ne!(a.manifest().type_name, b.manifest().type_name);
}

#[test]
fn a_plugin_built_against_a_changed_record_layout_is_refused_briefly() {
    let path = drifted_fixture();
    let err = load_library(&path)
        .err()
        .expect("the drifted plugin must be refused");
    assert!(matches!(err, LoadError::Incompatible { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("incompatible plugin interface"), "{text}");
    assert!(text.contains(logrelay_plugin_api::VERSION), "{text}");
    assert!(text.contains("liblogrelay_fixture.so"), "{text}");
    assert!(
        text.lines().count() <= 12,
        "the message should be short, got {} lines:\n{text}",
        text.lines().count()
    );
}

/// A library built against 1.0.0 has no `handle_batch_flagged` in its root module, which
/// abi_stable refuses against the current one: the loader takes it as 1.0.0's module, and its
/// batches reach the plugin's `handle_batch` without flags.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_against_1_0_loads_and_gets_its_batches_without_flags() {
    let library = fixture_1_0();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ids, flags) = (dir.path().join("ids.txt"), dir.path().join("flags.txt"));
    let config = PluginsConfig::parse(
        &format!(
            "[plugins.old]\ntype = \"fixture\"\nconfig = {{ record_to = {ids:?}, flags_to = {flags:?} }}\n"
        ),
        &Env::default(),
        library.parent().expect("library dir"),
    )
    .unwrap_or_else(|p| panic!("config refused: {p:?}"));
    let (engine, mut done) = Engine::start(&config, options()).expect("the 1.0 plugin loads");
    let records = sample_records(20);
    engine
        .dispatch(Batch::flagged(
            engine.next_batch_id(),
            records.into_iter().map(|r| (r, RecordFlags::RECEIVE_TIME)),
            vec![DeliveryRef {
                generation: 1,
                tag: 1,
            }],
        ))
        .await;
    let completed = next_completed(&mut done).await;
    assert!(completed.failed.is_empty(), "{:?}", completed.failed);
    assert_eq!(read_ids(&ids).len(), 20, "handle_batch got the records");
    assert!(
        !flags.exists(),
        "the 1.0 plugin has no handle_batch_flagged, yet it was called"
    );
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

#[test]
fn every_startup_error_is_reported_at_once() {
    let config = parse_config(
        r#"
[plugins.missing]
type = "nosuchconnector"
[plugins.badconfig]
type = "fixture"
config = { sleep_ms = "slow" }
[plugins.unhealthy]
type = "fixture"
config = { unhealthy = true }
[plugins.refuses]
type = "fixture"
config = { refuse_to_start = "the database password is wrong" }
[plugins.fine]
type = "fixture"
"#,
    );
    let err = Engine::check(&config, false).expect_err("start-up must fail");
    let text = err.to_string();
    assert_eq!(err.0.len(), 4, "{text}");
    assert!(
        text.contains("[plugins.missing]") && text.contains("no such file"),
        "{text}"
    );
    assert!(
        text.contains("[plugins.badconfig]") && text.contains("sleep_ms"),
        "{text}"
    );
    assert!(
        text.contains("[plugins.unhealthy]") && text.contains("health check"),
        "{text}"
    );
    assert!(text.contains("the database password is wrong"), "{text}");
}

#[test]
fn a_library_of_another_type_is_refused() {
    let config = parse_config(&format!(
        "[plugins.x]\ntype = \"console\"\npath = {:?}\n",
        plugin_dir().join("liblogrelay_fixture.so")
    ));
    let err = Engine::check(&config, false).expect_err("type mismatch");
    assert!(
        err.to_string()
            .contains("is a `fixture` connector, not `console`"),
        "{err}"
    );
}

/// Connector metrics travel as a host request, not a layout change: a library built against
/// 1.0.0 loads beside one that reports metrics, and `/metrics` shows the reported counter and
/// gauge under the reporting instance's label.
#[tokio::test(flavor = "multi_thread")]
async fn connector_metrics_reach_metrics_with_the_instance_label_beside_a_1_0_plugin() {
    let old = fixture_1_0();
    let dir = plugin_dir();
    let config = PluginsConfig::parse(
        &format!(
            "[plugins.old]\ntype = \"fixture\"\npath = {old:?}\n\
             [plugins.counting]\ntype = \"fixture\"\nconfig = {{ report_metrics = true }}\n"
        ),
        &Env::default(),
        dir,
    )
    .unwrap_or_else(|p| panic!("config refused: {p:?}"));
    let (engine, mut done) = Engine::start(&config, options()).expect("both load");
    for n in [3, 5] {
        engine
            .dispatch(Batch::flagged(
                engine.next_batch_id(),
                sample_records(n)
                    .into_iter()
                    .map(|r| (r, RecordFlags::NONE)),
                vec![DeliveryRef {
                    generation: 1,
                    tag: n as u64,
                }],
            ))
            .await;
        let completed = next_completed(&mut done).await;
        assert!(completed.failed.is_empty(), "{:?}", completed.failed);
    }
    let state = AdminState {
        engine: engine.clone(),
        intake: Arc::new(IntakeStats::default()),
        reload: Arc::new(|| Err("no reload here".to_owned())),
    };
    let body = render_metrics(&state);
    for line in [
        "# TYPE logrelay_plugin_fixture_records_total counter",
        "logrelay_plugin_fixture_records_total{instance=\"counting\"} 8",
        "# TYPE logrelay_plugin_fixture_last_batch_records gauge",
        "logrelay_plugin_fixture_last_batch_records{instance=\"counting\"} 5",
        "logrelay_instance_batches_total{instance=\"old\",outcome=\"ok\"} 2",
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in:\n{body}");
    }
    assert!(
        !body.contains("logrelay_plugin_fixture_records_total{instance=\"old\"}"),
        "{body}"
    );
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}
