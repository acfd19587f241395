//! The two ways the controller runs: `run` (workers per cluster, sweeps on request and every
//! --resync-period, until SIGTERM or the leader lease is lost) and `once` (one pass over every
//! key in every cluster; converged or not).
use crate::controller::context::Context;
use crate::controller::setup::{self, Resync};
use crate::controller::{Config, Runtime, StartError, reload, workers};
use crate::ops::hooks::Tally;
use crate::ops::signals;
use crate::plan::Next;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long `once` waits for a cluster's caches before calling it unconverged.
const ONCE_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `stop` turns `true` (SIGTERM/SIGINT, see [`signals`]). `started` is told the
/// context as soon as the caches and clients exist (health probes and the Event publisher start
/// there).
pub async fn run(
    cfg: Config,
    rt: Runtime,
    mut stop: watch::Receiver<bool>,
    started: impl FnOnce(&Arc<Context>),
) -> Result<(), StartError> {
    let (ctx, mut rx) = tokio::select! {
        r = setup::start(&cfg, &rt) => r?,
        _ = signals::stopped(&mut stop) => {
            tracing::info!("shutting down before the caches started");
            return Ok(());
        }
    };
    started(&ctx);
    if let Some(mut leader) = rt.leader.clone() {
        tracing::info!("standby: caches run, waiting for the leader lease before writing");
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { return Err(StartError::LeaseLost) },
            _ = signals::stopped(&mut stop) => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
        tracing::info!("leader lease acquired, syncing");
    }
    let lost = lease_lost(rt.leader.clone());
    tokio::pin!(lost);
    for idx in ctx.targets.ids() {
        tokio::spawn(workers::start(ctx.clone(), idx, cfg.workers));
    }
    let reload = reload::watch(ctx.clone(), cfg.clone());
    tokio::pin!(reload);
    let mut tick = tokio::time::interval(cfg.resync_period);
    tick.tick().await; // the first tick is immediate; the start-up sweep covers it
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tracing::debug!("periodic resync");
                sweep(&ctx, Resync::All, &mut rx);
            }
            Some(which) = rx.recv() => sweep(&ctx, which, &mut rx),
            _ = &mut lost => {
                tracing::error!("leader lease lost, stopping");
                return Err(StartError::LeaseLost);
            }
            e = &mut reload => return Err(e),
            _ = signals::stopped(&mut stop) => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Resolves when the lease, held until now, is lost (never without leader election).
async fn lease_lost(leader: Option<tokio::sync::watch::Receiver<bool>>) {
    match leader {
        Some(mut l) => {
            let _ = l.wait_for(|l| !*l).await;
        }
        None => std::future::pending().await,
    }
}

/// A sweep of the targets named by `first` and by every request already waiting (a re-list of
/// the namespaces asks once per namespace): the source keys are listed once for all.
fn sweep(ctx: &Context, first: Resync, rx: &mut mpsc::UnboundedReceiver<Resync>) {
    let mut idxs = BTreeSet::new();
    let mut add = |which| match which {
        Resync::All => idxs.extend(ctx.targets.ids()),
        Resync::One(i) => {
            idxs.insert(i);
        }
    };
    add(first);
    while let Ok(which) = rx.try_recv() {
        add(which);
    }
    let sources = ctx.sources.keys();
    for i in idxs {
        if let Some(t) = ctx.targets.get(i) {
            t.queue.sweep(ctx.sweep_keys(i, &sources));
        }
    }
}

/// One pass over every source and copy in every cluster; `Ok(true)` when all converged.
pub async fn once(cfg: Config, dry_run: bool) -> Result<bool, StartError> {
    let tally = Arc::new(Tally::default());
    let rt = Runtime {
        hooks: tally.clone(),
        dry_run,
        leader: None,
        writing: Arc::new(true.into()),
    };
    let (ctx, _rx) = setup::start(&cfg, &rt).await?;
    let passes = (ctx.targets.ids().into_iter()).map(|idx| pass(ctx.clone(), idx, cfg.workers));
    let results = futures::future::join_all(passes).await;
    let ok = results.iter().all(|c| *c);
    eprintln!(
        "sync-daemon once: {} cluster(s), {} converged; writes={} conflicts={} problems={} errors={}",
        results.len(),
        results.iter().filter(|c| **c).count(),
        Tally::get(&tally.writes),
        Tally::get(&tally.conflicts),
        Tally::get(&tally.problems),
        Tally::get(&tally.errors),
    );
    Ok(ok)
}

/// `once` in one target cluster: every key, `workers` at a time; `true` when all converged.
async fn pass(ctx: Arc<Context>, idx: usize, workers: u16) -> bool {
    let Some(cluster) = ctx.targets.get(idx).map(|t| t.cluster.context.clone()) else {
        return false;
    };
    if !matches!(
        tokio::time::timeout(ONCE_READY_TIMEOUT, ctx.ready(idx)).await,
        Ok(true)
    ) {
        tracing::error!(cluster = %cluster, "caches not ready in time");
        return false;
    }
    let keys = ctx.sweep_keys(idx, &ctx.sources.keys());
    let results: Vec<bool> = futures::stream::iter(keys.iter().cloned())
        .map(|key| {
            let (ctx, cluster) = (&ctx, &cluster);
            async move {
                let result = ctx.reconcile(idx, &key).await;
                if let Err(e) = &result {
                    tracing::warn!(cluster = %cluster, source = %key, category = e.category(), error = %crate::chain(e), "reconcile failed");
                }
                Next::of(result.map_err(|e| e.failure())).converged()
            }
        })
        .buffer_unordered(usize::from(workers))
        .collect()
        .await;
    results.iter().all(|c| *c)
}
