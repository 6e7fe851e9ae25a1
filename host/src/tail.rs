//! `logrelay tail`: follows the records a running host stores, live, through the http-api
//! connector's `GET /logs/stream` (server-sent events) with the API's filters, and prints them
//! as the console connector does (colour on a terminal, never with `NO_COLOR`) or as JSON lines.

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use logrelay_plugin_api::format::{Ansi, Layout, LayoutSpec, Plain};
use logrelay_plugin_api::{Level, Record};

use crate::config::Settings;

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailOutput {
    /// One line per record in the console connector's default layout.
    Text,
    /// The API's JSON of each record, one per line.
    Json,
}

/// `logrelay tail`'s arguments: the API's filters.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The http-api connector's base URL (default: `http://` and LOGRELAY_HTTP_ADDR).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Only this project (repeat for several).
    #[arg(long)]
    pub project: Vec<String>,
    /// Only this module (repeat for several).
    #[arg(long)]
    pub module: Vec<String>,
    /// Only this level (`error`, `warning`...).
    #[arg(long)]
    pub level: Option<String>,
    /// Only this level and above.
    #[arg(long)]
    pub min_level: Option<String>,
    /// Only records whose message contains this text.
    #[arg(long)]
    pub text: Option<String>,
    /// Only records with this attribute value, `NAME=VALUE` (repeat for several).
    #[arg(long, value_name = "NAME=VALUE")]
    pub attr: Vec<String>,
    /// Only records that have this attribute (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub has: Vec<String>,
    /// `text` (the console's layout) or `json` (one object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub output: TailOutput,
    /// Stop after this many records (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

impl TailArgs {
    /// The query string of `/logs/stream`.
    fn query(&self) -> anyhow::Result<String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: &str| pairs.push((k.to_owned(), v.to_owned()));
        for p in &self.project {
            add("project", p);
        }
        for m in &self.module {
            add("module", m);
        }
        if let Some(l) = &self.level {
            add("level", l);
        }
        if let Some(l) = &self.min_level {
            add("min_level", l);
        }
        if let Some(t) = &self.text {
            add("text", t);
        }
        for h in &self.has {
            add("has", h);
        }
        for a in &self.attr {
            let Some((name, value)) = a.split_once('=') else {
                bail!("--attr {a:?}: write NAME=VALUE, e.g. --attr user=u1");
            };
            add(&format!("attr[{name}]"), value);
        }
        serde_urlencoded::to_string(&pairs).context("cannot encode the filters")
    }
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq)]
struct Event {
    name: String,
    data: String,
}

/// Splits complete events off the front of `buf` (the SSE wire format: `field: value` lines,
/// events ended by a blank line; comments, keep-alives, are skipped).
fn take_events(buf: &mut String) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let normalized_end = buf.find("\n\n").map(|i| (i, 2));
        let crlf_end = buf.find("\r\n\r\n").map(|i| (i, 4));
        let Some((end, skip)) = [normalized_end, crlf_end].into_iter().flatten().min() else {
            break;
        };
        let block: String = buf.drain(..end + skip).collect();
        let mut event = Event::default();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.name = value.to_owned(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        if !event.data.is_empty() {
            events.push(event);
        }
    }
    events
}

/// The record in the API's JSON, for the console's layout.
fn record_of(json: &str) -> anyhow::Result<Record> {
    let v: serde_json::Value = serde_json::from_str(json).context("not JSON")?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    let level = Level::from_name(text("level")).unwrap_or(Level::INFO);
    let ts = v.get("timestamp_ns").and_then(|x| x.as_i64()).unwrap_or(0);
    let attributes = v
        .get("attributes")
        .map_or_else(|| "{}".to_owned(), |a| a.to_string());
    Ok(Record::new(
        text("id"),
        ts,
        level,
        text("project"),
        text("module"),
        text("message"),
    )
    .with_attributes(attributes.as_str()))
}

/// `logrelay tail`: exit 1 when the stream ends (the host stopped), 3 when it cannot be reached.
pub async fn run(settings: &Settings, args: TailArgs) -> anyhow::Result<ExitCode> {
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.http_addr));
    let query = args.query()?;
    let url = format!("{}/logs/stream?{query}", base.trim_end_matches('/'));
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("--url {base:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url {base:?}: only http:// is supported (put a TLS proxy in front for https)");
    }
    let mut request = hyper::Request::get(uri).header("accept", "text/event-stream");
    if let Some(token) = &settings.api_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .context("cannot build the request")?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.with_context(|| {
        format!("nothing answers on {base}; is a host with the http-api connector running?")
    })?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        eprintln!(
            "error: {url} answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
        // A refused token or filter is the command line's (exit 2); anything else the server's.
        return Ok(ExitCode::from(if status.is_client_error() { 2 } else { 3 }));
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layout = Layout::new(&LayoutSpec::default()).context("the console's default layout")?;
    let mut buf = String::new();
    let mut pending_utf8: Vec<u8> = Vec::new();
    let mut shown = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the stream broke off")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending_utf8.extend_from_slice(&data);
        // Keep an incomplete UTF-8 sequence at the end for the next frame.
        let valid = match std::str::from_utf8(&pending_utf8) {
            Ok(_) => pending_utf8.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => bail!("the stream is not UTF-8 at byte {}", e.valid_up_to()),
        };
        buf.push_str(&String::from_utf8_lossy(&pending_utf8[..valid]));
        pending_utf8.drain(..valid);
        let mut out = String::new();
        for event in take_events(&mut buf) {
            match event.name.as_str() {
                "skipped" => eprintln!("warning: {}", event.data),
                _ => {
                    match args.output {
                        TailOutput::Json => {
                            out.push_str(&event.data);
                            out.push('\n');
                        }
                        TailOutput::Text => {
                            let record = record_of(&event.data).with_context(|| {
                                format!("a record that is not the API's JSON: {}", event.data)
                            })?;
                            if colour {
                                layout.write_record::<Ansi>(&record, &mut out);
                            } else {
                                layout.write_record::<Plain>(&record, &mut out);
                            }
                        }
                    }
                    shown += 1;
                    if args.count.is_some_and(|n| shown >= n) {
                        break;
                    }
                }
            }
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // A closed pipe (`logrelay tail | head`) ends the command quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing to standard output");
        }
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    eprintln!("error: the stream ended: the host stopped or the connector was reloaded");
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_keep_alives_skipped() {
        let mut buf = String::from(
            ":\n\nevent: log\nid: a\ndata: {\"x\":1}\n\nevent: skipped\r\ndata: {\"skipped\":3}\r\n\r\nevent: log\ndata: {\"y\"",
        );
        let events = take_events(&mut buf);
        assert_eq!(
            events,
            [
                Event {
                    name: "log".into(),
                    data: "{\"x\":1}".into()
                },
                Event {
                    name: "skipped".into(),
                    data: "{\"skipped\":3}".into()
                },
            ]
        );
        assert_eq!(
            buf, "event: log\ndata: {\"y\"",
            "the incomplete event waits"
        );
    }

    #[test]
    fn filters_become_the_apis_query() {
        let args = TailArgs {
            url: None,
            project: vec!["shop".into(), "a&b".into()],
            module: vec![],
            level: None,
            min_level: Some("warning".into()),
            text: Some("disk full".into()),
            attr: vec!["user=u 1".into()],
            has: vec!["trace_id".into()],
            output: TailOutput::Text,
            count: None,
        };
        assert_eq!(
            args.query().ok().as_deref(),
            Some(
                "project=shop&project=a%26b&min_level=warning&text=disk+full&has=trace_id&attr%5Buser%5D=u+1"
            )
        );
        let bad = TailArgs {
            attr: vec!["user".into()],
            ..args
        };
        assert!(bad.query().is_err());
    }

    #[test]
    fn the_apis_json_becomes_the_record() {
        let r = record_of(
            r#"{"id":"a","timestamp":"2023-11-14T22:13:20.123456Z","timestamp_ns":1700000000123456789,"level":"error","project":"p","module":"m","message":"x","attributes":{"u":1}}"#,
        );
        let r = r.ok();
        assert_eq!(r.as_ref().map(|r| r.level), Some(Level::ERROR));
        assert_eq!(
            r.as_ref().map(|r| r.timestamp_ns),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            r.as_ref().map(|r| r.attributes.as_str().to_owned()),
            Some(r#"{"u":1}"#.to_owned())
        );
    }
}
