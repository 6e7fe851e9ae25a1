//! Message templates, HTML escaping and splitting of long messages.
//!
//! A template is text with placeholders in braces: `{level}`, `{LEVEL}`, `{project}`, `{module}`,
//! `{time}`, `{message}`, `{attributes}`, `{attr.KEY}`, `{rule}`, `{id}`; `{{` and `}}` are literal
//! braces. In a message template the text around placeholders is HTML sent as written (so
//! `<b>{LEVEL}</b>` is bold) and every value is HTML-escaped.

use std::fmt::Write as _;

use logrelay_plugin_api::Record;

/// Telegram's limit on one message, in UTF-16 code units (its "characters").
pub const MESSAGE_LIMIT: usize = 4096;

/// One value a template can show.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Level,
    LevelUpper,
    Project,
    Module,
    Time,
    Message,
    Attributes,
    Attribute(String),
    Rule,
    Id,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// Values are HTML-escaped (message templates), or not (fingerprints, which also normalise
    /// digits in `{message}`).
    html: bool,
}

/// What a template is rendered from, besides the record.
pub struct RenderContext<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// `{time}` format (validated).
    pub time_format: &'a str,
    /// The attributes `{attributes}` lists.
    pub show_attributes: &'a [String],
}

impl Template {
    /// Parses `text`; `html` says whether it renders HTML (message) or plain text (fingerprint).
    pub fn parse(text: &str, html: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed `{{` at character {at}"))?;
                    let name = &rest[..end];
                    let field = match name {
                        "level" => Field::Level,
                        "LEVEL" => Field::LevelUpper,
                        "project" => Field::Project,
                        "module" => Field::Module,
                        "time" => Field::Time,
                        "message" => Field::Message,
                        "attributes" => Field::Attributes,
                        "rule" => Field::Rule,
                        "id" => Field::Id,
                        other => match other.strip_prefix("attr.") {
                            Some(key) if !key.is_empty() => Field::Attribute(key.to_owned()),
                            _ => {
                                return Err(format!(
                                    "unknown placeholder `{{{other}}}`; use level, LEVEL, project, module, time, message, attributes, attr.KEY, rule or id (`{{{{` for a brace)"
                                ));
                            }
                        },
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field));
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                }
                '}' => return Err(format!("unmatched `}}` at character {at}; write `}}}}`")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts, html })
    }

    /// Renders the template for `record` (with `attrs` its parsed attributes) into `out`.
    pub fn render(
        &self,
        out: &mut String,
        record: &Record,
        attrs: Option<&serde_json::Map<String, serde_json::Value>>,
        ctx: &RenderContext<'_>,
    ) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => self.render_field(out, f, record, attrs, ctx),
            }
        }
    }

    fn value(&self, out: &mut String, value: &str) {
        if self.html {
            escape_into(out, value);
        } else {
            out.push_str(value);
        }
    }

    fn render_field(
        &self,
        out: &mut String,
        field: &Field,
        record: &Record,
        attrs: Option<&serde_json::Map<String, serde_json::Value>>,
        ctx: &RenderContext<'_>,
    ) {
        match field {
            Field::Level => out.push_str(record.level.name()),
            Field::LevelUpper => out.push_str(record.level.upper_name()),
            Field::Project => self.value(out, &record.project),
            Field::Module => self.value(out, &record.module),
            Field::Rule => self.value(out, ctx.rule),
            Field::Id => self.value(out, &record.id),
            Field::Time => {
                let time = chrono::DateTime::from_timestamp_nanos(record.timestamp_ns);
                let mut text = String::new();
                // The format was validated at start-up; a failure leaves the field empty.
                let _ = write!(text, "{}", time.format(ctx.time_format));
                self.value(out, &text);
            }
            Field::Message => {
                if self.html {
                    escape_into(out, &record.message);
                } else {
                    normalise_digits(out, &record.message);
                }
            }
            Field::Attribute(key) => {
                if let Some(v) = attrs.and_then(|a| a.get(key)) {
                    self.value(out, &attribute_text(v));
                }
            }
            Field::Attributes => {
                let Some(attrs) = attrs else { return };
                let mut first = true;
                for key in ctx.show_attributes {
                    if let Some(v) = attrs.get(key) {
                        if !first {
                            out.push('\n');
                        }
                        first = false;
                        self.value(out, key);
                        out.push_str(": ");
                        self.value(out, &attribute_text(v));
                    }
                }
            }
        }
    }
}

/// An attribute value as text: strings as they are, anything else as JSON.
pub fn attribute_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Appends `text` with every run of ASCII digits replaced by one `#`.
pub fn normalise_digits(out: &mut String, text: &str) {
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
}

/// Appends `text` escaped for Telegram's HTML parse mode.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// `text` escaped for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// A piece of HTML that is never split: a tag, an entity or one character.
#[derive(Debug)]
enum Token<'a> {
    /// `<b>`, `<a href="...">`: the tag's name and its full text.
    Open(&'a str, &'a str),
    /// `</b>`.
    Close(&'a str),
    /// An entity, a character, or a self-closing tag.
    Text(&'a str),
}

fn tokenize(html: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < html.len() {
        let rest = &html[i..];
        let len = match bytes[i] {
            b'<' => match rest.find('>') {
                Some(end) => {
                    let tag = &rest[..=end];
                    let inner = &tag[1..tag.len() - 1];
                    if let Some(name) = inner.strip_prefix('/') {
                        tokens.push(Token::Close(tag_name(name)));
                    } else if inner.ends_with('/') {
                        tokens.push(Token::Text(tag));
                    } else {
                        tokens.push(Token::Open(tag_name(inner), tag));
                    }
                    end + 1
                }
                None => {
                    tokens.push(Token::Text("<"));
                    1
                }
            },
            b'&' => {
                let end = rest
                    .char_indices()
                    .take(12)
                    .find(|(_, c)| *c == ';')
                    .map(|(e, _)| e + 1)
                    .unwrap_or(1);
                tokens.push(Token::Text(&rest[..end]));
                end
            }
            _ => {
                let c_len = rest.chars().next().map_or(1, char::len_utf8);
                tokens.push(Token::Text(&rest[..c_len]));
                c_len
            }
        };
        i += len;
    }
    tokens
}

fn tag_name(inner: &str) -> &str {
    let end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(inner.len());
    &inner[..end]
}

/// Packs tokens into parts, closing tags still open at the end of a part and reopening them at
/// the start of the next.
struct Splitter<'a> {
    limit: usize,
    parts: Vec<String>,
    current: String,
    current_len: usize,
    has_content: bool,
    /// Open tags: name and full opening text.
    stack: Vec<(&'a str, &'a str)>,
}

impl<'a> Splitter<'a> {
    fn closers_len(stack: &[(&str, &str)]) -> usize {
        stack.iter().map(|(name, _)| name.len() + 3).sum()
    }

    /// Appends `tokens` when they fit (with closing tags for whatever is open after them).
    fn try_push(&mut self, tokens: &[Token<'a>], force: bool) -> bool {
        let mut stack = self.stack.clone();
        let mut added = 0;
        for t in tokens {
            match t {
                Token::Open(name, text) => {
                    stack.push((name, text));
                    added += utf16_len(text);
                }
                Token::Close(name) => {
                    if let Some(pos) = stack.iter().rposition(|(n, _)| n == name) {
                        stack.truncate(pos);
                    }
                    added += name.len() + 3;
                }
                Token::Text(text) => added += utf16_len(text),
            }
        }
        if !force && self.current_len + added + Self::closers_len(&stack) > self.limit {
            return false;
        }
        for t in tokens {
            match t {
                Token::Open(_, text) | Token::Text(text) => self.current.push_str(text),
                Token::Close(name) => {
                    self.current.push_str("</");
                    self.current.push_str(name);
                    self.current.push('>');
                }
            }
        }
        self.current_len += added;
        self.has_content = true;
        self.stack = stack;
        true
    }

    fn flush(&mut self) {
        if !self.has_content {
            return;
        }
        let mut part = std::mem::take(&mut self.current);
        for (name, _) in self.stack.iter().rev() {
            let _ = write!(part, "</{name}>");
        }
        self.parts.push(part);
        for (_, open) in &self.stack {
            self.current.push_str(open);
        }
        self.current_len = utf16_len(&self.current);
        self.has_content = false;
    }
}

/// Splits an HTML message into parts of at most `limit` UTF-16 units each, preferably at line
/// breaks, never inside a tag or an entity; tags open at a split are closed at the end of the
/// part and reopened at the start of the next. Nothing is cut: the parts hold all the text.
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    if utf16_len(html) <= limit {
        return vec![html.to_owned()];
    }
    let mut s = Splitter {
        limit,
        parts: Vec::new(),
        current: String::new(),
        current_len: 0,
        has_content: false,
        stack: Vec::new(),
    };
    for line in html.split_inclusive('\n') {
        let tokens = tokenize(line);
        if s.try_push(&tokens, false) {
            continue;
        }
        s.flush();
        if s.try_push(&tokens, false) {
            continue;
        }
        // The line alone is too long: split it between tokens.
        for token in tokens {
            let one = [token];
            if !s.try_push(&one, false) {
                s.flush();
                // A single token longer than a whole message (a huge tag) goes alone.
                s.try_push(&one, true);
            }
        }
    }
    s.flush();
    s.parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use logrelay_plugin_api::Level;

    use super::*;

    fn ctx() -> RenderContext<'static> {
        RenderContext {
            rule: "r",
            time_format: "%H:%M:%S",
            show_attributes: &[],
        }
    }

    #[test]
    fn parses_and_renders_with_escaping() {
        let t = Template::parse("<b>{LEVEL}</b> {{x}} {message} {attr.user}", true).expect("ok");
        let r = Record::new("1", 0, Level::ERROR, "p", "m", "a < b & \"c\"")
            .with_attributes(r#"{"user":"<ann>"}"#);
        let attrs: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.attributes).expect("json");
        let mut out = String::new();
        t.render(&mut out, &r, Some(&attrs), &ctx());
        assert_eq!(
            out,
            "<b>ERROR</b> {x} a &lt; b &amp; &quot;c&quot; &lt;ann&gt;"
        );
    }

    #[test]
    fn refuses_unknown_placeholders() {
        assert!(Template::parse("{nope}", true).is_err());
        assert!(Template::parse("{message", true).is_err());
        assert!(Template::parse("a } b", true).is_err());
        assert!(Template::parse("{attr.}", true).is_err());
    }

    #[test]
    fn fingerprint_normalises_digits() {
        let t = Template::parse("{message}", false).expect("ok");
        let r = Record::new("1", 0, Level::ERROR, "p", "m", "order 1234 failed after 5s");
        let mut out = String::new();
        t.render(&mut out, &r, None, &ctx());
        assert_eq!(out, "order # failed after #s");
    }

    #[test]
    fn splits_at_lines_and_keeps_everything() {
        let line = "x".repeat(99) + "\n";
        let text = line.repeat(100);
        let parts = split_html(&text, 4096);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| utf16_len(p) <= 4096));
        assert!(parts.iter().all(|p| p.ends_with('\n')));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn never_splits_inside_entities_and_reopens_tags() {
        let text = format!("<pre>{}</pre>", "&amp;".repeat(3000));
        let parts = split_html(&text, 4096);
        assert!(parts.len() >= 4);
        for p in &parts {
            assert!(utf16_len(p) <= 4096);
            assert!(p.starts_with("<pre>") && p.ends_with("</pre>"), "{p}");
            let inner = &p[5..p.len() - 6];
            assert_eq!(inner.len() % 5, 0);
            assert!(inner.split("&amp;").all(str::is_empty));
        }
        let joined: String = parts.iter().map(|p| &p[5..p.len() - 6]).collect();
        assert_eq!(joined, "&amp;".repeat(3000));
    }
}
