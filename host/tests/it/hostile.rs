//! Hostile input against an in-process host on the real RabbitMQ: malformed, deep, huge, badly
//! typed, badly encoded and out-of-range messages, interleaved with good ones. None may crash or
//! hang the host; each bad one lands in `<queue>.dead` with its reason and its bytes as sent;
//! every good record arrives; the queue ends empty.
//!
//! The corpus is generated here rather than kept in files: most of it is megabytes of one byte.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicPublishOptions, ExchangeDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

use crate::common::broker_shared;
use crate::common::{
    declare, declare_bound, delete, rabbit, read_ids, ready, settings_for, unique, wait_until,
};
use crate::intake::start_host;

/// Bodies up to this size are decoded: 11 MiB, so that the 10 MB bodies are parsed, not refused.
const MAX_BYTES: usize = 11 * 1024 * 1024;

/// How the reason of a dead letter must read.
#[derive(Debug, Clone)]
enum Reason {
    Exact(String),
    StartsWith(&'static str),
}

impl Reason {
    fn check(&self, got: &str) -> bool {
        match self {
            Reason::Exact(s) => got == s,
            Reason::StartsWith(s) => got.starts_with(s),
        }
    }
}

/// A dead letter a case must produce.
#[derive(Debug, Clone)]
struct Dead {
    /// `x-logrelay-element`: `None` when the whole message is bad.
    element: Option<i64>,
    reason: Reason,
    /// The dead letter's body: `None` for the whole message as sent.
    body: Option<Vec<u8>>,
}

/// One hostile message, what must come out of it, and the ids of its good records.
struct Case {
    /// Published with routing key `hostile.<name>`.
    name: String,
    body: Vec<u8>,
    props: BasicProperties,
    dead: Vec<Dead>,
    good: Vec<String>,
}

fn whole(reason: Reason) -> Vec<Dead> {
    vec![Dead {
        element: None,
        reason,
        body: None,
    }]
}

fn exact(s: impl Into<String>) -> Reason {
    Reason::Exact(s.into())
}

fn bad(name: &str, body: impl Into<Vec<u8>>, reason: Reason) -> Case {
    Case {
        name: name.to_owned(),
        body: body.into(),
        props: BasicProperties::default(),
        dead: whole(reason),
        good: Vec::new(),
    }
}

fn good(name: &str, body: impl Into<Vec<u8>>, ids: &[&str]) -> Case {
    Case {
        name: name.to_owned(),
        body: body.into(),
        props: BasicProperties::default(),
        dead: Vec::new(),
        good: ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The kind serde_json names for each wrong value.
const WRONG_VALUES: [(&str, &str); 5] = [
    ("5", "number"),
    ("true", "boolean"),
    ("null", "null"),
    ("{}", "object"),
    ("[]", "array"),
];

/// Every known field under every alias, with every JSON type it must refuse.
fn wrong_types() -> Vec<Case> {
    let mut cases = Vec::new();
    // String fields. A message alias stands alone; the others need a message beside them.
    let strings: [(&[&str], bool); 3] = [
        (&["message", "msg", "text"], true),
        (&["project", "service", "app", "application"], false),
        (
            &["module", "logger", "name", "logger_name", "component"],
            false,
        ),
    ];
    for (aliases, is_message) in strings {
        for alias in aliases {
            for (value, got) in WRONG_VALUES {
                if *alias == "service" && got == "object" {
                    // An object under `service` is ECS's `{"service":{"name":...}}`, searched
                    // for `service.name` and kept as an attribute (docs/SHAPES.md).
                    continue;
                }
                let body = if is_message {
                    format!(r#"{{"{alias}":{value}}}"#)
                } else {
                    format!(r#"{{"message":"m","{alias}":{value}}}"#)
                };
                cases.push(bad(
                    &format!("wrong-{alias}-{got}"),
                    body,
                    exact(format!("field `{alias}` must be a string, got {got}")),
                ));
            }
        }
    }
    for alias in [
        "timestamp",
        "ts",
        "time",
        "@timestamp",
        "datetime",
        "created",
    ] {
        for (value, got) in WRONG_VALUES.iter().skip(1) {
            cases.push(bad(
                &format!("wrong-{alias}-{got}"),
                format!(r#"{{"message":"m","{alias}":{value}}}"#),
                exact(format!(
                    "field `{alias}` must be a string or a number, got {got}"
                )),
            ));
        }
        cases.push(bad(
            &format!("wrong-{alias}-text"),
            format!(r#"{{"message":"m","{alias}":"yesterday"}}"#),
            exact(format!(
                "field `{alias}` is not a valid timestamp: \"yesterday\""
            )),
        ));
    }
    for alias in [
        "level",
        "levelname",
        "severity",
        "lvl",
        "log_level",
        "loglevel",
    ] {
        for (value, got) in WRONG_VALUES.iter().skip(1) {
            cases.push(bad(
                &format!("wrong-{alias}-{got}"),
                format!(r#"{{"message":"m","{alias}":{value}}}"#),
                exact(format!(
                    "field `{alias}` must be a level name or a number, got {got}"
                )),
            ));
        }
        cases.push(bad(
            &format!("wrong-{alias}-name"),
            format!(r#"{{"message":"m","{alias}":"loud"}}"#),
            exact(format!(
                "field `{alias}` has an unknown level name: \"loud\" (known: trace, debug, info, warning, error, critical, their usual spellings and slog offsets like ERROR+4; docs/SHAPES.md)"
            )),
        ));
    }
    for (value, got) in [
        ("1.5", "a number that is not an integer"),
        ("1e400", "a number that is not an integer"),
        ("true", "boolean"),
        ("null", "null"),
        ("{}", "object"),
        ("[]", "array"),
    ] {
        cases.push(bad(
            &format!("wrong-id-{value}"),
            format!(r#"{{"message":"m","id":{value}}}"#),
            exact(format!(
                "field `id` must be a string or an integer, got {got}"
            )),
        ));
    }
    cases.push(bad(
        "wrong-id-empty",
        r#"{"message":"m","id":""}"#,
        exact("field `id` must not be empty"),
    ));
    cases
}

/// A JSON object of exactly `len` bytes with this id (the message is padding).
fn object_of_len(id: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"id":"{id}","message":""#);
    let tail = r#""}"#;
    let pad = len - head.len() - tail.len();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + pad, b'p');
    body.extend_from_slice(tail.as_bytes());
    assert_eq!(body.len(), len);
    body
}

fn corpus() -> Vec<Case> {
    const DEEP: usize = 100_000;
    let open = "[".repeat(DEEP);
    let close = "]".repeat(DEEP);
    let deep_array = format!("{open}{close}");
    let not_json = "message is not valid JSON: ";
    let eof = "message is not valid JSON: EOF while parsing";
    let mut cases = vec![
        // Truncated JSON.
        bad(
            "truncated-string",
            r#"{"message":"trunc"#,
            Reason::StartsWith("message is not valid JSON: EOF while parsing a string"),
        ),
        bad(
            "truncated-array",
            r#"[{"message":"a"},"#,
            Reason::StartsWith(eof),
        ),
        bad(
            "truncated-nested",
            r#"{"message":"a","ctx":{"k":[1,2"#,
            Reason::StartsWith(eof),
        ),
        bad(
            "truncated-escape",
            r#"{"message":"a\u12"#,
            Reason::StartsWith(not_json),
        ),
        bad(
            "truncated-after-key",
            r#"{"message""#,
            Reason::StartsWith(eof),
        ),
        // 100,000-deep nesting, balanced and not, as the body, an element, a field.
        Case {
            dead: vec![Dead {
                element: Some(0),
                reason: exact("element is not a JSON object, got array"),
                body: Some(format!("{}{}", &open[1..], &close[1..]).into_bytes()),
            }],
            ..bad("deep-array", deep_array.clone(), exact(""))
        },
        bad(
            "deep-object",
            format!("{}1{}", r#"{"a":"#.repeat(DEEP), "}".repeat(DEEP)),
            exact(
                "no message field (looked for message, msg, text, @m, event, fields.message, short_message, MESSAGE, log, @mt)",
            ),
        ),
        bad(
            "deep-unbalanced-array",
            open.clone(),
            Reason::StartsWith(eof),
        ),
        bad(
            "deep-unbalanced-object",
            r#"{"a":"#.repeat(DEEP),
            Reason::StartsWith(not_json),
        ),
        bad(
            "deep-in-message",
            format!(r#"{{"message":{deep_array}}}"#),
            exact("field `message` must be a string, got array"),
        ),
        good(
            "deep-in-attribute",
            format!(r#"{{"id":"deep-attr","message":"m","deep":{deep_array}}}"#),
            &["deep-attr"],
        ),
        // Huge strings and bodies around the limit.
        good(
            "huge-5mb-message",
            format!(
                r#"{{"id":"huge-5mb","message":"{}"}}"#,
                "h".repeat(5_000_000)
            ),
            &["huge-5mb"],
        ),
        good(
            "at-the-limit",
            object_of_len("at-limit", MAX_BYTES),
            &["at-limit"],
        ),
        bad(
            "over-the-limit",
            object_of_len("over-limit", MAX_BYTES + 1),
            exact(format!(
                "message is {} bytes, over the limit of {MAX_BYTES} (LOGRELAY_MAX_MESSAGE_BYTES)",
                MAX_BYTES + 1
            )),
        ),
        bad(
            "10mb-unterminated-string",
            format!(r#"{{"message":"{}"#, "u".repeat(10_000_000)),
            Reason::StartsWith("message is not valid JSON: EOF while parsing a string"),
        ),
        bad(
            "10mb-open-brackets",
            "[".repeat(10_000_000),
            Reason::StartsWith(not_json),
        ),
        bad(
            "10mb-whitespace",
            " ".repeat(10_000_000),
            exact("empty message"),
        ),
        bad(
            "12mb-over-the-limit",
            format!(r#"{{"message":"{}"}}"#, "o".repeat(12_000_000)),
            exact(format!(
                "message is 12000014 bytes, over the limit of {MAX_BYTES} (LOGRELAY_MAX_MESSAGE_BYTES)"
            )),
        ),
        // Invalid UTF-8 (the offset of the first bad byte is named).
        bad(
            "utf8-ff",
            b"{\"message\":\"ab\xff\"}".to_vec(),
            exact("message is not valid UTF-8 at byte 14"),
        ),
        bad(
            "utf8-overlong",
            b"{\"message\":\"\xc0\xaf\"}".to_vec(),
            exact("message is not valid UTF-8 at byte 12"),
        ),
        bad(
            "utf8-surrogate",
            b"{\"message\":\"\xed\xa0\x80\"}".to_vec(),
            exact("message is not valid UTF-8 at byte 12"),
        ),
        bad(
            "utf8-cut",
            b"{\"message\":\"caf\xc3".to_vec(),
            exact("message is not valid UTF-8 at byte 15"),
        ),
        bad(
            "utf8-latin1",
            b"{\"message\":\"caf\xe9\"}".to_vec(),
            exact("message is not valid UTF-8 at byte 15"),
        ),
        bad(
            "utf16-le",
            "{\"message\":\"x\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
            Reason::StartsWith(not_json),
        ),
        // A JSON escape that is not a character.
        bad(
            "lone-surrogate-escape",
            r#"{"message":"\ud800"}"#,
            Reason::StartsWith("field `message` "),
        ),
        // NUL bytes: raw ones are not JSON; escaped ones are text.
        bad(
            "nul-raw-in-string",
            "{\"message\":\"a\0b\"}",
            exact(
                "message is not valid JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 13",
            ),
        ),
        bad(
            "nul-alone",
            "\0",
            exact(
                "message is not valid JSON: expected value at line 1 column 1 (nor logfmt; set LOGRELAY_TEXT_INTAKE=lines to store plain text lines)",
            ),
        ),
        bad(
            "nul-raw-in-key",
            "{\"k\0\":1,\"message\":\"m\"}",
            Reason::StartsWith(not_json),
        ),
        good(
            "nul-escaped",
            r#"{"id":"nul-escaped","message":"a\u0000b","k\u0000":"\u0000"}"#,
            &["nul-escaped"],
        ),
        // Numbers out of range.
        bad(
            "ts-1e30",
            r#"{"message":"m","timestamp":1e30}"#,
            exact("field `timestamp` is out of range for a timestamp: 1e30"),
        ),
        bad(
            "ts-minus-1e30",
            r#"{"message":"m","timestamp":-1e30}"#,
            exact("field `timestamp` is out of range for a timestamp: -1e30"),
        ),
        bad(
            "ts-1e30-text",
            r#"{"message":"m","ts":"1e30"}"#,
            exact("field `ts` is out of range for a timestamp: \"1e30\""),
        ),
        bad(
            "ts-1e999999",
            r#"{"message":"m","ts":1e999999}"#,
            exact("field `ts` is out of range for a timestamp: 1e999999"),
        ),
        bad(
            "ts-seconds-past-2262",
            r#"{"message":"m","ts":9223372037}"#,
            exact("field `ts` is out of range for a timestamp: 9223372037"),
        ),
        bad(
            "ts-year-9999",
            r#"{"message":"m","time":"9999-12-31T23:59:59Z"}"#,
            exact("field `time` is out of range for a timestamp: \"9999-12-31T23:59:59Z\""),
        ),
        bad(
            "ts-year-0",
            r#"{"message":"m","time":"0000-01-01T00:00:00Z"}"#,
            exact("field `time` is out of range for a timestamp: \"0000-01-01T00:00:00Z\""),
        ),
        bad(
            "ts-1000-digits",
            format!(r#"{{"message":"m","ts":{}}}"#, "9".repeat(1000)),
            Reason::StartsWith("field `ts` is out of range for a timestamp: 9999"),
        ),
        // Levels are on the pino scale: below 10 is trace, above 60 critical (documented).
        good(
            "level-minus-5",
            r#"{"id":"level-minus-5","message":"m","level":-5}"#,
            &["level-minus-5"],
        ),
        good(
            "level-1e300",
            r#"{"id":"level-1e300","message":"m","level":1e300}"#,
            &["level-1e300"],
        ),
        // Empty and degenerate bodies.
        bad("empty", "", exact("empty message")),
        bad("blank", " \r\n\t\n", exact("empty message")),
        bad("empty-array", "[]", exact("empty message")),
        bad(
            "null",
            "null",
            exact("message is not a JSON object or array, got null"),
        ),
        bad(
            "number",
            "42",
            exact("message is not a JSON object or array, got number"),
        ),
        bad(
            "string",
            r#""log""#,
            exact("message is not a JSON object or array, got string"),
        ),
        Case {
            dead: vec![Dead {
                element: Some(0),
                reason: exact("element is not a JSON object, got null"),
                body: Some(b"null".to_vec()),
            }],
            ..bad("array-of-null", "[null]", exact(""))
        },
        bad(
            "bom",
            "\u{feff}{\"message\":\"bom\"}",
            exact(
                "message is not valid JSON: expected value at line 1 column 1 (nor logfmt; set LOGRELAY_TEXT_INTAKE=lines to store plain text lines)",
            ),
        ),
        bad("not-json", "GET / HTTP/1.1", Reason::StartsWith(not_json)),
        // Several errors at once, and a duplicate key (the last one wins).
        bad(
            "every-error",
            r#"{"level":true,"ts":"yesterday","id":{}}"#,
            exact(
                "no message field (looked for message, msg, text, @m, event, fields.message, short_message, MESSAGE, log, @mt); field `ts` is not a valid timestamp: \"yesterday\"; field `level` must be a level name or a number, got boolean; field `id` must be a string or an integer, got object",
            ),
        ),
        bad(
            "duplicate-key",
            r#"{"message":"a","message":5}"#,
            exact("field `message` must be a string, got number"),
        ),
        // Good and bad elements in one message: the good ones flow on.
        Case {
            dead: vec![
                Dead {
                    element: Some(1),
                    reason: exact("element is not a JSON object, got number"),
                    body: Some(b"7".to_vec()),
                },
                Dead {
                    element: Some(2),
                    reason: exact("field `msg` must be a string, got null"),
                    body: Some(br#"{"msg":null}"#.to_vec()),
                },
            ],
            ..good(
                "mixed-array",
                r#"[{"id":"mix-a0","message":"ok"},7,{"msg":null},{"id":"mix-a3","message":"ok"}]"#,
                &["mix-a0", "mix-a3"],
            )
        },
        Case {
            dead: vec![
                Dead {
                    element: Some(1),
                    reason: Reason::StartsWith("line is not valid JSON: "),
                    body: Some(b"not json".to_vec()),
                },
                Dead {
                    element: Some(2),
                    reason: exact("field `message` must be a string, got number"),
                    body: Some(br#"{"message":5}"#.to_vec()),
                },
            ],
            ..good(
                "mixed-lines",
                "{\"id\":\"mix-l0\",\"message\":\"ok\"}\nnot json\n  {\"message\":5}  \n{\"id\":\"mix-l3\",\"message\":\"ok\"}\n",
                &["mix-l0", "mix-l3"],
            )
        },
        // Odd AMQP properties on good messages.
        Case {
            props: BasicProperties::default().with_timestamp(u64::MAX),
            ..good(
                "timestamp-property-max",
                r#"{"id":"ts-prop-max","message":"m"}"#,
                &["ts-prop-max"],
            )
        },
        Case {
            props: BasicProperties::default().with_message_id("mid-prop".into()),
            ..good("message-id-property", r#"{"message":"m"}"#, &["mid-prop:0"])
        },
    ];
    cases.extend(wrong_types());
    cases
}

/// Publishes to `exchange` with `key`, returning the confirm to await.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::PublisherConfirm {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props.with_delivery_mode(2),
    )
    .await
    .expect("publish")
}

/// One dead letter as read back.
#[derive(Debug)]
struct Got {
    reason: String,
    body: Vec<u8>,
}

fn long_string(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// Takes every dead letter from `queue` until `n` arrived or `limit` passed, keyed by
/// (source routing key, element).
async fn take_dead_letters(
    ch: &Channel,
    queue: &str,
    n: usize,
    limit: Duration,
) -> BTreeMap<(String, Option<i64>), Vec<Got>> {
    let mut got: BTreeMap<(String, Option<i64>), Vec<Got>> = BTreeMap::new();
    let mut count = 0;
    let start = Instant::now();
    while count < n && start.elapsed() < limit {
        let message = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get a dead letter");
        let Some(message) = message else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let key = long_string(&headers, "x-logrelay-source-routing-key").unwrap_or_default();
        let element = match headers.inner().get("x-logrelay-element") {
            Some(AMQPValue::LongLongInt(i)) => Some(*i),
            None => None,
            other => panic!("x-logrelay-element of {key} is {other:?}"),
        };
        let reason = long_string(&headers, "x-logrelay-reason")
            .unwrap_or_else(|| panic!("the dead letter of {key} has no x-logrelay-reason"));
        got.entry((key, element)).or_default().push(Got {
            reason,
            body: message.delivery.data,
        });
        count += 1;
    }
    got
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    format!("{text:?} ({} bytes)", body.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_is_dead_lettered_with_its_reason_and_never_stops_the_host() {
    let _broker = broker_shared().await;
    let queue = unique("hostile");
    let exchange = format!("{queue}-ex");
    let dead_queue = format!("{queue}.dead");
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = dir.path().join("ids.txt");
    let (_conn, ch) = rabbit().await;
    declare_bound(&ch, &queue, &exchange).await;
    declare(&ch, &dead_queue).await;

    let max = MAX_BYTES.to_string();
    let host = start_host(
        settings_for(
            &queue,
            &[
                ("LOGRELAY_MAX_MESSAGE_BYTES", max.as_str()),
                ("LOGRELAY_BATCH_MAX_RECORDS", "50"),
            ],
        ),
        &format!(
            "[plugins.sink]\ntype = \"fixture\"\nconfig = {{ record_to = {:?} }}\n",
            ids.display().to_string()
        ),
    );

    let cases = corpus();
    let names: HashSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    let mut want_good: HashSet<String> = HashSet::new();
    let mut want_dead = 0;
    let mut confirms = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        confirms.push(
            publish(
                &ch,
                &exchange,
                &format!("hostile.{}", case.name),
                &case.body,
                case.props.clone(),
            )
            .await,
        );
        // A good message after every hostile one.
        let id = format!("good-{i}");
        let body = format!(
            r#"{{"id":"{id}","message":"interleaved after {}"}}"#,
            case.name
        );
        confirms.push(
            publish(
                &ch,
                &exchange,
                &format!("good.{i}"),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await,
        );
        want_good.insert(id);
        want_good.extend(case.good.iter().cloned());
        want_dead += case.dead.len();
    }
    for confirm in confirms {
        assert!(
            confirm.await.expect("confirm").is_ack(),
            "the broker refused a test message"
        );
    }

    // Every good record arrives, within bounded time.
    let n = want_good.len();
    let ids_path = ids.clone();
    let arrived = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(120), || {
            read_ids(&ids_path)
                .into_iter()
                .collect::<HashSet<_>>()
                .len()
                >= n
        });
        read_ids(&ids_path)
    })
    .await
    .expect("wait");
    let arrived: HashSet<String> = arrived.into_iter().collect();
    let missing: Vec<&String> = want_good.difference(&arrived).collect();
    let unexpected: Vec<&String> = arrived.difference(&want_good).collect();
    assert!(
        missing.is_empty(),
        "{} good record(s) never arrived: {missing:?}",
        missing.len()
    );
    assert!(
        unexpected.is_empty(),
        "records that should have been dead-lettered arrived: {unexpected:?}"
    );

    // Every hostile message (or element) is in the dead-letter queue with its reason and bytes.
    let dead = take_dead_letters(&ch, &dead_queue, want_dead, Duration::from_secs(120)).await;
    let mut problems = Vec::new();
    for case in &cases {
        let key = format!("hostile.{}", case.name);
        for d in &case.dead {
            let Some(found) = dead.get(&(key.clone(), d.element)) else {
                problems.push(format!("{key} element {:?}: no dead letter", d.element));
                continue;
            };
            if found.len() != 1 {
                problems.push(format!(
                    "{key} element {:?}: {} dead letters",
                    d.element,
                    found.len()
                ));
            }
            let got = &found[0];
            if !d.reason.check(&got.reason) {
                problems.push(format!(
                    "{key} element {:?}: reason {:?}, expected {:?}",
                    d.element, got.reason, d.reason
                ));
            }
            let body = d.body.as_deref().unwrap_or(&case.body);
            if got.body != body {
                problems.push(format!(
                    "{key} element {:?}: body {}, expected {}",
                    d.element,
                    preview(&got.body),
                    preview(body)
                ));
            }
        }
    }
    let expected_keys: HashSet<(String, Option<i64>)> = cases
        .iter()
        .flat_map(|c| {
            c.dead
                .iter()
                .map(|d| (format!("hostile.{}", c.name), d.element))
        })
        .collect();
    for ((key, element), got) in &dead {
        if !expected_keys.contains(&(key.clone(), *element)) {
            problems.push(format!(
                "unexpected dead letter from {key:?} element {element:?}: {:?}",
                got.iter().map(|g| &g.reason).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );

    // Nothing else was dead-lettered, no input cost the connection, and nothing is left over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ready(&ch, &dead_queue).await, 0, "extra dead letters");
    assert_eq!(
        host.stats.connections.load(Ordering::Relaxed),
        1,
        "hostile input made the host reconnect"
    );
    assert_eq!(
        host.stats.dead_lettered.load(Ordering::Relaxed),
        want_dead as u64
    );
    host.stop().await;
    assert_eq!(
        ready(&ch, &queue).await,
        0,
        "every message was acknowledged"
    );
    delete(&ch, &queue).await;
    let _ = ch
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}

/// `n` letters that do not compress (a repeated letter would fit an index entry compressed).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Records the decoder accepts and PostgreSQL may refuse: the inputs that once crashed the
/// host (a panic building the dead letter, exit 101, forever on restart).
fn store_cases() -> Vec<(&'static str, String)> {
    let nest = |depth: usize, marker: &str| {
        format!(
            r#"{{"msg":"{marker}","deep":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    vec![
        (
            "surrogate",
            r#"{"msg":"surrogate","k":"\ud800"}"#.to_owned(),
        ),
        (
            "huge-number",
            r#"{"msg":"huge-number","big":1e999}"#.to_owned(),
        ),
        ("deep-200", nest(200, "deep-200")),
        ("deep-100k", nest(100_000, "deep-100k")),
        ("nul-key", r#"{"msg":"nul-key","a\u0000b":1}"#.to_owned()),
        (
            "long-project",
            format!(r#"{{"msg":"long-project","project":"{}"}}"#, noise(3000)),
        ),
        (
            "long-module",
            format!(r#"{{"msg":"long-module","module":"{}"}}"#, noise(3000)),
        ),
        ("nul-message", r#"{"msg":"nul-message\u0000"}"#.to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn store_refusals_never_stop_the_host_and_each_dead_letter_has_its_own_reason() {
    let _broker = broker_shared().await;
    let db = crate::common::TestDb::new();
    let queue = unique("hostile-store");
    let dead_queue = format!("{queue}.dead");
    let (_conn, ch) = rabbit().await;
    declare(&ch, &queue).await;
    declare(&ch, &dead_queue).await;
    let host = start_host(
        settings_for(&queue, &[("LOGRELAY_BATCH_MAX_RECORDS", "50")]),
        &format!(
            "[plugins.store]\ntype = \"timescale\"\nconfig = {{ url = {:?} }}\n",
            db.url()
        ),
    );
    // Every case between good records without id or time (Python-logging shape), all in a
    // few batches, so the refusals share batches with each other and with good records.
    let cases = store_cases();
    let mut confirms = Vec::new();
    let mut good = 0;
    for (_, body) in &cases {
        for _ in 0..3 {
            let b = format!(r#"{{"levelname":"INFO","message":"good {good}"}}"#);
            good += 1;
            confirms.push(publish(&ch, "", &queue, b.as_bytes(), BasicProperties::default()).await);
        }
        confirms.push(publish(&ch, "", &queue, body.as_bytes(), BasicProperties::default()).await);
    }
    for c in confirms {
        assert!(c.await.expect("confirm").is_ack());
    }
    let count = |sql: String| db.query(&sql);
    let good_rows =
        "SELECT count(*), count(DISTINCT message) FROM logs WHERE message LIKE 'good %'";
    let want = format!("{good}|{good}");
    assert!(
        wait_until(Duration::from_secs(60), || count(good_rows.into()) == want),
        "good records: {} of {good}",
        count(good_rows.into())
    );
    let mut stored = HashSet::new();
    for (name, _) in &cases {
        let n = count(format!(
            "SELECT count(*) FROM logs WHERE message LIKE '{name}%'"
        ));
        assert!(n == "0" || n == "1", "{name} stored {n} times");
        if n == "1" {
            stored.insert(*name);
        }
    }
    let dead = take_dead_letters(
        &ch,
        &dead_queue,
        cases.len() - stored.len(),
        Duration::from_secs(30),
    )
    .await;
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    for got in dead.into_values().flatten() {
        let record: serde_json::Value =
            serde_json::from_slice(&got.body).expect("a dead letter of the store is a JSON record");
        let message = record["message"].as_str().expect("message").to_owned();
        let (name, _) = cases
            .iter()
            .find(|(name, _)| message.starts_with(name))
            .unwrap_or_else(|| panic!("unexpected dead letter {message:?}"));
        assert!(
            !stored.contains(name),
            "{name} both stored and dead-lettered"
        );
        assert!(
            got.reason.starts_with("refused by `store`: "),
            "{}",
            got.reason
        );
        assert!(!got.reason.contains('\n'), "{}", got.reason);
        assert!(
            reasons.insert(name.to_string(), got.reason).is_none(),
            "{name} dead-lettered twice"
        );
    }
    assert_eq!(
        reasons.len() + stored.len(),
        cases.len(),
        "stored {stored:?}, dead {reasons:?}"
    );
    // PostgreSQL cannot hold these: each is refused with what is wrong with it.
    for name in [
        "surrogate",
        "nul-key",
        "long-project",
        "long-module",
        "nul-message",
    ] {
        assert!(reasons.contains_key(name), "{name} was stored: {stored:?}");
    }
    assert!(reasons["nul-message"].contains("`message`"), "{reasons:?}");
    assert!(reasons["long-project"].contains("project"), "{reasons:?}");
    assert!(reasons["long-module"].contains("module"), "{reasons:?}");
    assert!(!reasons["surrogate"].contains("NUL"), "{reasons:?}");
    // Still running: one more record goes through.
    publish(
        &ch,
        "",
        &queue,
        br#"{"message":"after"}"#,
        BasicProperties::default(),
    )
    .await
    .await
    .expect("confirm");
    assert!(
        wait_until(Duration::from_secs(20), || count(
            "SELECT count(*) FROM logs WHERE message = 'after'".into()
        ) == "1"),
        "the host stopped taking records"
    );
    assert_eq!(
        host.stats.dead_lettered.load(Ordering::Relaxed) as usize,
        reasons.len()
    );
    host.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0);
    delete(&ch, &queue).await;
}
