//! Health: the probe loop per cluster (GET /version) that feeds readiness, the cluster-up gauge
//! and the FollowerUnreachable Event, and the readiness state the admin server reports.
use crate::cache::ready::Ready;
use crate::ops::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often every cluster is probed (GET /version): often enough to notice an outage within
/// `--unreachable-after` (four probes in that window), never more than every second, and at
/// most every 30 s — with the default 2m threshold an idle daemon costs 120 requests per
/// cluster per hour (it was 720 at a fixed 5 s, the whole of its idle traffic).
fn probe_interval(unreachable_after: Duration) -> Duration {
    (unreachable_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Up,
    Down { since: Instant, reported: bool },
}

/// Readiness inputs, shared by the probe loop and the HTTP handlers.
#[derive(Default)]
pub struct Health {
    source_synced: AtomicBool,
    /// Every cluster by context; `None` until it answered once or was marked down.
    clusters: Mutex<BTreeMap<String, Option<Probe>>>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Probe>>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Ok` when ready; otherwise what is still missing.
    pub fn readiness(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.source_synced.load(Ordering::Relaxed) {
            missing.push("source caches not synced".to_string());
        }
        let g = self.lock();
        if g.is_empty() {
            missing.push("clusters not loaded".to_string());
        }
        for (c, p) in g.iter() {
            if p.is_none() {
                missing.push(format!("cluster {c} not probed yet"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }

    /// One line per cluster for the /readyz body.
    pub fn describe(&self) -> String {
        self.lock()
            .iter()
            .map(|(c, p)| {
                let s = match p {
                    None => "unknown",
                    Some(Probe::Up) => "up",
                    Some(Probe::Down { .. }) => "down",
                };
                format!("cluster {c}: {s}\n")
            })
            .collect()
    }
}

/// Something for the Event publisher: a cluster unreachable past the threshold.
#[derive(Debug)]
pub struct Unreachable {
    pub cluster: String,
    pub for_: Duration,
}

/// A cluster to probe: its context, its client, and a signal that turns `true` when it leaves.
pub type Probed = (String, kube::Client, tokio::sync::watch::Receiver<bool>);

/// Starts the readiness watcher and one probe loop per cluster.
pub fn start(
    sources_ready: Ready,
    clusters: Vec<Probed>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    unreachable_after: Duration,
    events: mpsc::UnboundedSender<Unreachable>,
) {
    {
        let health = health.clone();
        tokio::spawn(async move {
            if sources_ready.wait().await {
                health.source_synced.store(true, Ordering::Relaxed);
                tracing::info!("source caches synced");
            }
        });
    }
    let names: Vec<String> = clusters.iter().map(|(c, _, _)| c.clone()).collect();
    metrics.set_targets(&names);
    {
        let mut g = health.lock();
        for n in &names {
            g.insert(n.clone(), None);
        }
    }
    for (cluster, client, stop) in clusters {
        let probe = Probing {
            cluster,
            client,
            health: health.clone(),
            metrics: metrics.clone(),
            unreachable_after,
            events: events.clone(),
            stop,
        };
        tokio::spawn(probe.run());
    }
}

/// Probes a cluster that joined after start until `stop` turns true; readiness waits for its
/// first answer like any other's. `events`: `None` before [`start`] (no Event then).
pub fn add(
    cluster: &str,
    client: kube::Client,
    stop: tokio::sync::watch::Receiver<bool>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    unreachable_after: Duration,
    events: Option<mpsc::UnboundedSender<Unreachable>>,
) {
    metrics.set_targets(&[cluster.to_string()]);
    health.lock().insert(cluster.to_string(), None);
    let probe = Probing {
        cluster: cluster.to_string(),
        client,
        health: health.clone(),
        metrics: metrics.clone(),
        unreachable_after,
        events: events.unwrap_or_else(|| mpsc::unbounded_channel().0),
        stop,
    };
    tokio::spawn(probe.run());
}

/// Forgets a cluster that left: readiness no longer waits for it, its series go.
pub fn remove(cluster: &str, health: &Health, metrics: &Metrics) {
    health.lock().remove(cluster);
    metrics.remove_target(cluster);
}

/// One cluster's probe loop.
struct Probing {
    cluster: String,
    client: kube::Client,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    unreachable_after: Duration,
    events: mpsc::UnboundedSender<Unreachable>,
    /// Turns true when the cluster leaves: the probe loop ends.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Probing {
    async fn run(self) {
        let mut tick = tokio::time::interval(probe_interval(self.unreachable_after));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let up = self.probe().await;
            if *stop.borrow() {
                return;
            }
            self.metrics.set_up(&self.cluster, up);
            let mut g = self.health.lock();
            // Only clusters still known: one removed meanwhile is not put back.
            if let Some(entry) = g.get_mut(&self.cluster) {
                let next = self.next(up, *entry);
                *entry = Some(next);
            }
        }
    }

    async fn probe(&self) -> bool {
        let res = tokio::time::timeout(PROBE_TIMEOUT, self.client.apiserver_version()).await;
        match res {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                let cat = crate::clusters::api_category(&e);
                if cat == "unauthorized" {
                    self.metrics.credential_failure(&self.cluster);
                }
                tracing::debug!(cluster = %self.cluster, error = %crate::chain(&e), "health probe failed");
                false
            }
            Err(_) => false,
        }
    }

    /// The cluster's next state; an outage past the threshold is reported once.
    fn next(&self, up: bool, prev: Option<Probe>) -> Probe {
        let cluster = &self.cluster;
        match (up, prev) {
            (true, Some(Probe::Down { .. })) => {
                tracing::info!(cluster = %cluster, "cluster reachable again");
                Probe::Up
            }
            (true, _) => Probe::Up,
            (false, Some(Probe::Down { since, reported })) => {
                let down_for = since.elapsed();
                let report = !reported && down_for >= self.unreachable_after;
                if report {
                    let _ = self.events.send(Unreachable {
                        cluster: cluster.clone(),
                        for_: down_for,
                    });
                }
                Probe::Down {
                    since,
                    reported: reported || report,
                }
            }
            (false, _) => {
                tracing::warn!(cluster = %cluster, "cluster unreachable");
                Probe::Down {
                    since: Instant::now(),
                    reported: false,
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn probes_follow_the_unreachable_threshold() {
        let s = Duration::from_secs;
        for (after, every) in [
            (s(120), s(30)),
            (s(3600), s(30)),
            (s(20), s(5)),
            (s(3), s(1)),
        ] {
            assert_eq!(probe_interval(after), every, "{after:?}");
        }
    }

    #[test]
    fn readiness_needs_every_cluster_probed() {
        let h = Health::default();
        assert!(h.readiness().is_err());
        h.source_synced.store(true, Ordering::Relaxed);
        h.lock().insert("a".into(), None);
        assert!(h.readiness().unwrap_err().contains("cluster a"));
        h.lock().insert(
            "a".into(),
            Some(Probe::Down {
                since: Instant::now(),
                reported: false,
            }),
        );
        assert!(
            h.readiness().is_ok(),
            "a cluster marked down does not block"
        );
    }
}
