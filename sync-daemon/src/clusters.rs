//! Kubeconfig contexts → one kube client pair per cluster: the source cluster (chosen by
//! --source-context or current-context) and the followers; refuses a follower that is the source.
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes and GETs fail fast on a dead follower, so its queue backs off instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
/// dropped: two servers are the same cluster when these are equal.
pub fn normalise_server(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    let (scheme, rest) = s.split_once("://").unwrap_or(("https", s));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
    let has_port = match authority.rfind(':') {
        Some(i) => {
            !authority.ends_with(']') && authority[i + 1..].chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    };
    if has_port {
        format!("{scheme}://{authority}")
    } else {
        let port = if scheme == "http" { 80 } else { 443 };
        format!("{scheme}://{authority}:{port}")
    }
}

fn server_of(kc: &Kubeconfig, context: &str) -> Option<String> {
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .as_ref()?;
    cluster.server.as_deref().map(normalise_server)
}

/// Picks the source context and checks that no other context points at the same server.
pub fn source_context(
    kc: &Kubeconfig,
    path: &Path,
    requested: Option<&str>,
) -> Result<String, ClusterError> {
    let source = match requested.or(kc.current_context.as_deref()) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err(ClusterError::NoSourceContext(path.to_path_buf())),
    };
    if !kc.contexts.iter().any(|c| c.name == source) {
        return Err(ClusterError::UnknownSourceContext(source));
    }
    if let Some(server) = server_of(kc, &source) {
        for c in &kc.contexts {
            if c.name != source && server_of(kc, &c.name).as_deref() == Some(server.as_str()) {
                return Err(ClusterError::SourceIsTarget {
                    source_context: source,
                    other: c.name.clone(),
                    server,
                });
            }
        }
    }
    Ok(source)
}

/// Sent on every request, so audit logs and apiserver metrics tell the daemon's requests apart.
const USER_AGENT: &str = concat!("kubed-cross-sync/", env!("CARGO_PKG_VERSION"));

/// What every client of the daemon has in common.
fn common(mut config: Config) -> Config {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    // kube's client would otherwise retry 429/503/504 inside one request (up to 15 times, backing
    // off to 1000 s): a follower answering 503 would hold its worker for minutes before the queue's
    // outage pause and per-key backoff ever saw the error. Those govern retries here.
    config.default_retry = false;
    config
}

fn clients(config: Config, context: &str) -> Result<(Client, Client), ClusterError> {
    let mut config = common(config);
    // Exec-plugin contexts authenticate through `reauth` (renewal on expiry and after a 401).
    let reauth = crate::reauth::take(&mut config, context);
    // One bucket for the cluster's request and watch clients (--qps/--burst).
    let limit = crate::ratelimit::RateLimitLayer::new();
    let build = |c: Config| {
        let b = kube::client::ClientBuilder::try_from(c).map_err(|e| ClusterError::Build {
            context: context.to_string(),
            source: Box::new(e),
        })?;
        let b = b.with_layer(&limit);
        Ok(match &reauth {
            Some(layer) => b.with_layer(layer).build(),
            None => b.build(),
        })
    };
    let watch = build(config.clone())?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    Ok((build(config)?, watch))
}

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
            Err(e) => {
                tracing::warn!(context = %c.name, error = %crate::error::chain(&e), "context skipped: cannot build a client");
                broken.push((c.name.clone(), crate::error::chain(&e)));
            }
        }
    }
    Ok(Clusters {
        source,
        followers,
        broken,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_not_retried_inside_the_client() {
        let url: http::Uri = "https://127.0.0.1:6443".parse().unwrap();
        let c = common(Config::new(url));
        assert!(!c.default_retry, "the queue's backoff governs retries");
        assert!(
            c.headers
                .iter()
                .any(|(k, v)| k == http::header::USER_AGENT && v == USER_AGENT)
        );
    }

    #[test]
    fn normalises_servers() {
        let table = [
            ("https://127.0.0.1:6443", "https://127.0.0.1:6443"),
            ("https://127.0.0.1:6443/", "https://127.0.0.1:6443"),
            (
                "https://ABC.eks.amazonaws.com",
                "https://abc.eks.amazonaws.com:443",
            ),
            (
                "https://abc.eks.amazonaws.com/",
                "https://abc.eks.amazonaws.com:443",
            ),
            ("http://h", "http://h:80"),
            ("https://[::1]", "https://[::1]:443"),
            ("https://[::1]:8443/x", "https://[::1]:8443"),
        ];
        for (input, want) in table {
            assert_eq!(normalise_server(input), want, "{input}");
        }
    }

    fn kubeconfig(current: &str, servers: &[(&str, &str)]) -> Kubeconfig {
        let mut y =
            format!("apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n");
        for (n, s) in servers {
            y += &format!("- name: {n}\n  cluster:\n    server: {s}\n");
        }
        y += "contexts:\n";
        for (n, _) in servers {
            y += &format!("- name: {n}\n  context:\n    cluster: {n}\n    user: u\n");
        }
        y += "users:\n- name: u\n  user:\n    token: t\n";
        Kubeconfig::from_yaml(&y).expect("test kubeconfig")
    }

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

    #[test]
    fn source_selection_and_reversal_guard() {
        let p = Path::new("/k");
        let ok = kubeconfig("a", &[("a", "https://h:1"), ("b", "https://h:2")]);
        assert_eq!(source_context(&ok, p, None).ok().as_deref(), Some("a"));
        assert_eq!(source_context(&ok, p, Some("b")).ok().as_deref(), Some("b"));
        assert!(matches!(
            source_context(&ok, p, Some("zz")),
            Err(ClusterError::UnknownSourceContext(_))
        ));
        let dup = kubeconfig("a", &[("a", "https://h:1"), ("b", "https://H:1/")]);
        let err = source_context(&dup, p, None).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("\"a\"") && msg.contains("\"b\""), "{msg}");
        let none = kubeconfig("", &[("a", "https://h:1")]);
        assert!(matches!(
            source_context(&none, p, None),
            Err(ClusterError::NoSourceContext(_))
        ));
    }
}
