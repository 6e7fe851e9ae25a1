//! The console connector itself.

use std::sync::{Mutex, PoisonError};

use logrelay_plugin_api::format::{Ansi, Layout, Plain};
use logrelay_plugin_api::{Context, Plugin, PluginError, Record};

use crate::config::{Config, use_color};
use crate::output::Output;

/// A batch buffer that grew past this is shrunk back after the batch, so that one huge batch
/// does not pin its memory for ever.
const KEEP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Prints records to the terminal (or a file), one line each, laid out and styled as configured.
pub struct Console {
    layout: Layout,
    styled: bool,
    output: Output,
    /// The batch being formatted; reused from batch to batch.
    buffer: Mutex<String>,
}

impl Console {
    /// Formats `batch` into the reused buffer and writes it with one `write_all`.
    fn print(&self, batch: &[Record]) -> Result<(), PluginError> {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.clear();
        if self.styled {
            self.layout.write_batch::<Ansi>(batch, &mut buffer);
        } else {
            self.layout.write_batch::<Plain>(batch, &mut buffer);
        }
        let written = self.output.write_all(buffer.as_bytes());
        if buffer.capacity() > KEEP_BUFFER_BYTES {
            buffer.clear();
            buffer.shrink_to(KEEP_BUFFER_BYTES);
        }
        written.map_err(PluginError::from)
    }
}

impl Plugin for Console {
    type Config = Config;
    const TYPE_NAME: &'static str = "console";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "prints logs to the terminal: fields chosen, ordered, coloured and styled";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");

    /// Without opening the output file.
    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(config.validate().map(|_| ()).map_err(PluginError::from))
    }

    async fn new(config: Config, _ctx: Context) -> Result<Self, PluginError> {
        let settings = config.validate()?;
        let output = Output::open(&settings.target)?;
        // Read once: the environment is process-wide and may not change under us.
        let no_color = std::env::var_os("NO_COLOR").map(|v| v.to_string_lossy().into_owned());
        let term = std::env::var_os("TERM").map(|v| v.to_string_lossy().into_owned());
        let is_terminal = output.is_terminal();
        let styled = use_color(
            settings.color,
            no_color.as_deref(),
            term.as_deref(),
            is_terminal,
        );
        tracing::debug!(
            output = %output.name(),
            is_terminal,
            styled,
            "Console output ready."
        );
        Ok(Console {
            layout: settings.layout,
            styled,
            output,
            buffer: Mutex::new(String::with_capacity(64 * 1024)),
        })
    }

    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.print(batch)
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        self.output.flush().map_err(PluginError::from)
    }
}
