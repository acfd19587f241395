//! The plan for one source key in one target cluster, as `run`, `once` and `status` all make it:
//! [`KeyPlan::new`] (is it a source, its problems, the wanted namespaces), [`KeyPlan::to_read`]
//! (the namespaces only a GET can decide), then [`KeyPlan::actions`].
use crate::plan::diff::Action;
use crate::plan::kinds::ObjectView;
use crate::plan::scope::{self, Scope};
use crate::plan::source::{self, Contexts, NotSource, Problem, Settings, Source, classify};
use crate::plan::summary::{self, CopySummary};
use crate::plan::wanted::{Target, wanted};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyPlan<'a> {
    /// `None`: the source is gone, or the object is not a source (`not_source` says why).
    pub source: Option<Source<'a>>,
    pub not_source: Option<NotSource>,
    /// Namespaces of the target that should hold a copy.
    pub wanted: BTreeSet<String>,
    /// Reported on the source: its own problems by the source cluster's target only (so once);
    /// wanted namespaces outside a cluster's [`Scope`](crate::plan::Scope) by that cluster.
    pub problems: Vec<Problem>,
}

impl<'a> KeyPlan<'a> {
    /// `object`: the source object (`None`: deleted). The source's own problems are collected
    /// for the source cluster's target ([`Target::Local`]) only.
    pub fn new(
        object: Option<&'a ObjectView>,
        target: &Target<'_>,
        s: &Settings,
        contexts: &Contexts<'_>,
    ) -> Self {
        let Some(object) = object else {
            return KeyPlan {
                source: None,
                not_source: None,
                wanted: BTreeSet::new(),
                problems: Vec::new(),
            };
        };
        let mut classified = classify(object, s);
        if let Ok(src) = classified.as_mut() {
            let known = |c: &str| contexts.exists(c);
            crate::plan::annotations::resolve_contexts(&mut src.spec, &known);
        }
        let mut problems = match target {
            Target::Local { .. } => source::problems(object, &classified, contexts),
            Target::Context { .. } => Vec::new(),
        };
        let (source, not_source) = match classified {
            Ok(src) => (Some(src), None),
            Err(why) => (None, Some(why)),
        };
        let wanted = source
            .as_ref()
            .map(|src| wanted(src, target))
            .unwrap_or_default();
        // Namespaces outside the cluster's scope are not planned (not even read): reported.
        let (wanted, outside) = match target {
            Target::Local { .. } => s.local_scope.split(wanted),
            Target::Context { .. } => s.follower_scope.split(wanted),
        };
        match target {
            // Without intra-cluster sync the source cluster's namespaces are not even watched:
            // the annotation itself is the problem.
            Target::Local { .. }
                if s.local_scope.is_nothing()
                    && source.as_ref().is_some_and(|src| src.spec.intra.is_some()) =>
            {
                problems.push(intra_cluster_off());
            }
            Target::Context { context, .. } if !outside.is_empty() => {
                problems.push(not_allowed(&s.follower_scope, context, &outside));
            }
            _ => {}
        }
        KeyPlan {
            source,
            not_source,
            wanted,
            problems,
        }
    }

    /// Wanted namespaces whose object must be read first (see [`summary::needs_read`]).
    pub fn to_read(
        &self,
        copies: &[&CopySummary],
        s: &Settings,
        missing: summary::Missing,
    ) -> BTreeSet<String> {
        summary::needs_read(self.source.as_ref(), &self.wanted, copies, s, missing)
    }

    /// The actions, from the copies' summaries and the objects read by name
    /// (`read[ns]`: `None` = nothing there) for the namespaces [`KeyPlan::to_read`] named.
    pub fn actions(
        &self,
        copies: &[&CopySummary],
        read: &BTreeMap<String, Option<ObjectView>>,
        s: &Settings,
    ) -> Vec<Action> {
        summary::plan_copies(self.source.as_ref(), &self.wanted, copies, read, s)
    }
}

/// The problem of follower namespaces a source wants outside the follower scope.
fn not_allowed(allowed: &Scope, context: &str, outside: &BTreeSet<String>) -> Problem {
    let names = outside.iter().cloned().collect::<Vec<_>>().join(", ");
    Problem {
        reason: scope::NOT_ALLOWED,
        note: format!(
            "context {context}: namespace(s) {names} not in --follower-namespaces ({}); no copy \
             is made there",
            allowed.listed()
        ),
        context: Some(context.to_string()),
    }
}

/// The problem of a `sync` annotation (intra-cluster copies) while intra-cluster sync is off.
fn intra_cluster_off() -> Problem {
    Problem {
        reason: scope::INTRA_CLUSTER_OFF,
        note: format!(
            "annotation {} asks for copies in the source cluster, but intra-cluster sync is off \
             (--no-intra-cluster); none is made",
            crate::plan::annotations::SYNC
        ),
        context: None,
    }
}
