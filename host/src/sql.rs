//! `logrelay sql "<query>"`: one SQL statement through the store connector (its `sql` request),
//! in a read-only transaction unless `--write`, printed as a table or as JSON.
//!
//! Stored text is whatever producers sent, so nothing of it reaches the terminal raw: control
//! characters and bidirectional formatting characters are shown escaped, by the same rules as
//! the console connector's ([`logrelay_plugin_api::escape`]).

use std::borrow::Cow;
use std::process::ExitCode;

use anyhow::Context as _;
use logrelay_plugin_api::escape::{escape, push_json_escaped};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::app::{ConfigProblem, load_plugins_config};
use crate::config::{Env, InstanceSpec, Settings};
use crate::engine::request_once;
use crate::loader::Loader;

/// Options of `logrelay sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// The statement (one).
    pub query: String,
    /// Allow writes: run in a committed read-write transaction.
    #[arg(long)]
    pub write: bool,
    /// Print the store's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The store instance to use, as named in plugins.toml (default: the only store).
    #[arg(long)]
    pub instance: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 1000)]
    pub max_rows: u64,
}

/// Runs the statement and prints the answer.
pub fn run(settings: &Settings, env: &Env, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let config = load_plugins_config(settings, env)?;
    let spec = choose_store(config.enabled(), args.instance.as_deref())?;
    let body = serde_json::json!({
        "query": args.query,
        "write": args.write,
        "max_rows": args.max_rows,
    })
    .to_string();
    let answer = match request_once(&spec, "sql", &body) {
        Ok(a) => a,
        Err(e) => {
            // A database error may quote stored text (`invalid input syntax ...: "<message>"`).
            eprintln!("error: {}", escape(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", render_json(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let value: Value = serde_json::from_str(&answer).context("the store's answer is not JSON")?;
    print!("{}", render_table(&value));
    Ok(ExitCode::SUCCESS)
}

/// The named instance, or the only enabled one whose library offers the `store` capability.
fn choose_store<'a>(
    enabled: impl Iterator<Item = &'a InstanceSpec>,
    name: Option<&str>,
) -> anyhow::Result<InstanceSpec> {
    let enabled: Vec<&InstanceSpec> = enabled.collect();
    if let Some(name) = name {
        return enabled
            .into_iter()
            .find(|s| s.name == name)
            .cloned()
            .with_context(|| format!("no enabled instance [plugins.{name}] in plugins.toml"));
    }
    let mut loader = Loader::default();
    let stores: Vec<&InstanceSpec> = enabled
        .into_iter()
        .filter(|s| {
            loader
                .load(&s.library, &s.type_name)
                .is_ok_and(|lib| lib.manifest().capabilities.iter().any(|c| c == "store"))
        })
        .collect();
    match stores.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ConfigProblem(
            "no enabled store instance in plugins.toml; enable one (type = \"timescale\") or name it with --instance"
                .to_owned(),
        )
        .into()),
        many => Err(ConfigProblem(format!(
            "several store instances ({}); choose one with --instance",
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

/// A value as shown in a table cell, with control and bidirectional formatting characters
/// escaped (`\x1b`, `\u{9b}`, `\u{202e}`): inside strings, and inside the JSON text of arrays and
/// objects, which serde_json writes with DEL, C1 and bidi characters raw.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => Cow::Borrowed("NULL"),
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    };
    escape(&text).into_owned()
}

/// The store's answer as `--json` prints it: the same JSON text, checked to be JSON, with every
/// control and bidirectional formatting character that JSON lets strings hold raw (DEL, C1
/// controls, U+202E ...) written as a `\u` escape (`\u202e`), so that the output means the same
/// to a JSON reader and holds nothing a terminal acts on.
pub fn render_json(answer: &str) -> anyhow::Result<String> {
    serde_json::from_str::<&RawValue>(answer).context("the store's answer is not JSON")?;
    let mut out = String::with_capacity(answer.len());
    push_json_escaped(&mut out, answer);
    Ok(out)
}

/// `{"columns": [...], "rows": [[...]]}` as an aligned text table with a row count; column names
/// and values are shown escaped (see [`cell`]).
pub fn render_table(answer: &Value) -> String {
    let columns: Vec<String> = answer
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(cell).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = answer
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|r| r.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    if !columns.is_empty() {
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in &rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            parts.join(" | ").trim_end().to_owned()
        };
        out.push_str(&line(&columns));
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-+-"),
        );
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
    }
    let truncated = answer.get("truncated").and_then(Value::as_bool) == Some(true);
    let affected = answer.get("rows_affected").and_then(Value::as_u64);
    out.push_str(&match (columns.is_empty(), affected) {
        (true, Some(n)) => format!("({n} row(s) affected)\n"),
        _ => format!(
            "({} row(s){})\n",
            rows.len(),
            if truncated { ", truncated" } else { "" }
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_aligned_table() {
        let answer = serde_json::json!({
            "columns": ["project", "count"],
            "rows": [["shop", 300], ["a", null]],
            "truncated": false,
        });
        assert_eq!(
            render_table(&answer),
            "project | count\n--------+------\nshop    | 300\na       | NULL\n(2 row(s))\n"
        );
        let answer = serde_json::json!({"columns": [], "rows": [], "rows_affected": 4});
        assert_eq!(render_table(&answer), "(4 row(s) affected)\n");
    }

    /// A message with every class of character that must not reach a terminal raw: an OSC
    /// sequence ended by BEL, a CSI sequence, another C0 control, a newline and a carriage
    /// return, DEL, C1 controls (CSI, OSC), and the bidirectional formatting characters.
    const HOSTILE: &str = "\x1b]0;owned\x07\x1b[2J\x01a\nb\rc\x7f\u{9b}31m\u{9d}x\u{9c}\
                           \u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\
                           \u{200e}\u{200f}\u{61c}\tend";

    const HOSTILE_SHOWN: &str = r"\x1b]0;owned\x07\x1b[2J\x01a\nb\rc\x7f\u{9b}31m\u{9d}x\u{9c}\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{61c}";

    fn raw_characters(text: &str) -> Vec<char> {
        text.chars()
            .filter(|&c| logrelay_plugin_api::escape::needs_escape(c))
            .collect()
    }

    #[test]
    fn table_cells_show_control_and_bidi_characters_escaped() {
        let answer = serde_json::json!({
            "columns": ["m\x1b[31m", "attributes"],
            "rows": [[HOSTILE, {"k": "\u{202e}\u{85}\x1b"}]],
        });
        let table = render_table(&answer);
        // Nothing raw but the table's own line ends.
        assert_eq!(table.lines().count(), 4, "{table:?}");
        assert!(
            table.lines().all(|l| raw_characters(l).is_empty()),
            "{table:?}"
        );
        let shown = format!("{HOSTILE_SHOWN}\tend");
        let width = shown.chars().count();
        let head = r"m\x1b[31m";
        assert_eq!(
            table,
            format!(
                "{head:<width$} | attributes\n{}-+-{}\n{shown} | {}\n(1 row(s))\n",
                "-".repeat(width),
                "-".repeat(28),
                r#"{"k":"\u{202e}\u{85}\u001b"}"#,
            )
        );
    }

    #[test]
    fn json_output_writes_control_and_bidi_characters_as_json_escapes() {
        let value = serde_json::json!({
            "columns": ["message"],
            "rows": [[HOSTILE]],
            "truncated": false,
        });
        // What the store answers: serde_json escapes only C0 controls.
        let answer = serde_json::to_string(&value).expect("serialises");
        assert!(!raw_characters(&answer).is_empty());
        let out = render_json(&answer).expect("JSON");
        assert_eq!(raw_characters(&out), Vec::<char>::new(), "{out}");
        for escaped in [
            r"\u001b]0;owned\u0007",
            r"\u0001a\nb\rc\u007f\u009b31m\u009dx\u009c",
            r"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\tend",
        ] {
            assert!(out.contains(escaped), "{escaped} in {out}");
        }
        let back: Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(back, value);
        // The answer's own order and form are kept.
        assert!(
            out.starts_with(r#"{"columns":["message"],"rows":[["#),
            "{out}"
        );
        assert!(render_json("not json \x1b[2J").is_err());
    }
}
