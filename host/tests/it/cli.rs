//! The real `logrelay` binary: check, plugins, replay, send, run with kill -9 and SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::broker_shared;
use crate::common::{
    AMQP_URL, StartAppOnDrop, TestDb, declare, delete, logs, plugin_dir, rabbit, rabbitmqctl,
    read_ids, ready, run, unique, wait_until,
};

/// Writes the plugins.toml the binary reads in `dir`.
fn write_plugins(dir: &Path, text: impl AsRef<str>) {
    std::fs::write(dir.join("plugins.toml"), text.as_ref()).expect("write plugins.toml");
}

/// The binary, run in `dir` (which has no .env) with the given environment. No `LOGRELAY_*`
/// variable of the test's own environment (the test script's `LOGRELAY_TEST_*`, a developer's
/// settings) reaches it: what the host warns about is what the test gave it.
fn logrelay(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logrelay"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LOGRELAY_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .env("LOGRELAY_PLUGIN_DIR", plugin_dir())
        .env("LOGRELAY_PLUGINS", dir.join("plugins.toml"))
        .env("LOGRELAY_AMQP_URL", AMQP_URL)
        .env("LOGRELAY_STATE_DIR", dir.join("state"))
        .env("LOGRELAY_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn check_reports_success_and_failure_with_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(
        dir.path(),
        "[plugins.out]\ntype = \"console\"\n[plugins.sink]\ntype = \"fixture\"\n[plugins.off]\ntype = \"telegram\"\nenabled = false\n",
    );
    run(logrelay(dir.path(), &[]).arg("check"))
        .succeeds()
        .stdout_has(&["2 instance(s) ready", "[plugins.off] telegram (disabled)"]);

    write_plugins(
        dir.path(),
        "[plugins.a]\ntype = \"fixture\"\ncolour = 1\n[plugins.b]\ntype = \"fixture\"\nroute = { min_level = \"loud\" }\n",
    );
    run(logrelay(dir.path(), &[]).arg("check"))
        .exits_with(2)
        .stderr_has(&["colour", "\"loud\""]);
}

/// One exit-code table for every command (`logrelay --help`): 2 for a configuration that
/// cannot be used, 3 for what could not be reached.
#[test]
fn exit_codes_are_the_same_across_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(logrelay(dir.path(), &[]).arg("--help"))
        .succeeds()
        .stdout_has(&[
            "Exit codes (every command):",
            "  2  the command line or configuration",
            "  3  something",
        ]);
    // A named settings file that is not there.
    run(logrelay(dir.path(), &[]).args(["--env-file", "prod.env", "check"]))
        .exits_with(2)
        .stderr_has(&["prod.env", "no such file"]);
    // A library that is not a connector, under check and under run alike.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::write(plugins.join("liblogrelay_broken.so"), b"not a library").expect("write");
    write_plugins(dir.path(), "[plugins.b]\ntype = \"broken\"\n");
    let broken = [("LOGRELAY_PLUGIN_DIR", plugins.display().to_string())];
    for command in ["check", "run"] {
        run(logrelay(dir.path(), &broken).arg(command))
            .exits_with(2)
            .stderr_has(&["liblogrelay_broken.so"]);
    }
    run(logrelay(dir.path(), &broken).arg("plugins")).exits_with(2);
    // Nothing answers on the admin address.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    run(logrelay(dir.path(), &[("LOGRELAY_ADMIN_ADDR", addr)]).arg("health"))
        .exits_with(3)
        .stderr_has(&["is logrelay running?"]);
}

#[test]
fn invalid_settings_warn_or_fail_in_strict_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(dir.path(), "[plugins.sink]\ntype = \"fixture\"\n");
    let bad = [("LOGRELAY_PREFETCH", "many".to_owned())];
    run(logrelay(dir.path(), &bad).arg("check"))
        .succeeds()
        .stderr_has(&["LOGRELAY_PREFETCH=\"many\" is invalid"]);
    run(logrelay(dir.path(), &bad).args(["--strict", "check"]))
        .fails()
        .stderr_has(&["LOGRELAY_PREFETCH"]);
}

#[test]
fn the_hosts_log_has_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(dir.path(), "[plugins.sink]\ntype = \"fixture\"\n");
    let bad = [("LOGRELAY_PREFETCH", "many".to_owned())];
    // stderr is a pipe here, as it is for a file, journald or `docker logs`.
    let ran = run(logrelay(dir.path(), &bad).arg("check"));
    let ran = ran.succeeds().stderr_has(&["is invalid"]);
    let stderr = String::from_utf8_lossy(&ran.output.stderr);
    assert!(!stderr.contains('\u{1b}'), "escape codes in {stderr:?}");
}

#[test]
fn the_hosts_log_is_json_lines_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(dir.path(), "[plugins.sink]\ntype = \"fixture\"\n");
    let by_option = run(
        logrelay(dir.path(), &[("LOGRELAY_PREFETCH", "many".to_owned())]).args([
            "--log-format",
            "json",
            "check",
        ]),
    );
    let by_setting = run(logrelay(
        dir.path(),
        &[
            ("LOGRELAY_PREFETCH", "many".to_owned()),
            ("LOGRELAY_LOG_FORMAT", "JSON".to_owned()),
        ],
    )
    .arg("check"));
    for ran in [&by_option, &by_setting] {
        let stderr = ran.succeeds().stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "no log lines: {ran}");
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert_eq!(v["level"], "WARN", "{line}");
            assert!(v["timestamp"].is_string(), "{line}");
            let message = v["message"].as_str().unwrap_or_default();
            assert!(message.contains("LOGRELAY_PREFETCH"), "{line}");
        }
    }
    run(logrelay(dir.path(), &[("LOGRELAY_LOG_FORMAT", "xml".to_owned())]).arg("check"))
        .succeeds()
        .stderr_has(&["LOGRELAY_LOG_FORMAT", "must be `text` or `json`"]);
}

/// `check` has no side effects and `replay` starts no listener, so both run beside a host that
/// holds the connectors' ports (here, a listener on the address they are configured with).
#[test]
fn check_and_replay_run_beside_a_host_that_holds_the_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let logs_dir = dir.path().join("logs").join("not-yet");
    let files = format!(
        "[plugins.files]\ntype = \"files\"\nconfig = {{ directory = {logs_dir:?}, http_listen_address = \"{addr}\", http_allow_unauthenticated = true }}\n"
    );
    write_plugins(
        dir.path(),
        format!(
            "{files}[plugins.api]\ntype = \"http-api\"\nconfig = {{ store = \"files\", listen = \"{addr}\" }}\n"
        ),
    );
    run(logrelay(dir.path(), &[]).arg("check"))
        .succeeds()
        .stdout_has(&["2 instance(s) ready"]);
    assert!(!logs_dir.exists(), "check created {}", logs_dir.display());
    // Online, the connectors start as for a run: the held address is refused.
    run(logrelay(dir.path(), &[]).args(["check", "--online"]))
        .exits_with(2)
        .stderr_has(&[&addr.to_string()]);
    // A value `run` would refuse, `check` refuses too, naming it.
    write_plugins(
        dir.path(),
        files.replace("http_allow_unauthenticated = true", "max_file_bytes = 0"),
    );
    run(logrelay(dir.path(), &[]).arg("check"))
        .exits_with(2)
        .stderr_has(&["max_file_bytes"]);

    write_plugins(dir.path(), &files);
    let file = dir.path().join("logs.jsonl");
    std::fs::write(&file, logs("beside", 7).join("\n")).expect("write");
    run(logrelay(dir.path(), &[]).arg("replay").arg(&file))
        .succeeds()
        .stdout_has(&["replayed 7 record(s)", "7 delivered"]);
    let written: usize = std::fs::read_dir(&logs_dir)
        .expect("the files connector wrote")
        .filter_map(Result::ok)
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(written, 7);
    drop(held);
}

#[test]
fn plugins_lists_the_libraries() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(logrelay(dir.path(), &[]).arg("plugins")).stdout_has(&["fixture", "console"]);
}

/// `--describe` reads the options from the library; `check` shows them, and the closest name,
/// under an instance whose connector refused an unknown option.
#[test]
fn plugins_describe_and_check_show_a_connectors_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(logrelay(dir.path(), &[]).args(["plugins", "--describe", "fixture"]))
        .succeeds()
        .stdout_has(&[
            "fixture 0.1.0",
            "record_to",
            "string",
            "sleep_ms",
            "integer",
        ]);
    run(logrelay(dir.path(), &[]).args(["plugins", "--describe", "nosuchtype"])).exits_with(2);
    write_plugins(
        dir.path(),
        "[plugins.sink]\ntype = \"fixture\"\nconfig = { sleep_msec = 5 }\n",
    );
    run(logrelay(dir.path(), &[]).arg("check"))
        .exits_with(2)
        .stderr_has(&[
            "unknown field `sleep_msec`",
            "did you mean `sleep_ms`?",
            "`fixture` options (logrelay plugins --describe fixture)",
            "record_to",
        ]);
}

#[test]
fn replay_feeds_a_file_through_the_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    write_plugins(
        dir.path(),
        format!("[plugins.sink]\ntype = \"fixture\"\nconfig = {{ record_to = {ids:?} }}\n"),
    );
    let file = dir.path().join("logs.jsonl");
    std::fs::write(&file, logs("replay", 25).join("\n")).expect("write");
    run(logrelay(dir.path(), &[]).arg("replay").arg(&file))
        .succeeds()
        .stdout_has(&["replayed 25 record(s)", "25 delivered"]);
    assert_eq!(read_ids(&ids).len(), 25);

    // A slow best-effort instance still gets every record of a replay before it ends.
    std::fs::write(&ids, "").expect("truncate");
    write_plugins(
        dir.path(),
        format!(
            "[plugins.sink]\ntype = \"fixture\"\ndelivery = \"best_effort\"\nconfig = {{ record_to = {ids:?}, sleep_ms = 50 }}\n"
        ),
    );
    let small_batches = [("LOGRELAY_BATCH_MAX_RECORDS", "5".to_owned())];
    run(logrelay(dir.path(), &small_batches)
        .arg("replay")
        .arg(&file))
    .succeeds();
    assert_eq!(read_ids(&ids).len(), 25);
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    exit_within(child, limit).unwrap_or_else(|| panic!("the host did not exit within {limit:?}"))
}

/// `send --file` streams its input: grouped by `--per-message`, repeated by `--repeat` (the file
/// read again each time), from a file or standard input.
#[tokio::test(flavor = "multi_thread")]
async fn send_groups_and_repeats_a_file_or_standard_input() {
    let _broker = broker_shared().await;
    let queue = unique("sendfile");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let file = dir.path().join("logs.jsonl");
    std::fs::write(&file, format!("{}\n\n", logs("s", 5).join("\n"))).expect("write");
    let send = |extra: &[&str], stdin: Stdio| {
        let mut cmd = logrelay(dir.path(), &[]);
        cmd.args(["send", "--routing-key", &queue, "--exchange", ""])
            .args(extra)
            .stdin(stdin);
        run(&mut cmd)
    };
    send(
        &[
            "--file",
            &file.display().to_string(),
            "--repeat",
            "3",
            "--per-message",
            "4",
        ],
        Stdio::null(),
    )
    .succeeds()
    .stdout_has(&["4 of 4 message(s) confirmed (15 log(s))"]);
    let stdin = std::fs::File::open(&file).expect("open");
    send(&["--file", "-", "--repeat", "2"], Stdio::from(stdin))
        .succeeds()
        .stdout_has(&["10 of 10 message(s) confirmed (10 log(s))"]);

    // What the queue holds: 4 arrays (4, 4, 4, 3 logs), then 10 single logs; every copy has
    // its own `seq`.
    let mut sizes = Vec::new();
    let mut seqs = std::collections::BTreeMap::new();
    for _ in 0..14 {
        let got = ch
            .basic_get(
                queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
            .expect("a message");
        let body: serde_json::Value = serde_json::from_slice(&got.delivery.data).expect("JSON");
        let logs = match body {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        sizes.push(logs.len());
        for log in logs {
            *seqs.entry(log["seq"].as_u64().unwrap_or(99)).or_insert(0) += 1;
        }
    }
    assert_eq!(sizes[..4], [4, 4, 4, 3]);
    assert!(sizes[4..].iter().all(|n| *n == 1), "{sizes:?}");
    assert_eq!(seqs, [(0, 10), (1, 10), (2, 5)].into_iter().collect());
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_then_kill_9_mid_stream_and_restart_delivers_every_record() {
    let _broker = broker_shared().await;
    let queue = unique("kill9");
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    write_plugins(
        dir.path(),
        format!(
            "[plugins.sink]\ntype = \"fixture\"\nconfig = {{ record_to = {ids:?}, sleep_ms = 20 }}\n"
        ),
    );
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_BATCH_MAX_RECORDS", "50".to_owned()),
    ];
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let file = dir.path().join("logs.jsonl");
    std::fs::write(&file, logs("k", 3000).join("\n")).expect("write");
    let sent = run(logrelay(dir.path(), &env)
        .args(["send", "--routing-key", &queue, "--exchange", ""])
        .arg("--file")
        .arg(&file));
    sent.succeeds();
    assert!(
        sent.stdout()
            .starts_with("3000 of 3000 message(s) confirmed"),
        "{sent}"
    );

    let mut host = logrelay(dir.path(), &env)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    assert!(
        wait_until(Duration::from_secs(30), || read_ids(&ids).len() >= 300),
        "the host consumed nothing"
    );
    host.kill().expect("kill -9");
    let _ = host.wait();
    let before = read_ids(&ids).len();
    assert!(before < 3000, "killed too late to mean anything ({before})");

    let mut host = logrelay(dir.path(), &env)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .expect("restart");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let got: std::collections::HashSet<String> = read_ids(&ids).into_iter().collect();
            got.len() == 3000
        }),
        "records lost after kill -9"
    );
    sigterm(&host);
    let status = wait_exit(&mut host, Duration::from_secs(20));
    assert!(status.success(), "SIGTERM gives exit 0, got {status}");
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_required_instance_keeps_memory_bounded() {
    let _broker = broker_shared().await;
    let queue = unique("slowmem");
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(
        dir.path(),
        "[plugins.slow]\ntype = \"fixture\"\nconfig = { sleep_ms = 100 }\n",
    );
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    // 20,000 messages of about 2 KiB: 40 MiB waiting in the broker.
    let filler = "x".repeat(2000);
    let bodies: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"id":"m-{i}","message":"{filler}"}}"#))
        .collect();
    for chunk in bodies.chunks(2000) {
        crate::common::publish(&ch, &queue, chunk).await;
    }
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_PREFETCH", "200".to_owned()),
        ("LOGRELAY_BATCH_MAX_RECORDS", "100".to_owned()),
    ];
    let mut host = logrelay(dir.path(), &env)
        .arg("run")
        .stderr(std::fs::File::create(dir.path().join("host.log")).expect("log"))
        .spawn()
        .expect("run");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rss = peak_rss_kib(host.id());
    let waiting = ready(&ch, &queue).await;
    sigterm(&host);
    let status = wait_exit(&mut host, Duration::from_secs(20));
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default()
    );
    assert!(rss > 0, "could not read the host's peak RSS");
    assert!(
        rss < 64 * 1024,
        "peak RSS {} KiB: the host buffered instead of back-pressuring",
        rss
    );
    assert!(
        waiting > 15_000,
        "only {waiting} messages still waiting: the host took more than the slow instance could handle"
    );
    delete(&ch, &queue).await;
}

/// A plain HTTP/1.1 GET on 127.0.0.1: (status, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

fn metric(body: &str, line_start: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_and_health_follows_the_instance() {
    let _broker = crate::common::broker_exclusive().await;
    let queue = unique("admin");
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("sick");
    write_plugins(
        dir.path(),
        format!(
            "[plugins.sink]\ntype = \"fixture\"\nconfig = {{ fail_while_exists = {flag:?} }}\n"
        ),
    );
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let addr = free_addr();
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_ADMIN_ADDR", addr.clone()),
        ("LOGRELAY_HEALTHCHECK_INTERVAL_MS", "200".to_owned()),
    ];
    let mut host = logrelay(dir.path(), &env)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(&addr, "/health").is_some_and(|(s, _)| s == 200)
        }),
        "health never turned green"
    );
    crate::common::publish(&ch, &queue, &logs("adm", 40)).await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(&addr, "/metrics").is_some_and(|(_, b)| {
                metric(&b, "logrelay_acked_total ") == Some(40)
                    && metric(
                        &b,
                        "logrelay_instance_records_total{instance=\"sink\",outcome=\"ok\"}",
                    ) == Some(40)
            })
        }),
        "metrics did not count the 40 records"
    );
    let (_, body) = http_get(&addr, "/metrics").expect("metrics");
    assert!(
        body.contains("logrelay_dispatch_seconds_count{instance=\"sink\"}"),
        "{body}"
    );
    assert_eq!(metric(&body, "logrelay_messages_received_total "), Some(40));
    // The alert rules and the Grafana dashboard in deploy/ name only metrics the host exposes.
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for file in ["prometheus/alerts.yml", "grafana/dashboards/logrelay.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect("deploy file");
        let mut named = 0;
        for (at, _) in text.match_indices("logrelay_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            named += 1;
            assert!(
                body.contains(&format!("\n{name}")),
                "{file} names {name}, which /metrics does not expose:\n{body}"
            );
        }
        assert!(named >= 5, "{file} names only {named} metrics");
    }

    std::fs::write(&flag, "").expect("flag");
    assert!(
        wait_until(Duration::from_secs(10), || {
            http_get(&addr, "/health").is_some_and(|(s, b)| s == 503 && b.contains("\"unhealthy\""))
        }),
        "health did not turn red with a failing required instance"
    );
    run(logrelay(dir.path(), &env).arg("health")).fails();
    std::fs::remove_file(&flag).expect("unflag");
    assert!(
        wait_until(Duration::from_secs(10), || {
            http_get(&addr, "/health").is_some_and(|(s, _)| s == 200)
        }),
        "health did not turn green again"
    );
    run(logrelay(dir.path(), &env).arg("health"))
        .succeeds()
        .stdout_has(&["\"rabbitmq\":\"connected\""]);

    // The broker goes away: red, naming RabbitMQ; it comes back: green again by itself.
    let restart = StartAppOnDrop;
    rabbitmqctl(&["stop_app"]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(&addr, "/health")
                .is_some_and(|(s, b)| s == 503 && b.contains("\"rabbitmq\":\"disconnected\""))
        }),
        "health did not turn red without the broker"
    );
    rabbitmqctl(&["start_app"]);
    drop(restart);
    assert!(
        wait_until(Duration::from_secs(60), || {
            http_get(&addr, "/health").is_some_and(|(s, _)| s == 200)
        }),
        "health did not turn green after the broker came back"
    );
    sigterm(&host);
    assert!(wait_exit(&mut host, Duration::from_secs(20)).success());
    delete(&ch, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_by_command_and_by_sighup_and_a_bad_config_is_refused() {
    let _broker = broker_shared().await;
    let queue = unique("reload");
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.toml");
    std::fs::write(&plugins, "[plugins.a]\ntype = \"fixture\"\n").expect("write");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let addr = free_addr();
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_ADMIN_ADDR", addr.clone()),
    ];
    let mut host = logrelay(dir.path(), &env)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    assert!(wait_until(Duration::from_secs(20), || {
        http_get(&addr, "/health").is_some_and(|(s, _)| s == 200)
    }));

    std::fs::write(
        &plugins,
        "[plugins.a]\ntype = \"fixture\"\n[plugins.b]\ntype = \"fixture\"\n",
    )
    .expect("write");
    run(logrelay(dir.path(), &env).arg("reload"))
        .succeeds()
        .stdout_has(&["\"added\":[\"b\"]"]);

    std::fs::write(&plugins, "[plugins.a]\ntype = \"fixture\"\nbogus = 1\n").expect("write");
    run(logrelay(dir.path(), &env).arg("reload"))
        .fails()
        .stdout_has(&["refused", "bogus"]);
    let (_, health) = http_get(&addr, "/health").expect("health");
    assert!(
        health.contains("\"name\":\"b\""),
        "the running set stays: {health}"
    );

    std::fs::write(&plugins, "[plugins.b]\ntype = \"fixture\"\n").expect("write");
    let status = Command::new("kill")
        .args(["-HUP", &host.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(&addr, "/health").is_some_and(|(_, b)| !b.contains("\"name\":\"a\""))
        }),
        "SIGHUP did not remove instance a"
    );
    sigterm(&host);
    assert!(wait_exit(&mut host, Duration::from_secs(20)).success());
    delete(&ch, &queue).await;
}

#[test]
fn sql_runs_through_the_store_read_only_unless_write() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(
        dir.path(),
        "[plugins.store]\ntype = \"timescale\"\nconfig = { url = \"${LOGRELAY_DATABASE_URL}\" }\n",
    );
    let env = [("LOGRELAY_DATABASE_URL", db.url())];
    let file = dir.path().join("logs.jsonl");
    std::fs::write(&file, logs("sql", 12).join("\n")).expect("write");
    run(logrelay(dir.path(), &env).arg("replay").arg(&file)).succeeds();

    let grouped = "SELECT project, count(*) AS n FROM logs GROUP BY project";
    let out = run(logrelay(dir.path(), &env).args(["sql", grouped]));
    out.succeeds();
    assert_eq!(
        out.stdout(),
        "project | n\n--------+---\nshop    | 12\n(1 row(s))\n"
    );

    let out =
        run(logrelay(dir.path(), &env).args(["sql", "--json", "SELECT count(*) AS n FROM logs"]));
    let answer: serde_json::Value =
        serde_json::from_slice(&out.output.stdout).expect("--json prints JSON");
    assert_eq!(answer["rows"][0][0], 12);

    let delete = "DELETE FROM logs WHERE id = 'sql-0'";
    run(logrelay(dir.path(), &env).args(["sql", delete]))
        .fails()
        .stderr_has(&["read-only"]);
    run(logrelay(dir.path(), &env).args(["sql", "--write", delete]))
        .succeeds()
        .stdout_has(&["(1 row(s) affected)"]);
}

#[test]
fn sql_shows_stored_control_and_bidi_characters_escaped() {
    // A stored message that would retitle the terminal (OSC ended by BEL), clear the screen
    // (CSI), move the cursor (C1 CSI) and reverse the rest of the line (bidi override).
    let message = "\x1b]0;owned\x07\x1b[2J\u{9b}H\x7f\u{202e}txt.exe\u{2066}\u{2069}\u{200f}";
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    write_plugins(
        dir.path(),
        "[plugins.store]\ntype = \"timescale\"\nconfig = { url = \"${LOGRELAY_DATABASE_URL}\" }\n",
    );
    let env = [("LOGRELAY_DATABASE_URL", db.url())];
    let file = dir.path().join("logs.jsonl");
    let line = serde_json::json!({"id": "hostile-1", "project": "shop", "message": message});
    std::fs::write(&file, format!("{line}\n")).expect("write");
    run(logrelay(dir.path(), &env).arg("replay").arg(&file)).succeeds();
    let raw = |text: &str| -> Vec<char> {
        text.chars()
            .filter(|&c| logrelay_plugin_api::escape::needs_escape(c) && c != '\n')
            .collect()
    };

    let out = run(logrelay(dir.path(), &env).args(["sql", "SELECT message FROM logs"]));
    out.succeeds();
    let stdout = String::from_utf8(out.output.stdout).expect("UTF-8");
    assert_eq!(raw(&stdout), Vec::<char>::new(), "{stdout:?}");
    let shown = r"\x1b]0;owned\x07\x1b[2J\u{9b}H\x7f\u{202e}txt.exe\u{2066}\u{2069}\u{200f}";
    assert!(stdout.contains(&format!("\n{shown}\n")), "{stdout:?}");

    let out = run(logrelay(dir.path(), &env).args(["sql", "--json", "SELECT message FROM logs"]));
    let stdout = String::from_utf8(out.output.stdout).expect("UTF-8");
    assert_eq!(raw(&stdout), Vec::<char>::new(), "{stdout:?}");
    assert!(
        stdout.contains(r"\u202etxt.exe\u2066\u2069\u200f"),
        "{stdout}"
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(answer["rows"][0][0], message);

    // An error quoting stored text is escaped too.
    let out = run(logrelay(dir.path(), &env).args(["sql", "SELECT message::int FROM logs"]));
    out.fails();
    let stderr = String::from_utf8(out.output.stderr).expect("UTF-8");
    assert_eq!(raw(&stderr), Vec::<char>::new(), "{stderr:?}");
    assert!(stderr.contains(r"\u{202e}txt.exe"), "{stderr:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_aborts_the_host_is_dead_lettered_and_every_other_record_is_stored_once() {
    let _broker = broker_shared().await;
    let db = TestDb::new();
    let queue = unique("poison");
    let dir = tempfile::tempdir().expect("tempdir");
    // The store dedupes; the fixture aborts the process (no panic: nothing catches it).
    write_plugins(
        dir.path(),
        "[plugins.store]\ntype = \"timescale\"\nconfig = { url = \"${LOGRELAY_DATABASE_URL}\" }\n\
         [plugins.crash]\ntype = \"fixture\"\nconfig = { abort_on = \"POISON\" }\n",
    );
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_BATCH_MAX_RECORDS", "20".to_owned()),
        ("LOGRELAY_DATABASE_URL", db.url()),
        // Other tests' hosts may hold the default admin port.
        ("LOGRELAY_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
    ];
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    // The common producer: no id, no timestamp, no message id.
    let mut bodies: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"levelname":"INFO","name":"shop.cart","message":"good {i}"}}"#))
        .collect();
    bodies.insert(150, r#"{"message":"POISON pill"}"#.to_owned());
    crate::common::publish(&ch, &queue, &bodies).await;

    let dead = format!("{queue}.dead");
    declare(&ch, &dead).await;
    let mut runs = 0;
    let mut host = loop {
        runs += 1;
        let log_path = dir.path().join("host.log");
        assert!(
            runs <= 8,
            "the poison message was not dead-lettered after 7 restarts; the hosts' log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("host log");
        let mut host = KillOnDrop(
            logrelay(dir.path(), &env)
                .env("LOGRELAY_LOG", "info")
                .arg("run")
                .stderr(log)
                .spawn()
                .expect("run"),
        );
        let start = Instant::now();
        let mut died = false;
        while start.elapsed() < Duration::from_secs(60) {
            if host.0.try_wait().expect("wait").is_some() {
                died = true;
                break;
            }
            if ready(&ch, &dead).await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !died {
            break host;
        }
    };
    assert!(runs >= 2, "the fixture never aborted the host");
    let good_rows =
        "SELECT count(*), count(DISTINCT message) FROM logs WHERE message LIKE 'good %'";
    let start = Instant::now();
    while db.query(good_rows) != "300|300" && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.query(good_rows),
        "300|300",
        "every good record exactly once"
    );
    let got = ch
        .basic_get(
            dead.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
        .expect("a dead letter");
    assert_eq!(got.delivery.data, br#"{"message":"POISON pill"}"#);
    let reason = got
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-logrelay-reason").cloned());
    let reason = match reason {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(reason.contains("stopped the host"), "{reason}");
    assert_eq!(
        ready(&ch, &dead).await,
        0,
        "only the poison message is dead-lettered"
    );
    sigterm(&host.0);
    assert!(wait_exit(&mut host.0, Duration::from_secs(20)).success());
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}

/// A host process killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for a child to exit; `None` if it did not within `limit` (it is killed).
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `top` reads a running host's metrics and `tail` follows its records through the http-api
/// connector's live stream with the API's filters; both say clearly when there is no host.
#[tokio::test(flavor = "multi_thread")]
async fn top_and_tail_watch_a_running_host() {
    let _broker = broker_shared().await;
    let db = TestDb::new();
    let queue = unique("watch");
    let dir = tempfile::tempdir().expect("tempdir");
    let (admin, api) = (free_addr(), free_addr());
    write_plugins(
        dir.path(),
        "[plugins.store]\ntype = \"timescale\"\nconfig = { url = \"${LOGRELAY_DATABASE_URL}\" }\n\
         [plugins.api]\ntype = \"http-api\"\nconfig = { store = \"store\", listen = \"${LOGRELAY_HTTP_ADDR}\", token = \"${LOGRELAY_API_TOKEN}\" }\n",
    );
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    let env = [
        ("LOGRELAY_QUEUE", queue.clone()),
        ("LOGRELAY_EXCHANGE", format!("{queue}-ex")),
        ("LOGRELAY_ADMIN_ADDR", admin.clone()),
        ("LOGRELAY_HTTP_ADDR", api.clone()),
        ("LOGRELAY_API_TOKEN", "watch-token-0123456789".to_owned()),
        ("LOGRELAY_BATCH_MAX_WAIT_MS", "10".to_owned()),
        ("LOGRELAY_DATABASE_URL", db.url()),
    ];
    let host = KillOnDrop(
        logrelay(dir.path(), &env)
            .arg("run")
            .stderr(Stdio::null())
            .spawn()
            .expect("run"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(&admin, "/health").is_some_and(|(s, _)| s == 200)
        }),
        "health never turned green"
    );

    // tail: only errors of project `shop`, as JSON, two of them; the info logs around them are
    // filtered out by the server. Published until the tail has its two (its subscription starts
    // when it connects), at most 40 rounds.
    let mut tail = logrelay(dir.path(), &env)
        .args([
            "tail",
            "--project",
            "shop",
            "--min-level",
            "error",
            "--output",
            "json",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail");
    let mut status = None;
    for round in 0..40 {
        let mut bodies = logs(&format!("w{round}"), 3);
        bodies.push(format!(
            r#"{{"id":"e{round}","level":"error","project":"shop","module":"pay","message":"declined {round}"}}"#
        ));
        bodies.push(format!(
            r#"{{"id":"o{round}","level":"error","project":"other","module":"pay","message":"elsewhere"}}"#
        ));
        crate::common::publish(&ch, &queue, &bodies).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(Some(s)) = tail.try_wait() {
            status = Some(s);
            break;
        }
    }
    let status = status.or_else(|| exit_within(&mut tail, Duration::from_secs(5)));
    let out = tail.wait_with_output().expect("tail output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.is_some_and(|s| s.success()),
        "tail did not end with its two records: {status:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for v in &lines {
        assert_eq!(
            (&v["level"], &v["project"]),
            (&"error".into(), &"shop".into()),
            "{v}"
        );
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("declined ")),
            "{v}"
        );
    }

    // The console's layout off a terminal: no escape codes.
    let mut text_tail = logrelay(dir.path(), &env)
        .args(["tail", "--text", "declined", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tail");
    for round in 100..140 {
        crate::common::publish(
            &ch,
            &queue,
            &[format!(
                r#"{{"id":"t{round}","level":"warning","project":"shop","module":"pay","message":"declined card"}}"#
            )],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if matches!(text_tail.try_wait(), Ok(Some(_))) {
            break;
        }
    }
    let _ = exit_within(&mut text_tail, Duration::from_secs(5));
    let out = text_tail.wait_with_output().expect("tail output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("declined card"), "{stdout:?}");
    assert!(
        stdout.contains("WARN") || stdout.contains("warn"),
        "{stdout:?}"
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "escape codes off a terminal: {stdout:?}"
    );

    // A wrong token is the command line's mistake (exit 2), saying what the server said.
    let mut wrong = env.to_vec();
    wrong.retain(|(k, _)| *k != "LOGRELAY_API_TOKEN");
    wrong.push(("LOGRELAY_API_TOKEN", "not-the-token-0123456789".to_owned()));
    run(logrelay(dir.path(), &wrong).args(["tail", "--count", "1"]))
        .exits_with(2)
        .stderr_has(&["401"]);

    // top: two frames of rates; both instances listed, the intake connected.
    run(logrelay(dir.path(), &env).args(["top", "--interval", "200ms", "--count", "2"]))
        .succeeds()
        .stdout_has(&[
            "RabbitMQ connected",
            "records/s",
            "store",
            "api",
            "call p99",
        ]);
    drop(host);

    // Nothing there: exit 3, naming the address.
    let nobody = free_addr();
    let mut gone = env.to_vec();
    gone.retain(|(k, _)| *k != "LOGRELAY_ADMIN_ADDR" && *k != "LOGRELAY_HTTP_ADDR");
    gone.push(("LOGRELAY_ADMIN_ADDR", nobody.clone()));
    gone.push(("LOGRELAY_HTTP_ADDR", nobody.clone()));
    run(logrelay(dir.path(), &gone).args(["top", "--count", "1"]))
        .exits_with(3)
        .stderr_has(&[&nobody]);
    run(logrelay(dir.path(), &gone).args(["tail", "--count", "1"]))
        .exits_with(3)
        .stderr_has(&[&nobody]);
    delete(&ch, &queue).await;
}
