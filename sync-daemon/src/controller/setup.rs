//! Start-up wiring of the controller: the clusters from the kubeconfig, the source caches whose
//! events queue keys in every target, one copy cache and queue per target cluster, the Event
//! sink; all in one [`Context`].
use crate::cache::{Copies, SourceEvents, Sources};
use crate::clusters::{self, Clusters};
use crate::controller::context::{Context, TargetCluster};
use crate::controller::queue::Queue;
use crate::controller::writer::Writer;
use crate::controller::{Config, Runtime, StartError, cluster_name, skipped_secret_types};
use crate::ops::events::EventSink;
use crate::plan::{Settings, SourceKey};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which queue(s) a watch event or resync request concerns.
#[derive(Debug, Clone, Copy)]
pub enum Resync {
    All,
    One(usize),
}

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
    let skipped = skipped_secret_types(&cfg.include_secret_types);
    let (tx, rx) = mpsc::unbounded_channel();
    let all: Vec<_> = std::iter::once(&source)
        .chain(followers.iter())
        .cloned()
        .collect();
    let queues: Arc<Vec<Arc<Queue>>> =
        Arc::new(all.iter().map(|_| Arc::new(Queue::default())).collect());
    let request = |which: Resync| {
        let tx = tx.clone();
        move || {
            let _ = tx.send(which);
        }
    };
    let source_events = SourceEvents {
        // A source change concerns every cluster: its copies may live anywhere.
        source: {
            let (queues, hooks) = (queues.clone(), rt.hooks.clone());
            Arc::new(move |key: &SourceKey, rv: Option<&str>| {
                hooks.source_seen(key, rv);
                queues.iter().for_each(|q| q.add(key.clone()))
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
        source_events,
    );
    let selector = Copies::selector(&cluster_name, cfg.source_namespace.as_deref());
    let mut targets = Vec::new();
    for (idx, cluster) in all.into_iter().enumerate() {
        let q = queues[idx].clone();
        let copies = Copies::watch(
            &cluster.watch_client,
            &cluster.context,
            idx != 0,
            &cluster_name,
            &selector,
            Arc::new(move |key: SourceKey| q.add(key)),
            Arc::new(request(Resync::One(idx))),
        );
        targets.push(TargetCluster {
            cluster,
            local: idx == 0,
            copies,
            queue: queues[idx].clone(),
        });
    }
    let follower_contexts = (targets.iter().filter(|t| !t.local))
        .flat_map(|t| {
            std::iter::once(t.cluster.context.clone())
                .chain(t.cluster.aliases.iter().map(|(n, _)| n.clone()))
        })
        .collect();
    let ctx = Context {
        settings: Settings {
            cluster_name,
            skipped_secret_types: skipped,
            adopt_existing: cfg.adopt_existing,
            metadata: cfg.metadata.clone(),
        },
        create_namespaces: cfg.create_namespaces,
        sources,
        targets,
        source_context: source.context.clone(),
        broken_contexts: broken,
        follower_contexts,
        events: EventSink::new(source.client.clone(), rt.dry_run, rt.writing.clone()),
        hooks: rt.hooks.clone(),
        writer: Writer {
            dry_run: rt.dry_run,
        },
        reported: Default::default(),
    };
    Ok((Arc::new(ctx), rx))
}
