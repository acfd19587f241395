//! Prometheus metrics (`/metrics`): a [`Hooks`] implementation that turns reconcile outcomes
//! into counters, gauges and the propagation-latency histogram. Labels are bounded: cluster
//! (kubeconfig context), kind, operation, reason — never an object name.
use crate::ops::hooks::{Hooks, Synced};
use crate::plan::{Kind, SourceKey};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub cluster: String,
    pub kind: &'static str,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub cluster: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub cluster: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

/// A source change on its way to every target cluster.
struct Pending {
    rv: Option<String>,
    seen: Instant,
    /// Indexed like `State::clusters`: the change converged there.
    done: Vec<bool>,
    wrote: bool,
}

/// One target cluster's view of one source.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// Hash of the source resourceVersion last converged there (0: none). Only compared for
    /// equality, to tell a drift repair (same version written again) from a propagation; a
    /// 64-bit hash instead of the string keeps the state at a few bytes per source and cluster.
    rv: u64,
    /// Counted in the objects-in-sync gauge.
    in_sync: bool,
}

/// Per-source state, one slot per target cluster. Kept compact on purpose: keyed by
/// (cluster name, source) strings it was ≈2 KiB per source at 6 clusters, a third of the daemon's
/// memory at 10,000 sources; now one key plus 16 bytes per cluster.
#[derive(Default)]
struct State {
    /// Target clusters; a cluster's index is its slot in every `keys` entry.
    clusters: Vec<String>,
    /// Indexed like `clusters`: `false` once the cluster left (a change no longer waits for it).
    active: Vec<bool>,
    /// Sources converged per cluster (the objects-in-sync gauge).
    in_sync: Vec<i64>,
    keys: HashMap<SourceKey, Vec<Slot>>,
    pending: HashMap<SourceKey, Pending>,
}

impl State {
    fn index(&mut self, cluster: &str) -> usize {
        match self.clusters.iter().position(|c| c == cluster) {
            Some(i) => {
                self.active[i] = true;
                i
            }
            None => {
                self.clusters.push(cluster.to_string());
                self.active.push(true);
                self.in_sync.push(0);
                self.clusters.len() - 1
            }
        }
    }

    /// Whether a change has converged in every cluster still there.
    fn complete(&self, p: &Pending) -> bool {
        (self.active.iter().enumerate())
            .all(|(i, active)| !active || p.done.get(i).copied().unwrap_or(false))
    }
}

/// Never 0 (0 means "no version").
fn rv_hash(rv: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(rv) | 1
}

pub struct Metrics {
    registry: Registry,
    pub writes: Family<WriteLabels, Counter>,
    pub conflicts: Family<KindLabels, Counter>,
    pub drift_repairs: Family<KindLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub problems: Family<ReasonLabels, Counter>,
    pub follower_up: Family<ClusterLabels, Gauge>,
    pub in_sync: Family<ClusterLabels, Gauge>,
    pub credential_failures: Family<ClusterLabels, Counter>,
    pub reconciles: Family<ClusterLabels, Counter>,
    pub propagation: Histogram,
    pub leader: Gauge,
    state: Mutex<State>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kcs");
        let m = Metrics {
            writes: Family::default(),
            conflicts: Family::default(),
            drift_repairs: Family::default(),
            errors: Family::default(),
            problems: Family::default(),
            follower_up: Family::default(),
            in_sync: Family::default(),
            credential_failures: Family::default(),
            reconciles: Family::default(),
            propagation: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            leader: Gauge::default(),
            state: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "writes",
            "Writes sent to a cluster, by kind and operation",
            m.writes.clone(),
        );
        registry.register(
            "conflicts",
            "Same-named objects not owned by us that blocked a copy",
            m.conflicts.clone(),
        );
        registry.register(
            "drift_repairs",
            "Copies rewritten although their source had not changed (hand edit or delete)",
            m.drift_repairs.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles of one source in one cluster (the start-up sweep, changes, resyncs, retries)",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles and writes, by error category",
            m.errors.clone(),
        );
        registry.register(
            "problems",
            "Problems reported as Events on sources, by Event reason",
            m.problems.clone(),
        );
        registry.register(
            "cluster_up",
            "1 when the cluster's API server answered the last health probe",
            m.follower_up.clone(),
        );
        registry.register(
            "objects_in_sync",
            "Sources whose copies in the cluster match the plan",
            m.in_sync.clone(),
        );
        registry.register(
            "credential_refresh_failures",
            "Failed exec credential plugin runs and requests refused with 401 Unauthorized",
            m.credential_failures.clone(),
        );
        registry.register(
            "propagation_seconds",
            "Source change seen to every target cluster converged (only changes that wrote)",
            m.propagation.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            m.leader.clone(),
        );
        Metrics { registry, ..m }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The number of target clusters a change must reach (source cluster included).
    pub fn set_targets(&self, clusters: &[String]) {
        let mut st = self.lock();
        for c in clusters {
            st.index(c);
            // Export zeroes, so a scrape shows every cluster before anything happened.
            let _ = self
                .in_sync
                .get_or_create(&ClusterLabels { cluster: c.clone() });
        }
    }

    /// A target cluster left: its series go, and pending changes stop waiting for it.
    pub fn remove_target(&self, cluster: &str) {
        let mut finished = Vec::new();
        {
            let mut st = self.lock();
            let Some(i) = st.clusters.iter().position(|c| c == cluster) else {
                return;
            };
            st.active[i] = false;
            st.in_sync[i] = 0;
            for slots in st.keys.values_mut() {
                if let Some(s) = slots.get_mut(i) {
                    *s = Slot::default();
                }
            }
            st.keys
                .retain(|_, slots| slots.iter().any(|s| s.rv != 0 || s.in_sync));
            let done: Vec<SourceKey> = (st.pending.iter())
                .filter(|(_, p)| st.complete(p))
                .map(|(k, _)| k.clone())
                .collect();
            for k in done {
                if let Some(p) = st.pending.remove(&k) {
                    finished.push(p);
                }
            }
        }
        for p in finished.iter().filter(|p| p.wrote) {
            self.propagation.observe(p.seen.elapsed().as_secs_f64());
        }
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        self.in_sync.remove(&labels);
        self.follower_up.remove(&labels);
    }

    pub fn set_up(&self, cluster: &str, up: bool) {
        self.follower_up
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .set(i64::from(up));
    }

    pub fn credential_failure(&self, cluster: &str) {
        self.credential_failures
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .inc();
    }
}

impl Hooks for Metrics {
    fn write(&self, cluster: &str, kind: Kind, op: &'static str) {
        self.writes
            .get_or_create(&WriteLabels {
                cluster: cluster.to_string(),
                kind: kind.as_str(),
                operation: op,
            })
            .inc();
    }
    fn conflict(&self, cluster: &str, kind: Kind) {
        self.conflicts
            .get_or_create(&KindLabels {
                cluster: cluster.to_string(),
                kind: kind.as_str(),
            })
            .inc();
    }
    fn problem(&self, cluster: &str, reason: &'static str) {
        self.problems
            .get_or_create(&ReasonLabels {
                cluster: cluster.to_string(),
                reason,
            })
            .inc();
    }
    fn reconciled(&self, cluster: &str, _converged: bool) {
        self.reconciles
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .inc();
    }
    fn error(&self, cluster: &str, category: &'static str) {
        self.errors
            .get_or_create(&ReasonLabels {
                cluster: cluster.to_string(),
                reason: category,
            })
            .inc();
        // A failed plugin run is counted once by the plugin's runner, not per request.
        if category == "unauthorized" {
            self.credential_failure(cluster);
        }
    }
    fn source_seen(&self, key: &SourceKey, rv: Option<&str>) {
        let mut st = self.lock();
        let fresh = st.pending.get(key).is_none_or(|p| p.rv.as_deref() != rv);
        if fresh {
            st.pending.insert(
                key.clone(),
                Pending {
                    rv: rv.map(str::to_string),
                    seen: Instant::now(),
                    done: Vec::new(),
                    wrote: false,
                },
            );
        }
    }
    fn synced(&self, cluster: &str, key: &SourceKey, r: &Synced<'_>) {
        let mut st = self.lock();
        let st = &mut *st;
        let i = st.index(cluster);
        let targets = st.clusters.len();
        let rv = r.source_rv.map(rv_hash).unwrap_or(0);
        let slots = st.keys.entry(key.clone()).or_default();
        if slots.len() < targets {
            slots.resize(targets, Slot::default());
        }
        let slot = &mut slots[i];
        if r.converged {
            if r.wrote && rv != 0 && slot.rv == rv {
                self.drift_repairs
                    .get_or_create(&KindLabels {
                        cluster: cluster.to_string(),
                        kind: key.kind.as_str(),
                    })
                    .inc();
            }
            slot.rv = rv;
        }
        let in_sync = r.converged && rv != 0 && r.wanted > 0;
        if in_sync != slot.in_sync {
            slot.in_sync = in_sync;
            st.in_sync[i] += if in_sync { 1 } else { -1 };
        }
        if slots.iter().all(|s| s.rv == 0 && !s.in_sync) {
            st.keys.remove(key);
        }
        self.in_sync
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .set(st.in_sync[i]);
        let mut finished = None;
        if let Some(p) = st.pending.get_mut(key)
            && r.converged
            && (r.source_rv.is_none() || p.rv.as_deref() == r.source_rv)
        {
            if p.done.len() < targets {
                p.done.resize(targets, false);
            }
            p.done[i] = true;
            p.wrote |= r.wrote;
            let done = (p.done.iter().enumerate())
                .all(|(i, d)| *d || !st.active.get(i).copied().unwrap_or(true));
            if done {
                finished = Some((p.seen, p.wrote));
            }
        }
        if let Some((seen, wrote)) = finished {
            st.pending.remove(key);
            if st.pending.is_empty() {
                // A burst of changes may have grown it; give that back once all converged.
                st.pending.shrink_to(64);
            }
            if wrote {
                self.propagation.observe(seen.elapsed().as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key() -> SourceKey {
        SourceKey::new(Kind::Secret, "prod", "s")
    }

    fn synced(rv: Option<&str>, wrote: bool) -> Synced<'_> {
        Synced {
            source_rv: rv,
            wrote,
            created: &[],
            wanted: 1,
            converged: true,
        }
    }

    #[test]
    fn drift_latency_and_in_sync() {
        let m = Metrics::new();
        m.set_targets(&["a".into(), "b".into()]);
        m.source_seen(&key(), Some("1"));
        m.synced("a", &key(), &synced(Some("1"), true));
        assert!(
            m.encode().contains("kcs_propagation_seconds_count 0"),
            "b not done yet"
        );
        m.synced("b", &key(), &synced(Some("1"), false));
        assert!(m.encode().contains("kcs_propagation_seconds_count 1"));
        // Same source version written again in a: a repair of drift.
        m.synced("a", &key(), &synced(Some("1"), true));
        let text = m.encode();
        assert!(
            text.contains(r#"kcs_drift_repairs_total{cluster="a",kind="Secret"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kcs_objects_in_sync{cluster="b"} 1"#),
            "{text}"
        );
        m.synced("b", &key(), &synced(None, true));
        assert!(m.encode().contains(r#"kcs_objects_in_sync{cluster="b"} 0"#));
    }

    #[test]
    fn a_deleted_source_leaves_no_state() {
        let m = Metrics::new();
        m.set_targets(&["a".into(), "b".into()]);
        for c in ["a", "b"] {
            m.synced(c, &key(), &synced(Some("7"), true));
        }
        assert_eq!(m.lock().keys.len(), 1);
        assert!(m.lock().pending.is_empty());
        m.synced("a", &key(), &synced(None, true));
        assert_eq!(m.lock().keys.len(), 1, "still in sync in b");
        m.synced("b", &key(), &synced(None, true));
        assert!(m.lock().keys.is_empty());
        assert_eq!(m.lock().in_sync, vec![0, 0]);
    }

    #[test]
    fn labels_are_bounded() {
        let m = Metrics::new();
        m.write("a", Kind::ConfigMap, "create");
        m.error("a", "unauthorized");
        m.reconciled("a", true);
        m.reconciled("a", false);
        let text = m.encode();
        assert!(text.contains(r#"kcs_reconciles_total{cluster="a"} 2"#));
        assert!(
            text.contains(r#"kcs_writes_total{cluster="a",kind="ConfigMap",operation="create"} 1"#)
        );
        assert!(text.contains(r#"kcs_credential_refresh_failures_total{cluster="a"} 1"#));
    }
}
