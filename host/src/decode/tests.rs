//! Helpers shared by the tests of the decode module, and the tests of [`decode`] as a whole:
//! no input makes it crash, and every element is accounted for.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use logrelay_plugin_api::{Level, Record};

use super::*;

/// The reason of an object without a message, with the built-in names.
pub(super) const NO_MESSAGE: &str = "no message field (looked for message, msg, text, @m, event, fields.message, short_message, MESSAGE, log, @mt)";

pub(super) const RECEIVED: i64 = 1_700_000_000_123_456_789;
pub(super) const AMQP: i64 = 1_600_000_000_000_000_000;

pub(super) fn ctx() -> DecodeContext<'static> {
    DecodeContext {
        routing_key: "logs",
        queue: "logs",
        amqp_timestamp_ns: None,
        message_id: Some("m1"),
        fingerprint: Fingerprint(7),
        redelivered: false,
        received_ns: RECEIVED,
        default_project: "default-project",
        default_module: "default-module",
        max_bytes: 1024 * 1024,
        options: DecodeOptions::builtin(),
    }
}

pub(super) fn decode_str(body: &str) -> Decoded {
    decode(body.as_bytes(), &ctx())
}

/// The one record of a body that must decode to exactly one.
#[track_caller]
pub(super) fn one(body: &str) -> Record {
    one_with(body, &ctx())
}

#[track_caller]
pub(super) fn one_with(body: &str, ctx: &DecodeContext<'_>) -> Record {
    let d = decode(body.as_bytes(), ctx);
    assert_eq!(d.bad, vec![], "body {body:?}");
    assert_eq!(d.records.len(), 1, "body {body:?}");
    d.records.into_iter().next().unwrap()
}

/// The reason a single-object body is bad as a whole.
#[track_caller]
pub(super) fn whole_bad(body: &str) -> String {
    whole_bad_bytes(body.as_bytes(), &ctx())
}

#[track_caller]
pub(super) fn whole_bad_bytes(body: &[u8], ctx: &DecodeContext<'_>) -> String {
    let d = decode(body, ctx);
    assert!(d.records.is_empty(), "body {body:?}: {d:?}");
    assert!(d.indices.is_empty());
    assert_eq!(d.bad.len(), 1, "body {body:?}: {d:?}");
    assert_eq!(d.bad[0].index, None);
    assert_eq!(d.bad[0].span, 0..body.len());
    d.bad.into_iter().next().unwrap().reason
}

pub(super) fn attrs(r: &Record) -> &str {
    r.attributes.as_str()
}

pub(super) fn ts(value: &str) -> Result<i64, String> {
    let d = decode_str(&format!(r#"{{"message":"m","ts":{value}}}"#));
    match d.records.first() {
        Some(r) => Ok(r.timestamp_ns),
        None => Err(d.bad[0].reason.clone()),
    }
}

pub(super) fn level(value: &str) -> Result<Level, String> {
    let d = decode_str(&format!(r#"{{"message":"m","level":{value}}}"#));
    match d.records.first() {
        Some(r) => Ok(r.level),
        None => Err(d.bad[0].reason.clone()),
    }
}

#[test]
fn deep_nesting_never_crashes() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // As the body: one bad element.
    let d = decode_str(&deep);
    assert!(d.records.is_empty());
    assert_eq!(d.bad.len(), 1);
    assert_eq!(d.bad[0].reason, "element is not a JSON object, got array");
    // Inside an attribute: kept as sent.
    let body = format!(r#"{{"message":"m","deep":{deep}}}"#);
    assert_eq!(attrs(&one(&body)), format!(r#"{{"deep":{deep}}}"#));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let body = format!(r#"{{"message":"m","deep":{objects}}}"#);
    assert_eq!(attrs(&one(&body)), format!(r#"{{"deep":{objects}}}"#));
    // As a known field: a wrong type.
    let body = format!(r#"{{"message":{deep}}}"#);
    assert_eq!(
        whole_bad(&body),
        "field `message` must be a string, got array"
    );
    // As JSON lines.
    let body = format!("{{\"message\":\"a\"}}\n{deep}\n{objects}");
    let d = decode_str(&body);
    assert_eq!(d.records.len(), 1);
    assert_eq!(d.bad.len(), 2);
    // Unbalanced: a syntax error.
    let reason = whole_bad(&"[".repeat(10_000));
    assert!(
        reason.starts_with("message is not valid JSON: "),
        "{reason}"
    );
    let reason = whole_bad(&r#"{"a":"#.repeat(10_000));
    assert!(
        reason.starts_with("message is not valid JSON: "),
        "{reason}"
    );
}

#[test]
fn nul_bytes() {
    assert_eq!(
        whole_bad("{\"message\":\"a\0b\"}"),
        "message is not valid JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 13"
    );
    assert_eq!(
        whole_bad("\0"),
        "message is not valid JSON: expected value at line 1 column 1 \
         (nor logfmt; set LOGRELAY_TEXT_INTAKE=lines to store plain text lines)"
    );
    let r = one(r#"{"message":"a\u0000b","k\u0000":"\u0000"}"#);
    assert_eq!(r.message.as_str(), "a\0b");
    assert_eq!(attrs(&r), r#"{"k\u0000":"\u0000"}"#);
}

#[test]
fn huge_numbers() {
    let r = one(r#"{"message":"m","big":1e99999,"long":123456789012345678901234567890123456789}"#);
    assert_eq!(
        attrs(&r),
        r#"{"big":1e99999,"long":123456789012345678901234567890123456789}"#
    );
    assert_eq!(level("1e99999"), Ok(Level::CRITICAL));
    assert!(ts("1e99999").is_err());
    assert!(ts(&"9".repeat(1000)).is_err());
    assert_eq!(ts(&format!("0.{}1", "0".repeat(1000))), Ok(0));
}

#[test]
fn truncated_json_never_panics() {
    let body = "[{\"id\":\"x\",\"ts\":\"2024-05-01T12:00:00.5+02:00\",\"level\":30,\"msg\":\"caf\\u00e9\",\"ctx\":{\"a\":[1,2.5e3,null,true]}},\
                {\"message\":\"b\"}]\n{\"message\":\"c\"}\n";
    for end in 0..=body.len() {
        let Some(prefix) = body.get(..end) else {
            continue;
        };
        let d = decode_str(prefix);
        assert!(!d.bad.is_empty() || !d.records.is_empty(), "{prefix:?}");
        for bad in &d.bad {
            assert!(
                prefix.get(bad.span.clone()).is_some(),
                "{prefix:?}: {bad:?}"
            );
        }
    }
    for end in 0..=body.len() {
        let _ = decode(&body.as_bytes()[..end], &ctx());
    }
}

#[test]
fn random_bytes_never_panic() {
    let alphabet = b"{}[]\":,\\ \n\r\t0123456789.eE+-abcnulltrue\x00\xff\xc3";
    let mut state: u64 = 0x1234_5678;
    for _ in 0..20_000 {
        let len = (next(&mut state) % 64) as usize;
        let body: Vec<u8> = (0..len)
            .map(|_| alphabet[(next(&mut state) % alphabet.len() as u64) as usize])
            .collect();
        let d = decode(&body, &ctx());
        assert_eq!(d.records.len(), d.indices.len());
        for bad in &d.bad {
            assert!(bad.span.end <= body.len());
        }
    }
    fn next(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }
}

#[test]
fn every_element_is_accounted_for() {
    let body = r#"[{"message":"a"},1,{"x":1},{"message":"b","level":"nope"},{"message":"c"}]"#;
    let d = decode_str(body);
    assert_eq!(d.records.len() + d.bad.len(), 5);
    let mut all: Vec<usize> = d.indices.clone();
    all.extend(d.bad.iter().filter_map(|b| b.index));
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4]);
}

#[test]
fn more_edges() {
    // Seconds up to what i64 nanoseconds hold; 1e11 and up is milliseconds.
    assert_eq!(ts("9223372036"), Ok(9_223_372_036_000_000_000));
    assert_eq!(
        ts("9223372037"),
        Err("field `ts` is out of range for a timestamp: 9223372037".into())
    );
    assert_eq!(ts("1e11"), Ok(100_000_000_000_000_000));
    // Level names with whitespace; a numeric routing-key segment is not a level.
    assert_eq!(level("\" error \""), Ok(Level::ERROR));
    let mut c = ctx();
    c.routing_key = "shop.pay.50";
    assert_eq!(one_with(r#"{"message":"m"}"#, &c).level, Level::INFO);
    // A pretty-printed array.
    let d = decode_str("[\n  {\"message\": \"a\"},\n  {\"message\": \"b\"}\n]\n");
    assert_eq!(d.records.len(), 2);
    assert_eq!(d.indices, [0, 1]);
    // Two values on one line of JSON lines: that line is bad.
    let body = "{\"message\":\"a\"}\n{\"message\":\"b\"} {\"message\":\"c\"}\n{\"message\":\"d\"}";
    let d = decode_str(body);
    assert_eq!(d.indices, [0, 2]);
    assert_eq!(
        d.bad[0].reason,
        "line is not valid JSON: trailing characters at line 2 column 17"
    );
    // Bad lines at both the first and the second line of a body that starts as JSON: the whole
    // body is bad.
    assert_eq!(
        whole_bad("{\"message\":\n{\"message\":\n{\"message\":\"a\"}"),
        "message is not valid JSON: EOF while parsing an object at line 3 column 15"
    );
    // A body that does not start as JSON is read line by line.
    let d = decode_str("nope\nnope\n{\"message\":\"a\"}");
    assert_eq!(d.indices, [2]);
    assert_eq!(d.bad.len(), 2);
}

/// One file of the conformance corpus (`tests/fixtures/shapes/*.toml`, see its README).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShapeFixture {
    pub body: String,
    #[serde(default = "corpus_routing_key")]
    pub routing_key: String,
    #[serde(default)]
    pub text_intake: Option<String>,
    pub expect: Vec<ShapeExpect>,
}

/// A record the corpus expects.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShapeExpect {
    pub level: String,
    pub project: String,
    pub module: String,
    pub message: String,
    pub timestamp_ns: Option<i64>,
    pub attributes: Vec<String>,
}

fn corpus_routing_key() -> String {
    "corpus.shapes".to_owned()
}

/// Every file of the corpus, by name.
pub(crate) fn read_shape_corpus() -> Vec<(String, ShapeFixture)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes");
    let mut out: Vec<(String, ShapeFixture)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let fixture: ShapeFixture =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fixture)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn shape_corpus() {
    let corpus = read_shape_corpus();
    assert!(corpus.len() >= 19, "{} fixtures", corpus.len());
    let lines = DecodeOptions::new(&[], TextIntake::Lines);
    for (name, fixture) in &corpus {
        let mut c = ctx();
        c.routing_key = &fixture.routing_key;
        c.message_id = None;
        if fixture.text_intake.as_deref() == Some("lines") {
            c.options = &lines;
        }
        let d = decode(fixture.body.as_bytes(), &c);
        assert_eq!(d.bad, vec![], "{name}");
        assert_eq!(d.records.len(), fixture.expect.len(), "{name}");
        for (i, (r, e)) in d.records.iter().zip(&fixture.expect).enumerate() {
            let at = format!("{name} record {i}");
            assert_eq!(r.level, Level::from_name(&e.level).unwrap(), "{at}");
            assert_eq!(r.project.as_str(), e.project, "{at}");
            assert_eq!(r.module.as_str(), e.module, "{at}");
            assert_eq!(r.message.as_str(), e.message, "{at}");
            match e.timestamp_ns {
                Some(ns) => assert_eq!(r.timestamp_ns, ns, "{at}"),
                None => assert_eq!(r.timestamp_ns, RECEIVED, "{at}"),
            }
            let attributes: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(attrs(r)).unwrap_or_else(|e| panic!("{at}: {e}"));
            for key in &e.attributes {
                assert!(
                    attributes.contains_key(key),
                    "{at}: no {key} in {}",
                    attrs(r)
                );
            }
        }
    }
}
