//! Work done away from the write path: compressing rotated files, pushing archives, retention.
//!
//! One task takes jobs in order, so a flush (`request("flush")`) returns once everything queued
//! before it is done. Compression and deletion run on the blocking pool.

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use logrelay_plugin_api::Backoff;
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::config::{Compression, Retention, Settings, Upload};
use crate::naming::{FileKind, NamePattern};
use crate::writer::sync_dir;

/// What the archive task counts since the instance started (reported to the host's `/metrics`).
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    /// Rotated files compressed.
    pub archived: AtomicU64,
    /// Rotated files that could not be compressed (they stay as they are).
    pub archive_failed: AtomicU64,
    /// Archives uploaded.
    pub uploaded: AtomicU64,
    /// Upload attempts that failed (each retried, up to `archive_upload_attempts`).
    pub upload_attempts_failed: AtomicU64,
    /// Archives whose upload was given up or that could not be read (they stay on disk).
    pub upload_failed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Work for the background task.
#[derive(Debug)]
pub enum Job {
    /// Compress this rotated file, then push it and apply retention.
    Archive(PathBuf),
    /// A rotated file that stays as it is (`compression = "none"`): push it, apply retention.
    Finished(PathBuf),
    /// Apply retention now.
    Retention,
    /// Answer once every job queued before is done (uploads included).
    Flush(oneshot::Sender<()>),
}

/// One file as listed over HTTP and by `request("list")`.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// The file name in the directory.
    pub name: String,
    /// `current`, `rotated` or `archive`.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, RFC 3339 in UTC.
    pub modified: String,
    /// Last modification, milliseconds since the epoch.
    pub modified_unix_ms: i64,
}

/// The connector's files in `dir`, by name.
pub fn list(dir: &Path, pattern: &NamePattern) -> std::io::Result<Vec<FileInfo>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = pattern.classify(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified: chrono::DateTime<chrono::Utc> =
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).into();
        files.push(FileInfo {
            name,
            kind: kind.name(),
            size: meta.len(),
            modified: modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            modified_unix_ms: modified.timestamp_millis(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The background task: runs jobs in order until every sender is gone.
pub async fn run(
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    mut jobs: UnboundedReceiver<Job>,
    counters: Arc<ArchiveCounters>,
) {
    let uploads = settings.upload.clone().map(|upload| {
        let (tx, rx) = unbounded_channel::<UploadJob>();
        tokio::spawn(upload_task(upload, rx, counters.clone()));
        tx
    });
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Archive(path) => {
                let compression = settings.compression;
                let source = path.clone();
                let done =
                    tokio::task::spawn_blocking(move || compress(&source, compression)).await;
                match done {
                    Ok(Ok(archive)) => {
                        bump(&counters.archived);
                        tracing::info!(file = %path.display(), archive = %archive.display(), "Archived a rotated file.");
                        if let Some(tx) = &uploads {
                            let _ = tx.send(UploadJob::File(archive));
                        }
                    }
                    Ok(Err(e)) => {
                        bump(&counters.archive_failed);
                        tracing::error!(file = %path.display(), error = %e, "Cannot archive a rotated file; it stays as it is and is tried again at the next start.");
                    }
                    Err(e) => {
                        bump(&counters.archive_failed);
                        tracing::error!(error = %e, "The archive task failed.");
                    }
                }
                retention(&settings, &clock).await;
            }
            Job::Finished(path) => {
                if let Some(tx) = &uploads {
                    let _ = tx.send(UploadJob::File(path));
                }
                retention(&settings, &clock).await;
            }
            Job::Retention => retention(&settings, &clock).await,
            Job::Flush(done) => match &uploads {
                Some(tx) => {
                    let _ = tx.send(UploadJob::Flush(done));
                }
                None => {
                    let _ = done.send(());
                }
            },
        }
    }
}

async fn retention(settings: &Arc<Settings>, clock: &Arc<dyn Clock>) {
    let settings = settings.clone();
    let now: SystemTime = clock.now().into();
    let outcome = tokio::task::spawn_blocking(move || {
        apply_retention(
            &settings.directory,
            &settings.file_name,
            &settings.retention,
            now,
        )
    })
    .await;
    match outcome {
        Ok(Ok(removed)) if !removed.is_empty() => {
            tracing::info!(files = removed.len(), removed = ?removed, "Retention deleted old files.");
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Retention could not read the directory; will try again.")
        }
        Err(e) => tracing::error!(error = %e, "The retention task failed."),
    }
}

/// Compresses `path` into `<path>.gz` (or `.zst`) through a hidden temporary file that is
/// synced and renamed, keeps the original's modification time, then removes the original.
/// Neither the rotated file nor the temporary file is opened through a symbolic link: a link
/// could otherwise pull a file from outside the directory into an archive, or have the
/// temporary file overwrite one (`ELOOP` is returned instead).
pub fn compress(path: &Path, compression: Compression) -> std::io::Result<PathBuf> {
    let Some(suffix) = compression.suffix() else {
        return Ok(path.to_path_buf());
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = dir.join(format!("{name}{suffix}"));
    let temp = dir.join(format!(".{name}{suffix}.tmp"));
    let mut source = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let modified = source.metadata()?.modified()?;
    let temp_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)?;
    let out = BufWriter::with_capacity(256 * 1024, temp_file);
    let written = (|| {
        let file = match compression {
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                std::io::copy(&mut source, &mut enc)?;
                enc.finish()?.into_inner().map_err(|e| e.into_error())?
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                std::io::copy(&mut source, &mut enc)?;
                enc.finish()?.into_inner().map_err(|e| e.into_error())?
            }
            // Returned early above; nothing to encode.
            Compression::None => out.into_inner().map_err(|e| e.into_error())?,
        };
        file.set_modified(modified)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir);
    std::fs::remove_file(path)?;
    sync_dir(dir);
    Ok(target)
}

/// Deletes rotated files and archives by age, then by count, then by total size, oldest first;
/// current files are never deleted. Returns the names deleted.
pub fn apply_retention(
    dir: &Path,
    pattern: &NamePattern,
    retention: &Retention,
    now: SystemTime,
) -> std::io::Result<Vec<String>> {
    if retention.max_age.is_none()
        && retention.max_total_bytes.is_none()
        && retention.max_files.is_none()
    {
        return Ok(Vec::new());
    }
    let mut finished: Vec<(SystemTime, String, u64)> = Vec::new();
    let mut total: u64 = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = pattern.classify(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        total += meta.len();
        if kind != FileKind::Current {
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            finished.push((modified, name, meta.len()));
        }
    }
    finished.sort();
    let mut removed = Vec::new();
    let mut remove =
        |name: &str, size: u64, total: &mut u64| match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {
                *total = total.saturating_sub(size);
                removed.push(name.to_owned());
            }
            Err(e) => tracing::warn!(file = %name, error = %e, "Retention cannot delete a file."),
        };
    let mut keep = Vec::with_capacity(finished.len());
    for (modified, name, size) in finished {
        let too_old = retention
            .max_age
            .is_some_and(|max| now.duration_since(modified).unwrap_or(Duration::ZERO) > max);
        if too_old {
            remove(&name, size, &mut total);
        } else {
            keep.push((name, size));
        }
    }
    let mut keep = keep.into_iter().collect::<std::collections::VecDeque<_>>();
    if let Some(max) = retention.max_files {
        while keep.len() as u64 > max {
            if let Some((name, size)) = keep.pop_front() {
                remove(&name, size, &mut total);
            }
        }
    }
    if let Some(max) = retention.max_total_bytes {
        while total > max {
            let Some((name, size)) = keep.pop_front() else {
                break;
            };
            remove(&name, size, &mut total);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir);
    }
    Ok(removed)
}

enum UploadJob {
    File(PathBuf),
    Flush(oneshot::Sender<()>),
}

async fn upload_task(
    upload: Upload,
    mut jobs: UnboundedReceiver<UploadJob>,
    counters: Arc<ArchiveCounters>,
) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    while let Some(job) = jobs.recv().await {
        let path = match job {
            UploadJob::File(path) => path,
            UploadJob::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let url = upload.url.replace("{name}", &name);
        let body = match read_no_follow(&path).await {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                bump(&counters.upload_failed);
                tracing::warn!(file = %path.display(), error = %e, "Cannot read an archive to upload it; skipped.");
                continue;
            }
        };
        // Doubling from `archive_upload_backoff_ms` up to 30 s, with jitter so that uploads of
        // several instances that failed together do not retry together.
        let backoff = Backoff::new(upload.backoff, Duration::from_secs(30));
        for attempt in 1..=upload.attempts {
            match put(&client, &url, upload.token.as_deref(), body.clone()).await {
                Ok(()) => {
                    bump(&counters.uploaded);
                    tracing::info!(file = %name, url = %url, attempt, "Uploaded an archive.");
                    break;
                }
                Err(e) if attempt < upload.attempts => {
                    bump(&counters.upload_attempts_failed);
                    tracing::warn!(file = %name, url = %url, attempt, error = %e, "Archive upload failed; will retry.");
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
                Err(e) => {
                    bump(&counters.upload_attempts_failed);
                    bump(&counters.upload_failed);
                    tracing::error!(file = %name, url = %url, attempt, error = %e, "Archive upload failed; giving up (the file stays on disk).");
                }
            }
        }
    }
}

/// The whole file, refused (`ELOOP`) when it is a symbolic link: an archive swapped for a link
/// must not send a file from elsewhere to the upload endpoint.
async fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .await?;
    let mut body = Vec::new();
    file.read_to_end(&mut body).await?;
    Ok(body)
}

async fn put(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    token: Option<&str>,
    body: Bytes,
) -> Result<(), String> {
    let mut request = hyper::Request::put(url)
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(hyper::header::CONTENT_LENGTH, body.len());
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .map_err(|_| "timed out after 60 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the server answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_and_zstd_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        for compression in [Compression::Gzip, Compression::Zstd] {
            let path = dir.path().join("x.log.1");
            let data = b"line one\nline two\n".repeat(1000);
            std::fs::write(&path, &data).expect("write");
            let archive = compress(&path, compression).expect("compress");
            assert!(!path.exists());
            let bytes = std::fs::read(&archive).expect("read");
            let back = match compression {
                Compression::Gzip => {
                    let mut out = Vec::new();
                    std::io::copy(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                        .expect("gunzip");
                    out
                }
                _ => zstd::decode_all(&bytes[..]).expect("unzstd"),
            };
            assert_eq!(back, data);
        }
    }

    #[test]
    fn a_symbolic_link_is_neither_archived_nor_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"not a log\n").expect("write");
        let rotated = dir.path().join("x.log.1");
        std::os::unix::fs::symlink(&secret, &rotated).expect("symlink");
        let e = compress(&rotated, Compression::Gzip).expect_err("refused");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert!(!dir.path().join("x.log.1.gz").exists());
        assert!(rotated.symlink_metadata().is_ok(), "the link is left alone");

        // A link at the temporary file's name is not followed either.
        let real = dir.path().join("y.log.1");
        std::fs::write(&real, b"line\n").expect("write");
        std::os::unix::fs::symlink(&secret, dir.path().join(".y.log.1.gz.tmp")).expect("symlink");
        let e = compress(&real, Compression::Gzip).expect_err("refused");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert_eq!(std::fs::read(&secret).expect("read"), b"not a log\n");
        assert!(real.exists(), "the rotated file stays for the next try");
    }
}
