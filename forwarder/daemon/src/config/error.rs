//! [`ConfigError`] and where errors point: byte spans become `file:line`, and the key path of a
//! span is found in the parsed document tree.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where in a config file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or the origin label given to [`Config::parse`](super::Config::parse)).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted key path (`nexthop[2].port`); empty when the error is not about one key.
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}", self.origin, self.line)
        } else {
            write!(f, "{}:{}: {}", self.origin, self.line, self.key)
        }
    }
}

/// Why a config could not be loaded. Display is `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {source}")]
    Read {
        /// The path that was read.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the TOML parser said.
        message: String,
    },
    /// Valid TOML that does not fit the schema: an unknown or missing key, a wrong type, a
    /// malformed value (MAC, prefix, duration, name).
    #[error("{at}: {message}")]
    Schema {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// Well-formed values that do not fit together or are out of range: unknown or duplicate
    /// names, conflicting settings, a worker core used twice.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Where the error is, if it is about the file's content.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { at, .. } | Self::Schema { at, .. } | Self::Invalid { at, .. } => {
                Some(at)
            }
        }
    }

    /// The 1-based line of the error, if it is about the file's content.
    pub fn line(&self) -> Option<usize> {
        self.location().map(|at| at.line)
    }

    /// The key path of the error (may be empty), if it is about the file's content.
    pub fn key(&self) -> Option<&str> {
        self.location().map(|at| at.key.as_str())
    }
}

/// Turns byte spans into `file:line` locations.
pub(super) struct Ctx<'a> {
    /// The file (or origin label) errors name.
    pub(super) origin: &'a str,
    /// The whole config text the spans index into.
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn at(&self, span: Range<usize>, key: impl Into<String>) -> Location {
        Location {
            origin: self.origin.to_owned(),
            line: self.line(span.start),
            key: key.into(),
        }
    }

    pub(super) fn invalid(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(span, key),
            message: message.into(),
        }
    }
}

/// The dotted key path of the deepest key or value in `table` whose span contains `target`.
/// Table headers (`[[port]]`) span only the header, so every subtree is searched, not just
/// those whose span contains the target.
pub(super) fn key_path(table: &DeTable<'_>, target: &Range<usize>) -> Option<String> {
    fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end
    }
    fn in_value(value: &Spanned<DeValue<'_>>, path: &str, target: &Range<usize>) -> Option<String> {
        match value.get_ref() {
            DeValue::Table(t) => in_table(t, path, target),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                in_value(item, &item_path, target)
                    .or_else(|| contains(&item.span(), target).then_some(item_path))
            }),
            _ => None,
        }
        .or_else(|| contains(&value.span(), target).then(|| path.to_owned()))
    }
    fn in_table(table: &DeTable<'_>, path: &str, target: &Range<usize>) -> Option<String> {
        table.iter().find_map(|(key, value)| {
            let key_path = if path.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{path}.{}", key.get_ref())
            };
            if contains(&key.span(), target) {
                return Some(key_path);
            }
            in_value(value, &key_path, target)
        })
    }
    in_table(table, "", target)
}

/// Appends the field a serde "missing field `x`" message names, so the key says what to add.
pub(super) fn with_missing_field(path: String, message: &str) -> String {
    let field = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    match field {
        Some(f) if path.is_empty() => f.to_owned(),
        Some(f) => format!("{path}.{f}"),
        None => path,
    }
}
