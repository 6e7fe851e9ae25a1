//! Writes: one `INSERT ... SELECT FROM UNNEST(...)` per batch.
//!
//! A redelivered record is dropped by the primary key (id, ts) when it carries its own time.
//! A record sent without a time gets its receive time, so its redelivery has a later one: a
//! probe of the primary key (its leading column is `id`, so one index descent) drops it too
//! when the stored copy is at most `dedupe_window` older. The probe is a `LATERAL ... LIMIT 1`
//! join rather than `NOT EXISTS`: an anti-join can be planned as a hash join that reads the
//! whole table on every batch (measured: a 200,000-row load fell from 26,000 to 9,500 rows/s
//! once the planner's statistics said the table was large); a lateral subquery cannot be.
//!
//! The statement is a plain insert of the rows the probe does not find; only when it meets a
//! unique violation (another host wrote the same record meanwhile, or a batch holds a record
//! twice) is it run again with `ON CONFLICT DO NOTHING`, which costs about 40% more per row
//! (measured: 26,000 rows/s with it on every batch, 37,000 without).
//!
//! Tried and measured slower here: splitting a batch into two parts written at once (17,600
//! against 26,500-29,800 rows/s on 2 cores: both parts insert into the same right-hand index
//! pages); the probe followed by a `COPY` of the rest (11,500 rows/s; likely cause, not
//! verified: sqlx 0.9 does not set TCP_NODELAY, so the small CopyDone written after the data
//! waits for a delayed ACK on every batch).
//!
//! Records PostgreSQL cannot store are found before writing (NUL bytes in text, attributes
//! that are not a JSON object). When the server still refuses the batch for a value (a data
//! exception, SQLSTATE class 22, 23 or 54), the batch is split in halves until the refused rows are
//! alone; every other row is written. A connection error at any point is returned as is: the
//! host retries the whole batch, and rows already written are ignored then (same id and time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use logrelay_plugin_api::Record;
use serde::de::IgnoredAny;
use sqlx::{AssertSqlSafe, PgPool};

use crate::config::interval_sql;
use crate::error::{TimescaleError, is_data_error, sqlstate};

/// The write side of the store.
#[derive(Debug, Clone)]
pub struct Writer {
    pool: PgPool,
    /// The fast statement: a plain insert of the rows the probe does not find.
    insert_sql: Arc<str>,
    /// The fallback when the fast one meets a unique violation: the same with `ON CONFLICT DO
    /// NOTHING`.
    upsert_sql: Arc<str>,
    /// The dedupe window in nanoseconds (0: only the same id and time is a repeat).
    window_ns: i64,
}

/// A refused record: its index in the batch and why.
pub type Refused = (u32, String);

impl Writer {
    /// A writer into `table` (already quoted and qualified); `dedupe_window`: see the module.
    pub fn new(pool: PgPool, table: &str, dedupe_window: Option<Duration>) -> Writer {
        let earlier = match dedupe_window {
            Some(window) => format!("l.ts <= u.ts AND l.ts >= u.ts - {}", interval_sql(window)),
            None => "l.ts = u.ts".to_owned(),
        };
        let insert_sql = format!(
            "INSERT INTO {table} (id, ts, level, project, module, message, attributes)
             SELECT u.id, u.ts, u.level, u.project, u.module, u.message, u.attributes::jsonb
             FROM UNNEST($1::text[], $2::timestamptz[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[])
                  AS u(id, ts, level, project, module, message, attributes)
             LEFT JOIN LATERAL (SELECT 1 AS stored FROM {table} l
                 WHERE l.id = u.id AND {earlier} LIMIT 1) d ON TRUE
             WHERE d.stored IS NULL"
        );
        let upsert_sql = format!("{insert_sql}\n             ON CONFLICT DO NOTHING");
        Writer {
            pool,
            insert_sql: Arc::from(insert_sql),
            upsert_sql: Arc::from(upsert_sql),
            window_ns: dedupe_window
                .map(|w| i64::try_from(w.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }

    /// Writes every good record of `batch`; returns how many rows were new and which records
    /// were refused (by index, with the reason).
    pub async fn write(&self, batch: &[Record]) -> Result<(u64, Vec<Refused>), TimescaleError> {
        let mut refused = Vec::new();
        let mut good: Vec<u32> = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            match check_record(r) {
                Ok(()) => good.push(i as u32),
                Err(reason) => refused.push((i as u32, reason)),
            }
        }
        let good = self.without_repeats(batch, good);
        let mut inserted = 0;
        if good.is_empty() {
            return Ok((0, refused));
        }
        // Ranges of `good` still to write; a refused range is split until its bad rows are alone.
        let mut todo = vec![(0usize, good.len())];
        while let Some((start, end)) = todo.pop() {
            let part = &good[start..end];
            match self.insert(batch, part).await {
                Ok(n) => inserted += n,
                Err(e) if is_data_error(&e) => {
                    if part.len() == 1 {
                        let reason = match &e {
                            sqlx::Error::Database(d) => d.message().to_owned(),
                            other => other.to_string(),
                        };
                        refused.push((part[0], format!("refused by PostgreSQL: {reason}")));
                    } else {
                        let mid = start + part.len() / 2;
                        todo.push((mid, end));
                        todo.push((start, mid));
                    }
                }
                Err(source) => {
                    return Err(TimescaleError::Db {
                        what: "writing a batch",
                        source,
                    });
                }
            }
        }
        refused.sort_by_key(|(i, _)| *i);
        Ok((inserted, refused))
    }

    /// Leaves out a record whose id came earlier in the same call with a time at most the
    /// dedupe window before its own: the statement's probe sees only rows stored before it, and
    /// one call can hold a record and its redelivery (the host hands a busy instance several
    /// queued batches at once, and a redelivered record sent without a timestamp has a later
    /// receive time).
    fn without_repeats(&self, batch: &[Record], good: Vec<u32>) -> Vec<u32> {
        let mut seen: HashMap<&str, Vec<i64>> = HashMap::with_capacity(good.len());
        let mut kept = Vec::with_capacity(good.len());
        for i in good {
            let Some(r) = batch.get(i as usize) else {
                continue;
            };
            let ts = r.timestamp_ns;
            let earlier = seen.entry(r.id.as_str()).or_default();
            let repeat = earlier
                .iter()
                .any(|&t| t <= ts && t >= ts.saturating_sub(self.window_ns));
            if !repeat {
                earlier.push(ts);
                kept.push(i);
            }
        }
        kept
    }

    /// One statement for the records of `batch` at `indices`.
    async fn insert(&self, batch: &[Record], indices: &[u32]) -> Result<u64, sqlx::Error> {
        let n = indices.len();
        let mut ids = Vec::with_capacity(n);
        let mut ts: Vec<DateTime<Utc>> = Vec::with_capacity(n);
        let mut levels: Vec<i16> = Vec::with_capacity(n);
        let mut projects = Vec::with_capacity(n);
        let mut modules = Vec::with_capacity(n);
        let mut messages = Vec::with_capacity(n);
        let mut attributes = Vec::with_capacity(n);
        for &i in indices {
            let r = &batch[i as usize];
            ids.push(r.id.as_str());
            ts.push(DateTime::from_timestamp_nanos(r.timestamp_ns));
            levels.push(i16::from(r.level.0));
            projects.push(r.project.as_str());
            modules.push(r.module.as_str());
            messages.push(r.message.as_str());
            let a = r.attributes.as_str();
            attributes.push(if a.trim().is_empty() { "{}" } else { a });
        }
        let run = |sql: &Arc<str>| {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&ids)
                .bind(&ts)
                .bind(&levels)
                .bind(&projects)
                .bind(&modules)
                .bind(&messages)
                .bind(&attributes)
                .execute(&self.pool)
        };
        match run(&self.insert_sql).await {
            // The same row twice in this batch, or written by another host meanwhile.
            Err(e) if sqlstate(&e).as_deref() == Some("23505") => {
                Ok(run(&self.upsert_sql).await?.rows_affected())
            }
            result => Ok(result?.rows_affected()),
        }
    }
}

/// What PostgreSQL would refuse, checked before writing.
pub fn check_record(r: &Record) -> Result<(), String> {
    for (field, value) in [
        ("id", r.id.as_str()),
        ("project", r.project.as_str()),
        ("module", r.module.as_str()),
        ("message", r.message.as_str()),
    ] {
        if value.contains('\0') {
            return Err(format!(
                "`{field}` contains a NUL byte, which PostgreSQL text cannot hold"
            ));
        }
    }
    let a = r.attributes.as_str().trim();
    if a.is_empty() {
        return Ok(());
    }
    if !a.starts_with('{') || serde_json::from_str::<IgnoredAny>(a).is_err() {
        return Err("`attributes` is not a JSON object".to_owned());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use logrelay_plugin_api::Level;

    #[test]
    fn checks() {
        let r = Record::new("a", 0, Level::INFO, "p", "m", "hello");
        assert!(check_record(&r).is_ok());
        assert!(check_record(&r.clone().with_attributes(r#"{"a":1}"#)).is_ok());
        assert!(check_record(&r.clone().with_attributes("[1]")).is_err());
        assert!(check_record(&r.clone().with_attributes("{broken")).is_err());
        let nul = Record::new("a", 0, Level::INFO, "p", "m", "he\0llo");
        assert!(check_record(&nul).unwrap_err().contains("`message`"));
    }
}
