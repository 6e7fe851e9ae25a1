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

use std::collections::BTreeMap;

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
    /// Counts by level in equal time buckets ([`Params`](super::Params) with `buckets`;
    /// answers a [`Histogram`](super::Histogram)).
    pub const HISTOGRAM: &str = "histogram";
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
    method::HISTOGRAM,
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
    /// Top-level attributes that equal these values: `{"user": "u1", "code": "7"}`. A value
    /// matches a JSON string equal to it, and also the number, boolean or null it spells
    /// (`"7"` matches `"code": 7` and `"code": "7"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attr: Option<BTreeMap<String, String>>,
    /// Top-level attribute keys every record has (any value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has: Option<Vec<String>>,
    /// Records per page (`query` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page (`query` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `true` lets `delete_by_filter` run with an empty filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// `delete_by_filter` only: refuse ([`TooMany`]) when more rows than this match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_over_rows: Option<u64>,
    /// `delete_by_filter` only: refuse ([`TooMany`]) when more than this share of the table's
    /// rows (0-100, of PostgreSQL's estimate) match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_over_percent: Option<f64>,
    /// `histogram` only: how many equal time buckets the range is cut into (1..=1000; 60
    /// when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
}

/// The body of `get`: a record named by its id, and by its time where the id alone names
/// several rows (the key is `(id, timestamp)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdBody {
    /// The record's id.
    pub id: String,
    /// The record's time (matched at the stored precision, microseconds); needed only when
    /// the id names several rows, which the store then answers with [`Ambiguous`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeArg>,
}

/// The body of `delete`: `id` (with `timestamp` where the id names several rows) or `ids`.
/// An id that names several rows is refused with [`Ambiguous`] and nothing is deleted.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// One record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The time of the record `id` names (only with `id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeArg>,
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
    /// The record's time, where the id names several rows (as in [`IdBody`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeArg>,
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
    /// Merged into the attributes (`attributes || this`; with `attributes`, merged into those).
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
    /// Rows changed (1: an update names exactly one row).
    pub updated: u64,
    /// The record as it now is (the same shape as `get`'s answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
}

/// One row an ambiguous id names: pass its `timestamp` (or `timestamp_ns`) back to pick it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The id.
    pub id: String,
    /// The row's time, RFC 3339 with microseconds.
    pub timestamp: String,
    /// The same time in nanoseconds since the epoch.
    pub timestamp_ns: i64,
}

/// The refusal of `get`, `update` and `delete` when an id without a time names several rows:
/// nothing was read or changed. It travels as a `permanent` error whose message is
/// [`Ambiguous::PREFIX`] followed by this value's JSON ([`Ambiguous::message`],
/// [`Ambiguous::from_message`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ambiguous {
    /// What is wrong and how to pick one row.
    pub error: String,
    /// The rows, newest first (at most [`Ambiguous::MAX_CANDIDATES`]).
    pub candidates: Vec<Candidate>,
    /// How many rows the request named.
    pub matched: u64,
}

impl Ambiguous {
    /// How an error message carrying an [`Ambiguous`] starts.
    pub const PREFIX: &'static str = "ambiguous: ";
    /// The most candidates one answer lists.
    pub const MAX_CANDIDATES: usize = 100;

    /// The error message: the prefix and the JSON.
    pub fn message(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        format!("{}{json}", Self::PREFIX)
    }

    /// The value inside an error message written by [`Ambiguous::message`].
    pub fn from_message(message: &str) -> Option<Ambiguous> {
        serde_json::from_str(message.strip_prefix(Self::PREFIX)?).ok()
    }
}

/// The refusal of `delete_by_filter` when more rows match than its `refuse_over_rows` or
/// `refuse_over_percent` allow: nothing was deleted. It travels as a `permanent` error whose
/// message is [`TooMany::PREFIX`] followed by this value's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TooMany {
    /// What is wrong and how to go ahead anyway.
    pub error: String,
    /// Rows the filter matches.
    pub matched: u64,
    /// The most rows that may be deleted without confirmation.
    pub limit: u64,
    /// The table's rows (PostgreSQL's estimate).
    pub rows_estimate: u64,
}

impl TooMany {
    /// How an error message carrying a [`TooMany`] starts.
    pub const PREFIX: &'static str = "too many: ";

    /// The error message: the prefix and the JSON.
    pub fn message(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        format!("{}{json}", Self::PREFIX)
    }

    /// The value inside an error message written by [`TooMany::message`].
    pub fn from_message(message: &str) -> Option<TooMany> {
        serde_json::from_str(message.strip_prefix(Self::PREFIX)?).ok()
    }
}

/// The answer of `histogram`: the filter's range cut into equal buckets, and the matching
/// records of each bucket counted by level. The range is the filter's `from` and `to`; where
/// one is absent, the oldest matching record's time (and the newest's, plus one microsecond).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// The range's start, RFC 3339 with microseconds (null: nothing matches and no `from`).
    pub from: Option<String>,
    /// The range's end, exclusive (null: nothing matches and no `to`).
    pub to: Option<String>,
    /// The range's start in nanoseconds since the epoch.
    pub from_ns: Option<i64>,
    /// The range's end in nanoseconds since the epoch.
    pub to_ns: Option<i64>,
    /// The width of a bucket in microseconds (at least 1).
    pub bucket_us: i64,
    /// The buckets that hold records, oldest first; a bucket not listed holds none.
    pub buckets: Vec<Bucket>,
}

/// One bucket of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's position: it starts at `from + index * bucket_us`.
    pub index: u32,
    /// Its start, RFC 3339 with microseconds.
    pub start: String,
    /// Its start in nanoseconds since the epoch.
    pub start_ns: i64,
    /// Records by level name (`info`, `error`...); levels with none are left out.
    pub counts: BTreeMap<String, u64>,
    /// Records in the bucket.
    pub total: u64,
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
                attr: None,
                has: None,
                limit: Some(10),
                cursor: Some("5:a".into()),
                all: None,
                refuse_over_rows: None,
                refuse_over_percent: None,
                buckets: None,
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
        round_trip(
            IdBody {
                id: "a".into(),
                timestamp: None,
            },
            r#"{"id":"a"}"#,
        );
        round_trip(
            IdBody {
                id: "a".into(),
                timestamp: Some(TimeArg::Ns(5)),
            },
            r#"{"id":"a","timestamp":5}"#,
        );
        round_trip(
            DeleteBody {
                id: Some("a".into()),
                timestamp: None,
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
                timestamp: None,
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
        round_trip(
            Updated {
                updated: 1,
                record: None,
            },
            r#"{"updated":1}"#,
        );
        round_trip(Deleted { deleted: 0 }, r#"{"deleted":0}"#);
    }

    #[test]
    fn refusals_travel_inside_error_messages() {
        let a = Ambiguous {
            error: "id `a` names 2 records".into(),
            candidates: vec![Candidate {
                id: "a".into(),
                timestamp: "1970-01-01T00:00:00.000001Z".into(),
                timestamp_ns: 1000,
            }],
            matched: 2,
        };
        let m = a.message();
        assert!(m.starts_with(Ambiguous::PREFIX), "{m}");
        assert_eq!(Ambiguous::from_message(&m), Some(a));
        assert_eq!(Ambiguous::from_message("not found: x"), None);
        let t = TooMany {
            error: "too many".into(),
            matched: 10,
            limit: 5,
            rows_estimate: 10,
        };
        assert_eq!(TooMany::from_message(&t.message()), Some(t));
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
