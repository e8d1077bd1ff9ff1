//! How the configuration file's values are checked as they are read, and
//! where in the file a problem is: the rules a value must meet (checked by
//! the deserializers the configuration's structs name), and the line,
//! column and dotted key of an error TOML reports.

use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, Error};

/// What a rule's error message starts with: the rest is the rule, and the
/// error is reported as `KEY must be RULE` (the key found from where the
/// value is in the file).
pub(crate) const MUST_BE: &str = "must be ";

fn broken<E: Error>(rule: &str) -> E {
    E::custom(format!("{MUST_BE}{rule}"))
}

/// A count or time that must be at least 1, as a [`NonZeroU32`].
pub(crate) fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    NonZeroU32::new(u32::deserialize(d)?).ok_or_else(|| broken("at least 1"))
}

/// A count or time that must be at least 1, as a [`NonZeroU64`].
pub(crate) fn at_least_one_u64<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
    NonZeroU64::new(u64::deserialize(d)?).ok_or_else(|| broken("at least 1"))
}

/// A label of the key URI (`issuer`, `product`): not empty, no `:`.
pub(crate) fn label<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() || v.contains(':') {
        return Err(broken("a non-empty string without ':'"));
    }
    Ok(v)
}

/// A name on one line (`database.node`).
pub(crate) fn one_line_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() || v.contains('\n') {
        return Err(broken("a non-empty one-line name"));
    }
    Ok(v)
}

/// The database pool's size.
pub(crate) fn pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    let v = u32::deserialize(d)?;
    match NonZeroU32::new(v) {
        Some(n) if v <= 1000 => Ok(n),
        _ => Err(broken("between 1 and 1000")),
    }
}

/// A place in the file: 1-based line and column of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Where byte `offset` of `text` is (columns count characters).
    pub(crate) fn of(text: &str, offset: usize) -> Self {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The dotted key whose value covers `span` in the TOML `text` (the
/// innermost one), read with the TOML library's own spans.
pub(crate) fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut path = Vec::new();
    in_table(doc.as_table().iter(), span, &mut path).then(|| path.join("."))
}

fn covers(outer: Option<Range<usize>>, inner: &Range<usize>) -> bool {
    outer.is_some_and(|o| o.start <= inner.start && inner.end <= o.end)
}

fn in_table<'a>(
    items: impl Iterator<Item = (&'a str, &'a toml_edit::Item)>,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> bool {
    for (key, item) in items {
        path.push(key.to_owned());
        let found = match item {
            toml_edit::Item::Table(t) => in_table(t.iter(), span, path),
            toml_edit::Item::Value(v) => in_value(v, span, path),
            toml_edit::Item::ArrayOfTables(_) | toml_edit::Item::None => false,
        };
        if found {
            return true;
        }
        path.pop();
    }
    false
}

fn in_value(v: &toml_edit::Value, span: &Range<usize>, path: &mut Vec<String>) -> bool {
    if let toml_edit::Value::InlineTable(t) = v {
        for (key, inner) in t.iter() {
            path.push(key.to_owned());
            if in_value(inner, span, path) {
                return true;
            }
            path.pop();
        }
    }
    covers(v.span(), span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_one_based_and_counts_characters() {
        let text = "a = 1\n[é]\nbb = 2\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        let at = text.find("bb").expect("in the text");
        assert_eq!(Location::of(text, at + 5), Location { line: 3, column: 6 });
        assert_eq!(Location::of(text, text.find(']').expect("]")).column, 3);
    }

    #[test]
    fn the_key_of_a_value_is_found_at_any_depth() {
        let text = "issuer = \"x\"\n[limits]\nmax_connections = 0\nsub = { deep = 7 }\n";
        let span = |needle: &str| {
            let start = text.find(needle).expect("in the text");
            start..start + needle.len()
        };
        assert_eq!(key_at(text, &span("\"x\"")).as_deref(), Some("issuer"));
        assert_eq!(
            key_at(text, &span("0")).as_deref(),
            Some("limits.max_connections")
        );
        assert_eq!(key_at(text, &span("7")).as_deref(), Some("limits.sub.deep"));
        assert_eq!(key_at(text, &(0..0)), None);
    }
}
