//! The field formatting engine shared by the console and files connectors (feature `format`).
//!
//! A connector puts a [`LayoutSpec`] in its config (as a `layout` table), checks it once with
//! [`Layout::new`], and then formats each batch into one reused buffer with
//! [`Layout::write_batch`]. The [`Renderer`] decides only whether escape codes are written:
//! [`Ansi`] for a terminal, [`Plain`] for files and pipes. Both go through the same code, so the
//! plain text is the ANSI text with its escape codes taken out, byte for byte.
//!
//! ```toml
//! [layout]
//! fields = ["timestamp", "level", "module", "message", "attr.user", "attributes"]
//! hidden = ["module"]
//! separator = " | "
//! timestamp_format = "%H:%M:%S%.3f"
//! timezone = "local"
//! attributes_format = "key_value"
//!
//! [layout.styles]
//! timestamp = "dim"
//! "attr.user" = { fg = "#ff8800", underline = true }
//! separator = "bright_black"
//!
//! [layout.level_styles]
//! error = "bold red"
//! warning = { fg = 208 }
//!
//! [layout.line_styles]
//! critical = "bold on red"
//! ```
//!
//! See [`LayoutSpec`] for every option and its default, and [`StyleSpec`] for how styles and
//! colours are written.

mod json;
mod layout;
mod spec;
mod style;
mod timestamp;

pub use layout::{KeyedFormat, Layout};
pub use spec::{
    AttributesFormat, ColorSpec, LayoutSpec, LevelCase, StyleSpec, StyleTable, Timezone,
};
pub use style::parse_color;

/// Decides whether the formatter writes escape codes.
///
/// Implemented by [`Ansi`] and [`Plain`]; the choice is made at compile time, so the plain path
/// carries no cost for styles.
pub trait Renderer {
    /// Whether escape codes are written.
    const STYLED: bool;
}

/// Writes ANSI escape codes (SGR) for every style.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ansi;

impl Renderer for Ansi {
    const STYLED: bool = true;
}

/// Writes text only: no escape code at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Renderer for Plain {
    const STYLED: bool = false;
}

/// A layout option has a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{option}` value `{value}`: {reason}")]
pub struct FormatError {
    option: String,
    value: String,
    reason: String,
}

impl FormatError {
    pub(crate) fn new(option: String, value: String, reason: String) -> FormatError {
        FormatError {
            option,
            value,
            reason,
        }
    }

    /// The option, as a path inside the layout table (`styles.message.fg`).
    pub fn option(&self) -> &str {
        &self.option
    }

    /// The value refused, as written.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Puts the layout table's own path in front of the option (`layout` makes
    /// `layout.styles.message.fg`), for a connector that nests the layout in its config.
    pub fn within(mut self, table: &str) -> FormatError {
        self.option = format!("{table}.{}", self.option);
        self
    }
}
