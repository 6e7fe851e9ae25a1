//! Styles: from their written form to [`anstyle::Style`] and on to escape codes.

use anstyle::{Ansi256Color, AnsiColor, Color, Effects, RgbColor, Style};

use super::FormatError;
use super::spec::{ColorSpec, StyleSpec, StyleTable};

/// The colour names, in the order of [`COLORS`].
const COLOR_NAMES: [&str; 16] = [
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "bright_black",
    "bright_red",
    "bright_green",
    "bright_yellow",
    "bright_blue",
    "bright_magenta",
    "bright_cyan",
    "bright_white",
];

const COLORS: [AnsiColor; 16] = [
    AnsiColor::Black,
    AnsiColor::Red,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::Blue,
    AnsiColor::Magenta,
    AnsiColor::Cyan,
    AnsiColor::White,
    AnsiColor::BrightBlack,
    AnsiColor::BrightRed,
    AnsiColor::BrightGreen,
    AnsiColor::BrightYellow,
    AnsiColor::BrightBlue,
    AnsiColor::BrightMagenta,
    AnsiColor::BrightCyan,
    AnsiColor::BrightWhite,
];

const EFFECT_NAMES: [(&str, Effects); 5] = [
    ("bold", Effects::BOLD),
    ("italic", Effects::ITALIC),
    ("underline", Effects::UNDERLINE),
    ("strikethrough", Effects::STRIKETHROUGH),
    ("dim", Effects::DIMMED),
];

const COLOR_HELP: &str = "expected a colour name (black, red, green, yellow, blue, magenta, \
     cyan, white, or one of them with bright_ in front), a 256-colour index 0-255 or RGB hex \
     \"#rrggbb\"";

/// Parses one colour: a name, a palette index `0`-`255`, or `#rrggbb`.
pub fn parse_color(text: &str) -> Result<Color, String> {
    let text = text.trim();
    if let Some(i) = COLOR_NAMES.iter().position(|n| *n == text) {
        return Ok(Color::Ansi(COLORS[i]));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u8>()
            .map(|i| Color::Ansi256(Ansi256Color(i)))
            .map_err(|_| format!("a 256-colour index must be 0-255; {COLOR_HELP}"));
    }
    if let Some(hex) = text.strip_prefix('#') {
        let channel = |i: usize| {
            hex.get(i..i + 2)
                .filter(|c| c.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|c| u8::from_str_radix(c, 16).ok())
        };
        return match (hex.len(), channel(0), channel(2), channel(4)) {
            (6, Some(r), Some(g), Some(b)) => Ok(Color::Rgb(RgbColor(r, g, b))),
            _ => Err(format!(
                "RGB colours are written as # and six hex digits; {COLOR_HELP}"
            )),
        };
    }
    Err(format!("unknown colour; {COLOR_HELP}"))
}

/// Parses a style in either form. `option` names it in errors (`styles.message`).
pub fn parse_style(spec: &StyleSpec, option: &str) -> Result<Style, FormatError> {
    match spec {
        StyleSpec::Short(words) => parse_words(words, option),
        StyleSpec::Table(table) => parse_table(table, option),
    }
}

fn parse_table(table: &StyleTable, option: &str) -> Result<Style, FormatError> {
    let color = |spec: &Option<ColorSpec>, key: &str| {
        spec.as_ref()
            .map(|c| {
                parse_color(&c.0).map_err(|reason| {
                    FormatError::new(format!("{option}.{key}"), c.0.clone(), reason)
                })
            })
            .transpose()
    };
    let mut effects = Effects::new();
    for (on, effect) in [
        (table.bold, Effects::BOLD),
        (table.italic, Effects::ITALIC),
        (table.underline, Effects::UNDERLINE),
        (table.strikethrough, Effects::STRIKETHROUGH),
        (table.dim, Effects::DIMMED),
    ] {
        if on {
            effects |= effect;
        }
    }
    Ok(Style::new()
        .fg_color(color(&table.fg, "fg")?)
        .bg_color(color(&table.bg, "bg")?)
        .effects(effects))
}

fn parse_words(words: &str, option: &str) -> Result<Style, FormatError> {
    let error = |reason: String| FormatError::new(option.to_owned(), words.to_owned(), reason);
    let mut style = Style::new();
    let mut tokens = words.split_whitespace();
    while let Some(token) = tokens.next() {
        if let Some((_, effect)) = EFFECT_NAMES.iter().find(|(name, _)| *name == token) {
            style |= *effect;
        } else if token == "on" {
            let Some(bg) = tokens.next() else {
                return Err(error(
                    "`on` must be followed by a background colour".to_owned(),
                ));
            };
            if style.get_bg_color().is_some() {
                return Err(error("more than one background colour".to_owned()));
            }
            let bg = parse_color(bg).map_err(|r| error(format!("`{bg}`: {r}")))?;
            style = style.bg_color(Some(bg));
        } else {
            if style.get_fg_color().is_some() {
                return Err(error(format!(
                    "more than one foreground colour (at `{token}`); write `on <colour>` for the \
                     background"
                )));
            }
            let fg = parse_color(token).map_err(|r| {
                error(format!(
                    "`{token}` is neither an effect (bold, italic, underline, strikethrough, \
                     dim) nor a colour: {r}"
                ))
            })?;
            style = style.fg_color(Some(fg));
        }
    }
    Ok(style)
}

/// `top` drawn over `base`: the top's colours win where it has them, effects add up.
pub fn overlay(base: Style, top: Style) -> Style {
    Style::new()
        .fg_color(top.get_fg_color().or(base.get_fg_color()))
        .bg_color(top.get_bg_color().or(base.get_bg_color()))
        .effects(base.get_effects() | top.get_effects())
}

/// The escape codes that open and close one style, rendered once when the layout is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Codes {
    /// Written before the styled text (empty for no style).
    pub open: Box<str>,
    /// Written after it (empty for no style).
    pub close: Box<str>,
}

impl Codes {
    /// Renders `style` with anstyle.
    pub fn of(style: Style) -> Codes {
        Codes {
            open: style.render().to_string().into_boxed_str(),
            close: style.render_reset().to_string().into_boxed_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(words: &str) -> (String, String) {
        let style = parse_words(words, "styles.message").expect("valid style");
        let c = Codes::of(style);
        (c.open.into(), c.close.into())
    }

    fn open(words: &str) -> String {
        codes(words).0
    }

    #[test]
    fn each_effect_has_its_escape_code() {
        assert_eq!(codes("bold"), ("\x1b[1m".to_owned(), "\x1b[0m".to_owned()));
        assert_eq!(open("dim"), "\x1b[2m");
        assert_eq!(open("italic"), "\x1b[3m");
        assert_eq!(open("underline"), "\x1b[4m");
        assert_eq!(open("strikethrough"), "\x1b[9m");
        assert_eq!(
            open("strikethrough underline italic dim bold"),
            "\x1b[1m\x1b[2m\x1b[3m\x1b[4m\x1b[9m"
        );
    }

    #[test]
    fn named_colours_foreground_and_background() {
        let names = COLOR_NAMES.iter().enumerate();
        for (i, name) in names {
            let (fg, bg) = if i < 8 {
                (30 + i, 40 + i)
            } else {
                (82 + i, 92 + i)
            };
            assert_eq!(open(name), format!("\x1b[{fg}m"), "{name}");
            assert_eq!(open(&format!("on {name}")), format!("\x1b[{bg}m"), "{name}");
        }
        assert_eq!(open("red on bright_white"), "\x1b[31m\x1b[107m");
    }

    #[test]
    fn palette_and_rgb_colours() {
        assert_eq!(open("208"), "\x1b[38;5;208m");
        assert_eq!(open("on 0"), "\x1b[48;5;0m");
        assert_eq!(open("#ff8800"), "\x1b[38;2;255;136;0m");
        assert_eq!(open("on #0A0b0C"), "\x1b[48;2;10;11;12m");
        assert_eq!(
            open("bold #010203 on 17"),
            "\x1b[1m\x1b[38;2;1;2;3m\x1b[48;5;17m"
        );
    }

    #[test]
    fn no_style_writes_nothing() {
        assert_eq!(codes(""), (String::new(), String::new()));
    }

    #[test]
    fn the_table_form_matches_the_words() {
        let table = StyleTable {
            fg: Some(ColorSpec("208".to_owned())),
            bg: Some(ColorSpec("blue".to_owned())),
            bold: true,
            italic: true,
            underline: true,
            strikethrough: true,
            dim: true,
        };
        assert_eq!(
            parse_table(&table, "styles.level").expect("valid"),
            parse_words("bold italic underline strikethrough dim 208 on blue", "x").expect("valid")
        );
    }

    #[test]
    fn bad_colours_name_the_option_and_value() {
        let e = parse_words("bold purple", "styles.message").expect_err("bad");
        let text = e.to_string();
        assert!(text.contains("styles.message"), "{text}");
        assert!(
            text.contains("bold purple") && text.contains("`purple`"),
            "{text}"
        );
        assert!(text.contains("bright_"), "{text}");

        let table = StyleTable {
            bg: Some(ColorSpec("#ff88".to_owned())),
            ..StyleTable::default()
        };
        let e = parse_table(&table, "level_styles.error").expect_err("bad");
        assert_eq!(e.option(), "level_styles.error.bg");
        assert_eq!(e.value(), "#ff88");
        assert!(e.to_string().contains("six hex digits"), "{e}");

        assert!(parse_color("256").expect_err("bad").contains("0-255"));
        assert!(parse_color("#gg0000").is_err());
        assert!(parse_color("#ff00001").is_err());
        assert!(parse_color("Red").is_err());
        assert!(parse_words("on", "x").is_err());
        assert!(parse_words("red blue", "x").is_err());
        assert!(parse_words("on red on blue", "x").is_err());
    }

    #[test]
    fn overlay_keeps_base_colours_the_top_lacks() {
        let base = parse_words("bold red on blue", "x").expect("valid");
        let top = parse_words("italic green", "x").expect("valid");
        assert_eq!(
            overlay(base, top),
            parse_words("bold italic green on blue", "x").expect("valid")
        );
    }
}
