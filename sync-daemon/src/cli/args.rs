//! The command line: `run` (the daemon), `once` (one full pass) and `status` (a read-only
//! report) share one group of cluster flags; `run` and `once` add the sync and operational ones.
use crate::cli::exit;
use crate::controller::Config;
use crate::ops::logging::LogFormat;
use crate::plan::MetadataFilter;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Mirrors kubed-annotated ConfigMaps and Secrets across namespaces and clusters.
#[derive(Debug, Parser)]
#[command(name = "sync-daemon", version, after_help = exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch and keep every copy in sync until stopped
    Run(SyncArgs),
    /// One full pass over every source and target; exit 0 when converged, 1 otherwise
    Once(SyncArgs),
    /// Read-only report: per source × target one of in-sync, drifted, missing, conflict,
    /// target-unreachable, skipped; exit 0 when all in sync, 1 otherwise
    Status(StatusArgs),
}

/// Which clusters and sources: shared by `run`, `once` and `status`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig whose contexts are the source cluster and the followers (in-cluster and
    /// intra-cluster sync only when unset)
    #[arg(long, env = "KUBECONFIG_FILE")]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace whose ConfigMaps/Secrets are sources (all namespaces when unset)
    #[arg(long, env = "CONFIG_SOURCE_NAMESPACE")]
    pub config_source_namespace: Option<String>,
    /// Name of the source cluster, written to (and matched in) the
    /// `kubed.appscode.com/origin.cluster` label of copies
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Context of --kubeconfig-file that is the source cluster (default: its current-context)
    #[arg(long)]
    pub source_context: Option<String>,
    /// Secret types to sync (and report) although skipped by default
    /// (kubernetes.io/service-account-token, helm.sh/release.v1)
    #[arg(long, value_delimiter = ',')]
    pub include_secret_types: Vec<String>,
    /// Also keep these source labels/annotations off the copies, beside the default list of
    /// GitOps ownership marks (Argo CD, Flux, Helm): `prefix/`, `*.domain/`, `key` or
    /// `key=value` (repeatable)
    #[arg(long, value_name = "PATTERN", value_parser = metadata_pattern)]
    pub strip_metadata: Vec<String>,
    /// Copy source labels/annotations matching PATTERN although the list strips them (same
    /// forms, repeatable)
    #[arg(long, value_name = "PATTERN", value_parser = metadata_pattern)]
    pub keep_metadata: Vec<String>,
}

impl ClusterArgs {
    /// The metadata filter of --strip-metadata / --keep-metadata.
    pub fn metadata_filter(&self) -> MetadataFilter {
        // Each pattern was checked by `metadata_pattern` when the flags were parsed.
        MetadataFilter::new(&self.strip_metadata, &self.keep_metadata).unwrap_or_default()
    }
}

/// A metadata pattern, checked.
fn metadata_pattern(s: &str) -> Result<String, String> {
    MetadataFilter::new(&[s.to_string()], &[]).map(|_| s.trim().to_string())
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Interval of the full drift/orphan sweep (e.g. 30s, 5m, 1h)
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Create a missing target namespace instead of reporting it
    #[arg(long)]
    pub create_namespaces: bool,
    /// Take over same-named objects that are not our copies (off: they are never touched)
    #[arg(long)]
    pub adopt_existing: bool,
    /// Reconciles in flight per target cluster (a source is never reconciled twice at once)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    #[command(flatten)]
    pub ops: OpsArgs,
}

impl SyncArgs {
    /// What the controller is asked to do.
    pub fn config(&self) -> Config {
        let c = &self.cluster;
        Config {
            kubeconfig_file: c.kubeconfig_file.clone(),
            source_context: c.source_context.clone(),
            cluster_name: c.cluster_name.clone(),
            source_namespace: c.config_source_namespace.clone(),
            include_secret_types: c.include_secret_types.clone(),
            metadata: c.metadata_filter(),
            create_namespaces: self.create_namespaces,
            adopt_existing: self.adopt_existing,
            resync_period: self.resync_period,
            workers: self.workers,
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// Go-style durations as kubed takes them: `90s`, `5m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {s:?} lacks a unit (s, m, h, ms)"))?;
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} has no number before its unit"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            u => return Err(format!("duration {s:?} has unknown unit {u:?}")),
        };
        total = total.saturating_add(d);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err("duration must be positive".into());
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every operational flag of `run` and `status` is documented in README's Operations section.
    #[test]
    fn readme_documents_every_ops_flag() {
        let readme = include_str!("../../../README.md");
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
            "strip-metadata",
            "keep-metadata",
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

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        let table: &[(&str, Option<u64>)] = &[
            ("30s", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("500ms", Some(500)),
            ("10", None),
            ("", None),
            ("5x", None),
            ("0s", None),
            ("m", None),
        ];
        for (s, want) in table {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis() as u64),
                *want,
                "{s}"
            );
        }
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "sync-daemon",
            "once",
            "--kubeconfig-file",
            "/k",
            "--cluster-name",
            "mc-mgmt",
            "--include-secret-types",
            "a,b",
            "--resync-period",
            "2s",
        ])
        .expect("parses");
        let Command::Once(a) = cli.command else {
            panic!("once")
        };
        assert_eq!(a.cluster.include_secret_types, vec!["a", "b"]);
        assert_eq!(a.resync_period, Duration::from_secs(2));
        assert!(!a.adopt_existing);
    }
}
