//! The store protocol: the methods a store instance (the `timescale` connector) answers through
//! [`Host::request`](crate::Host::request), and the JSON bodies they take and give back.
//!
//! The store deserializes these types and the HTTP API serializes them (and parses its own
//! `POST /log` body as an [`UpdateBody`]), so the two sides cannot drift. Nothing here crosses
//! the stable ABI: a body travels as JSON text, written by [`to_body`].
//!
//! The types hold the values as given; each side resolves them (a level name to its number, a
//! time text to an instant) with its own error messages. Field order is declaration order in
//! deserialization errors (`expected one of ...`), which both sides show to their callers.
//!
//! Answers not listed here (`query` and `get` pages, `stats`, `sql`, `schema`,
//! `retention_run`) are passed through by the HTTP API untouched; README.md of the `timescale`
//! connector documents them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The method names, as given to `request(store, method, body)`.
pub mod method {
    /// A page of records matching a filter ([`Params`](super::Params)).
    pub const QUERY: &str = "query";
    /// One record by id ([`IdBody`](super::IdBody)).
    pub const GET: &str = "get";
    /// Stores records ([`AddBody`](super::AddBody)).
    pub const ADD: &str = "add";
    /// Changes one record ([`UpdateBody`](super::UpdateBody)).
    pub const UPDATE: &str = "update";
    /// Deletes records by id ([`DeleteBody`](super::DeleteBody)).
    pub const DELETE: &str = "delete";
    /// Deletes the records matching a filter ([`Params`](super::Params)).
    pub const DELETE_BY_FILTER: &str = "delete_by_filter";
    /// Counts by level, project and module ([`Params`](super::Params)).
    pub const STATS: &str = "stats";
    /// Runs one SQL statement ([`SqlBody`](super::SqlBody)).
    pub const SQL: &str = "sql";
    /// Applies the retention now ([`Empty`](super::Empty)).
    pub const RETENTION_RUN: &str = "retention_run";
    /// Describes the table and its migrations ([`Empty`](super::Empty)).
    pub const SCHEMA: &str = "schema";
}

/// Every method a store answers, in the order its documentation lists them.
pub const METHODS: &[&str] = &[
    method::QUERY,
    method::GET,
    method::ADD,
    method::UPDATE,
    method::DELETE,
    method::DELETE_BY_FILTER,
    method::STATS,
    method::SQL,
    method::RETENTION_RUN,
    method::SCHEMA,
];

/// A body's JSON text as it goes across: the keys in alphabetical order (through a
/// `serde_json::Value`, whose map is sorted), the bytes the HTTP API has always sent.
pub fn to_body<T: Serialize>(body: &T) -> Result<String, serde_json::Error> {
    serde_json::to_value(body).map(|v| v.to_string())
}

/// A time: RFC 3339 text or integer nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    /// Nanoseconds since the Unix epoch.
    Ns(i64),
    /// RFC 3339 text (`2024-05-01T12:00:00Z`).
    Text(String),
}

/// A level: its number (0 trace .. 5 critical) or a name (`warning`, `warn`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LevelArg {
    /// 0-5.
    Num(u8),
    /// A name.
    Name(String),
}

/// One string or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of these values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The body of `query`, `delete_by_filter` and `stats`: filter fields (every one combines with
/// AND) plus paging. The store refuses the fields that do not apply to the method.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Any of these ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// From this time (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<TimeArg>,
    /// Before this time (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<TimeArg>,
    /// Exactly this level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelArg>,
    /// This level or more severe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_level: Option<LevelArg>,
    /// Any of these projects.
    #[serde(alias = "projects", skip_serializing_if = "Option::is_none")]
    pub project: Option<OneOrMany>,
    /// Any of these modules.
    #[serde(alias = "modules", skip_serializing_if = "Option::is_none")]
    pub module: Option<OneOrMany>,
    /// Case-insensitive substring of the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Records per page (`query` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page (`query` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `true` lets `delete_by_filter` run with an empty filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// The body of `get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdBody {
    /// The record's id.
    pub id: String,
}

/// The body of `delete`: `id` or `ids`, not both.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// One record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A list of records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

/// The body of `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// The records to store.
    pub records: Vec<InRecord>,
}

/// A record given to `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InRecord {
    /// Its id; a new UUIDv7 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its time; now when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeArg>,
    /// Its level; info when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelArg>,
    /// The project.
    pub project: String,
    /// The module; empty when absent.
    #[serde(default)]
    pub module: String,
    /// The message.
    pub message: String,
    /// Attributes; `{}` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// The body of `update` (and of the HTTP API's `POST /log`): the record's id and the fields to
/// change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The record's id.
    pub id: String,
    /// The new level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelArg>,
    /// The new message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The new project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The new module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Replaces the attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// Merged into the attributes (`attributes || this`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_attributes: Option<Map<String, Value>>,
}

/// The body of `sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    /// One SQL statement.
    pub query: String,
    /// Runs it in a read-write transaction (read-only otherwise).
    #[serde(default)]
    pub write: bool,
    /// At most this many rows (never more than the store's `sql_max_rows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u32>,
}

/// The body of methods that take none (`retention_run`, `schema`): `{}` or nothing.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The answer of `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    /// Rows that were new (a repeat of a stored record is not).
    pub inserted: u64,
    /// The records' ids, in the order given.
    pub ids: Vec<String>,
}

/// The answer of `update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Updated {
    /// Rows changed.
    pub updated: u64,
}

/// The answer of `delete` and `delete_by_filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// Rows deleted.
    pub deleted: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// `body` goes across as `wire` (the bytes sent before these types existed) and comes back
    /// equal.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        body: T,
        wire: &str,
    ) {
        let text = to_body(&body).unwrap();
        assert_eq!(text, wire);
        assert_eq!(serde_json::from_str::<T>(&text).unwrap(), body);
    }

    #[test]
    fn every_request_round_trips_with_the_old_bytes() {
        round_trip(
            Params {
                ids: Some(vec!["a".into()]),
                from: Some(TimeArg::Ns(1)),
                to: Some(TimeArg::Ns(2)),
                level: Some(LevelArg::Num(3)),
                min_level: Some(LevelArg::Num(2)),
                project: Some(OneOrMany::Many(vec!["p".into(), "q".into()])),
                module: Some(OneOrMany::Many(vec!["m".into()])),
                text: Some("x".into()),
                limit: Some(10),
                cursor: Some("5:a".into()),
                all: None,
            },
            r#"{"cursor":"5:a","from":1,"ids":["a"],"level":3,"limit":10,"min_level":2,"module":["m"],"project":["p","q"],"text":"x","to":2}"#,
        );
        round_trip(
            Params {
                all: Some(true),
                ..Params::default()
            },
            r#"{"all":true}"#,
        );
        round_trip(IdBody { id: "a".into() }, r#"{"id":"a"}"#);
        round_trip(
            DeleteBody {
                id: Some("a".into()),
                ids: None,
            },
            r#"{"id":"a"}"#,
        );
        round_trip(
            AddBody {
                records: vec![InRecord {
                    id: None,
                    timestamp: Some(TimeArg::Text("2024-05-01T12:00:00Z".into())),
                    level: Some(LevelArg::Name("warn".into())),
                    project: "p".into(),
                    module: String::new(),
                    message: "hi".into(),
                    attributes: None,
                }],
            },
            r#"{"records":[{"level":"warn","message":"hi","module":"","project":"p","timestamp":"2024-05-01T12:00:00Z"}]}"#,
        );
        let attributes: Map<String, Value> = serde_json::from_value(json!({ "k": 1 })).unwrap();
        round_trip(
            UpdateBody {
                id: "a".into(),
                level: Some(LevelArg::Num(4)),
                message: Some("m".into()),
                project: None,
                module: None,
                attributes: None,
                merge_attributes: Some(attributes),
            },
            r#"{"id":"a","level":4,"merge_attributes":{"k":1},"message":"m"}"#,
        );
        round_trip(
            SqlBody {
                query: "SELECT 1".into(),
                write: false,
                max_rows: None,
            },
            r#"{"query":"SELECT 1","write":false}"#,
        );
        round_trip(Empty {}, "{}");
    }

    #[test]
    fn answers_round_trip() {
        round_trip(
            Added {
                inserted: 1,
                ids: vec!["a".into()],
            },
            r#"{"ids":["a"],"inserted":1}"#,
        );
        round_trip(Updated { updated: 1 }, r#"{"updated":1}"#);
        round_trip(Deleted { deleted: 0 }, r#"{"deleted":0}"#);
    }

    #[test]
    fn plural_aliases_and_unknown_fields() {
        let p: Params = serde_json::from_str(r#"{"projects": "a", "modules": ["b"]}"#).unwrap();
        assert_eq!(p.project, Some(OneOrMany::One("a".into())));
        assert_eq!(
            p.module.map(OneOrMany::into_vec),
            Some(vec!["b".to_owned()])
        );
        let e = serde_json::from_str::<Params>(r#"{"levle": 1}"#).unwrap_err();
        assert!(e.to_string().contains("levle"), "{e}");
    }
}
