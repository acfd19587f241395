//! Is an object a source, and what is wrong with it: the classification every target's plan
//! starts from, and the problems reported on the source as Warning Events.
use crate::plan::annotations::{self as ann, AnnotationError, SyncSpec};
use crate::plan::kinds::ObjectView;
use std::collections::BTreeSet;

/// Daemon-wide settings the plan depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `--cluster-name`: written to `origin.cluster`, and the ownership/loop-guard key.
    pub cluster_name: String,
    /// Secret types that are never sources (unless `--include-secret-types`).
    pub skipped_secret_types: BTreeSet<String>,
    pub adopt_existing: bool,
    /// `--previous-cluster-name`: copies whose origin labels name one of these (and the source
    /// by namespace and name) are taken over instead of reported as conflicts (a migration
    /// from kubed, whose Helm chart names the cluster `unicorn`).
    pub previous_cluster_names: Vec<String>,
    /// Source labels/annotations no copy carries (GitOps ownership marks).
    pub metadata: crate::plan::policy::MetadataFilter,
    /// Where followers' copies may be (`--follower-namespaces`).
    pub follower_scope: crate::plan::scope::Scope,
    /// Where intra-cluster copies may be (none with `--no-intra-cluster`).
    pub local_scope: crate::plan::scope::Scope,
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
    if !crate::plan::selector::valid_value(&obj.name) {
        return Err(NotSource::NameTooLong);
    }
    let (spec, errors) = ann::parse(&obj.annotations);
    Ok(Source {
        object: obj,
        spec,
        errors,
    })
}

/// A problem to report on the source as a Warning Event (`reason` is the Event reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub note: String,
    /// The context the problem is about, if one (`UnknownContext`).
    pub context: Option<String>,
}

/// The contexts a source's `sync-contexts` may name, as far as problems go.
#[derive(Debug, Clone, Copy)]
pub struct Contexts<'a> {
    /// The source cluster's context: never a target.
    pub source: &'a str,
    /// Contexts that could not be built: (name, reason).
    pub broken: &'a [(String, String)],
    /// Every context that reaches a follower (aliases included).
    pub followers: &'a [String],
}

impl Contexts<'_> {
    /// Whether `name` is a context of the kubeconfig (usable or not).
    pub fn exists(&self, name: &str) -> bool {
        name == self.source
            || self.followers.iter().any(|f| f == name)
            || self.broken.iter().any(|(b, _)| b == name)
    }
}

/// The problems of `object` that its source cluster reports (once, whatever the targets):
/// a name too long to be a label value, malformed annotations, unknown contexts.
pub fn problems(
    object: &ObjectView,
    classified: &Result<Source<'_>, NotSource>,
    contexts: &Contexts<'_>,
) -> Vec<Problem> {
    match classified {
        Err(NotSource::NameTooLong) => vec![Problem {
            reason: "NameTooLong",
            note: "source name is longer than 63 characters, so it cannot be an origin label value; not synced".into(),
            context: None,
        }],
        Err(_) => Vec::new(),
        Ok(src) => {
            debug_assert!(std::ptr::eq(src.object, object));
            let mut out: Vec<Problem> = src
                .errors
                .iter()
                .map(|e| Problem {
                    reason: "MalformedAnnotation",
                    note: crate::chain(e),
                    context: None,
                })
                .collect();
            out.extend(context_problems(src, contexts));
            out
        }
    }
}

/// Problems with `sync-contexts` names, each context once.
fn context_problems(src: &Source<'_>, contexts: &Contexts<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &src.spec.contexts {
        if !seen.insert(c.context.clone()) {
            continue;
        }
        let note = if c.context == contexts.source {
            format!(
                "context {:?} is the source cluster and never a target",
                c.context
            )
        } else if let Some((_, why)) = contexts.broken.iter().find(|(n, _)| n == &c.context) {
            format!("context {:?} cannot be used: {why}", c.context)
        } else if !contexts.followers.contains(&c.context) {
            match c.context.contains('/') && c.namespace.is_none() {
                true => format!(
                    "item {:?} names no context of the kubeconfig file, as `context` or `context/namespace`",
                    c.context
                ),
                false => format!("context {:?} is not in the kubeconfig file", c.context),
            }
        } else {
            continue;
        };
        out.push(Problem {
            reason: "UnknownContext",
            note,
            context: Some(c.context.clone()),
        });
    }
    out
}
