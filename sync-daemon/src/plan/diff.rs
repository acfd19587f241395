//! The copy diff on whole objects: the copy a source should have in a namespace, and what must be
//! done to the object observed there to get it. The daemon plans from copy summaries
//! (`summary.rs`), which must decide exactly as this does (a differential test checks it).
use crate::plan::annotations as ann;
use crate::plan::kinds::ObjectView;
use crate::plan::policy::{self, OnDelete};
use crate::plan::source::{Settings, Source};
use crate::plan::wanted::{Target, wanted};
use std::collections::{BTreeMap, BTreeSet};

/// The copy of `src` that should exist in `namespace`: the source's labels and annotations but
/// the sync instructions and the GitOps ownership marks ([`Settings::metadata`]), our origin
/// markers, the retention mark when the source retains, and the payload its policy chooses.
pub fn desired_copy(src: &Source<'_>, namespace: &str, s: &Settings) -> ObjectView {
    let (obj, policy) = (src.object, &src.spec.policy);
    let kept = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, v)| !s.metadata.strips(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = kept(&obj.labels);
    labels.extend(ann::origin_labels(
        &obj.name,
        &obj.namespace,
        &s.cluster_name,
    ));
    let mut annotations = kept(&obj.annotations);
    for k in [
        ann::SYNC,
        ann::SYNC_CONTEXTS,
        ann::LAST_APPLIED,
        policy::KEYS,
        policy::EXCLUDE_NAMESPACES,
        policy::ON_DELETE,
    ] {
        annotations.remove(k);
    }
    if policy.on_delete == OnDelete::Retain {
        annotations.insert(policy::ON_DELETE.to_string(), "retain".to_string());
    }
    annotations.insert(
        ann::ORIGIN.to_string(),
        ann::origin_annotation(
            obj.kind().as_str(),
            &obj.namespace,
            &obj.name,
            obj.uid.as_deref(),
            obj.resource_version.as_deref(),
        ),
    );
    ObjectView {
        name: obj.name.clone(),
        namespace: namespace.to_string(),
        uid: None,
        resource_version: None,
        labels,
        annotations,
        payload: policy.payload(&obj.payload),
        our_labels: BTreeSet::new(),
        our_annotations: BTreeSet::new(),
        deleting: false,
    }
}

/// Whether a copy that is no longer wanted is kept (and released) rather than deleted: the
/// source's policy while it is a source, else the mark the copy carries.
pub fn retained(source: Option<&Source<'_>>, copy_retains: bool) -> bool {
    match source {
        Some(src) => src.spec.policy.on_delete == OnDelete::Retain,
        None => copy_retains,
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
    /// A managed copy no longer wanted whose source retains its copies: it stays, without our
    /// origin markers and field manager, so nothing of ours touches it again (uid precondition).
    Release {
        namespace: String,
        uid: Option<String>,
    },
    /// A copy made under a previous `--cluster-name` for the same source: a forced apply makes
    /// it ours (relabelled, updated); `uid` as for `Update`.
    TakeOver {
        desired: ObjectView,
        uid: Option<String>,
        from: String,
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

impl Action {
    /// The target namespace the action is about.
    pub fn namespace(&self) -> &str {
        match self {
            Action::Create(d)
            | Action::Update { desired: d, .. }
            | Action::TakeOver { desired: d, .. }
            | Action::Recreate { desired: d, .. } => &d.namespace,
            Action::Delete { namespace, .. }
            | Action::Release { namespace, .. }
            | Action::Conflict { namespace, .. }
            | Action::Noop { namespace } => namespace,
        }
    }

    /// Whether the action writes to the target (everything but no-op and conflict).
    pub fn writes(&self) -> bool {
        !matches!(self, Action::Noop { .. } | Action::Conflict { .. })
    }
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
    let made_by = |cluster: &str| ann::is_owned_by(&obs.labels, &desired.name, &src_ns, cluster);
    if !made_by(&s.cluster_name)
        && let Some(from) = s.previous_cluster_names.iter().find(|p| made_by(p))
    {
        return Action::TakeOver {
            uid: obs.uid.clone(),
            from: from.clone(),
            desired,
        };
    }
    if !made_by(&s.cluster_name) && !s.adopt_existing {
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
    let wanted = source.map(|src| wanted(src, target)).unwrap_or_default();
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
        let desired = desired_copy(src, ns, s);
        let observed = observed_copies
            .iter()
            .find(|o| &o.namespace == ns)
            .map(|o| (*o).clone());
        let observed = observed.or_else(|| others.get(ns).cloned());
        actions.push(diff(desired, observed.as_ref(), s));
    }
    for obs in observed_copies {
        if !wanted.contains(&obs.namespace) && !obs.deleting {
            let (namespace, uid) = (obs.namespace.clone(), obs.uid.clone());
            actions.push(
                match retained(source, policy::copy_retained(&obs.annotations)) {
                    true => Action::Release { namespace, uid },
                    false => Action::Delete { namespace, uid },
                },
            );
        }
    }
    actions
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "diff_tests.rs"]
pub(crate) mod tests;
