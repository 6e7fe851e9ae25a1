//! The store's functions, reached through `request(method, body)`: query, get, add, update,
//! delete, delete_by_filter, stats, histogram, sql, retention_run, schema. Bodies and answers
//! are JSON, typed in `logrelay_plugin_api::store` (shared with the HTTP API); README.md
//! documents each with examples.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use logrelay_plugin_api::store::{
    AddBody, Added, Ambiguous, Bucket, Candidate, DeleteBody, Deleted, Empty, Histogram, IdBody,
    InRecord, LevelArg, METHODS, OneOrMany, Params, SqlBody, TimeArg, TooMany, UpdateBody, Updated,
    method,
};
use logrelay_plugin_api::{Level, Record};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::postgres::{PgRow, PgTypeInfo};
use sqlx::{
    AssertSqlSafe, Column, Either, Executor, PgPool, Postgres, QueryBuilder, Row, SqlSafeStr,
    Statement, TypeInfo, ValueRef,
};

use crate::config::Settings;
use crate::error::{TimescaleError, is_connection_error};
use crate::out::{self, COLUMNS};
use crate::schema::{self, SchemaInfo};
use crate::write::{Writer, check_record};
use crate::{nodelay, retention};

/// What the requests read: the pool and what the start found. The writer is the sink's
/// (`Timescale`); `add` borrows it for one call.
#[derive(Debug, Clone)]
pub struct Api {
    pool: PgPool,
    settings: Arc<Settings>,
    schema: Arc<SchemaInfo>,
    table: String,
    nodelay: Arc<nodelay::Tally>,
}

impl Api {
    /// The API over a connected, migrated store.
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        schema: Arc<SchemaInfo>,
        nodelay: Arc<nodelay::Tally>,
    ) -> Api {
        let table = settings.qualified();
        Api {
            pool,
            settings,
            schema,
            table,
            nodelay,
        }
    }

    /// Answers one request; `add` stores its records through `writer`, as a batch would be.
    pub async fn handle(
        &self,
        writer: &Writer,
        name: &str,
        body: &str,
    ) -> Result<String, TimescaleError> {
        let answer = match name {
            // The hot path of the HTTP API: serialized straight to text, no `Value` tree.
            method::QUERY => return self.query(parse(name, body)?).await,
            method::GET => return self.get(parse(name, body)?).await,
            method::ADD => self.add(writer, parse(name, body)?).await?,
            method::UPDATE => self.update(parse(name, body)?).await?,
            method::DELETE => self.delete(parse(name, body)?).await?,
            method::DELETE_BY_FILTER => self.delete_by_filter(parse(name, body)?).await?,
            method::STATS => self.stats(parse(name, body)?).await?,
            method::HISTOGRAM => self.histogram(parse(name, body)?).await?,
            method::SQL => self.sql(parse(name, body)?).await?,
            method::RETENTION_RUN => {
                let _: Empty = parse(name, body)?;
                let n =
                    retention::run_once(&self.pool, &self.settings, &self.schema.storage).await?;
                let unit = match self.schema.storage {
                    schema::Storage::Plain => "rows",
                    schema::Storage::Hypertable { .. } => "chunks",
                };
                json!({ "deleted": n, "unit": unit })
            }
            method::SCHEMA => {
                let _: Empty = parse(name, body)?;
                let migrations: Vec<Value> = schema::recorded(&self.pool, &self.settings)
                    .await?
                    .into_iter()
                    .map(|(v, d)| json!({ "version": v, "description": d }))
                    .collect();
                let (version, policies) = match &self.schema.storage {
                    schema::Storage::Hypertable { version, policies } => {
                        (Some(version.clone()), Some(*policies))
                    }
                    schema::Storage::Plain => (None, None),
                };
                json!({
                    "table": self.table,
                    "storage": self.schema.storage.name(),
                    "timescaledb_version": version,
                    "timescaledb_policies": policies,
                    "timescaledb_missing": self.schema.timescaledb_missing,
                    "message_index": if self.schema.message_trigram { "trigram" } else { "none" },
                    "migrations": migrations,
                    "tcp_nodelay": self.nodelay.json(),
                })
            }
            other => {
                return Err(TimescaleError::BadRequest(format!(
                    "unknown method `{other}`; the store answers {}",
                    METHODS.join(", ")
                )));
            }
        };
        Ok(answer.to_string())
    }

    async fn query(&self, p: Params) -> Result<String, TimescaleError> {
        refuse(&p, &["all", "refuse_over", "buckets"], "query")?;
        let filter = Filter::from_params(&p)?;
        let limit = p
            .limit
            .unwrap_or(self.settings.default_page_size)
            .clamp(1, self.settings.max_page_size);
        let cursor = p.cursor.as_deref().map(decode_cursor).transpose()?;
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM {}", self.table));
        filter.push(&mut qb);
        if let Some((ts, id)) = cursor {
            qb.push(" AND (ts, id) < (")
                .push_bind(ts)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let mut rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(rejected("query"))?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            match rows.last() {
                Some(row) => {
                    let (ts, id) = out::key(row)?;
                    Some(encode_cursor(ts, id))
                }
                None => None,
            }
        } else {
            None
        };
        out::page(&rows, next.as_deref())
    }

    async fn get(&self, b: IdBody) -> Result<String, TimescaleError> {
        let ts = b
            .timestamp
            .as_ref()
            .map(|t| exact_time(t, "timestamp"))
            .transpose()?;
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {COLUMNS} FROM {} WHERE id = ",
            self.table
        ));
        qb.push_bind(&b.id);
        if let Some(ts) = ts {
            qb.push(" AND ts = ").push_bind(ts);
        }
        qb.push(" ORDER BY ts DESC LIMIT ")
            .push_bind(Ambiguous::MAX_CANDIDATES as i64 + 1);
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(rejected("get"))?;
        match rows.as_slice() {
            [] => Err(not_found(&b.id, ts)),
            [row] => out::record(row),
            _ => {
                let keys = rows
                    .iter()
                    .map(|row| out::key(row).map(|(ts, id)| (id.to_owned(), ts)))
                    .collect::<Result<Vec<_>, _>>()?;
                Err(self
                    .ambiguous(std::slice::from_ref(&b.id), keys, "read")
                    .await)
            }
        }
    }

    /// The time of the one row `id` (and `timestamp`, when given) names: not found when none,
    /// [`Ambiguous`] when several. `verb` says what would have been done (`change`...).
    async fn one(
        &self,
        id: &str,
        timestamp: Option<&TimeArg>,
        verb: &str,
    ) -> Result<DateTime<Utc>, TimescaleError> {
        let ts = timestamp.map(|t| exact_time(t, "timestamp")).transpose()?;
        let mut qb =
            QueryBuilder::<Postgres>::new(format!("SELECT id, ts FROM {} WHERE id = ", self.table));
        qb.push_bind(id);
        if let Some(ts) = ts {
            qb.push(" AND ts = ").push_bind(ts);
        }
        qb.push(" ORDER BY ts DESC LIMIT ")
            .push_bind(Ambiguous::MAX_CANDIDATES as i64 + 1);
        let rows: Vec<(String, DateTime<Utc>)> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(rejected(verb_method(verb)))?;
        match rows.as_slice() {
            [] => Err(not_found(id, ts)),
            [(_, ts)] => Ok(*ts),
            _ => Err(self.ambiguous(&[id.to_owned()], rows, verb).await),
        }
    }

    /// The refusal for ids that name several rows; `rows` are (some of) those rows, newest
    /// first per id.
    async fn ambiguous(
        &self,
        ids: &[String],
        rows: Vec<(String, DateTime<Utc>)>,
        verb: &str,
    ) -> TimescaleError {
        let mut matched = rows.len() as u64;
        if rows.len() > Ambiguous::MAX_CANDIDATES {
            // More than the list shows: say how many there are (best effort).
            let counted: Result<i64, _> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {} WHERE id = ANY($1)",
                self.table
            )))
            .bind(ids)
            .fetch_one(&self.pool)
            .await;
            if let Ok(n) = counted {
                matched = n as u64;
            }
        }
        let names = ids
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = if ids.len() == 1 { "id" } else { "ids" };
        let candidates = rows
            .into_iter()
            .take(Ambiguous::MAX_CANDIDATES)
            .map(|(id, ts)| Candidate {
                id,
                timestamp: rfc3339(ts),
                timestamp_ns: ts.timestamp_micros().saturating_mul(1000),
            })
            .collect();
        TimescaleError::Conflict(
            Ambiguous {
                error: format!(
                    "{what} {names} names {matched} records, so nothing was {verb}; give `timestamp` (a candidate's `timestamp` or `timestamp_ns`) to pick one"
                ),
                candidates,
                matched,
            }
            .message(),
        )
    }

    async fn add(&self, writer: &Writer, b: AddBody) -> Result<Value, TimescaleError> {
        let mut records = Vec::with_capacity(b.records.len());
        for (i, r) in b.records.into_iter().enumerate() {
            let record = into_record(r)
                .map_err(|e| TimescaleError::BadRequest(format!("`records[{i}].{e}")))?;
            check_record(&record)
                .map_err(|e| TimescaleError::BadRequest(format!("`records[{i}]`: {e}")))?;
            records.push(record);
        }
        let (inserted, refused) = writer.write(&records, None).await?;
        if let Some((i, reason)) = refused.first() {
            return Err(TimescaleError::BadRequest(format!(
                "`records[{i}]`: {reason} ({} of {} records refused, {inserted} stored)",
                refused.len(),
                records.len()
            )));
        }
        let ids = records.iter().map(|r| r.id.to_string()).collect();
        Ok(json!(Added { inserted, ids }))
    }

    async fn update(&self, b: UpdateBody) -> Result<Value, TimescaleError> {
        let mut qb = QueryBuilder::<Postgres>::new(format!("UPDATE {} SET ", self.table));
        let mut sep = qb.separated(", ");
        let mut any = false;
        if let Some(level) = &b.level {
            sep.push("level = ")
                .push_bind_unseparated(resolve_level(level, "level")?);
            any = true;
        }
        for (field, value) in [
            ("message", &b.message),
            ("project", &b.project),
            ("module", &b.module),
        ] {
            if let Some(v) = value {
                no_nul(field, v)?;
                sep.push(format!("{field} = "))
                    .push_bind_unseparated(v.clone());
                any = true;
            }
        }
        match (&b.attributes, &b.merge_attributes) {
            (Some(a), None) => {
                sep.push("attributes = ")
                    .push_bind_unseparated(Value::Object(a.clone()));
            }
            (None, Some(m)) => {
                sep.push("attributes = attributes || ")
                    .push_bind_unseparated(Value::Object(m.clone()));
            }
            // Both: replace, then merge into the replacement.
            (Some(a), Some(m)) => {
                let mut merged = a.clone();
                merged.extend(m.clone());
                sep.push("attributes = ")
                    .push_bind_unseparated(Value::Object(merged));
            }
            (None, None) => {}
        }
        any |= b.attributes.is_some() || b.merge_attributes.is_some();
        if !any {
            // Nothing to change: the record as it is (and an ambiguous id is still refused).
            let record = self
                .get(IdBody {
                    id: b.id,
                    timestamp: b.timestamp,
                })
                .await?;
            let record: Value = serde_json::from_str(&record).unwrap_or(Value::Null);
            return Ok(json!(Updated {
                updated: 0,
                record: Some(record),
            }));
        }
        let ts = self.one(&b.id, b.timestamp.as_ref(), "changed").await?;
        qb.push(" WHERE id = ")
            .push_bind(b.id.clone())
            .push(" AND ts = ")
            .push_bind(ts)
            .push(format!(" RETURNING {COLUMNS}"));
        let row = qb
            .build()
            .fetch_optional(&self.pool)
            .await
            .map_err(rejected("update"))?;
        // Deleted between the look-up and the change.
        let row = row.ok_or_else(|| not_found(&b.id, Some(ts)))?;
        let record: Value = serde_json::from_str(&out::record(&row)?).unwrap_or(Value::Null);
        Ok(json!(Updated {
            updated: 1,
            record: Some(record),
        }))
    }

    async fn delete(&self, b: DeleteBody) -> Result<Value, TimescaleError> {
        let ids = match (b.id, b.ids, &b.timestamp) {
            (Some(id), None, Some(t)) => {
                // One exact row: no look-up needed.
                let ts = exact_time(t, "timestamp")?;
                let n = sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE id = $1 AND ts = $2",
                    self.table
                )))
                .bind(&id)
                .bind(ts)
                .execute(&self.pool)
                .await
                .map_err(rejected("delete"))?
                .rows_affected();
                return Ok(json!(Deleted { deleted: n }));
            }
            (Some(id), None, None) => vec![id],
            (None, Some(ids), None) => ids,
            (None, Some(_), Some(_)) => {
                return Err(TimescaleError::BadRequest(
                    "`timestamp` picks the row of one `id`; it does not apply to `ids`".to_owned(),
                ));
            }
            _ => {
                return Err(TimescaleError::BadRequest(
                    "give `id` (one record) or `ids` (a list), not both".to_owned(),
                ));
            }
        };
        // The rows the ids name; an id naming several refuses the whole request.
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, ts FROM {} WHERE id = ANY($1) ORDER BY id, ts DESC",
            self.table
        )))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(rejected("delete"))?;
        let ambiguous: Vec<String> = rows
            .windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .map(|w| w[0].0.clone())
            .fold(Vec::new(), |mut v, id| {
                if v.last() != Some(&id) {
                    v.push(id);
                }
                v
            });
        if !ambiguous.is_empty() {
            let named: Vec<(String, DateTime<Utc>)> = rows
                .into_iter()
                .filter(|(id, _)| ambiguous.contains(id))
                .collect();
            return Err(self.ambiguous(&ambiguous, named, "deleted").await);
        }
        let (found_ids, found_ts): (Vec<String>, Vec<DateTime<Utc>>) = rows.into_iter().unzip();
        let n = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE (id, ts) IN (SELECT * FROM UNNEST($1::text[], $2::timestamptz[]))",
            self.table
        )))
        .bind(&found_ids)
        .bind(&found_ts)
        .execute(&self.pool)
        .await
        .map_err(rejected("delete"))?
        .rows_affected();
        Ok(json!(Deleted { deleted: n }))
    }

    async fn delete_by_filter(&self, p: Params) -> Result<Value, TimescaleError> {
        refuse(&p, &["limit", "cursor", "buckets"], "delete_by_filter")?;
        let filter = Filter::from_params(&p)?;
        if filter.is_empty() && p.all != Some(true) {
            return Err(TimescaleError::BadRequest(
                "refusing to delete every record: give a filter, or `\"all\": true`".to_owned(),
            ));
        }
        if let Some(percent) = p.refuse_over_percent
            && !(0.0..=100.0).contains(&percent)
        {
            return Err(TimescaleError::BadRequest(format!(
                "`refuse_over_percent`: {percent} is not between 0 and 100"
            )));
        }
        if p.refuse_over_rows.is_some() || p.refuse_over_percent.is_some() {
            self.guard(&filter, p.refuse_over_rows, p.refuse_over_percent)
                .await?;
        }
        let mut qb = QueryBuilder::<Postgres>::new(format!("DELETE FROM {}", self.table));
        filter.push(&mut qb);
        let n = qb
            .build()
            .execute(&self.pool)
            .await
            .map_err(rejected("delete_by_filter"))?
            .rows_affected();
        Ok(json!(Deleted { deleted: n }))
    }

    /// Refuses ([`TooMany`]) a delete whose filter matches more than `max_rows` rows or more
    /// than `max_percent` of the table (PostgreSQL's estimate of its rows).
    async fn guard(
        &self,
        filter: &Filter,
        max_rows: Option<u64>,
        max_percent: Option<f64>,
    ) -> Result<(), TimescaleError> {
        let mut estimate = self.rows_estimate().await?;
        let limit_for = |estimate: u64| -> Option<u64> {
            let by_share = max_percent.map(|p| (p / 100.0 * estimate as f64).floor() as u64);
            match (max_rows, by_share) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            }
        };
        let Some(mut limit) = limit_for(estimate) else {
            return Ok(());
        };
        // Counting stops one row past the limit: a small delete reads only what it deletes.
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT count(*) FROM (SELECT 1 FROM {}",
            self.table
        ));
        filter.push(&mut qb);
        qb.push(" LIMIT ")
            .push_bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
            .push(") s");
        let bounded: i64 = qb
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(rejected("delete_by_filter"))?;
        if (bounded as u64) <= limit {
            return Ok(());
        }
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT count(*) FROM {}", self.table));
        filter.push(&mut qb);
        let matched: i64 = qb
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(rejected("delete_by_filter"))?;
        let matched = matched as u64;
        if matched > estimate && max_percent.is_some() {
            // The statistics are behind (rows added since the last ANALYZE): count the table
            // before refusing by a share of it.
            let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                self.table
            )))
            .fetch_one(&self.pool)
            .await
            .map_err(rejected("delete_by_filter"))?;
            estimate = total as u64;
            limit = limit_for(estimate).unwrap_or(limit);
            if matched <= limit {
                return Ok(());
            }
        }
        let mut rules = Vec::new();
        if let Some(n) = max_rows {
            rules.push(format!("{n} rows"));
        }
        if let Some(p) = max_percent {
            rules.push(format!("{p}% of the table's about {estimate} rows"));
        }
        Err(TimescaleError::Conflict(
            TooMany {
                error: format!(
                    "this filter matches {matched} records, more than may be deleted without confirmation ({}), so nothing was deleted; check the filter (GET /logs/stats counts what it matches) and send it again with `\"confirm\": true`",
                    rules.join(" or ")
                ),
                matched,
                limit,
                rows_estimate: estimate,
            }
            .message(),
        ))
    }

    /// The table's rows as PostgreSQL estimates them (its statistics), counted when it has
    /// none yet.
    async fn rows_estimate(&self) -> Result<u64, TimescaleError> {
        let estimate: i64 = match self.schema.storage {
            schema::Storage::Hypertable { .. } => {
                sqlx::query_scalar("SELECT approximate_row_count($1::text::regclass)::int8")
                    .bind(&self.table)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(rejected("delete_by_filter"))?
            }
            schema::Storage::Plain => sqlx::query_scalar(
                "SELECT reltuples::int8 FROM pg_class WHERE oid = $1::text::regclass",
            )
            .bind(&self.table)
            .fetch_one(&self.pool)
            .await
            .map_err(rejected("delete_by_filter"))?,
        };
        if estimate >= 0 {
            return Ok(estimate as u64);
        }
        // Never analysed (-1): count.
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            self.table
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(rejected("delete_by_filter"))?;
        Ok(n as u64)
    }

    async fn stats(&self, p: Params) -> Result<Value, TimescaleError> {
        refuse(
            &p,
            &["limit", "cursor", "all", "refuse_over", "buckets"],
            "stats",
        )?;
        let filter = Filter::from_params(&p)?;
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT GROUPING(level)::int4, GROUPING(project)::int4, GROUPING(module)::int4,
                    level, project, module, count(*)::int8, min(ts), max(ts)
             FROM {}",
            self.table
        ));
        filter.push(&mut qb);
        qb.push(" GROUP BY GROUPING SETS ((level), (project), (module), ())");
        type StatRow = (
            i32,
            i32,
            i32,
            Option<i16>,
            Option<String>,
            Option<String>,
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<StatRow> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(rejected("stats"))?;
        let (mut by_level, mut by_project, mut by_module) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut total = json!({ "total": 0, "oldest": null, "newest": null });
        for (gl, gp, gm, level, project, module, n, oldest, newest) in rows {
            match (gl, gp, gm) {
                (0, _, _) => {
                    by_level.insert(out::level_name(level.unwrap_or(-1)).into_owned(), n);
                }
                (_, 0, _) => {
                    by_project.insert(project.unwrap_or_default(), n);
                }
                (_, _, 0) => {
                    by_module.insert(module.unwrap_or_default(), n);
                }
                _ => {
                    total = json!({
                        "total": n,
                        "oldest": oldest.map(rfc3339),
                        "newest": newest.map(rfc3339),
                    });
                }
            }
        }
        let mut answer = total;
        answer["by_level"] = json!(by_level);
        answer["by_project"] = json!(by_project);
        answer["by_module"] = json!(by_module);
        answer["from"] = json!(filter.from.map(rfc3339));
        answer["to"] = json!(filter.to.map(rfc3339));
        Ok(answer)
    }

    /// Counts by level in `buckets` equal slices of the range: `time_bucket` on a hypertable,
    /// integer arithmetic on the epoch on plain PostgreSQL (which has no `time_bucket`, and
    /// `date_bin` only from version 14).
    async fn histogram(&self, p: Params) -> Result<Value, TimescaleError> {
        refuse(&p, &["limit", "cursor", "all", "refuse_over"], "histogram")?;
        let n = i64::from(p.buckets.unwrap_or(DEFAULT_BUCKETS));
        if !(1..=i64::from(MAX_BUCKETS)).contains(&n) {
            return Err(TimescaleError::BadRequest(format!(
                "`buckets`: {n} is not between 1 and {MAX_BUCKETS}"
            )));
        }
        let filter = Filter::from_params(&p)?;
        let (mut from, mut to) = (filter.from, filter.to);
        if from.is_none() || to.is_none() {
            let mut qb = QueryBuilder::<Postgres>::new(format!(
                "SELECT min(ts), max(ts) FROM {}",
                self.table
            ));
            filter.push(&mut qb);
            let (oldest, newest): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = qb
                .build_query_as()
                .fetch_one(&self.pool)
                .await
                .map_err(rejected("histogram"))?;
            from = from.or(oldest);
            to = to.or(newest.map(|t| t + chrono::Duration::microseconds(1)));
        }
        let empty = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
            json!(Histogram {
                from: from.map(rfc3339),
                to: to.map(rfc3339),
                from_ns: from.and_then(|t| t.timestamp_nanos_opt()),
                to_ns: to.and_then(|t| t.timestamp_nanos_opt()),
                bucket_us: 1,
                buckets: Vec::new(),
            })
        };
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(empty(from, to));
        };
        let span = to
            .timestamp_micros()
            .saturating_sub(from.timestamp_micros());
        if span <= 0 {
            return Ok(empty(Some(from), Some(to)));
        }
        let step = ((span + n - 1) / n).max(1);
        // The bucket's index, in integers: `time_bucket` on a hypertable; the epoch in
        // microseconds and integer division on plain PostgreSQL.
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        match self.schema.storage {
            schema::Storage::Hypertable { .. } => {
                qb.push("(extract(epoch FROM time_bucket(")
                    .push_bind(step)
                    .push(" * interval '1 microsecond', ts, ")
                    .push_bind(from)
                    .push(") - ")
                    .push_bind(from)
                    .push(") * 1000000)::int8 / ")
                    .push_bind(step);
            }
            schema::Storage::Plain => {
                // Rounded to whole microseconds (a float8 of today's epoch in microseconds is
                // exact to a quarter), then integer division: no float error at the edges.
                qb.push("(round(date_part('epoch', ts) * 1000000)::int8 - ")
                    .push_bind(from.timestamp_micros())
                    .push(") / ")
                    .push_bind(step);
            }
        }
        qb.push(format!(" AS b, level, count(*)::int8 FROM {}", self.table));
        filter.push(&mut qb);
        qb.push(" AND ts >= ")
            .push_bind(from)
            .push(" AND ts < ")
            .push_bind(to)
            .push(" GROUP BY 1, 2 ORDER BY 1, 2");
        let rows: Vec<(i64, i16, i64)> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(rejected("histogram"))?;
        let mut buckets: Vec<Bucket> = Vec::new();
        for (index, level, count) in rows {
            // Rounding at the last bucket's edge: keep every row inside the range's buckets.
            let index = index.clamp(0, n - 1);
            let count = u64::try_from(count).unwrap_or(0);
            if buckets.last().is_none_or(|b| i64::from(b.index) != index) {
                let start = from + chrono::Duration::microseconds(index * step);
                buckets.push(Bucket {
                    index: u32::try_from(index).unwrap_or(0),
                    start: rfc3339(start),
                    start_ns: start.timestamp_nanos_opt().unwrap_or(i64::MIN),
                    counts: BTreeMap::new(),
                    total: 0,
                });
            }
            if let Some(b) = buckets.last_mut() {
                *b.counts
                    .entry(out::level_name(level).into_owned())
                    .or_insert(0) += count;
                b.total += count;
            }
        }
        Ok(json!(Histogram {
            from: Some(rfc3339(from)),
            to: Some(rfc3339(to)),
            from_ns: from.timestamp_nanos_opt(),
            to_ns: to.timestamp_nanos_opt(),
            bucket_us: step,
            buckets,
        }))
    }

    async fn sql(&self, b: SqlBody) -> Result<Value, TimescaleError> {
        if b.query.trim().is_empty() {
            return Err(TimescaleError::BadRequest("`query` is empty".to_owned()));
        }
        let max_rows = b.max_rows.map_or(self.settings.sql_max_rows, |n| {
            (n as usize).min(self.settings.sql_max_rows)
        });
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(TimescaleError::db("starting the sql transaction"))?;
        if !b.write {
            tx.execute("SET TRANSACTION READ ONLY")
                .await
                .map_err(TimescaleError::db("starting a read-only transaction"))?;
        }
        tx.execute(AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {}",
            self.settings.sql_timeout.as_millis()
        )))
        .await
        .map_err(TimescaleError::db("setting the sql timeout"))?;
        // A prepared statement: the server refuses several statements in one, so a read-only
        // request cannot `COMMIT` its way out of its transaction.
        let stmt = (&mut *tx)
            .prepare(AssertSqlSafe(b.query.clone()).into_sql_str())
            .await
            .map_err(rejected("sql"))?;
        let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let types: Vec<String> = stmt
            .columns()
            .iter()
            .map(|c| c.type_info().name().to_lowercase())
            .collect();
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut affected = 0;
        {
            let mut stream = (&mut *tx).fetch_many(stmt.query());
            while let Some(item) = stream.try_next().await.map_err(rejected("sql"))? {
                match item {
                    Either::Left(done) => affected += done.rows_affected(),
                    Either::Right(row) => {
                        if rows.len() < max_rows {
                            rows.push(row_json(&row)?);
                        } else {
                            truncated = true;
                            break;
                        }
                    }
                }
            }
        }
        if b.write {
            tx.commit().await.map_err(rejected("sql (commit)"))?;
        } else {
            tx.rollback()
                .await
                .map_err(TimescaleError::db("ending the sql transaction"))?;
        }
        Ok(json!({
            "columns": columns,
            "types": types,
            "rows": rows,
            "truncated": truncated,
            "rows_affected": affected,
        }))
    }
}

/// A database error caused by the request (syntax, read-only violation, timeout) is the
/// caller's (`permanent`); a connection error stays transient.
fn rejected(what: &'static str) -> impl FnOnce(sqlx::Error) -> TimescaleError {
    move |e| {
        if is_connection_error(&e)
            && !matches!(crate::error::sqlstate(&e).as_deref(), Some("57014"))
        {
            TimescaleError::Db { what, source: e }
        } else {
            let reason = match &e {
                sqlx::Error::Database(d) => d.message().to_owned(),
                other => other.to_string(),
            };
            TimescaleError::BadRequest(format!("`{what}` refused by PostgreSQL: {reason}"))
        }
    }
}

/// Parses a request body (empty means `{}`), naming the bad field.
fn parse<T: DeserializeOwned>(method: &str, body: &str) -> Result<T, TimescaleError> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    logrelay_plugin_api::from_json_with_path(body.as_bytes()).map_err(|e| match e.path {
        Some(path) => {
            TimescaleError::BadRequest(format!("`{method}` field `{path}`: {}", e.message))
        }
        None => TimescaleError::BadRequest(format!("`{method}` body: {}", e.message)),
    })
}

/// A time of a request as an instant, or an error naming `field`.
fn resolve_time(t: &TimeArg, field: &str) -> Result<DateTime<Utc>, TimescaleError> {
    match t {
        TimeArg::Ns(ns) => Ok(DateTime::from_timestamp_nanos(*ns)),
        TimeArg::Text(t) => DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| {
                TimescaleError::BadRequest(format!(
                    "`{field}`: `{t}` is not an RFC 3339 time (2024-05-01T12:00:00Z) nor nanoseconds: {e}"
                ))
            }),
    }
}

/// A level of a request as its stored number, or an error naming `field`.
fn resolve_level(l: &LevelArg, field: &str) -> Result<i16, TimescaleError> {
    match l {
        LevelArg::Num(n) if *n <= 5 => Ok(i16::from(*n)),
        LevelArg::Name(name) => Level::from_name(name).map(|l| i16::from(l.0)).ok_or_else(|| {
            TimescaleError::BadRequest(format!(
                "`{field}`: unknown level `{name}` (trace, debug, info, warning, error, critical)"
            ))
        }),
        LevelArg::Num(n) => Err(TimescaleError::BadRequest(format!(
            "`{field}`: level {n} is out of range 0..=5"
        ))),
    }
}

/// Refuses the paging fields of `p` that do not apply to `method`.
fn refuse(p: &Params, fields: &[&str], method: &str) -> Result<(), TimescaleError> {
    for f in fields {
        let given = match *f {
            "limit" => p.limit.is_some(),
            "cursor" => p.cursor.is_some(),
            "all" => p.all.is_some(),
            "refuse_over" => p.refuse_over_rows.is_some() || p.refuse_over_percent.is_some(),
            "buckets" => p.buckets.is_some(),
            _ => false,
        };
        if given {
            let f = if *f == "refuse_over" {
                "refuse_over_rows` or `refuse_over_percent"
            } else {
                f
            };
            return Err(TimescaleError::BadRequest(format!(
                "`{f}` does not apply to `{method}`"
            )));
        }
    }
    Ok(())
}

/// A checked filter.
#[derive(Debug, Default)]
struct Filter {
    ids: Option<Vec<String>>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    level: Option<i16>,
    min_level: Option<i16>,
    projects: Option<Vec<String>>,
    modules: Option<Vec<String>>,
    text: Option<String>,
    /// (key, value) pairs: attribute `key` equals `value` (see `Params::attr`).
    attr: Vec<(String, String)>,
    has: Option<Vec<String>>,
}

impl Filter {
    fn from_params(p: &Params) -> Result<Filter, TimescaleError> {
        let list = |field: &str, v: Option<Vec<String>>| -> Result<_, TimescaleError> {
            match v {
                Some(v) if v.is_empty() => Err(TimescaleError::BadRequest(format!(
                    "`{field}`: an empty list matches nothing; leave the field out instead"
                ))),
                other => Ok(other),
            }
        };
        let f = Filter {
            ids: list("ids", p.ids.clone())?,
            from: p
                .from
                .as_ref()
                .map(|t| resolve_time(t, "from"))
                .transpose()?,
            to: p.to.as_ref().map(|t| resolve_time(t, "to")).transpose()?,
            level: p
                .level
                .as_ref()
                .map(|l| resolve_level(l, "level"))
                .transpose()?,
            min_level: p
                .min_level
                .as_ref()
                .map(|l| resolve_level(l, "min_level"))
                .transpose()?,
            projects: list("project", p.project.clone().map(OneOrMany::into_vec))?,
            modules: list("module", p.module.clone().map(OneOrMany::into_vec))?,
            text: p.text.clone().filter(|t| !t.is_empty()),
            attr: p
                .attr
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            has: list("has", p.has.clone())?,
        };
        for (k, v) in &f.attr {
            if k.is_empty() {
                return Err(TimescaleError::BadRequest(
                    "`attr`: an attribute name is empty".to_owned(),
                ));
            }
            no_nul("attr", k)?;
            no_nul("attr", v)?;
        }
        for k in f.has.iter().flatten() {
            no_nul("has", k)?;
        }
        // `to` at or before `from`: an empty range, which matches nothing.
        if let Some(t) = &f.text {
            no_nul("text", t)?;
        }
        Ok(f)
    }

    fn is_empty(&self) -> bool {
        self.ids.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.level.is_none()
            && self.min_level.is_none()
            && self.projects.is_none()
            && self.modules.is_none()
            && self.text.is_none()
            && self.attr.is_empty()
            && self.has.is_none()
    }

    /// Appends ` WHERE TRUE AND ...`.
    fn push(&self, qb: &mut QueryBuilder<Postgres>) {
        qb.push(" WHERE TRUE");
        if let Some(ids) = &self.ids {
            qb.push(" AND id = ANY(").push_bind(ids.clone()).push(")");
        }
        if let Some(from) = self.from {
            qb.push(" AND ts >= ").push_bind(from);
        }
        if let Some(to) = self.to {
            qb.push(" AND ts < ").push_bind(to);
        }
        if let Some(level) = self.level {
            qb.push(" AND level = ").push_bind(level);
        }
        if let Some(level) = self.min_level {
            qb.push(" AND level >= ").push_bind(level);
        }
        for (column, values) in [("project", &self.projects), ("module", &self.modules)] {
            match values.as_deref() {
                Some([one]) => {
                    qb.push(format!(" AND {column} = ")).push_bind(one.clone());
                }
                Some(many) => {
                    qb.push(format!(" AND {column} = ANY("))
                        .push_bind(many.to_vec())
                        .push(")");
                }
                None => {}
            }
        }
        // Containment (`@>`) and key existence (`?&`): both served by a GIN index on
        // `attributes` (jsonb_ops) when there is one.
        for (key, value) in &self.attr {
            qb.push(" AND (attributes @> ")
                .push_bind(json!({ key: value }));
            if let Ok(typed @ (Value::Number(_) | Value::Bool(_) | Value::Null)) =
                serde_json::from_str::<Value>(value)
            {
                qb.push(" OR attributes @> ")
                    .push_bind(json!({ key: typed }));
            }
            qb.push(")");
        }
        if let Some(keys) = &self.has {
            qb.push(" AND attributes ?& ").push_bind(keys.clone());
        }
        if let Some(text) = &self.text {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            qb.push(" AND message ILIKE ")
                .push_bind(format!("%{escaped}%"));
        }
    }
}

/// A record given to `add` as a record, or the rest of an error message starting after
/// ``records[i].``.
fn into_record(r: InRecord) -> Result<Record, String> {
    let ts = match &r.timestamp {
        Some(t) => resolve_time(t, "timestamp").map_err(|e| {
            let TimescaleError::BadRequest(m) = e else {
                return String::new();
            };
            m.trim_start_matches('`').to_owned()
        })?,
        None => Utc::now(),
    };
    let level = match &r.level {
        Some(l) => resolve_level(l, "level").map_err(|e| {
            let TimescaleError::BadRequest(m) = e else {
                return String::new();
            };
            m.trim_start_matches('`').to_owned()
        })?,
        None => i16::from(Level::INFO.0),
    };
    let id = r.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let attributes = Value::Object(r.attributes.unwrap_or_default()).to_string();
    Ok(Record::new(
        id,
        ts.timestamp_nanos_opt().unwrap_or(0),
        Level(level as u8),
        r.project,
        r.module,
        r.message,
    )
    .with_attributes(attributes))
}

fn no_nul(field: &str, value: &str) -> Result<(), TimescaleError> {
    if value.contains('\0') {
        Err(TimescaleError::BadRequest(format!(
            "`{field}` contains a NUL byte, which PostgreSQL text cannot hold"
        )))
    } else {
        Ok(())
    }
}

/// A time naming one stored row: truncated to the stored precision (microseconds).
fn exact_time(t: &TimeArg, field: &str) -> Result<DateTime<Utc>, TimescaleError> {
    let bad = || TimescaleError::BadRequest(format!("`{field}`: out of range"));
    match t {
        TimeArg::Ns(ns) => DateTime::from_timestamp_micros(ns.div_euclid(1000)).ok_or_else(bad),
        TimeArg::Text(_) => {
            let at = resolve_time(t, field)?;
            DateTime::from_timestamp_micros(at.timestamp_micros()).ok_or_else(bad)
        }
    }
}

/// The store's `not found:` for an id (and time).
fn not_found(id: &str, ts: Option<DateTime<Utc>>) -> TimescaleError {
    match ts {
        Some(ts) => TimescaleError::NotFound(format!(
            "no record with id `{id}` and timestamp {}",
            rfc3339(ts)
        )),
        None => TimescaleError::NotFound(format!("no record with id `{id}`")),
    }
}

/// The method a refusal of `verb` came from, for error messages.
fn verb_method(verb: &str) -> &'static str {
    match verb {
        "changed" => "update",
        "deleted" => "delete",
        _ => "get",
    }
}

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Buckets of a `histogram` without `buckets`.
const DEFAULT_BUCKETS: u32 = 60;
/// The most buckets a `histogram` may ask for.
const MAX_BUCKETS: u32 = 1000;

/// About 4700 BC, just after PostgreSQL's earliest `timestamptz` (4713 BC), in microseconds
/// since the epoch.
const PG_MIN_MICROS: i64 = -210_000_000_000_000_000;

/// The keyset cursor: the last record's time (microseconds, as stored) and id.
fn encode_cursor(ts: DateTime<Utc>, id: &str) -> String {
    format!("{}:{id}", ts.timestamp_micros())
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, String), TimescaleError> {
    let bad = || {
        TimescaleError::BadRequest(format!(
            "`cursor`: `{c}` is not a cursor returned by `query` (as `next`)"
        ))
    };
    let (micros, id) = c.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    // Before PostgreSQL's first representable time (4713 BC): a cursor past every record.
    let micros = micros.max(PG_MIN_MICROS);
    let ts = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((ts, id.to_owned()))
}

/// One result row of `sql` as JSON values.
fn row_json(row: &PgRow) -> Result<Vec<Value>, TimescaleError> {
    (0..row.len()).map(|i| value_json(row, i)).collect()
}

fn value_json(row: &PgRow, i: usize) -> Result<Value, TimescaleError> {
    let raw = row
        .try_get_raw(i)
        .map_err(TimescaleError::db("reading a column"))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty: PgTypeInfo = raw.type_info().into_owned();
    let name = ty.name().to_owned();
    let column = row.columns()[i].name().to_owned();
    let decode_err = |e: sqlx::Error| {
        TimescaleError::BadRequest(format!("column `{column}` ({name}) cannot be read: {e}"))
    };
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<$t, _>(i).map_err(decode_err)?
        };
    }
    Ok(match name.as_str() {
        "BOOL" => json!(get!(bool)),
        "INT2" => json!(get!(i16)),
        "INT4" => json!(get!(i32)),
        "INT8" => json!(get!(i64)),
        "OID" => json!(get!(sqlx::postgres::types::Oid).0),
        "FLOAT4" => json!(get!(f32)),
        "FLOAT8" => json!(get!(f64)),
        "NUMERIC" => numeric_json(raw.as_bytes().map_err(|e| {
            TimescaleError::BadRequest(format!("column `{column}` (NUMERIC): {e}"))
        })?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "UNKNOWN" | "CITEXT" => {
            json!(get!(String))
        }
        "JSON" | "JSONB" => get!(sqlx::types::Json<Value>).0,
        "TIMESTAMPTZ" => json!(rfc3339(get!(DateTime<Utc>))),
        "TIMESTAMP" => json!(get!(NaiveDateTime).to_string()),
        "DATE" => json!(get!(NaiveDate).to_string()),
        "TIME" => json!(get!(NaiveTime).to_string()),
        "VOID" => Value::Null,
        "BYTEA" => {
            let bytes = get!(Vec<u8>);
            let mut s = String::with_capacity(2 + bytes.len() * 2);
            s.push_str("\\x");
            for b in bytes {
                s.push_str(&format!("{b:02x}"));
            }
            json!(s)
        }
        "UUID" => {
            let b = raw.as_bytes().map_err(|e| {
                TimescaleError::BadRequest(format!("column `{column}` (UUID): {e}"))
            })?;
            match uuid::Uuid::from_slice(b) {
                Ok(u) => json!(u.to_string()),
                Err(e) => {
                    return Err(TimescaleError::BadRequest(format!(
                        "column `{column}` (UUID): {e}"
                    )));
                }
            }
        }
        "TEXT[]" | "VARCHAR[]" | "NAME[]" => json!(get!(Vec<String>)),
        "INT2[]" => json!(get!(Vec<i16>)),
        "INT4[]" => json!(get!(Vec<i32>)),
        "INT8[]" => json!(get!(Vec<i64>)),
        "FLOAT8[]" => json!(get!(Vec<f64>)),
        "BOOL[]" => json!(get!(Vec<bool>)),
        other => {
            return Err(TimescaleError::BadRequest(format!(
                "column `{column}` has type {}, which `sql` cannot return as JSON; cast it (`::text`)",
                other.to_lowercase()
            )));
        }
    })
}

/// PostgreSQL's binary NUMERIC (base-10000 digits) as a JSON number (or "NaN"/"Infinity").
fn numeric_json(b: &[u8]) -> Value {
    let word = |at: usize| -> u16 {
        b.get(at..at + 2)
            .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
    };
    let ndigits = usize::from(word(0));
    let weight = i32::from(word(2) as i16);
    let sign = word(4);
    let dscale = word(6);
    match sign {
        0xC000 => return json!("NaN"),
        0xD000 => return json!("Infinity"),
        0xF000 => return json!("-Infinity"),
        _ => {}
    }
    let mut v = 0f64;
    for d in 0..ndigits {
        let digit = f64::from(word(8 + 2 * d));
        v += digit * 10000f64.powi(weight - d as i32);
    }
    if sign == 0x4000 {
        v = -v;
    }
    if dscale == 0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let ts = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let c = encode_cursor(ts, "a:b");
        assert_eq!(decode_cursor(&c).unwrap(), (ts, "a:b".to_owned()));
        assert!(decode_cursor("nonsense").is_err());
    }

    #[test]
    fn numerics() {
        // 12345.678: ndigits 3, weight 1, sign 0, dscale 3, digits 1 2345 6780
        let b = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(numeric_json(&b), json!(12345.678));
        let b = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 42];
        assert_eq!(numeric_json(&b), json!(-42));
    }

    #[test]
    fn bodies_name_the_bad_field() {
        let e = parse::<Params>("query", r#"{"levle": 1}"#).unwrap_err();
        assert!(e.to_string().contains("levle"), "{e}");
        let p: Params = parse("query", r#"{"from": "nope"}"#).unwrap();
        let e = Filter::from_params(&p).unwrap_err();
        assert!(e.to_string().contains("`from`"), "{e}");
    }
}
