//! `sync-daemon run`: the admin server, leader election (optional), then the controller until
//! SIGTERM (exit 0) or the loss of the lease (exit 3).
use crate::cli::args::SyncArgs;
use crate::cli::{client_flags, exit, fail};
use crate::controller::{Runtime, StartError};
use crate::ops::leader::{self, Leader};
use crate::ops::notices::Ops;
use crate::ops::signals;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long shutdown waits for the lease release.
const RELEASE_LIMIT: Duration = Duration::from_secs(3);

pub async fn run(a: SyncArgs) -> ExitCode {
    // First of all: a SIGTERM from here on is kept, however busy the daemon is when it lands.
    let mut stop = signals::stop_requested();
    client_flags(&a);
    let ops = Arc::new(Ops::new(a.ops.unreachable_after));
    let m = ops.metrics.clone();
    crate::clusters::exec::on_failure(move |context| m.credential_failure(context));
    let addr = a.ops.metrics_addr;
    if let Err(e) = crate::ops::admin::serve(addr, ops.health.clone(), ops.metrics.clone()).await {
        tracing::error!(addr = %addr, error = %e, "cannot bind the admin server");
        eprintln!("error: cannot bind the admin server on {addr}: {e}");
        return exit::code(exit::CONFIG);
    }
    let leader = match a.ops.leader_elect {
        true => tokio::select! {
            r = elect(&a) => match r {
                Ok(l) => Some(l),
                Err(code) => return code,
            },
            _ = signals::stopped(&mut stop) => {
                tracing::info!("stopped before joining the leader election");
                return exit::code(exit::OK);
            }
        },
        false => None,
    };
    let writing = Arc::new(AtomicBool::new(leader.is_none()));
    ops.metrics.leader.set(i64::from(leader.is_none()));
    let state = leader.as_ref().map(|l| l.state.clone());
    // Follows the lease into the gauge and the Events' flag. Holds a receiver: aborted before
    // the release, which waits for every receiver to go.
    let follow = state.clone().map(|mut s| {
        let (m, w) = (ops.metrics.clone(), writing.clone());
        tokio::spawn(async move {
            loop {
                let held = *s.borrow_and_update();
                m.leader.set(i64::from(held));
                w.store(held, Ordering::Relaxed);
                if s.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let rt = Runtime {
        hooks: ops.clone(),
        dry_run: a.ops.dry_run,
        leader: state,
        writing,
    };
    let result = crate::controller::run::run(a.config(), rt, stop, |ctx| {
        let probes = (ctx.targets.live().iter())
            .map(|(_, t)| {
                let c = &t.cluster;
                (c.context.clone(), c.client.clone(), t.stop_signal())
            })
            .collect();
        ops.start(ctx.sources.clone(), probes, ctx.events.clone());
    })
    .await;
    let started = std::time::Instant::now();
    if let Some(t) = follow {
        t.abort();
        let _ = t.await;
    }
    if let Some(l) = leader {
        l.release(RELEASE_LIMIT).await;
    }
    tracing::info!(release_ms = started.elapsed().as_millis() as u64, "stopped");
    match result {
        Ok(()) => exit::code(exit::OK),
        Err(StartError::LeaseLost) => {
            tracing::error!("leader lease lost");
            exit::code(exit::LEASE_LOST)
        }
        Err(e @ StartError::SourceChanged(_)) => {
            tracing::error!(error = %e, "stopping");
            exit::code(exit::SOURCE_CHANGED)
        }
        Err(e) => fail(&e),
    }
}

/// Joins the election for the Lease in the source cluster.
async fn elect(a: &SyncArgs) -> Result<Leader, ExitCode> {
    let c = &a.cluster;
    let clusters =
        crate::clusters::load(c.kubeconfig_file.as_deref(), c.source_context.as_deref()).await;
    let client = clusters.map_err(|e| fail(&e))?.source.client;
    let ns = (a.ops.lease_namespace.clone())
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| c.config_source_namespace.clone())
        .unwrap_or_else(|| "default".into());
    leader::start(client, &ns, &a.ops.lease_name, a.ops.lease_duration)
        .await
        .map_err(|e| fail(&e))
}
