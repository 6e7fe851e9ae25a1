//! The `console` connector: prints every record as one line on standard output, standard error
//! or a file, with the fields chosen, ordered, coloured and styled as its config says.
//!
//! The layout is the shared engine of [`logrelay_plugin_api::format`]; this crate adds the
//! output, the colour decision (`auto | always | never`, `NO_COLOR`, terminal or not) and one
//! write per batch. See README.md for the options.

mod config;
mod console;
mod error;
mod output;

pub use config::{ColorChoice, Config, OutputKind, Settings, Target, use_color};
pub use console::Console;
pub use error::ConsoleError;

logrelay_plugin_api::export_plugin!(Console);
