//! Watch-fed caches: the source cluster's candidate sources (kept as trimmed JSON) and namespaces,
//! and in each target cluster a compact summary of every copy we made there. One watch loop
//! (`watch.rs`) feeds them all; callers are told which source keys an event concerns.
pub mod copies;
mod index;
pub mod lookout;
pub mod ready;
pub mod relist;
pub mod scoped;
pub mod sources;
pub mod watch;

use crate::plan::annotations::{self as ann, ORIGIN_CLUSTER, ORIGIN_NAMESPACE};
use crate::plan::objects::{Syncable, namespace_view};
use crate::plan::{Kind, NamespaceView, Scope, SourceKey};
use copies::CopyCache;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use ready::Ready;
use scoped::KindCopies;
use sources::SourceCache;
use std::collections::BTreeSet;
use std::sync::Arc;
use watch::{Tasks, Watch};

/// Objects per page of the sources' and copies' initial lists (kube-runtime's default is 500).
/// Every follower lists at once at start-up, and a decoded page of copies (managedFields
/// included) is several times its JSON: smaller pages keep that transient, and with it the RSS
/// glibc keeps after it, low, for a few more cheap LIST requests (100 per 10,000 objects).
const LIST_PAGE: u32 = 100;

/// Told of a change to a candidate source: its key and resourceVersion.
pub type OnSource = Arc<dyn Fn(&SourceKey, Option<&str>) + Send + Sync>;

/// What the source watches report: a change to a candidate source, a change to a namespace, a
/// completed (re-)list.
#[derive(Clone)]
pub struct SourceEvents {
    pub source: OnSource,
    pub namespace: Arc<dyn Fn() + Send + Sync>,
    pub relist: Arc<dyn Fn() + Send + Sync>,
}

/// The source cluster's caches: candidate sources of both kinds, and the namespaces.
#[derive(Clone)]
pub struct Sources {
    pub configmaps: Arc<SourceCache<ConfigMap>>,
    pub secrets: Arc<SourceCache<Secret>>,
    pub namespaces: Store<Namespace>,
    /// All three hold a full list.
    pub ready: Ready,
}

/// The source cache of a kind.
pub trait Cached: Syncable {
    fn cache(sources: &Sources) -> &SourceCache<Self>;
}

impl Cached for ConfigMap {
    fn cache(sources: &Sources) -> &SourceCache<Self> {
        &sources.configmaps
    }
}

impl Cached for Secret {
    fn cache(sources: &Sources) -> &SourceCache<Self> {
        &sources.secrets
    }
}

impl Sources {
    /// Starts the source cluster's watches: ConfigMaps and Secrets in `namespace` (all when
    /// `None`; Secret types in `skipped` are excluded server-side, so never cached), and every
    /// namespace when `intra_cluster` (only intra-cluster selectors read them).
    pub fn watch(
        client: &Client,
        context: &str,
        namespace: Option<&str>,
        skipped: &BTreeSet<String>,
        intra_cluster: bool,
        on: SourceEvents,
    ) -> Sources {
        let page = watcher::Config::default().page_size(LIST_PAGE);
        let field_sel = skipped
            .iter()
            .map(|t| format!("type!={t}"))
            .collect::<Vec<_>>()
            .join(",");
        let secret_cfg = if field_sel.is_empty() {
            page.clone()
        } else {
            page.clone().fields(&field_sel)
        };
        let (configmaps, cm_ready) =
            watch_sources::<ConfigMap>(client, context, namespace, page, &on);
        let (secrets, secret_ready) =
            watch_sources::<Secret>(client, context, namespace, secret_cfg, &on);
        // A namespace change can alter any selector's result (the source cluster's queue is
        // swept); namespaces of a (re-)list too, one request each, which the sweep merges.
        let (namespaces, ns_ready) = match intra_cluster {
            true => watch_namespaces(
                client,
                context,
                &Tasks::default(),
                true,
                on.namespace.clone(),
                {
                    let on = on.clone();
                    move || (on.relist)()
                },
            ),
            false => (reflector::store().0, Ready::now()),
        };
        Sources {
            configmaps,
            secrets,
            namespaces,
            ready: Ready::all([cm_ready, secret_ready, ns_ready]),
        }
    }

    /// Every candidate source's key, sorted: the part of a sweep all targets share.
    pub fn keys(&self) -> Arc<[SourceKey]> {
        let mut keys: Vec<SourceKey> = Vec::new();
        (self.configmaps).each_source(|id| keys.push(SourceKey::from_id(Kind::ConfigMap, id)));
        (self.secrets).each_source(|id| keys.push(SourceKey::from_id(Kind::Secret, id)));
        keys.sort_unstable();
        keys.into()
    }

    /// The source cluster's namespaces, as the planner sees them.
    pub fn namespace_views(&self) -> Vec<NamespaceView> {
        views(&self.namespaces)
    }

    /// The reference of a cached source (for Events on it).
    pub fn object_ref(&self, key: &SourceKey) -> Option<ObjectReference> {
        let (ns, name) = (key.namespace(), key.name());
        match key.kind {
            Kind::ConfigMap => self.configmaps.get(ns, name).map(|o| o.object_ref(&())),
            Kind::Secret => self.secrets.get(ns, name).map(|o| o.object_ref(&())),
        }
    }

    /// The sources whose `sync-contexts` name `context`.
    pub fn naming(&self, context: &str) -> Vec<ObjectReference> {
        fn names<K: Syncable>(o: &K, context: &str) -> bool {
            o.meta()
                .annotations
                .as_ref()
                .is_some_and(|a| ann::parse(a).0.contexts.iter().any(|c| c.may_name(context)))
        }
        let mut out: Vec<ObjectReference> = (self.configmaps.sources().iter())
            .filter(|o| names(*o, context))
            .map(|o| o.object_ref(&()))
            .collect();
        out.extend(
            (self.secrets.sources().iter())
                .filter(|o| names(*o, context))
                .map(|o| o.object_ref(&())),
        );
        out
    }
}

fn views(store: &Store<Namespace>) -> Vec<NamespaceView> {
    store.state().iter().map(|n| namespace_view(n)).collect()
}

/// Watches every namespace of a cluster into a store: `on_change` hears each change (and, with
/// `initial`, each namespace of a (re-)list), `on_relist` each completed (re-)list.
fn watch_namespaces(
    client: &Client,
    context: &str,
    tasks: &Tasks,
    initial: bool,
    on_change: Arc<dyn Fn() + Send + Sync>,
    on_relist: impl Fn() + Send + 'static,
) -> (Store<Namespace>, Ready) {
    let (store, mut writer) = reflector::store();
    let ready = watch::spawn(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        Watch {
            cluster: context.to_string(),
            what: "namespaces",
            tasks: tasks.clone(),
            ready_if_forbidden: false,
        },
        |n: &mut Namespace| n.metadata.managed_fields = None,
        move |ev: &watcher::Event<Namespace>| {
            writer.apply_watcher_event(ev);
            let change = match ev {
                watcher::Event::Apply(_) | watcher::Event::Delete(_) => true,
                watcher::Event::InitApply(_) => initial,
                _ => false,
            };
            if change {
                on_change();
            }
        },
        on_relist,
    );
    (store, ready)
}

fn watch_sources<K: Syncable>(
    client: &Client,
    context: &str,
    namespace: Option<&str>,
    cfg: watcher::Config,
    on: &SourceEvents,
) -> (Arc<SourceCache<K>>, Ready) {
    let api = match namespace {
        Some(ns) => Api::<K>::namespaced(client.clone(), ns),
        None => Api::<K>::all(client.clone()),
    };
    let cache = Arc::new(SourceCache::<K>::default());
    let what = match K::KIND {
        Kind::ConfigMap => "configmaps",
        Kind::Secret => "secrets",
    };
    let ready = watch::spawn(
        api,
        cfg,
        Watch {
            cluster: context.to_string(),
            what,
            tasks: Tasks::default(),
            ready_if_forbidden: false,
        },
        crate::plan::objects::trim_source::<K>,
        {
            let (cache, on) = (cache.clone(), on.clone());
            move |ev: &watcher::Event<K>| {
                cache.apply(ev);
                // Objects of a (re-)list are not changes: the sweep at InitDone covers them, and
                // a start-up is not timed as a propagation.
                if let watcher::Event::Apply(o) | watcher::Event::Delete(o) = ev {
                    let m = o.meta();
                    let key = SourceKey::new(
                        K::KIND,
                        m.namespace.as_deref().unwrap_or_default(),
                        m.name.as_deref().unwrap_or_default(),
                    );
                    (on.source)(&key, m.resource_version.as_deref());
                }
            }
        },
        {
            let on = on.clone();
            move || (on.relist)()
        },
    );
    (cache, ready)
}

/// Our copies in one target cluster, both kinds, and a follower's namespaces.
pub struct Copies {
    pub configmaps: KindCopies,
    pub secrets: KindCopies,
    /// A follower's namespaces (sources may choose them by selector); `None` in the source
    /// cluster, whose namespaces the source caches hold.
    pub namespaces: Option<Store<Namespace>>,
    /// Every watch holds a full list.
    pub ready: Ready,
    /// Look-alikes in the way of a copy, watched until they go.
    pub lookouts: lookout::Lookouts,
    tasks: Tasks,
}

/// What [`Copies::watch`] hears: the source key of every copy that changed (`copy`), and that a
/// (re-)list completed or a follower namespace changed (`relist`).
#[derive(Clone)]
pub struct CopyEvents {
    pub copy: Arc<dyn Fn(SourceKey) + Send + Sync>,
    pub relist: Arc<dyn Fn() + Send + Sync>,
}

impl Copies {
    /// The label selector of our copies: made by `cluster_name` (and from `source_namespace`).
    pub fn selector(cluster_name: &str, source_namespace: Option<&str>) -> String {
        let mut sel = format!("{ORIGIN_CLUSTER}={cluster_name}");
        if let Some(ns) = source_namespace {
            sel += &format!(",{ORIGIN_NAMESPACE}={ns}");
        }
        sel
    }

    /// Starts watching our copies (by `selector`) in one target cluster — cluster-wide, or per
    /// namespace of `scope` (none at all for an empty list) — and a follower's namespaces
    /// (watched, or with a namespace list read by name).
    pub fn watch(
        client: &Client,
        context: &str,
        follower: bool,
        cluster_name: &str,
        selector: &str,
        scope: &Scope,
        on: CopyEvents,
    ) -> Copies {
        let cfg = watcher::Config::default()
            .page_size(LIST_PAGE)
            .labels(selector);
        let tasks = Tasks::default();
        let parts: Vec<Option<String>> = match scope.namespaces() {
            None => vec![None],
            Some(list) => list.iter().cloned().map(Some).collect(),
        };
        let mut ready = Vec::new();
        let mut kind = |kind: Kind| {
            let caches = (parts.iter()).map(|ns| {
                let cache = Arc::new(CopyCache::new(cluster_name));
                let w = Watch {
                    cluster: context.to_string(),
                    what: match kind {
                        Kind::ConfigMap => "configmap copies",
                        Kind::Secret => "secret copies",
                    },
                    tasks: tasks.clone(),
                    // A namespace whose Role is missing holds nothing we can see: the others
                    // go ahead (its writes are refused and reported).
                    ready_if_forbidden: ns.is_some(),
                };
                ready.push(watch_copies(
                    client,
                    ns.as_deref(),
                    kind,
                    &cfg,
                    w,
                    &cache,
                    &on,
                ));
                (ns.clone(), cache)
            });
            KindCopies::new(caches.collect())
        };
        let (configmaps, secrets) = (kind(Kind::ConfigMap), kind(Kind::Secret));
        let namespaces = follower.then(|| {
            // A follower namespace change may change what a selector picks: sweep this queue.
            let relist = on.relist.clone();
            let (store, ns_ready) = match scope.namespaces() {
                None => {
                    watch_namespaces(client, context, &tasks, false, on.relist, move || relist())
                }
                Some(list) => {
                    let (store, writer) = reflector::store();
                    let names = list.iter().cloned().collect();
                    let r = scoped::poll_namespaces(client, context, names, writer, &tasks, relist);
                    (store, r)
                }
            };
            ready.push(ns_ready);
            store
        });
        Copies {
            configmaps,
            secrets,
            namespaces,
            ready: Ready::all(ready),
            lookouts: lookout::Lookouts::new(client, context, on.copy),
            tasks,
        }
    }

    /// Stops every watch of this cluster (it left the kubeconfig). The caches keep their last
    /// contents for whoever still holds them; readiness turns false.
    pub fn stop(&self) {
        self.tasks.stop();
        self.lookouts.stop();
    }

    /// A follower's namespaces, as the planner sees them (none in the source cluster).
    pub fn namespace_views(&self) -> Vec<NamespaceView> {
        self.namespaces.as_ref().map(views).unwrap_or_default()
    }

    /// The copies of one kind.
    pub fn of(&self, kind: Kind) -> &KindCopies {
        match kind {
            Kind::ConfigMap => &self.configmaps,
            Kind::Secret => &self.secrets,
        }
    }
}

/// One watch of our copies of `kind`, cluster-wide or in `namespace`, into `cache`.
fn watch_copies(
    client: &Client,
    namespace: Option<&str>,
    kind: Kind,
    cfg: &watcher::Config,
    w: Watch,
    cache: &Arc<CopyCache>,
    on: &CopyEvents,
) -> Ready {
    let apply = {
        let on_copy = on.copy.clone();
        move |(namespace, name): copies::Origin| on_copy(SourceKey::new(kind, &namespace, &name))
    };
    let relist = {
        let on_relist = on.relist.clone();
        move || on_relist()
    };
    // Metadata only (`PartialObjectMetadata`): the summary needs nothing else (see
    // `plan/summary.rs`), and a copy's payload then never crosses the wire nor sits in the
    // watch's read buffer (a 1 MiB Secret would keep that buffer at 1.4 MiB per cluster).
    fn api<K: Syncable>(client: &Client, ns: Option<&str>) -> Api<PartialObjectMeta<K>> {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    match kind {
        Kind::ConfigMap => watch::spawn(
            api::<ConfigMap>(client, namespace),
            cfg.clone(),
            w,
            watch::keep,
            copy_sink(cache.clone(), apply),
            relist,
        ),
        Kind::Secret => watch::spawn(
            api::<Secret>(client, namespace),
            cfg.clone(),
            w,
            watch::keep,
            copy_sink(cache.clone(), apply),
            relist,
        ),
    }
}

fn copy_sink<K: Syncable>(
    cache: Arc<CopyCache>,
    on_origin: impl Fn(copies::Origin) + Send + 'static,
) -> impl FnMut(&watcher::Event<PartialObjectMeta<K>>) + Send + 'static {
    move |ev: &watcher::Event<PartialObjectMeta<K>>| {
        cache.apply(ev).into_iter().for_each(&on_origin)
    }
}
