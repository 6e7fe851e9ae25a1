//! Parsing a JSON text into a type, naming the field that does not fit.
//!
//! Config texts, store requests and HTTP bodies all want the same thing from a parse error: the
//! path of the bad value (`rules[2].level`) next to what is wrong with it, so that the caller can
//! word its own message (`invalid config at ...`, `` `query` field ... ``, a 400 naming the
//! parameter).

use serde::de::DeserializeOwned;

/// A JSON text that does not fit the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Where the bad value is (`rules[2].level`); `None` when the problem is the text as a whole
    /// (not JSON, not an object, a missing top-level field).
    pub path: Option<String>,
    /// What is wrong, as serde words it (`unknown variant ...`), without the path.
    pub message: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(path) => write!(f, "`{path}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for JsonError {}

impl JsonError {
    /// The field a top-level `unknown field` or `missing field` message names, when the error
    /// has no path of its own (serde reports those at the object, not at the field).
    pub fn named_field(&self) -> Option<&str> {
        if self.path.is_some() {
            return None;
        }
        ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| self.message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
    }
}

/// Parses `json` as a `T`, with the path of the value that does not fit.
///
/// Only the first JSON value is read: text after it is not looked at (call [`from_json_exact`]
/// to refuse it).
///
/// ```
/// use logrelay_plugin_api::from_json_with_path;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Body {
///     #[allow(dead_code)]
///     limit: u32,
/// }
/// let e = from_json_with_path::<Body>(br#"{"limit": -1}"#).unwrap_err();
/// assert_eq!(e.path.as_deref(), Some("limit"));
/// assert!(e.message.starts_with("invalid value: integer `-1`"));
/// ```
pub fn from_json_with_path<T: DeserializeOwned>(json: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    deserialize(&mut de)
}

/// [`from_json_with_path`], and then refuses anything but white space after the value (with
/// `path: None`).
pub fn from_json_exact<T: DeserializeOwned>(json: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = deserialize(&mut de)?;
    de.end().map_err(|e| JsonError {
        path: None,
        message: e.to_string(),
    })?;
    Ok(value)
}

fn deserialize<T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        JsonError {
            path: (!path.is_empty() && path != ".").then_some(path),
            message,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        level: u8,
    }

    #[test]
    fn names_the_path_of_a_nested_value() {
        let e =
            from_json_with_path::<Outer>(br#"{"name":"x","rules":[{"level":1},{"level":"hi"}]}"#)
                .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("rules[1].level"));
        assert!(e.message.starts_with("invalid type: string"), "{e}");
        assert!(
            e.to_string().starts_with("`rules[1].level`: invalid type"),
            "{e}"
        );
        assert_eq!(e.named_field(), None);
    }

    #[test]
    fn top_level_problems_have_no_path() {
        // serde_path_to_error puts an unknown field's name in the path.
        let e = from_json_with_path::<Outer>(br#"{"name":"x","extra":1}"#).unwrap_err();
        assert_eq!(e.path.as_deref(), Some("extra"));
        assert!(e.message.starts_with("unknown field `extra`"), "{e}");
        let e = from_json_with_path::<Outer>(b"{}").unwrap_err();
        assert_eq!(e.path, None);
        assert_eq!(e.named_field(), Some("name"));
        let e = from_json_with_path::<Outer>(b"not json").unwrap_err();
        assert_eq!(e.path, None);
        assert_eq!(e.named_field(), None);
        assert_eq!(e.to_string(), e.message);
    }

    #[test]
    fn trailing_text_is_refused_only_when_exact() {
        let ok: Outer = from_json_with_path(br#"{"name":"x"} trailing"#).unwrap();
        assert_eq!(ok.name, "x");
        let e = from_json_exact::<Outer>(br#"{"name":"x"} trailing"#).unwrap_err();
        assert_eq!(e.path, None);
        assert!(e.message.starts_with("trailing characters"), "{e}");
        assert!(from_json_exact::<Outer>(b" {\"name\":\"x\"}\n ").is_ok());
    }
}
