//! Fuzzes the whole path of a record after decoding: `decode`, then what the store does with
//! each record (its checks and its binary `COPY` row encoding) and the dead-letter body the
//! intake writes when a connector refuses the record (`intake::record_json`).
//!
//! Input layout: byte 0 holds flags (bit 0: an AMQP `message_id` is set; bit 1: an AMQP
//! `timestamp` is set), then the body.
//!
//! Invariants checked on every input, besides "does not panic" anywhere on the path:
//! - a redelivery (RabbitMQ's `redelivered`, a later receive time) gives the very same ids, and
//!   no record of it is flagged `UNSEEN`;
//! - the dead-letter body of every record is JSON a strict parser reads back, holding the
//!   record's id, level, project, module, message and time exactly;
//! - the store's checks and row encoding accept or refuse every record without failing, and
//!   the encoding of the records it accepts is well framed (signature, 7 fields a row, trailer).

#![no_main]

use libfuzzer_sys::fuzz_target;
use logrelay::decode::{DecodeContext, decode};
use logrelay::fingerprint::Fingerprint;
use logrelay::intake::record_json;
use logrelay_plugin_api::RecordFlags;
use logrelay_timescale::__fuzz::{check_record, copy_data};

fuzz_target!(|data: &[u8]| {
    let (flags, body) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let message_id = (flags & 1 != 0).then_some("fuzz-message");
    let amqp_timestamp = (flags & 2 != 0).then_some(1_600_000_000u64);
    let ctx = DecodeContext {
        routing_key: "shop.cart",
        queue: "logs",
        amqp_timestamp_ns: amqp_timestamp.map(|s| s as i64 * 1_000_000_000),
        message_id,
        fingerprint: Fingerprint::of_message("shop.cart", message_id, amqp_timestamp, body),
        redelivered: false,
        received_ns: 1_700_000_000_123_456_789,
        default_project: "default-project",
        default_module: "default-module",
        max_bytes: 1024 * 1024,
    };
    let first = decode(body, &ctx);
    let again = decode(
        body,
        &DecodeContext {
            redelivered: true,
            received_ns: ctx.received_ns + 5_000_000_000,
            ..ctx
        },
    );
    let ids = |d: &logrelay::decode::Decoded| {
        d.records.iter().map(|r| r.id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&again), "a redelivery changed the ids");
    assert!(
        again.flags.iter().all(|f| !f.contains(RecordFlags::UNSEEN)),
        "a redelivered record is flagged unseen"
    );

    for r in &first.records {
        let text = record_json(r);
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("dead letter is not strict JSON ({e}): {text}"));
        assert_eq!(v["id"], r.id.as_str());
        assert_eq!(v["message"], r.message.as_str());
        assert_eq!(v["project"], r.project.as_str());
        assert_eq!(v["module"], r.module.as_str());
        assert_eq!(v["level"], r.level.name());
        assert_eq!(v["timestamp_ns"], r.timestamp_ns);
    }

    let accepted: Vec<u32> = first
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| check_record(r).is_ok())
        .map(|(i, _)| i as u32)
        .collect();
    let rows = copy_data(&first.records, &accepted);
    assert!(rows.starts_with(b"PGCOPY\n\xff\r\n\0"), "copy signature");
    assert!(rows.ends_with(&(-1i16).to_be_bytes()), "copy trailer");
    // Walk the rows: each is 7 length-prefixed fields.
    let mut at = 19;
    for _ in &accepted {
        let n = i16::from_be_bytes([rows[at], rows[at + 1]]);
        assert_eq!(n, 7, "fields in a row");
        at += 2;
        for _ in 0..7 {
            let len = i32::from_be_bytes([rows[at], rows[at + 1], rows[at + 2], rows[at + 3]]);
            assert!(len >= 0, "negative field length");
            at += 4 + len as usize;
        }
    }
    assert_eq!(at + 2, rows.len(), "rows fill the copy data exactly");
});
