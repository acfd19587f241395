//! Our own sync policies beside kubed's keys, under the `kubed-cross-sync.io/` prefix (kubed's
//! annotations keep their meaning): which data keys a copy carries, which namespaces a selector
//! never picks, and what happens to copies when their source goes. Pure.
use crate::plan::kinds::Payload;
use crate::plan::selector::SelectorError;
use crate::plan::selector::{IntraSync, is_dns_label, parse_selector};
use std::collections::{BTreeMap, BTreeSet};

/// `k1,k2`: copies carry only these data keys.
pub const KEYS: &str = "kubed-cross-sync.io/keys";
/// `ns1,ns2`: namespaces the `sync` selector never picks.
pub const EXCLUDE_NAMESPACES: &str = "kubed-cross-sync.io/exclude-namespaces";
/// A namespace label selector (`""`: every namespace but the system ones): in each follower a
/// source's `sync-contexts` names without a namespace, a copy in every namespace it matches.
pub const FOLLOWER_NAMESPACES: &str = "kubed-cross-sync.io/follower-namespaces";
/// `delete` (default) or `retain`: what happens to a copy its source no longer wants. Copies
/// carry it too (as `retain`, or not at all), so the decision survives the source's deletion and
/// a restart.
pub const ON_DELETE: &str = "kubed-cross-sync.io/on-delete";

pub use crate::plan::selector::SYSTEM_NAMESPACES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    #[default]
    Delete,
    /// Unwanted copies stay and are released: our origin markers and field manager removed.
    Retain,
}

/// A source's policy; the default is kubed's behaviour.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `Some`: copy only these data keys.
    pub keys: Option<BTreeSet<String>>,
    pub exclude: BTreeSet<String>,
    pub on_delete: OnDelete,
    /// `Some`: follower namespaces are chosen by this selector.
    pub follower_namespaces: Option<IntraSync>,
}

/// A malformed policy annotation. Each fails safe: a bad key name copies fewer keys, never more;
/// an unknown `on-delete` value keeps the copies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("annotation {KEYS} item {0:?} is not a valid data key; the other keys are copied")]
    BadKey(String),
    #[error("annotation {KEYS} names no key, so copies carry no data")]
    NoKeys,
    #[error("annotation {EXCLUDE_NAMESPACES} item {0:?} is not a namespace name")]
    BadNamespace(String),
    #[error("annotation {ON_DELETE} is {0:?}, not `delete` or `retain`; copies are retained")]
    BadOnDelete(String),
    #[error(
        "annotation {FOLLOWER_NAMESPACES} is not a valid label selector: {0}; no follower namespace is chosen by it"
    )]
    BadFollowerSelector(SelectorError),
}

/// Parses the policy annotations; errors are reported on the source, the rest applies.
pub fn parse(annotations: &BTreeMap<String, String>) -> (Policy, Vec<PolicyError>) {
    let mut p = Policy::default();
    let mut errors = Vec::new();
    if let Some(v) = annotations.get(KEYS) {
        let mut keys = BTreeSet::new();
        for item in items(v) {
            match valid_data_key(item) {
                true => keys.insert(item.to_string()),
                false => {
                    errors.push(PolicyError::BadKey(item.to_string()));
                    continue;
                }
            };
        }
        if keys.is_empty() && errors.is_empty() {
            errors.push(PolicyError::NoKeys);
        }
        p.keys = Some(keys);
    }
    if let Some(v) = annotations.get(EXCLUDE_NAMESPACES) {
        for item in items(v) {
            match is_dns_label(item) {
                true => p.exclude.insert(item.to_string()),
                false => {
                    errors.push(PolicyError::BadNamespace(item.to_string()));
                    continue;
                }
            };
        }
    }
    if let Some(v) = annotations.get(FOLLOWER_NAMESPACES) {
        // A bad selector picks nothing: copies go nowhere rather than everywhere.
        p.follower_namespaces = Some(match parse_selector(v) {
            Ok(sel) => sel,
            Err(e) => {
                errors.push(PolicyError::BadFollowerSelector(e));
                IntraSync::Nothing
            }
        });
    }
    if let Some(v) = annotations.get(ON_DELETE) {
        p.on_delete = match v.trim() {
            "delete" => OnDelete::Delete,
            "retain" => OnDelete::Retain,
            other => {
                errors.push(PolicyError::BadOnDelete(other.to_string()));
                OnDelete::Retain
            }
        };
    }
    (p, errors)
}

/// Whether a copy's own annotations say it is kept when unwanted (the source gone, or not
/// a source any more): present and not `delete`, as [`parse`] reads it.
pub fn copy_retained(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(ON_DELETE)
        .is_some_and(|v| v.trim() != "delete")
}

fn items(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A ConfigMap/Secret data key as the API server validates it.
fn valid_data_key(k: &str) -> bool {
    k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

impl Policy {
    /// The payload a copy carries: every key, or only the chosen ones. A Secret whose type
    /// needs a key that is not copied becomes `Opaque` (the API server would refuse it).
    pub fn payload(&self, p: &Payload) -> Payload {
        let Some(keys) = &self.keys else {
            return p.clone();
        };
        fn pick<V: Clone>(m: &BTreeMap<String, V>, keys: &BTreeSet<String>) -> BTreeMap<String, V> {
            m.iter()
                .filter(|(k, _)| keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        match p {
            Payload::ConfigMap {
                data,
                binary_data,
                immutable,
            } => Payload::ConfigMap {
                data: pick(data, keys),
                binary_data: pick(binary_data, keys),
                immutable: *immutable,
            },
            Payload::Secret {
                type_,
                data,
                immutable,
            } => {
                let data = pick(data, keys);
                let type_ = match type_complete(type_, &data) {
                    true => type_.clone(),
                    false => "Opaque".to_string(),
                };
                Payload::Secret {
                    type_,
                    data,
                    immutable: *immutable,
                }
            }
        }
    }

    /// One short word list for `status` (`-` when kubed's defaults apply).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = &self.keys {
            parts.push(format!("keys={}", join(k)));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("exclude={}", join(&self.exclude)));
        }
        match &self.follower_namespaces {
            Some(IntraSync::All) => parts.push("follower-namespaces=*".to_string()),
            Some(IntraSync::Selector(s)) => parts.push(format!("follower-namespaces={s}")),
            Some(IntraSync::Nothing) => parts.push("follower-namespaces=(invalid)".to_string()),
            None => {}
        }
        if self.on_delete == OnDelete::Retain {
            parts.push("on-delete=retain".to_string());
        }
        match parts.is_empty() {
            true => "-".to_string(),
            false => parts.join(";"),
        }
    }
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// Whether `data` still has what the API server requires of a Secret of type `type_`.
fn type_complete<V>(type_: &str, data: &BTreeMap<String, V>) -> bool {
    let has = |k: &str| data.contains_key(k);
    match type_ {
        "kubernetes.io/tls" => has("tls.crt") && has("tls.key"),
        "kubernetes.io/dockerconfigjson" => has(".dockerconfigjson"),
        "kubernetes.io/dockercfg" => has(".dockercfg"),
        "kubernetes.io/ssh-auth" => has("ssh-privatekey"),
        "kubernetes.io/basic-auth" => has("username") || has("password"),
        _ => true,
    }
}

/// Label and annotation keys of a source that no copy carries: the ownership marks of GitOps
/// tools, so a follower's own Argo CD, Flux or Helm neither claims nor prunes a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFilter {
    strip: Vec<Pattern>,
    keep: Vec<Pattern>,
}

/// The default list (`--strip-metadata` adds to it, `--keep-metadata` exempts from it); the
/// README says why each is there.
pub const DEFAULT_STRIP: [&str; 5] = [
    "argocd.argoproj.io/",
    "app.kubernetes.io/instance",
    "*.toolkit.fluxcd.io/",
    "meta.helm.sh/",
    "app.kubernetes.io/managed-by=Helm",
];

/// One metadata pattern: `prefix/` (every key under that prefix), `*.domain/` (under any
/// subdomain of it), `key` (that key), `key=value` (that key with that value).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Prefix(String),
    AnySubdomain(String),
    Key(String),
    KeyValue(String, String),
}

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        let s = s.trim();
        let bad = |why: &str| Err(format!("metadata pattern {s:?} {why}"));
        if s.is_empty() || s.contains(char::is_whitespace) {
            return bad("is empty or contains spaces");
        }
        if let Some(rest) = s.strip_prefix("*.") {
            return match rest.strip_suffix('/') {
                Some(d) if !d.is_empty() && !d.contains(['/', '*', '=']) => {
                    Ok(Pattern::AnySubdomain(format!(".{d}")))
                }
                _ => bad("must look like *.example.com/"),
            };
        }
        if s.contains('*') {
            return bad("may only start with `*.`");
        }
        if let Some((k, v)) = s.split_once('=') {
            return match k.is_empty() {
                true => bad("has no key before `=`"),
                false => Ok(Pattern::KeyValue(k.to_string(), v.to_string())),
            };
        }
        Ok(match s.ends_with('/') {
            true => Pattern::Prefix(s.to_string()),
            false => Pattern::Key(s.to_string()),
        })
    }

    fn matches(&self, key: &str, value: &str) -> bool {
        match self {
            Pattern::Prefix(p) => key.starts_with(p.as_str()),
            Pattern::AnySubdomain(d) => key
                .split_once('/')
                .is_some_and(|(prefix, _)| prefix.ends_with(d.as_str())),
            Pattern::Key(k) => key == k,
            Pattern::KeyValue(k, v) => key == k && value == v,
        }
    }
}

impl Default for MetadataFilter {
    fn default() -> Self {
        // The default patterns are constants that parse (a unit test checks each).
        let strip = DEFAULT_STRIP
            .iter()
            .filter_map(|p| Pattern::parse(p).ok())
            .collect();
        MetadataFilter {
            strip,
            keep: Vec::new(),
        }
    }
}

impl MetadataFilter {
    /// The default list plus `strip`, minus what matches `keep`.
    pub fn new(strip: &[String], keep: &[String]) -> Result<MetadataFilter, String> {
        let mut f = MetadataFilter::default();
        for s in strip {
            f.strip.push(Pattern::parse(s)?);
        }
        for k in keep {
            f.keep.push(Pattern::parse(k)?);
        }
        Ok(f)
    }

    /// Whether a label or annotation `key: value` of a source stays off its copies.
    pub fn strips(&self, key: &str, value: &str) -> bool {
        self.strip.iter().any(|p| p.matches(key, value))
            && !self.keep.iter().any(|p| p.matches(key, value))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "policy_tests.rs"]
mod tests;
