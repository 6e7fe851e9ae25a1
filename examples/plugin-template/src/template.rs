//! The connector itself: appends every record to a file as one JSON object per line.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use logrelay_plugin_api::{Context, Plugin, PluginError, Record};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::{Config, Settings};
use crate::error::TemplateError;

/// A connector that appends each batch to a file as JSON lines.
///
/// The host calls `handle_batch` from this instance's own worker thread, one batch at a time,
/// while other instances may call `request` concurrently: state shared between the two lives
/// behind a lock or in atomics.
pub struct Template {
    settings: Settings,
    out: Mutex<Output>,
    lines: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
}

/// The open file and a buffer reused by every batch (one allocation, one write per batch).
struct Output {
    file: File,
    buf: Vec<u8>,
}

/// One line of output: the record's envelope, with its attributes kept as the JSON they are.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    timestamp_ns: i64,
    level: &'static str,
    project: &'a str,
    module: &'a str,
    message: &'a str,
    attributes: &'a RawValue,
}

/// What a batch came to.
struct Written {
    lines: u64,
    bytes: u64,
    /// Records that can never be written: their index and why.
    refused: Vec<(u32, String)>,
}

impl Plugin for Template {
    type Config = Config;
    const TYPE_NAME: &'static str = "template";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "appends every record to a file as one JSON object per line";
    const EXAMPLE_CONFIG: &'static str = include_str!("../example-config.toml");
    /// Answers `request("stats", "")` with what it has written.
    const CAPABILITIES: &'static [&'static str] = &["stats"];

    /// `logrelay check`: the config's values, without opening the file. (Without this the
    /// check would build the instance, side effects and all.)
    fn check(config: Config) -> Option<Result<(), PluginError>> {
        Some(config.validate().map(|_| ()).map_err(PluginError::from))
    }

    async fn new(config: Config, _ctx: Context) -> Result<Self, PluginError> {
        let settings = config.validate()?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.path)
            .map_err(|source| TemplateError::Open {
                path: settings.path.clone(),
                source,
            })?;
        tracing::info!(path = %settings.path.display(), sync = settings.sync_each_batch, "Appending JSON lines.");
        Ok(Template {
            settings,
            out: Mutex::new(Output {
                file,
                buf: Vec::new(),
            }),
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    // The future runs on the host's worker thread for this instance (through the runtime's
    // `block_on`), so a short blocking write here holds up no other instance.
    async fn handle_batch(&self, batch: &[Record]) -> Result<(), PluginError> {
        let written = self.write_batch(batch)?;
        self.lines.fetch_add(written.lines, Ordering::Relaxed);
        self.bytes.fetch_add(written.bytes, Ordering::Relaxed);
        tracing::debug!(
            lines = written.lines,
            bytes = written.bytes,
            "Batch appended."
        );
        if written.refused.is_empty() {
            return Ok(());
        }
        self.refused
            .fetch_add(written.refused.len() as u64, Ordering::Relaxed);
        // The good records are on disk: naming only the bad ones lets the host accept the rest.
        Err(TemplateError::Refused {
            refused: written.refused,
            batch: batch.len(),
        }
        .into())
    }

    async fn healthcheck(&self) -> Result<(), PluginError> {
        if self.settings.path.exists() {
            Ok(())
        } else {
            Err(TemplateError::Gone {
                path: self.settings.path.clone(),
            }
            .into())
        }
    }

    async fn request(&self, method: &str, _body: &str) -> Result<String, PluginError> {
        match method {
            "stats" => Ok(serde_json::json!({
                "lines": self.lines.load(Ordering::Relaxed),
                "bytes": self.bytes.load(Ordering::Relaxed),
                "refused": self.refused.load(Ordering::Relaxed),
            })
            .to_string()),
            other => Err(PluginError::permanent(format!(
                "unknown method `{other}`; the {} connector answers `stats`",
                Self::TYPE_NAME
            ))),
        }
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        let out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.file
            .sync_data()
            .map_err(|source| TemplateError::Write {
                path: self.settings.path.clone(),
                source,
            })?;
        tracing::info!(
            lines = self.lines.load(Ordering::Relaxed),
            "Output synced; shutting down."
        );
        Ok(())
    }
}

impl Template {
    /// Renders the batch into the buffer, leaving out the records that can never be written,
    /// then appends it with one write (and syncs it when configured).
    fn write_batch(&self, batch: &[Record]) -> Result<Written, TemplateError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let Output { file, buf } = &mut *out;
        buf.clear();
        let mut written = Written {
            lines: 0,
            bytes: 0,
            refused: Vec::new(),
        };
        for (index, record) in batch.iter().enumerate() {
            let start = buf.len();
            match self.render(buf, record) {
                Ok(()) => written.lines += 1,
                Err(reason) => {
                    buf.truncate(start);
                    written.refused.push((index as u32, reason));
                }
            }
        }
        if buf.is_empty() {
            return Ok(written);
        }
        let write_error = |source| TemplateError::Write {
            path: self.settings.path.clone(),
            source,
        };
        // A failure here is transient: the host retries the whole batch, so lines written before
        // the failure may appear twice. Readers deduplicate by `id`.
        file.write_all(buf).map_err(write_error)?;
        if self.settings.sync_each_batch {
            file.sync_data().map_err(write_error)?;
        }
        written.bytes = buf.len() as u64;
        Ok(written)
    }

    /// Appends one record's line to `buf`, or says why it can never be written.
    fn render(&self, buf: &mut Vec<u8>, record: &Record) -> Result<(), String> {
        let start = buf.len();
        let attributes: &RawValue = serde_json::from_str(record.attributes.as_str())
            .map_err(|e| format!("record `{}`: attributes are not JSON: {e}", record.id))?;
        if !attributes.get().starts_with('{') {
            return Err(format!(
                "record `{}`: attributes are not a JSON object",
                record.id
            ));
        }
        buf.extend_from_slice(self.settings.prefix.as_bytes());
        let line = Line {
            id: record.id.as_str(),
            timestamp_ns: record.timestamp_ns,
            level: record.level.name(),
            project: record.project.as_str(),
            module: record.module.as_str(),
            message: record.message.as_str(),
            attributes,
        };
        serde_json::to_writer(&mut *buf, &line)
            .map_err(|e| format!("record `{}`: cannot be written as JSON: {e}", record.id))?;
        buf.push(b'\n');
        let len = buf.len() - start;
        let max = self.settings.max_line_bytes.get();
        if len > max {
            return Err(format!(
                "record `{}`: its line of {len} bytes is longer than max_line_bytes ({max})",
                record.id
            ));
        }
        Ok(())
    }
}
