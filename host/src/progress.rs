//! Progress of `replay` and `send --file` on standard error: records, rate and time left, for a
//! person at a terminal. Nothing is drawn when standard error is not a terminal (a pipe, a file,
//! journald), so scripts and logs see only the final summary.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over the bytes of an input, with the records done as its message.
pub struct Progress {
    bar: ProgressBar,
    records: u64,
}

impl Progress {
    /// A bar for `total` bytes (unknown for standard input: a spinner then), or a hidden one when
    /// standard error is not a terminal.
    pub fn new(total: Option<u64>, verb: &'static str) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = match total {
            Some(bytes) => ProgressBar::with_draw_target(Some(bytes), target).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        let progress = Progress { bar, records: 0 };
        progress.bar.set_message(format!("{verb} 0 records"));
        progress
    }

    /// `bytes` more of the input read, holding `records` more records.
    pub fn advance(&mut self, bytes: u64, records: u64, verb: &'static str) {
        self.records += records;
        self.bar.inc(bytes);
        if records > 0 {
            let noun = if self.records == 1 {
                "record"
            } else {
                "records"
            };
            self.bar
                .set_message(format!("{verb} {} {noun}", self.records));
        }
    }

    /// Runs `f` (which writes to the terminal) with the bar out of the way.
    pub fn suspend(&self, f: impl FnOnce()) {
        self.bar.suspend(f);
    }

    /// Removes the bar (the caller prints its summary after).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
