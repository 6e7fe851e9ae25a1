//! Dispatch: routes a batch to the instances, with back-pressure from required ones and
//! skipping for best-effort ones that are behind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Engine;
use super::batch::Batch;
use super::instance::Instance;
use super::worker::{Job, Subset};
use crate::config::Acceptance;

impl Engine {
    /// Routes a batch to the instances. Waits while a required instance's channel is full: that
    /// wait is the back-pressure that stops intake.
    pub async fn dispatch(&self, batch: Batch) {
        let _no_swap = self.reloading.read().await;
        let batch = Arc::new(batch);
        let instances = self.instances();
        let mut jobs: Vec<(&Arc<Instance>, Job)> = Vec::with_capacity(instances.len());
        let mut waiting = Vec::new();
        for inst in instances.iter() {
            let subset = if inst.spec.route.is_all() {
                None
            } else {
                let idx: Vec<u32> = batch
                    .records()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| inst.spec.route.matches(r))
                    .map(|(i, _)| i as u32)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                if idx.len() == batch.records().len() {
                    None
                } else {
                    let (records, flags) = batch.pick(&idx);
                    Some(Subset {
                        records,
                        flags,
                        origin: Arc::from(idx),
                    })
                }
            };
            if batch.records().is_empty() {
                continue;
            }
            if inst.spec.acceptance == Acceptance::Required {
                waiting.push((inst.index, subset.as_ref().map(|s| s.origin.clone())));
            } else if inst.is_disabled() {
                continue;
            }
            jobs.push((
                inst,
                Job {
                    batch: batch.clone(),
                    subset,
                },
            ));
        }
        self.tracker.register(&batch, waiting);
        for (inst, job) in jobs {
            if inst.is_disabled() {
                // The tracker already failed (or will fail) what was routed to it.
                continue;
            }
            let Some(tx) = inst.sender() else {
                continue;
            };
            match inst.spec.acceptance {
                Acceptance::Required => self.send_required(inst, &tx, job).await,
                Acceptance::BestEffort if self.lossless_best_effort.load(Ordering::Relaxed) => {
                    let _ = tx.send(job).await;
                }
                Acceptance::BestEffort => {
                    if let Err(mpsc::error::TrySendError::Full(job)) = tx.try_send(job) {
                        let n = job.records().len() as u64;
                        inst.stats.records_dropped.fetch_add(n, Ordering::Relaxed);
                        warn_dropped(inst, n);
                    }
                }
            }
        }
    }

    /// Hands a job to a required instance, waiting for room in its channel (back-pressure), but
    /// not past the instance being disabled (the tracker has failed its records then) or the
    /// engine stopping (the batch is abandoned and will be redelivered).
    async fn send_required(&self, inst: &Instance, tx: &mpsc::Sender<Job>, job: Job) {
        let batch_id = job.batch.id;
        loop {
            tokio::select! {
                permit = tx.reserve() => {
                    match permit {
                        Ok(permit) => permit.send(job),
                        Err(_) => self
                            .tracker
                            .instance_disabled(inst.index, "the instance's worker stopped"),
                    }
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if inst.is_disabled() {
                        return;
                    }
                    if self.stop.is_set() {
                        self.tracker.abandon(batch_id);
                        return;
                    }
                }
            }
        }
    }

    /// Makes dispatch wait for best-effort instances too (as for required ones) instead of
    /// skipping their records when they are behind: for `replay`, where the input is finite and
    /// nothing should be skipped. Their failures still never hold up completion.
    pub fn wait_for_best_effort(&self, wait: bool) {
        self.lossless_best_effort.store(wait, Ordering::Relaxed);
    }
}

fn warn_dropped(inst: &Instance, n: u64) {
    let mut last = inst
        .last_drop_warning
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            plugin = %inst.spec.name,
            records = n,
            total_dropped = inst.stats.records_dropped.load(Ordering::Relaxed),
            "Best-effort instance is behind; records skipped for it."
        );
    }
}
