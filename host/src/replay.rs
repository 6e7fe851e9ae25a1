//! `logrelay replay FILE`: feed a JSON-lines file through the configured instances without
//! RabbitMQ, with the same decoding, routing, retries and acceptance rules as the intake.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use logrelay_plugin_api::Purpose;

use crate::app::{load_plugins_config, start_engine};
use crate::config::{Env, Settings};
use crate::decode::{DecodeContext, decode};
use crate::engine::{BatchBuilder, Completed, DeliveryRef, Engine};
use crate::fingerprint::Fingerprint;
use crate::progress::Progress;

/// Replays `file`; prints a summary and every record that could not be delivered.
///
/// The file is read a line at a time and each batch waits for room in the instances' queues,
/// so memory stays bounded whatever the file's size; completed batches are settled as they
/// come, not kept to the end.
pub async fn run(settings: Arc<Settings>, env: &Env, file: &Path) -> anyhow::Result<ExitCode> {
    let cannot_read = || format!("cannot read {}", file.display());
    let input = std::fs::File::open(file).with_context(cannot_read)?;
    let size = input.metadata().ok().map(|m| m.len());
    let mut input = BufReader::with_capacity(1 << 16, input);
    let config = load_plugins_config(&settings, env)?;
    // Beside a running host, perhaps: connectors need not start their listeners.
    let (engine, mut completions) = start_engine(&settings, config, Purpose::OneShot).await?;
    engine.wait_for_best_effort(true);
    tokio::spawn(engine.clone().watchdog());
    let received_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut bad_lines = 0usize;
    let mut batch = engine.batch_builder(settings.batch_max_records.get());
    let mut sent_batches = 0u64;
    let mut settled = Settled::default();
    let mut total = 0usize;
    let started = Instant::now();
    let mut progress = Progress::new(size, "replayed");
    let mut line = Vec::with_capacity(4096);
    for n in 0.. {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .with_context(cannot_read)?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            progress.advance(read as u64, 0, "replayed");
            continue;
        }
        let ctx = DecodeContext {
            routing_key: "",
            queue: &settings.queue,
            amqp_timestamp_ns: None,
            message_id: None,
            // A line's ids depend on its text and place: replaying a file twice gives the
            // same ids, and the store recognises what it has (nothing replayed is unseen).
            fingerprint: Fingerprint::of_line(n + 1, &line),
            redelivered: true,
            received_ns,
            default_project: &settings.default_project,
            default_module: &settings.default_module,
            max_bytes: settings.max_message_bytes,
            options: &settings.decode,
        };
        let decoded = decode(&line, &ctx);
        for bad in &decoded.bad {
            bad_lines += 1;
            progress.suspend(|| eprintln!("{}:{}: {}", file.display(), n + 1, bad.reason));
        }
        progress.advance(read as u64, decoded.records.len() as u64, "replayed");
        // The decoder gives `flags[i]` for `records[i]`; the batch keeps them paired.
        batch.add_records(decoded.records.into_iter().zip(decoded.flags));
        if batch.is_full() {
            total += batch.len();
            sent_batches += 1;
            hand_on(&engine, &mut batch, sent_batches).await;
            while let Ok(done) = completions.try_recv() {
                settled.add(&done, &progress);
            }
        }
    }
    if !batch.is_empty() {
        total += batch.len();
        sent_batches += 1;
        hand_on(&engine, &mut batch, sent_batches).await;
    }
    while settled.batches < sent_batches {
        let Some(done) = completions.recv().await else {
            break;
        };
        settled.add(&done, &progress);
    }
    progress.finish();
    let failed = settled.failed;
    let elapsed = started.elapsed();
    let stopping = engine.clone();
    let deadline = Instant::now() + settings.shutdown_timeout;
    tokio::task::spawn_blocking(move || stopping.shutdown(deadline))
        .await
        .context("the shutdown task failed")?;
    println!(
        "replayed {total} record(s) from {} in {:.3} s: {} delivered, {failed} refused, {bad_lines} bad line(s)",
        file.display(),
        elapsed.as_secs_f64(),
        total - failed,
    );
    Ok(if failed == 0 && bad_lines == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The batches settled so far and the records refused in them.
#[derive(Default)]
struct Settled {
    batches: u64,
    failed: usize,
}

impl Settled {
    /// Counts a completed batch and names each record it could not deliver.
    fn add(&mut self, done: &Completed, progress: &Progress) {
        self.batches += 1;
        for (i, reason) in &done.failed {
            self.failed += 1;
            let id = done
                .batch
                .records()
                .get(*i as usize)
                .map(|r| r.id.to_string())
                .unwrap_or_default();
            progress.suspend(|| eprintln!("record {id}: {reason}"));
        }
    }
}

/// Dispatches what `batch` gathered as the `tag`th batch: a replayed file has no deliveries, so
/// each batch stands for one, numbered in order.
async fn hand_on(engine: &Engine, batch: &mut BatchBuilder, tag: u64) {
    batch.add_delivery(DeliveryRef { generation: 0, tag });
    if let Some(batch) = batch.take() {
        engine.dispatch(batch).await;
    }
}
