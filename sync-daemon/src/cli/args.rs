//! The command line: `run` (the daemon), `once` (one full pass) and `status` (a read-only
//! report) share one group of cluster flags; `run` and `once` add the sync and operational ones.
use crate::cli::{duration, exit};
use crate::controller::Config;
use crate::ops::logging::LogFormat;
use crate::plan::{MetadataFilter, Scope};
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
    /// target-unreachable, skipped, invalid; exit 0 when all in sync, 1 otherwise
    Status(StatusArgs),
}

/// Which clusters and sources: shared by `run`, `once` and `status`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig whose contexts are the source cluster and the followers (in-cluster and
    /// intra-cluster sync only when unset)
    #[arg(long, env = "KUBECONFIG_FILE", value_parser = non_empty_path)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace whose ConfigMaps/Secrets are sources (all namespaces when unset)
    #[arg(long, env = "CONFIG_SOURCE_NAMESPACE", value_parser = namespace_name)]
    pub config_source_namespace: Option<String>,
    /// Name of the source cluster, written to (and matched in) the
    /// `kubed.appscode.com/origin.cluster` label of copies
    #[arg(long, env = "CLUSTER_NAME", value_parser = label_value)]
    pub cluster_name: Option<String>,
    /// Context of --kubeconfig-file that is the source cluster (default: its current-context)
    #[arg(long, value_parser = non_empty)]
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
    /// A --cluster-name used before (kubed's Helm chart default is `unicorn`): copies it made
    /// of a current source are taken over (relabelled and updated) instead of reported as
    /// conflicts (repeatable)
    #[arg(long, value_name = "NAME", value_parser = label_value)]
    pub previous_cluster_name: Vec<String>,
    /// Namespaced follower mode: in every follower, watch and write copies only in these
    /// namespaces (one watch per namespace and kind; nothing cluster-wide, so Roles suffice);
    /// a source wanting another follower namespace gets a NamespaceNotAllowed Event
    #[arg(long, env = "FOLLOWER_NAMESPACES", value_name = "NS,...", value_delimiter = ',', value_parser = namespace_name)]
    pub follower_namespaces: Vec<String>,
    /// No intra-cluster sync: nothing is watched or written in the source cluster beyond the
    /// sources (and Events on them); a `kubed.appscode.com/sync` annotation gets an
    /// IntraClusterOff Event. With --config-source-namespace a Role in that namespace suffices
    #[arg(long)]
    pub no_intra_cluster: bool,
}

impl ClusterArgs {
    /// Where followers' copies may be (`--follower-namespaces`).
    pub fn follower_scope(&self) -> Scope {
        match self.follower_namespaces.is_empty() {
            true => Scope::Cluster,
            false => Scope::Namespaces(self.follower_namespaces.iter().cloned().collect()),
        }
    }

    /// Where intra-cluster copies may be (`--no-intra-cluster`: nowhere).
    pub fn local_scope(&self) -> Scope {
        match self.no_intra_cluster {
            true => Scope::Namespaces(Default::default()),
            false => Scope::Cluster,
        }
    }

    /// The metadata filter of --strip-metadata / --keep-metadata.
    pub fn metadata_filter(&self) -> MetadataFilter {
        // Each pattern was checked by `metadata_pattern` when the flags were parsed.
        MetadataFilter::new(&self.strip_metadata, &self.keep_metadata).unwrap_or_default()
    }
}

/// A value that must not be empty (an empty environment variable included: in a pod that is
/// usually a missing ConfigMap key, better refused than read as "unset").
fn non_empty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("must not be empty (a variable set to \"\" counts: unset it instead)".into()),
        t => Ok(t.to_string()),
    }
}

fn non_empty_path(s: &str) -> Result<PathBuf, String> {
    non_empty(s).map(PathBuf::from)
}

/// `--cluster-name`: written into the origin label of every copy, so a valid label value (at
/// most 63 characters, alphanumerics with `-`, `_`, `.` inside).
fn label_value(s: &str) -> Result<String, String> {
    let s = non_empty(s)?;
    match crate::plan::selector::valid_value(&s) {
        true => Ok(s),
        false => Err(format!(
            "{s:?} is not a valid label value: at most 63 characters, letters, digits, '-', '_' \
             and '.', beginning and ending with a letter or digit"
        )),
    }
}

/// `--config-source-namespace`: a namespace name (an RFC 1123 label).
fn namespace_name(s: &str) -> Result<String, String> {
    let s = non_empty(s)?;
    match crate::plan::selector::is_dns_label(&s) {
        true => Ok(s),
        false => Err(format!(
            "{s:?} is not a namespace name: at most 63 lowercase letters, digits and '-', \
             beginning and ending with a letter or digit"
        )),
    }
}

/// `--qps`: a positive finite rate (kubed's 1e6 means no limit).
fn qps(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(q) if q.is_finite() && q > 0.0 => Ok(q),
        _ => Err(format!(
            "{s:?} is not a positive number of requests per second"
        )),
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
    #[arg(long, default_value = "5m", value_parser = duration::resync_period)]
    pub resync_period: Duration,
    /// Create a missing target namespace instead of reporting it
    #[arg(long)]
    pub create_namespaces: bool,
    /// Take over same-named objects that are not our copies (off: they are never touched)
    #[arg(long)]
    pub adopt_existing: bool,
    /// Reconciles in flight per target cluster (a source is never reconciled twice at once)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
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
            previous_cluster_names: c.previous_cluster_name.clone(),
            follower_scope: c.follower_scope(),
            local_scope: c.local_scope(),
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
    #[arg(long, value_parser = namespace_name)]
    pub lease_namespace: Option<String>,
    /// Name of the Lease
    #[arg(long, default_value = "kubed-cross-sync", value_parser = non_empty)]
    pub lease_name: String,
    /// How long a lease holder stays leader without renewing; a standby takes over after it
    #[arg(long, default_value = "12s", value_parser = duration::lease_duration)]
    pub lease_duration: Duration,
    /// Deadline of one run of a kubeconfig exec credential plugin; a plugin still running then
    /// is killed (with what it started) and counted as a credentials failure
    #[arg(long, default_value = "60s", value_parser = duration::exec_timeout)]
    pub exec_timeout: Duration,
    /// A cluster unreachable for longer than this gets a FollowerUnreachable Event on its sources
    #[arg(long, default_value = "2m", value_parser = duration::unreachable_after)]
    pub unreachable_after: Duration,
    /// Log format on stderr
    #[arg(long, value_enum, default_value = "plain", env = "LOG_FORMAT")]
    pub log_format: LogFormat,
    /// kubed's klog verbosity: 0-3 info, 4-5 debug, 6+ trace (RUST_LOG, when set, wins)
    #[arg(long = "v", value_name = "LEVEL")]
    pub verbosity: Option<u8>,
    /// A fixed client-side rate per cluster, requests per second (default: none; the cluster's
    /// 429 + Retry-After pauses it instead; kubed's 1e6 means no limit)
    #[arg(long, value_parser = qps)]
    pub qps: Option<f32>,
    /// Requests allowed at once above the --qps rate per cluster (default 100; used with a --qps rate only)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
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
            "previous-cluster-name",
            "follower-namespaces",
            "no-intra-cluster",
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

    /// Bad values are refused while parsing (clap exits 2), naming the flag.
    #[test]
    fn bad_values_are_refused_at_start() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["sync-daemon", "run", "--kubeconfig-file", "/k"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|_| ())
        };
        for bad in [
            &["--cluster-name", "mc mgmt!"][..],
            &["--cluster-name", ""],
            &["--cluster-name", &"a".repeat(64)],
            &["--cluster-name=-a"],
            &["--config-source-namespace", "Prod"],
            &["--lease-duration", "99999999999999999h"],
            &["--lease-duration", "1s"],
            &["--resync-period", "0s"],
            &["--resync-period", "48h"],
            &["--unreachable-after=-1m"],
            &["--qps", "0"],
            &["--qps", "NaN"],
            &["--burst", "0"],
            &["--source-context", " "],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?} refused"));
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            let flag = bad[0].split('=').next().unwrap_or_default();
            assert!(e.to_string().contains(flag), "{bad:?}: {e}");
        }
        for good in [
            &["--cluster-name", "mc-mgmt"][..],
            &["--cluster-name", "Unicorn_1.a"],
            &["--lease-duration", "1.5m"],
            &["--resync-period", "300s"],
            &["--qps", "1e6"],
        ] {
            parse(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
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
