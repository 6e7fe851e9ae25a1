//! The state shared by `handle_batch`, the sender task and the command poller: the bounded
//! queue, grouping windows, folded summaries, mutes, token buckets and counters.
//!
//! `handle_batch` takes the lock once per batch, matches and renders, and enqueues; it never
//! waits on Telegram. The sender task takes the lock only to pick the next message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use logrelay_plugin_api::Record;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::config::{ChatTarget, RateLimit, Settings};
use crate::rules::{default_fingerprint, firing};
use crate::template::{MESSAGE_LIMIT, RenderContext, escape, split_html};

/// Counters since the instance started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Alerts produced by rules (before grouping and mutes).
    pub alerts: AtomicU64,
    /// Telegram messages delivered (a split alert counts each part; command replies included).
    pub sent: AtomicU64,
    /// Alerts absorbed into a grouped message.
    pub grouped: AtomicU64,
    /// Send attempts that failed and were retried (network, timeout, 5xx).
    pub failed: AtomicU64,
    /// Messages Telegram refused for good (chat not found, bot blocked...), not retried.
    pub rejected: AtomicU64,
    /// 429 answers; each was retried after its `retry_after`.
    pub rate_limited: AtomicU64,
    /// Alerts folded into a summary because the queue was full.
    pub folded: AtomicU64,
    /// Alerts not sent because their rule was muted.
    pub muted: AtomicU64,
    /// Commands ignored because they came from a chat that is not configured.
    pub ignored_commands: AtomicU64,
    /// Failed `getUpdates` calls.
    pub poll_failures: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What a queued message holds.
#[derive(Debug)]
pub enum Body {
    /// Ready HTML.
    Text(String),
    /// The summary of alerts folded for this chat, rendered when it is sent.
    Folded,
}

/// One message waiting to be sent.
#[derive(Debug)]
pub struct Outgoing {
    /// Where.
    pub target: ChatTarget,
    /// What.
    pub body: Body,
    /// Whether it counts against `queue_capacity` (alerts do; replies and summaries do not).
    pub counted: bool,
    /// A command reply: goes ahead of alerts, after earlier replies.
    pub reply: bool,
}

/// Alerts folded for one chat while the queue was full.
#[derive(Debug, Default)]
struct Folded {
    by_rule: BTreeMap<String, u64>,
}

/// A grouping window of one rule and fingerprint.
#[derive(Debug)]
struct Group {
    /// When the window closes.
    end: Instant,
    /// Identical alerts since the last message for this key.
    count: u64,
    /// The latest of them, shown in the grouped message.
    last: Option<Record>,
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: limit.burst,
            last: now,
        }
    }

    /// How long until a token is there (zero: now).
    fn wait(&mut self, limit: RateLimit, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_sec).min(limit.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / limit.per_sec)
        }
    }
}

/// The mutable part of the shared state.
#[derive(Debug)]
pub struct State {
    queue: VecDeque<Outgoing>,
    /// Queued messages that count against the capacity.
    counted: usize,
    folded: BTreeMap<ChatTarget, Folded>,
    groups: HashMap<(usize, String), Group>,
    /// Rule index -> muted until.
    muted: HashMap<usize, Instant>,
    chat_buckets: HashMap<i64, Bucket>,
    global: Bucket,
    /// A message is being sent (or retried) right now.
    pub in_flight: bool,
}

/// What the sender should do next.
pub enum Next {
    /// Send this.
    Send(ChatTarget, String),
    /// Nothing can go now: wait this long (or until woken); `None` means until woken.
    Wait(Option<Duration>),
}

/// Everything the tasks share.
pub struct Shared {
    /// The validated settings.
    pub settings: Settings,
    /// The instance name.
    pub instance: String,
    /// Counters.
    pub counters: Counters,
    /// Wakes the sender when something is queued.
    pub wake: Notify,
    state: Mutex<State>,
}

/// The status `/status` and `request("status")` report.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Alerts produced by rules.
    pub alerts: u64,
    /// Messages delivered.
    pub sent: u64,
    /// Alerts absorbed into grouped messages.
    pub grouped: u64,
    /// Failed (retried) send attempts.
    pub failed: u64,
    /// Messages refused by Telegram for good.
    pub rejected: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Alerts folded into summaries because the queue was full.
    pub folded: u64,
    /// Alerts not sent because their rule was muted.
    pub muted_alerts: u64,
    /// Commands ignored from chats that are not configured.
    pub ignored_commands: u64,
    /// Failed `getUpdates` calls.
    pub poll_failures: u64,
    /// Messages waiting to be sent.
    pub queued: usize,
    /// Muted rules.
    pub muted: Vec<MutedRule>,
}

/// A muted rule in [`Status`].
#[derive(Debug, Serialize)]
pub struct MutedRule {
    /// The rule's name.
    pub rule: String,
    /// Seconds until it is unmuted (rounded up).
    pub remaining_secs: u64,
}

/// Parses the attributes of a record; `None` when they are not a JSON object.
pub fn parse_attributes(record: &Record) -> Option<Map<String, Value>> {
    if record.attributes.as_str() == "{}" {
        return None;
    }
    serde_json::from_str(&record.attributes).ok()
}

/// `60 s`, `1500 ms`: a window as the grouped message shows it.
pub fn window_text(window: Duration) -> String {
    let ms = window.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// `2h 5m`, `45s`: a remaining time.
pub fn duration_text(d: Duration) -> String {
    let mut s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= len {
            let _ = write!(out, "{}{unit} ", s / len);
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out.trim_end().to_owned()
}

impl Shared {
    /// The shared state for `settings`.
    pub fn new(settings: Settings, instance: String) -> Shared {
        let now = Instant::now();
        let global = Bucket::full(settings.global_rate, now);
        Shared {
            settings,
            instance,
            counters: Counters::default(),
            wake: Notify::new(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                counted: 0,
                folded: BTreeMap::new(),
                groups: HashMap::new(),
                muted: HashMap::new(),
                chat_buckets: HashMap::new(),
                global,
                in_flight: false,
            }),
        }
    }

    /// Locks the state (a poisoned lock is taken over: the state stays consistent per call).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Matches a batch against the rules and queues its alerts. Never waits on Telegram.
    pub fn accept(&self, batch: &[Record]) {
        if batch.is_empty() || self.settings.rules.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut fired = Vec::new();
        let mut st = self.lock();
        st.muted.retain(|_, until| *until > now);
        let mut queued_any = false;
        for record in batch {
            fired.clear();
            // Attributes are parsed once per record, only when the record can match a rule.
            let attrs = parse_attributes(record);
            firing(&self.settings.rules, record, attrs.as_ref(), &mut fired);
            for &index in &fired {
                let rule = &self.settings.rules[index];
                if st.muted.contains_key(&index) {
                    bump(&self.counters.muted, 1);
                    continue;
                }
                bump(&self.counters.alerts, 1);
                if let Some(window) = self.settings.group_window {
                    let fingerprint = match &rule.fingerprint {
                        Some(t) => {
                            let mut out = String::new();
                            t.render(&mut out, record, attrs.as_ref(), &self.context(index));
                            out
                        }
                        None => default_fingerprint(record),
                    };
                    match st.groups.get_mut(&(index, fingerprint.clone())) {
                        Some(group) => {
                            group.count += 1;
                            group.last = Some(record.clone());
                            bump(&self.counters.grouped, 1);
                            continue;
                        }
                        None => {
                            st.groups.insert(
                                (index, fingerprint),
                                Group {
                                    end: now + window,
                                    count: 0,
                                    last: None,
                                },
                            );
                        }
                    }
                }
                let text = self.render(index, record, attrs.as_ref(), None);
                self.enqueue_alert(&mut st, index, &text);
                queued_any = true;
            }
            tracing::trace!(record = %record.id, rules = fired.len(), "Record matched.");
        }
        drop(st);
        if queued_any {
            self.wake.notify_one();
        }
    }

    fn context(&self, index: usize) -> RenderContext<'_> {
        RenderContext {
            rule: &self.settings.rules[index].name,
            time_format: &self.settings.time_format,
            show_attributes: &self.settings.show_attributes,
        }
    }

    /// Renders an alert of rule `index`, with the grouping footer when `grouped` is given.
    fn render(
        &self,
        index: usize,
        record: &Record,
        attrs: Option<&Map<String, Value>>,
        grouped: Option<u64>,
    ) -> String {
        let rule = &self.settings.rules[index];
        let template = rule.template.as_ref().unwrap_or(&self.settings.template);
        let mut out = String::new();
        template.render(&mut out, record, attrs, &self.context(index));
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        if let (Some(count), Some(window)) = (grouped, self.settings.group_window) {
            let _ = write!(out, "\n<i>×{count} in the last {}</i>", window_text(window));
        }
        out
    }

    /// Queues `text` (split when too long) for each chat of rule `index`, or folds it into the
    /// chat's summary when the queue is full.
    fn enqueue_alert(&self, st: &mut State, index: usize, text: &str) {
        let rule = &self.settings.rules[index];
        let parts = split_html(text, MESSAGE_LIMIT);
        for target in &rule.chats {
            if st.counted + parts.len() > self.settings.queue_capacity {
                bump(&self.counters.folded, 1);
                let entry = st.folded.entry(*target).or_default();
                let first = entry.by_rule.is_empty();
                *entry.by_rule.entry(rule.name.clone()).or_insert(0) += 1;
                if first {
                    st.queue.push_back(Outgoing {
                        target: *target,
                        body: Body::Folded,
                        counted: false,
                        reply: false,
                    });
                }
                continue;
            }
            for part in &parts {
                st.queue.push_back(Outgoing {
                    target: *target,
                    body: Body::Text(part.clone()),
                    counted: true,
                    reply: false,
                });
                st.counted += 1;
            }
        }
    }

    /// Queues a command reply ahead of the alerts.
    pub fn enqueue_reply(&self, target: ChatTarget, text: &str) {
        let mut st = self.lock();
        let first = st.queue.iter().take_while(|o| o.reply).count();
        for (at, part) in (first..).zip(split_html(text, MESSAGE_LIMIT)) {
            st.queue.insert(
                at,
                Outgoing {
                    target,
                    body: Body::Text(part),
                    counted: false,
                    reply: true,
                },
            );
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Sends grouped messages for windows that have closed (all of them when `all`), and forgets
    /// windows that closed with nothing grouped. Returns when the next window closes.
    fn flush_groups(&self, st: &mut State, now: Instant, all: bool) -> Option<Instant> {
        let window = self.settings.group_window?;
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        st.groups.retain(|key, g| {
            if g.end > now && !all {
                next = Some(next.map_or(g.end, |n| n.min(g.end)));
                return true;
            }
            match g.last.take() {
                Some(record) => {
                    due.push((key.0, record, g.count));
                    g.count = 0;
                    g.end = now + window;
                    next = Some(next.map_or(g.end, |n| n.min(g.end)));
                    true
                }
                None => false,
            }
        });
        for (index, record, count) in due {
            let attrs = parse_attributes(&record);
            let text = self.render(index, &record, attrs.as_ref(), Some(count));
            self.enqueue_alert(st, index, &text);
        }
        next
    }

    /// Sends every pending grouped message now (at shutdown).
    pub fn flush_all_groups(&self) {
        let mut st = self.lock();
        self.flush_groups(&mut st, Instant::now(), true);
        drop(st);
        self.wake.notify_one();
    }

    /// Picks the next message the rate limits allow, marking it in flight.
    pub fn next(&self) -> Next {
        let now = Instant::now();
        let mut st = self.lock();
        let next_group = self.flush_groups(&mut st, now, false);
        let until_group = next_group.map(|t| t.saturating_duration_since(now));
        if st.queue.is_empty() {
            return Next::Wait(until_group);
        }
        let global_wait = st.global.wait(self.settings.global_rate, now);
        if !global_wait.is_zero() {
            return Next::Wait(Some(
                until_group.map_or(global_wait, |g| g.min(global_wait)),
            ));
        }
        let chat_rate = self.settings.chat_rate;
        let mut shortest: Option<Duration> = None;
        let mut pick = None;
        let State {
            queue,
            chat_buckets,
            ..
        } = &mut *st;
        for (i, item) in queue.iter().enumerate() {
            let bucket = chat_buckets
                .entry(item.target.chat_id)
                .or_insert_with(|| Bucket::full(chat_rate, now));
            let wait = bucket.wait(chat_rate, now);
            if wait.is_zero() {
                bucket.tokens -= 1.0;
                pick = Some(i);
                break;
            }
            shortest = Some(shortest.map_or(wait, |s| s.min(wait)));
        }
        let Some(i) = pick else {
            let wait = shortest.unwrap_or(Duration::from_millis(50));
            return Next::Wait(Some(until_group.map_or(wait, |g| g.min(wait))));
        };
        st.global.tokens -= 1.0;
        let Some(item) = st.queue.remove(i) else {
            return Next::Wait(Some(Duration::ZERO));
        };
        if item.counted {
            st.counted -= 1;
        }
        let text = match item.body {
            Body::Text(text) => text,
            Body::Folded => {
                let Some(folded) = st.folded.remove(&item.target) else {
                    return Next::Wait(Some(Duration::ZERO));
                };
                fold_summary(&folded)
            }
        };
        st.in_flight = true;
        Next::Send(item.target, text)
    }

    /// Whether nothing is queued or being sent.
    pub fn idle(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && !st.in_flight
    }

    /// Mutes rule `index` for `duration`.
    pub fn mute(&self, index: usize, duration: Duration) {
        self.lock().muted.insert(index, Instant::now() + duration);
    }

    /// Unmutes rule `index`; false when it was not muted.
    pub fn unmute(&self, index: usize) -> bool {
        let now = Instant::now();
        self.lock()
            .muted
            .remove(&index)
            .is_some_and(|until| until > now)
    }

    /// How long rule `index` stays muted.
    pub fn muted_for(&self, index: usize) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .muted
            .get(&index)
            .map(|until| until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// The current status.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let st = self.lock();
        let mut muted: Vec<MutedRule> = st
            .muted
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(index, until)| {
                let left = until.saturating_duration_since(now);
                MutedRule {
                    rule: self.settings.rules[*index].name.clone(),
                    remaining_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                }
            })
            .collect();
        muted.sort_by(|a, b| a.rule.cmp(&b.rule));
        let queued = st.queue.len();
        drop(st);
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Status {
            alerts: get(&c.alerts),
            sent: get(&c.sent),
            grouped: get(&c.grouped),
            failed: get(&c.failed),
            rejected: get(&c.rejected),
            rate_limited: get(&c.rate_limited),
            folded: get(&c.folded),
            muted_alerts: get(&c.muted),
            ignored_commands: get(&c.ignored_commands),
            poll_failures: get(&c.poll_failures),
            queued,
            muted,
        }
    }
}

/// The text of a folded-alerts summary.
fn fold_summary(folded: &Folded) -> String {
    let total: u64 = folded.by_rule.values().sum();
    let mut out = format!(
        "⚠️ <b>{total} alert(s) not sent</b>: the send queue was full (Telegram slow or down)."
    );
    for (rule, n) in &folded.by_rule {
        let _ = write!(out, "\n{}: ×{n}", escape(rule));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate() {
        let limit = RateLimit {
            per_sec: 10.0,
            burst: 2.0,
        };
        let t0 = Instant::now();
        let mut b = Bucket::full(limit, t0);
        assert!(b.wait(limit, t0).is_zero());
        b.tokens -= 1.0;
        assert!(b.wait(limit, t0).is_zero());
        b.tokens -= 1.0;
        let w = b.wait(limit, t0);
        assert!(
            w > Duration::from_millis(90) && w <= Duration::from_millis(100),
            "{w:?}"
        );
        assert!(b.wait(limit, t0 + Duration::from_millis(100)).is_zero());
    }

    #[test]
    fn texts() {
        assert_eq!(window_text(Duration::from_secs(60)), "60 s");
        assert_eq!(window_text(Duration::from_millis(400)), "400 ms");
        assert_eq!(duration_text(Duration::from_secs(3725)), "1h 2m 5s");
        assert_eq!(duration_text(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }
}
