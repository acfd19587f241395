//! The model behind `tests/model.rs`: what every cluster should hold, computed from the rules in
//! kubed-semantics.md and the README (not from the daemon's code), plus the seeded operation plan.
//! Pure: no I/O, so its rules have unit tests of their own (`cargo test -p e2e --test model model_world`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod diff;
pub mod plan;
pub use plan::{Op, Plan};

pub const SRC: &str = "model-src-k8s";
pub const A: &str = "model-a-k8s";
pub const B: &str = "model-b-k8s";
/// A second context for follower A whose kubeconfig entry sets `namespace: m-f1`.
pub const A_F1: &str = "model-a-f1";
/// `--cluster-name` of the daemon under test: the value of `origin.cluster` on its copies.
pub const CLUSTER_NAME: &str = "model-src";
pub const FOLLOWERS: [&str; 2] = [A, B];

/// The annotation and label names (kubed's, which the README documents).
pub use e2e::k8s::{ORIGIN, ORIGIN_CLUSTER, ORIGIN_NAME, ORIGIN_NAMESPACE, SYNC, SYNC_CONTEXTS};

/// Source namespaces (in the source cluster); sources are named after theirs, so a name is
/// never a source in two namespaces (which would make two sources race for one target).
pub const SOURCE_NS: [&str; 3] = ["m-s0", "m-s1", "m-s2"];
/// Further namespaces of the source cluster at the start (the targets of selectors).
pub const TARGET_NS: [&str; 4] = ["m-t0", "m-t1", "m-t2", "m-t3"];
/// Namespaces each follower has at the start; the plan may create more of `FOLLOWER_NS_POOL`.
pub const INITIAL_FOLLOWER_NS: [(&str, &[&str]); 2] = [
    (A, &["m-s0", "m-s1", "m-f0", "m-f1"]),
    (B, &["m-s0", "m-s2", "m-f0"]),
];
pub const FOLLOWER_NS_POOL: [&str; 6] = ["m-s0", "m-s1", "m-s2", "m-f0", "m-f1", "m-f2"];

pub type Labels = BTreeMap<String, String>;

/// Never picked by `sync: ""`.
pub const SYSTEM_NS: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

/// One object slot: (cluster, kind, namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub cluster: &'static str,
    pub kind: Kind,
    pub ns: String,
    pub name: String,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}/{}",
            self.cluster, self.kind, self.ns, self.name
        )
    }
}

/// A source: (kind, namespace, name).
pub type Key = (Kind, String, String);

pub fn key_str(k: &Key) -> String {
    format!("{:?} {}/{}", k.0, k.1, k.2)
}

/// One requirement of a namespace label selector (apimachinery semantics: `!=` and `notin`
/// also match namespaces without the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    Eq(&'static str, &'static str),
    Ne(&'static str, &'static str),
    In(&'static str, &'static [&'static str]),
    NotIn(&'static str, &'static [&'static str]),
    Exists(&'static str),
    NotExists(&'static str),
}

impl Req {
    fn matches(&self, l: &Labels) -> bool {
        let get = |k: &str| l.get(k).map(String::as_str);
        match self {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        }
    }

    fn render(&self) -> String {
        match self {
            Req::Eq(k, v) => format!("{k}={v}"),
            Req::Ne(k, v) => format!("{k}!={v}"),
            Req::In(k, vs) => format!("{k} in ({})", vs.join(", ")),
            Req::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            Req::Exists(k) => k.to_string(),
            Req::NotExists(k) => format!("!{k}"),
        }
    }
}

/// The value of a source's `kubed.appscode.com/sync` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intra {
    /// `""` or `"true"`: every namespace but the source's.
    All(&'static str),
    /// Comma = AND.
    Selector(Vec<Req>),
}

impl Intra {
    pub fn text(&self) -> String {
        match self {
            Intra::All(t) => t.to_string(),
            Intra::Selector(reqs) => reqs.iter().map(Req::render).collect::<Vec<_>>().join(","),
        }
    }

    pub fn matches(&self, l: &Labels) -> bool {
        match self {
            Intra::All(_) => true,
            Intra::Selector(reqs) => reqs.iter().all(|r| r.matches(l)),
        }
    }
}

/// The selectors the plan draws from (one matches no namespace at all).
pub fn selectors() -> Vec<Intra> {
    use Req::*;
    vec![
        Intra::All(""),
        Intra::All("true"),
        Intra::Selector(vec![Eq("env", "prod")]),
        Intra::Selector(vec![Ne("env", "prod")]),
        Intra::Selector(vec![In("env", &["dev", "stage"])]),
        Intra::Selector(vec![NotIn("env", &["prod"])]),
        Intra::Selector(vec![Exists("team")]),
        Intra::Selector(vec![NotExists("team")]),
        Intra::Selector(vec![Eq("env", "dev"), Exists("team")]),
        Intra::Selector(vec![Eq("team", "b"), Ne("env", "dev")]),
        Intra::Selector(vec![Exists("tier")]),
        Intra::Selector(vec![In("tier", &["web", "db"]), NotExists("team")]),
        Intra::Selector(vec![Eq("nomatch", "nothing")]),
    ]
}

/// Namespace label vocabulary: key → values.
pub const NS_LABELS: [(&str, &[&str]); 3] = [
    ("env", &["dev", "stage", "prod"]),
    ("team", &["a", "b"]),
    ("tier", &["web", "db"]),
];

/// `sync-contexts` values the plan draws from: plain follower names, `ctx/ns` items, a context
/// whose kubeconfig entry names a namespace, an unknown context, the source's own context (never
/// a target), namespaces a follower lacks, spaces and empty items.
pub fn context_values() -> Vec<String> {
    vec![
        A.to_string(),
        B.to_string(),
        format!("{A},{B}"),
        format!("{A}, {B}"),
        format!("{A}/m-f0"),
        format!("{B}/m-f0, {B}/m-s0"),
        format!("{A},{A}/m-f1"),
        format!("nope-k8s, {B}"),
        format!("{SRC}, {A}"),
        format!("{A}/m-f2"),
        format!(" {B} , ,{A}/m-s2"),
        A_F1.to_string(),
        format!("{A_F1}/m-f0,{B}"),
    ]
}

/// Kubeconfig contexts of the daemon: name → (cluster, the context's `namespace`).
pub fn context_target(name: &str) -> Option<(&'static str, Option<&'static str>)> {
    match name {
        A => Some((A, None)),
        B => Some((B, None)),
        A_F1 => Some((A, Some("m-f1"))),
        _ => None, // unknown, or the source cluster itself: never a target
    }
}

/// (follower, namespace) pairs a `sync-contexts` value asks for, for a source in `src_ns`.
/// Items are trimmed and empty ones dropped; `ctx/ns` names the namespace, else the context's
/// namespace, else the source's.
pub fn context_targets(value: &str, src_ns: &str) -> BTreeSet<(&'static str, String)> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            let (ctx, ns) = match item.split_once('/') {
                Some((c, n)) => (c.trim(), Some(n.trim())),
                None => (item, None),
            };
            let (cluster, ctx_ns) = context_target(ctx)?;
            Some((cluster, ns.or(ctx_ns).unwrap_or(src_ns).to_string()))
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// Secret values as text (the plan makes them printable).
    pub data: BTreeMap<String, String>,
    /// `Some` for Secrets.
    pub secret_type: Option<String>,
    pub labels: Labels,
    /// Annotations other than the sync keys.
    pub annotations: Labels,
    pub sync: Option<Intra>,
    pub contexts: Option<String>,
    /// The resourceVersion of the test's last write: nobody else may change a source.
    pub rv: String,
}

impl Source {
    pub fn all_annotations(&self) -> Labels {
        let mut a = self.annotations.clone();
        if let Some(s) = &self.sync {
            a.insert(SYNC.into(), s.text());
        }
        if let Some(c) = &self.contexts {
            a.insert(SYNC_CONTEXTS.into(), c.clone());
        }
        a
    }
}

/// An object the test made without our markers (or with another cluster's): never to be
/// modified or deleted, and no copy is made where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct LookAlike {
    pub rv: String,
}

/// What a copy must carry (besides the `origin` annotation, checked for presence).
#[derive(Clone, Debug, PartialEq)]
pub struct Want {
    pub source: Key,
    pub data: BTreeMap<String, String>,
    pub secret_type: Option<String>,
    pub labels: Labels,
    pub annotations: Labels,
}

/// An object as observed in a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    pub data: BTreeMap<String, String>,
    pub secret_type: Option<String>,
    pub labels: Labels,
    pub annotations: Labels,
    pub rv: String,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Namespaces of the source cluster with their labels (system ones included).
    pub namespaces: BTreeMap<String, Labels>,
    pub follower_ns: BTreeMap<&'static str, BTreeSet<String>>,
    pub sources: BTreeMap<Key, Source>,
    pub lookalikes: BTreeMap<Pos, LookAlike>,
    /// Every Secret value ever written to a source: none may appear in the daemon's log.
    pub secret_values: Vec<String>,
}

impl Model {
    /// The copies every cluster should hold: (cluster, kind, namespace, name) → content.
    pub fn expected(&self) -> BTreeMap<Pos, Want> {
        let mut out = BTreeMap::new();
        for (key, src) in &self.sources {
            let (kind, src_ns, name) = key;
            let mut targets: BTreeSet<(&'static str, String)> = BTreeSet::new();
            if let Some(intra) = &src.sync {
                for (ns, labels) in &self.namespaces {
                    // `""` passes over the system namespaces (README, Annotations on a source).
                    let system = matches!(intra, Intra::All(_)) && SYSTEM_NS.contains(&ns.as_str());
                    if ns != src_ns && !system && intra.matches(labels) {
                        targets.insert((SRC, ns.clone()));
                    }
                }
            }
            if let Some(value) = &src.contexts {
                for (cluster, ns) in context_targets(value, src_ns) {
                    // Namespaces are never created in followers (no --create-namespaces).
                    if self
                        .follower_ns
                        .get(cluster)
                        .is_some_and(|s| s.contains(&ns))
                    {
                        targets.insert((cluster, ns));
                    }
                }
            }
            for (cluster, ns) in targets {
                let pos = Pos {
                    cluster,
                    kind: *kind,
                    ns,
                    name: name.clone(),
                };
                if self.lookalikes.contains_key(&pos) {
                    continue;
                }
                let mut labels = src.labels.clone();
                labels.insert(ORIGIN_NAME.into(), name.clone());
                labels.insert(ORIGIN_NAMESPACE.into(), src_ns.clone());
                labels.insert(ORIGIN_CLUSTER.into(), CLUSTER_NAME.into());
                out.insert(
                    pos,
                    Want {
                        source: key.clone(),
                        data: src.data.clone(),
                        secret_type: src.secret_type.clone(),
                        labels,
                        annotations: src.annotations.clone(),
                    },
                );
            }
        }
        out
    }

    /// Namespaces of `cluster` the test knows about.
    pub fn namespaces_of(&self, cluster: &str) -> Vec<String> {
        if cluster == SRC {
            self.namespaces.keys().cloned().collect()
        } else {
            self.follower_ns
                .get(cluster)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        }
    }
}

/// The source namespace a pool name belongs to (`cm-1-3` → `m-s1`).
pub fn owner_ns(name: &str) -> &'static str {
    let idx = name
        .split('-')
        .nth(1)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    SOURCE_NS[idx.min(SOURCE_NS.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn model() -> Model {
        let mut m = Model::default();
        for (ns, l) in [
            ("m-s0", labels(&[])),
            ("m-t0", labels(&[("env", "prod")])),
            ("m-t1", labels(&[("env", "dev"), ("team", "a")])),
            ("default", labels(&[])),
        ] {
            m.namespaces.insert(ns.into(), l);
        }
        m.follower_ns
            .insert(A, ["m-s0".to_string(), "m-f1".into()].into());
        m.follower_ns.insert(B, BTreeSet::new());
        m
    }

    fn source(sync: Option<Intra>, contexts: Option<&str>) -> Source {
        Source {
            data: [("v".to_string(), "1".to_string())].into(),
            secret_type: None,
            labels: labels(&[("app", "x")]),
            annotations: labels(&[("note", "n")]),
            sync,
            contexts: contexts.map(str::to_string),
            rv: "1".into(),
        }
    }

    fn key() -> Key {
        (Kind::ConfigMap, "m-s0".into(), "cm-0-0".into())
    }

    fn places(m: &Model) -> Vec<String> {
        m.expected()
            .keys()
            .map(|p| format!("{}:{}", p.cluster, p.ns))
            .collect()
    }

    #[test]
    fn selectors_follow_apimachinery() {
        let l = labels(&[("env", "dev"), ("team", "a")]);
        let none = labels(&[]);
        let t = |r: Req, l: &Labels| Intra::Selector(vec![r]).matches(l);
        assert!(t(Req::Ne("env", "prod"), &none));
        assert!(t(Req::NotIn("env", &["prod"]), &none));
        assert!(!t(Req::In("env", &["prod", "stage"]), &none));
        assert!(t(Req::In("env", &["dev", "stage"]), &l));
        assert!(t(Req::NotExists("tier"), &l) && !t(Req::Exists("tier"), &l));
        let s = &selectors()[9];
        assert_eq!(s.text(), "team=b,env!=dev");
        assert_eq!(selectors()[4].text(), "env in (dev, stage)");
    }

    #[test]
    fn intra_targets_every_matching_namespace_but_the_sources_own() {
        let mut m = model();
        m.sources.insert(key(), source(Some(Intra::All("")), None));
        assert_eq!(
            places(&m),
            [
                "model-src-k8s:default",
                "model-src-k8s:m-t0",
                "model-src-k8s:m-t1"
            ]
        );
        let sel = Intra::Selector(vec![Req::Eq("env", "prod")]);
        m.sources.insert(key(), source(Some(sel), None));
        assert_eq!(places(&m), ["model-src-k8s:m-t0"]);
        m.sources
            .insert(key(), source(Some(selectors()[12].clone()), None));
        assert!(
            places(&m).is_empty(),
            "a selector matching nothing copies nowhere"
        );
    }

    #[test]
    fn contexts_default_explicit_missing_unknown_and_source() {
        let mut m = model();
        m.sources.insert(
            key(),
            source(
                None,
                Some(" model-a-k8s , ,nope-k8s,model-src-k8s, model-b-k8s"),
            ),
        );
        // B lacks m-s0; unknown and source contexts are never targets.
        assert_eq!(places(&m), ["model-a-k8s:m-s0"]);
        m.sources
            .insert(key(), source(None, Some("model-a-f1,model-a-k8s/m-f1")));
        assert_eq!(places(&m), ["model-a-k8s:m-f1"]);
        m.sources
            .insert(key(), source(None, Some("model-a-f1/m-s0")));
        assert_eq!(places(&m), ["model-a-k8s:m-s0"]);
    }

    #[test]
    fn lookalike_blocks_a_copy_and_must_stay_untouched() {
        let mut m = model();
        m.sources.insert(key(), source(None, Some("model-a-k8s")));
        let pos = Pos {
            cluster: A,
            kind: Kind::ConfigMap,
            ns: "m-s0".into(),
            name: "cm-0-0".into(),
        };
        m.lookalikes
            .insert(pos.clone(), LookAlike { rv: "7".into() });
        assert!(m.expected().is_empty());
        let src_pos = Pos {
            cluster: SRC,
            ..pos.clone()
        };
        let obj = |rv: &str, l: Labels| Obj {
            data: BTreeMap::new(),
            secret_type: None,
            labels: l,
            annotations: Labels::new(),
            rv: rv.into(),
        };
        let mut seen = BTreeMap::from([
            (src_pos, obj("1", labels(&[]))),
            (pos.clone(), obj("7", labels(&[]))),
        ]);
        assert!(m.diff(&seen).is_empty());
        seen.insert(pos, obj("9", labels(&[(ORIGIN_CLUSTER, CLUSTER_NAME)])));
        let d = m.diff(&seen);
        assert_eq!(d.len(), 2, "{d:?}"); // unexpected copy + modified look-alike
    }

    #[test]
    fn owner_namespace_from_pool_name() {
        assert_eq!(owner_ns("cm-1-3"), "m-s1");
        assert_eq!(owner_ns("sec-2-0"), "m-s2");
    }
}
