//! The live tail: `handle_batch` publishes each batch (once, shared by every client) on a
//! bounded broadcast channel and never waits; each `GET /logs/stream` client filters what it
//! receives. A client that falls more than `stream_buffer_batches` behind skips the oldest
//! batches and gets a `skipped` event with the number of records it missed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::response::sse::Event;
use futures_util::Stream;
use logrelay_plugin_api::Record;
use serde_json::json;
use tokio::sync::broadcast;

use crate::params::Filter;
use crate::records::record_json;

/// One published batch: the records and their JSON, built once for every client.
pub struct LiveBatch {
    /// Sequence number of the first record (records are numbered as published).
    pub first_seq: u64,
    /// The records with their JSON text.
    pub records: Vec<(Record, String)>,
}

/// The broadcast hub.
pub struct Hub {
    tx: broadcast::Sender<Arc<LiveBatch>>,
    next_seq: AtomicU64,
    clients: Arc<AtomicUsize>,
    max_clients: usize,
}

/// Counts a connected client while it lives.
pub struct ClientGuard(Arc<AtomicUsize>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    /// A hub keeping `capacity` batches for slow clients, serving at most `max_clients`.
    pub fn new(capacity: usize, max_clients: usize) -> Hub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub {
            tx,
            next_seq: AtomicU64::new(0),
            clients: Arc::new(AtomicUsize::new(0)),
            max_clients,
        }
    }

    /// Live-tail clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Publishes a batch to the connected clients; nothing is built when there are none.
    /// Never blocks.
    pub fn publish(&self, batch: &[Record]) {
        if batch.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        let records = batch
            .iter()
            .map(|r| (r.clone(), record_json(r)))
            .collect::<Vec<_>>();
        let first_seq = self
            .next_seq
            .fetch_add(records.len() as u64, Ordering::AcqRel);
        // An error only means every client left meanwhile.
        let _ = self.tx.send(Arc::new(LiveBatch { first_seq, records }));
    }

    /// Subscribes a client, or `None` when `max_clients` are connected.
    pub fn subscribe(&self, filter: Filter) -> Option<Subscription> {
        let n = self.clients.fetch_add(1, Ordering::AcqRel);
        let guard = ClientGuard(self.clients.clone());
        if n >= self.max_clients {
            return None;
        }
        Some(Subscription {
            rx: self.tx.subscribe(),
            filter,
            expected: None,
            pending: VecDeque::new(),
            _guard: guard,
        })
    }
}

/// One client's view of the hub.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<LiveBatch>>,
    filter: Filter,
    expected: Option<u64>,
    pending: VecDeque<Event>,
    _guard: ClientGuard,
}

/// What a subscription yields, before it becomes an SSE event.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// A matching record: its id and JSON.
    Record(String, String),
    /// This many records were skipped because the client was too slow.
    Skipped(u64),
}

impl Subscription {
    /// The next items: matching records of the next batch, after a `Skipped` if records were
    /// missed. `None` when the hub is gone.
    pub async fn next_items(&mut self) -> Option<Vec<Item>> {
        loop {
            match self.rx.recv().await {
                Ok(batch) => {
                    let mut items = Vec::new();
                    if let Some(expected) = self.expected
                        && batch.first_seq > expected
                    {
                        items.push(Item::Skipped(batch.first_seq - expected));
                    }
                    self.expected = Some(batch.first_seq + batch.records.len() as u64);
                    for (r, json) in &batch.records {
                        if self.filter.matches(r, None) {
                            items.push(Item::Record(r.id.to_string(), json.clone()));
                        }
                    }
                    if !items.is_empty() {
                        return Some(items);
                    }
                }
                // The next `recv` returns the oldest batch kept; the gap is counted from the
                // sequence numbers, in records.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The subscription as a stream of SSE events.
    pub fn into_events(self) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut sub| async move {
            loop {
                if let Some(e) = sub.pending.pop_front() {
                    return Some((Ok(e), sub));
                }
                let items = sub.next_items().await?;
                for item in items {
                    sub.pending.push_back(to_event(item));
                }
            }
        })
    }
}

fn to_event(item: Item) -> Event {
    match item {
        Item::Record(id, json) => {
            let e = Event::default().event("log").data(json);
            // An SSE id cannot hold line breaks or NUL; such ids are left out of the `id:` line
            // (the JSON still has them).
            if id.contains(['\n', '\r', '\0']) {
                e
            } else {
                e.id(id)
            }
        }
        Item::Skipped(n) => Event::default().event("skipped").data(
            json!({
                "skipped": n,
                "message": format!("this client was too slow and missed {n} records (of any filter)"),
            })
            .to_string(),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use logrelay_plugin_api::Level;

    use super::*;

    fn recs(first: usize, n: usize) -> Vec<Record> {
        (first..first + n)
            .map(|i| {
                Record::new(
                    format!("r{i}"),
                    i as i64,
                    Level::ALL[i % 6],
                    "p",
                    "m",
                    "msg",
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn slow_clients_are_told_how_many_they_missed() {
        let hub = Hub::new(2, 4);
        let mut sub = hub.subscribe(Filter::default()).unwrap();
        hub.publish(&recs(0, 3));
        assert_eq!(sub.next_items().await.unwrap().len(), 3);
        for i in 0..5 {
            hub.publish(&recs(3 + i * 10, 10));
        }
        // Three batches of 10 were dropped for this client; the last two are kept.
        let items = sub.next_items().await.unwrap();
        assert_eq!(items[0], Item::Skipped(30));
        assert_eq!(items.len(), 11);
        assert_eq!(sub.next_items().await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn filters_apply_and_clients_are_limited() {
        let hub = Hub::new(8, 1);
        let f = Filter {
            min_level: Some(Level::ERROR),
            ..Filter::default()
        };
        let mut sub = hub.subscribe(f).unwrap();
        assert!(hub.subscribe(Filter::default()).is_none());
        assert_eq!(hub.clients(), 1);
        hub.publish(&recs(0, 12));
        let items = sub.next_items().await.unwrap();
        assert_eq!(items.len(), 4);
        drop(sub);
        assert_eq!(hub.clients(), 0);
        // No clients: nothing is built or kept.
        hub.publish(&recs(0, 12));
    }
}
