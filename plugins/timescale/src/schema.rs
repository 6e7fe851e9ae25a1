//! The schema: versioned, idempotent migrations, run at every start.
//!
//! sqlx's `migrate!` embeds fixed SQL files, but the table name here is configurable and one
//! database may hold several logrelay tables, so the steps are generated for the table and
//! recorded per table in `<schema>.logrelay_migrations (table_name, version, description)`.
//! Every start runs, in one transaction under an advisory lock (so two hosts starting together
//! do not race), the steps not yet recorded for the table. A step, once recorded, never runs
//! again; a schema change is a new step with the next version.
//!
//! Step 2 decides the storage for good: `hypertable` (TimescaleDB) or `plain`. A table created
//! plain stays plain when TimescaleDB appears later (converting a large table is an operator's
//! decision: `SELECT create_hypertable(..., migrate_data => true)`); the log says so.

use sqlx::{AssertSqlSafe, Executor, PgPool, Row};

use crate::config::{MessageIndex, Settings, TimescaleMode, interval_sql};
use crate::error::TimescaleError;

/// How the table is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A TimescaleDB hypertable (with the extension's version).
    Hypertable {
        /// `extversion` of timescaledb.
        version: String,
        /// Whether the server's licence gives compression and policy jobs (`timescaledb.license`
        /// is `timescale`, the Community Edition). An Apache-2.0-only build has hypertables and
        /// `drop_chunks`, but neither compression nor `add_*_policy`: the store then drops old
        /// chunks from its own task, as it deletes old rows on plain PostgreSQL.
        policies: bool,
    },
    /// A plain PostgreSQL table.
    Plain,
}

impl Storage {
    /// `hypertable` or `plain`.
    pub fn name(&self) -> &'static str {
        match self {
            Storage::Hypertable { .. } => "hypertable",
            Storage::Plain => "plain",
        }
    }
}

/// What the start-up found and did.
#[derive(Debug, Clone)]
pub struct SchemaInfo {
    /// The storage in use.
    pub storage: Storage,
    /// Whether messages have a trigram index.
    pub message_trigram: bool,
    /// Steps applied by this start (empty on a restart).
    pub applied: Vec<i32>,
    /// Why TimescaleDB is not in use, when it is not (said at start, and by `schema`).
    pub timescaledb_missing: Option<String>,
}

fn q(sql: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql)
}

/// What the server offers of TimescaleDB.
struct Found {
    version: String,
    policies: bool,
}

/// Whether the `timescaledb` extension can be used: installed in this database, or available,
/// preloaded and creatable here. Returns its version and licence, or why not, in words that say
/// what to change.
async fn timescaledb(pool: &PgPool) -> Result<Result<Found, String>, TimescaleError> {
    let available: Option<String> = sqlx::query_scalar(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
    )
    .fetch_optional(pool)
    .await
    .map_err(TimescaleError::db("looking for the timescaledb extension"))?;
    if available.is_none() {
        return Ok(Err(
            "the timescaledb extension is not installed on the server".to_owned(),
        ));
    }
    // Installed but not preloaded is the commonest half-done setup: CREATE EXTENSION then fails
    // with "must be preloaded", which does not say where.
    let preload: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(pool)
        .await
        .map_err(TimescaleError::db("reading shared_preload_libraries"))?;
    if !preload
        .split(',')
        .any(|library| library.trim().trim_matches('"') == "timescaledb")
    {
        let now = if preload.trim().is_empty() {
            "empty".to_owned()
        } else {
            format!("'{}'", preload.trim())
        };
        return Ok(Err(format!(
            "the timescaledb extension is installed on the server but not preloaded \
             (shared_preload_libraries is {now}): add timescaledb to shared_preload_libraries \
             in postgresql.conf (or ALTER SYSTEM SET shared_preload_libraries = 'timescaledb') \
             and restart PostgreSQL"
        )));
    }
    if let Err(e) = pool
        .execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .await
    {
        return Ok(Err(format!("CREATE EXTENSION timescaledb failed: {e}")));
    }
    let (version, license): (String, Option<String>) = sqlx::query_as(
        "SELECT extversion, current_setting('timescaledb.license', true)
         FROM pg_extension WHERE extname = 'timescaledb'",
    )
    .fetch_one(pool)
    .await
    .map_err(TimescaleError::db("reading the timescaledb version"))?;
    Ok(Ok(Found {
        version,
        policies: license.as_deref() != Some("apache"),
    }))
}

/// Creates or updates the table, its indexes and (with TimescaleDB) its policies.
pub async fn migrate(pool: &PgPool, s: &Settings) -> Result<SchemaInfo, TimescaleError> {
    let t = s.qualified();
    let schema = &s.schema;
    let table = &s.table;
    let ts_available = match s.timescale {
        TimescaleMode::Off => Err("`timescale = \"off\"`".to_owned()),
        _ => timescaledb(pool).await?,
    };
    if let (TimescaleMode::Require, Err(why)) = (s.timescale, &ts_available) {
        return Err(TimescaleError::TimescaleMissing(why.clone()));
    }

    let mut tx = pool
        .begin()
        .await
        .map_err(TimescaleError::db("starting the migration"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('logrelay_migrations:' || $1))")
        .bind(&t)
        .execute(&mut *tx)
        .await
        .map_err(TimescaleError::db("locking the migrations"))?;
    tx.execute(q(format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".logrelay_migrations (
            table_name text NOT NULL,
            version integer NOT NULL,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (table_name, version))"
    )))
    .await
    .map_err(TimescaleError::db("creating logrelay_migrations"))?;
    let done: Vec<(i32, String)> = sqlx::query_as(q(format!(
        "SELECT version, description FROM \"{schema}\".logrelay_migrations
         WHERE table_name = $1 ORDER BY version"
    )))
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(TimescaleError::db("reading logrelay_migrations"))?;
    let has = |v: i32| done.iter().any(|(version, _)| *version == v);

    // Step 2 (storage) is decided once: keep what an earlier start chose.
    let recorded_storage = done
        .iter()
        .find(|(v, _)| *v == 2)
        .map(|(_, d)| d.contains("hypertable"));
    let storage = match (recorded_storage, &ts_available) {
        (Some(true), Ok(found)) | (None, Ok(found)) => Storage::Hypertable {
            version: found.version.clone(),
            policies: found.policies,
        },
        (Some(true), Err(why)) => {
            return Err(TimescaleError::TimescaleMissing(format!(
                "the table {t} is a hypertable and {why}"
            )));
        }
        (Some(false), Ok(_)) => {
            if s.timescale == TimescaleMode::Require {
                return Err(TimescaleError::TimescaleMissing(format!(
                    "the table {t} was created as a plain table; convert it with create_hypertable(..., migrate_data => true) first"
                )));
            }
            tracing::warn!(table = %t, "TimescaleDB is available but the table was created without it; it stays a plain table (convert it with create_hypertable(..., migrate_data => true)).");
            Storage::Plain
        }
        (_, Err(_)) => Storage::Plain,
    };

    let mut steps: Vec<(i32, String, Vec<String>)> = Vec::new();
    // The key columns are `COLLATE "C"`: their indexes compare bytes, not locale rules (README,
    // "Schema"). `message` keeps the database's collation for `ILIKE`.
    steps.push((
        1,
        "create table".to_owned(),
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id text COLLATE \"C\" NOT NULL,
                ts timestamptz NOT NULL,
                level smallint NOT NULL,
                project text COLLATE \"C\" NOT NULL,
                module text COLLATE \"C\" NOT NULL,
                message text NOT NULL,
                attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                PRIMARY KEY (id, ts))"
        )],
    ));
    steps.push(match &storage {
        Storage::Hypertable { .. } => (
            2,
            "storage: hypertable".to_owned(),
            vec![format!(
                "SELECT create_hypertable('{t}', 'ts', chunk_time_interval => {}, if_not_exists => TRUE, migrate_data => TRUE)",
                interval_sql(s.chunk_interval)
            )],
        ),
        Storage::Plain => (
            2,
            "storage: plain".to_owned(),
            vec![format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_ts_brin\" ON {t} USING brin (ts) WITH (pages_per_range = 32)"
            )],
        ),
    });
    steps.push((
        3,
        "filter indexes".to_owned(),
        vec![
            format!("CREATE INDEX IF NOT EXISTS \"{table}_ts_id_idx\" ON {t} (ts, id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_project_ts_idx\" ON {t} (project, ts, id)"
            ),
            format!("CREATE INDEX IF NOT EXISTS \"{table}_level_ts_idx\" ON {t} (level, ts, id)"),
            format!("CREATE INDEX IF NOT EXISTS \"{table}_module_ts_idx\" ON {t} (module, ts, id)"),
        ],
    ));

    let mut applied = Vec::new();
    for (version, description, sqls) in steps {
        if has(version) {
            continue;
        }
        for sql in sqls {
            tx.execute(q(sql))
                .await
                .map_err(TimescaleError::db("a schema migration"))?;
        }
        sqlx::query(q(format!(
            "INSERT INTO \"{schema}\".logrelay_migrations (table_name, version, description)
             VALUES ($1, $2, $3)"
        )))
        .bind(table)
        .bind(version)
        .bind(&description)
        .execute(&mut *tx)
        .await
        .map_err(TimescaleError::db("recording a migration"))?;
        applied.push(version);
    }

    if let Storage::Hypertable { policies: true, .. } = storage {
        apply_policies(&mut tx, s).await?;
    }
    tx.commit()
        .await
        .map_err(TimescaleError::db("committing the migration"))?;

    let message_trigram = message_index(pool, s, has(4)).await?;
    if message_trigram && !has(4) {
        applied.push(4);
    }
    Ok(SchemaInfo {
        storage,
        message_trigram,
        applied,
        timescaledb_missing: ts_available.err(),
    })
}

/// Compression and retention policies follow the config at every start (remove, then add).
async fn apply_policies(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    s: &Settings,
) -> Result<(), TimescaleError> {
    let t = s.qualified();
    let enabled: Option<bool> = sqlx::query_scalar(
        "SELECT compression_enabled FROM timescaledb_information.hypertables
         WHERE hypertable_schema = $1 AND hypertable_name = $2",
    )
    .bind(&s.schema)
    .bind(&s.table)
    .fetch_optional(&mut **tx)
    .await
    .map_err(TimescaleError::db("reading the hypertable's settings"))?;
    let mut sqls = Vec::new();
    if let Some(after) = s.compress_after {
        if enabled != Some(true) {
            sqls.push(format!(
                "ALTER TABLE {t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'project', timescaledb.compress_orderby = 'ts DESC, id DESC')"
            ));
        }
        sqls.push(format!(
            "SELECT remove_compression_policy('{t}', if_exists => TRUE)"
        ));
        sqls.push(format!(
            "SELECT add_compression_policy('{t}', compress_after => {})",
            interval_sql(after)
        ));
    } else if enabled == Some(true) {
        sqls.push(format!(
            "SELECT remove_compression_policy('{t}', if_exists => TRUE)"
        ));
    }
    sqls.push(format!(
        "SELECT remove_retention_policy('{t}', if_exists => TRUE)"
    ));
    if let Some(retention) = s.retention {
        sqls.push(format!(
            "SELECT add_retention_policy('{t}', drop_after => {})",
            interval_sql(retention)
        ));
    }
    for sql in sqls {
        tx.execute(q(sql))
            .await
            .map_err(TimescaleError::db("setting the TimescaleDB policies"))?;
    }
    Ok(())
}

/// Step 4: a trigram index on messages, when pg_trgm can be created. Runs in its own
/// transaction, since a refused CREATE EXTENSION must not undo the rest; re-checked at every
/// start until it succeeds.
async fn message_index(pool: &PgPool, s: &Settings, done: bool) -> Result<bool, TimescaleError> {
    if done {
        return Ok(true);
    }
    if s.message_index == MessageIndex::Off {
        return Ok(false);
    }
    let available: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')",
    )
    .fetch_one(pool)
    .await
    .map_err(TimescaleError::db("looking for the pg_trgm extension"))?;
    if !available {
        tracing::info!("pg_trgm is not installed: message search scans without an index.");
        return Ok(false);
    }
    let t = s.qualified();
    let (schema, table) = (&s.schema, &s.table);
    let mut tx = pool
        .begin()
        .await
        .map_err(TimescaleError::db("starting the message index migration"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('logrelay_migrations:' || $1))")
        .bind(&t)
        .execute(&mut *tx)
        .await
        .map_err(TimescaleError::db("locking the migrations"))?;
    if let Err(e) = tx.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm").await {
        tracing::warn!(error = %e, "Cannot create the pg_trgm extension: message search scans without an index.");
        return Ok(false);
    }
    tx.execute(q(format!(
        "CREATE INDEX IF NOT EXISTS \"{table}_message_trgm\" ON {t} USING gin (message gin_trgm_ops)"
    )))
    .await
    .map_err(TimescaleError::db("creating the message index"))?;
    sqlx::query(q(format!(
        "INSERT INTO \"{schema}\".logrelay_migrations (table_name, version, description)
         VALUES ($1, 4, 'message trigram index') ON CONFLICT DO NOTHING"
    )))
    .bind(table)
    .execute(&mut *tx)
    .await
    .map_err(TimescaleError::db("recording a migration"))?;
    tx.commit()
        .await
        .map_err(TimescaleError::db("committing the message index"))?;
    Ok(true)
}

/// The migrations recorded for the table, for tests and the `schema` request.
pub async fn recorded(pool: &PgPool, s: &Settings) -> Result<Vec<(i32, String)>, TimescaleError> {
    let rows = sqlx::query(q(format!(
        "SELECT version, description FROM \"{}\".logrelay_migrations WHERE table_name = $1 ORDER BY version",
        s.schema
    )))
    .bind(&s.table)
    .fetch_all(pool)
    .await
    .map_err(TimescaleError::db("reading logrelay_migrations"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<i32, _>(0), r.get::<String, _>(1)))
        .collect())
}
