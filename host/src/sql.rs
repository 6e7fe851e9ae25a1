//! `logrelay sql "<query>"`: one SQL statement through the store connector (its `sql` request),
//! in a read-only transaction unless `--write`, printed as a table or as JSON.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::cli::load_plugins_config;
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
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{answer}");
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
        [] => bail!(
            "no enabled store instance in plugins.toml; enable one (type = \"timescale\") or name it with --instance"
        ),
        many => bail!(
            "several store instances ({}); choose one with --instance",
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `{"columns": [...], "rows": [[...]]}` as an aligned text table with a row count.
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
}
