//! Dispatch cost through the real loaded `.so` into the no-op fixture.
//!
//! Run: `cargo build --release -p logrelay-fixture && cargo bench -p logrelay --bench dispatch`
//!
//! Reports ns per record at batches of 1, 100 and 1000, for the bare ABI call (`handle_batch`
//! on the loaded library) and for the whole engine path (routing, the instance's bounded channel,
//! its worker thread, the acceptance tracker, the completion).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RSlice, RStr};
use logrelay::config::{Env, PluginsConfig};
use logrelay::engine::{Batch, DeliveryRef, Engine, EngineOptions};
use logrelay::loader::load_library;
use logrelay_plugin_api::testing::sample_records;

fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target/release/deps")
        .to_path_buf()
}

fn main() {
    let dir = plugin_dir();
    let lib_path = dir.join("liblogrelay_fixture.so");
    assert!(
        lib_path.exists(),
        "{} is missing: run cargo build --release -p logrelay-fixture first",
        lib_path.display()
    );
    let lib = load_library(&lib_path).expect("load fixture");
    let host = logrelay::host_api::host_for("bench", Default::default());
    let plugin = (lib.new)(RStr::from("bench"), RStr::from("{}"), host)
        .into_result()
        .expect("fixture instance");

    println!("| path | batch | calls | ns/record | ns/batch |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for size in [1usize, 100, 1000] {
        let records = sample_records(size);
        let calls = (2_000_000 / size).clamp(2_000, 200_000);
        for _ in 0..calls / 10 {
            let _ = plugin.handle_batch(RSlice::from_slice(&records));
        }
        let start = Instant::now();
        for _ in 0..calls {
            let _ = plugin.handle_batch(RSlice::from_slice(&records));
        }
        report("ABI call", size, calls, start.elapsed());
    }

    let config = PluginsConfig::parse(
        "[plugins.noop]\ntype = \"fixture\"\n",
        &Env::default(),
        &dir,
    )
    .expect("config");
    let options = EngineOptions {
        retry_max: Duration::from_millis(100),
        ..EngineOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (engine, mut done) = Engine::start(&config, options).expect("engine");
    for size in [1usize, 100, 1000] {
        let template = sample_records(size);
        let calls = (1_000_000 / size).clamp(2_000, 100_000);
        // Built before the clock starts: the intake builds each record once, while decoding.
        let batches: Vec<Batch> = (0..calls)
            .map(|_| {
                Batch::unflagged(
                    engine.next_batch_id(),
                    template.clone(),
                    vec![DeliveryRef {
                        generation: 1,
                        tag: 1,
                    }],
                )
            })
            .collect();
        // Completed batches are kept until the clock stops: freeing the records is the
        // decoder's allocation coming back, not dispatch.
        let mut finished = Vec::with_capacity(calls);
        let elapsed = runtime.block_on(async {
            let start = Instant::now();
            let mut in_flight = 0usize;
            for batch in batches {
                engine.dispatch(batch).await;
                in_flight += 1;
                while let Ok(c) = done.try_recv() {
                    finished.push(c);
                    in_flight -= 1;
                }
            }
            while in_flight > 0 {
                finished.push(done.recv().await.expect("completion"));
                in_flight -= 1;
            }
            start.elapsed()
        });
        drop(finished);
        report("engine", size, calls, elapsed);
    }
    engine.shutdown(Instant::now() + Duration::from_secs(5));
}

fn report(path: &str, size: usize, calls: usize, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64;
    println!(
        "| {path} | {size} | {calls} | {:.1} | {:.0} |",
        ns / (calls * size) as f64,
        ns / calls as f64
    );
}
