//! The worker thread of an instance: takes its queued jobs in order, hands a busy instance what
//! queued up meanwhile in one call (coalescing), retries transient errors, and reports each
//! job's outcome to the tracker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use abi_stable::std_types::RSlice;
use logrelay_plugin_api::refusal::one_line;
use logrelay_plugin_api::{ErrorKind, Record, RecordFlags};
use tokio::sync::mpsc;

use super::backoff::backoff;
use super::batch::Batch;
use super::instance::Instance;
use super::lifecycle::Stop;
use super::tracker::Tracker;
use crate::config::Acceptance;

/// The records of a batch one instance gets.
pub(super) struct Job {
    pub(super) batch: Arc<Batch>,
    /// The part of the batch a route filter picked, when it is not all of it.
    pub(super) subset: Option<Subset>,
}

/// The records of a batch a route filter picked.
pub(super) struct Subset {
    pub(super) records: Vec<Record>,
    /// Their flags (`None` when the batch has none).
    pub(super) flags: Option<Vec<RecordFlags>>,
    /// Their indices in the batch.
    pub(super) origin: Arc<[u32]>,
}

impl Job {
    pub(super) fn records(&self) -> &[Record] {
        match &self.subset {
            Some(s) => &s.records,
            None => self.batch.records(),
        }
    }

    /// One per record of [`Job::records`], or `None` when unknown.
    fn flags(&self) -> Option<&[RecordFlags]> {
        match &self.subset {
            Some(s) => s.flags.as_deref(),
            None => self.batch.flags(),
        }
    }

    /// Maps indices into [`Job::records`] back to indices into the batch.
    fn origin(&self, i: u32) -> u32 {
        match &self.subset {
            Some(s) => s.origin.get(i as usize).copied().unwrap_or(i),
            None => i,
        }
    }
}

pub(super) struct Worker {
    pub(super) inst: Arc<Instance>,
    pub(super) tracker: Arc<Tracker>,
    pub(super) stop: Arc<Stop>,
    pub(super) epoch: Instant,
    pub(super) retry_max: Duration,
    pub(super) coalesce_max: usize,
}

#[derive(Clone)]
enum Outcome {
    Accepted,
    /// Refused records, by index (ascending, each once), each with its own reason; then the
    /// refusal's summary, for the log.
    Rejected(Vec<(u32, String)>, String),
    /// Refused without naming records: all of them.
    RejectedAll(String),
    Failed(String),
    Abandoned,
}

impl Worker {
    pub(super) fn run(&self, mut rx: mpsc::Receiver<Job>) {
        let mut carried: Option<Job> = None;
        loop {
            let Some(first) = carried.take().or_else(|| rx.blocking_recv()) else {
                break;
            };
            // An instance that is behind gets what queued up meanwhile in one call: fewer,
            // larger calls are cheaper per record (a store commits once instead of four times)
            // and cost no latency, since the queued batches would wait anyway.
            let mut total = first.records().len();
            let mut jobs = vec![first];
            while total < self.coalesce_max {
                let Ok(next) = rx.try_recv() else {
                    break;
                };
                let n = next.records().len();
                if total + n > self.coalesce_max {
                    carried = Some(next);
                    break;
                }
                total += n;
                jobs.push(next);
            }
            if self.inst.is_disabled() {
                let reason = self.disabled_message();
                for job in &jobs {
                    self.report(job, Outcome::Failed(reason.clone()));
                }
                continue;
            }
            match jobs.as_slice() {
                [job] => {
                    let outcome = self.deliver(job.records(), job.flags());
                    self.report(job, outcome);
                }
                _ => {
                    let merged: Vec<Record> = jobs
                        .iter()
                        .flat_map(|j| j.records().iter().cloned())
                        .collect();
                    // Flags only if every batch has them, so that they stay one per record.
                    let flags: Option<Vec<RecordFlags>> =
                        jobs.iter()
                            .try_fold(Vec::with_capacity(total), |mut all, j| {
                                all.extend_from_slice(j.flags()?);
                                Some(all)
                            });
                    self.inst.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                    match self.deliver(&merged, flags.as_deref()) {
                        // Refused as a whole: which batch was bad is unknown, so each is
                        // offered again alone and only the bad ones are refused.
                        Outcome::RejectedAll(_) => {
                            for job in &jobs {
                                let outcome = self.deliver(job.records(), job.flags());
                                self.report(job, outcome);
                            }
                        }
                        outcome => self.report_merged(&jobs, outcome),
                    }
                }
            }
        }
        if !self.inst.is_disabled()
            && let Err(e) = self.inst.plugin.shutdown().into_result()
        {
            tracing::warn!(plugin = %self.inst.spec.name, error = %e, "Instance shutdown failed.");
        }
    }

    fn disabled_message(&self) -> String {
        format!(
            "instance `{}` is disabled: {}",
            self.inst.spec.name,
            self.inst.disabled_reason().unwrap_or_default()
        )
    }

    /// Calls `handle_batch` until it succeeds or fails for good, through the library's
    /// `handle_batch_flagged` when it has one and the flags are known (`flags`: one per
    /// record). Indices in the outcome are into `records`.
    fn deliver(&self, records: &[Record], flags: Option<&[RecordFlags]>) -> Outcome {
        let mut attempt: u32 = 0;
        loop {
            let started = (self.epoch.elapsed().as_millis() as u64).max(1);
            self.inst.busy_since_ms.store(started, Ordering::Release);
            let call_started = Instant::now();
            let result = match (self.inst.flagged, flags) {
                (Some(call), Some(flags)) => call(
                    &self.inst.plugin,
                    RSlice::from_slice(records),
                    RSlice::from_slice(flags),
                ),
                _ => self.inst.plugin.handle_batch(RSlice::from_slice(records)),
            }
            .into_result();
            self.inst.busy_since_ms.store(0, Ordering::Release);
            self.inst.stats.call_seconds.observe(call_started.elapsed());
            if self.inst.is_disabled() {
                // The watchdog gave up on this call while it ran; it has been accounted for.
                return Outcome::Failed(self.disabled_message());
            }
            let e = match result {
                Ok(()) => return Outcome::Accepted,
                Err(e) => e,
            };
            match e.kind {
                ErrorKind::TRANSIENT => {
                    attempt = attempt.saturating_add(1);
                    self.inst.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt, self.retry_max, e.retry_after());
                    if attempt <= 3 || attempt.is_power_of_two() {
                        tracing::warn!(
                            plugin = %self.inst.spec.name,
                            error = %e.message,
                            attempt,
                            retry_in_ms = wait.as_millis() as u64,
                            "Batch delivery failed; will retry."
                        );
                    }
                    if self.stop.sleep(wait) {
                        return Outcome::Abandoned;
                    }
                }
                ErrorKind::PERMANENT => {
                    let mut named: Vec<u32> = e
                        .bad_records
                        .iter()
                        .copied()
                        .filter(|i| (*i as usize) < records.len())
                        .collect();
                    named.sort_unstable();
                    named.dedup();
                    // Each record gets its own reason where the message has one
                    // (logrelay_plugin_api::refusal), else the summary; all on one line, as
                    // each becomes a dead letter's reason header.
                    let reasons = e.record_reasons();
                    let name = &self.inst.spec.name;
                    let summary = format!("refused by `{name}`: {}", reasons.summary());
                    // None named (or only indices outside the batch): the whole batch is bad.
                    return if named.is_empty() {
                        Outcome::RejectedAll(summary)
                    } else {
                        let named = named
                            .into_iter()
                            .map(|i| (i, format!("refused by `{name}`: {}", reasons.get(i))))
                            .collect();
                        Outcome::Rejected(named, summary)
                    };
                }
                _ => {
                    let reason = format!("{} error: {}", e.kind, one_line(&e.message));
                    self.inst.disable(&reason);
                    return Outcome::Failed(self.disabled_message());
                }
            }
        }
    }

    /// Splits the outcome of one call over several jobs back into each job's outcome.
    fn report_merged(&self, jobs: &[Job], outcome: Outcome) {
        let (bad, summary) = match outcome {
            Outcome::Rejected(bad, summary) => (bad, summary),
            other => {
                for job in jobs {
                    self.report(job, other.clone());
                }
                return;
            }
        };
        // The indices are ascending: each job takes the next run of them.
        let mut bad = bad.into_iter().peekable();
        let mut start = 0u32;
        for job in jobs {
            let len = job.records().len() as u32;
            let mut mine = Vec::new();
            while let Some((i, reason)) = bad.next_if(|(i, _)| *i < start + len) {
                mine.push((i - start, reason));
            }
            let own = if mine.is_empty() {
                Outcome::Accepted
            } else {
                Outcome::Rejected(mine, summary.clone())
            };
            self.report(job, own);
            start += len;
        }
    }

    /// Accounts for a job's outcome; indices in `Rejected` are into the job's records.
    fn report(&self, job: &Job, outcome: Outcome) {
        let stats = &self.inst.stats;
        let required = self.inst.spec.acceptance == Acceptance::Required;
        let n = job.records().len() as u64;
        match outcome {
            Outcome::Accepted => {
                stats.batches_ok.fetch_add(1, Ordering::Relaxed);
                stats.records_ok.fetch_add(n, Ordering::Relaxed);
                if required {
                    self.tracker
                        .settle(job.batch.id, self.inst.index, Vec::new());
                }
            }
            Outcome::Rejected(bad, summary) => {
                let bad = bad
                    .into_iter()
                    .map(|(i, reason)| (job.origin(i), reason))
                    .collect();
                self.report_refused(job, bad, &summary);
            }
            Outcome::RejectedAll(reason) => {
                let bad = (0..n as u32)
                    .map(|i| (job.origin(i), reason.clone()))
                    .collect();
                self.report_refused(job, bad, &reason);
            }
            Outcome::Failed(reason) => {
                stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                if required {
                    self.tracker.instance_disabled(self.inst.index, &reason);
                }
            }
            Outcome::Abandoned => {
                if required {
                    self.tracker.abandon(job.batch.id);
                }
            }
        }
    }

    /// Counts and settles the records of `job` the instance refused (`bad`: indices in the
    /// dispatched batch, each with its reason; `summary`: the refusal's summary, for the log).
    fn report_refused(&self, job: &Job, bad: Vec<(u32, String)>, summary: &str) {
        let stats = &self.inst.stats;
        let n = job.records().len() as u64;
        stats.batches_failed.fetch_add(1, Ordering::Relaxed);
        stats
            .records_rejected
            .fetch_add(bad.len() as u64, Ordering::Relaxed);
        stats
            .records_ok
            .fetch_add(n.saturating_sub(bad.len() as u64), Ordering::Relaxed);
        tracing::warn!(plugin = %self.inst.spec.name, records = bad.len(), reason = %summary, "Records refused.");
        for (index, reason) in &bad {
            tracing::trace!(plugin = %self.inst.spec.name, index, reason = %reason, "Record refused.");
        }
        if self.inst.spec.acceptance == Acceptance::Required {
            self.tracker.settle(job.batch.id, self.inst.index, bad);
        }
    }
}
