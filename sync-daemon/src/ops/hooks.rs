//! Outcome hooks: the one place reconcile reports what it did. The metrics and the first-sync
//! notices (`run`) and `once`'s summary plug in here without touching the controller.
use crate::plan::{Kind, SourceKey};
use std::sync::atomic::{AtomicU64, Ordering};

/// The end of one reconcile of one source key in one target cluster.
#[derive(Debug, Clone, Copy)]
pub struct Synced<'a> {
    /// The source's resourceVersion (`None`: the source is gone or no longer a source).
    pub source_rv: Option<&'a str>,
    /// At least one create/update/recreate/delete was planned.
    pub wrote: bool,
    /// Namespaces where a copy was created (the first sync there).
    pub created: &'a [String],
    /// How many namespaces of this cluster should hold a copy.
    pub wanted: usize,
    pub converged: bool,
}

/// Called from the workers; implementations must be cheap and never block.
pub trait Hooks: Send + Sync {
    /// A write was sent (op: create, update, recreate, delete, release, remove_keys,
    /// create_namespace).
    fn write(&self, _cluster: &str, _kind: Kind, _op: &'static str) {}
    /// A same-named object we do not own blocked a copy.
    fn conflict(&self, _cluster: &str, _kind: Kind) {}
    /// A problem reported on a source (Event reason, e.g. OriginConflict, NamespaceMissing).
    fn problem(&self, _cluster: &str, _reason: &'static str) {}
    /// A reconcile failed (category from `SyncError::category`); it will be retried.
    fn error(&self, _cluster: &str, _category: &'static str) {}
    /// A reconcile finished; `converged`: nothing left to do for that key there.
    fn reconciled(&self, _cluster: &str, _converged: bool) {}
    /// A watch event on a source (the start of the propagation-latency clock).
    fn source_seen(&self, _key: &SourceKey, _rv: Option<&str>) {}
    /// A reconcile of `key` in `cluster` ended without error.
    fn synced(&self, _cluster: &str, _key: &SourceKey, _r: &Synced<'_>) {}
    /// A target cluster joined after start (the kubeconfig changed); `stop` turns `true` when
    /// it leaves again.
    fn cluster_added(
        &self,
        _cluster: &str,
        _client: &kube::Client,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) {
    }
    /// A target cluster left (the kubeconfig changed).
    fn cluster_removed(&self, _cluster: &str) {}
}

/// Counts everything; `once` prints it as its summary.
#[derive(Debug, Default)]
pub struct Tally {
    pub writes: AtomicU64,
    pub conflicts: AtomicU64,
    pub problems: AtomicU64,
    pub errors: AtomicU64,
    pub reconciled: AtomicU64,
    pub unconverged: AtomicU64,
}

impl Tally {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

impl Hooks for Tally {
    fn write(&self, _: &str, _: Kind, _: &'static str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
    fn conflict(&self, _: &str, _: Kind) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }
    fn problem(&self, _: &str, _: &'static str) {
        self.problems.fetch_add(1, Ordering::Relaxed);
    }
    fn error(&self, _: &str, _: &'static str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    fn reconciled(&self, _: &str, converged: bool) {
        self.reconciled.fetch_add(1, Ordering::Relaxed);
        if !converged {
            self.unconverged.fetch_add(1, Ordering::Relaxed);
        }
    }
}
