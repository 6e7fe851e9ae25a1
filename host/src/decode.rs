//! PLACEHOLDER until the real decoder lands (helper is writing it).
#![allow(missing_docs)]
use logrelay_plugin_api::{Level, Record};

pub struct DecodeContext<'a> {
    pub routing_key: &'a str,
    pub queue: &'a str,
    pub amqp_timestamp_ns: Option<i64>,
    pub message_id: Option<&'a str>,
    pub received_ns: i64,
    pub default_project: &'a str,
    pub default_module: &'a str,
    pub max_bytes: usize,
}
pub struct BadElement {
    pub index: Option<usize>,
    pub reason: String,
}
pub struct Decoded {
    pub records: Vec<Record>,
    pub bad: Vec<BadElement>,
}
pub fn decode(body: &[u8], ctx: &DecodeContext<'_>) -> Decoded {
    let mut out = Decoded {
        records: vec![],
        bad: vec![],
    };
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => {
            let msg = m
                .get("message")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            let id = m
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let level = m
                .get("level")
                .and_then(|v| v.as_str())
                .and_then(Level::from_name)
                .unwrap_or(Level::INFO);
            out.records.push(Record::new(
                id,
                ctx.received_ns,
                level,
                ctx.default_project,
                ctx.default_module,
                msg,
            ));
        }
        _ => out.bad.push(BadElement {
            index: None,
            reason: "bad".into(),
        }),
    }
    out
}
