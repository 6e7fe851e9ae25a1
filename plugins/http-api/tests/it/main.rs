//! Tests of the http-api connector over real HTTP against the real store: the timescale and
//! http-api libraries are built, loaded by the host's loader and run in the host's engine, over
//! a fresh PostgreSQL database per test (127.0.0.1:5432, user postgres).

#![allow(clippy::unwrap_used)]

mod addressing;
mod common;
mod explorer;
mod inprocess;
mod input;
mod routes;
mod security;
mod stream;
