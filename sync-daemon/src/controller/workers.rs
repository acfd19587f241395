//! A target cluster's workers: each takes a key from the cluster's queue, reconciles it, and
//! does what [`Next`] says — forget it, look again later, back it off, or pause the whole queue
//! while the cluster does not answer.
use crate::controller::context::{Context, TargetCluster};
use crate::controller::queue::{self, Queue};
use crate::plan::{Next, SourceKey};
use std::sync::Arc;

/// Marks the key done at the end of a worker's iteration, after any requeue.
struct Done<'a>(&'a Queue, SourceKey);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done(&self.1);
    }
}

/// Waits for target `idx`'s caches, queues the start-up sweep, and starts its workers. They
/// return when the target is stopped (it left the kubeconfig).
pub async fn start(ctx: Arc<Context>, idx: usize, workers: u16) {
    let Some(t) = ctx.targets.get(idx) else {
        return;
    };
    let cluster = t.cluster.context.clone();
    if !ctx.ready(idx).await {
        if !*t.stop_signal().borrow() {
            tracing::error!(cluster = %cluster, "cache writer dropped; workers not started");
        }
        return;
    }
    // Start-up sweep: every source and every copy's origin, so orphans made while we were
    // down are deleted.
    t.queue.sweep(ctx.sweep_keys(idx, &ctx.sources.keys()));
    tracing::info!(cluster = %cluster, queued = t.queue.len(), workers, "caches ready, syncing");
    for _ in 0..workers {
        tokio::spawn(worker(ctx.clone(), t.clone(), idx));
    }
}

async fn worker(ctx: Arc<Context>, t: Arc<TargetCluster>, idx: usize) {
    let cluster = t.cluster.context.clone();
    let mut stop = t.stop_signal();
    // Consecutive cluster-level failures: while it is non-zero the cluster is treated as down.
    let mut outage = 0u32;
    loop {
        let key = tokio::select! {
            key = t.queue.next() => key,
            _ = stop.wait_for(|s| *s) => return,
        };
        let result = ctx.reconcile(idx, &key).await;
        // Dropped after the requeue below, so another worker never sees a half-finished key.
        let _done = Done(&t.queue, key.clone());
        if result.is_ok() && outage > 0 {
            tracing::info!(cluster = %cluster, queued = t.queue.len(), "context answers again, resuming its queue");
            outage = 0;
        }
        let next = Next::of(result.as_ref().copied().map_err(|e| e.failure()));
        if let Err(e) = &result {
            ctx.hooks.error(&cluster, e.category());
        }
        ctx.hooks.reconciled(&cluster, next.converged());
        match next {
            Next::Forget { .. } => t.queue.forget(&key),
            Next::After(d) => t.queue.add_after(key, d),
            Next::BackoffRefused => {
                let delay = t.queue.retry_refused(key.clone());
                if let Err(e) = &result {
                    tracing::warn!(cluster = %cluster, source = %key, category = e.category(), retry_in = ?delay, error = %crate::chain(e), "write refused by the target; retrying slowly (at once when the source or the target's namespaces change)");
                }
            }
            Next::Backoff => {
                let delay = t.queue.retry(key.clone());
                if let Err(e) = &result {
                    tracing::warn!(cluster = %cluster, source = %key, category = e.category(), retry_in = ?delay, error = %crate::chain(e), "reconcile failed");
                }
            }
            Next::PauseCluster => {
                outage = outage.saturating_add(1);
                let retry_in = t.queue.retry_outage(key.clone());
                let pause = queue::outage_pause(outage);
                if let Err(e) = &result {
                    if outage == 1 {
                        tracing::warn!(cluster = %cluster, source = %key, category = e.category(), error = %crate::chain(e), "context unavailable, pausing its queue");
                    } else {
                        tracing::debug!(cluster = %cluster, source = %key, category = e.category(), retry_in = ?retry_in, pause = ?pause, error = %crate::chain(e), "context still unavailable");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}
