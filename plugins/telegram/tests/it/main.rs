//! Tests of the `telegram` connector against a fake Bot API server on 127.0.0.1, with the real
//! teloxide client talking HTTP to it. Nothing reaches the real Telegram.

mod fake;
mod so;

use std::time::{Duration, Instant};

use logrelay_plugin_api::testing::{Harness, conformance};
use logrelay_plugin_api::{ErrorKind, Level, Record};
use logrelay_telegram::Telegram;
use serde_json::Value;

use crate::fake::{Fake, free_port};

/// A well-formed token the fake accepts.
pub const TOKEN: &str = "123456:ABCdefGhIJKlmNoPQRsTUVwxyZ0123456789ab";
const T0: i64 = 1_700_000_000_000_000_000;

/// A config for the fake at `port` with fast limits, plus `extra` TOML (options, then rules).
pub fn config(port: u16, extra: &str) -> String {
    format!(
        r#"token = "{TOKEN}"
api_url = "http://127.0.0.1:{port}"
request_timeout_ms = 400
retry_initial_ms = 50
retry_max_ms = 200
poll_timeout_secs = 0
chat_messages_per_sec = 100.0
chat_burst = 100
global_messages_per_sec = 100.0
global_burst = 100
shutdown_flush_ms = 2000
{extra}"#
    )
}

fn rec(level: Level, project: &str, module: &str, message: &str) -> Record {
    Record::new("r", T0, level, project, module, message)
}

fn status(h: &Harness) -> Value {
    serde_json::from_str(&h.request("status", "").expect("status")).expect("status JSON")
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn passes_conformance() {
    let fake = Fake::start();
    conformance::<Telegram>(&config(
        fake.port,
        "[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("conformance");
}

#[test]
fn sends_each_matching_record_to_its_rules_chats_as_escaped_html() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        r#"group_window_ms = 0
commands = false
show_attributes = ["user", "order_id"]
[[rules]]
name = "shop-errors"
min_level = "error"
projects = ["shop"]
chats = [100, { chat_id = 200, message_thread_id = 7 }]
stop = true
[[rules]]
name = "slow-db"
levels = ["warning"]
modules = ["db"]
message_regex = "slow"
chats = [300]
[[rules]]
name = "eu"
attributes = { region = ["eu"], code = [500] }
chats = [400]
template = "{rule}: {message} ({attr.region})"
"#,
    ))
    .expect("start");
    let batch = vec![
        rec(
            Level::ERROR,
            "shop",
            "cart",
            "payment <failed> & \"retried\"",
        )
        .with_attributes(r#"{"user":"ann","region":"eu","code":500,"order_id":42}"#),
        rec(Level::WARNING, "x", "db", "query slow: 30ms"),
        rec(Level::WARNING, "x", "db", "query fast"),
        rec(Level::INFO, "api", "web", "eu <down>")
            .with_attributes(r#"{"region":"eu","code":500}"#),
        rec(Level::INFO, "api", "web", "us down").with_attributes(r#"{"region":"us","code":500}"#),
        rec(Level::INFO, "api", "web", "eu no code").with_attributes(r#"{"region":"eu"}"#),
        rec(Level::DEBUG, "shop", "cart", "nothing"),
    ];
    h.handle_batch(&batch).expect("accepted");
    assert!(
        wait_until(10, || fake.sent().len() >= 4),
        "{:?} {:?}",
        fake.sent(),
        h.logs()
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut sent: Vec<(i64, Option<i64>, String)> = fake
        .sent()
        .into_iter()
        .map(|m| (m.chat_id, m.thread_id, m.text))
        .collect();
    sent.sort();
    let shop = "<b>ERROR</b> shop / cart\npayment &lt;failed&gt; &amp; &quot;retried&quot;\n<i>2023-11-14 22:13:20 UTC</i>\nuser: ann\norder_id: 42";
    assert_eq!(
        sent,
        vec![
            (100, None, shop.to_owned()),
            (200, Some(7), shop.to_owned()),
            (
                300,
                None,
                "<b>WARNING</b> x / db\nquery slow: 30ms\n<i>2023-11-14 22:13:20 UTC</i>"
                    .to_owned()
            ),
            (400, None, "eu: eu &lt;down&gt; (eu)".to_owned()),
        ]
    );
    assert!(
        fake.sent()
            .iter()
            .all(|m| m.parse_mode.as_deref() == Some("HTML"))
    );
    // The counters move when Telegram's answer is read, just after the fake records the call.
    assert!(wait_until(5, || status(&h)["sent"] == 4));
    let s = status(&h);
    assert_eq!(s["sent"], 4);
    assert_eq!(s["alerts"], 3);
    h.shutdown().expect("shutdown");
}

#[test]
fn identical_alerts_in_a_window_become_one_message_with_a_count() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "group_window_ms = 600\ncommands = false\ntemplate = \"{message}\"\n[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("start");
    let batch: Vec<Record> = (1..=5)
        .map(|i| rec(Level::ERROR, "p", "m", &format!("order {i} failed")))
        .chain([rec(Level::ERROR, "p", "m", "disk full")])
        .collect();
    h.handle_batch(&batch).expect("accepted");
    assert!(wait_until(5, || fake.sent().len() >= 2));
    let texts = fake.texts(1);
    assert_eq!(texts, vec!["order 1 failed", "disk full"]);
    h.handle_batch(&[rec(Level::ERROR, "p", "m", "order 77 failed")])
        .expect("accepted");
    assert!(wait_until(5, || fake.sent().len() >= 3));
    let texts = fake.texts(1);
    assert_eq!(texts[2], "order 77 failed\n<i>×5 in the last 600 ms</i>");
    assert_eq!(status(&h)["grouped"], 5);
    // The window after that one closes with nothing new: nothing more is sent.
    std::thread::sleep(Duration::from_millis(1400));
    assert_eq!(fake.sent().len(), 3);
    h.shutdown().expect("shutdown");
}

#[test]
fn per_chat_and_global_rate_limits_space_the_messages() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "group_window_ms = 0\ncommands = false\ntemplate = \"{message}\"\n[[rules]]\nname = \"a\"\nprojects = [\"a\"]\nchats = [1]\n[[rules]]\nname = \"b\"\nprojects = [\"b\"]\nchats = [2]\n",
    )
    .replace("chat_messages_per_sec = 100.0\nchat_burst = 100", "chat_messages_per_sec = 5.0\nchat_burst = 1"))
    .expect("start");
    let batch: Vec<Record> = (0..6)
        .map(|i| rec(Level::ERROR, "a", "m", &format!("a{i}")))
        .collect();
    h.handle_batch(&batch).expect("accepted");
    assert!(wait_until(10, || fake.sent().len() >= 6));
    let sent = fake.sent();
    let span = sent[5].at - sent[0].at;
    assert!(
        span >= Duration::from_millis(900),
        "6 messages at 5/s took {span:?}"
    );
    assert_eq!(fake.texts(1), vec!["a0", "a1", "a2", "a3", "a4", "a5"]);
    h.shutdown().expect("shutdown");

    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "group_window_ms = 0\ncommands = false\ntemplate = \"{message}\"\n[[rules]]\nname = \"a\"\nprojects = [\"a\"]\nchats = [1]\n[[rules]]\nname = \"b\"\nprojects = [\"b\"]\nchats = [2]\n",
    )
    .replace("global_messages_per_sec = 100.0\nglobal_burst = 100", "global_messages_per_sec = 5.0\nglobal_burst = 1"))
    .expect("start");
    let batch: Vec<Record> = (0..3)
        .flat_map(|i| {
            [
                rec(Level::ERROR, "a", "m", &format!("a{i}")),
                rec(Level::ERROR, "b", "m", &format!("b{i}")),
            ]
        })
        .collect();
    h.handle_batch(&batch).expect("accepted");
    assert!(wait_until(10, || fake.sent().len() >= 6));
    let sent = fake.sent();
    let span = sent[5].at - sent[0].at;
    assert!(
        span >= Duration::from_millis(900),
        "6 messages at 5/s over two chats took {span:?}"
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let fake = Fake::start();
    fake.answer_429(1, 1);
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "commands = false\ntemplate = \"{message}\"\n[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("start");
    let started = Instant::now();
    h.handle_batch(&[rec(Level::ERROR, "p", "m", "hello")])
        .expect("accepted");
    assert!(wait_until(10, || fake.sent().len() == 1));
    let sent = fake.sent();
    assert!(
        sent[0].at - started >= Duration::from_millis(950),
        "{:?}",
        sent[0].at - started
    );
    assert_eq!(fake.texts(1), vec!["hello"]);
    assert!(wait_until(5, || status(&h)["sent"] == 1));
    let s = status(&h);
    assert_eq!(
        (s["rate_limited"].as_u64(), s["sent"].as_u64()),
        (Some(1), Some(1))
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn a_10000_character_message_is_split_at_lines_not_cut() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "commands = false\ntemplate = \"<b>{LEVEL}</b>\\n{message}\"\n[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("start");
    let message: String = (0..100)
        .map(|i| format!("{i:02}{}y\n", "x<".repeat(48)))
        .collect();
    assert_eq!(message.chars().count(), 10_000);
    h.handle_batch(&[rec(Level::ERROR, "p", "m", message.trim_end())])
        .expect("accepted");
    assert!(wait_until(10, || fake.sent().len() >= 3));
    std::thread::sleep(Duration::from_millis(200));
    let texts = fake.texts(1);
    assert!(texts.len() >= 3, "{}", texts.len());
    for t in &texts {
        assert!(t.encode_utf16().count() <= 4096, "{}", t.len());
        assert!(!t.contains("&l\n") && !t.ends_with('&'));
    }
    let expected = format!("<b>ERROR</b>\n{}", message.trim_end().replace('<', "&lt;"));
    assert_eq!(texts.concat().replace("\n\n", "\n"), expected);
    h.shutdown().expect("shutdown");
}

#[test]
fn commands_are_answered_only_in_configured_chats() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(
        fake.port,
        "template = \"{message}\"\n[[rules]]\nname = \"pay\"\nchats = [100]\n",
    ))
    .expect("start");
    fake.push_command(999, "/status");
    fake.push_command(100, "/mute pay 10m");
    assert!(wait_until(10, || !fake.texts(100).is_empty()));
    assert_eq!(fake.texts(100)[0], "Rule <b>pay</b> muted for 10m.");
    h.handle_batch(&[rec(Level::ERROR, "p", "m", "muted alert")])
        .expect("accepted");
    fake.push_command(100, "/status@logrelay_bot");
    assert!(wait_until(10, || fake.texts(100).len() >= 2));
    let reply = &fake.texts(100)[1];
    assert!(reply.contains("sent: 1\n"), "{reply}");
    assert!(
        reply.contains("muted: pay (10m left)") || reply.contains("muted: pay (9m"),
        "{reply}"
    );
    let s = status(&h);
    assert_eq!(s["muted"][0]["rule"], "pay");
    assert_eq!(s["muted_alerts"], 1);
    assert_eq!(s["ignored_commands"], 1);
    fake.push_command(100, "/rules");
    fake.push_command(100, "/unmute pay");
    fake.push_command(100, "/mute nosuch 1h");
    assert!(wait_until(10, || fake.texts(100).len() >= 5));
    let texts = fake.texts(100);
    assert!(
        texts[2].starts_with("<b>Rules</b>") && texts[2].contains("<b>pay</b>: to 100 (muted"),
        "{}",
        texts[2]
    );
    assert_eq!(texts[3], "Rule <b>pay</b> unmuted.");
    assert!(
        texts[4].starts_with("No rule <code>nosuch</code>"),
        "{}",
        texts[4]
    );
    h.handle_batch(&[rec(Level::ERROR, "p", "m", "after unmute")])
        .expect("accepted");
    assert!(wait_until(10, || fake.texts(100).len() >= 6));
    assert_eq!(fake.texts(100)[5], "after unmute");
    assert!(fake.texts(999).is_empty());
    h.shutdown().expect("shutdown");
}

#[test]
fn telegram_down_then_back_delivers_everything_and_counts_failures() {
    let port = free_port();
    let h = Harness::start::<Telegram>(&config(
        port,
        "commands = false\ngroup_window_ms = 0\ntemplate = \"{message}\"\n[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("starts while Telegram is unreachable");
    h.healthcheck().expect("healthy while Telegram is down");
    let started = Instant::now();
    let batch: Vec<Record> = (0..3)
        .map(|i| rec(Level::ERROR, "p", "m", &format!("a{i}")))
        .collect();
    h.handle_batch(&batch).expect("accepted");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "handle_batch waited on Telegram"
    );
    assert!(wait_until(10, || status(&h)["failed"].as_u64() >= Some(2)));
    let fake = Fake::start_on(port);
    assert!(wait_until(10, || fake.sent().len() >= 3));
    assert_eq!(fake.texts(1), vec!["a0", "a1", "a2"]);

    fake.fail_with_500(true);
    let failed = status(&h)["failed"].as_u64().unwrap_or(0);
    h.handle_batch(&[rec(Level::ERROR, "p", "m", "during 500")])
        .expect("accepted");
    assert!(wait_until(10, || status(&h)["failed"].as_u64() > Some(failed)));
    fake.fail_with_500(false);
    assert!(wait_until(10, || fake.sent().len() >= 4));
    assert_eq!(fake.texts(1)[3], "during 500");
    assert!(wait_until(5, || {
        let s = status(&h);
        s["sent"] == 4 && s["queued"] == 0
    }));
    let s = status(&h);
    assert_eq!(
        (
            s["sent"].as_u64(),
            s["queued"].as_u64(),
            s["rejected"].as_u64()
        ),
        (Some(4), Some(0), Some(0))
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn a_full_queue_folds_alerts_into_a_summary() {
    let port = free_port();
    let h = Harness::start::<Telegram>(&config(
        port,
        "commands = false\ngroup_window_ms = 0\nqueue_capacity = 2\ntemplate = \"{message}\"\n[[rules]]\nname = \"all\"\nchats = [1]\n",
    ))
    .expect("start");
    let batch: Vec<Record> = (0..5)
        .map(|i| rec(Level::ERROR, "p", "m", &format!("a{i}")))
        .collect();
    h.handle_batch(&batch).expect("accepted");
    assert_eq!(status(&h)["folded"], 3);
    let fake = Fake::start_on(port);
    assert!(wait_until(10, || fake.sent().len() >= 3));
    let texts = fake.texts(1);
    assert_eq!(texts[..2], ["a0", "a1"]);
    assert_eq!(
        texts[2],
        "⚠️ <b>3 alert(s) not sent</b>: the send queue was full (Telegram slow or down).\nall: ×3"
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn bad_config_is_a_config_error_that_names_the_option() {
    let cases = [
        (config(1, "").replace(TOKEN, ""), "LOGRELAY_TELEGRAM_TOKEN"),
        (
            config(1, "").replace(TOKEN, "${LOGRELAY_TELEGRAM_TOKEN}"),
            "set LOGRELAY_TELEGRAM_TOKEN",
        ),
        (
            config(1, "").replace("http://127.0.0.1:1", "ftp://x"),
            "api_url",
        ),
        (config(1, "template = \"{nope}\""), "{nope}"),
        (config(1, "chat_burst = 0"), "chat_burst"),
        (
            config(
                1,
                "[[rules]]\nname = \"a\"\nlevels = [\"loud\"]\nchats = [1]",
            ),
            "rules.a.levels",
        ),
        (
            config(
                1,
                "[[rules]]\nname = \"a\"\nlevels = [\"error\"]\nmin_level = \"error\"\nchats = [1]",
            ),
            "not both",
        ),
        (
            config(
                1,
                "[[rules]]\nname = \"a\"\nmessage_regex = \"(\"\nchats = [1]",
            ),
            "message_regex",
        ),
        (
            config(1, "[[rules]]\nname = \"a\"\nchats = []"),
            "rules.a.chats",
        ),
        (
            config(1, "[[rules]]\nname = \"a\"\nchats = [1]\nchatz = [2]"),
            "chatz",
        ),
    ];
    for (config, needle) in cases {
        let err = Harness::start::<Telegram>(&config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {config}"));
        assert_eq!(err.kind, ErrorKind::CONFIG, "{config}: {err}");
        assert!(err.message.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn unknown_requests_are_refused() {
    let fake = Fake::start();
    let h = Harness::start::<Telegram>(&config(fake.port, "commands = false")).expect("start");
    let err = h.request("query", "{}").expect_err("unknown");
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    h.shutdown().expect("shutdown");
}
