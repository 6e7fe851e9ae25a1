//! Allow-list rules: which records become alerts, and for which chats.
//!
//! Rules are evaluated in their order in the config. Every matching rule fires (one alert per
//! rule, to each of its chats) until a matching rule has `stop = true`; later rules are then not
//! evaluated. A record that matches no rule sends nothing.

use logrelay_plugin_api::{Level, Record};
use regex::Regex;
use serde_json::{Map, Value};

use crate::config::ChatTarget;
use crate::template::{Template, attribute_text, normalise_digits};

/// An attribute a rule requires, with the values it allows.
#[derive(Debug, Clone)]
pub struct AttributeFilter {
    /// The attribute's key.
    pub key: String,
    /// Allowed values, as text.
    pub values: Vec<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Levels that match; `None` matches every level.
    pub levels: Option<Vec<Level>>,
    /// Projects that match; empty matches any.
    pub projects: Vec<String>,
    /// Modules that match; empty matches any.
    pub modules: Vec<String>,
    /// The message must contain a match.
    pub message_regex: Option<Regex>,
    /// Every listed attribute must be present with an allowed value.
    pub attributes: Vec<AttributeFilter>,
    /// Where alerts go.
    pub chats: Vec<ChatTarget>,
    /// Stop evaluating later rules when this one matches.
    pub stop: bool,
    /// This rule's own template.
    pub template: Option<Template>,
    /// This rule's own fingerprint template.
    pub fingerprint: Option<Template>,
}

impl Rule {
    /// Whether `record` (with `attrs` its parsed attributes) matches.
    pub fn matches(&self, record: &Record, attrs: Option<&Map<String, Value>>) -> bool {
        if let Some(levels) = &self.levels
            && !levels.contains(&record.level)
        {
            return false;
        }
        if !self.projects.is_empty() && !self.projects.iter().any(|p| **p == *record.project) {
            return false;
        }
        if !self.modules.is_empty() && !self.modules.iter().any(|m| **m == *record.module) {
            return false;
        }
        if let Some(re) = &self.message_regex
            && !re.is_match(&record.message)
        {
            return false;
        }
        self.attributes.iter().all(|f| {
            attrs
                .and_then(|a| a.get(&f.key))
                .filter(|v| !v.is_object() && !v.is_array() && !v.is_null())
                .is_some_and(|v| {
                    let text = attribute_text(v);
                    f.values.contains(&text)
                })
        })
    }

    /// A human-readable summary for `/rules`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(levels) = &self.levels {
            let names: Vec<&str> = levels.iter().map(|l| l.name()).collect();
            parts.push(format!("levels {}", names.join(",")));
        }
        if !self.projects.is_empty() {
            parts.push(format!("projects {}", self.projects.join(",")));
        }
        if !self.modules.is_empty() {
            parts.push(format!("modules {}", self.modules.join(",")));
        }
        if let Some(re) = &self.message_regex {
            parts.push(format!("message /{}/", re.as_str()));
        }
        for f in &self.attributes {
            parts.push(format!("{} in {}", f.key, f.values.join(",")));
        }
        let chats: Vec<String> = self.chats.iter().map(ToString::to_string).collect();
        parts.push(format!("to {}", chats.join(",")));
        if self.stop {
            parts.push("stop".to_owned());
        }
        parts.join("; ")
    }
}

/// The default fingerprint: level, project, module and the message with digit runs as `#`.
pub fn default_fingerprint(record: &Record) -> String {
    let mut out = String::with_capacity(record.message.len() + 32);
    out.push_str(record.level.name());
    out.push('\u{1f}');
    out.push_str(&record.project);
    out.push('\u{1f}');
    out.push_str(&record.module);
    out.push('\u{1f}');
    normalise_digits(&mut out, &record.message);
    out
}

/// Pushes onto `out` the indices of the rules that fire for `record`, in order (stopping after
/// a matching rule with `stop = true`).
pub fn firing(
    rules: &[Rule],
    record: &Record,
    attrs: Option<&Map<String, Value>>,
    out: &mut Vec<usize>,
) {
    for (i, rule) in rules.iter().enumerate() {
        if rule.matches(record, attrs) {
            out.push(i);
            if rule.stop {
                return;
            }
        }
    }
}
