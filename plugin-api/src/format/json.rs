//! A scanner over the top-level entries of a record's attributes (the text of one JSON object),
//! borrowing every key and value from the text: nothing is allocated per record.
//!
//! It finds where entries start and end; it does not check nested values in full (the host wrote
//! the text from parsed JSON).

use std::borrow::Cow;

/// One `"key": value` entry, both as raw JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key with its quotes and any escapes: `"user"`.
    pub key: &'a str,
    /// The value as JSON text: `"u3"`, `5`, `{"a":[1,2]}`.
    pub value: &'a str,
}

impl<'a> Entry<'a> {
    /// The key without quotes, its escapes decoded.
    pub fn key_text(&self) -> Cow<'a, str> {
        string_text(self.key)
    }
}

/// The text of a JSON string (with quotes), its escapes decoded; borrowed unless it has escapes.
pub fn string_text(raw: &str) -> Cow<'_, str> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    serde_json::from_str::<String>(raw).map_or(Cow::Borrowed(inner), Cow::Owned)
}

/// The text of `raw` is not a JSON object this scanner can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Iterates over the entries of a JSON object's text.
pub struct Entries<'a> {
    text: &'a str,
    pos: usize,
    started: bool,
    done: bool,
}

/// The entries of `text`, which should be a JSON object (`{}` and an empty text have none).
pub fn entries(text: &str) -> Entries<'_> {
    Entries {
        text,
        pos: 0,
        started: false,
        done: false,
    }
}

impl<'a> Entries<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Malformed> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Moves past a string starting at `pos`.
    fn skip_string(&mut self) -> Result<(), Malformed> {
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'"' => return Ok(()),
                b'\\' => self.pos += 1,
                _ => {}
            }
        }
        Err(Malformed)
    }

    /// Moves past a value starting at `pos`.
    fn skip_value(&mut self) -> Result<(), Malformed> {
        let bytes = self.text.as_bytes();
        match self.peek().ok_or(Malformed)? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&b) = bytes.get(self.pos) {
                    match b {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                Err(Malformed)
            }
            _ => {
                let start = self.pos;
                while let Some(&b) = bytes.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    Err(Malformed)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, Malformed> {
        self.skip_ws();
        if !self.started {
            self.started = true;
            if self.peek().is_none() {
                return Ok(None);
            }
            self.expect(b'{')?;
            self.skip_ws();
            if self.peek() == Some(b'}') {
                return Ok(None);
            }
        } else {
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => return Ok(None),
                _ => return Err(Malformed),
            }
        }
        let key_start = self.pos;
        self.skip_string()?;
        let key = &self.text[key_start..self.pos];
        self.skip_ws();
        self.expect(b':')?;
        self.skip_ws();
        let value_start = self.pos;
        self.skip_value()?;
        let value = &self.text[value_start..self.pos];
        self.skip_ws();
        Ok(Some(Entry { key, value }))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_entry().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

/// The value of the entry whose key is `key`, if there is one and the text can be read.
pub fn find<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    entries(text)
        .map_while(Result::ok)
        .find(|e| e.key_text() == key)
        .map(|e| e.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<(&str, &str)>, Malformed> {
        entries(text).map(|e| e.map(|e| (e.key, e.value))).collect()
    }

    #[test]
    fn reads_flat_and_nested_values() {
        assert_eq!(all(""), Ok(vec![]));
        assert_eq!(all("{}"), Ok(vec![]));
        assert_eq!(all(" { } "), Ok(vec![]));
        assert_eq!(
            all(r#"{"a":1, "b" : "x,}\"y" ,"c":{"d":[1,{"e":"]"}]},"f":true,"g":null,"h":-1.5e3}"#),
            Ok(vec![
                (r#""a""#, "1"),
                (r#""b""#, r#""x,}\"y""#),
                (r#""c""#, r#"{"d":[1,{"e":"]"}]}"#),
                (r#""f""#, "true"),
                (r#""g""#, "null"),
                (r#""h""#, "-1.5e3"),
            ])
        );
    }

    #[test]
    fn malformed_text_is_reported() {
        assert_eq!(all("not json"), Err(Malformed));
        assert_eq!(all(r#"{"a":1"#), Err(Malformed));
        assert_eq!(all(r#"{"a" 1}"#), Err(Malformed));
        assert_eq!(all(r#"{"a":"1}"#), Err(Malformed));
        assert_eq!(all(r#"{"a":}"#), Err(Malformed));
        assert_eq!(all(r#"{"a":[1,2}"#), Err(Malformed));
        assert_eq!(all(r#"{"a":1 "b":2}"#), Err(Malformed));
        assert_eq!(all("[1]"), Err(Malformed));
    }

    #[test]
    fn keys_with_escapes_are_decoded_for_lookup() {
        let text = r#"{"us\u0065r":"u3","seq":5}"#;
        assert_eq!(find(text, "user"), Some(r#""u3""#));
        assert_eq!(find(text, "seq"), Some("5"));
        assert_eq!(find(text, "missing"), None);
        assert_eq!(string_text(r#""a\nb""#), "a\nb");
        assert!(matches!(string_text(r#""plain""#), Cow::Borrowed("plain")));
    }
}
