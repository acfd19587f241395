//! Reconcile errors: one variant per failed operation, each with a low-cardinality `category()`
//! for metrics labels, and a transient/permanent split that decides the retry policy.
use crate::clusters::api_category;
use crate::plan::{Failure, Kind};

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
    #[error("cannot create namespace {namespace} in context {cluster}")]
    CreateNamespace {
        cluster: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

impl SyncError {
    /// Metric label / log field: bounded set of values.
    pub fn category(&self) -> &'static str {
        match self {
            SyncError::Get { source, .. }
            | SyncError::Write { source, .. }
            | SyncError::CreateNamespace { source, .. } => api_category(source),
        }
    }

    /// The target cluster, not this key, failed (transport error, 5xx, 429): the worker pauses
    /// the cluster's queue instead of backing the key off on its own.
    pub fn is_outage(&self) -> bool {
        matches!(self.category(), "unavailable" | "throttled")
    }

    /// A write the target refused for a reason a retry alone does not change (RBAC, quota,
    /// admission, validation).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SyncError::Write { .. } | SyncError::CreateNamespace { .. }
        ) && matches!(self.category(), "forbidden" | "invalid")
    }

    pub fn failure(&self) -> Failure {
        if self.is_outage() {
            Failure::Outage
        } else if self.is_refusal() {
            Failure::Refused
        } else {
            Failure::Key
        }
    }
}
