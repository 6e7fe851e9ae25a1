//! Loading connector libraries through abi_stable, with errors a user can act on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RResult, RStr, RString};
use logrelay_plugin_api::abi::{
    HandleBatchFlagged, HostBox, Manifest, PluginBox, PluginError, PluginModuleRef, v1_0,
};

/// What a library says about itself, as ordinary Rust types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The connector type (`console`).
    pub type_name: String,
    /// The plugin's version.
    pub version: String,
    /// One line saying what it does.
    pub description: String,
    /// Capabilities beyond a sink.
    pub capabilities: Vec<String>,
}

/// A loaded plugin library. Libraries are never unloaded (abi_stable leaks them on purpose).
#[derive(Clone, Copy)]
pub struct Library {
    manifest: extern "C" fn() -> Manifest,
    example_config: extern "C" fn() -> RString,
    /// Builds an instance from its name, its config (as JSON text) and the host handle.
    pub new: NewInstance,
    /// `handle_batch` with record flags; `None` for a library built against 1.0.0.
    pub handle_batch_flagged: Option<HandleBatchFlagged>,
}

/// The type of the root module's `new`.
pub type NewInstance = extern "C" fn(
    instance_id: RStr<'_>,
    config_json: RStr<'_>,
    host: HostBox,
) -> RResult<PluginBox, PluginError>;

impl Library {
    /// The manifest, converted.
    pub fn manifest(&self) -> ManifestInfo {
        let m = (self.manifest)();
        ManifestInfo {
            type_name: m.type_name.into_string(),
            version: m.version.into_string(),
            description: m.description.into_string(),
            capabilities: m
                .capabilities
                .into_iter()
                .map(|c| c.into_string())
                .collect(),
        }
    }

    /// The example config the library ships.
    pub fn example_config(&self) -> String {
        (self.example_config)().into_string()
    }
}

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file at the path.
    #[error(
        "{}: no such file; build it (cargo build --release -p logrelay-{type_hint}), set LOGRELAY_PLUGIN_DIR to the directory holding it, or give `path` in plugins.toml",
        .path.display()
    )]
    NotFound {
        /// The path looked at.
        path: PathBuf,
        /// The connector type, for the hint.
        type_hint: String,
    },
    /// The library was built against an incompatible plugin interface.
    #[error(
        "{}: built against an incompatible plugin interface; rebuild it against logrelay-plugin-api {}:\n    {}",
        .path.display(), logrelay_plugin_api::VERSION, .summary.join("\n    ")
    )]
    Incompatible {
        /// The library.
        path: PathBuf,
        /// The lines of abi_stable's report that say what differs.
        summary: Vec<String>,
    },
    /// The file is not a logrelay plugin, or could not be opened.
    #[error("{}: {reason}", .path.display())]
    Other {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Loads each library once, however many instances use it.
#[derive(Default)]
pub struct Loader {
    loaded: HashMap<PathBuf, Library>,
}

impl Loader {
    /// Loads (or returns the already loaded) library at `path`.
    pub fn load(&mut self, path: &Path, type_hint: &str) -> Result<Library, LoadError> {
        let key = path.canonicalize().map_err(|_| LoadError::NotFound {
            path: path.to_path_buf(),
            type_hint: type_hint.to_owned(),
        })?;
        if let Some(lib) = self.loaded.get(&key) {
            return Ok(*lib);
        }
        let lib = load_library(&key)?;
        self.loaded.insert(key, lib);
        Ok(lib)
    }
}

/// Loads one library; `RootModule::load_from_file` is not used because it caches the first
/// module per interface type and would hand it back for every later path.
pub fn load_library(path: &Path) -> Result<Library, LoadError> {
    let header = lib_header_from_path(path).map_err(|e| classify(path, e))?;
    match header.init_root_module::<PluginModuleRef>() {
        Ok(module) => Ok(Library {
            manifest: module.manifest(),
            example_config: module.example_config(),
            new: module.new(),
            handle_batch_flagged: module.handle_batch_flagged(),
        }),
        // A library built against 1.0.0 has fewer root-module fields, which abi_stable refuses
        // (see `logrelay_plugin_api::abi::v1_0`); it passes as 1.0.0's module. If it fails
        // that too, the report against the current module is the one to show.
        Err(current) => match header.init_root_module::<v1_0::PluginModuleRef>() {
            Ok(module) => Ok(Library {
                manifest: module.manifest(),
                example_config: module.example_config(),
                new: module.new(),
                handle_batch_flagged: None,
            }),
            Err(_) => Err(classify(path, current)),
        },
    }
}

fn classify(path: &Path, error: LibraryError) -> LoadError {
    let full = error.to_string();
    tracing::debug!(plugin = %path.display(), report = %full, "Full report of the library load failure.");
    match error {
        LibraryError::AbiInstability(_) | LibraryError::IncompatibleVersionNumber { .. } => {
            LoadError::Incompatible {
                path: path.to_path_buf(),
                summary: summarize(&full),
            }
        }
        LibraryError::GetSymbolError { .. } => LoadError::Other {
            path: path.to_path_buf(),
            reason: "not a logrelay plugin (it exports no abi_stable root module; did you call export_plugin!?)".into(),
        },
        _ => LoadError::Other {
            path: path.to_path_buf(),
            reason: first_lines(&full, 3),
        },
    }
}

/// abi_stable's layout report runs to about a thousand lines; keep the ones that say what is wrong.
fn summarize(report: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in report.lines().map(str::trim) {
        let keep = line.starts_with("Error:")
            || line.contains("expected version")
            || line.contains("Incompatible version");
        if keep && !lines.iter().any(|l| l == line) {
            lines.push(line.to_owned());
        }
        if lines.len() == 8 {
            lines.push("(set LOGRELAY_LOG=debug for the full report)".into());
            break;
        }
    }
    if lines.is_empty() {
        lines.push(first_lines(report, 3));
    }
    lines
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `liblogrelay_*.so` in `dir`, sorted.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("liblogrelay_") && name.ends_with(".so") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_error_lines_once() {
        let report = "Compared <this>:\n  Error: field count differs\n  lots of layout\n  Error: field count differs\n  Error: type mismatch\n";
        assert_eq!(
            summarize(report),
            vec!["Error: field count differs", "Error: type mismatch"]
        );
    }

    #[test]
    fn missing_file_says_how_to_fix_it() {
        let err = Loader::default()
            .load(Path::new("/nonexistent/liblogrelay_x.so"), "x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no such file"), "{err}");
        assert!(err.contains("LOGRELAY_PLUGIN_DIR"), "{err}");
    }
}
