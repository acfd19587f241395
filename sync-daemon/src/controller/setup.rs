//! Start-up wiring of the controller: the clusters from the kubeconfig, the source caches whose
//! events queue keys in every target, one copy cache and queue per target cluster, the Event
//! sink; all in one [`Context`].
use crate::cache::{Copies, CopyEvents, SourceEvents, Sources};
use crate::clusters::{self, Cluster, Clusters};
use crate::controller::context::{Context, Names, TargetCluster, Targets};
use crate::controller::queue::Queue;
use crate::controller::writer::Writer;
use crate::controller::{Config, Runtime, StartError, cluster_name, skipped_secret_types};
use crate::ops::events::EventSink;
use crate::plan::{Scope, Settings, SourceKey};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

pub use crate::controller::context::Resync;

/// Builds clients, caches and the shared context; starts the watches. The receiver hears the
/// sweeps the watches ask for (a completed re-list, a namespace change).
pub async fn start(
    cfg: &Config,
    rt: &Runtime,
) -> Result<(Arc<Context>, mpsc::UnboundedReceiver<Resync>), StartError> {
    let cluster_name = cluster_name(cfg.cluster_name.as_deref(), cfg.kubeconfig_file.as_deref())?;
    let Clusters {
        source,
        followers,
        broken,
    } = clusters::load(
        cfg.kubeconfig_file.as_deref(),
        cfg.source_context.as_deref(),
    )
    .await?;
    for (context, why) in &broken {
        tracing::warn!(context = %context, error = %why, "context skipped: cannot build a client");
    }
    let skipped = skipped_secret_types(&cfg.include_secret_types);
    let (tx, rx) = mpsc::unbounded_channel();
    let targets = Arc::new(Targets::default());
    let request = |which: Resync| {
        let tx = tx.clone();
        move || {
            let _ = tx.send(which);
        }
    };
    let source_events = SourceEvents {
        // A source change concerns every cluster: its copies may live anywhere.
        source: {
            let (targets, hooks) = (targets.clone(), rt.hooks.clone());
            Arc::new(move |key: &SourceKey, rv: Option<&str>| {
                hooks.source_seen(key, rv);
                targets.each_queue(|q| q.add(key.clone()))
            })
        },
        // A namespace change can alter any selector's result: sweep the local queue.
        namespace: Arc::new(request(Resync::One(0))),
        relist: Arc::new(request(Resync::All)),
    };
    let sources = Sources::watch(
        &source.watch_client,
        &source.context,
        cfg.source_namespace.as_deref(),
        &skipped,
        !cfg.local_scope.is_nothing(),
        source_events,
    );
    let selector = Copies::selector(&cluster_name, cfg.source_namespace.as_deref());
    let source_context = source.context.clone();
    let events = EventSink::new(source.client.clone(), rt.dry_run, rt.writing.clone());
    for (idx, cluster) in std::iter::once(source).chain(followers).enumerate() {
        let scope = match idx {
            0 => &cfg.local_scope,
            _ => &cfg.follower_scope,
        };
        targets.push(target(cluster, idx, &cluster_name, &selector, scope, &tx));
    }
    let names = Names::of(&source_context, broken, &targets);
    let ctx = Context {
        settings: Settings {
            cluster_name,
            skipped_secret_types: skipped,
            adopt_existing: cfg.adopt_existing,
            previous_cluster_names: cfg.previous_cluster_names.clone(),
            metadata: cfg.metadata.clone(),
            follower_scope: cfg.follower_scope.clone(),
            local_scope: cfg.local_scope.clone(),
        },
        create_namespaces: cfg.create_namespaces,
        sources,
        targets,
        names: RwLock::new(Arc::new(names)),
        selector,
        resync: tx,
        events,
        hooks: rt.hooks.clone(),
        writer: Writer {
            dry_run: rt.dry_run,
        },
        reported: Default::default(),
        payloads: Default::default(),
    };
    Ok((Arc::new(ctx), rx))
}

/// Target cluster `idx` (0: the source cluster): its copy caches, watching, and its queue.
pub(crate) fn target(
    cluster: Cluster,
    idx: usize,
    cluster_name: &str,
    selector: &str,
    scope: &Scope,
    tx: &mpsc::UnboundedSender<Resync>,
) -> TargetCluster {
    let queue = Arc::new(Queue::default());
    let q = queue.clone();
    let tx = tx.clone();
    let copies = Copies::watch(
        &cluster.watch_client,
        &cluster.context,
        idx != 0,
        cluster_name,
        selector,
        scope,
        CopyEvents {
            copy: Arc::new(move |key: SourceKey| q.add(key)),
            relist: Arc::new(move || {
                let _ = tx.send(Resync::One(idx));
            }),
        },
    );
    TargetCluster::new(cluster, idx == 0, copies, queue)
}
