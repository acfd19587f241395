//! What every worker shares: the settings, the source caches, the target clusters (slot 0 is
//! the source cluster itself, for intra-cluster copies), the context names the planner checks
//! `sync-contexts` against, and where outcomes, Events and writes go. Targets and names change
//! when the kubeconfig is reloaded (`reload.rs`); a slot is never reused, so an index names one
//! cluster (one set of clients, caches and queue) for the daemon's whole life.
use crate::cache::{Copies, Sources};
use crate::clusters::Cluster;
use crate::controller::queue::Queue;
use crate::controller::writer::Writer;
use crate::ops::events::EventSink;
use crate::ops::hooks::Hooks;
use crate::plan::{Contexts, Kind, NamespaceView, Settings, SourceKey, Target};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// Which queue(s) a watch event or resync request concerns (a target's slot).
#[derive(Debug, Clone, Copy)]
pub enum Resync {
    All,
    One(usize),
}

/// One target cluster: its clients, the cache of the copies we made there, its queue.
pub struct TargetCluster {
    pub cluster: Cluster,
    /// The source cluster itself (intra-cluster copies).
    pub local: bool,
    pub copies: Copies,
    pub queue: Arc<Queue>,
    /// Turns `true` when the cluster left the kubeconfig: its workers return.
    stop: tokio::sync::watch::Sender<bool>,
}

impl TargetCluster {
    pub fn new(cluster: Cluster, local: bool, copies: Copies, queue: Arc<Queue>) -> Self {
        TargetCluster {
            cluster,
            local,
            copies,
            queue,
            stop: tokio::sync::watch::channel(false).0,
        }
    }

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

    /// A receiver that turns `true` when the cluster is stopped.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops its watches and tells its workers to return (a reconcile in flight finishes).
    fn shut(&self) {
        self.stop.send_replace(true);
        self.copies.stop();
    }
}

/// The target clusters by slot.
#[derive(Default)]
pub struct Targets {
    slots: RwLock<Vec<Option<Arc<TargetCluster>>>>,
}

impl Targets {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<Arc<TargetCluster>>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Option<Arc<TargetCluster>>>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, idx: usize) -> Option<Arc<TargetCluster>> {
        self.read().get(idx).cloned().flatten()
    }

    /// Every target in use, with its slot.
    pub fn live(&self) -> Vec<(usize, Arc<TargetCluster>)> {
        (self.read().iter().enumerate())
            .filter_map(|(i, t)| t.clone().map(|t| (i, t)))
            .collect()
    }

    /// The slots in use.
    pub fn ids(&self) -> Vec<usize> {
        (self.read().iter().enumerate())
            .filter_map(|(i, t)| t.as_ref().map(|_| i))
            .collect()
    }

    /// The slot the next [`Targets::push`] fills.
    pub fn next_id(&self) -> usize {
        self.read().len()
    }

    pub fn push(&self, t: TargetCluster) -> usize {
        let mut slots = self.write();
        slots.push(Some(Arc::new(t)));
        slots.len() - 1
    }

    /// Empties slot `idx` and stops its cluster.
    pub fn remove(&self, idx: usize) -> Option<Arc<TargetCluster>> {
        let t = self.write().get_mut(idx).and_then(Option::take);
        if let Some(t) = &t {
            t.shut();
        }
        t
    }

    /// Calls `f` with the queue of every target in use.
    pub fn each_queue(&self, mut f: impl FnMut(&Queue)) {
        for t in self.read().iter().flatten() {
            f(&t.queue);
        }
    }
}

/// The kubeconfig's context names, as the planner checks `sync-contexts` against them.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// The source context name (a source naming it in sync-contexts gets an Event).
    pub source: String,
    /// Contexts that could not be built: (name, reason).
    pub broken: Vec<(String, String)>,
    /// Every context that reaches a follower, aliases included.
    pub followers: Vec<String>,
}

impl Names {
    /// The names of `source`, `broken` and the followers among `targets`.
    pub fn of(source: &str, broken: Vec<(String, String)>, targets: &Targets) -> Names {
        let followers = (targets.live().iter())
            .filter(|(_, t)| !t.local)
            .flat_map(|(_, t)| {
                std::iter::once(t.cluster.context.clone())
                    .chain(t.cluster.aliases.iter().map(|(n, _)| n.clone()))
            })
            .collect();
        Names {
            source: source.to_string(),
            broken,
            followers,
        }
    }

    /// The contexts a source may name, for the planner's problems.
    pub fn contexts(&self) -> Contexts<'_> {
        Contexts {
            source: &self.source,
            broken: &self.broken,
            followers: &self.followers,
        }
    }
}

pub struct Context {
    pub settings: Settings,
    pub create_namespaces: bool,
    pub sources: Sources,
    /// Slot 0 is the source cluster.
    pub targets: Arc<Targets>,
    pub(crate) names: RwLock<Arc<Names>>,
    /// The label selector of our copies (for a target added later).
    pub selector: String,
    /// Where a target asks for a sweep of its queue.
    pub resync: mpsc::UnboundedSender<Resync>,
    pub events: EventSink,
    pub hooks: Arc<dyn Hooks>,
    pub writer: Writer,
    /// The problem set last published per (target index, key), so Events are not repeated on
    /// every resync.
    pub(crate) reported: Mutex<HashMap<(usize, SourceKey), BTreeSet<String>>>,
    /// Large payloads in flight, across all clusters.
    pub(crate) payloads: crate::controller::budget::PayloadBudget,
}

impl Context {
    /// The context names now in effect.
    pub fn names(&self) -> Arc<Names> {
        self.names.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_names(&self, names: Names) {
        *self.names.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(names);
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
        // An origin with copies in two watched namespaces came once per namespace.
        orphans.dedup();
        orphans.into()
    }

    /// Waits until the source caches and target `idx`'s copy caches hold a full list; `false`
    /// when the target is gone or its watches stopped.
    pub async fn ready(&self, idx: usize) -> bool {
        let Some(t) = self.targets.get(idx) else {
            return false;
        };
        self.sources.ready.wait().await && t.copies.ready.wait().await
    }

    /// Forgets what was reported for target `idx` (it left the kubeconfig).
    pub(crate) fn forget_target(&self, idx: usize) {
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        r.retain(|(i, _), _| *i != idx);
    }
}
