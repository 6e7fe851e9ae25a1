//! `logrelay send`: publish logs to RabbitMQ with publisher confirms.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties, PublisherConfirm};

use crate::app::ConfigProblem;
use crate::config::Settings;

/// Options of `logrelay send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The message of one log (omit with --file).
    pub message: Option<String>,
    /// Its level.
    #[arg(long, default_value = "info")]
    pub level: String,
    /// Its project.
    #[arg(long, default_value = "cli")]
    pub project: String,
    /// Its module.
    #[arg(long, default_value = "send")]
    pub module: String,
    /// Publish every line of this JSON-lines file (`-` for standard input) instead.
    #[arg(long, conflicts_with = "message")]
    pub file: Option<PathBuf>,
    /// Publish each log this many times (for load tests; each copy gets its own `seq` field).
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Put this many logs in each message, as a JSON array.
    #[arg(long, default_value_t = 1)]
    pub per_message: usize,
    /// The exchange (default: LOGRELAY_EXCHANGE).
    #[arg(long)]
    pub exchange: Option<String>,
    /// The routing key (default: `<project>.<module>.<level>`).
    #[arg(long)]
    pub routing_key: Option<String>,
    /// Publish without an AMQP `message_id`, as most producers do (pika, Python logging
    /// handlers): the host then derives the records' ids from the messages' bytes.
    #[arg(long)]
    pub no_message_id: bool,
}

/// Publishes and waits for every confirm; prints how many the broker confirmed.
pub async fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<ExitCode> {
    if args.per_message == 0 {
        return Err(ConfigProblem("--per-message must be at least 1".to_owned()).into());
    }
    let level = logrelay_plugin_api::Level::from_name(&args.level).with_context(|| {
        format!(
            "unknown level {:?}; use trace, debug, info, warning, error or critical",
            args.level
        )
    })?;
    let logs: Vec<String> = match (&args.file, &args.message) {
        (Some(path), _) => read_lines(path)?,
        (None, Some(message)) => vec![
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": level.name(),
                "project": args.project,
                "module": args.module,
                "message": message,
            })
            .to_string(),
        ],
        (None, None) => {
            return Err(ConfigProblem(
                "give a MESSAGE or --file FILE (see logrelay send --help)".to_owned(),
            )
            .into());
        }
    };
    let exchange = args
        .exchange
        .clone()
        .unwrap_or_else(|| settings.exchange.clone());
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| format!("{}.{}.{}", args.project, args.module, level.name()));

    let conn = Connection::connect(&settings.amqp_url, ConnectionProperties::default())
        .await
        .with_context(|| {
            format!(
                "cannot connect to RabbitMQ at {} (LOGRELAY_AMQP_URL)",
                crate::intake::redact(&settings.amqp_url)
            )
        })?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let started = Instant::now();
    let mut pending: Vec<PublisherConfirm> = Vec::with_capacity(1024);
    let (mut published, mut confirmed, mut refused) = (0u64, 0u64, 0u64);
    let mut body = String::new();
    let mut in_body = 0usize;
    let total = logs.len() as u64 * args.repeat;
    let mut seq = 0u64;
    for copy in 0..args.repeat {
        for log in &logs {
            seq += 1;
            let log = if args.repeat > 1 {
                with_seq(log, copy)
            } else {
                log.clone()
            };
            if args.per_message > 1 {
                body.push(if in_body == 0 { '[' } else { ',' });
                body.push_str(&log);
                in_body += 1;
                if in_body < args.per_message && seq < total {
                    continue;
                }
                body.push(']');
            } else {
                body = log;
            }
            in_body = 0;
            let message_id = (!args.no_message_id).then(|| uuid::Uuid::now_v7().to_string());
            let confirm = publish(
                &channel,
                &exchange,
                &routing_key,
                body.as_bytes(),
                message_id.as_deref(),
            )
            .await?;
            body.clear();
            published += 1;
            pending.push(confirm);
            if pending.len() >= 1000 {
                let (ok, no) = collect(&mut pending).await?;
                confirmed += ok;
                refused += no;
            }
        }
    }
    let (ok, no) = collect(&mut pending).await?;
    confirmed += ok;
    refused += no;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{confirmed} of {published} message(s) confirmed ({total} log(s)) in {secs:.3} s, {:.0} msg/s",
        published as f64 / secs.max(1e-9)
    );
    let _ = conn.close(200, "done".into()).await;
    Ok(if refused == 0 && confirmed == published {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {refused} message(s) refused by the broker or routed to no queue (check --exchange / --routing-key)"
        );
        ExitCode::FAILURE
    })
}

async fn collect(pending: &mut Vec<PublisherConfirm>) -> anyhow::Result<(u64, u64)> {
    let (mut ok, mut no) = (0, 0);
    for confirm in pending.drain(..) {
        let confirmation = confirm.await?;
        // Acked and not returned unroutable: a queue has it.
        if confirmation.is_ack() && confirmation.take_message().is_none() {
            ok += 1;
        } else {
            no += 1;
        }
    }
    Ok((ok, no))
}

/// Adds `"seq": n` to a JSON object's text (used by --repeat so copies differ).
fn with_seq(log: &str, n: u64) -> String {
    match log.trim_end().strip_suffix('}') {
        Some(head) if head.trim_end().ends_with('{') => format!("{head}\"seq\":{n}}}"),
        Some(head) => format!("{head},\"seq\":{n}}}"),
        None => log.to_owned(),
    }
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    let mut out = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if !line.trim().is_empty() {
            out.push(line);
        }
    }
    Ok(out)
}

/// Publishes one JSON message as logrelay expects it: persistent, `application/json`, and
/// mandatory, so that a message no queue takes comes back instead of vanishing; with
/// `message_id` when given (`logrelay send` gives each message a new UUIDv7: its records' ids
/// are then `<message id>:<element>`). The returned confirm resolves once the broker has it (on
/// a channel in confirm mode).
pub async fn publish(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    message_id: Option<&str>,
) -> Result<PublisherConfirm, lapin::Error> {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    if let Some(id) = message_id {
        properties = properties.with_message_id(id.into());
    }
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_appended() {
        assert_eq!(with_seq(r#"{"a":1}"#, 3), r#"{"a":1,"seq":3}"#);
        assert_eq!(with_seq("{}", 3), r#"{"seq":3}"#);
    }
}
