//! What every worker shares: the settings, the source caches, one [`TargetCluster`] per cluster
//! with a queue (index 0 is the source cluster itself, for intra-cluster copies), and where
//! outcomes, Events and writes go.
use crate::cache::{Copies, Sources};
use crate::clusters::Cluster;
use crate::controller::queue::Queue;
use crate::controller::writer::Writer;
use crate::ops::events::EventSink;
use crate::ops::hooks::Hooks;
use crate::plan::{Contexts, Kind, NamespaceView, Settings, SourceKey, Target};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// One target cluster: its clients, the cache of the copies we made there, its queue.
pub struct TargetCluster {
    pub cluster: Cluster,
    /// The source cluster itself (intra-cluster copies).
    pub local: bool,
    pub copies: Copies,
    pub queue: Arc<Queue>,
}

impl TargetCluster {
    /// The planner's view of this target; `namespaces` are this cluster's (the source
    /// cluster's when local).
    pub fn target<'a>(&'a self, namespaces: &'a [NamespaceView]) -> Target<'a> {
        if self.local {
            Target::Local { namespaces }
        } else {
            Target::Context {
                context: &self.cluster.context,
                namespace: self.cluster.namespace.as_deref(),
                aliases: &self.cluster.aliases,
                namespaces,
            }
        }
    }
}

pub struct Context {
    pub settings: Settings,
    pub create_namespaces: bool,
    pub sources: Sources,
    /// Index 0 is the source cluster.
    pub targets: Vec<TargetCluster>,
    /// The source context name (a source naming it in sync-contexts gets an Event).
    pub source_context: String,
    /// Contexts that could not be built: (name, reason).
    pub broken_contexts: Vec<(String, String)>,
    /// Every context that reaches a follower, aliases included.
    pub follower_contexts: Vec<String>,
    pub events: EventSink,
    pub hooks: Arc<dyn Hooks>,
    pub writer: Writer,
    /// The problem set last published per (target index, key), so Events are not repeated on
    /// every resync.
    pub(crate) reported: Mutex<HashMap<(usize, SourceKey), BTreeSet<String>>>,
}

impl Context {
    /// The contexts a source may name, for the planner's problems.
    pub fn contexts(&self) -> Contexts<'_> {
        Contexts {
            source: &self.source_context,
            broken: &self.broken_contexts,
            followers: &self.follower_contexts,
        }
    }

    /// Every key worth reconciling in target `idx`, sorted: each candidate source (`sources`,
    /// from [`Sources::keys`]), plus the origin of each copy there that is not one (so orphans
    /// are found). Without orphans this is `sources` itself, not a copy of it.
    pub fn sweep_keys(&self, idx: usize, sources: &Arc<[SourceKey]>) -> Arc<[SourceKey]> {
        let Some(t) = self.targets.get(idx) else {
            return sources.clone();
        };
        let mut orphans = Vec::new();
        for kind in [Kind::ConfigMap, Kind::Secret] {
            t.copies.of(kind).each_origin(|id| {
                if sources
                    .binary_search_by(|k| (k.kind, k.id()).cmp(&(kind, id)))
                    .is_err()
                {
                    orphans.push(SourceKey::from_id(kind, id));
                }
            });
        }
        if orphans.is_empty() {
            return sources.clone();
        }
        orphans.extend(sources.iter().cloned());
        orphans.sort_unstable();
        orphans.into()
    }

    /// Waits until the source caches and target `idx`'s copy caches hold a full list.
    pub async fn ready(&self, idx: usize) -> bool {
        let t = &self.targets[idx];
        self.sources.ready.wait().await && t.copies.ready.wait().await
    }
}
