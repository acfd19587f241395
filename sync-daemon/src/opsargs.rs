//! Operational flags shared by `run` and `once` (flattened into `SyncArgs`): admin server,
//! leader election, dry-run, logging, and kubed's client flags (`--v`, `--qps`, `--burst`,
//! `--kubeconfig`).
use crate::args::parse_duration;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Log and count every create/update/delete it would make, and write nothing (no Events)
    #[arg(long)]
    pub dry_run: bool,
    /// Address of the admin HTTP server: /livez, /readyz, /metrics (`run` only)
    #[arg(long, default_value = "0.0.0.0:8080", env = "METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Elect one writer among replicas with a coordination.k8s.io/v1 Lease in the source cluster
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else --config-source-namespace, else default)
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Name of the Lease
    #[arg(long, default_value = "kubed-cross-sync")]
    pub lease_name: String,
    /// How long a lease holder stays leader without renewing; a standby takes over after it
    #[arg(long, default_value = "12s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// A cluster unreachable for longer than this gets a FollowerUnreachable Event on its sources
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub unreachable_after: Duration,
    /// Log format on stderr
    #[arg(long, value_enum, default_value = "plain", env = "LOG_FORMAT")]
    pub log_format: LogFormat,
    /// kubed's klog verbosity: 0-3 info, 4-5 debug, 6+ trace (RUST_LOG, when set, wins)
    #[arg(long = "v", value_name = "LEVEL")]
    pub verbosity: Option<u8>,
    /// Client-side requests per second per cluster (default 50; kubed's 1e6 means no limit)
    #[arg(long)]
    pub qps: Option<f32>,
    /// Requests allowed at once above --qps per cluster (default 100)
    #[arg(long)]
    pub burst: Option<u32>,
    /// kubed's --kubeconfig for the source cluster (accepted; the source is --source-context,
    /// else the kubeconfig-file's current-context)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::args::Cli;
    use clap::CommandFactory;

    /// Every operational flag of `run` and `status` is documented in README's Operations section.
    #[test]
    fn readme_documents_every_ops_flag() {
        let readme = include_str!("../../README.md");
        let start = readme.find("### Operations").expect("Operations section");
        let ops = &readme[start..];
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("run");
        let core = [
            "kubeconfig-file",
            "config-source-namespace",
            "cluster-name",
            "source-context",
            "resync-period",
            "create-namespaces",
            "adopt-existing",
            "include-secret-types",
            "help",
        ];
        for a in run.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if core.contains(&long) {
                continue; // the core flags are in the table above the Operations section
            }
            assert!(
                ops.contains(&format!("`--{long}")),
                "--{long} missing from README Operations"
            );
        }
        let status = cli.find_subcommand("status").expect("status");
        assert!(status.get_arguments().any(|a| a.get_short() == Some('o')));
        assert!(ops.contains("-o json"));
    }
}
