//! Leader election with a coordination.k8s.io/v1 Lease in the source cluster, through
//! kube-lease-manager (server-side apply on the Lease, expiry-based takeover). Standbys keep
//! their caches warm and stay ready; only the holder's workers write.
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up the leader lease {namespace}/{name}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// A running election; `state` turns `true` while this replica holds the lease.
pub struct Leader {
    pub state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    pub identity: String,
}

/// This replica's holder identity: the pod name, else host name and pid (unique per process).
pub fn identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME")
        && !p.is_empty()
    {
        return p;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "sync-daemon".into());
    format!("{host}-{}", std::process::id())
}

pub async fn start(
    client: Client,
    namespace: &str,
    name: &str,
    duration: Duration,
) -> Result<Leader, LeaderError> {
    let identity = identity();
    let secs = duration.as_secs().max(2);
    // Renew a third of the duration before expiry: two renewals can fail before we lose it.
    let grace = (secs / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(identity.clone())
        .with_duration(secs)
        .with_grace(grace)
        .with_field_manager("kubed-cross-sync-lease")
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?;
    let (state, task) = manager.watch().await;
    tracing::info!(lease = %format!("{namespace}/{name}"), identity = %identity, duration_s = secs, "leader election started");
    Ok(Leader {
        state,
        task,
        identity,
    })
}

impl Leader {
    /// Gives the lease up (when held) so a standby takes over at once, waiting at most `limit`.
    pub async fn release(self, limit: Duration) {
        let Leader { state, task, .. } = self;
        drop(state); // closing the channel makes the manager release and return
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader lease released"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("leader lease not released in time"),
        }
    }
}
