//! A target cluster's copies of one kind when they are watched per namespace
//! (`--follower-namespaces`): one [`CopyCache`] per watched namespace (each fed by its own watch,
//! so one namespace's re-list never empties another's), seen together; and the allowed
//! namespaces' own objects, read by name (a Role may grant `get` on its own namespace, never a
//! cluster-wide list or watch).
use crate::cache::copies::CopyCache;
use crate::cache::ready::Ready;
use crate::plan::objects::Syncable;
use crate::plan::summary::{CopySummary, Fingerprint};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Our copies of one kind in a target cluster: one cache for the whole cluster, or one per
/// watched namespace.
pub struct KindCopies {
    /// `(None, cache)` for a cluster-wide watch; `(Some(namespace), cache)` per namespace.
    parts: Vec<(Option<String>, Arc<CopyCache>)>,
}

impl KindCopies {
    pub(crate) fn new(parts: Vec<(Option<String>, Arc<CopyCache>)>) -> Self {
        KindCopies { parts }
    }

    /// The part that holds copies in `namespace`, if one is watched there.
    fn part(&self, namespace: &str) -> Option<&CopyCache> {
        (self.parts.iter())
            .find(|(ns, _)| ns.as_deref().is_none_or(|n| n == namespace))
            .map(|(_, c)| &**c)
    }

    /// The cached copies of one source, in every watched namespace.
    pub fn copies_of(&self, namespace: &str, name: &str) -> Vec<CopySummary> {
        match self.parts.as_slice() {
            [(_, one)] => one.copies_of(namespace, name),
            parts => (parts.iter())
                .flat_map(|(_, c)| c.copies_of(namespace, name))
                .collect(),
        }
    }

    /// See [`CopyCache::record`]; a copy outside the watched namespaces is not cached.
    pub fn record<K: Syncable>(&self, obj: &K) -> bool {
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        self.part(ns).is_some_and(|c| c.record(obj))
    }

    /// See [`CopyCache::learn_type`].
    pub fn learn_type<K: Syncable>(&self, obj: &K) {
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        if let Some(c) = self.part(ns) {
            c.learn_type(obj);
        }
    }

    /// See [`CopyCache::verify`].
    pub fn verify(&self, namespace: &str, name: &str, rv: Option<&str>, identity: Fingerprint) {
        if let Some(c) = self.part(namespace) {
            c.verify(namespace, name, rv, identity);
        }
    }

    /// See [`CopyCache::record_deleted`].
    pub fn record_deleted(&self, namespace: &str, name: &str) {
        if let Some(c) = self.part(namespace) {
            c.record_deleted(namespace, name);
        }
    }

    /// Calls `f` with the `namespace/name` of every origin with a cached copy: sorted and once
    /// per origin within each part (an origin with copies in two watched namespaces comes
    /// once per namespace).
    pub fn each_origin(&self, mut f: impl FnMut(&str)) {
        for (_, c) in &self.parts {
            c.each_origin(&mut f);
        }
    }
}

/// How often the allowed namespaces of a follower are read again (their labels may choose
/// them for a `follower-namespaces` selector). A GET per namespace: a Role cannot grant the
/// cluster-wide watch that sees changes at once.
pub const NAMESPACE_POLL: Duration = Duration::from_secs(30);

/// Deadline of one namespace read (the watch client it goes through has none short enough).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `names` (each by GET, with [`READ_TIMEOUT`]) into `writer` now and every
/// [`NAMESPACE_POLL`]: the store holds those that exist and may be read (404 and 403 leave one
/// out); a read that fails otherwise (timeout, 5xx, transport) keeps what the last round saw, so
/// an outage never looks like a namespace gone. `on_change` hears a change after the first
/// round. The returned readiness turns true after the first round; the task joins `tasks`.
pub(crate) fn poll_namespaces(
    client: &Client,
    cluster: &str,
    names: Vec<String>,
    mut writer: Writer<Namespace>,
    tasks: &crate::cache::watch::Tasks,
    on_change: Arc<dyn Fn() + Send + Sync>,
) -> Ready {
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let api: Api<Namespace> = Api::all(client.clone());
    let cluster = cluster.to_string();
    let task = tokio::spawn(async move {
        let mut known: BTreeMap<String, Namespace> = BTreeMap::new();
        let mut first = true;
        loop {
            let mut changed = first;
            for name in &names {
                let read = tokio::time::timeout(READ_TIMEOUT, api.get_opt(name)).await;
                let now = match read {
                    Ok(Ok(Some(mut ns))) => {
                        ns.metadata.managed_fields = None;
                        Some(ns)
                    }
                    Ok(Ok(None)) => None,
                    Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                        tracing::warn!(cluster = %cluster, namespace = %name, "an allowed follower namespace cannot be read (does its Role grant get on namespaces?)");
                        None
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(cluster = %cluster, namespace = %name, error = %crate::chain(&e), "namespace read failed; keeping what was seen");
                        continue;
                    }
                    Err(_) => continue,
                };
                let rv =
                    |n: Option<&Namespace>| n.and_then(|n| n.metadata.resource_version.clone());
                if rv(known.get(name)) != rv(now.as_ref())
                    || known.contains_key(name) != now.is_some()
                {
                    changed = true;
                }
                match now {
                    Some(ns) => known.insert(name.clone(), ns),
                    None => known.remove(name),
                };
            }
            if changed {
                writer.apply_watcher_event(&watcher::Event::Init);
                for ns in known.values() {
                    writer.apply_watcher_event(&watcher::Event::InitApply(ns.clone()));
                }
                writer.apply_watcher_event(&watcher::Event::InitDone);
                if !first {
                    on_change();
                }
            }
            first = false;
            ready_tx.send_replace(true);
            tokio::time::sleep(NAMESPACE_POLL).await;
        }
    });
    tasks.add(task.abort_handle());
    Ready::one(ready_rx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::plan::annotations::{ORIGIN_CLUSTER, ORIGIN_NAME, ORIGIN_NAMESPACE};
    use k8s_openapi::api::core::v1::ConfigMap;

    fn copy(ns: &str, name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm.metadata.resource_version = Some("5".into());
        cm.metadata.labels = Some(
            [
                (ORIGIN_CLUSTER, "mc-mgmt"),
                (ORIGIN_NAMESPACE, "src"),
                (ORIGIN_NAME, name),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        cm
    }

    fn per_namespace(names: &[&str]) -> KindCopies {
        KindCopies::new(
            (names.iter())
                .map(|n| (Some(n.to_string()), Arc::new(CopyCache::new("mc-mgmt"))))
                .collect(),
        )
    }

    #[test]
    fn copies_in_several_watched_namespaces_are_seen_together() {
        let k = per_namespace(&["a", "b"]);
        k.record(&copy("a", "cert"));
        k.record(&copy("b", "cert"));
        k.record(&copy("elsewhere", "cert"));
        let mut at: Vec<String> = (k.copies_of("src", "cert").iter())
            .map(|c| c.namespace.clone())
            .collect();
        at.sort();
        assert_eq!(at, ["a", "b"]);
        assert_eq!(k.copies_of("src", "cert").len(), 2);
        k.record_deleted("a", "cert");
        assert_eq!(k.copies_of("src", "cert").len(), 1);
        let mut origins = Vec::new();
        k.each_origin(|o| origins.push(o.to_string()));
        assert_eq!(origins, ["src/cert"]);
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others() {
        let k = per_namespace(&["a", "b"]);
        k.record(&copy("a", "cert"));
        k.record(&copy("b", "cert"));
        // Namespace a's watch re-lists and finds nothing.
        k.parts[0].1.load::<ConfigMap>(Vec::new());
        let left: Vec<String> = (k.copies_of("src", "cert").iter())
            .map(|c| c.namespace.clone())
            .collect();
        assert_eq!(left, ["b"]);
    }
}
