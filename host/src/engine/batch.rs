//! Batches: the records handed to the instances together, where they came from, and what is
//! reported when every required instance is done with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use logrelay_plugin_api::{Record, RecordFlags};

/// Where a batch's records came from, so the feeder can acknowledge them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef {
    /// The AMQP channel generation (a reconnect starts a new one; old tags cannot be acked).
    pub generation: u64,
    /// The delivery tag.
    pub tag: u64,
}

/// Records handed to the instances together.
///
/// Records and their flags are kept side by side for the plugin call (two slices), and agree by
/// construction: a batch is made only by [`BatchBuilder`], which takes each record with its
/// flags, or by [`Batch::flagged`] / [`Batch::unflagged`]. Nothing downstream checks them again.
#[derive(Debug)]
pub struct Batch {
    /// Unique within the engine.
    pub id: u64,
    /// The records, built once for every instance.
    records: Vec<Record>,
    /// What the host knows about each record beyond its fields: `flags[i]` is for
    /// `records[i]`. `None` when nothing is known (instances are then told nothing, and a
    /// store treats every record as possibly seen before).
    flags: Option<Vec<RecordFlags>>,
    /// The deliveries whose records these are.
    pub deliveries: Vec<DeliveryRef>,
}

impl Batch {
    /// A batch whose records each come with their flags.
    pub fn flagged(
        id: u64,
        records: impl IntoIterator<Item = (Record, RecordFlags)>,
        deliveries: Vec<DeliveryRef>,
    ) -> Batch {
        let (records, flags) = records.into_iter().unzip();
        Batch {
            id,
            records,
            flags: Some(flags),
            deliveries,
        }
    }

    /// A batch about whose records nothing is known beyond their fields: the instances get
    /// them without flags.
    pub fn unflagged(id: u64, records: Vec<Record>, deliveries: Vec<DeliveryRef>) -> Batch {
        Batch {
            id,
            records,
            flags: None,
            deliveries,
        }
    }

    /// The records.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// One per record of [`Batch::records`], or `None` when nothing is known.
    pub fn flags(&self) -> Option<&[RecordFlags]> {
        self.flags.as_deref()
    }

    /// The records at `indices` (each in range, ascending) with their flags, for an instance
    /// whose route picked only those.
    pub(super) fn pick(&self, indices: &[u32]) -> (Vec<Record>, Option<Vec<RecordFlags>>) {
        let records = indices
            .iter()
            .filter_map(|i| self.records.get(*i as usize).cloned())
            .collect();
        let flags = self.flags.as_ref().map(|flags| {
            indices
                .iter()
                .filter_map(|i| flags.get(*i as usize).copied())
                .collect()
        });
        (records, flags)
    }
}

/// Gathers records (each with its flags) and the deliveries they came from into batches, for
/// both the RabbitMQ intake and `replay`. Made by [`Engine::batch_builder`](super::Engine::batch_builder),
/// which numbers its batches.
#[derive(Debug)]
pub struct BatchBuilder {
    /// The engine's batch counter.
    ids: Arc<AtomicU64>,
    records: Vec<Record>,
    flags: Vec<RecordFlags>,
    deliveries: Vec<DeliveryRef>,
    /// When the first record of the batch being filled went in.
    opened: Option<Instant>,
    max_records: usize,
}

impl BatchBuilder {
    pub(super) fn new(ids: Arc<AtomicU64>, max_records: usize) -> BatchBuilder {
        BatchBuilder {
            ids,
            records: Vec::with_capacity(max_records),
            flags: Vec::with_capacity(max_records),
            deliveries: Vec::new(),
            opened: None,
            max_records,
        }
    }

    /// Records gathered so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was gathered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// True when `more` records would take the batch past its size: hand it on first, so a
    /// delivery's records stay in one batch.
    pub fn would_overflow(&self, more: usize) -> bool {
        self.records.len() + more > self.max_records
    }

    /// True when the batch has reached its size.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    /// When the batch being filled got its first record (`None` while empty).
    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// Adds records, each with its flags.
    pub fn add_records(&mut self, records: impl IntoIterator<Item = (Record, RecordFlags)>) {
        let records = records.into_iter();
        let (more, _) = records.size_hint();
        self.records.reserve(more);
        self.flags.reserve(more);
        for (record, flags) in records {
            self.records.push(record);
            self.flags.push(flags);
        }
        if !self.records.is_empty() {
            self.opened.get_or_insert_with(Instant::now);
        }
    }

    /// Adds a delivery the batch's records came from (acknowledged when the batch completes).
    pub fn add_delivery(&mut self, delivery: DeliveryRef) {
        self.deliveries.push(delivery);
    }

    /// The batch gathered so far, numbered; `None` when it has no record. The builder starts
    /// the next one.
    pub fn take(&mut self) -> Option<Batch> {
        if self.records.is_empty() {
            return None;
        }
        self.opened = None;
        Some(Batch {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            records: std::mem::replace(&mut self.records, Vec::with_capacity(self.max_records)),
            flags: Some(std::mem::replace(
                &mut self.flags,
                Vec::with_capacity(self.max_records),
            )),
            deliveries: std::mem::take(&mut self.deliveries),
        })
    }

    /// Drops what was gathered (for the intake: the connection it came on is lost, so the
    /// broker redelivers it).
    pub fn clear(&mut self) {
        self.records.clear();
        self.flags.clear();
        self.deliveries.clear();
        self.opened = None;
    }
}

/// A batch every required instance is done with.
#[derive(Debug)]
pub struct Completed {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Records a required instance refused or could not take, with the reason, by index.
    pub failed: Vec<(u32, String)>,
}

#[cfg(test)]
mod tests {
    use logrelay_plugin_api::Level;

    use super::*;

    fn record(id: &str) -> Record {
        Record::new(id, 1, Level::INFO, "p", "m", "hi")
    }

    #[test]
    fn builder_numbers_batches_and_keeps_flags_with_their_records() {
        let mut b = BatchBuilder::new(Arc::new(AtomicU64::new(7)), 3);
        assert!(b.take().is_none() && b.opened().is_none());
        b.add_records([
            (record("a"), RecordFlags::NONE),
            (record("b"), RecordFlags::RECEIVE_TIME),
        ]);
        b.add_delivery(DeliveryRef {
            generation: 1,
            tag: 4,
        });
        assert!(b.opened().is_some());
        assert!(b.would_overflow(2) && !b.would_overflow(1) && !b.is_full());
        let batch = b.take().expect("a batch");
        assert_eq!(batch.id, 7);
        let ids: Vec<&str> = batch.records().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            batch.flags(),
            Some(&[RecordFlags::NONE, RecordFlags::RECEIVE_TIME][..])
        );
        assert_eq!(
            batch.deliveries,
            [DeliveryRef {
                generation: 1,
                tag: 4
            }]
        );
        let (picked, flags) = batch.pick(&[1]);
        assert_eq!(picked[0].id.as_str(), "b");
        assert_eq!(flags, Some(vec![RecordFlags::RECEIVE_TIME]));
        assert!(b.is_empty() && b.opened().is_none());
        b.add_records([(record("c"), RecordFlags::NONE)]);
        b.clear();
        assert!(b.take().is_none());
        b.add_records([(record("d"), RecordFlags::NONE)]);
        assert_eq!(b.take().map(|b| b.id), Some(8));
    }

    #[test]
    fn an_unflagged_batch_says_nothing_of_its_records() {
        let batch = Batch::unflagged(1, vec![record("a")], Vec::new());
        assert_eq!(batch.flags(), None);
        assert_eq!(batch.pick(&[0]).1, None);
    }
}
