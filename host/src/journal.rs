//! The crash journal: which redelivered messages were with the connectors when the host died.
//!
//! A panic is caught at the plugin boundary, but an abort, a segfault inside a connector or an
//! OOM kill takes the whole process down with the message still unacknowledged. RabbitMQ then
//! redelivers it, and without a memory of what happened it would stop the host again forever.
//!
//! The mechanism, and why:
//! - RabbitMQ's `redelivered` flag says which deliveries may have been handed on before. Only
//!   those pay anything: before a batch holding redelivered messages goes to the connectors,
//!   their fingerprints are appended here (`+`) and the file is synced; when the batch is done
//!   with (accepted, dead-lettered, or the connection lost while the host lives), they are
//!   forgotten (`x`). A `+` without its `x` at the next start is one death of the host while
//!   that message was being handled.
//! - A message with one such death is handled **alone**: the host waits until nothing else is in
//!   flight, hands it on by itself and waits for it. Its innocent neighbours from the batch that
//!   died are then cleared one by one, and only a message that kills the host on its own keeps
//!   counting. At `LOGRELAY_CRASH_LIMIT` deaths it is dead-lettered with a reason saying so.
//! - Messages seen for the first time are not journaled (no `fsync` on the hot path): the first
//!   death of the host is not counted, the first redelivery finds no entry and is handled in
//!   an ordinary (journaled) batch.
//!
//! Counting in the broker instead (a header incremented by republishing every redelivered
//! message) was not chosen: it would count every message in flight at each death (up to the
//! prefetch), including the ones waiting unhandled in the consumer, so innocent messages would
//! reach the limit as fast as the poison one. RabbitMQ's own delivery limit needs quorum queues
//! and counts the same way. The journal counts only what was actually with the connectors.
//!
//! The journal is local to one host: with several hosts on one queue, a poison message is
//! dead-lettered after at most `LOGRELAY_CRASH_LIMIT` deaths of each host it reaches.
//!
//! File format, one entry per line: `= <fingerprint> <deaths> <unix seconds>` (a compacted
//! count), `+ <fingerprint>`, `x <fingerprint>`. The file is compacted at start and when it
//! grows long; counts older than a week are dropped then.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fingerprint::Fingerprint;

/// Counts older than this are forgotten at compaction (a crash loop lasts seconds).
const KEEP_SECS: u64 = 7 * 24 * 3600;
/// Lines appended before the file is rewritten from memory.
const COMPACT_AFTER_LINES: usize = 200_000;

/// A problem with the journal file.
#[derive(Debug, thiserror::Error)]
#[error("crash journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Deaths of the host counted in earlier runs.
    deaths: u32,
    /// Handed on in this run and not yet done with.
    open: u32,
    /// When it was first counted (unix seconds).
    since: u64,
}

/// The journal of one queue on this machine, locked against other hosts on the same file.
#[derive(Debug)]
pub struct CrashJournal {
    path: PathBuf,
    file: File,
    entries: HashMap<u128, Entry>,
    lines: usize,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl CrashJournal {
    /// Opens (creating `dir` when needed) the journal of `queue`, counts the deaths its last run
    /// left, and compacts it. Another host on this machine holding the lock of the same queue's
    /// journal gets the next free file (`.2`, `.3`, ...).
    pub fn open(dir: &Path, queue: &str) -> Result<CrashJournal, JournalError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let safe: String = queue
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut last_error = None;
        for n in 1..=16 {
            let name = if n == 1 {
                format!("crash-journal-{safe}")
            } else {
                format!("crash-journal-{safe}.{n}")
            };
            let path = dir.join(name);
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .map_err(err(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    last_error = Some(JournalError { path, source: e });
                    continue;
                }
            }
            let entries = read_entries(&file).map_err(err(&path))?;
            let mut journal = CrashJournal {
                path,
                file,
                entries,
                lines: 0,
            };
            journal.compact()?;
            return Ok(journal);
        }
        Err(last_error.unwrap_or_else(|| JournalError {
            path: dir.to_path_buf(),
            source: std::io::Error::other("16 hosts already hold this queue's journals here"),
        }))
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the host died while this message was being handled.
    pub fn deaths(&self, fp: Fingerprint) -> u32 {
        self.entries.get(&fp.0).map_or(0, |e| e.deaths)
    }

    /// The messages with a death, and their counts (for the start-up log).
    pub fn suspects(&self) -> usize {
        self.entries.values().filter(|e| e.deaths > 0).count()
    }

    /// Notes that these messages are about to be handed on, and syncs the file: must return
    /// before they reach a connector.
    pub fn begin(&mut self, fps: &[Fingerprint]) -> Result<(), JournalError> {
        if fps.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        let mut text = String::with_capacity(fps.len() * 35);
        for fp in fps {
            text.push_str("+ ");
            text.push_str(&fp.hex());
            text.push('\n');
            let e = self.entries.entry(fp.0).or_insert(Entry {
                since: now,
                ..Entry::default()
            });
            e.open += 1;
        }
        self.append(&text)?;
        self.file.sync_data().map_err(|source| JournalError {
            path: self.path.clone(),
            source,
        })
    }

    /// Notes that these messages are done with (no sync: a lost line only leaves a stale count
    /// for a message that will not come back).
    pub fn end(&mut self, fps: &[Fingerprint]) -> Result<(), JournalError> {
        if fps.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(fps.len() * 35);
        for fp in fps {
            text.push_str("x ");
            text.push_str(&fp.hex());
            text.push('\n');
            self.entries.remove(&fp.0);
        }
        self.append(&text)?;
        if self.lines > COMPACT_AFTER_LINES {
            self.compact()?;
        }
        Ok(())
    }

    fn append(&mut self, text: &str) -> Result<(), JournalError> {
        self.lines += text.bytes().filter(|b| *b == b'\n').count();
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }

    /// Rewrites the file from memory: one `=` line per message with a count or in flight.
    fn compact(&mut self) -> Result<(), JournalError> {
        let now = now_secs();
        self.entries
            .retain(|_, e| e.open > 0 || now.saturating_sub(e.since) < KEEP_SECS);
        let mut text = String::new();
        for (fp, e) in &self.entries {
            // What is in flight now counts as a death if the host dies before it is done.
            let deaths = e.deaths + e.open;
            if deaths > 0 {
                text.push_str(&format!("= {:032x} {deaths} {}\n", fp, e.since));
            }
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|source| JournalError {
            path: self.path.clone(),
            source,
        })?;
        // Keep the lock on the new file: reopen it, lock it, then drop the old handle.
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })?;
        let _ = file.try_lock();
        self.file = file;
        self.lines = self.entries.len();
        Ok(())
    }
}

/// Replays the file: `=` sets a count, `+` opens, `x` forgets; what is open at the end died
/// with the host once.
fn read_entries(file: &File) -> std::io::Result<HashMap<u128, Entry>> {
    let mut entries: HashMap<u128, Entry> = HashMap::new();
    let now = now_secs();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let mut parts = line.split_ascii_whitespace();
        let (Some(op), Some(hex)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(fp) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        match op {
            "=" => {
                let deaths = parts.next().and_then(|d| d.parse().ok()).unwrap_or(0);
                let since = parts.next().and_then(|d| d.parse().ok()).unwrap_or(now);
                entries.insert(
                    fp,
                    Entry {
                        deaths,
                        open: 0,
                        since,
                    },
                );
            }
            "+" => {
                let e = entries.entry(fp).or_insert(Entry {
                    since: now,
                    ..Entry::default()
                });
                e.open += 1;
            }
            "x" => {
                entries.remove(&fp);
            }
            _ => {}
        }
    }
    for e in entries.values_mut() {
        e.deaths += e.open;
        e.open = 0;
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn counts_only_what_was_open_when_the_host_died() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Fingerprint(1), Fingerprint(2), Fingerprint(3));
        {
            let mut j = CrashJournal::open(dir.path(), "logs").unwrap();
            j.begin(&[a, b]).unwrap();
            j.end(&[b]).unwrap();
            j.begin(&[c]).unwrap();
            // Dies here: a and c are open.
        }
        let mut j = CrashJournal::open(dir.path(), "logs").unwrap();
        assert_eq!((j.deaths(a), j.deaths(b), j.deaths(c)), (1, 0, 1));
        assert_eq!(j.suspects(), 2);
        j.begin(&[a]).unwrap();
        drop(j);
        let mut j = CrashJournal::open(dir.path(), "logs").unwrap();
        assert_eq!(j.deaths(a), 2);
        j.begin(&[a]).unwrap();
        j.end(&[a]).unwrap();
        drop(j);
        let j = CrashJournal::open(dir.path(), "logs").unwrap();
        assert_eq!(j.deaths(a), 0, "done with: forgotten");
        assert_eq!(j.deaths(c), 1);
    }

    #[test]
    fn a_second_host_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = CrashJournal::open(dir.path(), "q/x").unwrap();
        let two = CrashJournal::open(dir.path(), "q/x").unwrap();
        assert_ne!(one.path(), two.path());
        assert!(one.path().ends_with("crash-journal-q_x"));
    }

    #[test]
    fn compaction_keeps_the_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = CrashJournal::open(dir.path(), "logs").unwrap();
        j.begin(&[Fingerprint(9)]).unwrap();
        j.compact().unwrap();
        drop(j);
        let j = CrashJournal::open(dir.path(), "logs").unwrap();
        assert_eq!(j.deaths(Fingerprint(9)), 1);
    }
}
