//! Retention: TimescaleDB drops whole chunks (its own policy job); plain PostgreSQL deletes old
//! rows in batches from a task on the instance's runtime.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool};

use crate::config::{Settings, interval_sql};
use crate::error::TimescaleError;
use crate::schema::Storage;

/// One retention pass now: returns the rows deleted (plain) or chunks dropped (hypertable).
pub async fn run_once(
    pool: &PgPool,
    s: &Settings,
    storage: &Storage,
) -> Result<u64, TimescaleError> {
    let Some(age) = s.retention else {
        return Ok(0);
    };
    let t = s.qualified();
    let older = interval_sql(age);
    match storage {
        Storage::Hypertable { .. } => {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM drop_chunks('{t}', older_than => {older})"
            )))
            .fetch_one(pool)
            .await
            .map_err(TimescaleError::db("dropping old chunks"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        }
        Storage::Plain => {
            let sql = format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM {t} WHERE ts < now() - {older} LIMIT $1))"
            );
            let left = format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE ts < now() - {older})");
            let mut total = 0;
            let mut empty_rounds = 0;
            loop {
                let n = sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(s.retention_batch_rows)
                    .execute(pool)
                    .await
                    .map_err(TimescaleError::db("deleting old records"))?
                    .rows_affected();
                total += n;
                // Stop on an empty batch, not a short one: another pass (the periodic task and a
                // `retention_run`, or a second host) may take rows from under this one. An empty
                // batch can also mean that every row it picked was being deleted by that other
                // pass, with more old rows behind them: so stop only when none is left, or after
                // a second of empty batches (rows held by a long transaction wait for the next
                // pass).
                if n == 0 {
                    empty_rounds += 1;
                    let any_left: bool = sqlx::query_scalar(AssertSqlSafe(left.clone()))
                        .fetch_one(pool)
                        .await
                        .map_err(TimescaleError::db("deleting old records"))?;
                    if !any_left || empty_rounds >= 50 {
                        return Ok(total);
                    }
                }
                // Let writers and vacuum breathe between batches.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Runs [`run_once`] now and then every `retention_interval`, until aborted.
pub fn spawn(pool: PgPool, s: Settings, storage: Storage) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run_once(&pool, &s, &storage).await {
                Ok(0) => {
                    tracing::debug!(table = %s.qualified(), "Retention pass: nothing to delete.")
                }
                Ok(n) => {
                    tracing::info!(table = %s.qualified(), deleted = n, "Retention pass deleted old records.");
                }
                Err(e) => {
                    tracing::warn!(table = %s.qualified(), error = %e.chain(), "Retention pass failed; will try again.");
                }
            }
            tokio::time::sleep(s.retention_interval).await;
        }
    })
}
