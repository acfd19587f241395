//! The cache of the copies this daemon made in one target cluster (one per kind), kept as
//! [`CopySummary`]s indexed by origin, not as objects.
//!
//! kube-runtime's `watcher` feeds it (list + watch with re-list on 410, bookmarks, backoff);
//! its `reflector` store is not used here because it can only keep whole objects, which is what
//! made memory grow with sources × namespaces × followers × object size. The index, sorted by
//! origin, finds a source's copies by binary search instead of a scan of every copy in the
//! cluster.
use crate::cache::index::Index;
use crate::cache::relist::Relist;
use crate::plan::annotations as ann;
use crate::plan::key;
use crate::plan::objects::{self, Syncable};
use crate::plan::summary::CopySummary;
use kube::Resource;
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

pub use crate::cache::index::Origin;

fn rv_number<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

/// Copies of one kind in one target cluster.
pub struct CopyCache {
    cluster_name: String,
    index: RwLock<Index>,
    relist: Relist<Index>,
    /// Copies we wrote whose watch event has not come yet, by location: the resourceVersion
    /// our write returned. See [`CopyCache::record`].
    written: Mutex<HashMap<(String, String), u64>>,
    /// Copies whose payload another manager shares but which were seen whole with the desired
    /// payload, by location: the resourceVersion seen and the payload identity it proved. See
    /// [`CopyCache::verify`].
    verified: Mutex<HashMap<(String, String), (u64, Fingerprint)>>,
}

type Fingerprint = crate::plan::summary::Fingerprint;

impl CopyCache {
    /// `cluster_name`: our `--cluster-name`, whose origin labels mark our copies.
    pub fn new(cluster_name: &str) -> Self {
        Self {
            cluster_name: cluster_name.to_string(),
            index: RwLock::default(),
            relist: Relist::default(),
            written: Mutex::default(),
            verified: Mutex::default(),
        }
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (u64, Fingerprint)>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that the copy at `namespace/name`, at resourceVersion `rv`, was seen whole with the
    /// payload `identity` stands for ([`crate::plan::summary::verified_identity`]). Its summary
    /// carries that identity, although another manager shares its payload fields, until the copy
    /// changes: a converged copy kubed made is then not read again on every pass.
    pub fn verify(&self, namespace: &str, name: &str, rv: Option<&str>, identity: Fingerprint) {
        let Some(rv) = rv.and_then(|r| r.parse::<u64>().ok()) else {
            return;
        };
        let at = (namespace.to_string(), name.to_string());
        // Only for a copy of ours (locks: the index, then the verified map, as in `upsert`).
        let mut g = self.write();
        let Some(mut c) = g.get(&at) else { return };
        self.verified().insert(at.clone(), (rv, identity));
        if c.rv == rv
            && c.payload.is_none()
            && let Some(origin) = g.remove(&at)
        {
            c.payload = Some(identity);
            g.insert(origin, c);
        }
    }

    /// Gives an untrusted summary the identity verified for its very version; forgets a
    /// verification the copy has moved past.
    fn apply_verified(&self, at: &(String, String), s: &mut CopySummary) {
        let mut v = self.verified();
        match v.get(at) {
            Some((rv, id)) if *rv == s.rv && s.rv != 0 => {
                s.payload = s.payload.or(Some(*id));
            }
            Some(_) => {
                v.remove(at);
            }
            None => {}
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a copy we just wrote (the API server's answer) in the cache at once, so the next
    /// reconcile of its source sees it even before the watch delivers it — without this, a
    /// reconcile that runs between our write and its event plans the same write again (the
    /// no-op PATCH once seen on the last namespace of an intra-cluster fan-out). Watch events of
    /// that copy older than our write, and the write's own event, are then skipped.
    /// ResourceVersions are compared as numbers (what etcd-backed API servers hand out); one
    /// that is not a number is not guarded.
    ///
    /// Returns whether the summary knows the payload (`false`: another manager shares it, see
    /// [`CopyCache::verify`]).
    pub fn record<K: Syncable>(&self, obj: &K) -> bool {
        let at = Self::at(obj);
        match rv_number(obj) {
            Some(rv) => self.written().insert(at, rv),
            None => self.written().remove(&at),
        };
        self.upsert(obj, obj.secret_type()).1
    }

    /// Notes the type of a Secret copy read whole (a GET): the watch, metadata only, cannot
    /// tell it, and a Secret's type never changes.
    pub fn learn_type<K: Syncable>(&self, obj: &K) {
        let Some(t) = obj.secret_type() else { return };
        let at = Self::at(obj);
        let mut g = self.write();
        if let Some(mut c) = g.get(&at).filter(|c| c.uid == obj.meta().uid)
            && c.secret_type.as_deref() != Some(t)
            && let Some(origin) = g.remove(&at)
        {
            c.secret_type = Some(t.to_string());
            g.insert(origin, c);
        }
    }

    /// Forgets a copy we just deleted.
    pub fn record_deleted(&self, namespace: &str, name: &str) {
        let at = (namespace.to_string(), name.to_string());
        self.written().remove(&at);
        self.verified().remove(&at);
        self.write().remove(&at);
    }

    /// Whether a watch event for `obj` tells nothing new: older than our last write of it, or
    /// that write's own event, whose state [`CopyCache::record`] has cached already (requeuing
    /// its source would plan the same copy again for nothing: one idle reconcile per copy made).
    fn stale<K: Resource>(&self, obj: &K) -> bool {
        let mut w = self.written();
        if w.is_empty() {
            return false;
        }
        let at = Self::at(obj);
        match (w.get(&at).copied(), rv_number(obj)) {
            (Some(ours), Some(rv)) if rv < ours => true,
            (Some(ours), Some(rv)) if rv == ours => {
                w.remove(&at);
                true
            }
            (Some(_), _) => {
                w.remove(&at);
                false
            }
            (None, _) => false,
        }
    }

    /// Sets the summary of `o` at its location; the origins before and after, and whether the
    /// summary knows the payload. A Secret's type (`secret_type`, else what was known of the same
    /// object) is kept with it.
    fn upsert<K: Resource>(&self, o: &K, secret_type: Option<&str>) -> (Vec<Origin>, bool) {
        let mut g = self.write();
        let at = Self::at(o);
        let known = g.known_type(&at, o.meta().uid.as_deref());
        let before = g.remove(&at);
        let now = self.origin(o);
        let mut trusted = false;
        if let Some(origin) = &now {
            let mut summary = objects::summary(o.meta());
            summary.secret_type = secret_type.map(String::from).or(known);
            self.apply_verified(&at, &mut summary);
            trusted = summary.payload.is_some();
            g.insert(origin.clone(), summary);
        }
        (before.into_iter().chain(now).collect(), trusted)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // Poisoning only means a writer panicked mid-update; the maps are still consistent
        // enough to read (each update is a remove followed by an insert).
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The origin a copy names, if it is one of ours.
    fn origin<K: Resource>(&self, obj: &K) -> Option<Origin> {
        obj.meta()
            .labels
            .as_ref()
            .and_then(|l| ann::origin_of(l, &self.cluster_name))
    }

    fn at<K: Resource>(obj: &K) -> (String, String) {
        let m = obj.meta();
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }

    /// Applies one watcher event; returns the origins it concerns (to be requeued).
    pub fn apply<K: Resource>(&self, ev: &watcher::Event<K>) -> Vec<Origin> {
        match ev {
            watcher::Event::Init => {
                self.relist.begin();
                self.written().clear();
                Vec::new()
            }
            watcher::Event::InitApply(o) => {
                // Not requeued: the sweep that follows the list covers every origin.
                if let Some(origin) = self.origin(o) {
                    let at = Self::at(o);
                    let mut summary = objects::summary(o.meta());
                    // What is known of a Secret's type survives the re-list (same object).
                    summary.secret_type = self.read().known_type(&at, o.meta().uid.as_deref());
                    self.apply_verified(&at, &mut summary);
                    self.relist.add(|i| i.push_listed(origin, summary));
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let mut fresh = self.relist.finish();
                // Origins of copies that vanished while the watch was down are requeued by the
                // re-list sweep (runner), which covers every cached origin afterwards.
                fresh.finish();
                *self.write() = fresh;
                Vec::new()
            }
            watcher::Event::Apply(o) if self.stale(o) => Vec::new(),
            watcher::Event::Apply(o) => self.upsert(o, None).0,
            watcher::Event::Delete(o) => {
                self.written().remove(&Self::at(o));
                self.verified().remove(&Self::at(o));
                let gone = self.write().remove(&Self::at(o));
                gone.into_iter().chain(self.origin(o)).collect()
            }
        }
    }

    /// Fills the cache from one complete list, through the same path as a watch's (re-)list
    /// (`status` lists once instead of watching).
    pub fn load<K: Resource>(&self, items: Vec<K>) {
        self.apply::<K>(&watcher::Event::Init);
        for o in items {
            self.apply(&watcher::Event::InitApply(o));
        }
        self.apply::<K>(&watcher::Event::InitDone);
    }

    /// The cached copies of one source.
    pub fn copies_of(&self, namespace: &str, name: &str) -> Vec<CopySummary> {
        let g = self.read();
        let range = g.range(&key::id(namespace, name));
        g.entries[range]
            .iter()
            .map(|(_, c)| c.summary((namespace, name)))
            .collect()
    }

    /// Calls `f` once with the `namespace/name` ([`key::id`]) of every origin with at least
    /// one cached copy, in sorted order (under the cache's read lock: `f` must not call back
    /// into it).
    pub fn each_origin(&self, mut f: impl FnMut(&str)) {
        let g = self.read();
        let mut last: Option<&str> = None;
        for (k, _) in &g.entries {
            // A source's copies are adjacent.
            if last != Some(&**k) {
                f(k);
                last = Some(k);
            }
        }
    }

    /// Every origin with at least one cached copy.
    pub fn origins(&self) -> Vec<Origin> {
        let mut origins = Vec::new();
        self.each_origin(|k| {
            let (ns, name) = key::split(k);
            origins.push((ns.to_string(), name.to_string()));
        });
        origins
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::plan::annotations::{ORIGIN_CLUSTER, ORIGIN_NAME, ORIGIN_NAMESPACE};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::core::PartialObjectMeta;
    use std::collections::BTreeMap;

    fn copy(ns: &str, name: &str, origin: Option<(&str, &str)>, v: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm.metadata.uid = Some(format!("{ns}-{name}"));
        if let Some((ons, oname)) = origin {
            cm.metadata.labels = Some(BTreeMap::from([
                (ORIGIN_CLUSTER.to_string(), "mgmt".to_string()),
                (ORIGIN_NAMESPACE.to_string(), ons.to_string()),
                (ORIGIN_NAME.to_string(), oname.to_string()),
            ]));
        }
        cm.data = Some(BTreeMap::from([("v".to_string(), v.to_string())]));
        cm
    }

    fn origin(ns: &str, name: &str) -> Origin {
        (ns.to_string(), name.to_string())
    }

    #[test]
    fn indexes_by_origin_and_follows_changes() {
        let c = CopyCache::new("mgmt");
        let a1 = copy("t1", "a", Some(("prod", "a")), "1");
        let a2 = copy("t2", "a", Some(("prod", "a")), "1");
        assert_eq!(
            c.apply(&watcher::Event::Apply(a1.clone())),
            vec![origin("prod", "a")]
        );
        c.apply(&watcher::Event::Apply(a2.clone()));
        assert_eq!(c.copies_of("prod", "a").len(), 2);
        // Updated in place, not duplicated.
        let before = c.copies_of("prod", "a");
        c.apply(&watcher::Event::Apply(copy(
            "t1",
            "a",
            Some(("prod", "a")),
            "2",
        )));
        let after = c.copies_of("prod", "a");
        assert_eq!(after.len(), 2);
        assert_ne!(before, after);
        // Relabelled to another origin: both origins are reported, the index moves.
        let moved = copy("t1", "a", Some(("dev", "a")), "2");
        let touched = c.apply(&watcher::Event::Apply(moved.clone()));
        assert_eq!(touched, vec![origin("prod", "a"), origin("dev", "a")]);
        assert_eq!(c.copies_of("prod", "a").len(), 1);
        assert_eq!(c.copies_of("dev", "a").len(), 1);
        // Labels removed: no longer ours.
        c.apply(&watcher::Event::Apply(copy("t1", "a", None, "2")));
        assert!(c.copies_of("dev", "a").is_empty());
        c.apply(&watcher::Event::Delete(a2));
        assert!(c.is_empty());
        assert!(c.origins().is_empty());
    }

    #[test]
    fn our_write_is_seen_before_its_event_and_older_events_are_skipped() {
        let c = CopyCache::new("mgmt");
        let at_rv = |v: &str, rv: &str| {
            let mut cm = copy("t1", "a", Some(("prod", "a")), v);
            cm.metadata.resource_version = Some(rv.into());
            // The summary reads metadata only: tell the versions apart by a label.
            (cm.metadata.labels.as_mut().unwrap()).insert("rev".into(), v.into());
            cm
        };
        let payload = |c: &CopyCache| c.copies_of("prod", "a")[0].meta;
        c.apply(&watcher::Event::Apply(at_rv("1", "10")));
        let v1 = payload(&c);
        // Our write (rv 12) is in the cache at once.
        c.record(&at_rv("3", "12"));
        let v3 = payload(&c);
        assert_ne!(v1, v3);
        // The event of an earlier write (rv 11) arrives late: skipped, not requeued.
        assert!(c.apply(&watcher::Event::Apply(at_rv("2", "11"))).is_empty());
        assert_eq!(payload(&c), v3);
        // Our write's own event: the cache has it already, so it is not requeued.
        assert!(c.apply(&watcher::Event::Apply(at_rv("3", "12"))).is_empty());
        assert_eq!(payload(&c), v3);
        // Someone else's edit after it: applied and requeued.
        assert!(!c.apply(&watcher::Event::Apply(at_rv("4", "13"))).is_empty());
        assert_ne!(payload(&c), v3);
        // Once our event came, nothing is skipped any more (even a lower number).
        c.apply(&watcher::Event::Apply(at_rv("5", "9")));
        assert_eq!(payload(&c), {
            let d = CopyCache::new("mgmt");
            d.apply(&watcher::Event::Apply(at_rv("5", "9")));
            payload(&d)
        });
        // A delete we made is gone from the cache at once.
        c.record_deleted("t1", "a");
        assert!(c.copies_of("prod", "a").is_empty());
    }

    /// A Secret's type is not in the metadata the watch delivers: it is learned from our write or
    /// a read, kept through the copy's later events and re-lists, and dropped for a new object.
    #[test]
    fn a_secrets_type_is_kept_for_its_object() {
        use k8s_openapi::api::core::v1::Secret;
        let c = CopyCache::new("mgmt");
        let secret = |uid: &str, type_: &str| {
            let cm = copy("t1", "a", Some(("prod", "a")), "1");
            let mut s = Secret {
                metadata: cm.metadata,
                type_: Some(type_.into()),
                ..Default::default()
            };
            s.metadata.uid = Some(uid.into());
            s
        };
        let meta_only = |s: &Secret| PartialObjectMeta::<Secret> {
            types: None,
            metadata: s.metadata.clone(),
            _phantom: Default::default(),
        };
        let type_of = |c: &CopyCache| c.copies_of("prod", "a")[0].secret_type.clone();
        let tls = secret("u1", "kubernetes.io/tls");
        c.apply(&watcher::Event::Apply(meta_only(&tls)));
        assert_eq!(type_of(&c), None, "not in the metadata");
        c.learn_type(&tls);
        assert_eq!(type_of(&c).as_deref(), Some("kubernetes.io/tls"));
        c.apply(&watcher::Event::Apply(meta_only(&tls)));
        c.load(vec![meta_only(&tls)]);
        assert_eq!(type_of(&c).as_deref(), Some("kubernetes.io/tls"), "kept");
        // Another object at the same place (deleted and made again): unknown until learned.
        let other = secret("u2", "Opaque");
        c.apply(&watcher::Event::Apply(meta_only(&other)));
        assert_eq!(type_of(&c), None);
        c.record(&other);
        assert_eq!(type_of(&c).as_deref(), Some("Opaque"));
    }

    /// A verified payload identity holds for the copy's version it was seen at, survives that
    /// version's own event and a re-list, and is dropped when the copy changes.
    #[test]
    fn a_verification_lasts_until_the_copy_changes() {
        let c = CopyCache::new("mgmt");
        let at_rv = |rv: &str| {
            let mut cm = copy("t1", "a", Some(("prod", "a")), "1");
            cm.metadata.resource_version = Some(rv.into());
            cm
        };
        let payload = |c: &CopyCache| c.copies_of("prod", "a")[0].payload;
        c.apply(&watcher::Event::Apply(at_rv("10")));
        assert_eq!(payload(&c), None, "no managedFields: untrusted");
        c.verify("t1", "a", Some("10"), [7; 16]);
        assert_eq!(payload(&c), Some([7; 16]));
        c.apply(&watcher::Event::Apply(at_rv("10")));
        c.load(vec![at_rv("10")]);
        assert_eq!(payload(&c), Some([7; 16]), "same version");
        c.apply(&watcher::Event::Apply(at_rv("11")));
        assert_eq!(payload(&c), None, "changed since");
        c.apply(&watcher::Event::Apply(at_rv("10")));
        assert_eq!(payload(&c), None, "forgotten");
        // Nothing is noted for what is not a copy of ours.
        c.verify("t1", "other", Some("10"), [7; 16]);
        assert!(c.verified().get(&("t1".into(), "other".into())).is_none());
    }

    #[test]
    fn a_follower_copy_costs_one_index_entry() {
        let c = CopyCache::new("mgmt");
        let a = copy("prod", "a", Some(("prod", "a")), "1");
        c.apply(&watcher::Event::Apply(a.clone()));
        c.apply(&watcher::Event::Apply(copy(
            "prod",
            "a",
            Some(("prod", "a")),
            "2",
        )));
        assert_eq!(c.len(), 1);
        assert!(c.read().moved.is_empty());
        // Relabelled away from its own name and back.
        c.apply(&watcher::Event::Apply(copy(
            "prod",
            "a",
            Some(("dev", "b")),
            "2",
        )));
        assert_eq!(c.read().moved.len(), 1);
        assert!(c.copies_of("prod", "a").is_empty());
        c.apply(&watcher::Event::Apply(a.clone()));
        assert!(c.read().moved.is_empty());
        assert!(c.copies_of("dev", "b").is_empty());
        c.apply(&watcher::Event::Delete(a));
        assert!(c.is_empty());
        assert!(c.origins().is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_at_once() {
        let c = CopyCache::new("mgmt");
        c.apply(&watcher::Event::Apply(copy(
            "t1",
            "old",
            Some(("prod", "old")),
            "1",
        )));
        c.apply(&watcher::Event::<ConfigMap>::Init);
        c.apply(&watcher::Event::InitApply(copy(
            "t1",
            "new",
            Some(("prod", "new")),
            "1",
        )));
        // Until InitDone the old state still answers.
        assert_eq!(c.origins(), vec![origin("prod", "old")]);
        c.apply(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(c.origins(), vec![origin("prod", "new")]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_list_in_any_order_is_found_by_origin() {
        let c = CopyCache::new("mgmt");
        c.apply(&watcher::Event::<ConfigMap>::Init);
        for (ns, name, o) in [
            ("t2", "b", ("prod", "b")),
            ("prod", "c", ("prod", "c")),
            ("t1", "b", ("prod", "b")),
            ("prod", "a", ("prod", "a")),
            ("t3", "b", ("prod", "b")),
        ] {
            c.apply(&watcher::Event::InitApply(copy(ns, name, Some(o), "1")));
        }
        c.apply(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(c.len(), 5);
        assert_eq!(
            c.origins(),
            vec![
                origin("prod", "a"),
                origin("prod", "b"),
                origin("prod", "c")
            ]
        );
        let mut b: Vec<String> = c
            .copies_of("prod", "b")
            .into_iter()
            .map(|s| s.namespace)
            .collect();
        b.sort();
        assert_eq!(b, ["t1", "t2", "t3"]);
        // Events after the list keep the order.
        c.apply(&watcher::Event::Apply(copy(
            "prod",
            "ab",
            Some(("prod", "ab")),
            "1",
        )));
        c.apply(&watcher::Event::Delete(copy(
            "t2",
            "b",
            Some(("prod", "b")),
            "1",
        )));
        assert_eq!(c.copies_of("prod", "b").len(), 2);
        assert_eq!(c.copies_of("prod", "ab").len(), 1);
        assert_eq!(
            c.origins(),
            vec![
                origin("prod", "a"),
                origin("prod", "ab"),
                origin("prod", "b"),
                origin("prod", "c")
            ]
        );
        assert!(c.copies_of("prod", "zz").is_empty());
    }

    #[test]
    fn other_clusters_copies_are_not_ours() {
        let c = CopyCache::new("other");
        c.apply(&watcher::Event::Apply(copy(
            "t1",
            "a",
            Some(("prod", "a")),
            "1",
        )));
        assert!(c.is_empty());
    }
}
