//! Writes: one binary `COPY` per batch, after a probe for records already stored.
//!
//! A redelivered record is recognised by the primary key (id, ts) when it carries its own time.
//! A record sent without a time gets its receive time, so its redelivery has a later one: a
//! probe of the primary key (its leading column is `id`, so one index descent) finds it too
//! when the stored copy is at most `dedupe_window` older. The host flags those records
//! (`RecordFlags::RECEIVE_TIME`); only they are probed, unless the host also says they are
//! `UNSEEN` (the first delivery of a message whose ids the host derived from its bytes: no
//! copy can be stored), or every record when the call came without flags: the probe is the
//! dearest part of a write. Without a window there is no probe: the key alone is the check.
//!
//! The probe is a `LATERAL ... LIMIT 1` join because that form has one plan whatever the
//! table's statistics say. An `EXISTS` (a semi- or anti-join) can be planned as a hash join
//! that reads the whole table on every batch once the statistics say the table is large; one
//! index scan `WHERE id = ANY($1) AND ts BETWEEN ...` with the window compared in Rust is
//! cheaper per call but, on a table not yet analyzed (new or truncated), PostgreSQL scanned the
//! whole time span on every batch. Both were measured and dropped (BENCHMARKS.md, "Timescale
//! store").
//!
//! The records the probe does not find go in by `COPY ... FROM STDIN (FORMAT binary)`, encoded
//! here: `COPY` fills heap pages many rows at a time with one WAL record per page, where an
//! `INSERT ... SELECT FROM UNNEST` inserts row by row. When the `COPY` meets a unique violation
//! (no probe, a race with another writer, a batch holding the same (id, time) twice at
//! microsecond precision), the part is written by the `INSERT ... ON CONFLICT DO NOTHING`
//! statement instead (the records it gets were probed already); `COPY` cannot skip conflicting
//! rows. A batch is written on one connection: two parts written at once insert into the same
//! right-hand index pages and were slower. `COPY` needs TCP_NODELAY on the connection (see
//! `nodelay.rs`), or its small CopyDone waits for a delayed ACK on every batch.
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
use logrelay_plugin_api::{Record, RecordFlags};
use serde::de::IgnoredAny;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::config::interval_sql;
use crate::error::{TimescaleError, is_data_error, sqlstate};

/// The write side of the store.
#[derive(Debug, Clone)]
pub struct Writer {
    pool: PgPool,
    /// The probe: the ordinals (from 1) of the given `(id, ts)` pairs already stored within the
    /// dedupe window; none without a window (the primary key is the probe then).
    probe_sql: Option<Arc<str>>,
    /// The write: `COPY ... FROM STDIN (FORMAT binary)`.
    copy_sql: Arc<str>,
    /// The fallback when the `COPY` meets a unique violation: `INSERT ... SELECT FROM UNNEST
    /// ... ON CONFLICT DO NOTHING` of records already probed.
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
        let probe_sql = format!(
            "SELECT u.i FROM UNNEST($1::text[], $2::timestamptz[]) WITH ORDINALITY AS u(id, ts, i)
             CROSS JOIN LATERAL (SELECT 1 FROM {table} l
                 WHERE l.id = u.id AND {earlier} LIMIT 1) d"
        );
        let copy_sql = format!(
            "COPY {table} (id, ts, level, project, module, message, attributes) \
             FROM STDIN (FORMAT binary)"
        );
        let upsert_sql = format!(
            "INSERT INTO {table} (id, ts, level, project, module, message, attributes)
             SELECT u.id, u.ts, u.level, u.project, u.module, u.message, u.attributes::jsonb
             FROM UNNEST($1::text[], $2::timestamptz[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[])
                  AS u(id, ts, level, project, module, message, attributes)
             ON CONFLICT DO NOTHING"
        );
        Writer {
            pool,
            probe_sql: dedupe_window.map(|_| Arc::from(probe_sql)),
            copy_sql: Arc::from(copy_sql),
            upsert_sql: Arc::from(upsert_sql),
            window_ns: dedupe_window
                .map(|w| i64::try_from(w.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }

    /// Writes every good record of `batch`; returns how many rows were new and which records
    /// were refused (by index, with the reason). `flags` (one per record) says which records got
    /// their receive time; without them, any record may have.
    pub async fn write(
        &self,
        batch: &[Record],
        flags: Option<&[RecordFlags]>,
    ) -> Result<(u64, Vec<Refused>), TimescaleError> {
        let flags = flags.filter(|f| f.len() == batch.len());
        let mut refused = Vec::new();
        let mut good: Vec<u32> = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            match check_record(r) {
                Ok(()) => good.push(i as u32),
                Err(reason) => refused.push((i as u32, reason)),
            }
        }
        let good = self.without_repeats(batch, flags, good);
        let mut inserted = 0;
        if good.is_empty() {
            return Ok((0, refused));
        }
        // Ranges of `good` still to write; a refused range is split until its bad rows are alone.
        let mut todo = vec![(0usize, good.len())];
        while let Some((start, end)) = todo.pop() {
            let part = &good[start..end];
            match self.insert(batch, flags, part).await {
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
    /// A record with its own time (not flagged `RECEIVE_TIME`) repeats only the same time.
    fn without_repeats(
        &self,
        batch: &[Record],
        flags: Option<&[RecordFlags]>,
        good: Vec<u32>,
    ) -> Vec<u32> {
        let mut seen: HashMap<&str, Vec<i64>> = HashMap::with_capacity(good.len());
        let mut kept = Vec::with_capacity(good.len());
        for i in good {
            let Some(r) = batch.get(i as usize) else {
                continue;
            };
            let ts = r.timestamp_ns;
            let window = match flags.and_then(|f| f.get(i as usize)) {
                Some(f) if !may_repeat_later(*f) => 0,
                _ => self.window_ns,
            };
            let earlier = seen.entry(r.id.as_str()).or_default();
            let repeat = earlier
                .iter()
                .any(|&t| t <= ts && t >= ts.saturating_sub(window));
            if !repeat {
                earlier.push(ts);
                kept.push(i);
            }
        }
        kept
    }

    /// Writes the records of `batch` at `indices`: the probe, then one `COPY` of the records it
    /// did not find; the `ON CONFLICT DO NOTHING` statement instead when the `COPY` meets a
    /// unique violation.
    async fn insert(
        &self,
        batch: &[Record],
        flags: Option<&[RecordFlags]>,
        indices: &[u32],
    ) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        // Only a record with its receive time can be stored already with an earlier time; a
        // repeat with the same (id, time) is found by the primary key, failing the `COPY`.
        let receive_time =
            |i: &u32| flags.is_none_or(|f| f.get(*i as usize).is_none_or(|f| may_repeat_later(*f)));
        let fresh = match &self.probe_sql {
            Some(sql) if indices.iter().any(receive_time) => {
                let (probed, own_time): (Vec<u32>, Vec<u32>) =
                    indices.iter().partition(|i| receive_time(i));
                let mut fresh = unstored(&mut conn, sql, batch, &probed).await?;
                fresh.extend(own_time);
                // In batch order, as the records came.
                fresh.sort_unstable();
                fresh
            }
            _ => indices.to_vec(),
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let data = copy_data(batch, &fresh);
        match copy_in(&mut conn, &self.copy_sql, &data).await {
            // Written by another host meanwhile (the probe cannot see rows not yet committed).
            Err(e) if sqlstate(&e).as_deref() == Some("23505") => {
                drop(conn);
                self.upsert(batch, &fresh).await
            }
            Err(e) => {
                if !matches!(e, sqlx::Error::Database(_)) {
                    // The connection may be mid-COPY: do not hand it out again.
                    conn.close_on_drop();
                }
                Err(e)
            }
            Ok(n) => Ok(n),
        }
    }
}

/// Whether a stored copy of the record may have an earlier time than this one: it got its
/// receive time, and the host does not know it to be unseen (`RecordFlags::UNSEEN`: first
/// delivery of a message whose ids the host derived from it).
fn may_repeat_later(f: RecordFlags) -> bool {
    f.contains(RecordFlags::RECEIVE_TIME) && !f.contains(RecordFlags::UNSEEN)
}

/// The records of `batch` at `indices` that are not stored yet: the primary-key probe of the
/// module's comment (`sql`), one index descent per record.
async fn unstored(
    conn: &mut PgConnection,
    sql: &Arc<str>,
    batch: &[Record],
    indices: &[u32],
) -> Result<Vec<u32>, sqlx::Error> {
    let ids: Vec<&str> = indices
        .iter()
        .map(|&i| batch[i as usize].id.as_str())
        .collect();
    let ts: Vec<DateTime<Utc>> = indices
        .iter()
        .map(|&i| DateTime::from_timestamp_nanos(batch[i as usize].timestamp_ns))
        .collect();
    let stored: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
        .bind(&ids)
        .bind(&ts)
        .fetch_all(&mut *conn)
        .await?;
    if stored.is_empty() {
        return Ok(indices.to_vec());
    }
    // Ordinals count from 1, in the order of `indices`.
    let mut skip = vec![false; indices.len()];
    for o in stored {
        if let Some(s) = usize::try_from(o - 1).ok().and_then(|k| skip.get_mut(k)) {
            *s = true;
        }
    }
    Ok(indices
        .iter()
        .zip(skip)
        .filter_map(|(&i, s)| (!s).then_some(i))
        .collect())
}

impl Writer {
    /// The fallback: one `INSERT ... ON CONFLICT DO NOTHING` for the records at `indices`.
    async fn upsert(&self, batch: &[Record], indices: &[u32]) -> Result<u64, sqlx::Error> {
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
            attributes.push(attributes_json(r));
        }
        Ok(sqlx::query(AssertSqlSafe(self.upsert_sql.clone()))
            .bind(&ids)
            .bind(&ts)
            .bind(&levels)
            .bind(&projects)
            .bind(&modules)
            .bind(&messages)
            .bind(&attributes)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// Runs a `COPY ... FROM STDIN (FORMAT binary)` with `data` on `conn`; the rows written.
async fn copy_in(conn: &mut PgConnection, sql: &str, data: &[u8]) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    copy.send(data).await?;
    copy.finish().await
}

/// The record's attributes as stored: its JSON object text, `{}` when empty.
fn attributes_json(r: &Record) -> &str {
    let a = r.attributes.as_str();
    if a.trim().is_empty() { "{}" } else { a }
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The records of `batch` at `indices` in PostgreSQL's binary `COPY` format: the columns of
/// [`Writer::copy_sql`], times truncated to microseconds as sqlx encodes them (so a record
/// written by either statement has the same primary key).
pub fn copy_data(batch: &[Record], indices: &[u32]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        // Records come from RabbitMQ messages, far below 2 GiB; PostgreSQL refuses a longer
        // value anyway (and the batch is then split down to that record).
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let size: usize = indices
        .iter()
        .map(|&i| {
            let r = &batch[i as usize];
            64 + r.id.len()
                + r.project.len()
                + r.module.len()
                + r.message.len()
                + r.attributes.len()
        })
        .sum();
    let mut out = Vec::with_capacity(19 + size + 2);
    // Signature, flags (no OIDs), header extension length.
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for &i in indices {
        let r = &batch[i as usize];
        out.extend_from_slice(&7i16.to_be_bytes());
        field(&mut out, r.id.as_bytes());
        // Truncated toward zero, as chrono's `num_microseconds` (what sqlx binds) does.
        let micros = (i128::from(r.timestamp_ns) - i128::from(PG_EPOCH_MICROS) * 1_000) / 1_000;
        let micros = i64::try_from(micros).unwrap_or(i64::MIN);
        field(&mut out, &micros.to_be_bytes());
        field(&mut out, &i16::from(r.level.0).to_be_bytes());
        field(&mut out, r.project.as_bytes());
        field(&mut out, r.module.as_bytes());
        field(&mut out, r.message.as_bytes());
        // jsonb's binary form: a version byte (1), then the JSON text.
        let a = attributes_json(r);
        let len = i32::try_from(a.len() + 1).unwrap_or(i32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(1);
        out.extend_from_slice(a.as_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
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
