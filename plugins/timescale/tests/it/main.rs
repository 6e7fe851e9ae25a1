//! Integration tests against the real PostgreSQL on 127.0.0.1:5432 (or the server
//! `LOGRELAY_TEST_POSTGRES` names), each in its own database; hypertable.rs also uses the
//! TimescaleDB servers `scripts/timescaledb` makes.

mod common;
mod hypertable;
mod loaded;
mod outage;
mod requests;
mod store;
