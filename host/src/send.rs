//! `logrelay send`: publish logs to RabbitMQ with publisher confirms.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties, PublisherConfirm};

use crate::app::ConfigProblem;
use crate::config::Settings;
use crate::progress::Progress;

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
    let input = match (&args.file, &args.message) {
        (Some(path), _) => Input::open(path, args.repeat)?,
        (None, Some(message)) => Input::Text(
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": level.name(),
                "project": args.project,
                "module": args.module,
                "message": message,
            })
            .to_string()
            .into_bytes(),
        ),
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
    let mut out = Publisher {
        channel: &channel,
        exchange: &exchange,
        routing_key: &routing_key,
        message_ids: !args.no_message_id,
        pending: Vec::with_capacity(1024),
        published: 0,
        confirmed: 0,
        refused: 0,
    };
    let mut body = String::new();
    let mut in_body = 0usize;
    let mut total = 0u64;
    let mut progress = Progress::new(input.len().map(|n| n * args.repeat), "sent");
    let mut line = String::new();
    for copy in 0..args.repeat {
        let mut reader = input.reader()?;
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .with_context(|| format!("cannot read {}", input.name()))?;
            if read == 0 {
                break;
            }
            let log = line.trim();
            if log.is_empty() {
                progress.advance(read as u64, 0, "sent");
                continue;
            }
            total += 1;
            progress.advance(read as u64, 1, "sent");
            let log = if args.repeat > 1 {
                with_seq(log, copy)
            } else {
                log.to_owned()
            };
            if args.per_message == 1 {
                out.send(log.as_bytes()).await?;
                continue;
            }
            body.push(if in_body == 0 { '[' } else { ',' });
            body.push_str(&log);
            in_body += 1;
            if in_body == args.per_message {
                body.push(']');
                out.send(body.as_bytes()).await?;
                body.clear();
                in_body = 0;
            }
        }
    }
    if in_body > 0 {
        body.push(']');
        out.send(body.as_bytes()).await?;
    }
    out.settle().await?;
    progress.finish();
    let Publisher {
        published,
        confirmed,
        refused,
        ..
    } = out;
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

/// Publishes with confirms, settling them a thousand at a time.
struct Publisher<'a> {
    channel: &'a lapin::Channel,
    exchange: &'a str,
    routing_key: &'a str,
    message_ids: bool,
    pending: Vec<PublisherConfirm>,
    published: u64,
    confirmed: u64,
    refused: u64,
}

impl Publisher<'_> {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let message_id = self.message_ids.then(|| uuid::Uuid::now_v7().to_string());
        let confirm = publish(
            self.channel,
            self.exchange,
            self.routing_key,
            body,
            message_id.as_deref(),
        )
        .await?;
        self.published += 1;
        self.pending.push(confirm);
        if self.pending.len() >= 1000 {
            self.settle().await?;
        }
        Ok(())
    }

    /// Waits for every outstanding confirm.
    async fn settle(&mut self) -> anyhow::Result<()> {
        for confirm in self.pending.drain(..) {
            let confirmation = confirm.await?;
            // Acked and not returned unroutable: a queue has it.
            if confirmation.is_ack() && confirmation.take_message().is_none() {
                self.confirmed += 1;
            } else {
                self.refused += 1;
            }
        }
        Ok(())
    }
}

/// What `send` publishes: read a line at a time, once per `--repeat`.
enum Input {
    /// A file, opened again for each repeat.
    File { path: PathBuf, len: Option<u64> },
    /// Text held in memory: the one log of `send MESSAGE`, or standard input under
    /// `--repeat` (it can be read only once).
    Text(Vec<u8>),
    /// Standard input, streamed.
    Stdin,
}

impl Input {
    fn open(path: &Path, repeat: u64) -> anyhow::Result<Input> {
        if path.as_os_str() == "-" {
            if repeat <= 1 {
                return Ok(Input::Stdin);
            }
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .context("cannot read standard input")?;
            return Ok(Input::Text(text));
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata().ok().map(|m| m.len());
        Ok(Input::File {
            path: path.to_path_buf(),
            len,
        })
    }

    fn reader(&self) -> anyhow::Result<Box<dyn BufRead + '_>> {
        Ok(match self {
            Input::File { path, .. } => Box::new(BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            )),
            Input::Text(text) => Box::new(text.as_slice()),
            Input::Stdin => Box::new(std::io::stdin().lock()),
        })
    }

    /// Bytes per pass, when known (for the progress bar).
    fn len(&self) -> Option<u64> {
        match self {
            Input::File { len, .. } => *len,
            Input::Text(text) => Some(text.len() as u64),
            Input::Stdin => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Input::File { path, .. } => path.display().to_string(),
            Input::Text(_) | Input::Stdin => "standard input".to_owned(),
        }
    }
}

/// Adds `"seq": n` to a JSON object's text (used by --repeat so copies differ).
fn with_seq(log: &str, n: u64) -> String {
    match log.trim_end().strip_suffix('}') {
        Some(head) if head.trim_end().ends_with('{') => format!("{head}\"seq\":{n}}}"),
        Some(head) => format!("{head},\"seq\":{n}}}"),
        None => log.to_owned(),
    }
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
