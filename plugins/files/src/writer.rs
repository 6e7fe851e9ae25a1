//! The current files: one write per file per batch, rotation by size and time, durability, and
//! undoing a failed batch.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use logrelay_plugin_api::Record;
use logrelay_plugin_api::format::{KeyedFormat, Plain};
use tokio::sync::mpsc::UnboundedSender;

use crate::archive::Job;
use crate::clock::Clock;
use crate::config::{Durability, OutputFormat, RotateInterval, Settings};
use crate::error::FilesError;
use crate::naming::{FileKind, LocalTime, NamePattern, NameValues, Period, local_time};

/// A batch buffer that grew past this is shrunk back after the batch.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// One open current file.
struct OpenFile {
    file: File,
    path: PathBuf,
    size: u64,
    period: Period,
    /// Written since the last fsync.
    dirty: bool,
}

/// The current files and what writes them.
pub struct Writer {
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    instance: String,
    open: HashMap<String, OpenFile>,
    buffer: String,
    jobs: UnboundedSender<Job>,
    last_sync: Instant,
}

/// One file's share of a batch.
struct Group {
    name: String,
    /// Indices into the batch; empty when the whole batch goes to this one file.
    records: Vec<u32>,
}

/// What a batch could not write because the file is a symbolic link.
#[derive(Default)]
struct Refused {
    paths: Vec<PathBuf>,
    records: Vec<u32>,
}

impl Writer {
    /// Takes over the directory: removes temporary files a crash left, queues rotated files
    /// that were not archived yet, and reopens the current files (rotating those whose period
    /// is over).
    pub fn open(
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        instance: &str,
        jobs: UnboundedSender<Job>,
    ) -> Result<Writer, FilesError> {
        let mut writer = Writer {
            settings,
            clock,
            instance: instance.to_owned(),
            open: HashMap::new(),
            buffer: String::with_capacity(256 * 1024),
            jobs,
            last_sync: Instant::now(),
        };
        let dir = writer.settings.directory.clone();
        let entries = std::fs::read_dir(&dir).map_err(|source| FilesError::Io {
            action: "read",
            path: dir.clone(),
            source,
        })?;
        let mut current = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(hidden) = name.strip_prefix('.')
                && let Some(base) = hidden.strip_suffix(".tmp")
                && writer.settings.file_name.classify(base) == Some(FileKind::Archive)
            {
                // A link is removed itself, never what it points to.
                tracing::info!(file = %name, "Removing a half-written archive left by a crash.");
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let kind = writer.settings.file_name.classify(&name);
            if kind.is_some() && entry.file_type().is_ok_and(|t| t.is_symlink()) {
                tracing::warn!(file = %entry.path().display(), "A log file name in the directory is a symbolic link; it is never followed, and records bound for it are refused until it is removed.");
                continue;
            }
            match kind {
                Some(FileKind::Current) => current.push(name),
                Some(FileKind::Rotated) if writer.settings.compression.suffix().is_some() => {
                    let _ = writer.jobs.send(Job::Archive(entry.path()));
                }
                _ => {}
            }
        }
        let now = writer.now();
        for name in current {
            match writer.open_file(&name, now.period) {
                // Made a link since the listing: its records are refused when they come.
                Ok(()) | Err(FilesError::SymbolicLink { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        writer.rotate_expired(now.period)?;
        Ok(writer)
    }

    fn now(&self) -> LocalTime {
        local_time(
            self.clock.now(),
            self.settings.timezone,
            self.settings.rotate_interval,
        )
    }

    /// Writes a batch: one write per file, then an fsync per file under `durability = "batch"`.
    /// On any failure every file written is cut back to where it was, so a retry writes each
    /// record once. Records bound for a file that is a symbolic link are not written: once the
    /// rest is written (and synced), they are refused with [`FilesError::SymbolicLink`].
    pub fn write_batch(&mut self, batch: &[Record]) -> Result<u64, FilesError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        self.rotate_expired(now.period)?;
        let groups = self.group(batch, &now);
        let mut written: Vec<(String, u64)> = Vec::with_capacity(groups.len());
        let mut bytes = 0;
        let mut refused = Refused::default();
        let result =
            self.write_groups(batch, &groups, &now, &mut written, &mut bytes, &mut refused);
        if let Err(e) = result {
            self.undo(&written);
            return Err(e);
        }
        if self.settings.durability == Durability::Batch
            && let Err(e) = self.sync_written(&written)
        {
            self.undo(&written);
            return Err(e);
        }
        if self.buffer.capacity() > KEEP_BUFFER_BYTES {
            self.buffer = String::with_capacity(256 * 1024);
        }
        if !refused.paths.is_empty() {
            refused.records.sort_unstable();
            return Err(FilesError::SymbolicLink {
                paths: refused.paths,
                records: refused.records,
            });
        }
        Ok(bytes)
    }

    /// fsyncs the files of a batch, at once when there are several: the file system can commit
    /// concurrent fsyncs together, where one after the other each waits for its own commit.
    /// On one local disk the gain is within noise end to end (BENCHMARKS.md has the figures); it
    /// is for file systems whose commits are slow.
    fn sync_written(&mut self, written: &[(String, u64)]) -> Result<(), FilesError> {
        let files: Vec<&OpenFile> = written
            .iter()
            .filter_map(|(name, _)| self.open.get(name))
            .collect();
        let sync = |f: &OpenFile| {
            f.file.sync_data().map_err(|source| FilesError::Io {
                action: "sync",
                path: f.path.clone(),
                source,
            })
        };
        let result = match files.as_slice() {
            [] => Ok(()),
            [one] => sync(one),
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many.iter().map(|&f| scope.spawn(move || sync(f))).collect();
                let mut first = Ok(());
                for (handle, f) in handles.into_iter().zip(many) {
                    let outcome = handle.join().unwrap_or_else(|_| {
                        Err(FilesError::Io {
                            action: "sync",
                            path: f.path.clone(),
                            source: std::io::Error::other("the fsync thread panicked"),
                        })
                    });
                    if first.is_ok() {
                        first = outcome;
                    }
                }
                first
            }),
        };
        result?;
        for (name, _) in written {
            if let Some(f) = self.open.get_mut(name) {
                f.dirty = false;
            }
        }
        Ok(())
    }

    fn write_groups(
        &mut self,
        batch: &[Record],
        groups: &[Group],
        now: &LocalTime,
        written: &mut Vec<(String, u64)>,
        bytes: &mut u64,
        refused: &mut Refused,
    ) -> Result<(), FilesError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = (|| {
            for group in groups {
                if !self.open.contains_key(&group.name)
                    && !self.open_or_refuse(group, batch.len(), now.period, refused)?
                {
                    continue;
                }
                buffer.clear();
                let records = || group.records.iter().map(|&i| &batch[i as usize]);
                let layout = &self.settings.layout;
                match self.settings.format {
                    OutputFormat::Json if groups.len() == 1 => {
                        layout.write_keyed(KeyedFormat::Json, batch, &mut buffer);
                    }
                    OutputFormat::Json => {
                        layout.write_keyed(KeyedFormat::Json, records(), &mut buffer)
                    }
                    OutputFormat::Logfmt if groups.len() == 1 => {
                        layout.write_keyed(KeyedFormat::Logfmt, batch, &mut buffer);
                    }
                    OutputFormat::Logfmt => {
                        layout.write_keyed(KeyedFormat::Logfmt, records(), &mut buffer);
                    }
                    OutputFormat::Text if groups.len() == 1 => {
                        layout.write_batch::<Plain>(batch, &mut buffer)
                    }
                    OutputFormat::Text => layout.write_records::<Plain>(records(), &mut buffer),
                }
                let len = buffer.len() as u64;
                let needs_rotation = self
                    .open
                    .get(&group.name)
                    .is_some_and(|f| f.size > 0 && f.size + len > self.settings.max_file_bytes);
                if needs_rotation {
                    self.rotate(&group.name)?;
                    if !self.open_or_refuse(group, batch.len(), now.period, refused)? {
                        continue;
                    }
                }
                let Some(f) = self.open.get_mut(&group.name) else {
                    continue;
                };
                written.push((group.name.clone(), f.size));
                f.dirty = true;
                f.file
                    .write_all(buffer.as_bytes())
                    .map_err(|source| FilesError::Io {
                        action: "write to",
                        path: f.path.clone(),
                        source,
                    })?;
                f.size += len;
                *bytes += len;
            }
            Ok(())
        })();
        self.buffer = buffer;
        result
    }

    /// Opens the current file of `group`. A symbolic link there is no failure of the batch:
    /// the group's records are added to `refused` and false is returned.
    fn open_or_refuse(
        &mut self,
        group: &Group,
        batch_len: usize,
        now: Period,
        refused: &mut Refused,
    ) -> Result<bool, FilesError> {
        match self.open_file(&group.name, now) {
            Ok(()) => Ok(true),
            Err(FilesError::SymbolicLink { paths, .. }) => {
                refused.paths.extend(paths);
                if group.records.is_empty() {
                    refused
                        .records
                        .extend(0..u32::try_from(batch_len).unwrap_or(u32::MAX));
                } else {
                    refused.records.extend_from_slice(&group.records);
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Cuts every file written by a failed batch back to its length before the batch.
    fn undo(&mut self, written: &[(String, u64)]) {
        for (name, size) in written {
            if let Some(f) = self.open.get_mut(name) {
                match f.file.set_len(*size) {
                    Ok(()) => f.size = *size,
                    Err(e) => {
                        tracing::error!(file = %f.path.display(), error = %e, "Cannot undo a failed write; the retry may duplicate lines.");
                    }
                }
            }
        }
    }

    /// Splits the batch by file name (a single group when the name does not depend on the
    /// record).
    fn group(&self, batch: &[Record], now: &LocalTime) -> Vec<Group> {
        let pattern = &self.settings.file_name;
        let render = |project: &str, module: &str| {
            pattern.render(&NameValues {
                project,
                module,
                date: &now.date,
                hour: &now.hour,
                instance: &self.instance,
            })
        };
        if !pattern.by_record() {
            return vec![Group {
                name: render("", ""),
                records: Vec::new(),
            }];
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut keys: Vec<((&str, &str), usize)> = Vec::new();
        let mut last: Option<((&str, &str), usize)> = None;
        for (i, record) in batch.iter().enumerate() {
            let key = (record.project.as_str(), record.module.as_str());
            let slot = match last {
                Some((k, g)) if k == key => g,
                _ => match keys.iter().find(|(k, _)| *k == key) {
                    Some(&(_, g)) => g,
                    None => {
                        let name = render(key.0, key.1);
                        // Two keys may make the same safe name: they share the file.
                        let g = match groups.iter().position(|g| g.name == name) {
                            Some(g) => g,
                            None => {
                                groups.push(Group {
                                    name,
                                    records: Vec::new(),
                                });
                                groups.len() - 1
                            }
                        };
                        keys.push((key, g));
                        g
                    }
                },
            };
            last = Some((key, slot));
            groups[slot].records.push(i as u32);
        }
        groups
    }

    /// Opens (or creates) the current file `name` for appending, never through a symbolic link
    /// ([`FilesError::SymbolicLink`] with no records). A last line left without its newline by
    /// a crash is ended first, so that it is not glued to the next record.
    fn open_file(&mut self, name: &str, now: Period) -> Result<(), FilesError> {
        let path = self.settings.directory.join(name);
        let io = |action, source| FilesError::Io {
            action,
            path: path.clone(),
            source,
        };
        let existed = path.symlink_metadata().is_ok();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                if is_symbolic_link(&e) {
                    FilesError::SymbolicLink {
                        paths: vec![path.clone()],
                        records: Vec::new(),
                    }
                } else {
                    io("open", e)
                }
            })?;
        let meta = file.metadata().map_err(|e| io("open", e))?;
        let mut size = meta.len();
        if size > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, size - 1)
                .map_err(|e| io("read", e))?;
            if last[0] != b'\n' {
                tracing::warn!(file = %path.display(), "The last line was cut short (a crash?); ending it before writing more.");
                if let Err(e) = file.write_all(b"\n").and_then(|()| file.sync_data()) {
                    let _ = file.set_len(size);
                    return Err(io("write to", e));
                }
                size += 1;
            }
        }
        if !existed && self.settings.durability == Durability::Batch {
            sync_dir(&self.settings.directory);
        }
        let period = if existed && self.settings.rotate_interval != RotateInterval::Never {
            meta.modified()
                .ok()
                .map(|m| {
                    local_time(
                        chrono::DateTime::<chrono::Utc>::from(m),
                        self.settings.timezone,
                        self.settings.rotate_interval,
                    )
                    .period
                })
                .unwrap_or(now)
        } else {
            now
        };
        self.open.insert(
            name.to_owned(),
            OpenFile {
                file,
                path,
                size,
                period,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Rotates the files whose period is over.
    fn rotate_expired(&mut self, now: Period) -> Result<(), FilesError> {
        if self.settings.rotate_interval == RotateInterval::Never {
            return Ok(());
        }
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.period != now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.rotate(&name)?;
        }
        Ok(())
    }

    /// Closes the current file `name`, renames it to `<name>.<n>` and queues it for archiving.
    /// An empty file is only closed.
    pub fn rotate(&mut self, name: &str) -> Result<(), FilesError> {
        let Some(f) = self.open.remove(name) else {
            return Ok(());
        };
        if f.size == 0 {
            return Ok(());
        }
        if f.dirty && self.settings.durability != Durability::Never {
            let _ = f.file.sync_data();
        }
        drop(f.file);
        let dir = &self.settings.directory;
        let seq = next_sequence(dir, name);
        let target = dir.join(format!("{name}.{seq}"));
        if let Err(source) = std::fs::rename(&f.path, &target) {
            return Err(FilesError::Io {
                action: "rotate",
                path: f.path,
                source,
            });
        }
        sync_dir(dir);
        tracing::info!(file = %name, rotated = %target.display(), bytes = f.size, "Rotated the current file.");
        if self.settings.compression.suffix().is_some() {
            let _ = self.jobs.send(Job::Archive(target));
        } else {
            let _ = self.jobs.send(Job::Finished(target));
        }
        Ok(())
    }

    /// Rotates every open file now.
    pub fn rotate_all(&mut self) -> Result<(), FilesError> {
        let names: Vec<String> = self.open.keys().cloned().collect();
        for name in names {
            self.rotate(&name)?;
        }
        Ok(())
    }

    /// Periodic work: rotation when a period ends (even without records), and the fsync of
    /// `durability = "interval"`.
    pub fn tick(&mut self) -> Result<(), FilesError> {
        let now = self.now();
        self.rotate_expired(now.period)?;
        if let Durability::Interval(every) = self.settings.durability
            && self.last_sync.elapsed() >= every
        {
            self.sync_all();
        }
        Ok(())
    }

    /// Forces every written file to disk.
    pub fn sync_all(&mut self) {
        self.last_sync = Instant::now();
        for f in self.open.values_mut().filter(|f| f.dirty) {
            match f.file.sync_data() {
                Ok(()) => f.dirty = false,
                Err(e) => {
                    tracing::warn!(file = %f.path.display(), error = %e, "Periodic fsync failed; will try again.");
                }
            }
        }
    }

    /// Syncs and closes every file (shutdown).
    pub fn close(&mut self) -> Result<(), FilesError> {
        for (_, f) in self.open.drain() {
            if f.dirty {
                f.file.sync_data().map_err(|source| FilesError::Io {
                    action: "sync",
                    path: f.path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// The names of the open files.
    pub fn open_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.open.keys().cloned().collect();
        names.sort();
        names
    }
}

/// One more than the highest sequence number used by a rotated file or archive of `name`.
fn next_sequence(dir: &Path, name: &str) -> u64 {
    let mut max = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let other = entry.file_name();
            if let Some(seq) = NamePattern::sequence_of(name, &other.to_string_lossy()) {
                max = max.max(seq);
            }
        }
    }
    max + 1
}

/// Whether an open with `O_NOFOLLOW` failed because the file is a symbolic link (`ELOOP`; the
/// directory itself is canonical, so no other component of the path is a link).
pub fn is_symbolic_link(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Makes a new, renamed or removed directory entry durable (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
