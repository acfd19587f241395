//! The kubed keys: parsing a source's `sync` / `sync-contexts` annotations, and the origin
//! markers (labels + annotation) that make a copy recognisably ours. Pure.
use crate::plan::policy::{self, Policy, PolicyError};
use crate::plan::selector::SelectorError;
pub use crate::plan::selector::{IntraSync, is_dns_label, parse_selector};
use std::collections::BTreeMap;

pub const SYNC: &str = "kubed.appscode.com/sync";
pub const SYNC_CONTEXTS: &str = "kubed.appscode.com/sync-contexts";
pub const ORIGIN: &str = "kubed.appscode.com/origin";
pub const ORIGIN_NAME: &str = "kubed.appscode.com/origin.name";
pub const ORIGIN_NAMESPACE: &str = "kubed.appscode.com/origin.namespace";
pub const ORIGIN_CLUSTER: &str = "kubed.appscode.com/origin.cluster";
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One `sync-contexts` item: a context, optionally with an explicit namespace (`ctx/ns`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContextTarget {
    pub context: String,
    pub namespace: Option<String>,
}

/// What a source asks for. `None` fields: key absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncSpec {
    pub intra: Option<IntraSync>,
    pub contexts: Vec<ContextTarget>,
    /// Our own `kubed-cross-sync.io/` policies.
    pub policy: Policy,
}

/// A malformed annotation; the source gets a Warning Event with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {SYNC} is not a valid label selector: {0}")]
    BadSelector(#[source] SelectorError),
    #[error("annotation {SYNC_CONTEXTS} item {0:?} is not `context` or `context/namespace`")]
    BadContextItem(String),
    #[error("annotation {SYNC_CONTEXTS} names no context")]
    NoContexts,
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl AnnotationError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::BadSelector(_) => "bad_selector",
            Self::BadContextItem(_) | Self::NoContexts => "bad_contexts",
            Self::Policy(_) => "bad_policy",
        }
    }
}

/// Parses the sync keys. The intra-cluster part and the context part fail independently,
/// so a bad selector does not stop cross-cluster pushes (and vice versa).
pub fn parse(annotations: &BTreeMap<String, String>) -> (SyncSpec, Vec<AnnotationError>) {
    let mut spec = SyncSpec::default();
    let mut errors = Vec::new();
    if let Some(v) = annotations.get(SYNC) {
        match parse_selector(v) {
            Ok(sel) => spec.intra = Some(sel),
            Err(e) => errors.push(AnnotationError::BadSelector(e)),
        }
    }
    if let Some(v) = annotations.get(SYNC_CONTEXTS) {
        // kubed splits without trimming (so "a, b" names " b"); we trim and drop empty items.
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (ctx, ns) = match item.split_once('/') {
                Some((c, n)) => (c.trim(), Some(n.trim())),
                None => (item, None),
            };
            let ns_ok = ns.is_none_or(is_dns_label);
            if ctx.is_empty() || ctx.contains(char::is_whitespace) || !ns_ok {
                errors.push(AnnotationError::BadContextItem(item.to_string()));
                continue;
            }
            let t = ContextTarget {
                context: ctx.to_string(),
                namespace: ns.map(str::to_string),
            };
            if !spec.contexts.contains(&t) {
                spec.contexts.push(t);
            }
        }
        if spec.contexts.is_empty() && errors.is_empty() {
            errors.push(AnnotationError::NoContexts);
        }
    }
    let (p, policy_errors) = policy::parse(annotations);
    spec.policy = p;
    errors.extend(policy_errors.into_iter().map(AnnotationError::Policy));
    (spec, errors)
}

/// True when the object carries either sync key.
pub fn has_sync_keys(annotations: &BTreeMap<String, String>) -> bool {
    annotations.contains_key(SYNC) || annotations.contains_key(SYNC_CONTEXTS)
}

/// The origin labels a copy of `namespace/name` made by `cluster` carries.
pub fn origin_labels(name: &str, namespace: &str, cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ORIGIN_NAME.to_string(), name.to_string()),
        (ORIGIN_NAMESPACE.to_string(), namespace.to_string()),
        (ORIGIN_CLUSTER.to_string(), cluster.to_string()),
    ])
}

/// Ownership test: all three origin labels present and equal to (source, our cluster).
pub fn is_owned_by(
    labels: &BTreeMap<String, String>,
    name: &str,
    namespace: &str,
    cluster: &str,
) -> bool {
    labels.get(ORIGIN_NAME).map(String::as_str) == Some(name)
        && labels.get(ORIGIN_NAMESPACE).map(String::as_str) == Some(namespace)
        && labels.get(ORIGIN_CLUSTER).map(String::as_str) == Some(cluster)
}

/// The source a copy made by `cluster` points at, if the object is such a copy.
pub fn origin_of(labels: &BTreeMap<String, String>, cluster: &str) -> Option<(String, String)> {
    if labels.get(ORIGIN_CLUSTER).map(String::as_str) != Some(cluster) {
        return None;
    }
    Some((
        labels.get(ORIGIN_NAMESPACE)?.clone(),
        labels.get(ORIGIN_NAME)?.clone(),
    ))
}

/// The `kubed.appscode.com/origin` annotation: a core/v1 ObjectReference as JSON, fields in
/// kubed's order, empty ones omitted.
pub fn origin_annotation(
    kind: &str,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    resource_version: Option<&str>,
) -> String {
    // Built by hand: serde_json's map sorts keys (no preserve_order feature in the tree).
    let mut fields = vec![("kind", kind), ("namespace", namespace), ("name", name)];
    if let Some(u) = uid.filter(|u| !u.is_empty()) {
        fields.push(("uid", u));
    }
    fields.push(("apiVersion", "v1"));
    if let Some(rv) = resource_version.filter(|r| !r.is_empty()) {
        fields.push(("resourceVersion", rv));
    }
    let body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("\"{k}\":{}", serde_json::Value::from(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ct(c: &str, ns: Option<&str>) -> ContextTarget {
        ContextTarget {
            context: c.into(),
            namespace: ns.map(Into::into),
        }
    }

    #[test]
    fn sync_key() {
        let table: &[(&str, bool)] = &[("", true), ("true", true), (" true ", true)];
        for (v, all) in table {
            let (spec, errs) = parse(&ann(&[(SYNC, v)]));
            assert!(errs.is_empty(), "{v:?}");
            assert_eq!(spec.intra == Some(IntraSync::All), *all, "{v:?}");
        }
        let (spec, errs) = parse(&ann(&[(SYNC, "env=prod")]));
        assert!(errs.is_empty());
        assert!(matches!(spec.intra, Some(IntraSync::Selector(_))));
        let (spec, errs) = parse(&ann(&[(SYNC, "env in (")]));
        assert_eq!(spec.intra, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].category(), "bad_selector");
        let (spec, errs) = parse(&ann(&[]));
        assert_eq!((spec, errs), (SyncSpec::default(), vec![]));
    }

    #[test]
    fn contexts_key() {
        let table: &[(&str, Vec<ContextTarget>, usize)] = &[
            ("a", vec![ct("a", None)], 0),
            ("a,b", vec![ct("a", None), ct("b", None)], 0),
            ("a, b", vec![ct("a", None), ct("b", None)], 0),
            (" a ,, b ,", vec![ct("a", None), ct("b", None)], 0),
            ("a,a", vec![ct("a", None)], 0),
            (
                "mc-project-k8s/prod,mc-project-k8s/staging",
                vec![
                    ct("mc-project-k8s", Some("prod")),
                    ct("mc-project-k8s", Some("staging")),
                ],
                0,
            ),
            ("a/Bad_NS,b", vec![ct("b", None)], 1),
            ("/ns", vec![], 1),
            ("a/", vec![], 1),
            ("", vec![], 1),
            (" , ", vec![], 1),
            ("a b", vec![], 1),
        ];
        for (v, want, nerr) in table {
            let (spec, errs) = parse(&ann(&[(SYNC_CONTEXTS, v)]));
            assert_eq!(&spec.contexts, want, "{v:?}");
            assert_eq!(errs.len(), *nerr, "{v:?}: {errs:?}");
            assert_eq!(spec.intra, None);
        }
    }

    #[test]
    fn ownership() {
        let own = origin_labels("demo", "prod", "mc-mgmt");
        assert!(is_owned_by(&own, "demo", "prod", "mc-mgmt"));
        assert!(!is_owned_by(&own, "demo", "prod", "other"));
        assert!(!is_owned_by(&own, "demo", "dev", "mc-mgmt"));
        assert!(!is_owned_by(&own, "x", "prod", "mc-mgmt"));
        let mut partial = own.clone();
        partial.remove(ORIGIN_CLUSTER);
        assert!(!is_owned_by(&partial, "demo", "prod", "mc-mgmt"));
        assert!(!is_owned_by(&BTreeMap::new(), "demo", "prod", "mc-mgmt"));
        assert_eq!(
            origin_of(&own, "mc-mgmt"),
            Some(("prod".into(), "demo".into()))
        );
        assert_eq!(origin_of(&own, "b"), None);
        assert_eq!(origin_of(&partial, "mc-mgmt"), None);
    }

    #[test]
    fn origin_json_in_kubed_order() {
        assert_eq!(
            origin_annotation("ConfigMap", "demo", "omni", Some("u1"), Some("6149")),
            r#"{"kind":"ConfigMap","namespace":"demo","name":"omni","uid":"u1","apiVersion":"v1","resourceVersion":"6149"}"#
        );
        assert_eq!(
            origin_annotation("Secret", "a", "b", None, Some("")),
            r#"{"kind":"Secret","namespace":"a","name":"b","apiVersion":"v1"}"#
        );
    }
}
