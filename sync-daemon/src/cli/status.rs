//! `sync-daemon status`: a read-only report, for every source × target namespace, of one state
//! (in-sync, drifted, missing, conflict, target-unreachable, skipped). It lists and GETs (no
//! watches, no writes) and plans with the daemon's own planner, as `run` does: the same wanted
//! namespaces (every context of a cluster included), the same copy summaries (one list per kind
//! fed through the copy cache), the same reads by name, the same actions.
use crate::cache::Copies;
use crate::cache::copies::CopyCache;
use crate::cli::args::{ClusterArgs, Output, StatusArgs};
use crate::cli::table::{self, Row, State, state_of};
use crate::cli::{exit, fail};
use crate::clusters::{self, Cluster};
use crate::controller::{self, StartError};
use crate::plan::annotations as ann;
use crate::plan::objects::{self, Syncable, namespace_view};
use crate::plan::policy;
use crate::plan::summary::{CopySummary, Missing};
use crate::plan::wanted::wanted_through;
use crate::plan::{
    Contexts, KeyPlan, Kind, NamespaceView, NotSource, ObjectView, Scope, Settings, Target,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// How long the first request to a target may take: connecting is bounded at 5 s by the
/// client, but it may first run an exec credential plugin (an STS round trip or two).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn status(a: StatusArgs) -> ExitCode {
    let rows = match collect(&a.cluster).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match a.output {
        Output::Table => print!("{}", table::table(&rows)),
        Output::Json => println!("{:#}", table::json(&rows)),
    }
    match table::healthy(&rows) {
        true => exit::code(exit::OK),
        false => exit::code(exit::NOT_CONVERGED),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot list sources in the source cluster (context {context})")]
    ListSources {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl From<clusters::ClusterError> for StatusError {
    fn from(e: clusters::ClusterError) -> Self {
        StatusError::Start(StartError::Clusters(e))
    }
}

/// What status read from the source cluster.
struct World {
    settings: Settings,
    /// Objects with sync annotations, both kinds.
    sources: Vec<ObjectView>,
    namespaces: Vec<NamespaceView>,
    source_context: String,
    broken: Vec<(String, String)>,
    followers: Vec<String>,
    /// Our copies' label selector.
    selector: String,
}

impl World {
    fn contexts(&self) -> Contexts<'_> {
        Contexts {
            source: &self.source_context,
            broken: &self.broken,
            followers: &self.followers,
        }
    }

    /// `follower_ns`: the follower's namespaces (read only when a source picks them).
    fn target<'a>(
        &'a self,
        c: &'a Cluster,
        local: bool,
        follower_ns: &'a [NamespaceView],
    ) -> Target<'a> {
        match local {
            true => Target::Local {
                namespaces: &self.namespaces,
            },
            false => Target::Context {
                context: &c.context,
                namespace: c.namespace.as_deref(),
                aliases: &c.aliases,
                namespaces: follower_ns,
            },
        }
    }
}

/// Builds every row; errors only when the source cluster cannot be read.
pub async fn collect(a: &ClusterArgs) -> Result<Vec<Row>, StatusError> {
    let cluster_name =
        controller::cluster_name(a.cluster_name.as_deref(), a.kubeconfig_file.as_deref())?;
    let cl = clusters::load(a.kubeconfig_file.as_deref(), a.source_context.as_deref()).await?;
    let world = read_source(&cl, a, cluster_name).await?;
    let mut rows = Vec::new();
    for (i, target) in cl.all().enumerate() {
        rows.extend(target_rows(&world, target, i == 0).await);
    }
    rows.extend(broken_rows(&world));
    table::sort(&mut rows);
    Ok(rows)
}

/// The sources and namespaces of the source cluster, and the settings `run` would use.
async fn read_source(
    cl: &clusters::Clusters,
    a: &ClusterArgs,
    cluster_name: String,
) -> Result<World, StatusError> {
    let list_err = |source| StatusError::ListSources {
        context: cl.source.context.clone(),
        source,
    };
    let ns = a.config_source_namespace.as_deref();
    let mut sources = list_views::<ConfigMap>(&cl.source, ns)
        .await
        .map_err(list_err)?;
    sources.extend(
        list_views::<Secret>(&cl.source, ns)
            .await
            .map_err(list_err)?,
    );
    sources.retain(|v| ann::has_sync_keys(&v.annotations));
    // Only intra-cluster selectors read them (and with --no-intra-cluster there may be no right).
    let namespaces = match a.no_intra_cluster {
        true => Vec::new(),
        false => list_namespaces(&cl.source, &Scope::Cluster)
            .await
            .map_err(list_err)?,
    };
    let followers = (cl.followers.iter())
        .flat_map(|f| {
            std::iter::once(f.context.clone()).chain(f.aliases.iter().map(|(n, _)| n.clone()))
        })
        .collect();
    Ok(World {
        selector: Copies::selector(&cluster_name, ns),
        settings: Settings {
            cluster_name,
            skipped_secret_types: controller::skipped_secret_types(&a.include_secret_types),
            adopt_existing: false,
            previous_cluster_names: a.previous_cluster_name.clone(),
            metadata: a.metadata_filter(),
            follower_scope: a.follower_scope(),
            local_scope: a.local_scope(),
        },
        sources,
        namespaces,
        source_context: cl.source.context.clone(),
        broken: cl.broken.clone(),
        followers,
    })
}

/// The namespaces of `c` in `scope`: listed, or (a namespace list) each read by name, as a
/// Role allows; one that is missing or refused is left out.
async fn list_namespaces(c: &Cluster, scope: &Scope) -> Result<Vec<NamespaceView>, kube::Error> {
    let api = Api::<Namespace>::all(c.client.clone());
    let Some(names) = scope.namespaces() else {
        let list = api.list(&ListParams::default()).await?;
        return Ok(list.items.iter().map(namespace_view).collect());
    };
    let mut out = Vec::new();
    for name in names {
        match api.get_opt(name).await {
            Ok(Some(ns)) => out.push(namespace_view(&ns)),
            Ok(None) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn list_views<K: Syncable>(
    c: &Cluster,
    ns: Option<&str>,
) -> Result<Vec<ObjectView>, kube::Error> {
    let api: Api<K> = match ns {
        Some(ns) => Api::namespaced(c.client.clone(), ns),
        None => Api::all(c.client.clone()),
    };
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(objects::view)
        .collect())
}

/// A row about `src` in `namespace` of `context`.
fn row(src: &ObjectView, context: &str, namespace: &str, state: State, detail: String) -> Row {
    Row {
        kind: src.kind().as_str(),
        source_namespace: src.namespace.clone(),
        name: src.name.clone(),
        context: context.to_string(),
        namespace: namespace.to_string(),
        state,
        policy: ann::parse(&src.annotations).0.policy.describe(),
        detail,
    }
}

/// One row per wanted namespace of every source: the cluster could not be asked.
fn unreachable_rows(w: &World, c: &Cluster, t: &Target<'_>, detail: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for src in &w.sources {
        let plan = KeyPlan::new(Some(src), t, &w.settings, &w.contexts());
        for ns in &plan.wanted {
            rows.push(row(
                src,
                &c.context,
                ns,
                State::TargetUnreachable,
                detail.to_string(),
            ));
        }
    }
    rows
}

/// The rows of one target cluster.
async fn target_rows(w: &World, c: &Cluster, local: bool) -> Vec<Row> {
    let down = match tokio::time::timeout(PROBE_TIMEOUT, c.client.apiserver_version()).await {
        Ok(Ok(_)) => None,
        // The cause: refused connection, TLS, a failed exec credential plugin, ...
        Ok(Err(e)) => Some(crate::chain(&e)),
        Err(_) => Some(format!(
            "API server did not answer within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    };
    let reachable = down.is_none();
    let picks_namespaces =
        (w.sources.iter()).any(|s| s.annotations.contains_key(policy::FOLLOWER_NAMESPACES));
    let follower_ns = match (local, reachable && picks_namespaces) {
        (false, true) => match list_namespaces(c, &w.settings.follower_scope).await {
            Ok(ns) => ns,
            Err(e) => {
                let t = w.target(c, local, &[]);
                return unreachable_rows(w, c, &t, &crate::chain(&e));
            }
        },
        _ => Vec::new(),
    };
    let t = w.target(c, local, &follower_ns);
    if let Some(why) = down {
        // Without asking the dead cluster anything more.
        return unreachable_rows(w, c, &t, &why);
    }
    let mut rows = Vec::new();
    for kind in [Kind::ConfigMap, Kind::Secret] {
        let scope = match local {
            true => &w.settings.local_scope,
            false => &w.settings.follower_scope,
        };
        let copies = match kind {
            Kind::ConfigMap => list_copies::<ConfigMap>(w, c, scope).await,
            Kind::Secret => list_copies::<Secret>(w, c, scope).await,
        };
        let copies = match copies {
            Ok(copies) => copies,
            Err(e) => {
                let of_kind = |r: &Row| r.kind == kind.as_str();
                let detail = crate::chain(&e);
                rows.extend(
                    unreachable_rows(w, c, &t, &detail)
                        .into_iter()
                        .filter(of_kind),
                );
                continue;
            }
        };
        for src in w.sources.iter().filter(|s| s.kind() == kind) {
            rows.extend(source_rows(w, c, &t, &copies, src).await);
        }
    }
    rows
}

/// Our copies of kind `K` in cluster `c` (in `scope`: cluster-wide, or in each listed namespace,
/// one that refuses us holding nothing we can see), summarised by the daemon's own copy cache.
async fn list_copies<K: Syncable>(
    w: &World,
    c: &Cluster,
    scope: &Scope,
) -> Result<CopyCache, kube::Error> {
    let lp = ListParams::default().labels(&w.selector);
    // Metadata only, as the daemon's copy watch (the summary needs nothing else).
    let items = match scope.namespaces() {
        None => {
            Api::<K>::all(c.client.clone())
                .list_metadata(&lp)
                .await?
                .items
        }
        Some(names) => {
            let mut items = Vec::new();
            for ns in names {
                match Api::<K>::namespaced(c.client.clone(), ns)
                    .list_metadata(&lp)
                    .await
                {
                    Ok(list) => items.extend(list.items),
                    Err(kube::Error::Api(s)) if s.code == 403 => {}
                    Err(e) => return Err(e),
                }
            }
            items
        }
    };
    let cache = CopyCache::new(&w.settings.cluster_name);
    cache.load(items);
    Ok(cache)
}

/// The rows of one source in one target: planned exactly as a reconcile plans it.
async fn source_rows(
    w: &World,
    c: &Cluster,
    t: &Target<'_>,
    copies: &CopyCache,
    src: &ObjectView,
) -> Vec<Row> {
    let s = &w.settings;
    let plan = KeyPlan::new(Some(src), t, s, &w.contexts());
    let mut rows = problem_rows(w, src, &plan);
    match &plan.not_source {
        None => {}
        // Its problem row says why.
        Some(NotSource::NoSyncKeys | NotSource::OwnCopy | NotSource::NameTooLong) => return rows,
        Some(why) if matches!(t, Target::Local { .. }) => {
            rows.push(row(src, &c.context, "*", State::Skipped, skip_reason(why)));
            return rows;
        }
        Some(_) => return rows,
    }
    let summaries = copies.copies_of(&src.namespace, &src.name);
    let refs: Vec<&CopySummary> = summaries.iter().collect();
    let mut read = BTreeMap::new();
    let mut missing_ns = Vec::new();
    for ns in plan.to_read(&refs, s, Missing::Read) {
        match get_view(c, src, &ns).await {
            Ok(found) => {
                if found.is_none() && namespace_missing(c, &ns).await {
                    missing_ns.push(ns.clone());
                }
                read.insert(ns, found);
            }
            Err(e) => rows.push(row(
                src,
                &c.context,
                &ns,
                State::TargetUnreachable,
                crate::chain(&e),
            )),
        }
    }
    let unread = |ns: &str| rows.iter().any(|r| r.namespace == ns);
    let actions = plan.actions(&refs, &read, s);
    let mut out: Vec<Row> = Vec::new();
    for a in actions.iter().filter(|a| !unread(a.namespace())) {
        let ns = a.namespace();
        let (state, mut detail) = state_of(a);
        if missing_ns.iter().any(|m| m == ns) {
            detail = "target namespace does not exist".into();
        }
        let context = (plan.source.as_ref())
            .and_then(|src| wanted_through(src, t, ns))
            .unwrap_or(&c.context);
        out.push(row(src, context, ns, state, detail));
    }
    rows.extend(out);
    rows
}

/// One `invalid` row per problem the daemon reports on `src` as a Warning Event (planned for
/// the source cluster's own target only, so once). A context that cannot be built has its own
/// `target-unreachable` row instead (see [`broken_rows`]).
fn problem_rows(w: &World, src: &ObjectView, plan: &KeyPlan<'_>) -> Vec<Row> {
    let broken = |ctx: &str| w.broken.iter().any(|(b, _)| b == ctx);
    (plan.problems.iter())
        .filter(|p| !p.context.as_deref().is_some_and(broken))
        .map(|p| {
            let ctx = p.context.as_deref().unwrap_or("*");
            let detail = format!("{}: {}", p.reason, p.note);
            row(src, ctx, "*", State::Invalid, detail)
        })
        .collect()
}

/// The object named like `src` in namespace `ns` of `c`, as the planner sees it.
async fn get_view(
    c: &Cluster,
    src: &ObjectView,
    ns: &str,
) -> Result<Option<ObjectView>, kube::Error> {
    match src.kind() {
        Kind::ConfigMap => get_one::<ConfigMap>(c, ns, &src.name).await,
        Kind::Secret => get_one::<Secret>(c, ns, &src.name).await,
    }
}

async fn get_one<K: Syncable>(
    c: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectView>, kube::Error> {
    let api: Api<K> = Api::namespaced(c.client.clone(), ns);
    Ok(api.get_opt(name).await?.as_ref().map(objects::view))
}

async fn namespace_missing(c: &Cluster, ns: &str) -> bool {
    let api: Api<Namespace> = Api::all(c.client.clone());
    matches!(api.get_opt(ns).await, Ok(None))
}

fn skip_reason(why: &NotSource) -> String {
    match why {
        NotSource::SkippedSecretType(t) => {
            format!("Secret type {t} is skipped (see --include-secret-types)")
        }
        NotSource::NameTooLong => "name longer than 63 characters".into(),
        NotSource::Deleting => "source is being deleted".into(),
        NotSource::NoSyncKeys | NotSource::OwnCopy => "not a source".into(),
    }
}

/// Contexts that could not even be built, when a source names them.
fn broken_rows(w: &World) -> Vec<Row> {
    let mut rows = Vec::new();
    for (ctx, why) in &w.broken {
        for src in &w.sources {
            let (spec, _) = ann::parse(&src.annotations);
            let names_it = spec.contexts.iter().any(|c| c.may_name(ctx));
            let is_source = crate::plan::source::classify(src, &w.settings).is_ok();
            if names_it && is_source {
                rows.push(row(src, ctx, "*", State::TargetUnreachable, why.clone()));
            }
        }
    }
    rows
}
