//! The controller: the clusters' caches and queues wired together (`setup`), workers that take
//! keys from the queues (`workers`), reconcile as read → plan → write → report (`reconcile`,
//! `write`, every write through `writer`), and the `run` / `once` loops (`run`).
pub mod budget;
pub mod context;
pub mod errors;
pub mod queue;
pub mod reconcile;
pub mod reload;
pub mod run;
pub mod setup;
pub mod workers;
pub mod write;
pub mod writer;

use crate::ops::hooks::Hooks;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Secret types never synced unless --include-secret-types names them (excluded from the watch).
pub const DEFAULT_SKIPPED_SECRET_TYPES: [&str; 2] =
    ["kubernetes.io/service-account-token", "helm.sh/release.v1"];

/// What the controller is asked to do (the command line, decoded).
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig_file: Option<PathBuf>,
    pub source_context: Option<String>,
    pub cluster_name: Option<String>,
    pub source_namespace: Option<String>,
    pub include_secret_types: Vec<String>,
    pub metadata: crate::plan::MetadataFilter,
    pub create_namespaces: bool,
    pub adopt_existing: bool,
    pub previous_cluster_names: Vec<String>,
    pub follower_scope: crate::plan::Scope,
    pub local_scope: crate::plan::Scope,
    pub resync_period: Duration,
    pub workers: u16,
}

/// Where outcomes and writes go, beside the configuration: the hooks (metrics or `once`'s
/// tally), dry-run, and leader election.
#[derive(Clone)]
pub struct Runtime {
    pub hooks: Arc<dyn Hooks>,
    pub dry_run: bool,
    /// With leader election: `true` while this replica holds the lease. Workers start when it
    /// becomes `true`; `run` returns [`StartError::LeaseLost`] when it turns `false` again.
    pub leader: Option<tokio::sync::watch::Receiver<bool>>,
    /// Whether Events may be written now: `true` without leader election, else kept equal to
    /// the lease state by the caller.
    pub writing: Arc<std::sync::atomic::AtomicBool>,
}

/// Start-up failures; each maps to an exit code (see README).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--cluster-name is required with --kubeconfig-file")]
    MissingClusterName,
    #[error(transparent)]
    Clusters(#[from] crate::clusters::ClusterError),
    #[error("the leader lease was lost; exiting so that a standby takes over")]
    LeaseLost,
    #[error(
        "the source cluster's entries (context {0:?}) changed in the kubeconfig file; exiting so \
         that the daemon starts again on the new source"
    )]
    SourceChanged(String),
}

/// The Secret types not synced: the defaults minus those `include` names.
pub fn skipped_secret_types(include: &[String]) -> std::collections::BTreeSet<String> {
    DEFAULT_SKIPPED_SECRET_TYPES
        .iter()
        .map(|s| s.to_string())
        .filter(|t| !include.contains(t))
        .collect()
}

/// `--cluster-name`, required with a kubeconfig file (in-cluster: kubed's default, empty).
pub fn cluster_name(
    name: Option<&str>,
    kubeconfig_file: Option<&std::path::Path>,
) -> Result<String, StartError> {
    match (name, kubeconfig_file) {
        (Some(n), _) => Ok(n.to_string()),
        (None, Some(_)) => Err(StartError::MissingClusterName),
        (None, None) => Ok(String::new()),
    }
}
