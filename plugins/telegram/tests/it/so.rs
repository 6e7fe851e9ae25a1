//! The real `.so`, built here and loaded through the host's loader and engine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use logrelay::config::{Env, PluginsConfig};
use logrelay::engine::{Batch, DeliveryRef, Engine, EngineOptions};
use logrelay::loader::load_library;
use logrelay_plugin_api::{Level, Record};

use crate::fake::Fake;
use crate::{TOKEN, wait_until};

/// The directory holding a freshly built liblogrelay_telegram.so.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| logrelay_plugin_api::testing::build_libraries(&["logrelay-telegram"]))
}

#[test]
fn the_library_loads_and_runs_in_the_host() {
    let dir = plugin_dir();
    let lib = load_library(&dir.join("liblogrelay_telegram.so")).expect("loads");
    let m = lib.manifest();
    assert_eq!(m.type_name, "telegram");
    assert_eq!(m.capabilities, vec!["status".to_owned()]);
    assert!(lib.example_config().contains("${LOGRELAY_TELEGRAM_TOKEN}"));

    let fake = Fake::start();
    let text = format!(
        r#"
[plugins.alerts]
type = "telegram"
delivery = "best_effort"
[plugins.alerts.config]
token = "${{LOGRELAY_TELEGRAM_TOKEN}}"
api_url = "http://127.0.0.1:{}"
commands = false
template = "{{LEVEL}} {{message}}"
[[plugins.alerts.config.rules]]
name = "errors"
min_level = "error"
chats = [42]
"#,
        fake.port
    );
    let env = Env::from_pairs([("LOGRELAY_TELEGRAM_TOKEN", TOKEN)]);
    let config = PluginsConfig::parse(&text, &env, dir)
        .unwrap_or_else(|problems| panic!("config refused: {problems:?}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (engine, _done) = Engine::start(
            &config,
            EngineOptions {
                retry_max: Duration::from_millis(200),
                ..EngineOptions::default()
            },
        )
        .expect("engine starts");
        engine
            .dispatch(Batch::unflagged(
                engine.next_batch_id(),
                vec![
                    Record::new("1", 0, Level::ERROR, "p", "m", "boom"),
                    Record::new("2", 0, Level::INFO, "p", "m", "fine"),
                ],
                vec![DeliveryRef {
                    generation: 1,
                    tag: 1,
                }],
            ))
            .await;
        assert!(
            tokio::task::spawn_blocking({
                let texts = move || fake.texts(42);
                move || {
                    let ok = wait_until(10, || texts() == vec!["ERROR boom".to_owned()]);
                    (ok, texts())
                }
            })
            .await
            .map(|(ok, t)| ok || panic!("{t:?}"))
            .expect("join")
        );
        let status = engine.request("alerts", "status", "").expect("status");
        assert!(status.contains("\"sent\":1"), "{status}");
        engine.shutdown(std::time::Instant::now() + Duration::from_secs(5));
    });
}
