//! The `run` command's [`Hooks`]: metrics, plus the Events the controller does not raise itself —
//! `Synced` (first copies made, batched: at most one Event per second) and
//! `FollowerUnreachable` (a cluster down for longer than --unreachable-after, on every source
//! that names it).
use crate::cache::Sources;
use crate::ops::events::EventSink;
use crate::ops::health::{self, Health, Unreachable};
use crate::ops::hooks::{Hooks, Synced};
use crate::ops::metrics::Metrics;
use crate::plan::{Kind, SourceKey};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct FirstSync {
    cluster: String,
    key: SourceKey,
    namespaces: Vec<String>,
}

pub struct Ops {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub unreachable_after: Duration,
    first_sync: mpsc::UnboundedSender<FirstSync>,
    first_sync_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<FirstSync>>>,
    /// Where the probes of clusters added later report an outage (set by `start`).
    unreachable: std::sync::Mutex<Option<mpsc::UnboundedSender<Unreachable>>>,
}

impl Ops {
    pub fn new(unreachable_after: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Ops {
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
            unreachable_after,
            first_sync: tx,
            first_sync_rx: std::sync::Mutex::new(Some(rx)),
            unreachable: std::sync::Mutex::new(None),
        }
    }

    /// Once the controller's caches and clients exist: health probes of `clusters` (context,
    /// client), readiness, and the Event publisher. Later calls do nothing.
    pub fn start(&self, sources: Sources, clusters: Vec<health::Probed>, events: EventSink) {
        let (unreach_tx, unreach_rx) = mpsc::unbounded_channel();
        *self.unreachable.lock().unwrap_or_else(|p| p.into_inner()) = Some(unreach_tx.clone());
        health::start(
            sources.ready.clone(),
            clusters,
            self.health.clone(),
            self.metrics.clone(),
            self.unreachable_after,
            unreach_tx,
        );
        let rx = (self.first_sync_rx.lock())
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(publish(sources, rx, unreach_rx, events));
        }
    }
}

impl Hooks for Ops {
    fn write(&self, cluster: &str, kind: Kind, op: &'static str) {
        self.metrics.write(cluster, kind, op);
    }
    fn conflict(&self, cluster: &str, kind: Kind) {
        self.metrics.conflict(cluster, kind);
    }
    fn problem(&self, cluster: &str, reason: &'static str) {
        self.metrics.problem(cluster, reason);
    }
    fn error(&self, cluster: &str, category: &'static str) {
        self.metrics.error(cluster, category);
    }
    fn reconciled(&self, cluster: &str, converged: bool) {
        self.metrics.reconciled(cluster, converged);
    }
    fn source_seen(&self, key: &SourceKey, rv: Option<&str>) {
        self.metrics.source_seen(key, rv);
    }
    fn cluster_added(
        &self,
        cluster: &str,
        client: &kube::Client,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let events = self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        health::add(
            cluster,
            client.clone(),
            stop,
            &self.health,
            &self.metrics,
            self.unreachable_after,
            events,
        );
    }
    fn cluster_removed(&self, cluster: &str) {
        health::remove(cluster, &self.health, &self.metrics);
    }
    fn synced(&self, cluster: &str, key: &SourceKey, r: &Synced<'_>) {
        self.metrics.synced(cluster, key, r);
        if !r.created.is_empty() {
            let _ = self.first_sync.send(FirstSync {
                cluster: cluster.to_string(),
                key: key.clone(),
                namespaces: r.created.to_vec(),
            });
        }
    }
}

/// How long first-copy notices are gathered into one `Synced` Event.
const SYNCED_BATCH: Duration = Duration::from_secs(1);
const SYNCED_BATCH_MAX: usize = 10_000;
/// Sources named in a batch Event's note (the rest are counted).
const SYNCED_NAMED: usize = 10;

/// At most one `Synced` Event per batch. A batch of one source (the common case: a new source, a
/// new namespace) is reported on that source, naming every context and namespace it reached. A
/// batch of many (a cold start, a new follower) is one Event on the first source that still
/// exists, counting the copies per context and naming the first sources; each copy made is in
/// the log ("copy created").
fn synced_events(sources: &Sources, batch: Vec<FirstSync>) -> Vec<(ObjectReference, Event)> {
    let mut by_source: BTreeMap<SourceKey, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in batch {
        by_source
            .entry(f.key)
            .or_default()
            .entry(f.cluster)
            .or_default()
            .extend(f.namespaces);
    }
    let mut refs = (by_source.keys()).filter_map(|key| Some((key, sources.object_ref(key)?)));
    let Some((first, reference)) = refs.next() else {
        return Vec::new();
    };
    let ev = match by_source.len() {
        1 => synced_event(&by_source[first]),
        _ => batch_event(&by_source),
    };
    vec![(reference, ev)]
}

fn synced_event(reached: &BTreeMap<String, BTreeSet<String>>) -> Event {
    let parts: Vec<String> = reached
        .iter()
        .map(|(cluster, namespaces)| {
            let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
            format!("namespace(s) {} in context {cluster}", ns.join(", "))
        })
        .collect();
    synced(format!("copied to {}", parts.join("; ")))
}

/// The note of a batch of first copies of several sources.
fn batch_event(by_source: &BTreeMap<SourceKey, BTreeMap<String, BTreeSet<String>>>) -> Event {
    let mut per_context: BTreeMap<&str, usize> = BTreeMap::new();
    for reached in by_source.values() {
        for (cluster, namespaces) in reached {
            *per_context.entry(cluster).or_default() += namespaces.len();
        }
    }
    let counts: Vec<String> = (per_context.iter())
        .map(|(c, n)| format!("{n} in context {c}"))
        .collect();
    let named: Vec<String> = by_source
        .keys()
        .take(SYNCED_NAMED)
        .map(ToString::to_string)
        .collect();
    let more = by_source.len().saturating_sub(SYNCED_NAMED);
    let rest = match more {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    synced(format!(
        "first copies of {} sources made ({}): {}{rest}",
        by_source.len(),
        counts.join(", "),
        named.join(", ")
    ))
}

fn synced(mut note: String) -> Event {
    if note.len() > 1000 {
        // Event notes are capped (1 KiB); the contexts are listed in order, the rest elided.
        note = crate::ops::events::truncate(&note, 990);
        note.push_str(" …");
    }
    Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    }
}

fn unreachable_events(sources: &Sources, u: &Unreachable) -> Vec<(ObjectReference, Event)> {
    let note = format!(
        "context {} has been unreachable for {}s; its copies are not updated",
        u.cluster,
        u.for_.as_secs()
    );
    tracing::warn!(cluster = %u.cluster, down_s = u.for_.as_secs(), "cluster unreachable past the threshold");
    let ev = || Event {
        type_: EventType::Warning,
        reason: "FollowerUnreachable".into(),
        note: Some(note.clone()),
        action: "Sync".into(),
        secondary: None,
    };
    (sources.naming(&u.cluster).into_iter())
        .map(|r| (r, ev()))
        .collect()
}

async fn publish(
    sources: Sources,
    mut first: mpsc::UnboundedReceiver<FirstSync>,
    mut unreachable: mpsc::UnboundedReceiver<Unreachable>,
    sink: EventSink,
) {
    loop {
        let events: Vec<(ObjectReference, Event)> = tokio::select! {
            Some(f) = first.recv() => {
                // A cold start creates a source's copies in every follower within moments:
                // gather what arrives within SYNCED_BATCH and publish one Event per source.
                let mut batch = vec![f];
                let until = tokio::time::Instant::now() + SYNCED_BATCH;
                while batch.len() < SYNCED_BATCH_MAX {
                    match tokio::time::timeout_at(until, first.recv()).await {
                        Ok(Some(f)) => batch.push(f),
                        _ => break,
                    }
                }
                synced_events(&sources, batch)
            }
            Some(u) = unreachable.recv() => unreachable_events(&sources, &u),
            else => return,
        };
        for (r, ev) in events {
            sink.publish(&r, &ev).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn one_synced_note_names_every_context() {
        let reached = BTreeMap::from([
            (
                "f1".to_string(),
                BTreeSet::from(["a".to_string(), "b".to_string()]),
            ),
            ("f2".to_string(), BTreeSet::from(["a".to_string()])),
        ]);
        let ev = synced_event(&reached);
        assert_eq!(
            ev.note.as_deref(),
            Some("copied to namespace(s) a, b in context f1; namespace(s) a in context f2")
        );
        let many: BTreeMap<String, BTreeSet<String>> = (0..200)
            .map(|i| (format!("follower-{i}"), BTreeSet::from(["ns".to_string()])))
            .collect();
        let long = synced_event(&many).note.unwrap();
        assert!(long.len() <= 1000 && long.ends_with('…'), "{}", long.len());
    }

    #[test]
    fn a_batch_of_many_sources_is_one_note() {
        let by_source: BTreeMap<SourceKey, BTreeMap<String, BTreeSet<String>>> = (0..25)
            .map(|i| {
                let key = SourceKey::new(Kind::ConfigMap, "src", &format!("cm-{i:02}"));
                let ns = BTreeSet::from(["a".to_string(), "b".to_string()]);
                (key, BTreeMap::from([("f1".to_string(), ns)]))
            })
            .collect();
        let note = batch_event(&by_source).note.unwrap();
        assert!(
            note.starts_with("first copies of 25 sources made (50 in context f1): "),
            "{note}"
        );
        assert!(note.contains("cm-09") && !note.contains("cm-10"), "{note}");
        assert!(note.ends_with(" and 15 more"), "{note}");
    }
}
