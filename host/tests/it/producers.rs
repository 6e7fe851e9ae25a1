//! The example producers of `examples/producers/`, with the real logger libraries installed from
//! their registries at test time (pip into a venv under target/, npm into a directory under
//! target/), against the real RabbitMQ, into the real store. When a registry cannot be reached
//! the test says so and stops; any other failure to install fails it.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    AMQP_URL, TestDb, broker_shared, declare_bound, delete, rabbit, settings_for, unique,
    wait_until,
};
use crate::intake::{Host, start_host};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

fn target_tmp() -> PathBuf {
    let dir = repo().join("target").join("tmp");
    std::fs::create_dir_all(&dir).expect("target/tmp");
    dir
}

/// Whether `host:443` answers within 5 s.
fn reachable(host: &str) -> bool {
    let Ok(mut addrs) = (host, 443).to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok())
}

/// Runs an installer; `false` (with a printed reason) when it failed because `registry` cannot
/// be reached, a panic when it failed otherwise.
fn install(cmd: &mut Command, registry: &str) -> bool {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if out.status.success() {
        return true;
    }
    if !reachable(registry) {
        eprintln!(
            "SKIPPED: {registry} cannot be reached, so the real logger libraries cannot be installed ({cmd:?} failed)"
        );
        return false;
    }
    panic!(
        "{cmd:?} failed although {registry} is reachable:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A store, a queue bound to its exchange, and a host writing into the store.
struct Setup {
    db: TestDb,
    queue: String,
    exchange: String,
    host: Host,
    channel: lapin::Channel,
    _connection: lapin::Connection,
}

async fn setup(name: &str) -> Setup {
    let db = TestDb::new();
    let queue = unique(name);
    let exchange = format!("{queue}-ex");
    let (connection, channel) = rabbit().await;
    declare_bound(&channel, &queue, &exchange).await;
    let host = start_host(
        settings_for(&queue, &[]),
        &format!(
            "[plugins.store]\ntype = \"timescale\"\nconfig = {{ url = {:?} }}\n",
            db.url()
        ),
    );
    Setup {
        db,
        queue,
        exchange,
        host,
        channel,
        _connection: connection,
    }
}

impl Setup {
    /// Runs a producer with the environment the examples read; its standard output.
    /// A producer still running after 120 s is killed and fails the test.
    fn produce(&self, cmd: &mut Command, project: &str) -> String {
        let mut child = cmd
            .env("LOGRELAY_AMQP_URL", AMQP_URL)
            .env("LOGRELAY_EXCHANGE", &self.exchange)
            .env("LOGRELAY_PROJECT", project)
            .env("LOGRELAY_PRINT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "{cmd:?} still ran after 120 s:\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The rows of `project` once there are `n`, oldest first, as JSON objects with `level` (a
    /// name), `project`, `module`, `message`, `ts_us` and `attributes`.
    fn rows(&self, project: &str, n: usize) -> Vec<Value> {
        let count = format!("SELECT count(*) FROM logs WHERE project = '{project}'");
        assert!(
            wait_until(Duration::from_secs(60), || self.db.query(&count)
                == n.to_string()),
            "{project}: {} rows stored, expected {n}",
            self.db.query(&count)
        );
        let rows = self.db.query(&format!(
            "SELECT json_build_object('level', (ARRAY['trace','debug','info','warning','error','critical'])[level + 1], \
             'project', project, 'module', module, 'message', message, \
             'ts_us', (extract(epoch FROM ts) * 1000000)::bigint, 'attributes', attributes) \
             FROM logs WHERE project = '{project}' ORDER BY ts, message"
        ));
        rows.lines()
            .map(|l| serde_json::from_str(l).expect("row"))
            .collect()
    }

    async fn finish(self) {
        self.host.stop().await;
        delete(&self.channel, &self.queue).await;
    }
}

/// `(level, module, message)` of each row.
fn summary(rows: &[Value]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("level"), s("module"), s("message"))
        })
        .collect()
}

fn strings(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

/// The time a printed body carried, in microseconds (the store's precision).
fn sent_us(
    printed: &str,
    message_key: &str,
    message: &str,
    time_us: impl Fn(&Value) -> i64,
) -> i64 {
    printed
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v[message_key] == message || v["fields"]["message"] == message)
        .map(|v| time_us(&v))
        .unwrap_or_else(|| panic!("{message:?} was not printed by the producer:\n{printed}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn python_logging_and_structlog_producers() {
    let _broker = broker_shared().await;
    let venv = target_tmp().join("producers-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 must be installed to run this test");
        assert!(status.success(), "python3 -m venv failed");
    }
    let requirements = repo().join("examples/producers/python/requirements.txt");
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
    ])
    .arg(&requirements);
    if !install(&mut pip, "pypi.org") {
        return;
    }
    let s = setup("producers-python").await;
    let dir = repo().join("examples/producers/python");

    // logging with the pika handler.
    let printed = s.produce(
        Command::new(&python).arg(dir.join("logrelay_logging.py")),
        "pylog",
    );
    let rows = s.rows("pylog", 3);
    assert_eq!(
        summary(&rows),
        strings(&[
            ("info", "shop.cart", "cart created"),
            ("warning", "shop.cart", "cart almost full"),
            ("error", "shop.cart", "checkout failed"),
        ])
    );
    for row in &rows {
        let message = row["message"].as_str().expect("message");
        let sent = sent_us(&printed, "message", message, |v| {
            let created = v["created"].as_f64().expect("created");
            (created * 1e6).round() as i64
        });
        assert!(
            (row["ts_us"].as_i64().expect("ts") - sent).abs() <= 1,
            "{row}"
        );
    }
    assert_eq!(rows[0]["attributes"]["cart_id"], 17);
    let traceback = rows[2]["attributes"]["exc_info"]
        .as_str()
        .expect("exc_info kept");
    assert!(
        traceback.contains("ZeroDivisionError: division by zero"),
        "{traceback}"
    );

    // structlog.
    let printed = s.produce(
        Command::new(&python).arg(dir.join("structlog_example.py")),
        "pystruct",
    );
    let rows = s.rows("pystruct", 2);
    assert_eq!(
        summary(&rows),
        strings(&[
            ("info", "shop.pay", "payment started"),
            ("error", "shop.pay", "payment failed"),
        ])
    );
    for row in &rows {
        let message = row["message"].as_str().expect("message");
        let sent = sent_us(&printed, "event", message, |v| {
            let text = v["timestamp"].as_str().expect("timestamp");
            let t = chrono::DateTime::parse_from_rfc3339(text).expect("iso time");
            t.timestamp_micros()
        });
        assert_eq!(row["ts_us"].as_i64(), Some(sent), "{row}");
        assert_eq!(row["attributes"]["order"], "A-1");
    }
    let exception = rows[1]["attributes"]["exception"]
        .as_str()
        .expect("exception kept");
    assert!(
        exception.contains("ValueError: card declined"),
        "{exception}"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_pino_producer() {
    let _broker = broker_shared().await;
    let work = target_tmp().join(unique("producers-node"));
    std::fs::create_dir_all(&work).expect("work dir");
    for file in ["package.json", "amqp-transport.js", "app.js"] {
        std::fs::copy(
            repo().join("examples/producers/node").join(file),
            work.join(file),
        )
        .expect("copy the example");
    }
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&work);
    if !install(&mut npm, "registry.npmjs.org") {
        return;
    }
    let s = setup("producers-node").await;
    let before_ms = chrono::Utc::now().timestamp_millis();
    s.produce(Command::new("node").arg(work.join("app.js")), "nodepino");
    let after_ms = chrono::Utc::now().timestamp_millis();
    let rows = s.rows("nodepino", 3);
    let mut got = summary(&rows);
    got.sort();
    assert_eq!(
        got,
        strings(&[
            ("error", "shop.api", "payment failed"),
            ("info", "shop.api", "request served"),
            ("warning", "shop.api", "slow request"),
        ])
    );
    for row in &rows {
        // pino's time is epoch milliseconds: stored to the millisecond, within the run.
        let us = row["ts_us"].as_i64().expect("ts");
        assert_eq!(us % 1000, 0, "{row}");
        assert!((before_ms..=after_ms).contains(&(us / 1000)), "{row}");
    }
    let error = rows
        .iter()
        .find(|r| r["message"] == "payment failed")
        .expect("the error row");
    let stack = error["attributes"]["err"]["stack"]
        .as_str()
        .expect("err.stack kept");
    assert!(stack.starts_with("Error: payment failed"), "{stack}");
    assert_eq!(
        rows.iter()
            .find(|r| r["message"] == "request served")
            .expect("row")["attributes"]["user"],
        17
    );
    let _ = std::fs::remove_dir_all(&work);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_tracing_producer() {
    let _broker = broker_shared().await;
    // Built with the workspace's own lapin and tracing (already built for the host).
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "logrelay", "--example", "tracing_producer"])
        .current_dir(repo())
        .status()
        .expect("cargo");
    assert!(status.success(), "building the tracing producer failed");
    let exe = repo().join("target/debug/examples/tracing_producer");
    let s = setup("producers-rust").await;
    let printed = s.produce(&mut Command::new(&exe), "rusttracing");
    let rows = s.rows("rusttracing", 3);
    assert_eq!(
        summary(&rows),
        strings(&[
            ("info", "tracing_producer", "cart checked out"),
            ("error", "tracing_producer", "payment failed"),
            ("debug", "tracing_producer", "done"),
        ])
    );
    for row in &rows {
        let message = row["message"].as_str().expect("message");
        let sent = sent_us(&printed, "message", message, |v| {
            let ns = v["timestamp"].as_i64().expect("timestamp");
            ns.div_euclid(1000)
        });
        assert!(
            (row["ts_us"].as_i64().expect("ts") - sent).abs() <= 1,
            "{row}"
        );
    }
    assert_eq!(
        rows[0]["attributes"]["spans"],
        serde_json::json!(["checkout"])
    );
    assert_eq!(rows[1]["attributes"]["fields"]["error"], "card declined");
    s.finish().await;
}
