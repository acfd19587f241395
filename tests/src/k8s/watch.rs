//! Watches of the followers' ConfigMaps that the harness reads while the daemon works: every
//! value one copy shows (timestamped), the number of copies of a namespace's sources, or any
//! event, each in a task that retries with backoff and stops when dropped.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

use super::ORIGIN_NAMESPACE;

/// One observation in a follower: (follower index, the object's `v`, when it arrived).
pub type Seen = (usize, String, Instant);

/// A spawned watch that stops when dropped. Watches here retry with kube-runtime's backoff: a
/// watch without one spins on a stopped cluster (a refused connect never yields), eating a core
/// during a fault and keeping the test's runtime from ever shutting down.
#[must_use = "the watch stops when this is dropped"]
pub struct WatchTask(tokio::task::JoinHandle<()>);

impl WatchTask {
    pub fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> WatchTask {
        WatchTask(tokio::spawn(f))
    }
}

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches the ConfigMaps of `ns` that `cfg` selects and hands each event to `on` (errors are
/// retried, not handed on) until `on` returns false.
pub fn watch_configmaps(
    client: kube::Client,
    ns: &str,
    cfg: watcher::Config,
    mut on: impl FnMut(watcher::Event<ConfigMap>) -> bool + Send + 'static,
) -> WatchTask {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    WatchTask::spawn(async move {
        let mut s = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = s.next().await {
            if let Ok(ev) = ev
                && !on(ev)
            {
                return;
            }
        }
    })
}

/// Watches ConfigMap `name` in `ns` of a follower and reports every `v` value it shows.
pub fn watch_value(
    client: kube::Client,
    ns: &str,
    name: &str,
    idx: usize,
    tx: mpsc::UnboundedSender<Seen>,
) -> WatchTask {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watch_configmaps(client, ns, cfg, move |ev| {
        let o = match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
            _ => return true,
        };
        let now = Instant::now();
        match o.data.as_ref().and_then(|d| d.get("v")) {
            Some(v) => tx.send((idx, v.clone(), now)).is_ok(),
            None => true,
        }
    })
}

/// Counts the copies of `src_ns`'s sources present in `ns` of one follower (by origin label).
pub struct CopyCount {
    names: Arc<Mutex<HashSet<String>>>,
    /// Held only to stop the watch with the count.
    _watch: WatchTask,
}

impl CopyCount {
    pub fn start(client: kube::Client, ns: &str, src_ns: &str) -> CopyCount {
        let set: Arc<Mutex<HashSet<String>>> = Arc::default();
        let names = set.clone();
        let cfg = watcher::Config::default().labels(&format!("{ORIGIN_NAMESPACE}={src_ns}"));
        let task = watch_configmaps(client, ns, cfg, move |ev| {
            let mut set = names.lock().unwrap_or_else(|e| e.into_inner());
            match ev {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    set.insert(o.metadata.name.unwrap_or_default());
                }
                watcher::Event::Delete(o) => {
                    set.remove(&o.metadata.name.unwrap_or_default());
                }
                _ => {}
            }
            true
        });
        CopyCount {
            names: set,
            _watch: task,
        }
    }

    pub fn get(&self) -> usize {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
