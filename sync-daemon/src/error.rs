//! Reconcile errors: one variant per failed operation, each with a low-cardinality `category()`
//! for metrics labels, and a transient/permanent split that decides the retry policy.
use crate::desired::Kind;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read {kind:?} {namespace}/{name} in context {cluster}")]
    Get {
        cluster: String,
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot {op} {kind:?} {namespace}/{name} in context {cluster}")]
    Write {
        op: &'static str,
        cluster: String,
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("namespace {namespace} does not exist in context {cluster}")]
    NamespaceMissing { cluster: String, namespace: String },
    #[error("cannot create namespace {namespace} in context {cluster}")]
    CreateNamespace {
        cluster: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("the caches of context {0} are not ready yet")]
    NotReady(String),
}

impl SyncError {
    /// Metric label / log field: bounded set of values.
    pub fn category(&self) -> &'static str {
        match self {
            SyncError::Get { source, .. } | SyncError::Write { source, .. } => api_category(source),
            SyncError::NamespaceMissing { .. } => "namespace_missing",
            SyncError::CreateNamespace { source, .. } => api_category(source),
            SyncError::NotReady(_) => "not_ready",
        }
    }

    /// The target cluster, not this key, failed (transport error, 5xx, 429): the worker pauses
    /// the cluster's queue instead of backing the key off on its own.
    pub fn is_outage(&self) -> bool {
        matches!(self.category(), "unavailable" | "throttled")
    }
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

/// An exec plugin / token failure anywhere in the cause chain (the client's auth layer wraps it).
fn is_auth(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<kube::client::AuthError>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The status code of an API error, if it is one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// `error: cause: cause` on one line, for logs and Events (no secret values are ever in these).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
