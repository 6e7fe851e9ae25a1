//! Settings of the `console` connector, and their checked form.

use std::path::PathBuf;

use logrelay_plugin_api::format::{Layout, LayoutSpec};
use serde::Deserialize;

use crate::error::ConsoleError;

/// Settings of the `console` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where lines go: `stdout`, `stderr`, `file` (appended to `path`) or `discard`.
    /// Default: `stdout`.
    #[serde(default = "default_output")]
    pub output: OutputKind,
    /// With `output = "file"`: the file to append to, created if missing (its directory must
    /// exist). Default: none; refused with any other output.
    #[serde(default = "default_path")]
    pub path: Option<PathBuf>,
    /// Colours and styles: `auto` (only when the output is a terminal, `NO_COLOR` is unset or
    /// empty and `TERM` is not `dumb`), `always` or `never`. Default: `auto`.
    #[serde(default = "default_color")]
    pub color: ColorChoice,
    /// Which fields are shown, in which order, and how they look; see the README.
    /// Default: every default of the layout.
    #[serde(default = "default_layout")]
    pub layout: LayoutSpec,
}

fn default_output() -> OutputKind {
    OutputKind::Stdout
}

fn default_path() -> Option<PathBuf> {
    None
}

fn default_color() -> ColorChoice {
    ColorChoice::Auto
}

fn default_layout() -> LayoutSpec {
    LayoutSpec::default()
}

/// Where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// The host's standard output.
    Stdout,
    /// The host's standard error.
    Stderr,
    /// A file, appended to (`path`).
    File,
    /// Nowhere: formats and drops (for benchmarks and tests).
    Discard,
}

/// When to write colours and styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorChoice {
    /// When the output is a terminal and neither `NO_COLOR` nor `TERM=dumb` says otherwise.
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

/// Where the checked config sends its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to.
    File(PathBuf),
    /// Nowhere.
    Discard,
}

/// The checked config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where lines go.
    pub target: Target,
    /// When to colour.
    pub color: ColorChoice,
    /// The layout, checked.
    pub layout: Layout,
}

impl Config {
    /// Checks every value, naming the option of the first bad one.
    pub fn validate(self) -> Result<Settings, ConsoleError> {
        let target = match (self.output, self.path) {
            (OutputKind::File, Some(path)) => Target::File(path),
            (OutputKind::File, None) => return Err(ConsoleError::MissingPath),
            (kind, Some(path)) => return Err(ConsoleError::PathWithoutFile { kind, path }),
            (OutputKind::Stdout, None) => Target::Stdout,
            (OutputKind::Stderr, None) => Target::Stderr,
            (OutputKind::Discard, None) => Target::Discard,
        };
        let layout = Layout::new(&self.layout).map_err(|e| e.within("layout"))?;
        Ok(Settings {
            target,
            color: self.color,
            layout,
        })
    }
}

/// Whether to write colours: the choice, the value of `NO_COLOR` and `TERM` (as read from the
/// environment, `None` when unset), and whether the output is a terminal.
///
/// Under `auto`, a `NO_COLOR` that is set and not empty turns colours off (no-color.org), as does
/// `TERM=dumb` or an output that is not a terminal.
pub fn use_color(
    choice: ColorChoice,
    no_color: Option<&str>,
    term: Option<&str>,
    is_terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && no_color.is_none_or(str::is_empty) && term != Some("dumb")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_decision() {
        use ColorChoice::{Always, Auto, Never};
        assert!(use_color(Always, Some("1"), Some("dumb"), false));
        assert!(!use_color(Never, None, None, true));
        assert!(use_color(Auto, None, Some("xterm-256color"), true));
        assert!(
            use_color(Auto, Some(""), None, true),
            "an empty NO_COLOR is ignored"
        );
        assert!(!use_color(Auto, Some("1"), None, true));
        assert!(
            !use_color(Auto, Some("0"), None, true),
            "any non-empty value counts"
        );
        assert!(!use_color(Auto, None, None, false), "not a terminal");
        assert!(!use_color(Auto, None, Some("dumb"), true));
    }

    fn config(json: &str) -> Config {
        logrelay_plugin_api::parse_config(json).expect("parses")
    }

    #[test]
    fn output_and_path_go_together() {
        let s = config(r#"{"output": "file", "path": "/tmp/x.log"}"#)
            .validate()
            .expect("valid");
        assert_eq!(s.target, Target::File("/tmp/x.log".into()));
        let e = config(r#"{"output": "file"}"#)
            .validate()
            .expect_err("no path");
        assert!(e.to_string().contains("`path`"), "{e}");
        let e = config(r#"{"path": "/tmp/x.log"}"#)
            .validate()
            .expect_err("stray path");
        assert!(e.to_string().contains("stdout"), "{e}");
        assert_eq!(
            config("{}").validate().expect("valid").target,
            Target::Stdout
        );
    }

    #[test]
    fn layout_errors_carry_the_full_path() {
        let e = config(r#"{"layout": {"styles": {"message": {"fg": "purple"}}}}"#)
            .validate()
            .expect_err("bad colour");
        let text = e.to_string();
        assert!(text.contains("`layout.styles.message.fg`"), "{text}");
        assert!(text.contains("`purple`"), "{text}");
    }
}
