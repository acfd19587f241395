//! The pure heart of the daemon: given a source object, the namespaces and the target, what
//! copies should exist, and what must be done to the observed copies to get there. No I/O.
//!
//! Both kinds go through the same code: ConfigMap and Secret are reduced to an [`ObjectView`]
//! (metadata + [`Payload`]) by `kinds.rs`. `status` and dry-run reuse [`plan`] unchanged.
use crate::annotations::{self as ann, AnnotationError, IntraSync, SyncSpec};
use k8s_openapi::ByteString;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// What a copy carries besides metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    ConfigMap {
        data: BTreeMap<String, String>,
        binary_data: BTreeMap<String, ByteString>,
        immutable: bool,
    },
    Secret {
        type_: String,
        data: BTreeMap<String, ByteString>,
        immutable: bool,
    },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::ConfigMap { .. } => Kind::ConfigMap,
            Payload::Secret { .. } => Kind::Secret,
        }
    }
    fn immutable(&self) -> bool {
        match self {
            Payload::ConfigMap { immutable, .. } | Payload::Secret { immutable, .. } => *immutable,
        }
    }
    fn secret_type(&self) -> Option<&str> {
        match self {
            Payload::Secret { type_, .. } => Some(type_),
            Payload::ConfigMap { .. } => None,
        }
    }
    /// Keys (`data.k`, `binaryData.k`) present here and absent from `desired`. Server-side apply
    /// does not remove keys another manager added by hand, so these get an explicit removal.
    pub fn extra_keys(&self, desired: &Payload) -> Vec<(&'static str, String)> {
        fn extra<V>(
            field: &'static str,
            have: &BTreeMap<String, V>,
            want: &BTreeMap<String, V>,
        ) -> Vec<(&'static str, String)> {
            have.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| (field, k.clone()))
                .collect()
        }
        match (self, desired) {
            (
                Payload::ConfigMap {
                    data, binary_data, ..
                },
                Payload::ConfigMap {
                    data: d2,
                    binary_data: b2,
                    ..
                },
            ) => {
                let mut v = extra("data", data, d2);
                v.extend(extra("binaryData", binary_data, b2));
                v
            }
            (Payload::Secret { data, .. }, Payload::Secret { data: d2, .. }) => {
                extra("data", data, d2)
            }
            _ => Vec::new(),
        }
    }
}

/// A ConfigMap or Secret as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub payload: Payload,
    /// Label / annotation keys our field manager applied last time (from managedFields).
    pub our_labels: BTreeSet<String>,
    pub our_annotations: BTreeSet<String>,
    pub deleting: bool,
}

impl ObjectView {
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }
}

/// A namespace of the source cluster, as far as selection goes.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub terminating: bool,
}

/// Daemon-wide settings the plan depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `--cluster-name`: written to `origin.cluster`, and the ownership/loop-guard key.
    pub cluster_name: String,
    /// Secret types that are never sources (unless `--include-secret-types`).
    pub skipped_secret_types: BTreeSet<String>,
    pub adopt_existing: bool,
}

/// Where a plan is computed for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    /// Intra-cluster copies in the source cluster.
    Local { namespaces: &'a [NamespaceView] },
    /// A follower reached through kubeconfig context `context` (with its default namespace).
    Context {
        context: &'a str,
        namespace: Option<&'a str>,
    },
}

/// Why an object is not a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSource {
    NoSyncKeys,
    /// A copy made by this cluster: never a source (loop guard).
    OwnCopy,
    SkippedSecretType(String),
    /// A source name over 63 characters cannot be an `origin.name` label value.
    NameTooLong,
    Deleting,
}

/// A source's sync keys, validated; `errors` are reported on the source, the rest still syncs.
#[derive(Debug, Clone, PartialEq)]
pub struct Source<'a> {
    pub object: &'a ObjectView,
    pub spec: SyncSpec,
    pub errors: Vec<AnnotationError>,
}

pub fn classify<'a>(obj: &'a ObjectView, s: &Settings) -> Result<Source<'a>, NotSource> {
    if obj.deleting {
        return Err(NotSource::Deleting);
    }
    if !ann::has_sync_keys(&obj.annotations) {
        return Err(NotSource::NoSyncKeys);
    }
    if obj.labels.get(ann::ORIGIN_CLUSTER) == Some(&s.cluster_name) {
        return Err(NotSource::OwnCopy);
    }
    if let Some(t) = obj.payload.secret_type()
        && s.skipped_secret_types.contains(t)
    {
        return Err(NotSource::SkippedSecretType(t.to_string()));
    }
    if !crate::selector::valid_value(&obj.name) {
        return Err(NotSource::NameTooLong);
    }
    let (spec, errors) = ann::parse(&obj.annotations);
    Ok(Source {
        object: obj,
        spec,
        errors,
    })
}

/// Namespaces of `target` that should hold a copy of `src`.
pub fn target_namespaces(src: &Source<'_>, target: &Target<'_>) -> BTreeSet<String> {
    match target {
        Target::Local { namespaces } => match &src.spec.intra {
            None => BTreeSet::new(),
            Some(intra) => namespaces
                .iter()
                .filter(|n| n.name != src.object.namespace && !n.terminating)
                .filter(|n| match intra {
                    IntraSync::All => true,
                    IntraSync::Selector(sel) => sel.matches(&n.labels),
                })
                .map(|n| n.name.clone())
                .collect(),
        },
        Target::Context { context, namespace } => src
            .spec
            .contexts
            .iter()
            .filter(|c| c.context == *context)
            .map(|c| {
                c.namespace
                    .as_deref()
                    .or(*namespace)
                    .unwrap_or(&src.object.namespace)
                    .to_string()
            })
            .collect(),
    }
}

/// The copy of `src` that should exist in `namespace`.
pub fn desired_copy(src: &ObjectView, namespace: &str, s: &Settings) -> ObjectView {
    let mut labels = src.labels.clone();
    labels.extend(ann::origin_labels(
        &src.name,
        &src.namespace,
        &s.cluster_name,
    ));
    let mut annotations = src.annotations.clone();
    for k in [ann::SYNC, ann::SYNC_CONTEXTS, ann::LAST_APPLIED] {
        annotations.remove(k);
    }
    annotations.insert(
        ann::ORIGIN.to_string(),
        ann::origin_annotation(
            src.kind().as_str(),
            &src.namespace,
            &src.name,
            src.uid.as_deref(),
            src.resource_version.as_deref(),
        ),
    );
    ObjectView {
        name: src.name.clone(),
        namespace: namespace.to_string(),
        uid: None,
        resource_version: None,
        labels,
        annotations,
        payload: src.payload.clone(),
        our_labels: BTreeSet::new(),
        our_annotations: BTreeSet::new(),
        deleting: false,
    }
}

/// What to do with one target object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing exists there: create it.
    Create(ObjectView),
    /// Ours (or adopted) and different: apply; then remove `extra_keys` added by someone else.
    /// `uid` is the observed object's: the apply is forced, so it carries the uid as a
    /// precondition and cannot land on an object made in place of the one we observed.
    Update {
        desired: ObjectView,
        uid: Option<String>,
        extra_keys: Vec<(&'static str, String)>,
    },
    /// Immutable, or Secret type changed: delete (uid precondition) and create.
    Recreate {
        desired: ObjectView,
        uid: Option<String>,
    },
    /// A managed copy that should no longer exist (uid precondition).
    Delete {
        namespace: String,
        uid: Option<String>,
    },
    /// A same-named object we do not own: left untouched and reported.
    Conflict {
        namespace: String,
        reason: String,
    },
    Noop {
        namespace: String,
    },
}

/// Compares a desired copy with what is in the target namespace (`None`: nothing there).
pub fn diff(desired: ObjectView, observed: Option<&ObjectView>, s: &Settings) -> Action {
    let Some(obs) = observed else {
        return Action::Create(desired);
    };
    let src_ns = desired
        .labels
        .get(ann::ORIGIN_NAMESPACE)
        .cloned()
        .unwrap_or_default();
    if !ann::is_owned_by(&obs.labels, &desired.name, &src_ns, &s.cluster_name) && !s.adopt_existing
    {
        let reason = match obs.labels.get(ann::ORIGIN_CLUSTER) {
            Some(c) if c != &s.cluster_name => format!("it is a copy made by cluster {c:?}"),
            _ => "it has no matching origin labels (not made by this daemon)".to_string(),
        };
        return Action::Conflict {
            namespace: desired.namespace,
            reason,
        };
    }
    if obs.deleting {
        // Being deleted (finalizers): wait for it to go, then the next pass creates.
        return Action::Noop {
            namespace: desired.namespace,
        };
    }
    let payload_same = obs.payload == desired.payload;
    let type_changed = obs.payload.secret_type() != desired.payload.secret_type();
    if type_changed || (obs.payload.immutable() && !payload_same) {
        return Action::Recreate {
            uid: obs.uid.clone(),
            desired,
        };
    }
    let meta_same = |want: &BTreeMap<String, String>,
                     have: &BTreeMap<String, String>,
                     ours: &BTreeSet<String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
            && ours
                .iter()
                .all(|k| want.contains_key(k) || !have.contains_key(k))
    };
    if payload_same
        && meta_same(&desired.labels, &obs.labels, &obs.our_labels)
        && meta_same(&desired.annotations, &obs.annotations, &obs.our_annotations)
    {
        return Action::Noop {
            namespace: desired.namespace,
        };
    }
    Action::Update {
        extra_keys: obs.payload.extra_keys(&desired.payload),
        uid: obs.uid.clone(),
        desired,
    }
}

/// The actions for one source key in one target: `source` is `None` when the source is gone or
/// no longer a source; `observed_copies` are the managed copies of this source found there
/// (by origin labels); `others` holds what was found by name in wanted namespaces that have no
/// managed copy (unmanaged or foreign objects; absent key: nothing there).
pub fn plan(
    source: Option<&Source<'_>>,
    target: &Target<'_>,
    observed_copies: &[&ObjectView],
    others: &BTreeMap<String, ObjectView>,
    s: &Settings,
) -> Vec<Action> {
    let wanted = source
        .map(|src| target_namespaces(src, target))
        .unwrap_or_default();
    plan_namespaces(source, &wanted, observed_copies, others, s)
}

/// [`plan`] for an already computed set of wanted namespaces (a cluster reached through
/// several contexts wants the union of what each context asks for).
pub fn plan_namespaces(
    source: Option<&Source<'_>>,
    wanted: &BTreeSet<String>,
    observed_copies: &[&ObjectView],
    others: &BTreeMap<String, ObjectView>,
    s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for ns in wanted {
        let Some(src) = source else { break };
        let desired = desired_copy(src.object, ns, s);
        let observed = observed_copies
            .iter()
            .find(|o| &o.namespace == ns)
            .map(|o| (*o).clone());
        let observed = observed.or_else(|| others.get(ns).cloned());
        actions.push(diff(desired, observed.as_ref(), s));
    }
    for obs in observed_copies {
        if !wanted.contains(&obs.namespace) && !obs.deleting {
            actions.push(Action::Delete {
                namespace: obs.namespace.clone(),
                uid: obs.uid.clone(),
            });
        }
    }
    actions
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "desired_tests.rs"]
pub(crate) mod tests;
