//! A source object's key (kind + `namespace/name` in one shared string): what the queues, the
//! caches' indexes and the metrics are keyed by.
use crate::plan::kinds::Kind;
use std::sync::Arc;

/// `namespace/name` in one allocation (neither part can hold a `/`): a map keyed by the pair of
/// `String`s costs two allocations and 32 more bytes per entry.
pub fn id(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

/// The `(namespace, name)` of an [`id`].
pub fn split(id: &str) -> (&str, &str) {
    id.split_once('/').unwrap_or(("", id))
}

/// A source object, by kind and `namespace/name` in the source cluster, the name shared
/// (`Arc<str>`, one allocation): a key is cloned into every cluster's queue and the metrics on
/// each event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub kind: Kind,
    /// [`id`]: `namespace/name`.
    id: Arc<str>,
}

impl SourceKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            id: id(namespace, name).into(),
        }
    }

    /// From an id already in [`id`]'s `namespace/name` form.
    pub fn from_id(kind: Kind, id: &str) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        split(&self.id).0
    }

    pub fn name(&self) -> &str {
        split(&self.id).1
    }

    /// `namespace/name`, the order keys sort in within a kind.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_back() {
        assert_eq!(split(&id("prod", "tls")), ("prod", "tls"));
        assert_eq!(split(&id("", "a")), ("", "a"));
    }

    #[test]
    fn a_key_from_its_id_is_the_same_key() {
        let k = SourceKey::from_id(Kind::ConfigMap, "ns/a");
        assert_eq!(k, SourceKey::new(Kind::ConfigMap, "ns", "a"));
        assert_eq!((k.namespace(), k.name(), k.id()), ("ns", "a", "ns/a"));
        assert_eq!(k.to_string(), "ConfigMap/ns/a");
    }
}
