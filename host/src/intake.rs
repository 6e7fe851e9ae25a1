//! RabbitMQ intake: consume, decode, batch, dispatch, dead-letter, acknowledge, reconnect.
//!
//! Delivery is at-least-once. A delivery is acknowledged only when every `required` instance its
//! records were routed to has accepted them, or when the records nobody may accept are safely in
//! the dead-letter queue (publisher-confirmed). Acks use `multiple` over the longest finished
//! prefix of delivery tags. A lost connection or channel is retried with exponential backoff and
//! jitter; what was in flight is redelivered by the broker and handed on again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use logrelay_plugin_api::Record;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::config::Settings;
use crate::decode::{BadElement, DecodeContext, decode};
use crate::engine::{Batch, BatchBuilder, Completed, DeliveryRef, Engine, backoff};
use crate::fingerprint::Fingerprint;
use crate::journal::CrashJournal;

/// Counters of the intake, for logs and metrics.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Messages received.
    pub messages: AtomicU64,
    /// Records decoded and dispatched.
    pub records: AtomicU64,
    /// Messages or elements sent to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Deliveries acknowledged.
    pub acked: AtomicU64,
    /// Connections made (the first one included).
    pub connections: AtomicU64,
    /// True while consuming.
    pub connected: AtomicBool,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused (nacked) a dead letter")]
    Nacked,
}

/// A connection's channels and its acknowledgement state.
struct Session {
    generation: u64,
    consume: Channel,
    publish: Channel,
    /// Unacked delivery tags in arrival order, each with whether it is finished. Acked
    /// (`multiple`) up to the longest finished prefix.
    outstanding: VecDeque<(u64, bool)>,
    _connection: Connection,
}

impl Session {
    /// A delivery arrived (tags grow within a channel, so the queue stays sorted).
    fn received(&mut self, tag: u64) {
        self.outstanding.push_back((tag, false));
    }

    /// A delivery is finished with; it is acked with the next [`Session::ack_finished`].
    fn mark(&mut self, tag: u64) {
        if let Ok(i) = self.outstanding.binary_search_by_key(&tag, |e| e.0)
            && let Some(entry) = self.outstanding.get_mut(i)
        {
            entry.1 = true;
        }
    }

    /// Acks (one `multiple` ack) the longest prefix of finished deliveries.
    async fn ack_finished(&mut self, stats: &IntakeStats) -> Result<(), lapin::Error> {
        let mut last = None;
        let mut count = 0;
        while let Some(&(tag, true)) = self.outstanding.front() {
            self.outstanding.pop_front();
            last = Some(tag);
            count += 1;
        }
        if let Some(tag) = last {
            self.consume
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
            stats.acked.fetch_add(count, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// What the intake keeps between deliveries: the batch being filled, the crash journal and
/// what it holds for each batch handed on.
struct Pipe {
    engine: Arc<Engine>,
    /// The batch being filled.
    batch: BatchBuilder,
    /// A partial batch is handed on once its first record is this old.
    batch_max_wait: Duration,
    /// The redelivered messages of the batch being filled, journaled when it is handed on.
    redelivered: Vec<Fingerprint>,
    log: RateLimitedLog,
    journal: Option<CrashJournal>,
    /// The journaled messages of each batch handed on, by batch id, until it completes.
    journaled: HashMap<u64, Vec<Fingerprint>>,
    crash_limit: u32,
}

impl Pipe {
    /// Hands the batch being filled on, if there is one.
    async fn flush(&mut self) {
        if let Some(batch) = self.batch.take() {
            let redelivered = std::mem::take(&mut self.redelivered);
            self.hand_on(batch, redelivered).await;
        }
    }

    /// Drops the batch being filled (the connection it came on is lost: it will be redelivered).
    fn clear(&mut self) {
        self.batch.clear();
        self.redelivered.clear();
    }

    /// When the batch being filled is due to be handed on, partial as it is.
    fn deadline(&self) -> Option<Instant> {
        self.batch.opened().map(|s| s + self.batch_max_wait)
    }

    /// Journals the batch's redelivered messages (synced), then routes it to the instances.
    async fn hand_on(&mut self, batch: Batch, redelivered: Vec<Fingerprint>) {
        if !redelivered.is_empty()
            && let Some(journal) = &mut self.journal
        {
            if let Err(e) = journal.begin(&redelivered) {
                tracing::warn!(error = %e, "Cannot write the crash journal; a message that stops the host may be redelivered to it again.");
            }
            self.journaled.insert(batch.id, redelivered);
        }
        self.engine.dispatch(batch).await;
    }

    /// The batch is done with: its journaled messages did not stop the host.
    fn forget(&mut self, batch_id: u64) {
        if let Some(fps) = self.journaled.remove(&batch_id) {
            self.done_with(&fps);
        }
    }

    /// These messages are done with (handled or dead-lettered): the journal forgets them.
    fn done_with(&mut self, fps: &[Fingerprint]) {
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.end(fps)
        {
            tracing::warn!(error = %e, "Cannot write the crash journal.");
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Logs bad input at most once every few seconds, with how many were suppressed.
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn bad_input(&mut self, routing_key: &str, bad: &BadElement) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            routing_key,
            element = ?bad.index,
            reason = %bad.reason,
            suppressed = self.suppressed,
            "Bad input sent to the dead-letter queue."
        );
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// The dead-letter queue's name for `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Connects and declares the topology: the topic exchange, the durable queue bound to it with
/// `#`, and the dead-letter queue. A queue that already exists with other arguments is used as
/// it is, with a warning saying what differs.
async fn connect(settings: &Settings, generation: u64) -> Result<Session, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("logrelay-{}", std::process::id()).into());
    let connection = Connection::connect(&settings.amqp_url, props).await?;
    let setup = connection.create_channel().await?;
    setup
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for queue in [settings.queue.clone(), dead_letter_queue(&settings.queue)] {
        let declared = setup
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if let Err(e) = declared {
            // The broker closes a channel that asked for a differing declaration; look again
            // passively on a new one and use the queue as it is.
            tracing::warn!(
                queue = %queue,
                difference = %e,
                "The queue exists with other arguments; using it as it is. Delete it or pick another LOGRELAY_QUEUE to have logrelay declare it."
            );
            let check = connection.create_channel().await?;
            check
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
    }
    let setup = connection.create_channel().await?;
    setup
        .queue_bind(
            settings.queue.as_str().into(),
            settings.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consume = connection.create_channel().await?;
    consume
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let publish = connection.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Session {
        generation,
        consume,
        publish,
        outstanding: VecDeque::new(),
        _connection: connection,
    })
}

/// Publishes one dead letter; the returned confirm must be awaited before the source is acked.
async fn dead_letter(
    session: &Session,
    queue: &str,
    body: &[u8],
    routing_key: &str,
    reason: &str,
    element: Option<usize>,
) -> Result<PublisherConfirm, SessionError> {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-logrelay-reason".into(),
        AMQPValue::LongString(reason.into()),
    );
    if !routing_key.is_empty() {
        headers.insert(
            "x-logrelay-source-routing-key".into(),
            AMQPValue::LongString(routing_key.into()),
        );
    }
    if let Some(i) = element {
        headers.insert(
            "x-logrelay-element".into(),
            AMQPValue::LongLongInt(i as i64),
        );
    }
    let confirm = session
        .publish
        .basic_publish(
            ShortString::from(""),
            dead_letter_queue(queue).as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_headers(headers),
        )
        .await?;
    Ok(confirm)
}

/// Waits for every dead letter's confirm: only then may their sources be acked.
async fn confirmed(confirms: Vec<PublisherConfirm>) -> Result<(), SessionError> {
    for confirm in confirms {
        if confirm.await?.is_nack() {
            return Err(SessionError::Nacked);
        }
    }
    Ok(())
}

/// A record as JSON, for the dead-letter queue. Never fails, whatever the record holds: the
/// attributes are written as they are when a strict JSON parser reads them, and as one JSON
/// string (their text) when it does not.
pub fn record_json(r: &Record) -> String {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Attributes<'a> {
        Json(&'a RawValue),
        Text(&'a str),
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        attributes: Attributes<'a>,
        id: &'a str,
        level: &'static str,
        message: &'a str,
        module: &'a str,
        project: &'a str,
        timestamp_ns: i64,
    }
    let text = r.attributes.as_str();
    let text = if text.trim().is_empty() { "{}" } else { text };
    // Only what a strict parser reads back is written as JSON (not a lone surrogate escape, a
    // number out of range or nesting deeper than 128); the rest as a string, byte for byte.
    // Checked one level down, as the dead letter nests them (in its own object).
    let strict = serde_json::from_str::<serde_json::Value>(&format!("[{text}]")).is_ok();
    let attributes = match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) if strict => Attributes::Json(raw),
        _ => Attributes::Text(text),
    };
    let out = Out {
        attributes,
        id: r.id.as_str(),
        level: r.level.name(),
        message: r.message.as_str(),
        module: r.module.as_str(),
        project: r.project.as_str(),
        timestamp_ns: r.timestamp_ns,
    };
    // Serializing strings, an integer and text already checked as JSON cannot fail.
    serde_json::to_string(&out).unwrap_or_default()
}

/// Consumes until `shutdown` turns true, then drains and returns. Reconnects by itself.
pub async fn run(
    settings: Arc<Settings>,
    engine: Arc<Engine>,
    mut completions: mpsc::UnboundedReceiver<Completed>,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<IntakeStats>,
) {
    let mut generation = 0u64;
    let mut attempt = 0u32;
    let journal = match CrashJournal::open(&settings.state_dir, &settings.queue) {
        Ok(j) => {
            tracing::info!(path = %j.path().display(), suspects = j.suspects(), "Crash journal open.");
            Some(j)
        }
        Err(e) => {
            tracing::warn!(error = %e, "Running without a crash journal: a message that stops the host will be redelivered to it again and again. Set LOGRELAY_STATE_DIR to a writable directory.");
            None
        }
    };
    let decoders = decode_pool(settings.decode_threads);
    let mut pipe = Pipe {
        engine: engine.clone(),
        batch: engine.batch_builder(settings.batch_max_records.get()),
        batch_max_wait: settings.batch_max_wait,
        redelivered: Vec::new(),
        log: RateLimitedLog {
            last: None,
            suppressed: 0,
        },
        journal,
        journaled: HashMap::new(),
        crash_limit: settings.crash_limit,
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        generation += 1;
        let mut session = match connect(&settings, generation).await {
            Ok(s) => s,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let wait = backoff(attempt, Duration::from_secs(30), None);
                tracing::warn!(
                    error = %e,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    url = %redact(&settings.amqp_url),
                    "Cannot reach RabbitMQ; will retry."
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let consumer = session
            .consume
            .basic_consume(
                settings.queue.as_str().into(),
                format!("logrelay-{}-{generation}", std::process::id()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, "Cannot start consuming; will retry.");
                tokio::select! {
                    _ = tokio::time::sleep(backoff(attempt, Duration::from_secs(30), None)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        attempt = 0;
        stats.connections.fetch_add(1, Ordering::Relaxed);
        stats.connected.store(true, Ordering::Release);
        tracing::info!(queue = %settings.queue, exchange = %settings.exchange, prefetch = settings.prefetch, "Consuming.");

        // One timer for the partial batch, re-armed when a batch starts (not per message).
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let lost = loop {
            let deadline = pipe.deadline();
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d.into());
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => break None,
                Some(done) = completions.recv() => {
                    if let Err(e) = complete(&mut session, &settings, &mut pipe, done, &stats).await {
                        break Some(e.to_string());
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    pipe.flush().await;
                }
                next = consumer.next() => {
                    // Take what is already buffered without going back through select!: under
                    // load deliveries arrive in bursts of up to the prefetch window. A burst is
                    // decoded on every core, then handed on in delivery order.
                    let mut next = next;
                    let mut burst = Vec::new();
                    let mut failure = loop {
                        match next {
                            Some(Ok(d)) => burst.push(d),
                            Some(Err(e)) => break Some(e.to_string()),
                            None => break Some("the broker cancelled the consumer".into()),
                        }
                        if burst.len() == BURST {
                            break None;
                        }
                        match consumer.next().now_or_never() {
                            Some(n) => next = n,
                            None => break None,
                        }
                    };
                    for prepared in prepare_burst(burst, &settings, decoders.as_ref(), pipe.journal.as_ref(), pipe.crash_limit) {
                        if let Err(e) = on_delivery(&mut session, &settings, &mut pipe, &mut completions, &mut shutdown, &stats, prepared).await {
                            failure = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failure {
                        break Some(e);
                    }
                }
            }
        };
        stats.connected.store(false, Ordering::Release);
        match lost {
            None => {
                drain(&mut session, &settings, &mut pipe, &mut completions, &stats).await;
                let _ = session.consume.close(200, "shutting down".into()).await;
                return;
            }
            Some(reason) => {
                // Records of this session that were batched but not dispatched will be redelivered.
                pipe.clear();
                tracing::warn!(reason = %reason, "Lost the RabbitMQ connection; reconnecting. Unacknowledged deliveries will be redelivered.");
            }
        }
    }
}

/// The most deliveries taken from the consumer's buffer before the intake looks at its other
/// events (completions, the batch timer, shutdown).
const BURST: usize = 256;

/// A burst smaller than this many bytes is decoded on the intake's own thread: handing it to
/// the decoding threads would cost more than it saves.
const PARALLEL_MIN_BYTES: usize = 64 * 1024;

/// A delivery, what identifies it, and what its body decoded into.
struct Prepared {
    delivery: lapin::message::Delivery,
    fingerprint: Fingerprint,
    /// `None` when the crash journal said the message is to be dead-lettered unread.
    decoded: Option<crate::decode::Decoded>,
}

/// The threads that decode bursts (`LOGRELAY_DECODE_THREADS`; 0 is one per core). `None` when
/// there is to be one: the intake's own thread decodes then.
fn decode_pool(threads: usize) -> Option<rayon::ThreadPool> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads < 2 {
        return None;
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("logrelay-decode-{i}"))
        .build()
    {
        Ok(pool) => Some(pool),
        Err(e) => {
            tracing::warn!(error = %e, threads, "Cannot start the decoding threads; decoding on the intake's thread.");
            None
        }
    }
}

/// Fingerprints and decodes a burst of deliveries, on the decoding threads when it is large
/// enough, and returns them in delivery order (so the records of a message, and the messages,
/// keep their order). Decoding is pure: what a delivery decodes into does not depend on the
/// others. The intake's thread waits meanwhile, as it would while decoding itself.
fn prepare_burst(
    burst: Vec<lapin::message::Delivery>,
    settings: &Settings,
    decoders: Option<&rayon::ThreadPool>,
    journal: Option<&CrashJournal>,
    crash_limit: u32,
) -> Vec<Prepared> {
    use rayon::prelude::*;
    let prepare = |delivery| prepare(delivery, settings, journal, crash_limit);
    let bytes: usize = burst.iter().map(|d| d.data.len()).sum();
    match decoders {
        Some(pool) if burst.len() > 1 && bytes >= PARALLEL_MIN_BYTES => {
            pool.install(|| burst.into_par_iter().map(prepare).collect())
        }
        _ => burst.into_iter().map(prepare).collect(),
    }
}

fn decode_context<'a>(
    delivery: &'a lapin::message::Delivery,
    settings: &'a Settings,
    fingerprint: Fingerprint,
) -> DecodeContext<'a> {
    DecodeContext {
        routing_key: delivery.routing_key.as_str(),
        queue: &settings.queue,
        amqp_timestamp_ns: delivery
            .properties
            .timestamp()
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| s.saturating_mul(1_000_000_000)),
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        fingerprint,
        redelivered: delivery.redelivered,
        received_ns: now_ns(),
        default_project: &settings.default_project,
        default_module: &settings.default_module,
        max_bytes: settings.max_message_bytes,
        options: &settings.decode,
    }
}

fn prepare(
    delivery: lapin::message::Delivery,
    settings: &Settings,
    journal: Option<&CrashJournal>,
    crash_limit: u32,
) -> Prepared {
    let fingerprint = Fingerprint::of_message(
        delivery.routing_key.as_str(),
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        *delivery.properties.timestamp(),
        &delivery.data,
    );
    let condemned = match journal {
        Some(journal) if delivery.redelivered => journal.deaths(fingerprint) >= crash_limit,
        _ => false,
    };
    let decoded = (!condemned).then(|| {
        decode(
            &delivery.data,
            &decode_context(&delivery, settings, fingerprint),
        )
    });
    Prepared {
        delivery,
        fingerprint,
        decoded,
    }
}

/// Dead-letters the bad parts of a decoded delivery and adds its records to the batch
/// (dispatching the batch when full). A redelivered message that was being handled when the
/// host died is handled alone, or dead-lettered once it reached the crash limit (see
/// [`crate::journal`]). Errors are AMQP failures: the session is lost.
async fn on_delivery(
    session: &mut Session,
    settings: &Settings,
    pipe: &mut Pipe,
    completions: &mut mpsc::UnboundedReceiver<Completed>,
    shutdown: &mut watch::Receiver<bool>,
    stats: &IntakeStats,
    prepared: Prepared,
) -> Result<(), String> {
    let Prepared {
        delivery,
        fingerprint,
        decoded,
    } = prepared;
    stats.messages.fetch_add(1, Ordering::Relaxed);
    let tag = delivery.delivery_tag;
    session.received(tag);
    let routing_key = delivery.routing_key.as_str();
    // Read again: the journal may have changed since the burst was prepared.
    let deaths = match &pipe.journal {
        Some(journal) if delivery.redelivered => journal.deaths(fingerprint),
        _ => 0,
    };
    if deaths >= pipe.crash_limit {
        let reason = format!(
            "this message stopped the host {deaths} times while it was being handled (LOGRELAY_CRASH_LIMIT={}); it was not handed on again",
            pipe.crash_limit
        );
        tracing::error!(
            routing_key,
            deaths,
            "A message that keeps stopping the host was sent to the dead-letter queue."
        );
        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let confirm = dead_letter(
            session,
            &settings.queue,
            &delivery.data,
            routing_key,
            &reason,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        confirmed(vec![confirm]).await.map_err(|e| e.to_string())?;
        session.mark(tag);
        session
            .ack_finished(stats)
            .await
            .map_err(|e| e.to_string())?;
        pipe.done_with(&[fingerprint]);
        return Ok(());
    }
    let alone = deaths > 0;
    if alone {
        // Nothing else may be with the connectors while it is: should the host die again, this
        // message alone is to blame.
        tracing::warn!(
            routing_key,
            deaths,
            "A redelivered message was being handled when the host died; handling it alone."
        );
        pipe.flush().await;
        if !wait_idle(session, settings, pipe, completions, shutdown, stats).await? {
            return Ok(());
        }
    }
    let decoded = match decoded {
        Some(decoded) => decoded,
        None => decode(
            &delivery.data,
            &decode_context(&delivery, settings, fingerprint),
        ),
    };
    if !decoded.bad.is_empty() {
        let mut confirms = Vec::with_capacity(decoded.bad.len());
        for bad in &decoded.bad {
            pipe.log.bad_input(routing_key, bad);
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            let body = bad_element_body(&delivery.data, bad);
            confirms.push(
                dead_letter(
                    session,
                    &settings.queue,
                    body,
                    routing_key,
                    &bad.reason,
                    bad.index,
                )
                .await
                .map_err(|e| e.to_string())?,
            );
        }
        confirmed(confirms).await.map_err(|e| e.to_string())?;
    }
    if decoded.records.is_empty() {
        session.mark(tag);
        session
            .ack_finished(stats)
            .await
            .map_err(|e| e.to_string())?;
        if alone {
            pipe.done_with(&[fingerprint]);
        }
        return Ok(());
    }
    stats
        .records
        .fetch_add(decoded.records.len() as u64, Ordering::Relaxed);
    if pipe.batch.would_overflow(decoded.records.len()) {
        pipe.flush().await;
    }
    // The decoder gives `flags[i]` for `records[i]`; the batch keeps them paired.
    pipe.batch
        .add_records(decoded.records.into_iter().zip(decoded.flags));
    pipe.batch.add_delivery(DeliveryRef {
        generation: session.generation,
        tag,
    });
    if delivery.redelivered {
        pipe.redelivered.push(fingerprint);
    }
    if alone || pipe.batch.is_full() {
        pipe.flush().await;
    }
    if alone {
        wait_idle(session, settings, pipe, completions, shutdown, stats).await?;
    }
    Ok(())
}

/// Settles completed batches until nothing is with the instances. `Ok(false)` when shutdown
/// was asked for meanwhile (the caller leaves its delivery to be redelivered).
async fn wait_idle(
    session: &mut Session,
    settings: &Settings,
    pipe: &mut Pipe,
    completions: &mut mpsc::UnboundedReceiver<Completed>,
    shutdown: &mut watch::Receiver<bool>,
    stats: &IntakeStats,
) -> Result<bool, String> {
    loop {
        while let Ok(done) = completions.try_recv() {
            complete(session, settings, pipe, done, stats)
                .await
                .map_err(|e| e.to_string())?;
        }
        if pipe.engine.pending_batches() == 0 {
            return Ok(true);
        }
        if *shutdown.borrow() {
            return Ok(false);
        }
        tokio::select! {
            done = completions.recv() => match done {
                Some(done) => complete(session, settings, pipe, done, stats)
                    .await
                    .map_err(|e| e.to_string())?,
                None => return Ok(false),
            },
            _ = shutdown.changed() => return Ok(false),
        }
    }
}

/// On shutdown: dispatch the partial batch, let batches in flight finish and ack them.
async fn drain(
    session: &mut Session,
    settings: &Settings,
    pipe: &mut Pipe,
    completions: &mut mpsc::UnboundedReceiver<Completed>,
    stats: &IntakeStats,
) {
    let deadline = Instant::now() + settings.shutdown_timeout;
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, pipe.flush()).await.is_err() {
        tracing::warn!("Shutdown timeout reached while handing on the last batch.");
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if pipe.engine.pending_batches() == 0 {
            while let Ok(done) = completions.try_recv() {
                let _ = complete(session, settings, pipe, done, stats).await;
            }
            break;
        }
        match tokio::time::timeout(left.min(Duration::from_millis(100)), completions.recv()).await {
            Ok(Some(done)) => {
                if complete(session, settings, pipe, done, stats)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) if left.is_zero() => {
                tracing::warn!(
                    pending = pipe.engine.pending_batches(),
                    "Shutdown timeout reached; unfinished batches stay in the queue."
                );
                break;
            }
            Err(_) => {}
        }
    }
}

/// A batch is complete: settle it, and forget its journaled messages (they did not stop the
/// host, whether or not the ack still reaches the broker).
async fn complete(
    session: &mut Session,
    settings: &Settings,
    pipe: &mut Pipe,
    done: Completed,
    stats: &IntakeStats,
) -> Result<(), SessionError> {
    let id = done.batch.id;
    let settled = settle(session, settings, done, stats).await;
    pipe.forget(id);
    settled
}

/// A batch is complete: dead-letter what nobody may accept, then ack its deliveries.
async fn settle(
    session: &mut Session,
    settings: &Settings,
    done: Completed,
    stats: &IntakeStats,
) -> Result<(), SessionError> {
    if done
        .batch
        .deliveries
        .first()
        .is_some_and(|d| d.generation != session.generation)
    {
        // From a lost connection: the broker redelivers those messages.
        return Ok(());
    }
    let mut confirms = Vec::with_capacity(done.failed.len());
    for (index, reason) in &done.failed {
        if let Some(record) = done.batch.records().get(*index as usize) {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            confirms.push(
                dead_letter(
                    session,
                    &settings.queue,
                    record_json(record).as_bytes(),
                    "",
                    reason,
                    None,
                )
                .await?,
            );
        }
    }
    confirmed(confirms).await?;
    for d in &done.batch.deliveries {
        session.mark(d.tag);
    }
    session.ack_finished(stats).await?;
    Ok(())
}

/// The bytes to dead-letter for a bad element: the element itself when the decoder could cut it
/// out (an array element, a line), otherwise the whole body.
fn bad_element_body<'a>(body: &'a [u8], bad: &BadElement) -> &'a [u8] {
    body.get(bad.span.clone())
        .filter(|b| !b.is_empty())
        .unwrap_or(body)
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }

    #[test]
    fn record_json_never_fails_and_is_always_strict_json() {
        let deep = |n: usize| format!("{{\"d\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        for attributes in [
            r#"{"k":"\ud800"}"#.to_owned(),
            r#"{"big":1e999}"#.to_owned(),
            // 127 levels pass a strict parser alone but not inside the dead letter's object.
            deep(126),
            deep(200),
            deep(100_000),
            "not json".to_owned(),
        ] {
            let r = Record::new("a", 5, logrelay_plugin_api::Level::ERROR, "p", "m", "hi")
                .with_attributes(attributes.as_str());
            let v: serde_json::Value = serde_json::from_str(&record_json(&r)).unwrap();
            assert_eq!(v["attributes"], attributes.as_str(), "kept as text");
        }
        // One level shallower fits as JSON.
        let r = Record::new("a", 5, logrelay_plugin_api::Level::ERROR, "p", "m", "hi")
            .with_attributes(deep(125).as_str());
        let v: serde_json::Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert!(v["attributes"].is_object());
    }

    #[test]
    fn record_json_keeps_attributes_as_json() {
        let r = Record::new("a", 5, logrelay_plugin_api::Level::ERROR, "p", "m", "hi")
            .with_attributes(r#"{"k":[1,2]}"#);
        assert_eq!(
            record_json(&r),
            r#"{"attributes":{"k":[1,2]},"id":"a","level":"error","message":"hi","module":"m","project":"p","timestamp_ns":5}"#
        );
    }
}
