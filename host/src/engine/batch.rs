//! Batches: the records handed to the instances together, where they came from, and what is
//! reported when every required instance is done with them.

use std::sync::Arc;

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
#[derive(Debug)]
pub struct Batch {
    /// Unique within the engine.
    pub id: u64,
    /// The records, built once for every instance.
    pub records: Vec<Record>,
    /// What the host knows about each record beyond its fields: `flags[i]` is for
    /// `records[i]`. Empty when nothing is known (instances are then told nothing).
    pub flags: Vec<RecordFlags>,
    /// The deliveries whose records these are.
    pub deliveries: Vec<DeliveryRef>,
}

/// A batch every required instance is done with.
#[derive(Debug)]
pub struct Completed {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Records a required instance refused or could not take, with the reason, by index.
    pub failed: Vec<(u32, String)>,
}
