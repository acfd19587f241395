//! The source cluster's cache of ConfigMaps or Secrets, each kept as the compact JSON of its
//! trimmed object rather than as the decoded object.
//!
//! kube-runtime's `watcher` feeds it (list + watch, re-list on 410, backoff), as it feeds the
//! copy caches; its `reflector` store is not used because it keeps decoded objects, and a decoded
//! k8s-openapi object costs about three times its JSON: every `BTreeMap` of labels, annotations
//! or data allocates a node for eleven entries (≈540 bytes) even for one, and `ObjectMeta` is
//! ≈350 bytes of mostly-`None` fields. At 10,000 sources of 1 KiB that was ≈30 MiB of the
//! daemon's memory; as JSON it is ≈13 MiB. An object is decoded again when a worker needs it
//! (a few microseconds per KiB, beside a network write of the copy).
use crate::cache::relist::Relist;
use crate::plan::annotations as ann;
use crate::plan::key;
use crate::plan::objects::Syncable;
use kube::runtime::watcher;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::RwLock;

/// A cached object: its trimmed JSON, and whether it carries a sync annotation.
struct Entry {
    source: bool,
    json: Box<[u8]>,
}

/// By [`key::id`].
type Map = HashMap<Box<str>, Entry>;

/// Objects of one kind in the source cluster, by `namespace/name`.
pub struct SourceCache<K> {
    map: RwLock<Map>,
    relist: Relist<Map>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Default for SourceCache<K> {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            relist: Relist::default(),
            kind: PhantomData,
        }
    }
}

fn at<K: Syncable>(obj: &K) -> Box<str> {
    let m = obj.meta();
    key::id(
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

fn entry<K: Syncable>(obj: &K) -> Option<Entry> {
    let source = obj
        .meta()
        .annotations
        .as_ref()
        .is_some_and(ann::has_sync_keys);
    // Serialising a decoded k8s-openapi object cannot fail (no maps with non-string keys); if
    // it ever did, the object is left out and reconciled as absent until its next event.
    let json = serde_json::to_vec(obj).ok()?.into_boxed_slice();
    Some(Entry { source, json })
}

impl<K: Syncable> SourceCache<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        // Poisoning only means a writer panicked mid-update; each update is one insert or
        // remove, so the map is still consistent.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one watcher event (objects already trimmed by the caller).
    pub fn apply(&self, ev: &watcher::Event<K>) {
        match ev {
            watcher::Event::Init => self.relist.begin(),
            watcher::Event::InitApply(o) => {
                if let Some(e) = entry(o) {
                    self.relist.add(|m| {
                        m.insert(at(o), e);
                    });
                }
            }
            watcher::Event::InitDone => {
                let mut fresh = self.relist.finish();
                fresh.shrink_to_fit();
                *self.write() = fresh;
            }
            watcher::Event::Apply(o) => match entry(o) {
                Some(e) => {
                    self.write().insert(at(o), e);
                }
                None => {
                    self.write().remove(&at(o));
                }
            },
            watcher::Event::Delete(o) => {
                self.write().remove(&at(o));
            }
        }
    }

    /// The size of the cached object's JSON (0: not cached), without decoding it.
    pub fn size(&self, namespace: &str, name: &str) -> usize {
        (self.read().get(&key::id(namespace, name))).map_or(0, |e| e.json.len())
    }

    /// The cached object, decoded.
    pub fn get(&self, namespace: &str, name: &str) -> Option<K> {
        let g = self.read();
        let e = g.get(&key::id(namespace, name))?;
        serde_json::from_slice(&e.json).ok()
    }

    /// Calls `f` with the `namespace/name` ([`key::id`]) of every cached object with a sync
    /// annotation (under the cache's read lock: `f` must not call back into it).
    pub fn each_source(&self, mut f: impl FnMut(&str)) {
        self.read()
            .iter()
            .filter(|(_, e)| e.source)
            .for_each(|(k, _)| f(k));
    }

    /// Every cached object with a sync annotation, decoded.
    pub fn sources(&self) -> Vec<K> {
        self.read()
            .values()
            .filter(|e| e.source)
            .filter_map(|e| serde_json::from_slice(&e.json).ok())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn cm(name: &str, sync: bool, v: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some("12".into()),
                uid: Some("u-1".into()),
                annotations: sync.then(|| BTreeMap::from([(ann::SYNC.to_string(), String::new())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("v".to_string(), v.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn relist_replaces_and_events_update() {
        let c = SourceCache::<ConfigMap>::default();
        c.apply(&watcher::Event::Apply(cm("old", true, "1")));
        c.apply(&watcher::Event::Init);
        c.apply(&watcher::Event::InitApply(cm("a", true, "1")));
        c.apply(&watcher::Event::InitApply(cm("plain", false, "1")));
        assert!(
            c.get("ns", "a").is_none(),
            "the re-list is not visible before InitDone"
        );
        assert!(c.get("ns", "old").is_some());
        c.apply(&watcher::Event::InitDone);
        assert!(c.get("ns", "old").is_none(), "gone from the re-list");
        assert_eq!(
            c.get("ns", "a"),
            Some(cm("a", true, "1")),
            "decodes to the same object"
        );
        let keys = |c: &SourceCache<ConfigMap>| {
            let mut v = Vec::new();
            c.each_source(|k| v.push(k.to_string()));
            v
        };
        assert_eq!(keys(&c), ["ns/a"]);
        assert_eq!(c.len(), 2);

        c.apply(&watcher::Event::Apply(cm("a", true, "2")));
        assert_eq!(c.get("ns", "a").unwrap().data.unwrap()["v"], "2");
        c.apply(&watcher::Event::Apply(cm("plain", true, "1")));
        assert_eq!(
            c.sources().len(),
            2,
            "a new sync annotation makes it a source"
        );
        c.apply(&watcher::Event::Delete(cm("a", true, "2")));
        assert!(c.get("ns", "a").is_none());
        assert_eq!(keys(&c), ["ns/plain"]);
    }

    #[test]
    fn secret_bytes_round_trip() {
        let c = SourceCache::<Secret>::default();
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("tls".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "tls.key".to_string(),
                ByteString(vec![0, 159, 146, 150, 255]),
            )])),
            type_: Some("kubernetes.io/tls".into()),
            immutable: Some(true),
            ..Default::default()
        };
        c.apply(&watcher::Event::Apply(s.clone()));
        assert_eq!(c.get("ns", "tls"), Some(s));
    }
}
