//! The real library, loaded by the host's loader.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use abi_stable::std_types::{RSlice, RStr};
use logrelay::host_api::{Registry, host_for};
use logrelay::loader::load_library;

use crate::common::{ids, read, records};

/// The directory holding a freshly built liblogrelay_files.so.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| logrelay_plugin_api::testing::build_libraries(&["logrelay-files"]))
}

#[test]
fn the_library_loads_writes_rotates_and_archives() {
    let lib = load_library(&plugin_dir().join("liblogrelay_files.so")).expect("loads");
    let m = lib.manifest();
    assert_eq!(m.type_name, "files");
    assert!(lib.example_config().contains("directory"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        serde_json::json!({ "directory": dir.path(), "file_name": "{project}.log" }).to_string();
    let registry = Arc::new(Registry::default());
    let instance = (lib.new)(
        RStr::from("files"),
        RStr::from(config.as_str()),
        host_for("files", registry),
    )
    .into_result()
    .expect("instance");
    let batch = records("so", 10);
    instance
        .handle_batch(RSlice::from_slice(&batch))
        .into_result()
        .expect("written");
    assert_eq!(
        ids(&read(&dir.path().join("p0.log"))),
        ["so-0", "so-2", "so-4", "so-6", "so-8"]
    );
    instance
        .request(RStr::from("rotate"), RStr::from(""))
        .into_result()
        .expect("rotate");
    instance
        .request(RStr::from("flush"), RStr::from(""))
        .into_result()
        .expect("flush");
    assert!(dir.path().join("p1.log.1.gz").exists());
    let e = lib_error(&instance);
    assert!(e.contains("unknown method"), "{e}");
    instance.shutdown().into_result().expect("shutdown");
}

fn lib_error(instance: &logrelay_plugin_api::abi::PluginBox) -> String {
    match instance
        .request(RStr::from("nope"), RStr::from(""))
        .into_result()
    {
        Ok(_) => panic!("an unknown method was answered"),
        Err(e) => e.message.to_string(),
    }
}
