//! Prometheus metrics (`/metrics`): a [`Hooks`] implementation that turns reconcile outcomes
//! into counters, gauges and the propagation-latency histogram. Labels are bounded: cluster
//! (kubeconfig context), kind, operation, reason — never an object name.
use crate::desired::Kind;
use crate::hooks::{Hooks, Synced};
use crate::queue::SourceKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{BTreeSet, HashMap};
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
    done: BTreeSet<String>,
    wrote: bool,
}

#[derive(Default)]
struct State {
    /// (cluster, key) → source resourceVersion last converged there (drift detection).
    last_synced: HashMap<(String, SourceKey), Option<String>>,
    /// cluster → keys converged there (the objects-in-sync gauge).
    in_sync: HashMap<String, BTreeSet<SourceKey>>,
    pending: HashMap<SourceKey, Pending>,
    targets: usize,
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
            "Requests that failed for want of credentials (exec plugin error or 401)",
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
        self.lock().targets = clusters.len();
        for c in clusters {
            // Export zeroes, so a scrape shows every cluster before anything happened.
            let _ = self
                .in_sync
                .get_or_create(&ClusterLabels { cluster: c.clone() });
        }
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
    fn error(&self, cluster: &str, category: &'static str) {
        self.errors
            .get_or_create(&ReasonLabels {
                cluster: cluster.to_string(),
                reason: category,
            })
            .inc();
        if category == "credentials" || category == "unauthorized" {
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
                    done: BTreeSet::new(),
                    wrote: false,
                },
            );
        }
    }
    fn synced(&self, cluster: &str, key: &SourceKey, r: &Synced<'_>) {
        let mut st = self.lock();
        let slot = (cluster.to_string(), key.clone());
        let rv = r.source_rv.map(str::to_string);
        if r.converged {
            let previous = st.last_synced.insert(slot, rv.clone());
            if r.wrote && rv.is_some() && previous.as_ref() == Some(&rv) {
                self.drift_repairs
                    .get_or_create(&KindLabels {
                        cluster: cluster.to_string(),
                        kind: key.kind.as_str(),
                    })
                    .inc();
            }
        }
        let set = st.in_sync.entry(cluster.to_string()).or_default();
        if r.converged && rv.is_some() && r.wanted > 0 {
            set.insert(key.clone());
        } else {
            set.remove(key);
        }
        let n = set.len() as i64;
        self.in_sync
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .set(n);
        if rv.is_none() && r.converged {
            st.last_synced.remove(&(cluster.to_string(), key.clone()));
        }
        let targets = st.targets;
        let mut finished = None;
        if let Some(p) = st.pending.get_mut(key)
            && r.converged
            && (rv.is_none() || p.rv == rv)
        {
            p.done.insert(cluster.to_string());
            p.wrote |= r.wrote;
            if targets > 0 && p.done.len() >= targets {
                finished = Some((p.seen, p.wrote));
            }
        }
        if let Some((seen, wrote)) = finished {
            st.pending.remove(key);
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
        SourceKey {
            kind: Kind::Secret,
            namespace: "prod".into(),
            name: "s".into(),
        }
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
    fn labels_are_bounded() {
        let m = Metrics::new();
        m.write("a", Kind::ConfigMap, "create");
        m.error("a", "unauthorized");
        let text = m.encode();
        assert!(
            text.contains(r#"kcs_writes_total{cluster="a",kind="ConfigMap",operation="create"} 1"#)
        );
        assert!(text.contains(r#"kcs_credential_refresh_failures_total{cluster="a"} 1"#));
    }
}
