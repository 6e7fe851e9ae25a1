//! Characters of log text that must never reach a terminal raw, and how they are shown instead.
//!
//! One set, shared by the console and files connectors (through [`format`](crate::format), when
//! `escape_control_characters` is on) and the host's `logrelay sql`:
//!
//! | class | characters | as text ([`push_escaped`]) | in JSON ([`push_json_escaped`]) |
//! | --- | --- | --- | --- |
//! | C0 controls, tab excepted | U+0000..U+001F | `\n`, `\r`, else `\x1b` | a space (JSON strings cannot hold them raw) |
//! | DEL | U+007F | `\x7f` | `\u007f` |
//! | C1 controls | U+0080..U+009F | `\u{9b}` | `\u009b` |
//! | bidirectional formatting | U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069 | `\u{202e}` | `\u202e` |
//!
//! C0 and C1 controls start escape sequences (ESC, CSI, OSC, BEL ends an OSC): raw, a record
//! could clear the screen, retitle the terminal or hide a line. Bidirectional overrides and
//! isolates reorder the text shown after them, so a line can read otherwise than it is. Tabs are
//! kept: they move the cursor, nothing more.
//!
//! ```
//! use logrelay_plugin_api::escape::escape;
//!
//! assert_eq!(escape("\x1b]0;pwned\x07 ok"), r"\x1b]0;pwned\x07 ok");
//! assert_eq!(escape("abc\u{202e}fed"), r"abc\u{202e}fed");
//! assert_eq!(escape("tab\tand é"), "tab\tand é");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is a bidirectional formatting character: the Arabic letter mark (U+061C), the
/// left-to-right and right-to-left marks (U+200E, U+200F), the embeddings and overrides
/// (U+202A..U+202E) and the isolates (U+2066..U+2069).
pub const fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is never written raw: a C0 control but tab, DEL, a C1 control or a bidirectional
/// formatting character.
pub const fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\x08' | '\n'..='\x1f' | '\x7f'..='\u{9f}') || is_bidi_control(c)
}

/// Whether `text` may hold a character that [`needs_escape`]: false means certainly none. A
/// byte test, fast on the common text that holds none (it may say true for text that holds
/// none, e.g. `°` or `—`; the escaping functions then look closer).
pub fn may_need_escape(text: &str) -> bool {
    // No early exit: this form compiles to a vector loop, faster on short texts too. 0xc2 leads
    // C1 controls, 0xd8 U+061C, 0xe2 the other bidirectional characters.
    text.bytes().fold(false, |found, b| {
        found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f) | (b == 0xc2) | (b == 0xd8) | (b == 0xe2)
    })
}

/// Appends `text` with every character that [`needs_escape`] written visibly: `\n`, `\r`,
/// `\x1b` for the other C0 controls and DEL, `\u{9b}` for C1 controls, `\u{202e}` for
/// bidirectional formatting characters. Everything else (tabs too) is copied as it is.
pub fn push_escaped(out: &mut String, text: &str) {
    if !may_need_escape(text) {
        out.push_str(text);
        return;
    }
    let mut clean = 0;
    for (i, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        out.push_str(&text[clean..i]);
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
        clean = i + c.len_utf8();
    }
    out.push_str(&text[clean..]);
}

/// `text` with every character that [`needs_escape`] written visibly, as [`push_escaped`] does;
/// borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// Appends JSON text with every character that [`needs_escape`] made harmless, the JSON kept
/// valid and its meaning unchanged: C0 controls can only be whitespace between tokens in JSON
/// and become spaces (tabs are kept); DEL, C1 controls and bidirectional formatting characters,
/// which JSON strings may hold raw, become `\u` escapes (`\u202e`).
pub fn push_json_escaped(out: &mut String, json: &str) {
    if !may_need_escape(json) {
        out.push_str(json);
        return;
    }
    let mut clean = 0;
    for (i, c) in json.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        out.push_str(&json[clean..i]);
        if c < ' ' {
            out.push(' ');
        } else {
            push_json_char_escape(out, c);
        }
        clean = i + c.len_utf8();
    }
    out.push_str(&json[clean..]);
}

/// Appends the JSON escape (`\u` and four hex digits) of `c`, a character of the Basic Multilingual Plane (every
/// character that [`needs_escape`] is).
pub fn push_json_char_escape(out: &mut String, c: char) {
    let _ = write!(out, "\\u{:04x}", u32::from(c));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One character of every class that is escaped, and how it is shown as text.
    const CLASSES: &[(char, &str)] = &[
        ('\0', r"\x00"),
        ('\x07', r"\x07"),
        ('\x08', r"\x08"),
        ('\n', r"\n"),
        ('\x0b', r"\x0b"),
        ('\r', r"\r"),
        ('\x1b', r"\x1b"),
        ('\x1f', r"\x1f"),
        ('\x7f', r"\x7f"),
        ('\u{80}', r"\u{80}"),
        ('\u{85}', r"\u{85}"),
        ('\u{9b}', r"\u{9b}"),
        ('\u{9d}', r"\u{9d}"),
        ('\u{9f}', r"\u{9f}"),
        ('\u{61c}', r"\u{61c}"),
        ('\u{200e}', r"\u{200e}"),
        ('\u{200f}', r"\u{200f}"),
        ('\u{202a}', r"\u{202a}"),
        ('\u{202b}', r"\u{202b}"),
        ('\u{202c}', r"\u{202c}"),
        ('\u{202d}', r"\u{202d}"),
        ('\u{202e}', r"\u{202e}"),
        ('\u{2066}', r"\u{2066}"),
        ('\u{2067}', r"\u{2067}"),
        ('\u{2068}', r"\u{2068}"),
        ('\u{2069}', r"\u{2069}"),
    ];

    /// Neighbours of the escaped ranges and common characters sharing their lead bytes.
    const KEPT: &[char] = &[
        '\t', ' ', '~', '\u{a0}', '°', 'é', '\u{61b}', '\u{61d}', 'ب', '\u{200d}', '\u{2010}', '—',
        '…', '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', '€', '→', '中', '🙂',
    ];

    #[test]
    fn every_class_is_shown_escaped_as_text() {
        for &(c, shown) in CLASSES {
            assert!(needs_escape(c), "{c:?}");
            let text = format!("a{c}b");
            assert!(may_need_escape(&text), "{c:?}");
            assert_eq!(escape(&text), format!("a{shown}b"), "{c:?}");
            let mut out = String::from(">");
            push_escaped(&mut out, &text);
            assert_eq!(out, format!(">a{shown}b"), "{c:?}");
        }
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped_and_nothing_else() {
        for code in 0..=0x2100u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let expected =
                (code < 0x20 && c != '\t') || (0x7f..=0x9f).contains(&code) || is_bidi_control(c);
            assert_eq!(needs_escape(c), expected, "U+{code:04X}");
            let text = c.to_string();
            let escaped = escape(&text);
            assert_eq!(matches!(escaped, Cow::Owned(_)), expected, "U+{code:04X}");
            if expected {
                assert!(escaped.is_ascii(), "U+{code:04X}: {escaped}");
                assert!(may_need_escape(&text), "U+{code:04X}");
            }
        }
    }

    #[test]
    fn other_characters_are_kept_as_they_are() {
        let text: String = KEPT.iter().collect();
        assert!(matches!(escape(&text), Cow::Borrowed(_)));
        let mut out = String::new();
        push_escaped(&mut out, &text);
        assert_eq!(out, text);
        let mut out = String::new();
        push_json_escaped(&mut out, &text);
        assert_eq!(out, text);
        assert!(!may_need_escape("plain ascii\twith a tab"));
    }

    #[test]
    fn terminal_sequences_lose_their_escape_characters() {
        let osc = "\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{9d}8;;http://x\u{9c}done";
        assert_eq!(
            escape(osc),
            r"\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{9d}8;;http://x\u{9c}done"
        );
        let trojan = "access = \"user\u{202e} \u{2066}// admin\u{2069} \u{2066}\"";
        assert_eq!(
            escape(trojan),
            r#"access = "user\u{202e} \u{2066}// admin\u{2069} \u{2066}""#
        );
    }

    #[test]
    fn json_keeps_its_meaning_and_holds_no_raw_control() {
        let value = serde_json::json!({
            "m": CLASSES.iter().map(|(c, _)| *c).collect::<String>(),
            "kept": KEPT.iter().collect::<String>(),
        });
        // serde_json escapes C0 controls only; the rest is raw in its output.
        let compact = serde_json::to_string(&value).expect("serialises");
        let pretty = serde_json::to_string_pretty(&value).expect("serialises");
        for json in [compact, pretty] {
            let mut out = String::new();
            push_json_escaped(&mut out, &json);
            assert!(!out.chars().any(needs_escape), "{out}");
            let back: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
            assert_eq!(back, value);
        }
        let mut out = String::new();
        push_json_escaped(&mut out, "[\"\u{7f}\u{9b}\u{61c}\u{202e}\u{2069}\",\n1]");
        assert_eq!(out, r#"["\u007f\u009b\u061c\u202e\u2069", 1]"#);
    }
}
