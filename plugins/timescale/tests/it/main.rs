//! Integration tests against the real PostgreSQL on 127.0.0.1:5432, each in its own database.

mod common;
mod loaded;
mod outage;
mod requests;
mod store;
