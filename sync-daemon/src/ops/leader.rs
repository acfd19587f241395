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

/// The server-side apply field manager for this replica's Lease writes. It must differ per
/// replica: taking a free Lease is an apply of `holderIdentity` without force, and only a
/// second manager's apply of that field is refused with a conflict. Under one shared manager
/// two replicas starting together both "won" the Lease and the loser, finding itself not the
/// holder at its first renewal, exited with "lease lost".
fn field_manager(identity: &str) -> String {
    // Managers are at most 128 bytes; identities are pod names (at most 63) or host-pid.
    let mut m = format!("kubed-cross-sync-lease-{identity}");
    let mut end = m.len().min(128);
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    m.truncate(end);
    m
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
        .with_field_manager(field_manager(&identity))
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

#[cfg(test)]
mod tests {
    use super::field_manager;

    #[test]
    fn field_managers_differ_per_replica_and_fit_the_limit() {
        assert_ne!(field_manager("pod-a"), field_manager("pod-b"));
        let long = "é".repeat(100);
        let m = field_manager(&long);
        assert!(m.len() <= 128);
        assert!(m.starts_with("kubed-cross-sync-lease-"));
    }
}
