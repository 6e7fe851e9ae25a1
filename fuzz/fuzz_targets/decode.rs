//! Fuzzes `logrelay::decode::decode` with arbitrary bodies and routing keys.
//!
//! Input layout: byte 0 holds flags (bit 0: an AMQP `message_id` is set; bit 1: an AMQP
//! `timestamp` is set; bit 2: a small `max_bytes` of 64 + byte 1), byte 1 the routing key's
//! length (modulo 24), then the routing key (lossy UTF-8), then the body.
//!
//! Invariants checked on every input, besides "does not panic":
//! - one element index per record; element indices increase and a record's element is never
//!   also a bad element;
//! - a bad whole message (`index: None`) is the only outcome, spanning the whole body;
//! - every bad element's span lies within the body (on character boundaries when the body is
//!   UTF-8), and its reason is non-empty, lowercase, without a trailing full stop;
//! - a body over `max_bytes` is refused as a whole, naming the limit;
//! - every record's id is non-empty and its attributes text is one JSON object without
//!   repeated keys;
//! - with a `message_id`, decoding the same message again gives the same records (the same
//!   ids, so a store drops a redelivery).

#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use logrelay::decode::{DecodeContext, Decoded, decode};
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

static LINES: std::sync::LazyLock<logrelay::decode::DecodeOptions> =
    std::sync::LazyLock::new(|| {
        logrelay::decode::DecodeOptions::new(&[], logrelay::decode::TextIntake::Lines)
    });

fuzz_target!(|data: &[u8]| {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let (key_len, rest) = rest
        .split_first()
        .map_or((0, rest), |(n, r)| (usize::from(*n), r));
    let key_len = (key_len % 24).min(rest.len());
    let (key, body) = rest.split_at(key_len);
    let routing_key = String::from_utf8_lossy(key);
    let max_bytes = if flags & 4 != 0 {
        64 + usize::from(data.get(1).copied().unwrap_or(0))
    } else {
        1024 * 1024
    };
    let ctx = DecodeContext {
        routing_key: &routing_key,
        queue: "logs",
        amqp_timestamp_ns: (flags & 2 != 0).then_some(1_600_000_000_000_000_000),
        message_id: (flags & 1 != 0).then_some("fuzz-message"),
        fingerprint: logrelay::fingerprint::Fingerprint::of_message(&routing_key, None, None, body),
        redelivered: flags & 4 != 0,
        received_ns: 1_700_000_000_123_456_789,
        default_project: "default-project",
        default_module: "default-module",
        max_bytes,
        options: if flags & 8 != 0 {
            &LINES
        } else {
            logrelay::decode::DecodeOptions::builtin()
        },
    };
    let decoded = decode(body, &ctx);
    check(body, &ctx, &decoded);
    if ctx.message_id.is_some() {
        assert_eq!(decode(body, &ctx), decoded, "decoding is not deterministic");
    }
});

fn check(body: &[u8], ctx: &DecodeContext<'_>, d: &Decoded) {
    assert_eq!(
        d.records.len(),
        d.indices.len(),
        "one element index per record"
    );
    assert!(
        d.indices.windows(2).all(|w| w[0] < w[1]),
        "record elements increase: {:?}",
        d.indices
    );
    let bad_indices: Vec<usize> = d.bad.iter().filter_map(|b| b.index).collect();
    assert!(
        bad_indices.windows(2).all(|w| w[0] < w[1]),
        "bad elements increase: {bad_indices:?}"
    );
    let records: HashSet<usize> = d.indices.iter().copied().collect();
    assert!(
        bad_indices.iter().all(|i| !records.contains(i)),
        "an element is both a record and bad: {:?} / {bad_indices:?}",
        d.indices
    );
    let text = std::str::from_utf8(body).ok();
    for bad in &d.bad {
        if bad.index.is_none() {
            assert_eq!(
                d.bad.len(),
                1,
                "a bad whole message is the only bad element"
            );
            assert!(d.records.is_empty(), "a bad whole message has no records");
            assert_eq!(
                bad.span,
                0..body.len(),
                "a bad whole message spans the body"
            );
        }
        assert!(
            bad.span.start <= bad.span.end && bad.span.end <= body.len(),
            "span {:?} outside a body of {} bytes",
            bad.span,
            body.len()
        );
        if let Some(text) = text {
            assert!(
                text.get(bad.span.clone()).is_some(),
                "span {:?} cuts a character",
                bad.span
            );
        }
        assert!(!bad.reason.is_empty(), "empty reason");
        // A quoted value cut after 64 characters ends in "...": that is not a full stop.
        assert!(
            !bad.reason.ends_with('.') || bad.reason.ends_with("..."),
            "reason ends with a period: {}",
            bad.reason
        );
        assert!(
            !bad.reason.starts_with(|c: char| c.is_uppercase()),
            "reason is not lowercase: {}",
            bad.reason
        );
    }
    if body.len() > ctx.max_bytes {
        assert_eq!(d.bad.len(), 1);
        assert!(d.bad[0].reason.contains("LOGRELAY_MAX_MESSAGE_BYTES"));
    }
    for r in &d.records {
        assert!(!r.id.is_empty(), "empty id");
        let attributes = r.attributes.as_str();
        if let Err(e) = check_object(attributes) {
            panic!("attributes are not one JSON object ({e}): {attributes:?}");
        }
    }
}

/// Checks that `text` is exactly one JSON object whose keys are distinct. Values are read as raw
/// JSON, which has no depth limit (attributes keep whatever nesting was sent).
fn check_object(text: &str) -> Result<(), serde_json::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let _: &RawValue = map.next_value()?;
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("repeated key {key:?}")));
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Keys)?;
    de.end()
}
