//! The logrelay host: settings, plugin loading, dispatch, RabbitMQ intake, and the CLI commands.
//!
//! `docs/ARCHITECTURE.md` describes how the pieces fit together.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod decode;
pub mod describe;
pub mod engine;
pub mod fingerprint;
pub mod host_api;
pub mod intake;
pub mod journal;
pub mod loader;
pub mod progress;
pub mod replay;
pub mod send;
pub mod sql;
pub mod tail;
pub mod top;
