//! Records as JSON, in the same shape as the store's answers (so live and stored records read
//! alike).

use chrono::{DateTime, SecondsFormat};
use logrelay_plugin_api::Record;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Out<'a> {
    id: &'a str,
    timestamp: String,
    timestamp_ns: i64,
    level: &'static str,
    project: &'a str,
    module: &'a str,
    message: &'a str,
    attributes: Attributes<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Attributes<'a> {
    Raw(&'a RawValue),
    Empty(serde_json::Map<String, serde_json::Value>),
}

/// The JSON text of one record: `id`, `timestamp` (RFC 3339, microseconds), `timestamp_ns`,
/// `level`, `project`, `module`, `message`, `attributes`.
pub fn record_json(r: &Record) -> String {
    let parsed: Option<&RawValue> = serde_json::from_str(r.attributes.as_str()).ok();
    let attributes = match parsed.filter(|a| a.get().trim_start().starts_with('{')) {
        Some(raw) => Attributes::Raw(raw),
        None => Attributes::Empty(serde_json::Map::new()),
    };
    let out = Out {
        id: r.id.as_str(),
        timestamp: DateTime::from_timestamp_nanos(r.timestamp_ns)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        timestamp_ns: r.timestamp_ns,
        level: r.level.name(),
        project: r.project.as_str(),
        module: r.module.as_str(),
        message: r.message.as_str(),
        attributes,
    };
    serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use logrelay_plugin_api::Level;

    use super::*;

    #[test]
    fn shape() {
        let r = Record::new(
            "a",
            1_700_000_000_123_456_789,
            Level::ERROR,
            "p",
            "m",
            "x\"y",
        )
        .with_attributes(r#"{"u":1}"#);
        let v: serde_json::Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["level"], "error");
        assert_eq!(v["attributes"]["u"], 1);
        assert_eq!(v["message"], "x\"y");
        let bad = r.with_attributes("not json");
        let v: serde_json::Value = serde_json::from_str(&record_json(&bad)).unwrap();
        assert_eq!(v["attributes"], serde_json::json!({}));
    }
}
