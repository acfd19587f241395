//! What the harness does to the clusters: namespaces, annotated 1-KiB ConfigMaps, bulk creates
//! with bounded concurrency, and watches that timestamp what arrives in the followers.
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

pub const SYNC_CONTEXTS: &str = "kubed.appscode.com/sync-contexts";
pub const ORIGIN_NAMESPACE: &str = "kubed.appscode.com/origin.namespace";

pub async fn ensure_ns(client: &kube::Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create namespace {name}")),
    }
}

/// A ConfigMap with one ~1 KiB value; `contexts` (if any) become its sync-contexts annotation.
pub fn config_map(ns: &str, name: &str, contexts: &[String], value: &str) -> ConfigMap {
    let mut annotations = BTreeMap::new();
    if !contexts.is_empty() {
        annotations.insert(SYNC_CONTEXTS.to_string(), contexts.join(","));
    }
    let pad = "x".repeat(1024usize.saturating_sub(value.len()));
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("v".to_string(), value.to_string()),
            ("pad".to_string(), pad),
        ])),
        ..Default::default()
    }
}

/// Creates every object with at most `concurrency` requests in flight; returns the wall time.
pub async fn create_all(
    client: &kube::Client,
    objects: Vec<ConfigMap>,
    concurrency: usize,
) -> Result<Duration> {
    let start = Instant::now();
    stream::iter(objects)
        .map(|cm| {
            let client = client.clone();
            async move {
                let ns = cm.metadata.namespace.clone().unwrap_or_default();
                let api: Api<ConfigMap> = Api::namespaced(client, &ns);
                api.create(&PostParams::default(), &cm)
                    .await
                    .map(|_| ())
                    .context("create ConfigMap")
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

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

/// Watches ConfigMap `name` in `ns` of a follower and reports every `v` value it shows.
pub fn watch_value(
    client: kube::Client,
    ns: &str,
    name: &str,
    idx: usize,
    tx: mpsc::UnboundedSender<Seen>,
) -> WatchTask {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    WatchTask::spawn(async move {
        let mut s = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = s.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            let now = Instant::now();
            for o in objs {
                if let Some(v) = o.data.as_ref().and_then(|d| d.get("v"))
                    && tx.send((idx, v.clone(), now)).is_err()
                {
                    return;
                }
            }
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
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let cfg = watcher::Config::default().labels(&format!("{ORIGIN_NAMESPACE}={src_ns}"));
        let task = WatchTask::spawn(async move {
            let mut s = watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                let mut set = names.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        set.insert(o.metadata.name.unwrap_or_default());
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        set.remove(&o.metadata.name.unwrap_or_default());
                    }
                    _ => {}
                }
            }
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
