//! `logrelay replay FILE`: feed a JSON-lines file through the configured instances without
//! RabbitMQ, with the same decoding, routing, retries and acceptance rules as the intake.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::app::{load_plugins_config, start_engine};
use crate::config::{Env, Settings};
use crate::decode::{DecodeContext, decode};
use crate::engine::{BatchBuilder, DeliveryRef, Engine};
use crate::fingerprint::Fingerprint;

/// Replays `file`; prints a summary and every record that could not be delivered.
pub async fn run(settings: Arc<Settings>, env: &Env, file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = load_plugins_config(&settings, env)?;
    let (engine, mut completions) = start_engine(&settings, config).await?;
    engine.wait_for_best_effort(true);
    tokio::spawn(engine.clone().watchdog());
    let received_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut bad_lines = 0usize;
    let mut batch = engine.batch_builder(settings.batch_max_records.get());
    let mut sent_batches = 0u64;
    let mut total = 0usize;
    let started = Instant::now();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ctx = DecodeContext {
            routing_key: "",
            queue: &settings.queue,
            amqp_timestamp_ns: None,
            message_id: None,
            // A line's ids depend on its text and place: replaying a file twice gives the
            // same ids, and the store recognises what it has (nothing replayed is unseen).
            fingerprint: Fingerprint::of_line(n + 1, line),
            redelivered: true,
            received_ns,
            default_project: &settings.default_project,
            default_module: &settings.default_module,
            max_bytes: settings.max_message_bytes,
            options: &settings.decode,
        };
        let decoded = decode(line, &ctx);
        for bad in &decoded.bad {
            bad_lines += 1;
            eprintln!("{}:{}: {}", file.display(), n + 1, bad.reason);
        }
        // The decoder gives `flags[i]` for `records[i]`; the batch keeps them paired.
        batch.add_records(decoded.records.into_iter().zip(decoded.flags));
        if batch.is_full() {
            total += batch.len();
            sent_batches += 1;
            hand_on(&engine, &mut batch, sent_batches).await;
        }
    }
    if !batch.is_empty() {
        total += batch.len();
        sent_batches += 1;
        hand_on(&engine, &mut batch, sent_batches).await;
    }
    let mut failed = 0usize;
    for _ in 0..sent_batches {
        let Some(done) = completions.recv().await else {
            break;
        };
        for (i, reason) in &done.failed {
            failed += 1;
            let id = done
                .batch
                .records()
                .get(*i as usize)
                .map(|r| r.id.to_string())
                .unwrap_or_default();
            eprintln!("record {id}: {reason}");
        }
    }
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

/// Dispatches what `batch` gathered as the `tag`th batch: a replayed file has no deliveries, so
/// each batch stands for one, numbered in order.
async fn hand_on(engine: &Engine, batch: &mut BatchBuilder, tag: u64) {
    batch.add_delivery(DeliveryRef { generation: 0, tag });
    if let Some(batch) = batch.take() {
        engine.dispatch(batch).await;
    }
}
