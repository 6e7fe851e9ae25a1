//! Symbolic links in the log directory are never written through: the records bound for one are
//! refused with an error naming it, the file it points to is left as it was.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use logrelay_plugin_api::ErrorKind;

use crate::common::{ids, names, read, records, start};

const OUTSIDE_TEXT: &[u8] = b"a file outside the log directory\n";

/// A directory outside the log directory holding `elsewhere` with [`OUTSIDE_TEXT`].
fn outside() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("elsewhere");
    std::fs::write(&file, OUTSIDE_TEXT).expect("write");
    (dir, file)
}

fn link_message(link: &Path) -> String {
    format!(
        "refusing to write log file {}: it is a symbolic link (remove it or point `directory` elsewhere)",
        link.display()
    )
}

#[test]
fn records_bound_for_a_link_are_refused_and_the_rest_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_outside_dir, elsewhere) = outside();
    // The connector writes into the canonical directory, and names that path.
    let link = dir.path().canonicalize().expect("canonical").join("p0.log");
    symlink(&elsewhere, &link).expect("symlink");
    let h = start(dir.path(), "file_name = \"{project}.log\"");

    // Records 0, 2, 4 go to p0.log (the link), 1, 3, 5 to p1.log.
    let batch = records("a", 6);
    let e = h.handle_batch(&batch).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::PERMANENT, "{e}");
    assert_eq!(e.bad_records.as_slice(), &[0, 2, 4]);
    assert_eq!(e.message.as_str(), link_message(&link));
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);
    assert!(link.symlink_metadata().expect("lstat").is_symlink());
    assert_eq!(
        ids(&read(&dir.path().join("p1.log"))),
        ["a-1", "a-3", "a-5"]
    );

    // Every later batch is refused the same way while the link is there.
    let e = h.handle_batch(&batch[..1]).expect_err("refused");
    assert_eq!(e.bad_records.as_slice(), &[0]);
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);

    // Once it is removed, the refused records (replayed from the dead-letter queue) are
    // written to a real file.
    std::fs::remove_file(&link).expect("remove link");
    let refused: Vec<_> = [0, 2, 4].iter().map(|&i| batch[i].clone()).collect();
    h.handle_batch(&refused).expect("written");
    assert!(!link.symlink_metadata().expect("lstat").is_symlink());
    assert_eq!(ids(&read(&link)), ["a-0", "a-2", "a-4"]);
    assert_eq!(
        ids(&read(&dir.path().join("p1.log"))),
        ["a-1", "a-3", "a-5"]
    );
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);
}

#[test]
fn a_link_as_the_only_file_refuses_the_whole_batch_even_when_it_points_nowhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outside_dir, elsewhere) = outside();
    let link = dir
        .path()
        .canonicalize()
        .expect("canonical")
        .join("logrelay.log");
    symlink(&elsewhere, &link).expect("symlink");
    // Present at start: the connector starts, opens nothing through it.
    let h = start(dir.path(), "");
    let e = h.handle_batch(&records("b", 3)).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::PERMANENT, "{e}");
    assert_eq!(e.bad_records.as_slice(), &[0, 1, 2]);
    assert_eq!(e.message.as_str(), link_message(&link));
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);

    // A dangling link: following it would create the file it names.
    std::fs::remove_file(&link).expect("remove link");
    let missing = outside_dir.path().join("created-through-the-link");
    symlink(&missing, &link).expect("symlink");
    let e = h.handle_batch(&records("c", 2)).expect_err("refused");
    assert_eq!(e.bad_records.as_slice(), &[0, 1]);
    assert_eq!(e.message.as_str(), link_message(&link));
    assert!(!missing.exists(), "nothing created outside the directory");
    assert_eq!(names(outside_dir.path()), ["elsewhere"]);
    h.shutdown().expect("shutdown");
}

#[test]
fn a_link_made_while_running_is_refused_after_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_outside_dir, elsewhere) = outside();
    let h = start(dir.path(), "compression = \"none\"");
    h.handle_batch(&records("d", 2)).expect("written");
    h.request("rotate", "").expect("rotate");
    let link = dir
        .path()
        .canonicalize()
        .expect("canonical")
        .join("logrelay.log");
    symlink(&elsewhere, &link).expect("symlink");
    let e = h.handle_batch(&records("e", 2)).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::PERMANENT, "{e}");
    assert_eq!(e.message.as_str(), link_message(&link));
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);
    assert_eq!(
        ids(&read(&dir.path().join("logrelay.log.1"))),
        ["d-0", "d-1"]
    );
}

#[test]
fn a_rotated_name_that_is_a_link_is_not_archived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_outside_dir, elsewhere) = outside();
    let link = dir.path().join("logrelay.log.1");
    symlink(&elsewhere, &link).expect("symlink");
    let h = start(dir.path(), "");
    h.request("flush", "").expect("flush");
    assert_eq!(
        names(dir.path()),
        ["logrelay.log.1"],
        "no archive made of it"
    );
    assert!(link.symlink_metadata().expect("lstat").is_symlink());
    assert_eq!(std::fs::read(&elsewhere).expect("read"), OUTSIDE_TEXT);
    h.shutdown().expect("shutdown");
}
