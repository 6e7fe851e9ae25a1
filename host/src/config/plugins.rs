//! `plugins.toml`: which connector instances run, their routing and their settings.
//!
//! ```toml
//! [plugins.errors_to_console]   # the instance name, chosen by the user
//! type = "console"              # finds liblogrelay_console.so in the plugin directory
//! enabled = true                # default true
//! acceptance = "best_effort"    # or "required" (gates the RabbitMQ ack); alias `delivery`
//! [plugins.errors_to_console.route]
//! min_level = "warning"         # or levels = ["error", "critical"]
//! projects = ["shop"]           # empty or absent: every project
//! modules = ["db"]
//! [plugins.errors_to_console.config]   # owned by the connector
//! color = "always"
//! ```
//!
//! `${VAR}` in any string is replaced from the environment (`$${` writes a literal `${`). Host
//! keys are checked here; unknown ones are errors naming the key. Every instance is checked and
//! every error reported, not only the first.

use std::path::{Path, PathBuf};

use logrelay_plugin_api::Level;
use serde::Deserialize;

use crate::config::settings::Env;

/// Whether an instance's acceptance gates the acknowledgement to RabbitMQ (the `acceptance` key
/// of plugins.toml, formerly `delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    /// A delivery is acked only once this instance has accepted its records.
    Required,
    /// Failures are counted and logged; they never hold up an ack.
    BestEffort,
}

impl Acceptance {
    /// The default for a connector type: console, telegram and http-api (its live tail) are
    /// best effort, the rest required.
    pub fn default_for(type_name: &str) -> Acceptance {
        match type_name {
            "console" | "telegram" | "http-api" => Acceptance::BestEffort,
            _ => Acceptance::Required,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    path: Option<PathBuf>,
    /// `delivery` is its former name, still accepted; giving both is refused as a duplicate.
    #[serde(default, alias = "delivery")]
    acceptance: Option<Acceptance>,
    #[serde(default)]
    route: RawRoute,
    #[serde(default)]
    config: toml::Table,
}

const fn default_true() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    levels: Option<Vec<String>>,
    #[serde(default)]
    min_level: Option<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    modules: Vec<String>,
}

/// Which records an instance receives. An empty list matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// Bit `n` set: level `n` passes. `None`: every level.
    levels: Option<u8>,
    projects: Vec<String>,
    modules: Vec<String>,
}

impl Route {
    /// True when the route passes every record (the fast path: no per-record check).
    pub fn is_all(&self) -> bool {
        self.levels.is_none() && self.projects.is_empty() && self.modules.is_empty()
    }

    /// True when `record` passes.
    pub fn matches(&self, record: &logrelay_plugin_api::Record) -> bool {
        if let Some(mask) = self.levels
            && (record.level.0 >= 8 || mask & (1 << record.level.0) == 0)
        {
            return false;
        }
        (self.projects.is_empty() || self.projects.iter().any(|p| p == record.project.as_str()))
            && (self.modules.is_empty() || self.modules.iter().any(|m| m == record.module.as_str()))
    }
}

/// One validated instance of a connector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// The name chosen in plugins.toml.
    pub name: String,
    /// The connector type.
    pub type_name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// The library to load.
    pub library: PathBuf,
    /// Whether its acceptance gates the ack.
    pub acceptance: Acceptance,
    /// Which records it receives.
    pub route: Route,
    /// The connector-owned config, as JSON text.
    pub config_json: String,
}

/// The parsed plugins.toml.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// Every instance, in name order.
    pub instances: Vec<InstanceSpec>,
}

/// Every problem found in plugins.toml.
#[derive(Debug, thiserror::Error)]
#[error("{} has {} problem(s):\n  {}", .file.display(), .problems.len(), .problems.join("\n  "))]
pub struct PluginsConfigError {
    /// The file.
    pub file: PathBuf,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl PluginsConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path, env: &Env, plugin_dir: &Path) -> Result<Self, PluginsConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| PluginsConfigError {
            file: path.to_path_buf(),
            problems: vec![format!(
                "cannot read it: {e} (set LOGRELAY_PLUGINS to the path of your plugins.toml)"
            )],
        })?;
        Self::parse(&text, env, plugin_dir).map_err(|problems| PluginsConfigError {
            file: path.to_path_buf(),
            problems,
        })
    }

    /// Parses plugins.toml text; on failure returns every problem found.
    pub fn parse(text: &str, env: &Env, plugin_dir: &Path) -> Result<Self, Vec<String>> {
        let mut root: toml::Table = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let plugins = match root.remove("plugins") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(vec!["`plugins` must be a table: [plugins.<name>]".into()]),
            None => toml::Table::new(),
        };
        for key in root.keys() {
            problems.push(format!(
                "unknown top-level key `{key}`; instances go under [plugins.<name>]"
            ));
        }
        let mut instances = Vec::new();
        for (name, value) in plugins {
            match parse_instance(&name, value, env, plugin_dir) {
                Ok(spec) => instances.push(spec),
                Err(mut errs) => problems.append(&mut errs),
            }
        }
        if problems.is_empty() {
            Ok(PluginsConfig { instances })
        } else {
            Err(problems)
        }
    }

    /// The instances that are enabled.
    pub fn enabled(&self) -> impl Iterator<Item = &InstanceSpec> {
        self.instances.iter().filter(|i| i.enabled)
    }
}

fn parse_instance(
    name: &str,
    mut value: toml::Value,
    env: &Env,
    plugin_dir: &Path,
) -> Result<InstanceSpec, Vec<String>> {
    let at = format!("[plugins.{name}]");
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(vec![format!(
            "{at}: instance names may use letters, digits, `_` and `-` only"
        )]);
    }
    let mut problems = Vec::new();
    substitute(&mut value, env, &mut Vec::new(), &mut |path, var| {
        problems.push(format!(
            "{at}: `{path}` uses ${{{var}}}, which is not set in the environment or .env"
        ));
    });
    let raw: RawInstance = match value.try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(format!("{at}: {}", e.message().trim()));
            return Err(problems);
        }
    };
    let route = match build_route(&raw.route) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!("{at} route: {e}"));
            None
        }
    };
    if raw.type_name.is_empty()
        || !raw
            .type_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(format!(
            "{at}: `type = {:?}` is not a connector type name",
            raw.type_name
        ));
    }
    let config_json = match serde_json::to_string(&raw.config) {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!("{at}: config cannot be passed on as JSON: {e}"));
            String::new()
        }
    };
    let (Some(route), true) = (route, problems.is_empty()) else {
        return Err(problems);
    };
    let library = raw.path.unwrap_or_else(|| {
        plugin_dir.join(format!(
            "liblogrelay_{}.so",
            raw.type_name.replace('-', "_")
        ))
    });
    Ok(InstanceSpec {
        name: name.to_owned(),
        acceptance: raw
            .acceptance
            .unwrap_or_else(|| Acceptance::default_for(&raw.type_name)),
        type_name: raw.type_name,
        enabled: raw.enabled,
        library,
        route,
        config_json,
    })
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::from_name(s).ok_or_else(|| {
        format!("unknown level {s:?}; use trace, debug, info, warning, error or critical")
    })
}

fn build_route(raw: &RawRoute) -> Result<Route, String> {
    let levels = match (&raw.levels, &raw.min_level) {
        (Some(_), Some(_)) => return Err("give either `levels` or `min_level`, not both".into()),
        (Some(list), None) if list.is_empty() => {
            return Err("`levels = []` would pass nothing; remove it to pass every level".into());
        }
        (Some(list), None) => {
            let mut mask = 0u8;
            for l in list {
                mask |= 1 << parse_level(l)?.0;
            }
            Some(mask)
        }
        (None, Some(min)) => {
            let min = parse_level(min)?;
            Some(
                Level::ALL
                    .iter()
                    .filter(|l| **l >= min)
                    .fold(0u8, |m, l| m | 1 << l.0),
            )
        }
        (None, None) => None,
    };
    Ok(Route {
        levels,
        projects: raw.projects.clone(),
        modules: raw.modules.clone(),
    })
}

/// Replaces `${VAR}` in every string below `value`; `$${` stays a literal `${`.
fn substitute(
    value: &mut toml::Value,
    env: &Env,
    path: &mut Vec<String>,
    missing: &mut dyn FnMut(&str, &str),
) {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(pos) = rest.find("${") {
                if rest[..pos].ends_with('$') {
                    out.push_str(&rest[..pos - 1]);
                    out.push_str("${");
                    rest = &rest[pos + 2..];
                    continue;
                }
                out.push_str(&rest[..pos]);
                let after = &rest[pos + 2..];
                match after.find('}') {
                    Some(end) => {
                        let var = &after[..end];
                        match env.get(var) {
                            Some(v) => out.push_str(v),
                            None => missing(&path.join("."), var),
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[pos..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute(item, env, path, missing);
                path.pop();
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                path.push(k.clone());
                substitute(v, env, path, missing);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use logrelay_plugin_api::Record;

    use super::*;

    fn env() -> Env {
        Env::from_pairs([("DB", "postgres://x"), ("EMPTY", "")])
    }

    #[test]
    fn parses_instances_with_defaults_and_substitution() {
        let text = r#"
[plugins.out]
type = "console"
[plugins.store]
type = "timescale"
path = "/opt/lib.so"
[plugins.store.config]
url = "${DB}/logs"
literal = "$${NOT_A_VAR}"
[plugins.errors]
type = "console"
delivery = "required"
route = { min_level = "error", projects = ["shop"] }
"#;
        let cfg = PluginsConfig::parse(text, &env(), Path::new("/plugins")).expect("parses");
        assert_eq!(cfg.instances.len(), 3);
        let errors = &cfg.instances[0];
        assert_eq!(errors.name, "errors");
        assert_eq!(errors.acceptance, Acceptance::Required);
        let mut r = Record::new("1", 0, Level::ERROR, "shop", "db", "m");
        assert!(errors.route.matches(&r));
        r.level = Level::WARNING;
        assert!(!errors.route.matches(&r));
        let out = &cfg.instances[1];
        assert_eq!(out.acceptance, Acceptance::BestEffort);
        assert_eq!(out.library, Path::new("/plugins/liblogrelay_console.so"));
        assert!(out.route.is_all());
        let store = &cfg.instances[2];
        assert_eq!(store.library, Path::new("/opt/lib.so"));
        assert_eq!(
            store.config_json,
            r#"{"literal":"${NOT_A_VAR}","url":"postgres://x/logs"}"#
        );
    }

    #[test]
    fn acceptance_is_the_key_and_delivery_its_alias_not_both() {
        let parse = |key: &str| {
            let text = format!("[plugins.out]\ntype = \"console\"\n{key}\n");
            PluginsConfig::parse(&text, &env(), Path::new("/plugins"))
        };
        for key in ["acceptance = \"required\"", "delivery = \"required\""] {
            let cfg = parse(key).expect("parses");
            assert_eq!(cfg.instances[0].acceptance, Acceptance::Required, "{key}");
        }
        let both = parse("acceptance = \"required\"\ndelivery = \"best_effort\"");
        assert!(both.is_err(), "{both:?}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = r#"
typo = 1
[plugins.a]
type = "console"
enabeld = true
[plugins.b]
type = "files"
route = { levels = ["loud"] }
[plugins.c]
type = "timescale"
[plugins.c.config]
url = "${MISSING_VAR}"
"#;
        let problems = PluginsConfig::parse(text, &env(), Path::new("/p")).expect_err("bad");
        let all = problems.join("\n");
        assert_eq!(problems.len(), 4, "{all}");
        assert!(all.contains("unknown top-level key `typo`"), "{all}");
        assert!(
            all.contains("[plugins.a]") && all.contains("enabeld"),
            "{all}"
        );
        assert!(all.contains("unknown level \"loud\""), "{all}");
        assert!(
            all.contains("MISSING_VAR") && all.contains("`config.url`"),
            "{all}"
        );
    }

    #[test]
    fn an_empty_level_list_is_an_error() {
        let text = "[plugins.a]\ntype = \"x\"\nroute = { levels = [] }\n";
        let problems = PluginsConfig::parse(text, &env(), Path::new("/p")).expect_err("bad");
        assert!(problems[0].contains("levels = []"), "{problems:?}");
    }

    #[test]
    fn both_levels_and_min_level_is_an_error() {
        let text =
            "[plugins.a]\ntype = \"x\"\nroute = { levels = [\"info\"], min_level = \"info\" }\n";
        let problems = PluginsConfig::parse(text, &env(), Path::new("/p")).expect_err("bad");
        assert!(
            problems[0].contains("either `levels` or `min_level`"),
            "{problems:?}"
        );
    }
}
