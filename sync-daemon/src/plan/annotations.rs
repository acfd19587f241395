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

impl ContextTarget {
    /// One item as kubed reads it: `context` or `context/namespace`, split at the first `/`. An
    /// item whose split gives no valid namespace is taken whole as a context name (an ARN such
    /// as `arn:aws:eks:eu-west-1:111122223333:cluster/team-a` is one, and so may have a
    /// `/namespace` after it): [`ContextTarget::resolve`] settles it against the kubeconfig's
    /// contexts. `None`: not an item at all (empty part, whitespace).
    pub fn parse(item: &str) -> Option<ContextTarget> {
        if item.starts_with('/') || item.ends_with('/') || item.contains(char::is_whitespace) {
            return None;
        }
        Some(match item.split_once('/') {
            Some((c, n)) if is_dns_label(n) => ContextTarget {
                context: c.to_string(),
                namespace: Some(n.to_string()),
            },
            _ => ContextTarget {
                context: item.to_string(),
                namespace: None,
            },
        })
    }

    /// The item as written.
    pub fn item(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}", self.context),
            None => self.context.clone(),
        }
    }

    /// The item read against the contexts that exist (`known`): the whole item when it names
    /// one; else `context/namespace` split at the last `/` whose left part names one (and whose
    /// right part is a namespace name); else as [`ContextTarget::parse`] read it.
    pub fn resolve(&self, known: &dyn Fn(&str) -> bool) -> ContextTarget {
        let item = self.item();
        if known(&item) {
            return ContextTarget {
                context: item,
                namespace: None,
            };
        }
        for (i, _) in item.rmatch_indices('/') {
            let (c, n) = (&item[..i], &item[i + 1..]);
            if known(c) && is_dns_label(n) {
                return ContextTarget {
                    context: c.to_string(),
                    namespace: Some(n.to_string()),
                };
            }
        }
        self.clone()
    }

    /// Whether the item may name `context` (itself, or with a `/namespace`), without knowing the
    /// other contexts: for notices about a context, not for planning.
    pub fn may_name(&self, context: &str) -> bool {
        let item = self.item();
        item == context
            || item
                .strip_prefix(context)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(is_dns_label)
    }
}

/// Every item of `spec` resolved against the contexts that exist (duplicates dropped).
pub fn resolve_contexts(spec: &mut SyncSpec, known: &dyn Fn(&str) -> bool) {
    let mut out: Vec<ContextTarget> = Vec::with_capacity(spec.contexts.len());
    for t in &spec.contexts {
        let r = t.resolve(known);
        if !out.contains(&r) {
            out.push(r);
        }
    }
    spec.contexts = out;
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
    BadSelector(SelectorError),
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
            let Some(t) = ContextTarget::parse(item) else {
                errors.push(AnnotationError::BadContextItem(item.to_string()));
                continue;
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
            // Not a namespace after the first `/`: taken whole, as a context name (an ARN).
            ("a/Bad_NS,b", vec![ct("a/Bad_NS", None), ct("b", None)], 0),
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
    fn context_items_resolve_against_the_kubeconfig() {
        let arn = "arn:aws:eks:eu-west-1:111122223333:cluster/team-a";
        let known = |c: &str| [arn, "plain", "a", "a/b"].contains(&c);
        let resolved = |item: &str| {
            let t = ContextTarget::parse(item).unwrap();
            let r = t.resolve(&known);
            (r.context, r.namespace)
        };
        let pair = |c: &str, n: Option<&str>| (c.to_string(), n.map(String::from));
        // kubed reads an ARN as context "arn:…:cluster" and namespace "team-a".
        assert_eq!(resolved(arn), pair(arn, None));
        assert_eq!(resolved(&format!("{arn}/prod")), pair(arn, Some("prod")));
        assert_eq!(resolved("plain"), pair("plain", None));
        assert_eq!(resolved("plain/prod"), pair("plain", Some("prod")));
        // A context named `a/b` wins over context `a` with namespace `b`.
        assert_eq!(resolved("a/b"), pair("a/b", None));
        assert_eq!(resolved("a/c"), pair("a", Some("c")));
        // Unknown: as parsed (first `/`), so the problem names what kubed would have read.
        assert_eq!(resolved("nope/prod"), pair("nope", Some("prod")));
        assert_eq!(resolved("x/Bad_NS"), pair("x/Bad_NS", None));
        let t = ContextTarget::parse(&format!("{arn}/prod")).unwrap();
        assert!(t.may_name(arn) && !t.may_name("arn:aws:eks:eu-west-1:111122223333:cluster"));
        let mut spec = parse(&ann(&[(SYNC_CONTEXTS, &format!("{arn},{arn}/prod,plain"))])).0;
        resolve_contexts(&mut spec, &known);
        assert_eq!(spec.contexts.len(), 3);
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
