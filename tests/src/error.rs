//! The one error type of the testbed library: each variant names the operation that failed and
//! what it was applied to; the cause is kept as `#[source]` so the chain prints once.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("cannot find {what}: {hint}")]
    MissingBinary { what: &'static str, hint: String },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot start {what} ({program})")]
    Spawn {
        what: String,
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot stop {what} (pid {pid}): still running after SIGKILL")]
    Unkillable { what: String, pid: u32 },

    #[error("cannot generate {what}")]
    Cert {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    #[error("{what} was not ready within {secs} s (last: {last}); see {}", log.display())]
    NotReady {
        what: String,
        secs: u64,
        last: String,
        log: PathBuf,
    },

    #[error("{what} exited during start-up; see {}", log.display())]
    Exited { what: String, log: PathBuf },

    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),

    #[error("invalid cluster spec {0:?}: expected NAME or NAME@ACCOUNT (12 digits)")]
    BadClusterSpec(String),

    #[error("a testbed is already running in {} (run `testbed down --dir` first)", .0.display())]
    AlreadyRunning(PathBuf),

    #[error("cannot read state file {}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("kubernetes client for cluster {cluster} failed while trying to {action}")]
    Kube {
        cluster: String,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("proxy of cluster {cluster} refused command {command:?}: {detail}")]
    Proxy {
        cluster: String,
        command: String,
        detail: String,
    },

    #[error("etcd of cluster {cluster} could not be compacted: {detail}")]
    Etcd { cluster: String, detail: String },

    #[error("cannot tell the Kubernetes version of {}: {detail}", program.display())]
    Version { program: PathBuf, detail: String },

    #[error("kubectl {kubectl} cannot be used with Kubernetes {server}: {detail}")]
    KubectlSkew {
        kubectl: String,
        server: String,
        detail: String,
    },

    #[error("processes still running after teardown: {0:?}")]
    Leftover(Vec<u32>),

    #[error("sync-daemon exited ({status}); last lines of {}:\n{tail}", log.display())]
    DaemonExited {
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("sync-daemon cannot be started so: {0}")]
    DaemonUsage(&'static str),

    #[error("cannot read kubeconfig {}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error("the kubeconfig has no context {0:?}")]
    NoContext(String),

    #[error("cannot {action} {object}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl TestbedError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        TestbedError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
