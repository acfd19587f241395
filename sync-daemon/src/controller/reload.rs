//! The live kubeconfig: the file is read again every few seconds, and when its content changed
//! the followers follow it without a restart — a new context becomes a target (caches, queue,
//! workers; caught up like a follower that comes back), a context that is gone is stopped (its
//! copies stay where they are), a context whose entries changed (server, CA, user) reconnects.
//! Followers whose entries did not change keep their clients, caches and watches.
//!
//! Polled by content, not watched with inotify: a kubeconfig mounted from a ConfigMap or
//! Secret is replaced through a symlink swap and one written by `kubeconfig-gen` by a rename,
//! both of which an inotify watch on the file misses; a 5 s read of a small file costs nothing.
//!
//! Every context of the file is a target, named by a source or not: copies in a follower that
//! no source names any more are orphans to delete, and only a watched follower shows them.
//! The source cluster itself cannot change under a running daemon (its caches are the
//! sources): a change of its entries ends `run` with [`StartError::SourceChanged`].
use crate::clusters::{self, Cluster};
use crate::controller::context::{Context, Names};
use crate::controller::setup::{self, Resync};
use crate::controller::{Config, StartError, workers};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the kubeconfig file is read.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How often it is loaded again, unchanged, while a follower's identity is still to be read.
pub const REPROBE: Duration = Duration::from_secs(30);

/// Follows the kubeconfig file until the source cluster's entries change (the error); never
/// returns without a kubeconfig file.
pub async fn watch(ctx: Arc<Context>, cfg: Config) -> StartError {
    let Some(path) = cfg.kubeconfig_file.clone() else {
        return std::future::pending().await;
    };
    let source = ctx.targets.get(0).map(|t| t.cluster.fingerprint.clone());
    let mut seen = digest(&path);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loaded_at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = digest(&path);
        // Unchanged, unless a follower's identity is still to be read: then the file is loaded
        // again every REPROBE, so that one cluster reached by two URLs becomes one follower.
        if now == seen && !(loaded_at.elapsed() >= REPROBE && identities_pending(&ctx)) {
            continue;
        }
        seen = now;
        loaded_at = tokio::time::Instant::now();
        let loaded = clusters::load(Some(&path), cfg.source_context.as_deref()).await;
        let new = match loaded {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %crate::chain(&e), "kubeconfig changed but cannot be used; keeping the clusters in use");
                continue;
            }
        };
        if source.as_deref() != Some(new.source.fingerprint.as_str()) {
            return StartError::SourceChanged(new.source.context);
        }
        apply(&ctx, &cfg, new.followers, new.broken);
    }
}

/// Whether a follower's identity could not be read yet (it was down, say).
fn identities_pending(ctx: &Context) -> bool {
    (ctx.targets.live().into_iter()).any(|(_, t)| !t.local && t.cluster.identity_pending())
}

/// The file's digest; `None` while it cannot be read (a rename in progress, a missing mount).
fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

/// Brings the targets in line with `followers`: stops those gone or changed, starts the new
/// and the changed ones.
fn apply(ctx: &Arc<Context>, cfg: &Config, followers: Vec<Cluster>, broken: Vec<(String, String)>) {
    let current: BTreeMap<String, (usize, String)> = (ctx.targets.live().into_iter())
        .filter(|(_, t)| !t.local)
        .map(|(i, t)| {
            (
                t.cluster.context.clone(),
                (i, t.cluster.fingerprint.clone()),
            )
        })
        .collect();
    let mut wanted: BTreeMap<String, Cluster> = BTreeMap::new();
    for f in followers {
        wanted.insert(f.context.clone(), f);
    }
    let mut changed = false;
    for (context, (idx, fingerprint)) in &current {
        match wanted.get(context) {
            Some(f) if f.fingerprint == *fingerprint => {
                wanted.remove(context);
            }
            Some(_) => {
                tracing::info!(cluster = %context, "context changed in the kubeconfig, reconnecting");
                stop(ctx, *idx, context);
                changed = true;
            }
            None => {
                tracing::info!(cluster = %context, "context gone from the kubeconfig: stopped, its copies left in place");
                stop(ctx, *idx, context);
                changed = true;
            }
        }
    }
    for (context, cluster) in wanted {
        if !current.contains_key(&context) {
            tracing::info!(cluster = %context, "context added to the kubeconfig, syncing to it");
        }
        add(ctx, cfg, cluster);
        changed = true;
    }
    let old = ctx.names();
    if broken != old.broken {
        for (context, why) in broken.iter().filter(|b| !old.broken.contains(b)) {
            tracing::warn!(context = %context, error = %why, "context skipped: cannot build a client");
        }
        changed = true;
    }
    if changed {
        ctx.set_names(Names::of(&old.source, broken, &ctx.targets));
        // Sources naming a context that came or went get their problems (re)reported.
        let _ = ctx.resync.send(Resync::One(0));
    }
}

fn stop(ctx: &Context, idx: usize, context: &str) {
    ctx.targets.remove(idx);
    ctx.forget_target(idx);
    ctx.hooks.cluster_removed(context);
}

fn add(ctx: &Arc<Context>, cfg: &Config, cluster: Cluster) {
    let idx = ctx.targets.next_id();
    let t = setup::target(
        cluster,
        idx,
        &ctx.settings.cluster_name,
        &ctx.selector,
        &ctx.settings.follower_scope,
        &ctx.resync,
    );
    let signal = t.stop_signal();
    ctx.hooks
        .cluster_added(&t.cluster.context, &t.cluster.client, signal);
    let pushed = ctx.targets.push(t);
    debug_assert_eq!(pushed, idx);
    tokio::spawn(workers::start(ctx.clone(), pushed, cfg.workers));
}
