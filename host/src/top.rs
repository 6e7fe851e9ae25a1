//! `logrelay top`: a running host's rates, queues and errors, read from its `/metrics` on
//! `LOGRELAY_ADMIN_ADDR` and refreshed in place on a terminal (one frame after another
//! otherwise, so it can be logged or piped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::app::admin_request;
use crate::config::Settings;

/// `logrelay top`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Time between frames (`500ms`, `2s`, `1m`).
    #[arg(long, default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Print this many frames and exit (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = logrelay_plugin_api::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// One sample's series: (name, labels) → value.
type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses the Prometheus text format as the host writes it (no escapes in label values,
/// no timestamps); comments and lines it cannot read are skipped.
fn parse(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        Some((k.to_owned(), v.trim_matches('"').to_owned()))
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        out.insert((name.to_owned(), labels), value);
    }
    out
}

/// Reads one series; `labels` must match exactly (in the order the host writes them).
fn get(s: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    s.get(&key).copied().unwrap_or(0.0)
}

/// The instances named in a sample, in order.
fn instances(s: &Series) -> Vec<String> {
    let mut names: Vec<String> = s
        .keys()
        .filter(|(name, _)| name == "logrelay_instance_up")
        .filter_map(|(_, labels)| {
            labels
                .iter()
                .find(|(k, _)| k == "instance")
                .map(|(_, v)| v.clone())
        })
        .collect();
    names.dedup();
    names
}

/// The upper bound of the bucket holding quantile `q` of the calls between two samples, in
/// seconds; `None` without calls.
fn quantile(before: &Series, now: &Series, instance: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = now
        .iter()
        .filter(|((name, labels), _)| {
            name == "logrelay_dispatch_seconds_bucket"
                && labels.iter().any(|(k, v)| k == "instance" && v == instance)
        })
        .filter_map(|((name, labels), v)| {
            let le = labels.iter().find(|(k, _)| k == "le")?.1.as_str();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let old = before
                .get(&(name.clone(), labels.clone()))
                .copied()
                .unwrap_or(0.0);
            Some((bound, v - old))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= q * total)
        .map(|(bound, _)| *bound)
}

fn millis(bound: Option<f64>) -> String {
    match bound {
        None => "-".into(),
        Some(b) if b.is_infinite() => "slow".into(),
        Some(b) => format!("≤{}", human_ms(b * 1000.0)),
    }
}

fn human_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// A rate per second, short: `950`, `12.3k`, `1.2M`.
fn rate(per_second: f64) -> String {
    let r = per_second.max(0.0);
    if r >= 999_500.0 {
        format!("{:.1}M", r / 1e6)
    } else if r >= 9_995.0 {
        format!("{:.1}k", r / 1e3)
    } else if r >= 10.0 || r == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// One frame from two samples `secs` apart.
fn frame(addr: &str, before: &Series, now: &Series, secs: f64) -> String {
    let per = |name: &str, labels: &[(&str, &str)]| {
        (get(now, name, labels) - get(before, name, labels)) / secs
    };
    let mut out = String::new();
    let connected = get(now, "logrelay_rabbitmq_connected", &[]) >= 1.0;
    let _ = writeln!(
        out,
        "logrelay on {addr}, over the last {secs:.1} s\n\nRabbitMQ {}   messages/s {}   records/s {}   acked/s {}   dead-lettered/s {}   pending batches {}   reconnects {}",
        if connected {
            "connected"
        } else {
            "NOT CONNECTED"
        },
        rate(per("logrelay_messages_received_total", &[])),
        rate(per("logrelay_records_decoded_total", &[])),
        rate(per("logrelay_acked_total", &[])),
        rate(per("logrelay_dead_lettered_total", &[])),
        get(now, "logrelay_pending_batches", &[]),
        (get(now, "logrelay_connections_total", &[]) - 1.0).max(0.0),
    );
    let _ = writeln!(
        out,
        "\n{:<24} {:>4} {:>9} {:>10} {:>9} {:>9} {:>9} {:>6} {:>9} {:>9}",
        "instance",
        "up",
        "records/s",
        "rejected/s",
        "dropped/s",
        "failed/s",
        "retries/s",
        "queued",
        "call p50",
        "call p99"
    );
    for name in instances(now) {
        let i = name.as_str();
        let rec = |outcome: &str| {
            per(
                "logrelay_instance_records_total",
                &[("instance", i), ("outcome", outcome)],
            )
        };
        let _ = writeln!(
            out,
            "{:<24} {:>4} {:>9} {:>10} {:>9} {:>9} {:>9} {:>6} {:>9} {:>9}",
            i,
            if get(now, "logrelay_instance_up", &[("instance", i)]) >= 1.0 {
                "yes"
            } else {
                "NO"
            },
            rate(rec("ok")),
            rate(rec("rejected")),
            rate(rec("dropped")),
            rate(per(
                "logrelay_instance_batches_total",
                &[("instance", i), ("outcome", "failed")]
            )),
            rate(per("logrelay_instance_retries_total", &[("instance", i)])),
            get(now, "logrelay_instance_channel_depth", &[("instance", i)]),
            millis(quantile(before, now, i, 0.5)),
            millis(quantile(before, now, i, 0.99)),
        );
    }
    out
}

/// `logrelay top`: frames until `count` or an interrupt. Exit 3 when the host cannot be
/// reached.
pub fn run(settings: &Settings, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let sample = || -> anyhow::Result<(Series, Instant)> {
        let (status, body) = admin_request(settings, "GET", "/metrics")?;
        anyhow::ensure!(
            status == 200,
            "the host answered {status} to GET /metrics: {body}"
        );
        Ok((parse(&body), Instant::now()))
    };
    let terminal = std::io::stdout().is_terminal();
    let addr = settings.admin_addr.to_string();
    let (mut before, mut at) = sample()?;
    let mut shown = 0u64;
    while args.count.is_none_or(|n| shown < n) {
        std::thread::sleep(args.interval);
        let (now, now_at) = sample()?;
        let text = frame(
            &addr,
            &before,
            &now,
            now_at.duration_since(at).as_secs_f64().max(1e-3),
        );
        let mut stdout = std::io::stdout().lock();
        if terminal {
            // Home and clear, then the frame: refreshed in place.
            write!(stdout, "\x1b[H\x1b[2J{text}").context("writing to standard output")?;
        } else {
            writeln!(stdout, "{text}").context("writing to standard output")?;
        }
        stdout.flush().context("writing to standard output")?;
        shown += 1;
        (before, at) = (now, now_at);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP x y\nlogrelay_messages_received_total 100\nlogrelay_records_decoded_total 1000\nlogrelay_rabbitmq_connected 1\nlogrelay_connections_total 1\nlogrelay_instance_records_total{instance=\"store\",outcome=\"ok\"} 1000\nlogrelay_instance_up{instance=\"store\"} 1\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"0.005\"} 10\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"0.05\"} 10\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"+Inf\"} 10\n";
    const NOW: &str = "logrelay_messages_received_total 300\nlogrelay_records_decoded_total 21000\nlogrelay_rabbitmq_connected 1\nlogrelay_connections_total 2\nlogrelay_instance_records_total{instance=\"store\",outcome=\"ok\"} 21000\nlogrelay_instance_up{instance=\"store\"} 1\nlogrelay_instance_channel_depth{instance=\"store\"} 3\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"0.005\"} 60\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"0.05\"} 109\nlogrelay_dispatch_seconds_bucket{instance=\"store\",le=\"+Inf\"} 110\n";

    #[test]
    fn rates_queues_and_call_times_between_two_samples() {
        let (before, now) = (parse(BEFORE), parse(NOW));
        assert_eq!(instances(&now), vec!["store".to_owned()]);
        // 100 calls between the samples: 50 under 5 ms, 49 under 50 ms, one slower.
        assert_eq!(quantile(&before, &now, "store", 0.5), Some(0.005));
        assert_eq!(quantile(&before, &now, "store", 0.99), Some(0.05));
        assert_eq!(quantile(&before, &now, "store", 1.0), Some(f64::INFINITY));
        assert_eq!(quantile(&now, &now, "store", 0.5), None);
        let text = frame("127.0.0.1:9464", &before, &now, 2.0);
        assert!(text.contains("messages/s 100 "), "{text}");
        assert!(text.contains("records/s 10.0k"), "{text}");
        assert!(text.contains("reconnects 1"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("store"))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "store", "yes", "10.0k", "0", "0", "0", "0", "3", "≤5.0ms", "≤50ms"
            ],
            "{text}"
        );
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(2.5), "2.5");
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(rate(1_234_567.0), "1.2M");
        assert_eq!(rate(-1.0), "0");
    }
}
