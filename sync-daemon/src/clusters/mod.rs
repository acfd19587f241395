//! Kubeconfig contexts → one kube client pair per cluster: the source cluster (chosen by
//! --source-context or current-context) and the followers; refuses a follower that is the source.
pub mod client;
pub mod exec;
pub mod identity;
pub mod kubeconfig;
pub mod ratelimit;
pub mod reauth;

/// Sends `req` through a layer's inner service shared behind a lock (the layers' services are
/// cloned per request; the inner one is not): readiness, then the call, with the lock held only
/// until the request is handed over.
pub(crate) async fn send<S, Req>(
    inner: &std::sync::Arc<tokio::sync::Mutex<S>>,
    req: Req,
) -> Result<S::Response, tower::BoxError>
where
    S: tower::Service<Req>,
    S::Error: Into<tower::BoxError>,
{
    let fut = {
        let mut svc = inner.lock().await;
        futures::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        svc.call(req)
    };
    fut.await.map_err(Into::into)
}

pub use kubeconfig::{normalise_server, source_context};

use client::clients;
use identity::Identity;
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kubeconfig::server_of;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read kubeconfig file {path}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig file {0} has no current-context and --source-context is not given")]
    NoSourceContext(PathBuf),
    #[error("source context {0:?} is not in the kubeconfig file")]
    UnknownSourceContext(String),
    #[error(
        "context {other:?} points at the source cluster of context {source_context:?} ({server}); \
         refusing to start, since it would sync the source onto itself or reverse the sync"
    )]
    SourceIsTarget {
        source_context: String,
        other: String,
        server: String,
    },
    #[error("cannot build a client for context {context:?}")]
    Build {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One cluster reached through a context (or in-cluster).
#[derive(Clone)]
pub struct Cluster {
    /// The context name (`in-cluster` without a kubeconfig file).
    pub context: String,
    /// The context's `namespace`: the default target namespace there (kubed's rule).
    pub namespace: Option<String>,
    /// Other contexts reaching the same server, with their namespaces: one cluster, one client,
    /// one copy cache, so copies made through one alias are never orphans of another.
    pub aliases: Vec<(String, Option<String>)>,
    /// For requests (short timeouts).
    pub client: Client,
    /// For long-running watches.
    pub watch_client: Client,
    /// A digest of the kubeconfig entries this cluster was built from (its contexts, their
    /// cluster and user entries): a reload rebuilds the cluster only when it changes.
    pub fingerprint: String,
    /// What the cluster is (the uid of its kube-system namespace), when it could be read.
    pub identity: Identity,
    /// The context's server, normalised (`None` in-cluster).
    pub server: Option<String>,
}

impl Cluster {
    /// Whether the identity is still to be read (see [`identity::pending`]).
    pub fn identity_pending(&self) -> bool {
        self.identity == Identity::Unknown && identity::pending(self.server.as_deref())
    }
}

pub struct Clusters {
    pub source: Cluster,
    pub followers: Vec<Cluster>,
    /// Contexts that could not be built (context, reason): logged, and reported when named.
    pub broken: Vec<(String, String)>,
}

impl Clusters {
    /// Every cluster with a work queue: the source first (intra-cluster copies), then followers.
    pub fn all(&self) -> impl Iterator<Item = &Cluster> {
        std::iter::once(&self.source).chain(self.followers.iter())
    }
}

/// `scheme://host:port` with the default port filled in, host lowercased, path and trailing `/`
async fn context_cluster(kc: &Kubeconfig, name: &str) -> Result<Cluster, ClusterError> {
    let opts = KubeConfigOptions {
        context: Some(name.to_string()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kc.clone(), &opts)
        .await
        .map_err(|e| ClusterError::Build {
            context: name.to_string(),
            source: Box::new(e),
        })?;
    let namespace = kc
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone());
    let (client, watch_client) = clients(config, name)?;
    Ok(Cluster {
        context: name.to_string(),
        namespace,
        aliases: Vec::new(),
        client,
        watch_client,
        fingerprint: fingerprint(kc, &[name]),
        identity: Identity::Unknown,
        server: server_of(kc, name),
    })
}

/// Builds every cluster. Without a kubeconfig file: in-cluster (or the ambient kubeconfig) only.
pub async fn load(
    kubeconfig_file: Option<&Path>,
    source_context_flag: Option<&str>,
) -> Result<Clusters, ClusterError> {
    let Some(path) = kubeconfig_file else {
        let config = Config::infer().await.map_err(|e| ClusterError::Build {
            context: "in-cluster".into(),
            source: Box::new(e),
        })?;
        let (client, watch_client) = clients(config, "in-cluster")?;
        return Ok(Clusters {
            source: Cluster {
                context: "in-cluster".into(),
                namespace: None,
                aliases: Vec::new(),
                client,
                watch_client,
                fingerprint: String::new(),
                identity: Identity::Unknown,
                server: None,
            },
            followers: Vec::new(),
            broken: Vec::new(),
        });
    };
    let kc = Kubeconfig::read_from(path).map_err(|source| ClusterError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    let source_name = source_context(&kc, path, source_context_flag)?;
    let source = context_cluster(&kc, &source_name).await?;
    let mut followers: Vec<Cluster> = Vec::new();
    let mut servers: Vec<Option<String>> = Vec::new();
    let mut broken = Vec::new();
    for c in kc.contexts.iter().filter(|c| c.name != source_name) {
        let server = server_of(&kc, &c.name);
        if let Some(i) = servers.iter().position(|s| s.is_some() && *s == server) {
            let ns = c.context.as_ref().and_then(|x| x.namespace.clone());
            followers[i].aliases.push((c.name.clone(), ns));
            continue;
        }
        match context_cluster(&kc, &c.name).await {
            Ok(cl) => {
                followers.push(cl);
                servers.push(server);
            }
            Err(e) => broken.push((c.name.clone(), crate::chain(&e))),
        }
    }
    let source_server = server_of(&kc, &source_name);
    let mut followers = by_identity(source, &source_server, followers, &servers).await?;
    let source = followers.remove(0);
    for f in &mut followers {
        let mut names = vec![f.context.as_str()];
        names.extend(f.aliases.iter().map(|(n, _)| n.as_str()));
        f.fingerprint = fingerprint(&kc, &names);
    }
    Ok(Clusters {
        source,
        followers,
        broken,
    })
}

/// Reads every cluster's identity (concurrently, each with a deadline) and merges followers
/// that are one cluster behind different URLs: the later becomes aliases of the first. A
/// follower that is the source cluster is refused. Returns the source first, then the followers.
async fn by_identity(
    source: Cluster,
    source_server: &Option<String>,
    followers: Vec<Cluster>,
    servers: &[Option<String>],
) -> Result<Vec<Cluster>, ClusterError> {
    let mut all: Vec<Cluster> = std::iter::once(source).chain(followers).collect();
    let urls: Vec<Option<String>> = std::iter::once(source_server)
        .chain(servers)
        .cloned()
        .collect();
    let ids = identity::identify_all(
        all.iter()
            .zip(&urls)
            .map(|(c, u)| (u.clone(), c.client.clone())),
    )
    .await;
    for (c, id) in all.iter_mut().zip(ids) {
        c.identity = id;
    }
    let mut out: Vec<Cluster> = Vec::with_capacity(all.len());
    for c in all {
        let same = (c.identity.uid())
            .and_then(|uid| (out.iter()).position(|o| o.identity.uid() == Some(uid)));
        match same {
            Some(0) => {
                return Err(ClusterError::SourceIsTarget {
                    source_context: out[0].context.clone(),
                    other: c.context.clone(),
                    server: format!(
                        "the same cluster: kube-system uid {}",
                        c.identity.uid().unwrap_or_default()
                    ),
                });
            }
            Some(i) => {
                tracing::info!(context = %c.context, same_as = %out[i].context, "context reaches the same cluster as another by a different URL: one follower");
                out[i]
                    .aliases
                    .push((c.context.clone(), c.namespace.clone()));
                out[i].aliases.extend(c.aliases);
            }
            None => out.push(c),
        }
    }
    Ok(out)
}

/// A digest of the named contexts and of the cluster and user entries they use (as written in
/// the kubeconfig: files they name are not read).
fn fingerprint(kc: &Kubeconfig, contexts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for name in contexts {
        let ctx = kc.contexts.iter().find(|c| c.name == *name);
        let inner = ctx.and_then(|c| c.context.as_ref());
        let cluster = inner.and_then(|i| kc.clusters.iter().find(|c| c.name == i.cluster));
        let user = (inner.and_then(|i| i.user.as_deref()))
            .and_then(|u| kc.auth_infos.iter().find(|a| a.name == u));
        let doc = serde_json::json!([ctx, cluster, user]);
        h.update(doc.to_string().as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// Categorises an API error: forbidden, conflict, invalid, not_found, unavailable (transport,
/// 5xx, 429), other.
pub fn api_category(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => match s.code {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            422 | 400 => "invalid",
            429 => "throttled",
            500..=599 => "unavailable",
            _ => "api_other",
        },
        kube::Error::Service(e) if is_auth(e.as_ref()) => "credentials",
        kube::Error::HyperError(_) | kube::Error::Service(_) => "unavailable",
        kube::Error::Auth(_) => "credentials",
        _ => "client_other",
    }
}

/// An exec plugin / token failure anywhere in the cause chain (kube's auth layer, or ours for
/// exec plugins: [`exec::ExecError`]).
fn is_auth(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<kube::client::AuthError>() || c.is::<exec::ExecError>() {
            return true;
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contexts_on_one_server_share_one_cluster() {
        let mut y = String::from(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n\
             - name: a\n  cluster:\n    server: https://h:1\n\
             - name: b\n  cluster:\n    server: https://h:2\n\
             - name: b2\n  cluster:\n    server: https://H:2/\ncontexts:\n",
        );
        for (ctx, cl, ns) in [("a", "a", ""), ("b", "b", "prod"), ("c", "b2", "staging")] {
            y += &format!("- name: {ctx}\n  context:\n    cluster: {cl}\n    user: u\n");
            if !ns.is_empty() {
                y += &format!("    namespace: {ns}\n");
            }
        }
        y += "users:\n- name: u\n  user:\n    token: t\n";
        let path = std::env::temp_dir().join(format!("kcs-aliases-{}.yaml", std::process::id()));
        std::fs::write(&path, y).unwrap();
        let cl = load(Some(&path), None).await;
        let _ = std::fs::remove_file(&path);
        let cl = cl.unwrap();
        assert_eq!(cl.source.context, "a");
        assert_eq!(cl.followers.len(), 1);
        assert_eq!(cl.followers[0].context, "b");
        assert_eq!(cl.followers[0].namespace.as_deref(), Some("prod"));
        assert_eq!(
            cl.followers[0].aliases,
            vec![("c".to_string(), Some("staging".to_string()))]
        );
    }
}
