//! The `run` command's [`Hooks`]: metrics, plus the Events the core does not raise itself —
//! `Synced` (first copy made in a target namespace) and `FollowerUnreachable` (a cluster
//! down for longer than --unreachable-after, on every source that names it).
use crate::admin::{self, Health, Unreachable};
use crate::annotations as ann;
use crate::desired::Kind;
use crate::error::chain;
use crate::hooks::{Hooks, Synced};
use crate::metrics::Metrics;
use crate::queue::SourceKey;
use crate::reconcile::Context;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
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
    pub dry_run: bool,
    pub unreachable_after: Duration,
    first_sync: mpsc::UnboundedSender<FirstSync>,
    first_sync_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<FirstSync>>>,
}

impl Ops {
    pub fn new(dry_run: bool, unreachable_after: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Ops {
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
            dry_run,
            unreachable_after,
            first_sync: tx,
            first_sync_rx: std::sync::Mutex::new(Some(rx)),
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
    fn source_seen(&self, key: &SourceKey, rv: Option<&str>) {
        self.metrics.source_seen(key, rv);
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
    fn started(&self, ctx: &Arc<Context>) {
        let (unreach_tx, unreach_rx) = mpsc::unbounded_channel();
        admin::start_health(
            ctx,
            self.health.clone(),
            self.metrics.clone(),
            self.unreachable_after,
            unreach_tx,
        );
        let rx = self
            .first_sync_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(publish(
                ctx.clone(),
                rx,
                unreach_rx,
                self.dry_run,
                self.metrics.clone(),
            ));
        }
    }
}

fn source_ref(ctx: &Context, key: &SourceKey) -> Option<ObjectReference> {
    let (name, ns) = (key.name(), key.namespace());
    match key.kind {
        Kind::ConfigMap => ctx
            .sources
            .configmaps
            .get(ns, name)
            .map(|o| o.object_ref(&())),
        Kind::Secret => ctx.sources.secrets.get(ns, name).map(|o| o.object_ref(&())),
    }
}

/// How long first-copy notices are gathered into one `Synced` Event per source.
const SYNCED_BATCH: Duration = Duration::from_secs(1);
const SYNCED_BATCH_MAX: usize = 10_000;

/// One `Synced` Event per source of the batch, naming every context and namespace it reached.
fn synced_events(ctx: &Context, batch: Vec<FirstSync>) -> Vec<(ObjectReference, Event)> {
    let mut by_source: BTreeMap<SourceKey, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in batch {
        by_source
            .entry(f.key)
            .or_default()
            .entry(f.cluster)
            .or_default()
            .extend(f.namespaces);
    }
    by_source
        .into_iter()
        .filter_map(|(key, reached)| {
            let r = source_ref(ctx, &key)?;
            Some((r, synced_event(&reached)))
        })
        .collect()
}

fn synced_event(reached: &BTreeMap<String, BTreeSet<String>>) -> Event {
    let parts: Vec<String> = reached
        .iter()
        .map(|(cluster, namespaces)| {
            let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
            format!("namespace(s) {} in context {cluster}", ns.join(", "))
        })
        .collect();
    let mut note = format!("copied to {}", parts.join("; "));
    if note.len() > 1000 {
        // Event notes are capped (1 KiB); the contexts are listed in order, the rest elided.
        let mut end = 990;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
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

/// Sources whose sync-contexts name `cluster`.
fn sources_naming(ctx: &Context, cluster: &str) -> Vec<ObjectReference> {
    let names = |a: Option<&std::collections::BTreeMap<String, String>>| {
        a.map(|a| {
            ann::parse(a)
                .0
                .contexts
                .iter()
                .any(|c| c.context == cluster)
        })
        .unwrap_or(false)
    };
    let mut out: Vec<_> = ctx
        .sources
        .configmaps
        .sources()
        .iter()
        .filter(|o| names(o.metadata.annotations.as_ref()))
        .map(|o| o.object_ref(&()))
        .collect();
    out.extend(
        ctx.sources
            .secrets
            .sources()
            .iter()
            .filter(|o| names(o.metadata.annotations.as_ref()))
            .map(|o| o.object_ref(&())),
    );
    out
}

async fn publish(
    ctx: Arc<Context>,
    mut first: mpsc::UnboundedReceiver<FirstSync>,
    mut unreachable: mpsc::UnboundedReceiver<Unreachable>,
    dry_run: bool,
    metrics: Arc<Metrics>,
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
                synced_events(&ctx, batch)
            }
            Some(u) = unreachable.recv() => {
                let note = format!("context {} has been unreachable for {}s; its copies are not updated", u.cluster, u.for_.as_secs());
                tracing::warn!(cluster = %u.cluster, down_s = u.for_.as_secs(), "cluster unreachable past the threshold");
                let ev = || Event {
                    type_: EventType::Warning,
                    reason: "FollowerUnreachable".into(),
                    note: Some(note.clone()),
                    action: "Sync".into(),
                    secondary: None,
                };
                sources_naming(&ctx, &u.cluster).into_iter().map(|r| (r, ev())).collect()
            }
            else => return,
        };
        if metrics.leader.get() != 1 {
            continue; // a standby writes nothing, Events included
        }
        for (r, ev) in events {
            if dry_run {
                tracing::info!(reason = %ev.reason, source = ?r.name, "dry run: would publish event");
                continue;
            }
            if let Err(e) = ctx.recorder.publish(&ev, &r).await {
                tracing::warn!(reason = %ev.reason, error = %chain(&e), "cannot publish event");
            }
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
}
