//! A connector's options, read from the library itself: its example config (`EXAMPLE_CONFIG`,
//! which every 1.x library exports) is documented TOML, so each option comes with the comment
//! lines above it, the type of its value and that value (the default, by the connectors'
//! convention, or an example). Options the example leaves commented out (`# key = value`) are
//! listed too. `logrelay plugins --describe TYPE` prints them; `logrelay check` prints them
//! under an instance whose options the connector refused.

use std::fmt::Write as _;

/// One option of a connector, from its example config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDoc {
    /// The key; `table.key` inside a table, `table[].key` inside an array of tables.
    pub key: String,
    /// The TOML type of the example's value: string, integer, float, boolean, array, table,
    /// datetime.
    pub kind: &'static str,
    /// The example's value, as written.
    pub value: String,
    /// The comment lines just above it, joined.
    pub doc: String,
    /// Commented out in the example (an optional option, off unless set).
    pub commented_out: bool,
}

/// The TOML type name of a value.
fn kind_of(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "string",
        toml::Value::Integer(_) => "integer",
        toml::Value::Float(_) => "float",
        toml::Value::Boolean(_) => "boolean",
        toml::Value::Datetime(_) => "datetime",
        toml::Value::Array(_) => "array",
        toml::Value::Table(_) => "table",
    }
}

/// `key = value` on one line, as TOML: the key and the value.
fn assignment(line: &str) -> Option<(String, toml::Value, String)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let table: toml::Table = toml::from_str(line).ok()?;
    let parsed = table.get(key)?.clone();
    Some((key.to_owned(), parsed, value.trim().to_owned()))
}

/// The options of an example config, in the order it lists them.
pub fn options(example: &str) -> Vec<OptionDoc> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut doc: Vec<String> = Vec::new();
    for line in example.lines() {
        let line = line.trim();
        if line.is_empty() {
            doc.clear();
            continue;
        }
        if let Some(header) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            table = format!("{}[].", header.trim());
            doc.clear();
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = format!("{}.", header.trim());
            doc.clear();
            continue;
        }
        let (text, commented_out) = match line.strip_prefix('#') {
            Some(rest) => (rest.trim(), true),
            None => (line, false),
        };
        match assignment(text) {
            Some((key, value, written)) => {
                let key = format!("{table}{key}");
                // A second line for the same key (another example of it) adds nothing.
                if !out.iter().any(|o: &OptionDoc| o.key == key) {
                    out.push(OptionDoc {
                        key,
                        kind: kind_of(&value),
                        value: written,
                        doc: doc.join(" "),
                        commented_out,
                    });
                }
                doc.clear();
            }
            None if commented_out => doc.push(text.to_owned()),
            None => doc.clear(),
        }
    }
    out
}

/// The options as text: one per line, `key  type  value  doc`.
pub fn render(options: &[OptionDoc]) -> String {
    let key_width = options.iter().map(|o| o.key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for o in options {
        let value = if o.commented_out {
            format!("(unset; e.g. {})", o.value)
        } else {
            o.value.clone()
        };
        let _ = write!(out, "  {:<key_width$}  {:<8}  {value}", o.key, o.kind);
        if !o.doc.is_empty() {
            let _ = write!(out, "\n  {:<key_width$}  {}", "", o.doc);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
# The `demo` connector.

# Where the files go; it must exist.
directory = \"/var/log\"
# Rotate before a file passes this size
# (bytes).
max_file_bytes = 67108864
sync = true
# The HTTP API.
# http_listen_address = \"127.0.0.1:8081\"

[[rules]]
# The rule's name.
name = \"errors\"
levels = [\"error\"]
";

    #[test]
    fn reads_keys_types_values_and_the_comments_above() {
        let o = options(EXAMPLE);
        let keys: Vec<&str> = o.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "directory",
                "max_file_bytes",
                "sync",
                "http_listen_address",
                "rules[].name",
                "rules[].levels"
            ]
        );
        assert_eq!(o[0].kind, "string");
        assert_eq!(o[0].doc, "Where the files go; it must exist.");
        assert_eq!(o[1].kind, "integer");
        assert_eq!(o[1].value, "67108864");
        assert_eq!(o[1].doc, "Rotate before a file passes this size (bytes).");
        assert_eq!((o[2].kind, o[2].doc.as_str()), ("boolean", ""));
        assert!(o[3].commented_out);
        assert_eq!(o[3].doc, "The HTTP API.");
        assert_eq!(o[4].doc, "The rule's name.");
        assert_eq!(o[5].kind, "array");
        let text = render(&o);
        assert!(
            text.contains("http_listen_address  string    (unset; e.g. \"127.0.0.1:8081\")"),
            "{text}"
        );
    }

    #[test]
    fn every_shipped_example_config_is_read() {
        for (name, example) in [
            (
                "template",
                include_str!("../../examples/plugin-template/example-config.toml"),
            ),
            (
                "files",
                include_str!("../../plugins/files/example-config.toml"),
            ),
            (
                "telegram",
                include_str!("../../plugins/telegram/example-config.toml"),
            ),
            (
                "timescale",
                include_str!("../../plugins/timescale/example-config.toml"),
            ),
            (
                "console",
                include_str!("../../plugins/console/example-config.toml"),
            ),
        ] {
            let o = options(example);
            assert!(o.len() >= 3, "{name}: {o:?}");
            assert!(o.iter().all(|o| !o.key.is_empty()), "{name}: {o:?}");
        }
    }
}
