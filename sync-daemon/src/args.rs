//! Command-line interface: `run` (the daemon) and `once` (one full pass, exit code = converged).
use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Mirrors kubed-annotated ConfigMaps and Secrets across namespaces and clusters.
#[derive(Debug, Parser)]
#[command(name = "sync-daemon", version)]
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
    Status(crate::status::StatusArgs),
}

#[derive(Debug, Clone, ClapArgs)]
pub struct SyncArgs {
    /// Kubeconfig whose contexts are the source cluster and the followers (in-cluster and
    /// intra-cluster sync only when unset)
    #[arg(long, env = "KUBECONFIG_FILE")]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace whose ConfigMaps/Secrets are sources (all namespaces when unset)
    #[arg(long, env = "CONFIG_SOURCE_NAMESPACE")]
    pub config_source_namespace: Option<String>,
    /// Name of this cluster, written to the `kubed.appscode.com/origin.cluster` label of copies
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Context of --kubeconfig-file that is the source cluster (default: its current-context)
    #[arg(long)]
    pub source_context: Option<String>,
    /// Interval of the full drift/orphan sweep (e.g. 30s, 5m, 1h)
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Create a missing target namespace instead of reporting it
    #[arg(long)]
    pub create_namespaces: bool,
    /// Take over same-named objects that are not our copies (off: they are never touched)
    #[arg(long)]
    pub adopt_existing: bool,
    /// Secret types to sync although skipped by default
    /// (kubernetes.io/service-account-token, helm.sh/release.v1)
    #[arg(long, value_delimiter = ',')]
    pub include_secret_types: Vec<String>,
    /// Reconciles in flight per target cluster (a source is never reconciled twice at once)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    #[command(flatten)]
    pub ops: crate::opsargs::OpsArgs,
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
        assert_eq!(a.include_secret_types, vec!["a", "b"]);
        assert_eq!(a.resync_period, Duration::from_secs(2));
        assert!(!a.adopt_existing);
    }
}
