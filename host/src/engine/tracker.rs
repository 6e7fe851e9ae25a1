//! The acceptance tracker: which required instances each dispatched batch still waits for, and
//! which of its records failed and why. It reports a batch complete when nothing waits on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::batch::{Batch, Completed};

/// A dispatched batch not yet complete.
struct PendingBatch {
    batch: Arc<Batch>,
    /// Required instances still working on it, with the indices they were given (None: all).
    waiting: Vec<(usize, Option<Arc<[u32]>>)>,
    failed: BTreeMap<u32, String>,
}

#[derive(Default)]
pub(super) struct TrackerState {
    pending: HashMap<u64, PendingBatch>,
    disabled: HashMap<usize, String>,
}

/// Decides when a batch is complete and sends it to the feeder.
pub(super) struct Tracker {
    pub(super) state: Mutex<TrackerState>,
    pub(super) done: mpsc::UnboundedSender<Completed>,
    /// Notified whenever no batch is pending.
    pub(super) idle: tokio::sync::Notify,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn register(&self, batch: &Arc<Batch>, waiting: Vec<(usize, Option<Arc<[u32]>>)>) {
        let mut st = self.lock();
        let mut pending = PendingBatch {
            batch: batch.clone(),
            waiting: Vec::with_capacity(waiting.len()),
            failed: BTreeMap::new(),
        };
        for (inst, idx) in waiting {
            if let Some(reason) = st.disabled.get(&inst) {
                fail_indices(&mut pending, &idx, reason);
            } else {
                pending.waiting.push((inst, idx));
            }
        }
        if pending.waiting.is_empty() {
            self.complete(pending);
        } else {
            st.pending.insert(batch.id, pending);
        }
    }

    /// An instance is done with a batch; `failed` are batch indices it could not take, each
    /// with its reason.
    pub(super) fn settle(&self, batch_id: u64, inst: usize, failed: Vec<(u32, String)>) {
        let mut st = self.lock();
        let Some(p) = st.pending.get_mut(&batch_id) else {
            return;
        };
        let Some(pos) = p.waiting.iter().position(|(i, _)| *i == inst) else {
            return;
        };
        p.waiting.swap_remove(pos);
        for (i, reason) in failed {
            p.failed.entry(i).or_insert(reason);
        }
        if p.waiting.is_empty()
            && let Some(p) = st.pending.remove(&batch_id)
        {
            self.complete(p);
        }
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Gives up on a batch without completing it: its deliveries stay unacknowledged and the
    /// broker redelivers them (shutdown while an instance was still retrying).
    pub(super) fn abandon(&self, batch_id: u64) {
        let mut st = self.lock();
        st.pending.remove(&batch_id);
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Fails every batch still waiting on `inst`, and every later one routed to it.
    pub(super) fn instance_disabled(&self, inst: usize, reason: &str) {
        let mut st = self.lock();
        st.disabled.insert(inst, reason.to_owned());
        let ids: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.iter().any(|(i, _)| *i == inst))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut p) = st.pending.remove(&id) else {
                continue;
            };
            if let Some(pos) = p.waiting.iter().position(|(i, _)| *i == inst) {
                let (_, idx) = p.waiting.swap_remove(pos);
                fail_indices(&mut p, &idx, reason);
            }
            if p.waiting.is_empty() {
                self.complete(p);
            } else {
                st.pending.insert(id, p);
            }
        }
        if st.pending.is_empty() {
            self.idle.notify_waiters();
        }
    }

    fn complete(&self, p: PendingBatch) {
        let _ = self.done.send(Completed {
            batch: p.batch,
            failed: p.failed.into_iter().collect(),
        });
    }

    pub(super) fn pending_batches(&self) -> usize {
        self.lock().pending.len()
    }
}

fn fail_indices(p: &mut PendingBatch, idx: &Option<Arc<[u32]>>, reason: &str) {
    let all: Vec<u32>;
    let list: &[u32] = match idx {
        Some(list) => list,
        None => {
            all = (0..p.batch.records().len() as u32).collect();
            &all
        }
    };
    for i in list {
        p.failed.entry(*i).or_insert_with(|| reason.to_owned());
    }
}
