//! Where things are in the file: key paths to lines and error locations to key paths.
//!
//! The text is deserialized a second time into a tree of [`Spanned`] keys and values, which
//! `serde-saphyr` fills in with the line and column of every node. This handles every YAML
//! form the typed parse accepts (block and flow style, quoted keys, comments, anchors).
//! Flattened into [`KeyIndex`], the tree answers two questions:
//!
//! - the line of a key path, for validation errors (`backends[1].address` -> 12);
//! - the key path at a location, for the errors of the typed parse, which carry a location
//!   but no path (an unknown key, a wrong type).
//!
//! A YAML syntax error stops the tree from being built; for it, [`path_at_line`] guesses the
//! key path from indentation alone. That understands block mappings (`key:`) and block
//! sequences (`- `), the usual shape of a config file, but not flow collections (`{...}`,
//! `[...]`) spanning lines, multi-line scalars or keys with `: ` inside quotes; there the
//! guess may be off or empty, the line and column are always right. Values reached through
//! an alias are located at the alias.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{
    DuplicateKeyPolicy, Error as DeError, Location, MessageFormatter, Spanned, UserMessageFormatter,
};

use super::ConfigError;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    /// `None` for `serde-saphyr`'s unknown location (line 0).
    fn from_location(location: Location) -> Option<Pos> {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        (line > 0).then_some(Pos { line, column })
    }
}

/// One key (or sequence item) of the file.
#[derive(Debug)]
struct Entry {
    /// Dotted path, e.g. `backends[1].address`.
    path: String,
    /// Where the key is; `None` for a sequence item.
    key: Option<Pos>,
    /// Where the value starts.
    value: Option<Pos>,
}

/// The longest key path indexed (`locations[3].params.PHP_VALUE` is 30).
const MAX_PATH: usize = 256;

/// Key paths of the file with their locations, in file order.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

impl KeyIndex {
    /// Reads `text` into the index; fails on YAML syntax errors.
    pub(super) fn build(text: &str) -> Result<KeyIndex, ConfigError> {
        // Later duplicates win here so the duplicate key itself is indexed; the typed parse
        // rejects duplicates and this index then names them.
        let options = serde_saphyr::options! {
            duplicate_keys: DuplicateKeyPolicy::LastWins,
        };
        let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| de_error(&e, text, None))?;
        let mut index = KeyIndex::default();
        index.add_children("", &root.value);
        Ok(index)
    }

    fn add_children(&mut self, path: &str, node: &Node) {
        match node {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let path = join(path, &key.value.0);
                    self.add(&path, Pos::from_location(key.referenced), value);
                }
            }
            Node::Seq(items) => {
                for (i, value) in items.iter().enumerate() {
                    self.add(&format!("{path}[{i}]"), None, value);
                }
            }
            Node::Scalar => {}
        }
    }

    fn add(&mut self, path: &str, key: Option<Pos>, value: &Spanned<Node>) {
        // No real key path is this long: a long key is indexed no further
        // (its children would each copy it: a few hundred KiB of YAML made
        // gigabytes), and the typed parse refuses it, without a line.
        if path.len() > MAX_PATH {
            return;
        }
        self.by_path.insert(path.to_owned(), self.entries.len());
        self.entries.push(Entry {
            path: path.to_owned(),
            key,
            value: Pos::from_location(value.referenced),
        });
        self.add_children(path, &value.value);
    }

    /// Line of the key at `path`; for a sequence item, the line where the item starts.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let entry = self.entries.get(*self.by_path.get(path)?)?;
        entry.key.or(entry.value).map(|pos| pos.line)
    }

    /// Line where the value at `path` starts (for a backend: its first key).
    pub(super) fn value_line_of(&self, path: &str) -> Option<usize> {
        let entry = self.entries.get(*self.by_path.get(path)?)?;
        entry.value.or(entry.key).map(|pos| pos.line)
    }

    /// Path of the key written at `pos`.
    fn key_at(&self, pos: Pos) -> Option<&str> {
        let entry = self.entries.iter().rev().find(|e| e.key == Some(pos))?;
        Some(&entry.path)
    }

    /// Path of the value starting at `pos`, the innermost one if several start there.
    fn value_at(&self, pos: Pos) -> Option<&str> {
        let entry = self.entries.iter().rev().find(|e| e.value == Some(pos))?;
        Some(&entry.path)
    }

    /// Path of the last key or value starting at or before `pos`: the node `pos` is in.
    fn nearest(&self, pos: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter_map(|e| {
                let start = [e.key, e.value]
                    .into_iter()
                    .flatten()
                    .filter(|p| *p <= pos)
                    .max()?;
                Some((start, e))
            })
            .max_by_key(|(start, _)| *start)
            .map(|(_, e)| e.path.as_str())
    }
}

/// `parent.key`, or `key` at the top level.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Turns an error of `serde-saphyr` into a [`ConfigError`] naming the key path and line.
///
/// `index` is `None` when the error comes from building the index itself (a syntax error).
pub(super) fn de_error(err: &DeError, text: &str, index: Option<&KeyIndex>) -> ConfigError {
    let location = err.location();
    let pos = location.and_then(Pos::from_location);
    let line = pos.map(|p| p.line);
    let path_by = |find: fn(&KeyIndex, Pos) -> Option<&str>| -> String {
        index
            .zip(pos)
            .and_then(|(index, pos)| find(index, pos))
            .unwrap_or_default()
            .to_owned()
    };
    let source = || location.and_then(|l| source_text(text, l));
    let (key, message) = match innermost(err) {
        DeError::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut key = path_by(KeyIndex::key_at);
            if key.is_empty() {
                key.clone_from(field);
            }
            (key, unknown_key_message(field, expected))
        }
        DeError::SerdeMissingField { field, .. } => (
            join(&path_by(KeyIndex::value_at), field),
            "missing required key".to_owned(),
        ),
        DeError::DuplicateMappingKey { .. } => {
            (path_by(KeyIndex::key_at), "duplicate key".to_owned())
        }
        DeError::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            path_by(KeyIndex::value_at),
            format!(
                "unknown value {variant:?}, expected one of: {}",
                expected.join(", ")
            ),
        ),
        DeError::InvalidScalar { ty, .. } => (
            path_by(KeyIndex::value_at),
            match source() {
                Some(found) => format!("invalid value {found:?}: expected {}", describe_type(ty)),
                None => format!("invalid value: expected {}", describe_type(ty)),
            },
        ),
        DeError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | DeError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            path_by(KeyIndex::value_at),
            format!("expected {expected}, found {unexpected}"),
        ),
        DeError::Unexpected { expected, .. } => {
            let what = match *expected {
                "mapping start" => "a mapping of keys (key: value)",
                "sequence start" => "a list",
                "string scalar" => "a single value, not a list or mapping",
                other => other,
            };
            (path_by(KeyIndex::value_at), format!("expected {what}"))
        }
        DeError::MultipleDocuments { .. } => (
            String::new(),
            "YAML error: only one YAML document is allowed (remove the `---` separator)".to_owned(),
        ),
        DeError::NullIntoString { .. } => (
            path_by(KeyIndex::value_at),
            "expected a value, found nothing (null)".to_owned(),
        ),
        inner => {
            let message = sanitize(&UserMessageFormatter.format_message(inner));
            let message = match pos {
                Some(pos) => format!("YAML error: {message} (column {})", pos.column),
                None => format!("YAML error: {message}"),
            };
            let key = match index {
                Some(_) => path_by(KeyIndex::nearest),
                None => line.map(|l| path_at_line(text, l)).unwrap_or_default(),
            };
            (key, message)
        }
    };
    ConfigError { key, line, message }
}

/// One level of the key path while scanning lines: a key or a sequence item.
enum Level<'t> {
    Key(&'t str),
    Item(usize),
}

/// Guesses the key path at line `line` (1-based) from indentation, for YAML syntax errors.
///
/// Reads the lines up to `line` keeping a stack of the block mapping keys and sequence items
/// that enclose each line, by column. See the module documentation for the limitations.
pub(super) fn path_at_line(text: &str, line: usize) -> String {
    let mut stack: Vec<(usize, Level<'_>)> = Vec::new();
    for raw in text.lines().take(line) {
        let content = raw.trim_start_matches(' ');
        let marker = |m: &str| raw == m || raw.starts_with(&format!("{m} "));
        if marker("---") || marker("...") {
            // A new document starts from the top.
            stack.clear();
            continue;
        }
        // Tabs are not YAML indentation: such a line tells nothing reliable.
        if content.is_empty() || content.starts_with(['#', '\t']) {
            continue;
        }
        let mut column = raw.len() - content.len();
        let mut rest = content;
        // A line may open several items and a key at once: `- - name: x`.
        while rest == "-" || rest.starts_with("- ") {
            // Keys and items nested deeper than this item end here; so does the previous
            // item of the same sequence, whose index this one continues.
            while stack.last().is_some_and(|(c, _)| *c > column) {
                stack.pop();
            }
            let index = match stack.last() {
                Some((c, Level::Item(i))) if *c == column => {
                    let next = i + 1;
                    stack.pop();
                    next
                }
                _ => 0,
            };
            stack.push((column, Level::Item(index)));
            let item = rest.get(1..).unwrap_or_default();
            let inner = item.trim_start_matches(' ');
            column += 1 + item.len() - inner.len();
            rest = inner;
        }
        if let Some(key) = block_key(rest) {
            while stack.last().is_some_and(|(c, _)| *c >= column) {
                stack.pop();
            }
            stack.push((column, Level::Key(key)));
        }
    }
    let mut path = String::new();
    for (_, level) in &stack {
        match level {
            Level::Key(key) => path = join(&path, key),
            Level::Item(i) => path = format!("{path}[{i}]"),
        }
    }
    path
}

/// The key of a `key: value` or `key:` line, without quotes.
fn block_key(content: &str) -> Option<&str> {
    if content.starts_with(['{', '[', '#', '&', '*', '!', '|', '>', '?']) {
        return None;
    }
    for quote in ['"', '\''] {
        if let Some(quoted) = content.strip_prefix(quote) {
            let (key, after) = quoted.split_once(quote)?;
            let after = after.trim_start_matches(' ');
            return (after == ":" || after.starts_with(": ")).then_some(key);
        }
    }
    let end = content
        .find(": ")
        .or_else(|| content.strip_suffix(':').map(str::len))?;
    let key = content.get(..end)?.trim_end();
    (!key.is_empty() && !key.contains(" #")).then_some(key)
}

/// The error itself, without the snippet and alias wrappers of `serde-saphyr`.
fn innermost(mut err: &DeError) -> &DeError {
    loop {
        match err {
            DeError::WithSnippet { error, .. } | DeError::AliasError { error, .. } => err = error,
            other => return other,
        }
    }
}

/// The text of the scalar at `location`, if the location has a byte span.
fn source_text(text: &str, location: Location) -> Option<&str> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?)
        .filter(|s| !s.is_empty())
}

/// What a scalar type of the raw structs means to an operator.
fn describe_type(ty: &str) -> Cow<'static, str> {
    match ty {
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number of 0 or more".into(),
        "bool" | "boolean" => "true or false".into(),
        other => format!("a value of type {other}").into(),
    }
}

/// "unknown key", with the closest known key as a suggestion, else the list of known keys.
fn unknown_key_message(field: &str, expected: &[&str]) -> String {
    let closest = expected
        .iter()
        .map(|known| (edit_distance(field, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((_, known)) => format!("unknown key {field:?}, did you mean {known:?}?"),
        None if expected.is_empty() => format!("unknown key {field:?}: no keys are allowed here"),
        None => format!(
            "unknown key {field:?} (known keys: {})",
            expected.join(", ")
        ),
    }
}

/// Levenshtein distance, for "did you mean" suggestions on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Replaces control characters so a message stays on one line and is safe for terminals.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A YAML node of the location tree: only the structure matters, scalars are dropped.
enum Node {
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// A mapping key as text (keys that are numbers or booleans are kept as written).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("~".to_owned()))
            }

            fn visit_none<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("~".to_owned()))
            }
        }

        d.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<Key>>()? {
                    entries.push((key, map.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Map(entries))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
        }

        d.deserialize_any(NodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key no config has is indexed no further: its children would each
    /// copy its path (a long key over a long list made gigabytes).
    #[test]
    fn a_long_key_is_not_indexed_below() {
        let key = "k".repeat(MAX_PATH + 1);
        let items = vec!["0"; 1000].join(", ");
        let text = format!("listen: \":80\"\n{key}: [{items}]\n");
        let index = KeyIndex::build(&text).unwrap();
        assert_eq!(index.entries.len(), 1, "only listen");
        assert_eq!(index.line_of("listen"), Some(1));
        let err = crate::config::Config::from_yaml(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key"), "{err}");
    }
}
