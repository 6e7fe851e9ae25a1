//! Settings of the `files` connector, and their checked form.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use logrelay_plugin_api::format::{Layout, LayoutSpec};
use serde::Deserialize;

use crate::error::FilesError;
use crate::naming::NamePattern;

/// Settings of the `files` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The directory the files are written to. It must exist and be writable. Required.
    pub directory: PathBuf,
    /// The name of the current file, with `{project}`, `{module}`, `{date}`, `{hour}` and
    /// `{instance}` placeholders (see the README). Default: `"logrelay.log"`.
    #[serde(default = "default_file_name")]
    pub file_name: String,
    /// How each record is written: `json` (JSON lines), `logfmt` or `text` (the layout's text
    /// line). Default: `json`.
    #[serde(default = "default_format")]
    pub format: OutputFormat,
    /// Which fields are written, in which order, and how (the console connector's layout table;
    /// styles are ignored). Default: the layout's defaults, with `id` after `message`.
    #[serde(default = "default_layout")]
    pub layout: LayoutSpec,
    /// Rotate the current file before it would grow past this size. Default: 64 MiB.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Rotate when the hour or day changes: `hourly`, `daily` or `never`. Default: `daily`.
    #[serde(default = "default_rotate_interval")]
    pub rotate_interval: RotateInterval,
    /// The IANA time zone of rotation times and of `{date}` and `{hour}` (`Europe/Paris`).
    /// Default: `"UTC"`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// When written data is forced to disk: `batch` (before each batch is accepted), `interval`
    /// (every `fsync_interval_ms`) or `never` (left to the kernel). Default: `batch`.
    #[serde(default = "default_durability")]
    pub durability: DurabilityKind,
    /// With `durability = "interval"`: how often. Default: 1000.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// How rotated files are archived: `gzip`, `zstd` or `none` (kept as they are).
    /// Default: `gzip`.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Delete rotated files and archives last modified longer ago than this. Default: none.
    #[serde(default = "default_none_u64")]
    pub retention_max_age_hours: Option<u64>,
    /// Delete the oldest rotated files and archives while all the connector's files together
    /// are larger than this. Default: none.
    #[serde(default = "default_none_u64")]
    pub retention_max_total_bytes: Option<u64>,
    /// Keep at most this many rotated files and archives, deleting the oldest. Default: none.
    #[serde(default = "default_none_u64")]
    pub retention_max_files: Option<u64>,
    /// How often retention runs besides after each archive. Default: 60.
    #[serde(default = "default_retention_check_interval_secs")]
    pub retention_check_interval_secs: u64,
    /// Serve the file list and downloads on this address (`127.0.0.1:8081`). Default: no server.
    #[serde(default = "default_none_string")]
    pub http_listen_address: Option<String>,
    /// The token HTTP clients send as `Authorization: Bearer <token>`; write
    /// `"${LOGRELAY_API_TOKEN}"` to take it from the environment. Default: none, and then the
    /// server refuses to start unless `http_allow_unauthenticated` is set.
    #[serde(default = "default_none_string")]
    pub http_token: Option<String>,
    /// Serve without a token (anyone who reaches the address can read the logs).
    /// Default: `false`.
    #[serde(default = "default_false")]
    pub http_allow_unauthenticated: bool,
    /// PUT each finished archive to this `http://` URL: `{name}` in it is replaced by the file
    /// name, else the name is appended after a `/`. Default: no upload.
    #[serde(default = "default_none_string")]
    pub archive_upload_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` with each upload. Default: none.
    #[serde(default = "default_none_string")]
    pub archive_upload_token: Option<String>,
    /// Tries per upload before giving up on that file (it stays on disk). Default: 5.
    #[serde(default = "default_archive_upload_attempts")]
    pub archive_upload_attempts: u32,
    /// The wait after the first failed upload, doubled after each (at most 30 s). Default: 500.
    #[serde(default = "default_archive_upload_backoff_ms")]
    pub archive_upload_backoff_ms: u64,
}

fn default_file_name() -> String {
    "logrelay.log".to_owned()
}
const fn default_format() -> OutputFormat {
    OutputFormat::Json
}
fn default_layout() -> LayoutSpec {
    LayoutSpec {
        fields: [
            "timestamp",
            "level",
            "project",
            "module",
            "message",
            "id",
            "attributes",
        ]
        .map(String::from)
        .to_vec(),
        ..LayoutSpec::default()
    }
}
const fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}
const fn default_rotate_interval() -> RotateInterval {
    RotateInterval::Daily
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
const fn default_durability() -> DurabilityKind {
    DurabilityKind::Batch
}
const fn default_fsync_interval_ms() -> u64 {
    1000
}
const fn default_compression() -> Compression {
    Compression::Gzip
}
const fn default_none_u64() -> Option<u64> {
    None
}
const fn default_retention_check_interval_secs() -> u64 {
    60
}
const fn default_none_string() -> Option<String> {
    None
}
const fn default_false() -> bool {
    false
}
const fn default_archive_upload_attempts() -> u32 {
    5
}
const fn default_archive_upload_backoff_ms() -> u64 {
    500
}

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// One JSON object per line.
    Json,
    /// logfmt `key=value` pairs.
    Logfmt,
    /// The layout's text line, without escape codes.
    Text,
}

/// When the current file is switched because time passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotateInterval {
    /// At the start of every hour.
    Hourly,
    /// At midnight.
    Daily,
    /// Only by size.
    Never,
}

/// When data is forced to disk, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityKind {
    /// Before each batch is accepted.
    Batch,
    /// Every `fsync_interval_ms`.
    Interval,
    /// Never: the kernel writes back when it likes.
    Never,
}

/// How rotated files are archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
    /// Not compressed: the rotated file stays as it is.
    None,
}

impl Compression {
    /// The suffix of archives, if any.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some(".gz"),
            Compression::Zstd => Some(".zst"),
            Compression::None => None,
        }
    }
}

/// When data is forced to disk, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before each batch is accepted.
    Batch,
    /// Every this long.
    Interval(Duration),
    /// Never.
    Never,
}

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rotated files and archives older than this go.
    pub max_age: Option<Duration>,
    /// All files together stay under this.
    pub max_total_bytes: Option<u64>,
    /// At most this many rotated files and archives.
    pub max_files: Option<u64>,
    /// How often retention runs on its own.
    pub check_every: Duration,
}

/// Where and how archives are pushed.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The URL, with `{name}` where the file name goes.
    pub url: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Tries per file.
    pub attempts: u32,
    /// The first wait between tries.
    pub backoff: Duration,
}

/// The HTTP server's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The token clients must send; `None` only when unauthenticated access was asked for.
    pub token: Option<String>,
}

/// The checked config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory, made absolute.
    pub directory: PathBuf,
    /// The file name pattern.
    pub file_name: NamePattern,
    /// The output format.
    pub format: OutputFormat,
    /// The layout, checked.
    pub layout: Layout,
    /// Rotate before a file grows past this.
    pub max_file_bytes: u64,
    /// Rotation by time.
    pub rotate_interval: RotateInterval,
    /// The zone of rotation and of names.
    pub timezone: Tz,
    /// When data goes to disk.
    pub durability: Durability,
    /// How rotated files are archived.
    pub compression: Compression,
    /// What is deleted.
    pub retention: Retention,
    /// The HTTP server, if any.
    pub http: Option<HttpSettings>,
    /// Archive upload, if any.
    pub upload: Option<Upload>,
}

impl Config {
    /// Checks every value, naming the option of the first bad one. Makes sure the directory
    /// exists (creating it with its parents) and takes new files.
    pub fn validate(self) -> Result<Settings, FilesError> {
        self.settings(true)
    }

    /// [`Config::validate`] without side effects, for `logrelay check`: a missing directory is
    /// not created; it, or the nearest existing parent it would be created in, must be a
    /// directory this process may write to.
    pub fn check(self) -> Result<(), FilesError> {
        self.settings(false).map(|_| ())
    }

    fn settings(self, prepare_directory: bool) -> Result<Settings, FilesError> {
        let invalid = |option: &str, reason: String| FilesError::Invalid {
            option: option.to_owned(),
            reason,
        };
        let file_name =
            NamePattern::parse(&self.file_name).map_err(|reason| invalid("file_name", reason))?;
        let layout = Layout::new(&self.layout).map_err(|e| e.within("layout"))?;
        if self.max_file_bytes == 0 {
            return Err(invalid("max_file_bytes", "must be at least 1".to_owned()));
        }
        let timezone: Tz = self.timezone.parse().map_err(|_| {
            invalid(
                "timezone",
                format!(
                    "`{}` is not an IANA time zone name such as `UTC` or `Europe/Paris`",
                    self.timezone
                ),
            )
        })?;
        let durability = match self.durability {
            DurabilityKind::Batch => Durability::Batch,
            DurabilityKind::Never => Durability::Never,
            DurabilityKind::Interval if self.fsync_interval_ms == 0 => {
                return Err(invalid(
                    "fsync_interval_ms",
                    "must be at least 1".to_owned(),
                ));
            }
            DurabilityKind::Interval => {
                Durability::Interval(Duration::from_millis(self.fsync_interval_ms))
            }
        };
        for (option, value) in [
            ("retention_max_age_hours", self.retention_max_age_hours),
            ("retention_max_total_bytes", self.retention_max_total_bytes),
            ("retention_max_files", self.retention_max_files),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    option,
                    "must be at least 1 (leave it out for no limit)".to_owned(),
                ));
            }
        }
        if self.retention_check_interval_secs == 0 {
            return Err(invalid(
                "retention_check_interval_secs",
                "must be at least 1".to_owned(),
            ));
        }
        let retention = Retention {
            max_age: self
                .retention_max_age_hours
                .map(|h| Duration::from_secs(h.saturating_mul(3600))),
            max_total_bytes: self.retention_max_total_bytes,
            max_files: self.retention_max_files,
            check_every: Duration::from_secs(self.retention_check_interval_secs),
        };
        let http = match self.http_listen_address {
            None => None,
            Some(address) => {
                let listen: SocketAddr = address.parse().map_err(|_| {
                    invalid(
                        "http_listen_address",
                        format!("`{address}` is not an address such as `127.0.0.1:8081`"),
                    )
                })?;
                let token = match self.http_token {
                    Some(t) if t.trim().is_empty() => {
                        return Err(invalid(
                            "http_token",
                            "is empty (is its environment variable set?)".to_owned(),
                        ));
                    }
                    Some(t) => Some(t),
                    None if self.http_allow_unauthenticated => None,
                    None => {
                        return Err(invalid(
                            "http_token",
                            "is required with `http_listen_address`; set `http_allow_unauthenticated = true` to serve the logs to anyone".to_owned(),
                        ));
                    }
                };
                Some(HttpSettings { listen, token })
            }
        };
        let upload = match self.archive_upload_url {
            None => None,
            Some(url) => {
                if !url.starts_with("http://") {
                    return Err(invalid(
                        "archive_upload_url",
                        format!(
                            "`{url}` is not an http:// URL (https is not supported; put a proxy in front)"
                        ),
                    ));
                }
                let url = if url.contains("{name}") {
                    url
                } else if url.ends_with('/') {
                    format!("{url}{{name}}")
                } else {
                    format!("{url}/{{name}}")
                };
                url.replace("{name}", "x.log.1.gz")
                    .parse::<hyper::Uri>()
                    .map_err(|e| invalid("archive_upload_url", format!("not a valid URL: {e}")))?;
                if self.archive_upload_attempts == 0 {
                    return Err(invalid(
                        "archive_upload_attempts",
                        "must be at least 1".to_owned(),
                    ));
                }
                Some(Upload {
                    url,
                    token: self.archive_upload_token,
                    attempts: self.archive_upload_attempts,
                    backoff: Duration::from_millis(self.archive_upload_backoff_ms),
                })
            }
        };
        let directory = if prepare_directory {
            check_directory(&self.directory)?
        } else {
            look_at_directory(&self.directory)?
        };
        Ok(Settings {
            directory,
            file_name,
            format: self.format,
            layout,
            max_file_bytes: self.max_file_bytes,
            rotate_interval: self.rotate_interval,
            timezone,
            durability,
            compression: self.compression,
            retention,
            http,
            upload,
        })
    }
}

/// What can be told of the directory without touching it: it (or, when it is missing, the
/// nearest existing parent it would be created in) is a directory that this process may write
/// to (`access(2)`, which answers for the real user, as the run will be).
fn look_at_directory(dir: &std::path::Path) -> Result<PathBuf, FilesError> {
    let problem = |reason: String| FilesError::Directory {
        path: dir.to_path_buf(),
        reason,
    };
    let absolute =
        std::path::absolute(dir).map_err(|e| problem(format!("cannot be reached: {e}")))?;
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| problem("has no existing parent".to_owned()))?;
    if !existing.is_dir() {
        return Err(problem(if existing == absolute {
            "is not a directory".to_owned()
        } else {
            format!(
                "cannot be created: {} is not a directory",
                existing.display()
            )
        }));
    }
    if let Err(e) = rustix::fs::access(
        existing,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    ) {
        let e = std::io::Error::from(e);
        return Err(problem(if existing == absolute {
            format!("is not writable: {e} (give the connector's user the right to)")
        } else {
            format!(
                "does not exist and cannot be created in {}: {e} (create it, or give the connector's user the right to)",
                existing.display()
            )
        }));
    }
    Ok(absolute)
}

/// The directory made absolute, once it is known to exist (created with its parents when it is
/// missing, as a file sink is expected to) and to take new files.
fn check_directory(dir: &std::path::Path) -> Result<PathBuf, FilesError> {
    let problem = |reason: String| FilesError::Directory {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            problem(format!(
                "does not exist and cannot be created: {e} (create it, or give the connector's user the right to)"
            ))
        })?;
    }
    let canonical = dir
        .canonicalize()
        .map_err(|e| problem(format!("cannot be reached: {e}")))?;
    if !canonical.is_dir() {
        return Err(problem("is not a directory".to_owned()));
    }
    let probe = canonical.join(format!(".logrelay-write-probe-{}.tmp", std::process::id()));
    // Not through a link: a link at the probe's name must not truncate a file elsewhere.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe);
    match created {
        Ok(_) => {}
        Err(e) if crate::writer::is_symbolic_link(&e) => {
            return Err(problem(format!(
                "holds a symbolic link at {}, where the write check creates a file; remove it",
                probe.display()
            )));
        }
        Err(e) => return Err(problem(format!("is not writable: {e}"))),
    }
    let _ = std::fs::remove_file(&probe);
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        logrelay_plugin_api::parse_config(json).expect("parses")
    }

    #[test]
    fn refusals_name_the_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        for (extra, option) in [
            (r#""file_name": "../x""#, "file_name"),
            (r#""timezone": "Mars/Olympus""#, "timezone"),
            (r#""max_file_bytes": 0"#, "max_file_bytes"),
            (r#""http_listen_address": "127.0.0.1:0""#, "http_token"),
            (
                r#""http_listen_address": "127.0.0.1:0", "http_token": " ""#,
                "http_token",
            ),
            (r#""http_listen_address": "nowhere""#, "http_listen_address"),
            (
                r#""archive_upload_url": "https://x/""#,
                "archive_upload_url",
            ),
            (r#""retention_max_files": 0"#, "retention_max_files"),
            (r#""layout": {"fields": ["nope"]}"#, "layout.fields"),
        ] {
            let e = config(&format!(r#"{{"directory": "{d}", {extra}}}"#))
                .validate()
                .expect_err(extra);
            assert!(
                e.to_string().contains(&format!("`{option}`")),
                "{extra}: {e}"
            );
        }
        let s = config(&format!(
            r#"{{"directory": "{d}", "http_listen_address": "127.0.0.1:0", "http_allow_unauthenticated": true, "archive_upload_url": "http://h:1/up"}}"#
        ))
        .validate()
        .expect("valid");
        assert!(s.http.expect("http").token.is_none());
        assert_eq!(s.upload.expect("upload").url, "http://h:1/up/{name}");
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_named() {
        // Beneath a regular file nothing can be created, not even by root (CI runs as root).
        let parent = tempfile::NamedTempFile::new().expect("temp file");
        let wanted = parent.path().join("logs");
        let e = config(&format!(r#"{{"directory": "{}"}}"#, wanted.display()))
            .validate()
            .expect_err("cannot be created");
        assert!(e.to_string().contains(&wanted.display().to_string()), "{e}");
        assert!(e.to_string().contains("cannot be created"), "{e}");
    }
}
