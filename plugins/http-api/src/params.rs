//! Filters and paging, parsed from query strings (`GET`) or JSON bodies (`POST /logs/delete`)
//! into one checked [`Filter`], with errors naming the parameter. The filter becomes the store's
//! request body ([`logrelay_plugin_api::store::Params`]), or matches live records for the tail.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use logrelay_plugin_api::Level;
use logrelay_plugin_api::store::{self, LevelArg, OneOrMany, TimeArg};
use serde::Deserialize;
use utoipa::openapi::Required;
use utoipa::openapi::path::Parameter;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::openapi;

/// A checked filter; every field combines with AND.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    /// Any of these ids.
    pub ids: Vec<String>,
    /// From this time (nanoseconds, inclusive).
    pub from_ns: Option<i64>,
    /// Before this time (nanoseconds, exclusive).
    pub to_ns: Option<i64>,
    /// Exactly this level.
    pub level: Option<Level>,
    /// This level or more severe.
    pub min_level: Option<Level>,
    /// Any of these projects.
    pub projects: Vec<String>,
    /// Any of these modules.
    pub modules: Vec<String>,
    /// Case-insensitive substring of the message (lowercased).
    pub text: Option<String>,
    /// Top-level attributes equal to these values (a string, or the number, boolean or null
    /// it spells).
    pub attr: BTreeMap<String, String>,
    /// Top-level attribute keys every record has.
    pub has: Vec<String>,
}

/// Paging of a list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Page {
    /// Records per page.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Time buckets of a histogram.
    pub buckets: Option<u32>,
}

/// The query parameters of a route, taken from the types its OpenAPI operation lists: the
/// names it accepts (any other is refused, naming it) and those it requires.
#[derive(Debug)]
pub struct QuerySpec {
    allowed: Vec<String>,
    required: Vec<String>,
}

impl QuerySpec {
    /// The parameters of these `IntoParams` types' lists, together.
    pub fn of(lists: Vec<Vec<Parameter>>) -> QuerySpec {
        let params: Vec<Parameter> = lists.into_iter().flatten().collect();
        QuerySpec {
            allowed: params.iter().map(|p| p.name.clone()).collect(),
            required: params
                .iter()
                .filter(|p| matches!(p.required, Required::True))
                .map(|p| p.name.clone())
                .collect(),
        }
    }

    /// The parameters of `P`.
    pub fn one<P: IntoParams>() -> QuerySpec {
        QuerySpec::of(vec![openapi::params::<P>()])
    }

    /// The parameters of `P` and `Q`.
    pub fn two<P: IntoParams, Q: IntoParams>() -> QuerySpec {
        QuerySpec::of(vec![openapi::params::<P>(), openapi::params::<Q>()])
    }

    /// Checks that the required parameters are there, then parses them ([`from_query`]).
    pub fn parse(
        &self,
        pairs: &[(String, String)],
        max_page_size: u32,
    ) -> Result<(Filter, Page), ApiError> {
        for name in &self.required {
            if !pairs.iter().any(|(k, _)| k == name) {
                return Err(ApiError::bad(name, format!("`{name}` is required")));
            }
        }
        from_query(pairs, &self.allowed, max_page_size)
    }
}

/// What a level parameter takes: a name or alias of `Level::from_name` in any case, or 0-5.
/// The OpenAPI document states it; [`parse_level`] takes exactly this.
pub const LEVEL_PATTERN: &str = "^([Tt][Rr][Aa][Cc][Ee]|[Tt][Rr][Cc]|[Vv][Ee][Rr][Bb][Oo][Ss][Ee]|[Ff][Ii][Nn][Ee][Ss][Tt]|[Dd][Ee][Bb][Uu][Gg]|[Dd][Bb][Gg]|[Ff][Ii][Nn][Ee]|[Ii][Nn][Ff][Oo]|[Ii][Nn][Ff]|[Ii][Nn][Ff][Oo][Rr][Mm][Aa][Tt][Ii][Oo][Nn]|[Ii][Nn][Ff][Oo][Rr][Mm][Aa][Tt][Ii][Oo][Nn][Aa][Ll]|[Nn][Oo][Tt][Ii][Cc][Ee]|[Ww][Aa][Rr][Nn][Ii][Nn][Gg]|[Ww][Aa][Rr][Nn]|[Ww][Rr][Nn]|[Ee][Rr][Rr][Oo][Rr]|[Ee][Rr][Rr]|[Ee][Rr][Oo][Rr]|[Cc][Rr][Ii][Tt][Ii][Cc][Aa][Ll]|[Cc][Rr][Ii][Tt]|[Ff][Aa][Tt][Aa][Ll]|[Pp][Aa][Nn][Ii][Cc]|[Aa][Ll][Ee][Rr][Tt]|[Ee][Mm][Ee][Rr][Gg]|[Ee][Mm][Ee][Rr][Gg][Ee][Nn][Cc][Yy]|[0-5])$";

/// Parses a time: RFC 3339 (`2024-05-01T12:00:00Z`), a date (`2024-05-01`, midnight UTC) or
/// integer nanoseconds since the epoch.
pub fn parse_time(parameter: &str, text: &str) -> Result<i64, ApiError> {
    let t = text;
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|e| {
            // A `+` in a query string arrives as a space: `...T12:00:00 02:00`.
            if t.contains(' ') {
                DateTime::parse_from_rfc3339(&t.replace(' ', "+"))
            } else {
                Err(e)
            }
        })
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        });
    let bad = || {
        ApiError::bad(
            parameter,
            format!(
                "`{parameter}`: `{text}` is not a time; write RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or nanoseconds since the epoch"
            ),
        )
    };
    let dt = parsed.ok_or_else(bad)?;
    // Outside the nanosecond range (1677-09-21..2262-04-11): its ends, which no stored record
    // passes (a filter from year 9999 matches nothing, one from year 1 everything).
    Ok(dt.timestamp_nanos_opt().unwrap_or(if dt.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// Parses a level name (`warning`, `warn`, `ERROR`...) or number 0-5 ([`LEVEL_PATTERN`]).
pub fn parse_level(parameter: &str, text: &str) -> Result<Level, ApiError> {
    if let [digit @ b'0'..=b'5'] = text.as_bytes() {
        return Ok(Level(digit - b'0'));
    }
    let exact = text.trim() == text && !text.is_empty();
    exact.then(|| Level::from_name(text)).flatten().ok_or_else(|| {
        ApiError::bad(
            parameter,
            format!(
                "`{parameter}`: unknown level `{text}`; use trace, debug, info, warning, error, critical (or 0-5)"
            ),
        )
    })
}

/// Parses a positive count no larger than `max`.
pub fn parse_count(parameter: &str, text: &str, max: u32) -> Result<u32, ApiError> {
    let n: u64 = text.parse().map_err(|_| {
        ApiError::bad(
            parameter,
            format!("`{parameter}`: `{text}` is not a positive whole number"),
        )
    })?;
    if n == 0 {
        return Err(ApiError::bad(
            parameter,
            format!("`{parameter}` must be at least 1"),
        ));
    }
    if n > u64::from(max) {
        return Err(ApiError::bad(
            parameter,
            format!(
                "`{parameter}` is {n}; at most {max} records per page (follow `next` for more)"
            ),
        ));
    }
    Ok(n as u32)
}

/// A cursor as the OpenAPI document states it: `-?[0-9]{1,18}:` then anything.
fn check_cursor(text: &str) -> Result<String, ApiError> {
    let ok = text.split_once(':').is_some_and(|(micros, _)| {
        let digits = micros.strip_prefix('-').unwrap_or(micros);
        (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(text.to_owned())
    } else {
        Err(ApiError::bad(
            "cursor",
            format!(
                "`cursor`: `{text}` is not a cursor; pass back the `next` of the previous page"
            ),
        ))
    }
}

fn no_nul(parameter: &str, text: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        Err(ApiError::bad(
            parameter,
            format!("`{parameter}` contains a NUL character"),
        ))
    } else {
        Ok(())
    }
}

/// Parses query pairs. `allowed` lists the parameters the route takes (filter names, `limit`,
/// `cursor`, `count`); anything else is refused naming it. Returns the filter, the page and the
/// `count` if given.
pub fn from_query(
    pairs: &[(String, String)],
    allowed: &[impl AsRef<str>],
    max_page_size: u32,
) -> Result<(Filter, Page), ApiError> {
    let mut f = Filter::default();
    let mut page = Page::default();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        // `attr[<name>]=<value>` (OpenAPI's deepObject style of the `attr` parameter).
        let (key, attr_name) = match key.strip_prefix("attr[") {
            Some(rest) => (&"attr".to_owned(), Some(attr_key(key, rest)?)),
            None => (key, None),
        };
        let Some(known) = allowed
            .iter()
            .map(AsRef::as_ref)
            .find(|a| *a == key.as_str())
        else {
            return Err(ApiError::bad(
                key,
                format!(
                    "unknown parameter `{key}`; this route takes {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{}`", a.as_ref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let repeatable = matches!(known, "id" | "project" | "module" | "has" | "attr");
        if !repeatable && seen.contains(&known) {
            return Err(ApiError::bad(
                known,
                format!("`{known}` is given more than once"),
            ));
        }
        seen.push(known);
        no_nul(known, value)?;
        match known {
            "id" => f.ids.push(value.clone()),
            "from" => f.from_ns = Some(parse_time(known, value)?),
            "to" => f.to_ns = Some(parse_time(known, value)?),
            "level" => f.level = Some(parse_level(known, value)?),
            "min_level" => f.min_level = Some(parse_level(known, value)?),
            "project" => f.projects.push(value.clone()),
            "module" => f.modules.push(value.clone()),
            "text" => f.text = Some(value.clone()).filter(|t| !t.is_empty()),
            "limit" | "count" => page.limit = Some(parse_count(known, value, max_page_size)?),
            "buckets" => page.buckets = Some(parse_count(known, value, max_page_size)?),
            "cursor" => page.cursor = Some(check_cursor(value)?),
            "has" => {
                check_attr_name("has", value)?;
                f.has.push(value.clone());
            }
            "attr" => {
                let name = attr_name.ok_or_else(|| {
                    ApiError::bad("attr", "write `attr[<name>]=<value>`, e.g. `attr[user]=u1`")
                })?;
                if f.attr.insert(name.clone(), value.clone()).is_some() {
                    return Err(ApiError::bad(
                        "attr",
                        format!("`attr[{name}]` is given more than once"),
                    ));
                }
            }
            _ => {}
        }
    }
    f.check()?;
    Ok((f, page))
}

/// The name inside `attr[<name>]`: not empty, without brackets (no nesting: attributes are
/// matched at the top level).
fn attr_key(key: &str, rest: &str) -> Result<String, ApiError> {
    let name = rest.strip_suffix(']').unwrap_or(rest);
    if !rest.ends_with(']') || name.is_empty() || name.contains(['[', ']']) {
        return Err(ApiError::bad(
            "attr",
            format!(
                "`{key}`: write `attr[<name>]=<value>` with a top-level attribute name (no brackets inside)"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// An attribute name of `attr` or `has`: not empty, no NUL, no brackets (as the OpenAPI
/// document's `AttrName` says).
fn check_attr_name(parameter: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.contains(['[', ']', '\0']) {
        return Err(ApiError::bad(
            parameter,
            format!(
                "`{parameter}`: `{name}` is not an attribute name; give a top-level name, not empty, without brackets"
            ),
        ));
    }
    Ok(())
}

/// A level of a JSON body, or 400 naming `parameter`.
pub fn resolve_level(level: &LevelArg, parameter: &str) -> Result<Level, ApiError> {
    match level {
        LevelArg::Num(n) => parse_level(parameter, &n.to_string()),
        LevelArg::Name(s) => parse_level(parameter, s),
    }
}

/// Body fields read as JSON Schema reads them: `1.0` is the integer 1, so a level or a time
/// written as an integral float is taken like the integer (the OpenAPI document says
/// `integer`, and schemathesis sends such values).
pub mod lenient {
    use logrelay_plugin_api::store::{LevelArg, TimeArg};
    use serde::Deserialize;
    use serde::de::{Deserializer, Error};
    use serde_json::{Number, Value};

    fn integral(n: &Number) -> Option<i64> {
        n.as_i64().or_else(|| {
            n.as_f64()
                // Strictly inside ±2^63: at that size a float no longer tells the integer it was.
                .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(63))
                .map(|f| f as i64)
        })
    }

    /// A level: a name, or a number 0-5.
    pub fn level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LevelArg>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(LevelArg::Name(s))),
            Some(Value::Number(n)) => integral(&n)
                .and_then(|i| u8::try_from(i).ok())
                .map(|i| Some(LevelArg::Num(i)))
                .ok_or_else(|| D::Error::custom(format!("{n} is not a level: give 0-5 or a name"))),
            Some(other) => Err(D::Error::custom(format!(
                "{other} is not a level: give 0-5 or a name"
            ))),
        }
    }

    /// A time: integer nanoseconds or text.
    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeArg>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(TimeArg::Text(s))),
            Some(Value::Number(n)) => integral(&n).map(|i| Some(TimeArg::Ns(i))).ok_or_else(|| {
                D::Error::custom(format!(
                    "{n} is not a time: give integer nanoseconds or RFC 3339 text"
                ))
            }),
            Some(other) => Err(D::Error::custom(format!(
                "{other} is not a time: give integer nanoseconds or RFC 3339 text"
            ))),
        }
    }
}

/// The body of `POST /logs/delete`: the filter fields of the store's
/// [`Params`](store::Params) without paging, `all` and `confirm` as plain flags.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Any of these ids.
    #[schema(value_type = Option<Vec<openapi::Text>>, min_items = 1)]
    ids: Option<Vec<String>>,
    /// From this time, inclusive.
    #[schema(value_type = Option<openapi::Time>)]
    #[serde(default, deserialize_with = "lenient::time")]
    from: Option<TimeArg>,
    /// Before this time, exclusive.
    #[schema(value_type = Option<openapi::Time>)]
    #[serde(default, deserialize_with = "lenient::time")]
    to: Option<TimeArg>,
    /// Exactly this level.
    #[schema(value_type = Option<openapi::Level>)]
    #[serde(default, deserialize_with = "lenient::level")]
    level: Option<LevelArg>,
    /// This level or more severe.
    #[schema(value_type = Option<openapi::Level>)]
    #[serde(default, deserialize_with = "lenient::level")]
    min_level: Option<LevelArg>,
    /// Any of these projects (also `projects`).
    #[serde(alias = "projects")]
    #[schema(value_type = Option<openapi::OneOrMany>)]
    project: Option<OneOrMany>,
    /// Any of these modules (also `modules`).
    #[serde(alias = "modules")]
    #[schema(value_type = Option<openapi::OneOrMany>)]
    module: Option<OneOrMany>,
    /// Case-insensitive substring of the message.
    #[schema(value_type = Option<openapi::Text>)]
    text: Option<String>,
    /// Top-level attributes equal to these values (`{"user": "u1", "code": "7"}`).
    #[schema(value_type = Option<openapi::AttrMatch>)]
    attr: Option<BTreeMap<String, String>>,
    /// Top-level attribute keys every record has.
    #[schema(value_type = Option<Vec<openapi::AttrName>>, min_items = 1)]
    has: Option<Vec<String>>,
    /// Must be `true` to delete with an empty filter; it confirms any count.
    #[serde(default)]
    pub all: bool,
    /// Must be `true` when the filter matches more rows than `delete_confirm_rows` or
    /// `delete_confirm_percent` allow.
    #[serde(default)]
    pub confirm: bool,
}

impl FilterBody {
    /// The checked filter.
    pub fn into_filter(self) -> Result<Filter, ApiError> {
        let time = |p: &str, t: Option<TimeArg>| -> Result<Option<i64>, ApiError> {
            match t {
                None => Ok(None),
                Some(TimeArg::Ns(n)) => Ok(Some(n)),
                Some(TimeArg::Text(s)) => parse_time(p, &s).map(Some),
            }
        };
        let list = |p: &str, v: Option<OneOrMany>| -> Result<Vec<String>, ApiError> {
            let Some(v) = v.map(OneOrMany::into_vec) else {
                return Ok(Vec::new());
            };
            if v.is_empty() {
                return Err(ApiError::bad(
                    p,
                    format!("`{p}`: an empty list matches nothing; leave the field out instead"),
                ));
            }
            for s in &v {
                no_nul(p, s)?;
            }
            Ok(v)
        };
        let ids = match self.ids {
            Some(v) => list("ids", Some(OneOrMany::Many(v)))?,
            None => Vec::new(),
        };
        if let Some(t) = &self.text {
            no_nul("text", t)?;
        }
        let f = Filter {
            ids,
            from_ns: time("from", self.from)?,
            to_ns: time("to", self.to)?,
            level: self.level.map(|l| resolve_level(&l, "level")).transpose()?,
            min_level: self
                .min_level
                .map(|l| resolve_level(&l, "min_level"))
                .transpose()?,
            projects: list("project", self.project)?,
            modules: list("module", self.module)?,
            text: self.text.filter(|t| !t.is_empty()),
            attr: self.attr.unwrap_or_default(),
            has: match self.has {
                Some(v) => list("has", Some(OneOrMany::Many(v)))?,
                None => Vec::new(),
            },
        };
        for (k, v) in &f.attr {
            check_attr_name("attr", k)?;
            no_nul("attr", v)?;
        }
        for k in &f.has {
            check_attr_name("has", k)?;
        }
        f.check()?;
        Ok(f)
    }
}

impl Filter {
    fn check(&self) -> Result<(), ApiError> {
        // `to` at or before `from` is an empty range: nothing matches (the store agrees).
        Ok(())
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The store's request body for this filter (`query`, `delete_by_filter`, `stats`).
    pub fn to_store(&self, page: Option<&Page>) -> store::Params {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| OneOrMany::Many(v.clone()));
        store::Params {
            ids: (!self.ids.is_empty()).then(|| self.ids.clone()),
            from: self.from_ns.map(TimeArg::Ns),
            to: self.to_ns.map(TimeArg::Ns),
            level: self.level.map(|l| LevelArg::Num(l.0)),
            min_level: self.min_level.map(|l| LevelArg::Num(l.0)),
            project: list(&self.projects),
            module: list(&self.modules),
            text: self.text.clone(),
            attr: (!self.attr.is_empty()).then(|| self.attr.clone()),
            has: (!self.has.is_empty()).then(|| self.has.clone()),
            limit: page.and_then(|p| p.limit),
            cursor: page.and_then(|p| p.cursor.clone()),
            all: None,
            refuse_over_rows: None,
            refuse_over_percent: None,
            buckets: None,
        }
    }

    /// Whether a live record passes the filter (the same semantics as the store's).
    pub fn matches(&self, r: &logrelay_plugin_api::Record, lower_message: Option<&str>) -> bool {
        (self.ids.is_empty() || self.ids.iter().any(|i| i.as_str() == r.id.as_str()))
            && self.from_ns.is_none_or(|f| r.timestamp_ns >= f)
            && self.to_ns.is_none_or(|t| r.timestamp_ns < t)
            && self.level.is_none_or(|l| r.level == l)
            && self.min_level.is_none_or(|l| r.level >= l)
            && (self.projects.is_empty()
                || self
                    .projects
                    .iter()
                    .any(|p| p.as_str() == r.project.as_str()))
            && (self.modules.is_empty()
                || self.modules.iter().any(|m| m.as_str() == r.module.as_str()))
            && self.text.as_ref().is_none_or(|t| {
                let lower = t.to_lowercase();
                match lower_message {
                    Some(m) => m.contains(&lower),
                    None => r.message.to_lowercase().contains(&lower),
                }
            })
            && self.attributes_match(r.attributes.as_str())
    }

    /// `attr` and `has` against a record's attributes (parsed only when the filter has them).
    fn attributes_match(&self, attributes: &str) -> bool {
        if self.attr.is_empty() && self.has.is_empty() {
            return true;
        }
        let Ok(map) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(attributes)
        else {
            return false;
        };
        self.has.iter().all(|k| map.contains_key(k))
            && self.attr.iter().all(|(k, want)| match map.get(k) {
                Some(serde_json::Value::String(s)) => s == want,
                Some(
                    v @ (serde_json::Value::Number(_)
                    | serde_json::Value::Bool(_)
                    | serde_json::Value::Null),
                ) => {
                    // The value the text spells, compared as the store does (`7` = `7.0`).
                    serde_json::from_str::<serde_json::Value>(want)
                        .is_ok_and(|w| same_scalar(v, &w))
                }
                _ => false,
            })
    }
}

/// JSON scalars equal as PostgreSQL's `jsonb` compares them: numbers by value.
fn same_scalar(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        _ => a == b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ALL: &[&str] = &[
        "id",
        "from",
        "to",
        "level",
        "min_level",
        "project",
        "module",
        "text",
        "limit",
        "cursor",
    ];

    #[test]
    fn query_parsing_names_the_bad_parameter() {
        let (f, p) = from_query(
            &pairs(&[
                ("project", "a"),
                ("project", "b"),
                ("level", "WARN"),
                ("limit", "5"),
            ]),
            ALL,
            100,
        )
        .unwrap();
        assert_eq!(f.projects, vec!["a", "b"]);
        assert_eq!(f.level, Some(Level::WARNING));
        assert_eq!(p.limit, Some(5));
        let e = from_query(&pairs(&[("levle", "x")]), ALL, 100).unwrap_err();
        assert_eq!(e.parameter.as_deref(), Some("levle"));
        let e = from_query(&pairs(&[("from", "yesterday")]), ALL, 100).unwrap_err();
        assert_eq!(e.parameter.as_deref(), Some("from"));
        let e = from_query(&pairs(&[("limit", "1000")]), ALL, 100).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let e = from_query(&pairs(&[("limit", "-1")]), ALL, 100).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        // `to` before `from`: an empty range, not an error.
        from_query(
            &pairs(&[("from", "2024-01-02"), ("to", "2024-01-01")]),
            ALL,
            100,
        )
        .unwrap();
        for (text, level) in [
            ("WARN", Some(3)),
            ("0", Some(0)),
            (" warn", None),
            ("6", None),
        ] {
            assert_eq!(
                parse_level("level", text).ok().map(|l| l.0),
                level,
                "{text}"
            );
        }
        assert!(from_query(&pairs(&[("cursor", "1234567890123456789:a")]), ALL, 100).is_err());
        assert!(from_query(&pairs(&[("cursor", "-123:a:b")]), ALL, 100).is_ok());
    }

    /// The level pattern of the OpenAPI document and the parser agree on every name and
    /// alias, in any case, and on what is not a level.
    #[test]
    fn the_level_pattern_is_what_the_parser_takes() {
        let re = regex::Regex::new(LEVEL_PATTERN).unwrap();
        let names = [
            "trace",
            "trc",
            "verbose",
            "finest",
            "debug",
            "dbg",
            "fine",
            "info",
            "inf",
            "information",
            "informational",
            "notice",
            "warning",
            "warn",
            "wrn",
            "error",
            "err",
            "eror",
            "critical",
            "crit",
            "fatal",
            "panic",
            "alert",
            "emerg",
            "emergency",
        ];
        let mut cases: Vec<String> = Vec::new();
        for n in names {
            cases.extend([
                n.to_owned(),
                n.to_uppercase(),
                format!(" {n}"),
                format!("{n}x"),
            ]);
        }
        cases.extend(["0", "5", "6", "05", "", "-1", "warn ing"].map(str::to_owned));
        for c in cases {
            assert_eq!(
                re.is_match(&c),
                parse_level("level", &c).is_ok(),
                "pattern and parser disagree on {c:?}"
            );
        }
    }

    #[test]
    fn live_records_match_attribute_filters_as_the_store_does() {
        let (f, _) = from_query(
            &pairs(&[("attr[user]", "u1"), ("attr[code]", "7"), ("has", "trace")]),
            &["attr", "has"],
            100,
        )
        .unwrap();
        let r = |a: &str| {
            logrelay_plugin_api::Record::new("a", 1, Level::INFO, "p", "m", "x").with_attributes(a)
        };
        assert!(f.matches(&r(r#"{"user":"u1","code":7.0,"trace":null}"#), None));
        assert!(f.matches(&r(r#"{"user":"u1","code":"7","trace":1}"#), None));
        assert!(
            !f.matches(&r(r#"{"user":"u1","code":7}"#), None),
            "no trace"
        );
        assert!(!f.matches(&r(r#"{"user":"u2","code":7,"trace":1}"#), None));
        assert!(!f.matches(&r(r#"{"user":["u1"],"code":7,"trace":1}"#), None));
        assert!(!f.matches(&r("not json"), None));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("from", "0").unwrap(), 0);
        let a = parse_time("from", "2024-05-01T12:00:00+02:00").unwrap();
        let b = parse_time("from", "2024-05-01T12:00:00 02:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_time("from", "2024-05-01").unwrap(),
            parse_time("from", "2024-05-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("from", "9999-01-01T00:00:00Z").unwrap(),
            i64::MAX
        );
        assert_eq!(parse_time("from", "0001-01-01").unwrap(), i64::MIN);
        assert!(parse_time("from", "").is_err());
    }
}
