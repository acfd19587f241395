//! The one watch loop behind every cache: kube-runtime's watcher (list, watch, re-list after a
//! 410, with backoff), each event trimmed and handed to the cache, readiness raised and a sweep
//! asked for when a (re-)list completes, errors logged and retried.
use crate::cache::ready::Ready;
use futures::{StreamExt, TryStreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::fmt::Debug;

/// What a watch is for, in its log lines.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The context of the cluster watched.
    pub cluster: String,
    /// e.g. "configmaps", "secret copies".
    pub what: &'static str,
}

/// Starts watching `api`: every event goes to `apply` (after `trim`), and when a (re-)list is
/// complete the returned readiness turns true and `on_relist` runs. The task runs as long as the
/// process (the daemon never stops a watch).
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
    tokio::spawn(async move {
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
                    tracing::warn!(cluster = %watch.cluster, watch = watch.what, error = %crate::chain(&e), "watch failed, retrying")
                }
            }
        }
    });
    Ready::one(ready_rx)
}

/// For [`spawn`]'s `trim` when nothing is trimmed.
pub fn keep<K>(_: &mut K) {}
