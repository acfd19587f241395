//! Start-up wiring: clusters → watches (kube-runtime reflectors) → per-cluster queues and
//! workers → periodic resync. `run` keeps going; `once` does one pass and reports convergence.
use crate::annotations::{ORIGIN_CLUSTER, ORIGIN_NAMESPACE};
use crate::args::SyncArgs;
use crate::clusters::{self, Clusters};
use crate::copies::{CopyCache, Origin};
use crate::desired::{Kind, Settings};
use crate::error::chain;
use crate::hooks::{Hooks, Tally};
use crate::kinds::{self, Syncable};
use crate::queue::{self, Queue, SourceKey};
use crate::reconcile::{Context, Outcome, Ready, SourceStores, TargetCluster};
use crate::sources::SourceCache;
use crate::writer::Writer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Secret types never synced unless --include-secret-types names them (excluded from the watch).
pub const DEFAULT_SKIPPED_SECRET_TYPES: [&str; 2] =
    ["kubernetes.io/service-account-token", "helm.sh/release.v1"];

/// Objects per page of the sources' and copies' initial lists (kube-runtime's default is 500).
/// Every follower lists at once at start-up, and a decoded page of copies (managedFields
/// included) is several times its JSON: smaller pages keep that transient, and with it the RSS
/// glibc keeps after it, low, for a few more cheap LIST requests (100 per 10,000 objects).
const LIST_PAGE: u32 = 100;

/// How long `once` waits for a cluster's caches before calling it unconverged.
const ONCE_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Start-up failures; each maps to an exit code (see README).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--cluster-name is required with --kubeconfig-file")]
    MissingClusterName,
    #[error(transparent)]
    Clusters(#[from] clusters::ClusterError),
    #[error("the leader lease was lost; exiting so that a standby takes over")]
    LeaseLost,
}

/// Options that a later admin layer (leader election, dry-run) sets beside the CLI flags.
#[derive(Clone)]
pub struct Runtime {
    pub hooks: Arc<dyn Hooks>,
    pub writer: Writer,
    /// With leader election: `true` while this replica holds the lease. Workers start when it
    /// becomes `true`; `run` returns [`StartError::LeaseLost`] when it turns `false` again.
    pub leader: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Which queue(s) a watch event or resync request concerns.
#[derive(Debug, Clone, Copy)]
enum Resync {
    All,
    One(usize),
}

#[allow(clippy::too_many_arguments)]
fn watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    what: &'static str,
    cluster: String,
    trim: fn(&mut K),
    on_object: impl Fn(&K) + Send + 'static,
    on_relist: impl Fn() + Send + 'static,
) -> (Store<K>, tokio::sync::watch::Receiver<bool>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let events = watcher(api, cfg)
        .default_backoff()
        .map_ok(move |ev| ev.modify(trim));
    let stream = reflector::reflector(writer, events);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::Delete(o)
                    | watcher::Event::InitApply(o),
                ) => on_object(&o),
                Ok(watcher::Event::InitDone) => {
                    ready_tx.send_replace(true);
                    on_relist()
                }
                Ok(watcher::Event::Init) => {}
                Err(e) => {
                    tracing::warn!(cluster = %cluster, watch = what, error = %chain(&e), "watch failed, retrying")
                }
            }
        }
    });
    (reader, ready_rx)
}

/// Watches the candidate sources of one kind into `cache` (trimmed, kept as JSON).
fn watch_sources<K: Syncable>(
    api: Api<K>,
    cfg: watcher::Config,
    what: &'static str,
    cluster: String,
    cache: Arc<SourceCache<K>>,
    on_object: impl Fn(&K) + Send + 'static,
    on_relist: impl Fn() + Send + 'static,
) -> tokio::sync::watch::Receiver<bool> {
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let stream = watcher(api, cfg)
        .default_backoff()
        .map_ok(|ev| ev.modify(kinds::trim_source::<K>));
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    cache.apply(&ev);
                    match &ev {
                        watcher::Event::Apply(o) | watcher::Event::Delete(o) => on_object(o),
                        // Not a change: the sweep at InitDone covers every listed object.
                        watcher::Event::InitApply(_) => {}
                        watcher::Event::InitDone => {
                            ready_tx.send_replace(true);
                            on_relist()
                        }
                        watcher::Event::Init => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(cluster = %cluster, watch = what, error = %chain(&e), "watch failed, retrying")
                }
            }
        }
    });
    ready_rx
}

/// Watches our copies of one kind in one target cluster into `cache` (summaries, not objects).
fn watch_copies<K: Syncable>(
    api: Api<K>,
    cfg: watcher::Config,
    what: &'static str,
    cluster: String,
    cache: Arc<CopyCache>,
    on_origin: impl Fn(Origin) + Send + 'static,
    on_relist: impl Fn() + Send + 'static,
) -> tokio::sync::watch::Receiver<bool> {
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let stream = watcher(api, cfg).default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    cache.apply(&ev).into_iter().for_each(&on_origin);
                    if matches!(ev, watcher::Event::InitDone) {
                        ready_tx.send_replace(true);
                        on_relist();
                    }
                }
                Err(e) => {
                    tracing::warn!(cluster = %cluster, watch = what, error = %chain(&e), "watch failed, retrying")
                }
            }
        }
    });
    ready_rx
}

/// A source change concerns every cluster: its copies may live anywhere. (Objects of a
/// (re-)list are not changes: the sweep that follows the list covers them, and a start-up is
/// not timed as a propagation.)
fn to_all<K: Resource>(
    queues: &Arc<Vec<Arc<Queue>>>,
    kind: Kind,
    hooks: Arc<dyn Hooks>,
) -> impl Fn(&K) + Send + 'static {
    let queues = queues.clone();
    move |o: &K| {
        let k = key_of(kind, o);
        hooks.source_seen(&k, o.meta().resource_version.as_deref());
        queues.iter().for_each(|q| q.add(k.clone()))
    }
}

fn key_of<K: Resource>(kind: Kind, o: &K) -> SourceKey {
    let m = o.meta();
    SourceKey::new(
        kind,
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

/// Builds clients, caches and the shared context; starts the watches.
async fn start(
    args: &SyncArgs,
    rt: &Runtime,
) -> Result<(Arc<Context>, mpsc::UnboundedReceiver<Resync>), StartError> {
    let cluster_name = match (&args.cluster_name, &args.kubeconfig_file) {
        (Some(n), _) => n.clone(),
        (None, Some(_)) => return Err(StartError::MissingClusterName),
        (None, None) => String::new(), // kubed's default
    };
    let Clusters {
        source,
        followers,
        broken,
    } = clusters::load(
        args.kubeconfig_file.as_deref(),
        args.source_context.as_deref(),
    )
    .await?;
    let skipped: std::collections::BTreeSet<String> = DEFAULT_SKIPPED_SECRET_TYPES
        .iter()
        .map(|s| s.to_string())
        .filter(|t| !args.include_secret_types.contains(t))
        .collect();
    let settings = Settings {
        cluster_name: cluster_name.clone(),
        skipped_secret_types: skipped.clone(),
        adopt_existing: args.adopt_existing,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let all: Vec<_> = std::iter::once(&source)
        .chain(followers.iter())
        .cloned()
        .collect();
    let queues: Arc<Vec<Arc<Queue>>> =
        Arc::new(all.iter().map(|_| Arc::new(Queue::default())).collect());

    // Source caches. Skipped Secret types are excluded server-side, so they are never cached.
    let src_ns = args.config_source_namespace.as_deref();
    let api = |c: &Client| match src_ns {
        Some(ns) => (
            Api::<ConfigMap>::namespaced(c.clone(), ns),
            Api::<Secret>::namespaced(c.clone(), ns),
        ),
        None => (Api::all(c.clone()), Api::all(c.clone())),
    };
    let (cm_api, secret_api) = api(&source.watch_client);
    let relist_all = || {
        let tx = tx.clone();
        move || {
            let _ = tx.send(Resync::All);
        }
    };
    let ctx_name = source.context.clone();
    let configmaps = Arc::new(SourceCache::<ConfigMap>::default());
    let cm_ready = watch_sources(
        cm_api,
        watcher::Config::default().page_size(LIST_PAGE),
        "configmaps",
        ctx_name.clone(),
        configmaps.clone(),
        to_all::<ConfigMap>(&queues, Kind::ConfigMap, rt.hooks.clone()),
        relist_all(),
    );
    let field_sel = skipped
        .iter()
        .map(|t| format!("type!={t}"))
        .collect::<Vec<_>>()
        .join(",");
    let secret_cfg = if field_sel.is_empty() {
        watcher::Config::default().page_size(LIST_PAGE)
    } else {
        watcher::Config::default()
            .page_size(LIST_PAGE)
            .fields(&field_sel)
    };
    let secrets = Arc::new(SourceCache::<Secret>::default());
    let secrets_ready = watch_sources(
        secret_api,
        secret_cfg,
        "secrets",
        ctx_name.clone(),
        secrets.clone(),
        to_all::<Secret>(&queues, Kind::Secret, rt.hooks.clone()),
        relist_all(),
    );
    // A namespace change can alter any selector's result: requeue the local queue's sources.
    let (namespaces, ns_ready) = watch(
        Api::<Namespace>::all(source.watch_client.clone()),
        watcher::Config::default(),
        "namespaces",
        ctx_name.clone(),
        |n: &mut Namespace| n.metadata.managed_fields = None,
        {
            let tx = tx.clone();
            move |_: &Namespace| {
                let _ = tx.send(Resync::One(0));
            }
        },
        relist_all(),
    );

    // Copy caches, one pair per target cluster, selected by our origin labels.
    let mut copy_sel = format!("{ORIGIN_CLUSTER}={cluster_name}");
    if let Some(ns) = src_ns {
        copy_sel += &format!(",{ORIGIN_NAMESPACE}={ns}");
    }
    let mut targets = Vec::new();
    for (idx, cluster) in all.into_iter().enumerate() {
        let q = queues[idx].clone();
        let enqueue = move |kind: Kind| {
            let q = q.clone();
            move |(namespace, name): Origin| q.add(SourceKey::new(kind, &namespace, &name))
        };
        let relist_one = || {
            let tx = tx.clone();
            move || {
                let _ = tx.send(Resync::One(idx));
            }
        };
        let cfg = watcher::Config::default()
            .page_size(LIST_PAGE)
            .labels(&copy_sel);
        let cm_copies = Arc::new(CopyCache::new(&cluster_name));
        let cm_copies_ready = watch_copies(
            Api::<ConfigMap>::all(cluster.watch_client.clone()),
            cfg.clone(),
            "configmap copies",
            cluster.context.clone(),
            cm_copies.clone(),
            enqueue(Kind::ConfigMap),
            relist_one(),
        );
        let secret_copies = Arc::new(CopyCache::new(&cluster_name));
        let secret_copies_ready = watch_copies(
            Api::<Secret>::all(cluster.watch_client.clone()),
            cfg,
            "secret copies",
            cluster.context.clone(),
            secret_copies.clone(),
            enqueue(Kind::Secret),
            relist_one(),
        );
        targets.push(TargetCluster {
            cluster,
            local: idx == 0,
            configmap_copies: cm_copies,
            secret_copies,
            queue: queues[idx].clone(),
            ready: Ready(vec![cm_copies_ready, secret_copies_ready]),
        });
    }
    let reporter = Reporter {
        controller: "kubed-cross-sync".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(source.client.clone(), reporter);
    let ctx = Context::new(
        settings,
        args.create_namespaces,
        SourceStores {
            configmaps,
            secrets,
            namespaces,
            ready: Ready(vec![cm_ready, secrets_ready, ns_ready]),
        },
        targets,
        source.context.clone(),
        broken,
        recorder,
        rt.hooks.clone(),
        rt.writer,
    );
    Ok((Arc::new(ctx), rx))
}

/// Waits until the source caches and target `idx`'s copy caches hold a full list.
async fn ready(ctx: &Context, idx: usize) -> bool {
    let t = &ctx.targets[idx];
    ctx.sources.ready.wait().await && t.ready.wait().await
}

/// Marks the key done at the end of a worker's iteration, after any requeue.
struct Done<'a>(&'a Queue, SourceKey);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done(&self.1);
    }
}

/// Waits for target `idx`'s caches, queues the start-up sweep, and starts its workers.
async fn start_workers(ctx: Arc<Context>, idx: usize, workers: u16) {
    let t = &ctx.targets[idx];
    let cluster = t.cluster.context.clone();
    if !ready(&ctx, idx).await {
        tracing::error!(cluster = %cluster, "cache writer dropped; workers not started");
        return;
    }
    // Start-up sweep: every source and every copy's origin, so orphans made while we were
    // down are deleted.
    t.queue.sweep(ctx.sweep_keys(idx, &ctx.source_keys()));
    tracing::info!(cluster = %cluster, queued = t.queue.len(), workers, "caches ready, syncing");
    for _ in 0..workers {
        tokio::spawn(worker(ctx.clone(), idx));
    }
}

async fn worker(ctx: Arc<Context>, idx: usize) {
    let t = &ctx.targets[idx];
    let cluster = t.cluster.context.clone();
    // Consecutive cluster-level failures: while it is non-zero the cluster is treated as down.
    let mut outage = 0u32;
    loop {
        let key = t.queue.next().await;
        let result = ctx.reconcile(idx, &key).await;
        // Dropped after the requeue below, so another worker never sees a half-finished key.
        let _done = Done(&t.queue, key.clone());
        if result.as_ref().is_ok_and(|_| outage > 0) {
            tracing::info!(cluster = %cluster, queued = t.queue.len(), "context answers again, resuming its queue");
            outage = 0;
        }
        match result {
            Ok(Outcome::Done { converged }) => {
                t.queue.forget(&key);
                ctx.hooks.reconciled(&cluster, converged);
            }
            Ok(Outcome::RetryAfter(d)) => {
                t.queue.add_after(key, d);
                ctx.hooks.reconciled(&cluster, false);
            }
            Err(e) if e.is_outage() => {
                // The cluster failed, not the key: retry the key soon, and pause the whole queue
                // so that an outage costs one request per pause rather than one per key. The
                // next attempt after the pause is the probe that ends the outage.
                outage = outage.saturating_add(1);
                let retry_in = t.queue.retry_outage(key.clone());
                let pause = queue::outage_pause(outage);
                ctx.hooks.error(&cluster, e.category());
                ctx.hooks.reconciled(&cluster, false);
                if outage == 1 {
                    tracing::warn!(cluster = %cluster, source = %key, category = e.category(), error = %chain(&e), "context unavailable, pausing its queue");
                } else {
                    tracing::debug!(cluster = %cluster, source = %key, category = e.category(), retry_in = ?retry_in, pause = ?pause, error = %chain(&e), "context still unavailable");
                }
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                let delay = t.queue.retry(key.clone());
                ctx.hooks.error(&cluster, e.category());
                ctx.hooks.reconciled(&cluster, false);
                tracing::warn!(cluster = %cluster, source = %key, category = e.category(), retry_in = ?delay, error = %chain(&e), "reconcile failed");
            }
        }
    }
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: SyncArgs, rt: Runtime) -> Result<(), StartError> {
    let (ctx, mut rx) = start(&args, &rt).await?;
    rt.hooks.started(&ctx);
    if let Some(mut leader) = rt.leader.clone() {
        tracing::info!("standby: caches run, waiting for the leader lease before writing");
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { return Err(StartError::LeaseLost) },
            _ = shutdown() => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
        tracing::info!("leader lease acquired, syncing");
    }
    let lost = {
        let leader = rt.leader.clone();
        async move {
            match leader {
                Some(mut l) => {
                    let _ = l.wait_for(|l| !*l).await;
                }
                None => std::future::pending().await,
            }
        }
    };
    tokio::pin!(lost);
    for idx in 0..ctx.targets.len() {
        tokio::spawn(start_workers(ctx.clone(), idx, args.workers));
    }
    let mut tick = tokio::time::interval(args.resync_period);
    tick.tick().await; // the first tick is immediate; the start-up sweep covers it
    // A sweep of the targets named by `first` and by every request already waiting (a re-list
    // of the namespaces asks once per namespace): the source keys are listed once for all.
    let sweep = |first: Resync, rx: &mut mpsc::UnboundedReceiver<Resync>| {
        let mut idxs = BTreeSet::new();
        let mut add = |which| match which {
            Resync::All => idxs.extend(0..ctx.targets.len()),
            Resync::One(i) => {
                idxs.insert(i);
            }
        };
        add(first);
        while let Ok(which) = rx.try_recv() {
            add(which);
        }
        let sources = ctx.source_keys();
        for i in idxs {
            if let Some(t) = ctx.targets.get(i) {
                t.queue.sweep(ctx.sweep_keys(i, &sources));
            }
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tracing::debug!("periodic resync");
                sweep(Resync::All, &mut rx);
            }
            Some(which) = rx.recv() => sweep(which, &mut rx),
            _ = &mut lost => {
                tracing::error!("leader lease lost, stopping");
                return Err(StartError::LeaseLost);
            }
            _ = shutdown() => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

async fn shutdown() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// One pass over every source and copy in every cluster; `Ok(true)` when all converged.
pub async fn once(args: SyncArgs, writer: Writer) -> Result<bool, StartError> {
    let tally = Arc::new(Tally::default());
    let rt = Runtime {
        hooks: tally.clone(),
        writer,
        leader: None,
    };
    let (ctx, _rx) = start(&args, &rt).await?;
    let workers = args.workers;
    let passes = (0..ctx.targets.len()).map(|idx| {
        let ctx = ctx.clone();
        async move {
            let cluster = ctx.targets[idx].cluster.context.clone();
            if !matches!(tokio::time::timeout(ONCE_READY_TIMEOUT, ready(&ctx, idx)).await, Ok(true)) {
                tracing::error!(cluster = %cluster, "caches not ready in time");
                return false;
            }
            let keys = ctx.sweep_keys(idx, &ctx.source_keys());
            let results: Vec<bool> = futures::stream::iter(keys.iter().cloned())
                .map(|key| {
                    let (ctx, cluster) = (&ctx, &cluster);
                    async move {
                        match ctx.reconcile(idx, &key).await {
                            Ok(Outcome::Done { converged }) => converged,
                            Ok(Outcome::RetryAfter(_)) => false,
                            Err(e) => {
                                tracing::warn!(cluster = %cluster, source = %key, category = e.category(), error = %chain(&e), "reconcile failed");
                                false
                            }
                        }
                    }
                })
                .buffer_unordered(usize::from(workers))
                .collect()
                .await;
            results.iter().all(|c| *c)
        }
    });
    let results = futures::future::join_all(passes).await;
    let ok = results.iter().all(|c| *c);
    eprintln!(
        "sync-daemon once: {} cluster(s), {} converged; writes={} conflicts={} problems={} errors={}",
        results.len(),
        results.iter().filter(|c| **c).count(),
        Tally::get(&tally.writes),
        Tally::get(&tally.conflicts),
        Tally::get(&tally.problems),
        Tally::get(&tally.errors),
    );
    Ok(ok)
}
