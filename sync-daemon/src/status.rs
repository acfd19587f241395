//! `sync-daemon status`: a read-only report, for every source × target, of one state:
//! in-sync, drifted, missing, conflict, target-unreachable, skipped. It lists and GETs (no
//! watches, no writes) and reuses the daemon's pure planner, so it judges exactly as `run` does.
use crate::annotations as ann;
use crate::clusters::{self, Cluster};
use crate::desired::{self, Action, NamespaceView, NotSource, ObjectView, Settings, Target};
use crate::error::chain;
use crate::kinds::{self, Syncable};
use crate::runner::DEFAULT_SKIPPED_SECRET_TYPES;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Kubeconfig whose contexts are the source cluster and the followers
    #[arg(long, env = "KUBECONFIG_FILE")]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace whose ConfigMaps/Secrets are sources (all namespaces when unset)
    #[arg(long, env = "CONFIG_SOURCE_NAMESPACE")]
    pub config_source_namespace: Option<String>,
    /// Name of the source cluster, as in the copies' `kubed.appscode.com/origin.cluster` label
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Context of --kubeconfig-file that is the source cluster (default: its current-context)
    #[arg(long)]
    pub source_context: Option<String>,
    /// Secret types to report although skipped by default
    #[arg(long, value_delimiter = ',')]
    pub include_secret_types: Vec<String>,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    TargetUnreachable,
    Conflict,
    Missing,
    Drifted,
    Skipped,
    InSync,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InSync => "in-sync",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Conflict => "conflict",
            State::TargetUnreachable => "target-unreachable",
            State::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kind: &'static str,
    pub source_namespace: String,
    pub name: String,
    pub context: String,
    pub namespace: String,
    pub state: State,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Clusters(#[from] clusters::ClusterError),
    #[error("--cluster-name is required with --kubeconfig-file")]
    MissingClusterName,
    #[error("cannot list sources in the source cluster (context {context})")]
    ListSources {
        context: String,
        #[source]
        source: kube::Error,
    },
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

/// The state of one planned action.
pub fn state_of(a: &Action) -> (State, String) {
    match a {
        Action::Noop { .. } => (State::InSync, String::new()),
        Action::Create(_) => (State::Missing, "no copy".into()),
        Action::Update { .. } => (State::Drifted, "copy differs from source".into()),
        Action::Recreate { .. } => (State::Drifted, "copy must be re-created".into()),
        Action::Delete { .. } => (State::Drifted, "stale copy, to be deleted".into()),
        Action::Conflict { reason, .. } => (State::Conflict, reason.clone()),
    }
}

async fn list<K: Syncable>(c: &Cluster, ns: Option<&str>) -> Result<Vec<K>, kube::Error> {
    let api: Api<K> = match ns {
        Some(ns) => Api::namespaced(c.client.clone(), ns),
        None => Api::all(c.client.clone()),
    };
    Ok(api.list(&ListParams::default()).await?.items)
}

/// Rows for one source kind in one target cluster.
async fn rows_for<K: Syncable>(
    sources: &[ObjectView],
    target: &Cluster,
    local_ns: Option<&[NamespaceView]>,
    s: &Settings,
    out: &mut Vec<Row>,
) {
    let t = match local_ns {
        Some(namespaces) => Target::Local { namespaces },
        None => Target::Context {
            context: &target.context,
            namespace: target.namespace.as_deref(),
        },
    };
    for src in sources {
        let row = |namespace: &str, state: State, detail: String| Row {
            kind: K::KIND.as_str(),
            source_namespace: src.namespace.clone(),
            name: src.name.clone(),
            context: target.context.clone(),
            namespace: namespace.to_string(),
            state,
            detail,
        };
        let source = match desired::classify(src, s) {
            Ok(x) => x,
            Err(NotSource::NoSyncKeys | NotSource::OwnCopy) => continue,
            Err(why) => {
                if local_ns.is_some() {
                    out.push(row("*", State::Skipped, skip_reason(&why)));
                }
                continue;
            }
        };
        let wanted = desired::target_namespaces(&source, &t);
        // Managed copies anywhere in this cluster (to find stale ones) and the named objects.
        let sel = ann::origin_labels(&src.name, &src.namespace, &s.cluster_name)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let api: Api<K> = Api::all(target.client.clone());
        let copies: Vec<ObjectView> = match api.list(&ListParams::default().labels(&sel)).await {
            Ok(l) => l.items.iter().map(kinds::view).collect(),
            Err(e) => {
                for ns in &wanted {
                    out.push(row(ns, State::TargetUnreachable, chain(&e)));
                }
                continue;
            }
        };
        let mut others = BTreeMap::new();
        let mut missing_ns = BTreeSet::new();
        for ns in wanted
            .iter()
            .filter(|ns| !copies.iter().any(|c| &c.namespace == *ns))
        {
            let api: Api<K> = Api::namespaced(target.client.clone(), ns);
            match api.get_opt(&src.name).await {
                Ok(Some(o)) => {
                    others.insert(ns.clone(), kinds::view(&o));
                }
                Ok(None) => {
                    let nsapi: Api<Namespace> = Api::all(target.client.clone());
                    if let Ok(None) = nsapi.get_opt(ns).await {
                        missing_ns.insert(ns.clone());
                    }
                }
                Err(e) => {
                    out.push(row(ns, State::TargetUnreachable, chain(&e)));
                }
            }
        }
        let refs: Vec<&ObjectView> = copies.iter().collect();
        for a in desired::plan(Some(&source), &t, &refs, &others, s) {
            let ns = match &a {
                Action::Create(d)
                | Action::Update { desired: d, .. }
                | Action::Recreate { desired: d, .. } => d.namespace.clone(),
                Action::Delete { namespace, .. }
                | Action::Conflict { namespace, .. }
                | Action::Noop { namespace } => namespace.clone(),
            };
            let (state, mut detail) = state_of(&a);
            if missing_ns.contains(&ns) {
                detail = "target namespace does not exist".into();
            }
            out.push(row(&ns, state, detail));
        }
    }
}

/// Builds every row; errors only when the source cluster cannot be read.
pub async fn collect(a: &StatusArgs) -> Result<Vec<Row>, StatusError> {
    let cluster_name = match (&a.cluster_name, &a.kubeconfig_file) {
        (Some(n), _) => n.clone(),
        (None, Some(_)) => return Err(StatusError::MissingClusterName),
        (None, None) => String::new(),
    };
    let cl = clusters::load(a.kubeconfig_file.as_deref(), a.source_context.as_deref()).await?;
    let s = Settings {
        cluster_name,
        skipped_secret_types: DEFAULT_SKIPPED_SECRET_TYPES
            .iter()
            .map(|t| t.to_string())
            .filter(|t| !a.include_secret_types.contains(t))
            .collect(),
        adopt_existing: false,
    };
    let src_ns = a.config_source_namespace.as_deref();
    let list_err = |source| StatusError::ListSources {
        context: cl.source.context.clone(),
        source,
    };
    let keep = |v: &ObjectView| ann::has_sync_keys(&v.annotations);
    let cms: Vec<ObjectView> = list::<ConfigMap>(&cl.source, src_ns)
        .await
        .map_err(list_err)?
        .iter()
        .map(kinds::view)
        .filter(keep)
        .collect();
    let secrets: Vec<ObjectView> = list::<Secret>(&cl.source, src_ns)
        .await
        .map_err(list_err)?
        .iter()
        .map(kinds::view)
        .filter(keep)
        .collect();
    let namespaces: Vec<NamespaceView> = Api::<Namespace>::all(cl.source.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(list_err)?
        .items
        .iter()
        .map(|n| NamespaceView {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            terminating: n.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    let mut rows = Vec::new();
    for (i, target) in cl.all().enumerate() {
        let local = (i == 0).then_some(namespaces.as_slice());
        let reachable = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, target.client.apiserver_version()).await,
            Ok(Ok(_))
        );
        if !reachable {
            // One row per wanted (source, namespace) there, without asking the dead cluster.
            for src in cms.iter().chain(secrets.iter()) {
                let Ok(source) = desired::classify(src, &s) else {
                    continue;
                };
                let t = match local {
                    Some(namespaces) => Target::Local { namespaces },
                    None => Target::Context {
                        context: &target.context,
                        namespace: target.namespace.as_deref(),
                    },
                };
                for ns in desired::target_namespaces(&source, &t) {
                    rows.push(Row {
                        kind: src.kind().as_str(),
                        source_namespace: src.namespace.clone(),
                        name: src.name.clone(),
                        context: target.context.clone(),
                        namespace: ns,
                        state: State::TargetUnreachable,
                        detail: "API server did not answer".into(),
                    });
                }
            }
            continue;
        }
        rows_for::<ConfigMap>(&cms, target, local, &s, &mut rows).await;
        rows_for::<Secret>(&secrets, target, local, &s, &mut rows).await;
    }
    // Contexts that could not even be built, when a source names them.
    for (ctx, why) in &cl.broken {
        for src in cms.iter().chain(secrets.iter()) {
            let Ok(source) = desired::classify(src, &s) else {
                continue;
            };
            if source.spec.contexts.iter().any(|c| &c.context == ctx) {
                rows.push(Row {
                    kind: src.kind().as_str(),
                    source_namespace: src.namespace.clone(),
                    name: src.name.clone(),
                    context: ctx.clone(),
                    namespace: "*".into(),
                    state: State::TargetUnreachable,
                    detail: why.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        (
            a.state,
            &a.source_namespace,
            &a.name,
            a.kind,
            &a.context,
            &a.namespace,
        )
            .cmp(&(
                b.state,
                &b.source_namespace,
                &b.name,
                b.kind,
                &b.context,
                &b.namespace,
            ))
    });
    Ok(rows)
}

/// Problems first, then a one-line summary.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "STATE",
        "KIND",
        "SOURCE",
        "CONTEXT",
        "TARGET NAMESPACE",
        "DETAIL",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.state.as_str().to_string(),
                r.kind.to_string(),
                format!("{}/{}", r.source_namespace, r.name),
                r.context.clone(),
                r.namespace.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            width[i] = width[i].max(v.len());
        }
    }
    let line = |c: &[&str]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i + 1 == c.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head);
    for c in &cells {
        out += &line(&c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out += &summary(rows);
    out
}

pub fn summary(rows: &[Row]) -> String {
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.state).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    format!(
        "\n{} copies: {}\n",
        rows.len(),
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// `true` when every row is in-sync or skipped.
pub fn healthy(rows: &[Row]) -> bool {
    rows.iter()
        .all(|r| matches!(r.state, State::InSync | State::Skipped))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::desired::Kind;

    fn row(state: State) -> Row {
        Row {
            kind: Kind::ConfigMap.as_str(),
            source_namespace: "prod".into(),
            name: "cfg".into(),
            context: "mc-project-k8s".into(),
            namespace: "prod".into(),
            state,
            detail: String::new(),
        }
    }

    #[test]
    fn table_and_json() {
        let rows = vec![row(State::Conflict), row(State::InSync)];
        let t = table(&rows);
        assert!(t.starts_with("STATE"), "{t}");
        assert!(t.contains("conflict"));
        assert!(t.contains("2 copies: 1 conflict, 1 in-sync"), "{t}");
        let j = serde_json::to_value(&rows).unwrap();
        assert_eq!(j[0]["state"], "conflict");
        assert!(!healthy(&rows));
    }
}
