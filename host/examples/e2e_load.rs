//! Load and latency probe for `scripts/bench`: publishes generated logs to RabbitMQ with
//! publisher confirms and, optionally, measures how long some of them take to become
//! queryable through the HTTP API.
//!
//! ```text
//! e2e_load EXCHANGE COUNT [--rate LOGS_PER_S] [--probe URL] [--probe-every K] [--run TAG]
//!          [--routing-key KEY]
//! ```
//!
//! Log `i` is one JSON object of about 200 bytes: id `<TAG>-<i>`, the publish time as
//! `timestamp`, one of 6 levels, `project-<i % 20>`, `module-<(i / 20) % 50>`, a message and two
//! attributes. Without `--rate` it publishes as fast as the broker confirms (at most 4,096
//! unconfirmed); the routing key is `bench` unless given (with the exchange `""`, a queue's name
//! publishes straight to it). With `--probe URL` (the API's base, e.g. `http://127.0.0.1:18081`), every K-th
//! log (default 50) is looked up with `GET URL/log?id=...` until it is found (at most 60 s), and
//! the time from its publish to the first answer 200 is a latency sample. Prints one line
//! `published N in S s = R logs/s` and, with probes, `latency p50 .. p99 .. max .. (n samples)`.
//! With `--rate`, the publishing line also says how far at most the publisher fell behind its
//! schedule (the broker holding publishes back shows there, not in logrelay).
//! Exits 1 when the broker refuses a message or a probe is never found.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use lapin::options::ConfirmSelectOptions;
use lapin::{Connection, ConnectionProperties, PublisherConfirm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warning", "error", "critical"];
const MAX_UNCONFIRMED: usize = 4096;
const PROBE_GIVE_UP: Duration = Duration::from_secs(60);

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    exchange: String,
    count: u64,
    rate: Option<f64>,
    probe: Option<String>,
    probe_every: u64,
    run: String,
    routing_key: String,
}

fn args() -> Result<Args, Error> {
    let usage = "usage: e2e_load EXCHANGE COUNT [--rate LOGS_PER_S] [--probe URL] [--probe-every K] [--run TAG] [--routing-key KEY]";
    let mut it = std::env::args().skip(1);
    let exchange = it.next().ok_or(usage)?;
    let count = it.next().ok_or(usage)?.parse()?;
    let mut a = Args {
        exchange,
        count,
        rate: None,
        probe: None,
        probe_every: 50,
        run: format!("e2e{}", std::process::id()),
        routing_key: "bench".to_owned(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--rate" => a.rate = Some(value.parse()?),
            "--probe" => a.probe = Some(value),
            "--probe-every" => a.probe_every = value.parse::<u64>()?.max(1),
            "--run" => a.run = value,
            "--routing-key" => a.routing_key = value,
            _ => return Err(usage.into()),
        }
    }
    Ok(a)
}

fn log(run: &str, i: u64) -> String {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    format!(
        r#"{{"id":"{run}-{i}","timestamp":"{now}","level":"{}","project":"project-{}","module":"module-{}","message":"request {i} handled: GET /api/v1/items status=200","user":"u-{}","latency_ms":{}}}"#,
        LEVELS[(i % 6) as usize],
        i % 20,
        (i / 20) % 50,
        i % 1000,
        i % 997
    )
}

/// `GET path` on a kept-alive connection; returns the status code.
async fn get_status(conn: &mut Option<TcpStream>, addr: &str, path: &str) -> Result<u16, Error> {
    for attempt in 0..2 {
        if conn.is_none() {
            *conn = Some(TcpStream::connect(addr).await?);
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        match read_response(stream, request.as_bytes()).await {
            Ok(status) => return Ok(status),
            Err(e) if attempt == 0 => {
                // The server may have closed an idle connection: reconnect once.
                let _ = e;
                *conn = None;
            }
            Err(e) => return Err(e),
        }
    }
    Err("no answer".into())
}

async fn read_response(stream: &mut TcpStream, request: &[u8]) -> Result<u16, Error> {
    stream.write_all(request).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (head_end, status, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(buf.get(..pos).unwrap_or_default()).into_owned();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("bad status line")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or("no content-length")?;
            break (pos + 4, status, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(status)
}

/// Looks up each probe until it is found; returns the latencies.
async fn prober(
    base: String,
    mut rx: mpsc::UnboundedReceiver<(String, Instant)>,
) -> Result<Vec<Duration>, Error> {
    let addr = base
        .strip_prefix("http://")
        .ok_or("--probe must start with http://")?
        .trim_end_matches('/')
        .to_owned();
    let mut conn = None;
    let mut waiting: VecDeque<(String, Instant)> = VecDeque::new();
    let mut samples = Vec::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        while let Ok(p) = rx.try_recv() {
            waiting.push_back(p);
        }
        if waiting.is_empty() {
            match rx.recv().await {
                Some(p) => waiting.push_back(p),
                None => open = false,
            }
            continue;
        }
        // The oldest probe first: later ones are rarely stored before it. A found probe lets the
        // next one be asked at once; otherwise wait 5 ms (at most ~200 requests/s of probing).
        let Some((id, sent)) = waiting.front() else {
            continue;
        };
        match get_status(&mut conn, &addr, &format!("/log?id={id}")).await? {
            200 => {
                samples.push(sent.elapsed());
                waiting.pop_front();
            }
            404 | 503 if sent.elapsed() > PROBE_GIVE_UP => {
                return Err(format!("probe {id} not queryable after 60 s").into());
            }
            404 | 503 => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return Err(format!("GET /log?id={id} answered {other}").into()),
        }
    }
    Ok(samples)
}

async fn settle(pending: &mut VecDeque<PublisherConfirm>, keep: usize) -> Result<(), Error> {
    while pending.len() > keep {
        let Some(confirm) = pending.pop_front() else {
            break;
        };
        let confirmation = confirm.await?;
        if !confirmation.is_ack() || confirmation.take_message().is_some() {
            return Err("the broker refused or returned a message (is the exchange bound?)".into());
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let url = std::env::var("LOGRELAY_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let prober = a.probe.clone().map(|base| tokio::spawn(prober(base, rx)));
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(MAX_UNCONFIRMED);
    let mut behind = Duration::ZERO;
    for i in 0..a.count {
        if let Some(rate) = a.rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            match due.checked_duration_since(Instant::now()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => behind = behind.max(due.elapsed()),
            }
        }
        let body = log(&a.run, i);
        let sent = Instant::now();
        let confirm =
            logrelay::send::publish(&channel, &a.exchange, &a.routing_key, body.as_bytes(), None)
                .await?;
        pending.push_back(confirm);
        if prober.is_some() && i % a.probe_every == 0 {
            let _ = tx.send((format!("{}-{i}", a.run), sent));
        }
        settle(&mut pending, MAX_UNCONFIRMED).await?;
    }
    settle(&mut pending, 0).await?;
    let secs = started.elapsed().as_secs_f64();
    let lag = if a.rate.is_some() {
        format!(
            ", at most {:.1} ms behind schedule",
            behind.as_secs_f64() * 1e3
        )
    } else {
        String::new()
    };
    println!(
        "published {} in {secs:.3} s = {:.0} logs/s{lag}",
        a.count,
        a.count as f64 / secs.max(1e-9)
    );
    drop(tx);
    if let Some(prober) = prober {
        let mut samples = prober.await??;
        samples.sort();
        println!(
            "latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} samples)",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 1.0),
            samples.len()
        );
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
