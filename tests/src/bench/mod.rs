//! The benchmark harness behind `bench` (`make bench`): real testbed apiservers, the real
//! sync-daemon process, figures from watch timestamps, the daemon's /proc status and the
//! apiservers' audit logs, as a Markdown report (BENCHMARKS.md's figures; its method section).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::daemon::Daemon;
use crate::{ClusterSpec, Testbed, TestbedError, TestbedOptions, audit, default_account, k8s};

mod fleet;
mod fleet_setup;
mod latency;
mod memory;
mod phases;
mod procstat;
mod stats;
mod sts;

/// What can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown phase {0:?} (latency, throughput, steady, memory, fleet)")]
    UnknownPhase(String),

    #[error("cannot {action}")]
    Testbed {
        action: &'static str,
        #[source]
        source: TestbedError,
    },

    #[error(transparent)]
    Harness(#[from] TestbedError),

    #[error("cannot {action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    #[error("cannot read an audit log")]
    Audit(#[source] std::io::Error),

    #[error("the follower watches ended")]
    WatchesEnded,

    #[error("value {value:?} did not reach followers {missing:?} within {deadline:?}")]
    NotArrived {
        value: String,
        missing: Vec<usize>,
        deadline: Duration,
    },

    #[error("the daemon never went quiet")]
    NeverQuiet,

    #[error("copies after {deadline:?}: {got:?} (want {want} each)")]
    CopiesMissing {
        deadline: Duration,
        got: Vec<usize>,
        want: usize,
    },

    #[error("the testbed has no AWS world (the fleet phase starts it with --aws)")]
    NoAws,

    #[error("cannot read the daemon's /proc status")]
    NoMemoryFigures,

    #[error("namespaces {names:?} still there after {deadline:?}")]
    NamespacesLeft {
        names: Vec<String>,
        deadline: Duration,
    },

    #[error("cannot format the report")]
    Format(#[from] std::fmt::Error),
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bench",
    about = "sync-daemon benchmarks against testbed clusters"
)]
pub struct Args {
    /// Which measurements to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "latency,throughput,steady,memory,fleet"
    )]
    pub phases: Vec<String>,
    /// Follower counts for the propagation latency (the largest also sets the cluster count).
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    pub latency_followers: Vec<usize>,
    /// Runs per measurement (figures are medians over runs).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Source updates per latency run.
    #[arg(long, default_value_t = 20)]
    pub updates: usize,
    /// Sources for the initial-sync throughput.
    #[arg(long, default_value_t = 1000)]
    pub sources: usize,
    /// Followers for the initial-sync throughput.
    #[arg(long, default_value_t = 10)]
    pub throughput_followers: usize,
    /// Requests in flight per follower for the second, concurrent ceiling.
    #[arg(long, default_value_t = 8)]
    pub ceiling_concurrency: usize,
    /// Length of each idle window for the steady-state request count.
    #[arg(long, default_value_t = 120)]
    pub idle_secs: u64,
    /// The daemon's --resync-period during the benchmarks.
    #[arg(long, default_value = "60s")]
    pub resync: String,
    /// Source counts for the memory table.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub mem_sources: Vec<usize>,
    /// Follower counts for the memory table.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    pub mem_followers: Vec<usize>,
    /// Every memory run makes its copies afresh (cold starts), then two restarts over the last.
    #[arg(long)]
    pub mem_cold: bool,
    /// The memory phase reads RSS again this long after the first reading.
    #[arg(long, default_value_t = 12)]
    pub mem_late_secs: u64,
    /// Follower contexts for the fleet phase; beyond --fleet-clusters, contexts become aliases
    /// (a namespace of their own) of the clusters already there.
    #[arg(long, value_delimiter = ',', default_value = "1,10,30")]
    pub fleet_followers: Vec<usize>,
    /// Distinct follower clusters (apiservers) the fleet phase starts at most.
    #[arg(long, default_value_t = 10)]
    pub fleet_clusters: usize,
    /// Sources (1 KiB ConfigMaps, synced to every context) for the fleet's first sync.
    #[arg(long, default_value_t = 100)]
    pub fleet_sources: usize,
    /// Length of the fleet's idle window (token renewals, requests, connections).
    #[arg(long, default_value_t = 90)]
    pub fleet_idle_secs: u64,
    /// Token lifetime in seconds given to `kubeconfig-gen token` in the fleet phase (its
    /// test-only KUBECONFIG_GEN_TEST_TOKEN_LIFETIME, 10 to 840).
    #[arg(long, default_value_t = 40)]
    pub token_lifetime: u64,
    /// Size of the Secret fanned out to every fleet context, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub fanout_kib: usize,
    /// Testbed directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The Kubernetes binaries to run (a directory with kube-apiserver, kube-controller-manager,
    /// etcd, kubectl; default: $KUBE_TEST_ASSETS, e.g. /var/cache/kubed-cross-sync/versions/v1.32.0-rc.0).
    #[arg(long, value_name = "DIR")]
    pub kube_assets: Option<PathBuf>,
    /// Also write the report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The testbed, its admin clients (index 0 = source) and the cluster names.
pub struct World {
    pub tb: Testbed,
    pub names: Vec<String>,
    pub clients: Vec<kube::Client>,
    pub work: PathBuf,
    pub resync: String,
}

impl World {
    pub fn followers(&self, n: usize) -> Vec<String> {
        self.names[1..=n].to_vec()
    }

    /// A kubeconfig with the source and the first `n` followers.
    pub fn kubeconfig(&self, n: usize) -> Result<PathBuf, BenchError> {
        let p = self.work.join(format!("kubeconfig-{n}"));
        crate::kubeconfig::write_subset(
            &self.tb.kubeconfig_path(),
            &self.names[0],
            &self.followers(n),
            &p,
        )?;
        Ok(p)
    }

    pub fn audit_marks(&self, n: usize) -> Vec<audit::Mark> {
        self.names[..=n]
            .iter()
            .map(|c| audit::Mark::now(&self.tb.audit_log(c)))
            .collect()
    }

    /// Creates `ns` in the source and the first `n` followers.
    pub async fn namespace(&self, ns: &str, n: usize) -> Result<(), BenchError> {
        for c in &self.clients[..=n] {
            k8s::ensure_ns(c, ns, &[]).await?;
        }
        Ok(())
    }

    /// Deletes `namespaces` in every cluster and waits until they are gone, with all they held:
    /// each run then starts from the same testbed. Without it, every run leaves 30,000 more
    /// ConfigMaps in each follower, and the daemon's start-up list of its copies (a label
    /// selector, which etcd answers by reading every ConfigMap) takes 2 s at 30,000 and 3 s at
    /// 60,000 on v1.20.2, so later runs measured the testbed's history rather than the sync.
    pub async fn remove_namespaces(&self, namespaces: &[String]) -> Result<(), BenchError> {
        let deadline = Duration::from_secs(600);
        for c in &self.clients {
            for ns in namespaces {
                k8s::delete_ns(c, ns).await;
            }
        }
        let start = Instant::now();
        loop {
            let mut left = Vec::new();
            for (c, name) in self.clients.iter().zip(&self.names) {
                let api = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(c.clone());
                for ns in namespaces {
                    let there = api.get_opt(ns).await.map_err(|source| BenchError::Kube {
                        action: format!("read namespace {ns} in {name}"),
                        source,
                    })?;
                    if there.is_some() {
                        left.push(format!("{name}/{ns}"));
                    }
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(BenchError::NamespacesLeft {
                    names: left,
                    deadline,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn daemon(&self, n: usize, ns: &str, tag: &str) -> Result<Daemon, BenchError> {
        let log = self.work.join(format!("daemon-{tag}.log"));
        Ok(Daemon::scoped(self.kubeconfig(n)?, ns, &self.resync)
            .log(log)
            .spawn()?)
    }
}

fn machine() -> String {
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    format!(
        "- `nproc`: {}\n- CPU: {cpu}\n- `free -g`:\n```\n{}\n```\n- load average at start: {}\n- kernel: {}\n",
        sh("nproc"),
        sh("free -g"),
        sh("cut -d' ' -f1-3 /proc/loadavg"),
        sh("uname -r"),
    )
}

/// The clusters the phases asked for need: a source and the most followers any phase uses.
fn clusters(args: &Args) -> Vec<ClusterSpec> {
    let mut needed = args.latency_followers.iter().copied().max().unwrap_or(1);
    if args.phases.iter().any(|p| p == "throughput") {
        needed = needed.max(args.throughput_followers);
    }
    if args.phases.iter().any(|p| p == "memory") {
        needed = needed.max(args.mem_followers.iter().copied().max().unwrap_or(1));
    }
    if args.phases.iter().any(|p| p == "fleet") {
        let most = args.fleet_followers.iter().copied().max().unwrap_or(1);
        needed = needed.max(most.min(args.fleet_clusters));
    }
    let mut clusters = vec![ClusterSpec::new("bench-src-k8s", &default_account(0))];
    for i in 1..=needed {
        clusters.push(ClusterSpec::new(
            &format!("bench-f{i}-k8s"),
            &default_account(i),
        ));
    }
    clusters
}

async fn world(args: &Args) -> Result<World, BenchError> {
    let clusters = clusters(args);
    let count = clusters.len();
    let opts = TestbedOptions {
        dir: args.dir.clone(),
        clusters,
        aws: args.phases.iter().any(|p| p == "fleet"),
        keep_dir: false,
        assets: args.kube_assets.clone(),
    };
    let started = Instant::now();
    let tb = Testbed::up(opts)
        .await
        .map_err(|source| BenchError::Testbed {
            action: "start the testbed",
            source,
        })?;
    eprintln!("bench: {count} clusters up in {:?}", started.elapsed());
    let names: Vec<String> = tb.clusters().iter().map(|c| c.name.clone()).collect();
    let mut clients = Vec::new();
    for n in &names {
        clients.push(tb.admin_client(n).await);
    }
    let work = tb.dir().join("bench");
    std::fs::create_dir_all(&work).map_err(|e| TestbedError::io("create", &work, e))?;
    Ok(World {
        tb,
        names,
        clients,
        work,
        resync: args.resync.clone(),
    })
}

const PHASES: [&str; 5] = ["latency", "throughput", "steady", "memory", "fleet"];

/// Runs the phases `args` asks for and returns the report. Each section is printed to stderr
/// (and written to `--out`) as soon as it is measured, so a run stopped early keeps them.
pub async fn run(args: &Args) -> Result<String, BenchError> {
    if let Some(p) = args.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
        return Err(BenchError::UnknownPhase(p.clone()));
    }
    eprintln!(
        "bench: sync-daemon binary {}",
        crate::bins::sync_daemon()?.display()
    );
    let assets = crate::assets::Assets::find_in(args.kube_assets.clone()).map_err(|source| {
        BenchError::Testbed {
            action: "find the Kubernetes binaries",
            source,
        }
    })?;
    eprintln!(
        "bench: Kubernetes {} from {}",
        assets.version,
        assets.dir.display()
    );
    let mut report = format!(
        "### Machine\n{}- Kubernetes: {} (`{}`)\n\n",
        machine(),
        assets.version,
        assets.dir.display()
    );
    let w = world(args).await?;
    let started = Instant::now();
    let has = |p: &str| args.phases.iter().any(|x| x == p);
    let emit = |report: &mut String, section: String| -> Result<(), BenchError> {
        eprintln!("{section}");
        report.push_str(&section);
        if let Some(out) = &args.out {
            std::fs::write(out, &*report).map_err(|e| TestbedError::io("write", out, e))?;
        }
        Ok(())
    };
    if has("latency") || has("steady") {
        let s = latency::latency(&w, args, has("latency"), has("steady")).await?;
        emit(&mut report, s)?;
    }
    if has("throughput") {
        let s = phases::throughput(&w, args, has("steady")).await?;
        emit(&mut report, s)?;
    }
    if has("memory") {
        let s = memory::memory(&w, args).await?;
        emit(&mut report, s)?;
    }
    if has("fleet") {
        let s = fleet::fleet(&w, args).await?;
        emit(&mut report, s)?;
    }
    let wall = format!(
        "\n_bench wall time: {:.0} s_\n",
        started.elapsed().as_secs_f64()
    );
    emit(&mut report, wall)?;
    drop(w);
    Ok(report)
}
