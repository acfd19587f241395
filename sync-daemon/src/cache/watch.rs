//! The one watch loop behind every cache: kube-runtime's watcher (list, watch, re-list after a
//! 410, with backoff), each event trimmed and handed to the cache, readiness raised and a sweep
//! asked for when a (re-)list completes, errors logged and retried.
use crate::cache::ready::Ready;
use futures::{StreamExt, TryStreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tokio::task::AbortHandle;

/// What a watch is for, in its log lines, and the group its task joins.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The context of the cluster watched.
    pub cluster: String,
    /// e.g. "configmaps", "secret copies".
    pub what: &'static str,
    pub tasks: Tasks,
    /// Count a refused (403) list as a full, empty one: a namespaced watch whose Role is
    /// missing must not hold back the cluster's other namespaces. It is retried all the same.
    pub ready_if_forbidden: bool,
}

/// The watch tasks of one cluster, stopped together when the cluster leaves the kubeconfig.
#[derive(Debug, Clone, Default)]
pub struct Tasks(Arc<Mutex<Vec<AbortHandle>>>);

impl Tasks {
    pub(crate) fn add(&self, task: AbortHandle) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// Stops every watch of the group (their readiness turns false for good).
    pub fn stop(&self) {
        for t in self.0.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }
}

/// Starts watching `api`: every event goes to `apply` (after `trim`), and when a (re-)list is
/// complete the returned readiness turns true and `on_relist` runs. The task runs until its
/// group ([`Watch::tasks`]) is stopped.
pub fn spawn<K>(
    api: Api<K>,
    cfg: watcher::Config,
    watch: Watch,
    trim: fn(&mut K),
    mut apply: impl FnMut(&watcher::Event<K>) + Send + 'static,
    on_relist: impl Fn() + Send + 'static,
) -> Ready
where
    K: Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let stream = watcher(api, cfg)
        .default_backoff()
        .map_ok(move |ev| ev.modify(trim));
    let tasks = watch.tasks.clone();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    apply(&ev);
                    if matches!(ev, watcher::Event::InitDone) {
                        ready_tx.send_replace(true);
                        on_relist();
                    }
                }
                Err(e) => {
                    if watch.ready_if_forbidden && forbidden(&e) {
                        ready_tx.send_replace(true);
                    }
                    tracing::warn!(cluster = %watch.cluster, watch = watch.what, error = %crate::chain(&e), "watch failed, retrying")
                }
            }
        }
    });
    tasks.add(task.abort_handle());
    Ready::one(ready_rx)
}

/// Whether the API server refused the list or watch (RBAC).
fn forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// For [`spawn`]'s `trim` when nothing is trimmed.
pub fn keep<K>(_: &mut K) {}
