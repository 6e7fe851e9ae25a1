//! A full disk: transient, nothing lost, nothing duplicated, no file corrupted.

use std::path::{Path, PathBuf};
use std::process::Command;

use logrelay_plugin_api::ErrorKind;

use crate::common::{ids, read, records, start};

/// A 256 KiB tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (the disk-full test needs root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn disk_full_is_transient_and_the_retry_writes_each_record_once() {
    let fs = Tmpfs::mount();
    let filler: PathBuf = fs.path().join("filler.bin");
    std::fs::write(&filler, vec![0u8; 128 * 1024]).expect("filler");
    let h = start(fs.path(), "compression = \"none\"");
    let mut accepted = Vec::new();
    let mut failed = None;
    for b in 0..1000 {
        let batch = records(&format!("b{b}"), 50);
        match h.handle_batch(&batch) {
            Ok(()) => accepted.extend(batch.iter().map(|r| r.id.to_string())),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::TRANSIENT, "{e}");
                assert!(e.message.contains("logrelay.log"), "{e}");
                failed = Some(batch);
                break;
            }
        }
    }
    let failed = failed.expect("the tmpfs never filled up");
    // Nothing half-written: every line is whole and every accepted record is there once.
    let path = fs.path().join("logrelay.log");
    assert_eq!(ids(&read(&path)), accepted);
    // Retrying while still full fails the same way and changes nothing.
    assert_eq!(
        h.handle_batch(&failed).expect_err("still full").kind,
        ErrorKind::TRANSIENT
    );
    assert_eq!(ids(&read(&path)), accepted);
    // Space comes back: the retry succeeds, each record once.
    std::fs::remove_file(&filler).expect("free space");
    h.handle_batch(&failed).expect("retry after space is back");
    accepted.extend(failed.iter().map(|r| r.id.to_string()));
    assert_eq!(ids(&read(&path)), accepted);
    h.shutdown().expect("shutdown");
}
