//! The `testbed` command line: `up`, `down`, `fault`, `status`, and the hidden `proxy` and
//! `reap` that the testbed runs itself. Exit codes: 0 done, 1 testbed error, 2 usage error.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::TestbedError;
use crate::state::State;
use crate::{ClusterSpec, Fault, Testbed, TestbedOptions};

#[derive(Debug, Parser)]
#[command(
    name = "testbed",
    version,
    about = "Real kube-apiservers (and moto) on loopback, for tests and the demo"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the clusters, wait until all are ready, leave them running in the background.
    Up {
        /// Directory for kubeconfig, state.json, env, aws/ and per-cluster files.
        #[arg(long)]
        dir: PathBuf,
        /// NAME or NAME@ACCOUNT (repeatable; default: mc-mgmt-k8s, mc-project-k8s, mc-project2-k8s).
        #[arg(long = "cluster", value_name = "NAME[@ACCOUNT]")]
        clusters: Vec<String>,
        /// Also start the AWS world: moto, the EKS token verifier, the profiles INI and DIR/env.
        #[arg(long)]
        aws: bool,
    },
    /// Stop every process of the testbed in DIR (by pid, from state.json).
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Inject or clear a fault on one cluster.
    Fault {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        cluster: String,
        /// The fault; optional when --latency-ms is given.
        #[arg(value_enum)]
        kind: Option<FaultKind>,
        /// Delay every chunk through the cluster's proxy by N ms in each direction (0 removes it).
        #[arg(long, value_name = "N")]
        latency_ms: Option<u64>,
    },
    /// Print JSON: per cluster, each process's pid, whether it runs, and its RSS.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
    /// (internal) The TCP proxy in front of one apiserver.
    #[command(hide = true)]
    Proxy {
        #[arg(long)]
        upstream: SocketAddr,
        #[arg(long)]
        ports_file: PathBuf,
    },
    /// (internal) Tear the testbed in DIR down once the parent process is gone.
    #[command(hide = true)]
    Reap {
        #[arg(long)]
        parent_pid: u32,
        #[arg(long, default_value_t = 0)]
        parent_start: u64,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        remove_dir: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    Stop,
    Start,
    KillEtcd,
    StartEtcd,
    CompactEtcd,
    Partition,
    Heal,
    Latency,
}

/// Why a command line is unusable beyond what clap checks (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("fault: give a fault kind, --latency-ms N, or both")]
    NoFault,
    #[error("fault latency: --latency-ms N is required")]
    LatencyWithoutValue,
}

/// The faults a `testbed fault` command line asks for, in order.
pub fn faults(kind: Option<FaultKind>, latency_ms: Option<u64>) -> Result<Vec<Fault>, UsageError> {
    let latency = latency_ms.map(|ms| Fault::Latency(Duration::from_millis(ms)));
    let first = match kind {
        None => None,
        Some(FaultKind::Latency) => Some(latency.ok_or(UsageError::LatencyWithoutValue)?),
        Some(FaultKind::Stop) => Some(Fault::Stop),
        Some(FaultKind::Start) => Some(Fault::Start),
        Some(FaultKind::KillEtcd) => Some(Fault::KillEtcd),
        Some(FaultKind::StartEtcd) => Some(Fault::StartEtcd),
        Some(FaultKind::CompactEtcd) => Some(Fault::CompactEtcd),
        Some(FaultKind::Partition) => Some(Fault::Partition),
        Some(FaultKind::Heal) => Some(Fault::Heal),
    };
    let mut out: Vec<Fault> = first.into_iter().collect();
    if kind != Some(FaultKind::Latency) {
        out.extend(latency);
    }
    if out.is_empty() {
        return Err(UsageError::NoFault);
    }
    Ok(out)
}

pub fn parse_clusters(texts: &[String]) -> Result<Vec<ClusterSpec>, TestbedError> {
    if texts.is_empty() {
        return Ok(TestbedOptions::default_three(false).clusters);
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| ClusterSpec::parse(t, i))
        .collect()
}

/// Runs `up`: prints where things are on stdout, leaves the processes running.
pub async fn up(dir: PathBuf, clusters: &[String], aws: bool) -> Result<(), TestbedError> {
    let started = std::time::Instant::now();
    let opts = TestbedOptions {
        dir: Some(dir),
        clusters: parse_clusters(clusters)?,
        aws,
        keep_dir: true,
        assets: None,
    };
    let tb = Testbed::up_detachable(opts).await?;
    let kubeconfig = tb.kubeconfig_path();
    let servers: Vec<(String, String)> = tb
        .clusters()
        .iter()
        .map(|c| (c.name.clone(), c.server.clone()))
        .collect();
    let env = tb.aws_env();
    let dir = tb.detach();
    println!(
        "testbed up in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    for (name, server) in servers {
        println!("  {name}  {server}");
    }
    println!("export KUBECONFIG={}", kubeconfig.display());
    if !env.is_empty() {
        println!(
            "set -a; . {}; set +a   # the AWS environment",
            dir.join("env").display()
        );
    }
    println!("testbed down --dir {}", dir.display());
    Ok(())
}

pub async fn fault(dir: PathBuf, cluster: &str, faults: &[Fault]) -> Result<(), TestbedError> {
    let state = Mutex::new(State::load(&dir)?);
    for f in faults {
        crate::cluster::fault(&state, cluster, *f).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn fault_arguments_combine() {
        let ms = |n| Fault::Latency(Duration::from_millis(n));
        assert_eq!(faults(Some(FaultKind::Stop), None).unwrap(), [Fault::Stop]);
        assert_eq!(faults(None, Some(200)).unwrap(), [ms(200)]);
        assert_eq!(faults(Some(FaultKind::Latency), Some(5)).unwrap(), [ms(5)]);
        assert_eq!(
            faults(Some(FaultKind::Heal), Some(0)).unwrap(),
            [Fault::Heal, ms(0)]
        );
        assert_eq!(
            faults(Some(FaultKind::CompactEtcd), None).unwrap(),
            [Fault::CompactEtcd]
        );
        assert!(faults(Some(FaultKind::Latency), None).is_err());
        assert!(faults(None, None).is_err());
    }

    #[test]
    fn up_parses_cluster_flags() {
        let cli = Cli::try_parse_from([
            "testbed",
            "up",
            "--dir",
            "/d",
            "--cluster",
            "a-k8s",
            "--cluster",
            "b-k8s@999999999999",
            "--aws",
        ])
        .unwrap();
        let Command::Up { clusters, aws, .. } = cli.command else {
            panic!("not up")
        };
        assert!(aws);
        let specs = parse_clusters(&clusters).unwrap();
        assert_eq!(specs[0], ClusterSpec::new("a-k8s", "111111111111"));
        assert_eq!(specs[1], ClusterSpec::new("b-k8s", "999999999999"));
        assert!(
            Cli::try_parse_from([
                "testbed",
                "fault",
                "--dir",
                "/d",
                "--cluster",
                "a",
                "explode"
            ])
            .is_err()
        );
    }
}
