//! Look-alikes in the way: when a copy cannot be made because an object that is not ours holds
//! its name (a conflict), that one object is watched (a watch of one name in one namespace) until
//! it goes or becomes ours, and then its source is queued at once. Without this the copy watch,
//! which sees only objects with our labels, misses the look-alike's deletion, and the copy stayed
//! missing until the next full sweep (minutes).
use crate::plan::objects::Syncable;
use crate::plan::{Kind, SourceKey};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::AbortHandle;

/// Look-alikes watched at once per target cluster; past it, a conflict waits for the next sweep
/// (each lookout is one open watch request).
pub const MAX_LOOKOUTS: usize = 256;

type Slot = (SourceKey, String);
/// A watched look-alike: the watch's id and task, and why it is in the way (the conflict's
/// reason, reported again while it stands).
type Running = Arc<Mutex<HashMap<Slot, (u64, AbortHandle, String)>>>;

/// The look-alikes watched in one target cluster.
pub struct Lookouts {
    client: Client,
    cluster: String,
    on_gone: Arc<dyn Fn(SourceKey) + Send + Sync>,
    running: Running,
    next_id: AtomicU64,
}

impl Lookouts {
    pub fn new(
        client: &Client,
        cluster: &str,
        on_gone: Arc<dyn Fn(SourceKey) + Send + Sync>,
    ) -> Self {
        Lookouts {
            client: client.clone(),
            cluster: cluster.to_string(),
            on_gone,
            running: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(
        running: &Running,
    ) -> std::sync::MutexGuard<'_, HashMap<Slot, (u64, AbortHandle, String)>> {
        running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why a look-alike is in the way of `key`'s copy in `namespace`, while it is watched (and
    /// so known to be still there): a create would only be refused (409) and read again.
    pub fn in_the_way(&self, key: &SourceKey, namespace: &str) -> Option<String> {
        let g = Self::lock(&self.running);
        let slot = (key.clone(), namespace.to_string());
        g.get(&slot).map(|(_, _, reason)| reason.clone())
    }

    /// After a reconcile of `key`: watch the look-alike in each of `conflicts` (the namespaces
    /// where one is in the way, and why), and stop watching the key's others.
    pub fn keep(&self, key: &SourceKey, conflicts: &[(String, String)]) {
        let mut g = Self::lock(&self.running);
        g.retain(|(k, ns), (_, task, _)| {
            let keep = k != key || conflicts.iter().any(|(c, _)| c == ns);
            if !keep {
                task.abort();
            }
            keep
        });
        for (ns, reason) in conflicts {
            let slot = (key.clone(), ns.clone());
            if let Some(running) = g.get_mut(&slot) {
                running.2.clone_from(reason);
                continue;
            }
            if g.len() >= MAX_LOOKOUTS {
                tracing::debug!(cluster = %self.cluster, source = %key, namespace = %ns, "too many conflicts watched: this one waits for the next sweep");
                continue;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let task = self.spawn(slot.clone(), id);
            g.insert(slot, (id, task, reason.clone()));
        }
    }

    /// Stops every lookout (the cluster left the kubeconfig).
    pub fn stop(&self) {
        for (_, (_, task, _)) in Self::lock(&self.running).drain() {
            task.abort();
        }
    }

    fn spawn(&self, slot: Slot, id: u64) -> AbortHandle {
        let (client, running, on_gone) = (
            self.client.clone(),
            self.running.clone(),
            self.on_gone.clone(),
        );
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            let (key, ns) = &slot;
            let gone = match key.kind {
                Kind::ConfigMap => until_gone::<ConfigMap>(&client, ns, key.name()).await,
                Kind::Secret => until_gone::<Secret>(&client, ns, key.name()).await,
            };
            if gone {
                tracing::debug!(cluster = %cluster, source = %key, namespace = %ns, "the object in the way went: syncing");
                let mut g = Self::lock(&running);
                if g.get(&slot).is_some_and(|(i, _, _)| *i == id) {
                    g.remove(&slot);
                }
                drop(g);
                on_gone(key.clone());
            }
        })
        .abort_handle()
    }
}

/// Watches `name` in `namespace` until it is deleted or absent from a (re-)list: `true` then.
/// (One relabelled as our copy needs nothing here: the copy watch sees it.) Watch errors are
/// retried with kube-runtime's backoff; the task is aborted when the conflict no longer matters.
async fn until_gone<K: Syncable>(client: &Client, namespace: &str, name: &str) -> bool {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let mut listed = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init) => listed = false,
            Ok(watcher::Event::InitApply(_)) => listed = true,
            Ok(watcher::Event::InitDone) if !listed => return true,
            Ok(watcher::Event::Delete(_)) => return true,
            Ok(watcher::Event::InitDone | watcher::Event::Apply(_)) | Err(_) => {}
        }
    }
    false
}
