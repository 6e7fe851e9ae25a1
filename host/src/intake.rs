//! RabbitMQ intake: consume, decode, batch, dispatch, dead-letter, acknowledge, reconnect.
//!
//! Delivery is at-least-once. A delivery is acknowledged only when every `required` instance its
//! records were routed to has accepted them, or when the records nobody may accept are safely in
//! the dead-letter queue (publisher-confirmed). Acks use `multiple` over the longest finished
//! prefix of delivery tags. A lost connection or channel is retried with exponential backoff and
//! jitter; what was in flight is redelivered by the broker and handed on again.

use std::collections::VecDeque;
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
use logrelay_plugin_api::{Record, RecordFlags};
use tokio::sync::{mpsc, watch};

use crate::config::Settings;
use crate::decode::{BadElement, DecodeContext, decode};
use crate::engine::{Batch, Completed, DeliveryRef, Engine, backoff};

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

/// Records gathered from deliveries until the batch is full or old enough.
struct Batcher {
    records: Vec<Record>,
    flags: Vec<RecordFlags>,
    deliveries: Vec<DeliveryRef>,
    started: Option<Instant>,
    max_records: usize,
    max_wait: Duration,
}

impl Batcher {
    fn take(&mut self, engine: &Engine) -> Option<Batch> {
        if self.deliveries.is_empty() {
            return None;
        }
        self.started = None;
        Some(Batch {
            id: engine.next_batch_id(),
            records: std::mem::replace(&mut self.records, Vec::with_capacity(self.max_records)),
            flags: std::mem::replace(&mut self.flags, Vec::with_capacity(self.max_records)),
            deliveries: std::mem::take(&mut self.deliveries),
        })
    }

    fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.max_wait)
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

/// A record as JSON, for the dead-letter queue.
pub fn record_json(r: &Record) -> String {
    let attributes: Box<serde_json::value::RawValue> =
        serde_json::value::RawValue::from_string(r.attributes.to_string())
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
    serde_json::json!({
        "id": r.id.as_str(),
        "timestamp_ns": r.timestamp_ns,
        "level": r.level.name(),
        "project": r.project.as_str(),
        "module": r.module.as_str(),
        "message": r.message.as_str(),
        "attributes": attributes,
    })
    .to_string()
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
    let mut log = RateLimitedLog {
        last: None,
        suppressed: 0,
    };
    let mut batcher = Batcher {
        records: Vec::with_capacity(settings.batch_max_records.get()),
        flags: Vec::with_capacity(settings.batch_max_records.get()),
        deliveries: Vec::new(),
        started: None,
        max_records: settings.batch_max_records.get(),
        max_wait: settings.batch_max_wait,
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
            let deadline = batcher.deadline();
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
                    if let Err(e) = settle(&mut session, &settings, done, &stats).await {
                        break Some(e.to_string());
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    if let Some(batch) = batcher.take(&engine) {
                        engine.dispatch(batch).await;
                    }
                }
                next = consumer.next() => {
                    let mut next = next;
                    // Take what is already buffered without going back through select!:
                    // under load deliveries arrive in bursts of up to the prefetch window.
                    let mut burst = 0;
                    let failure = loop {
                        let delivery = match next {
                            Some(Ok(d)) => d,
                            Some(Err(e)) => break Some(e.to_string()),
                            None => break Some("the broker cancelled the consumer".into()),
                        };
                        if let Err(e) = on_delivery(&mut session, &settings, &engine, &mut batcher, &mut log, &stats, delivery).await {
                            break Some(e);
                        }
                        burst += 1;
                        if burst == 256 {
                            break None;
                        }
                        match consumer.next().now_or_never() {
                            Some(n) => next = n,
                            None => break None,
                        }
                    };
                    if let Some(e) = failure {
                        break Some(e);
                    }
                }
            }
        };
        stats.connected.store(false, Ordering::Release);
        match lost {
            None => {
                drain(
                    &mut session,
                    &settings,
                    &engine,
                    &mut batcher,
                    &mut completions,
                    &stats,
                )
                .await;
                let _ = session.consume.close(200, "shutting down".into()).await;
                return;
            }
            Some(reason) => {
                // Records of this session that were batched but not dispatched will be redelivered.
                batcher.records.clear();
                batcher.flags.clear();
                batcher.deliveries.clear();
                batcher.started = None;
                tracing::warn!(reason = %reason, "Lost the RabbitMQ connection; reconnecting. Unacknowledged deliveries will be redelivered.");
            }
        }
    }
}

/// Decodes one delivery, dead-letters its bad parts, and adds its records to the batch
/// (dispatching the batch when full). Errors are AMQP failures: the session is lost.
#[allow(clippy::too_many_arguments)]
async fn on_delivery(
    session: &mut Session,
    settings: &Settings,
    engine: &Engine,
    batcher: &mut Batcher,
    log: &mut RateLimitedLog,
    stats: &IntakeStats,
    delivery: lapin::message::Delivery,
) -> Result<(), String> {
    stats.messages.fetch_add(1, Ordering::Relaxed);
    let tag = delivery.delivery_tag;
    session.received(tag);
    let ctx = DecodeContext {
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
        received_ns: now_ns(),
        default_project: &settings.default_project,
        default_module: &settings.default_module,
        max_bytes: settings.max_message_bytes,
    };
    let decoded = decode(&delivery.data, &ctx);
    if !decoded.bad.is_empty() {
        let mut confirms = Vec::with_capacity(decoded.bad.len());
        for bad in &decoded.bad {
            log.bad_input(delivery.routing_key.as_str(), bad);
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            let body = bad_element_body(&delivery.data, bad);
            let routing_key = delivery.routing_key.as_str();
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
        return session.ack_finished(stats).await.map_err(|e| e.to_string());
    }
    stats
        .records
        .fetch_add(decoded.records.len() as u64, Ordering::Relaxed);
    if batcher.records.len() + decoded.records.len() > batcher.max_records
        && let Some(batch) = batcher.take(engine)
    {
        engine.dispatch(batch).await;
    }
    batcher.records.extend(decoded.records);
    batcher.flags.extend(decoded.flags);
    batcher.deliveries.push(DeliveryRef {
        generation: session.generation,
        tag,
    });
    batcher.started.get_or_insert_with(Instant::now);
    if batcher.records.len() >= batcher.max_records
        && let Some(batch) = batcher.take(engine)
    {
        engine.dispatch(batch).await;
    }
    Ok(())
}

/// On shutdown: dispatch the partial batch, let batches in flight finish and ack them.
async fn drain(
    session: &mut Session,
    settings: &Settings,
    engine: &Engine,
    batcher: &mut Batcher,
    completions: &mut mpsc::UnboundedReceiver<Completed>,
    stats: &IntakeStats,
) {
    let deadline = Instant::now() + settings.shutdown_timeout;
    if let Some(batch) = batcher.take(engine) {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, engine.dispatch(batch))
            .await
            .is_err()
        {
            tracing::warn!("Shutdown timeout reached while handing on the last batch.");
        }
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if engine.pending_batches() == 0 {
            while let Ok(done) = completions.try_recv() {
                let _ = settle(session, settings, done, stats).await;
            }
            break;
        }
        match tokio::time::timeout(left.min(Duration::from_millis(100)), completions.recv()).await {
            Ok(Some(done)) => {
                if settle(session, settings, done, stats).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) if left.is_zero() => {
                tracing::warn!(
                    pending = engine.pending_batches(),
                    "Shutdown timeout reached; unfinished batches stay in the queue."
                );
                break;
            }
            Err(_) => {}
        }
    }
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
        if let Some(record) = done.batch.records.get(*index as usize) {
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
    fn record_json_keeps_attributes_as_json() {
        let r = Record::new("a", 5, logrelay_plugin_api::Level::ERROR, "p", "m", "hi")
            .with_attributes(r#"{"k":[1,2]}"#);
        assert_eq!(
            record_json(&r),
            r#"{"attributes":{"k":[1,2]},"id":"a","level":"error","message":"hi","module":"m","project":"p","timestamp_ns":5}"#
        );
    }
}
