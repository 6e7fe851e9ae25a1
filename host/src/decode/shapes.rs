//! The shapes loggers write: which key names which known field (the alias table, written once
//! here and shown as a table in `docs/SHAPES.md`), how a shape's value is read beyond the field's
//! type rules, and the options the decoder runs with (the user's extra aliases, text intake).
//!
//! One macro makes both the table ([`BUILTIN`]) and a compiled `match` over its names, used when
//! no user alias is configured. With `LOGRELAY_FIELD_ALIASES`, the table and the user's names
//! are turned once, at start-up, into a lookup table bucketed by a few bytes of each key (the
//! user's ahead of the built-in ones). Either way nothing is allocated per record.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

/// The known fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// When it happened.
    Timestamp,
    /// Its severity.
    Level,
    /// The application or service that logged it.
    Project,
    /// The part of the application (logger name, target, component).
    Module,
    /// The text.
    Message,
    /// The producer's id of the record.
    Id,
}

impl Field {
    /// Every field, in the order of the record.
    pub const ALL: [Field; 6] = [
        Field::Timestamp,
        Field::Level,
        Field::Project,
        Field::Module,
        Field::Message,
        Field::Id,
    ];

    /// The field's name in settings and documentation.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Timestamp => "timestamp",
            Field::Level => "level",
            Field::Project => "project",
            Field::Module => "module",
            Field::Message => "message",
            Field::Id => "id",
        }
    }

    /// The field of a name as written in `LOGRELAY_FIELD_ALIASES`.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a name's value is read beyond the rules of its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Only the field's rules.
    Plain,
    /// A level on the syslog scale, 0 (emergency) to 7 (debug): journald's `PRIORITY`.
    Syslog,
    /// GELF's `short_message`: a numeric `level` of the same object is on the syslog scale.
    Gelf,
    /// Docker's `log`: one trailing line break is dropped.
    TrimLineBreak,
    /// Serilog's `@mt`: a message template rendered with the object's properties; the template
    /// also stays in the attributes.
    Template,
}

/// One built-in name of a known field.
#[derive(Debug, Clone, Copy)]
pub(super) struct Builtin {
    /// The key, dotted for a member of an object (`log.level` is the key `log.level` or the
    /// member `level` of an object under `log`).
    pub(super) name: &'static str,
    /// The field it names.
    pub(super) field: Field,
    /// How its value is read.
    pub(super) rule: Rule,
}

const fn b(name: &'static str, field: Field, rule: Rule) -> Builtin {
    Builtin { name, field, rule }
}

/// Defines [`BUILTIN`] and its compiled lookup [`builtin_alias`] from one list.
macro_rules! builtin_names {
    ($( $name:literal => $field:ident, $rule:ident; )*) => {
        /// The built-in names of each field, by priority within the field (the first is used
        /// when an object has several). `docs/SHAPES.md` shows which logger writes which; a
        /// test keeps the two in step.
        pub(super) const BUILTIN: &[Builtin] = &[ $( b($name, Field::$field, Rule::$rule), )* ];

        /// The alias of a built-in name, by a `match` the compiler turns into a length switch
        /// and inline compares (used when no user alias is configured).
        #[inline]
        fn builtin_alias(key: &str) -> Option<Alias> {
            match key {
                $( $name => Some(const { alias_of($name) }), )*
                _ => None,
            }
        }
    };
}

builtin_names! {
    "timestamp" => Timestamp, Plain;
    "ts" => Timestamp, Plain;
    "time" => Timestamp, Plain;
    "@timestamp" => Timestamp, Plain;
    "datetime" => Timestamp, Plain;
    "created" => Timestamp, Plain;
    "asctime" => Timestamp, Plain;
    "@t" => Timestamp, Plain;
    "_SOURCE_REALTIME_TIMESTAMP" => Timestamp, Plain;
    "__REALTIME_TIMESTAMP" => Timestamp, Plain;
    "level" => Level, Plain;
    "levelname" => Level, Plain;
    "severity" => Level, Plain;
    "lvl" => Level, Plain;
    "log_level" => Level, Plain;
    "loglevel" => Level, Plain;
    "log.level" => Level, Plain;
    "@l" => Level, Plain;
    "PRIORITY" => Level, Syslog;
    "project" => Project, Plain;
    "service" => Project, Plain;
    "app" => Project, Plain;
    "application" => Project, Plain;
    "service.name" => Project, Plain;
    "module" => Module, Plain;
    "logger" => Module, Plain;
    "name" => Module, Plain;
    "logger_name" => Module, Plain;
    "component" => Module, Plain;
    "log.logger" => Module, Plain;
    "SourceContext" => Module, Plain;
    "SYSLOG_IDENTIFIER" => Module, Plain;
    "target" => Module, Plain;
    "message" => Message, Plain;
    "msg" => Message, Plain;
    "text" => Message, Plain;
    "@m" => Message, Plain;
    "event" => Message, Plain;
    "fields.message" => Message, Plain;
    "short_message" => Message, Gelf;
    "MESSAGE" => Message, Plain;
    "log" => Message, TrimLineBreak;
    "@mt" => Message, Template;
    "id" => Id, Plain;
}

/// The prefixes of the dotted built-in names (a test checks them against [`BUILTIN`]).
#[inline]
fn builtin_container(key: &str) -> bool {
    matches!(key, "log" | "service" | "fields")
}

/// The alias of a built-in name: its field, its rank among the names of that field, its rule.
const fn alias_of(name: &str) -> Alias {
    let mut i = 0;
    let mut rank = 0u8;
    while i < BUILTIN.len() {
        let entry = &BUILTIN[i];
        if same_const(entry.name, name) {
            let mut j = 0;
            while j < i {
                if BUILTIN[j].field as u8 == entry.field as u8 {
                    rank += 1;
                }
                j += 1;
            }
            return Alias {
                field: entry.field,
                rank,
                rule: entry.rule,
            };
        }
        i += 1;
    }
    panic!("not a built-in name")
}

const fn same_const(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A name of a known field, with its priority (0 first) and how its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Alias {
    pub(super) field: Field,
    pub(super) rank: u8,
    pub(super) rule: Rule,
}

/// What a key is to the decoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct KeyInfo {
    /// The known field it names, if any.
    pub(super) alias: Option<Alias>,
    /// Whether it is the dotted prefix of a name (`log` of `log.level`): an object under it is
    /// searched for the rest of the name.
    pub(super) container: bool,
}

/// The names of the known fields and their prefixes, in buckets by a few of their bytes: finding
/// a key costs a few byte reads and, when its bucket is not empty (most attribute keys fall in
/// an empty one), a comparison or two.
#[derive(Clone)]
struct KeyTable {
    /// Bucket `b` holds `entries[starts[b]..starts[b + 1]]`.
    starts: Box<[u32]>,
    entries: Box<[(Box<str>, KeyInfo)]>,
}

/// Buckets of [`KeyTable`] (a power of two).
const BUCKETS: usize = 1024;

/// The bucket of a key: from its length and its first, middle and last bytes.
#[inline]
fn bucket(key: &str) -> usize {
    let bytes = key.as_bytes();
    let byte = |i: usize| usize::from(bytes.get(i).copied().unwrap_or(0));
    let len = bytes.len();
    let mixed = len.wrapping_mul(0x9E)
        ^ byte(0).wrapping_mul(0x3B)
        ^ byte(len / 2).wrapping_mul(0x1F)
        ^ byte(len.wrapping_sub(1)).wrapping_mul(0x65);
    (mixed ^ (mixed >> 10)) & (BUCKETS - 1)
}

impl KeyTable {
    fn new(map: HashMap<Box<str>, KeyInfo>) -> KeyTable {
        let mut entries: Vec<(usize, Box<str>, KeyInfo)> =
            map.into_iter().map(|(k, v)| (bucket(&k), k, v)).collect();
        entries.sort_by_key(|e| e.0);
        let mut starts = vec![0u32; BUCKETS + 1];
        for (b, _, _) in &entries {
            if let Some(n) = starts.get_mut(b + 1) {
                *n += 1;
            }
        }
        for i in 1..starts.len() {
            let before = starts.get(i - 1).copied().unwrap_or(0);
            if let Some(n) = starts.get_mut(i) {
                *n += before;
            }
        }
        KeyTable {
            starts: starts.into_boxed_slice(),
            entries: entries.into_iter().map(|(_, k, v)| (k, v)).collect(),
        }
    }

    #[inline]
    fn get(&self, key: &str) -> Option<KeyInfo> {
        let b = bucket(key);
        let start = *self.starts.get(b)? as usize;
        let end = *self.starts.get(b + 1)? as usize;
        self.entries
            .get(start..end)?
            .iter()
            .find(|(k, _)| same(k.as_bytes(), key.as_bytes()))
            .map(|(_, info)| *info)
    }
}

/// Byte equality, without a call to `memcmp` for the short keys of logs.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        let mut x = [0u8; 16];
        let mut y = [0u8; 16];
        if let (Some(x), Some(y)) = (x.get_mut(..a.len()), y.get_mut(..b.len())) {
            x.copy_from_slice(a);
            y.copy_from_slice(b);
        }
        return u128::from_ne_bytes(x) == u128::from_ne_bytes(y);
    }
    a == b
}

/// Whether plain-text lines are records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextIntake {
    /// A line that is neither JSON nor logfmt is bad (the default).
    #[default]
    Off,
    /// A line that is neither JSON nor logfmt is a record of its own: the line is the message,
    /// and a leading level word (`ERROR`, `[warn]`, `INFO:`) is the level.
    Lines,
}

impl TextIntake {
    /// The setting's value for this mode.
    pub const fn name(self) -> &'static str {
        match self {
            TextIntake::Off => "off",
            TextIntake::Lines => "lines",
        }
    }
}

impl fmt::Display for TextIntake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An extra name of a known field, from `LOGRELAY_FIELD_ALIASES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAlias {
    /// The field.
    pub field: Field,
    /// The key (dotted for a member of an object).
    pub name: String,
}

/// Parses `LOGRELAY_FIELD_ALIASES`: `field=name,name;field=name`, e.g.
/// `message=body,event_text;level=sev;module=origin.component`.
pub fn parse_user_aliases(text: &str) -> Result<Vec<UserAlias>, String> {
    let mut out: Vec<UserAlias> = Vec::new();
    for group in text.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let Some((field, names)) = group.split_once('=') else {
            return Err(format!(
                "`{group}` is not FIELD=NAME[,NAME...] (e.g. message=body;level=sev)"
            ));
        };
        let field = field.trim();
        let Some(field) = Field::from_name(field) else {
            return Err(format!(
                "`{field}` is not a field; the fields are timestamp, level, project, module, message, id"
            ));
        };
        for name in names.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(format!("an empty name for {field}"));
            }
            if name.len() > 128 {
                return Err(format!("the name `{name}` is longer than 128 bytes"));
            }
            if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
                return Err(format!(
                    "the name `{name}` has an empty part between its dots"
                ));
            }
            if let Some(other) = out.iter().find(|a| a.name == name) {
                return Err(format!(
                    "the name `{name}` is given for both {} and {field}",
                    other.field
                ));
            }
            out.push(UserAlias {
                field,
                name: name.to_owned(),
            });
        }
    }
    if out.len() > 200 {
        return Err(format!("{} names; at most 200 are allowed", out.len()));
    }
    Ok(out)
}

/// What the decoder runs with, worked out once at start-up from the settings.
#[derive(Clone)]
pub struct DecodeOptions {
    table: KeyTable,
    /// How many dots the most deeply dotted name has: how deep objects are searched.
    max_dots: usize,
    /// Per field, its names by priority, for the error of a missing message.
    looked_for: [String; 6],
    /// The user's aliases, as given (for `Debug` and the settings' display).
    user: Vec<UserAlias>,
    /// Whether plain-text lines are records.
    pub text_intake: TextIntake,
}

impl fmt::Debug for DecodeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeOptions")
            .field("user_aliases", &self.user)
            .field("text_intake", &self.text_intake)
            .finish_non_exhaustive()
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions::new(&[], TextIntake::Off)
    }
}

static BUILTIN_OPTIONS: LazyLock<DecodeOptions> = LazyLock::new(DecodeOptions::default);

impl DecodeOptions {
    /// The built-in names only, and no text intake (the defaults of the settings).
    pub fn builtin() -> &'static DecodeOptions {
        &BUILTIN_OPTIONS
    }

    /// The built-in names with the user's ahead of them (a user's name that is also a built-in
    /// name of another field moves to the user's field), and the text intake mode.
    pub fn new(user: &[UserAlias], text_intake: TextIntake) -> DecodeOptions {
        let mut map: HashMap<Box<str>, KeyInfo> = HashMap::new();
        let mut ranks = [0u8; 6];
        let mut names: [Vec<&str>; 6] = Default::default();
        let user_entries = user.iter().map(|a| (a.name.as_str(), a.field, Rule::Plain));
        let builtin = BUILTIN.iter().map(|b| (b.name, b.field, b.rule));
        for (name, field, rule) in user_entries.chain(builtin) {
            let info = map.entry(Box::from(name)).or_default();
            if info.alias.is_some() {
                // Already the user's.
                continue;
            }
            let rank = ranks.get_mut(field.index()).map_or(u8::MAX, |r| {
                let rank = *r;
                *r = r.saturating_add(1);
                rank
            });
            info.alias = Some(Alias { field, rank, rule });
            if let Some(list) = names.get_mut(field.index()) {
                list.push(name);
            }
            // Every dotted prefix is a container.
            for (i, _) in name.match_indices('.') {
                if let Some(prefix) = name.get(..i) {
                    map.entry(Box::from(prefix)).or_default().container = true;
                }
            }
        }
        let max_dots = map
            .keys()
            .map(|k| k.matches('.').count())
            .max()
            .unwrap_or(0);
        DecodeOptions {
            table: KeyTable::new(map),
            max_dots,
            looked_for: names.map(|list| list.join(", ")),
            user: user.to_vec(),
            text_intake,
        }
    }

    /// What a key is to the decoder; `None` for an attribute.
    #[inline]
    pub(super) fn key(&self, key: &str) -> Option<KeyInfo> {
        if !self.user.is_empty() {
            return self.table.get(key);
        }
        let alias = builtin_alias(key);
        let container = builtin_container(key);
        (alias.is_some() || container).then_some(KeyInfo { alias, container })
    }

    /// How deep objects are searched for dotted names.
    pub(super) fn max_dots(&self) -> usize {
        self.max_dots
    }

    /// The names of a field by priority, joined by `, `.
    pub(super) fn looked_for(&self, field: Field) -> &str {
        self.looked_for
            .get(field.index())
            .map_or("", String::as_str)
    }

    /// The user's aliases, as configured.
    pub fn user_aliases(&self) -> &[UserAlias] {
        &self.user
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn builtin_ranks_follow_the_table() {
        let o = DecodeOptions::builtin();
        let level = |k: &str| o.key(k).and_then(|i| i.alias);
        assert_eq!(level("level").unwrap().rank, 0);
        assert_eq!(level("levelname").unwrap().rank, 1);
        assert_eq!(level("PRIORITY").unwrap().rule, Rule::Syslog);
        assert_eq!(level("nope"), None);
        let log = o.key("log").unwrap();
        assert!(log.container);
        assert_eq!(log.alias.unwrap().field, Field::Message);
        assert!(o.key("fields").unwrap().container);
        assert_eq!(o.key("fields").unwrap().alias, None);
        assert_eq!(o.max_dots(), 1);
        assert_eq!(
            o.looked_for(Field::Message),
            "message, msg, text, @m, event, fields.message, short_message, MESSAGE, log, @mt"
        );
    }

    #[test]
    fn the_compiled_lookup_agrees_with_the_table() {
        let o = DecodeOptions::builtin();
        let mut keys: Vec<&str> = o.table.entries.iter().map(|(k, _)| &**k).collect();
        keys.extend(["", "nope", "Level", "log.nope", "fields.x", "services"]);
        for key in keys {
            assert_eq!(o.key(key), o.table.get(key), "{key:?}");
        }
        let containers = o.table.entries.iter().filter(|(_, i)| i.container).count();
        assert_eq!(containers, 3, "builtin_container lists every prefix");
    }

    #[test]
    fn docs_shapes_names_every_builtin_name() {
        let docs = include_str!("../../../docs/SHAPES.md");
        for b in BUILTIN {
            assert!(
                docs.contains(&format!("`{}`", b.name)),
                "docs/SHAPES.md does not name `{}`",
                b.name
            );
        }
    }

    #[test]
    fn user_aliases_go_first_and_may_move_a_name() {
        let user = parse_user_aliases(" message = body , x.y.z ; project=name ").unwrap();
        let o = DecodeOptions::new(&user, TextIntake::Off);
        let alias = |k: &str| o.key(k).and_then(|i| i.alias).unwrap();
        assert_eq!(alias("body").field, Field::Message);
        assert_eq!(alias("body").rank, 0);
        assert_eq!(alias("x.y.z").rank, 1);
        assert_eq!(alias("message").rank, 2);
        assert_eq!(alias("name").field, Field::Project);
        assert_eq!(alias("project").rank, 1);
        assert!(o.key("x").unwrap().container);
        assert!(o.key("x.y").unwrap().container);
        assert_eq!(o.max_dots(), 2);
        assert!(
            o.looked_for(Field::Message)
                .starts_with("body, x.y.z, message")
        );
        assert!(!o.looked_for(Field::Module).split(", ").any(|n| n == "name"));
    }

    #[test]
    fn user_alias_errors_say_what_to_write() {
        assert_eq!(
            parse_user_aliases("message"),
            Err("`message` is not FIELD=NAME[,NAME...] (e.g. message=body;level=sev)".into())
        );
        assert_eq!(
            parse_user_aliases("msg=body"),
            Err("`msg` is not a field; the fields are timestamp, level, project, module, message, id".into())
        );
        assert_eq!(
            parse_user_aliases("message=a,,b"),
            Err("an empty name for message".into())
        );
        assert_eq!(
            parse_user_aliases("message=a..b"),
            Err("the name `a..b` has an empty part between its dots".into())
        );
        assert_eq!(
            parse_user_aliases("message=a;level=a"),
            Err("the name `a` is given for both message and level".into())
        );
        assert_eq!(parse_user_aliases(" ; "), Ok(vec![]));
    }
}
