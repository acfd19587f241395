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
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
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

fn source_ref(
    ctx: &Context,
    key: &SourceKey,
) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    let (name, ns) = (key.name.as_str(), key.namespace.as_str());
    match key.kind {
        Kind::ConfigMap => ctx
            .sources
            .configmaps
            .get(&ObjectRef::<ConfigMap>::new(name).within(ns))
            .map(|o| o.object_ref(&())),
        Kind::Secret => ctx
            .sources
            .secrets
            .get(&ObjectRef::<Secret>::new(name).within(ns))
            .map(|o| o.object_ref(&())),
    }
}

/// Sources whose sync-contexts name `cluster`.
fn sources_naming(
    ctx: &Context,
    cluster: &str,
) -> Vec<k8s_openapi::api::core::v1::ObjectReference> {
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
        .state()
        .iter()
        .filter(|o| names(o.metadata.annotations.as_ref()))
        .map(|o| o.object_ref(&()))
        .collect();
    out.extend(
        ctx.sources
            .secrets
            .state()
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
        let (refs, ev) = tokio::select! {
            Some(f) = first.recv() => {
                let Some(r) = source_ref(&ctx, &f.key) else { continue };
                let note = format!("copied to namespace(s) {} in context {}", f.namespaces.join(", "), f.cluster);
                (vec![r], Event {
                    type_: EventType::Normal,
                    reason: "Synced".into(),
                    note: Some(note),
                    action: "Sync".into(),
                    secondary: None,
                })
            }
            Some(u) = unreachable.recv() => {
                let note = format!("context {} has been unreachable for {}s; its copies are not updated", u.cluster, u.for_.as_secs());
                tracing::warn!(cluster = %u.cluster, down_s = u.for_.as_secs(), "cluster unreachable past the threshold");
                (sources_naming(&ctx, &u.cluster), Event {
                    type_: EventType::Warning,
                    reason: "FollowerUnreachable".into(),
                    note: Some(note),
                    action: "Sync".into(),
                    secondary: None,
                })
            }
            else => return,
        };
        if metrics.leader.get() != 1 {
            continue; // a standby writes nothing, Events included
        }
        for r in refs {
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
