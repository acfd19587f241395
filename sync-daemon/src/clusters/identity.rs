//! What a cluster is, as opposed to the URL a context reaches it by: the uid of its
//! `kube-system` namespace (made once when the cluster is created, the same through every
//! endpoint, proxy or load balancer). Two contexts with one uid are one follower, however their
//! servers are written, and a follower with the source cluster's uid is the source.
//!
//! A uid is learned once per server URL and remembered for the process's life, so a cluster
//! that is down at a reload keeps the identity it had. A cluster that refuses the read (a
//! namespaced-only install: no grant on `kube-system`) has none, and is known by its URL only.
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Deadline of one identity read (they run concurrently, at start and at a kubeconfig reload).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a start or reload waits for the reads: a cluster that has not answered by then (a
/// hung credential plugin, say) is known by its URL for now, so it delays the others by this
/// much at most; its read goes on, and a later reload uses what it learned.
pub const WAIT: Duration = Duration::from_secs(2);

/// A cluster's identity as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The uid of its `kube-system` namespace.
    Uid(String),
    /// The cluster answered but will not say (403, no such namespace): known by URL only, and
    /// not asked again.
    Withheld,
    /// Not read yet (unreachable, a failing credential plugin, the deadline): asked again later.
    Unknown,
}

impl Identity {
    pub fn uid(&self) -> Option<&str> {
        match self {
            Identity::Uid(u) => Some(u),
            _ => None,
        }
    }
}

static LEARNED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn learned() -> std::sync::MutexGuard<'static, BTreeMap<String, String>> {
    LEARNED.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`identify`] for each `(server, client)`, concurrently, waiting [`WAIT`] at most: the
/// identities in the same order ([`Identity::Unknown`] for a read still running).
pub async fn identify_all(
    clusters: impl Iterator<Item = (Option<String>, Client)>,
) -> Vec<Identity> {
    let reads: Vec<(Option<String>, tokio::task::JoinHandle<Identity>)> = clusters
        .map(|(server, client)| {
            let s = server.clone();
            let read = tokio::spawn(async move { identify(s.as_deref(), &client).await });
            (server, read)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::with_capacity(reads.len());
    for (server, read) in reads {
        // A read past the deadline is left running (dropping its handle detaches it): what it
        // learns is remembered for the next load.
        out.push(match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(id)) => id,
            _ => match server.and_then(|s| learned().get(&s).cloned()) {
                Some(uid) => Identity::Uid(uid),
                None => Identity::Unknown,
            },
        });
    }
    out
}

/// Whether the cluster at `server` has no identity learned yet (a reload asks again).
pub fn pending(server: Option<&str>) -> bool {
    server.is_some_and(|s| !learned().contains_key(s))
}

/// The identity of the cluster at `server` (normalised URL) through `client`: remembered, else
/// read (with [`PROBE_TIMEOUT`]).
pub async fn identify(server: Option<&str>, client: &Client) -> Identity {
    if let Some(uid) = server.and_then(|s| learned().get(s).cloned()) {
        return Identity::Uid(uid);
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let read = tokio::time::timeout(PROBE_TIMEOUT, api.get_opt("kube-system")).await;
    let id = match read {
        Ok(Ok(Some(ns))) => match ns.metadata.uid {
            Some(uid) => Identity::Uid(uid),
            None => Identity::Withheld,
        },
        Ok(Ok(None)) => Identity::Withheld,
        Ok(Err(kube::Error::Api(s))) if s.code == 403 || s.code == 404 => Identity::Withheld,
        Ok(Err(_)) | Err(_) => Identity::Unknown,
    };
    if let (Some(server), Identity::Uid(uid)) = (server, &id) {
        learned().insert(server.to_string(), uid.clone());
    }
    id
}
