//! The testbed: real kube-apiservers (etcd + kube-apiserver + kube-controller-manager per
//! cluster, each behind a fault-injecting TCP proxy) and the AWS world (moto + token verifier),
//! for the end-to-end tests and the demo. Usage: README.md (Testbed).
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub mod assets;
pub mod audit;
pub mod aws;
pub mod bench;
pub mod bins;
mod certs;
pub mod cli;
mod cluster;
pub mod daemon;
mod error;
mod etcd;
pub mod k8s;
pub mod kubeconfig;
mod launch;
pub mod procs;
pub mod proxy;
mod reaper;
pub mod rng;
pub mod state;
pub mod version;
mod wait;

pub mod world;

pub use cluster::PLAIN_USER;
pub use error::TestbedError;
pub use launch::{down, status};
pub use reaper::{error_chain, reap};
pub use rng::random_hex;
pub use state::State;
pub use version::KubeVersion;
pub use wait::wait_for;

pub const REGION: &str = "eu-central-1";

/// The clusters of the shared testbed (`Testbed::shared`, `TestbedOptions::default_three`).
pub const MGMT: &str = "mc-mgmt-k8s";
pub const PROJECT: &str = "mc-project-k8s";
pub const PROJECT2: &str = "mc-project2-k8s";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub account: String,
}

impl ClusterSpec {
    pub fn new(name: &str, account: &str) -> ClusterSpec {
        ClusterSpec {
            name: name.to_string(),
            account: account.to_string(),
        }
    }

    /// `NAME` or `NAME@ACCOUNT`; without an account, the `index`-th default
    /// (111111111111, 222222222222, ...).
    pub fn parse(text: &str, index: usize) -> Result<ClusterSpec, TestbedError> {
        let bad = || TestbedError::BadClusterSpec(text.to_string());
        let (name, account) = match text.split_once('@') {
            Some((n, a)) => (n, a.to_string()),
            None => (text, default_account(index)),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
        if name_ok && account_ok {
            Ok(ClusterSpec::new(name, &account))
        } else {
            Err(bad())
        }
    }
}

/// The account of the `index`-th cluster: 111111111111, 222222222222, ... (then 000000000010, ...).
pub fn default_account(index: usize) -> String {
    match index {
        0..=8 => char::from(b'1' + index as u8).to_string().repeat(12),
        _ => format!("{:012}", index + 1),
    }
}

#[derive(Clone, Debug)]
pub struct TestbedOptions {
    /// None: a fresh temporary directory.
    pub dir: Option<PathBuf>,
    pub clusters: Vec<ClusterSpec>,
    /// Start the AWS world (moto, token verifier, webhook authentication, profiles INI).
    pub aws: bool,
    /// Keep a temporary directory after drop (a given `dir` is always kept).
    pub keep_dir: bool,
    /// The Kubernetes binaries (None: `KUBE_TEST_ASSETS`, see `assets::assets_dir`).
    pub assets: Option<PathBuf>,
}

impl TestbedOptions {
    /// mc-mgmt-k8s, mc-project-k8s and mc-project2-k8s in accounts 111…, 222…, 333….
    pub fn default_three(aws: bool) -> TestbedOptions {
        TestbedOptions::named(&[MGMT, PROJECT, PROJECT2], aws)
    }

    /// The clusters `names`, the i-th in account `default_account(i)`, in a fresh temporary
    /// directory removed afterwards.
    pub fn named<S: AsRef<str>>(names: &[S], aws: bool) -> TestbedOptions {
        let clusters = names
            .iter()
            .enumerate()
            .map(|(i, n)| ClusterSpec::new(n.as_ref(), &default_account(i)))
            .collect();
        TestbedOptions {
            dir: None,
            clusters,
            aws,
            keep_dir: false,
            assets: None,
        }
    }

    /// `n` clusters named test-1-k8s, test-2-k8s, … (for tests that need their own).
    pub fn numbered(n: usize, aws: bool) -> TestbedOptions {
        let names: Vec<String> = (1..=n).map(|i| format!("test-{i}-k8s")).collect();
        TestbedOptions::named(&names, aws)
    }
}

#[derive(Clone, Debug)]
pub struct ClusterInfo {
    pub name: String,
    pub account: String,
    /// https://127.0.0.1:<proxy port>: clients use this; faults apply to it.
    pub server: String,
    /// https://127.0.0.1:<apiserver port>: the apiserver itself, bypassing the proxy.
    pub direct_server: String,
    pub ca_file: PathBuf,
    pub ca_pem: String,
    pub admin_token: String,
    /// arn:aws:eks:eu-central-1:<account>:cluster/<name> with the AWS world, else empty.
    pub arn: String,
}

/// How a test's client of one cluster differs from the admin client (`Testbed::client`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientOpts {
    /// Straight to the apiserver, bypassing the fault proxy (writes while it is partitioned).
    pub direct: bool,
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
    /// Give up reading or writing after this long (kube's default is 295 s, longer than any test
    /// should hang on a partitioned cluster).
    pub io_timeout: Option<Duration>,
    /// No retries: kube 5 retries 429/503/504 up to 15 times, backing off to 1000 s, so a test of
    /// what the apiserver answers must turn them off to see the first answer.
    pub no_retry: bool,
}

impl ClientOpts {
    /// A client bypassing the fault proxy.
    pub fn direct() -> ClientOpts {
        ClientOpts {
            direct: true,
            ..ClientOpts::default()
        }
    }

    /// Requests that give up: connecting after `connect`, reading or writing after `io`.
    pub fn timeouts(connect: Duration, io: Duration) -> ClientOpts {
        ClientOpts {
            connect_timeout: Some(connect),
            io_timeout: Some(io),
            ..ClientOpts::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the apiserver (the port then refuses connections; the proxy resets them).
    Stop,
    /// Start the apiserver again on the same port and etcd; returns when /readyz is ok.
    Start,
    /// SIGKILL the cluster's etcd (the apiserver stays up and answers with errors).
    KillEtcd,
    /// Start etcd again on its data; returns when the apiserver's /readyz is ok again.
    StartEtcd,
    /// Compact the cluster's etcd to its current revision (physically): every older
    /// resourceVersion is gone from etcd. The apiserver's watch cache still serves its window,
    /// so a watch resumed at an old RV gets 410 once that cache restarts (Stop + Start).
    CompactEtcd,
    /// Cut every open connection through the proxy; new ones are accepted and never answered.
    Partition,
    /// End a partition and remove any latency.
    Heal,
    /// Delay every chunk of data through the proxy by this much in each direction
    /// (a request/response round trip costs twice this); zero removes it.
    Latency(Duration),
}

/// Owns the processes of a running testbed; dropping it stops all of them (by pid).
pub struct Testbed {
    dir: PathBuf,
    remove_dir: bool,
    detached: bool,
    clusters: Vec<ClusterInfo>,
    has_controller_manager: bool,
    version: KubeVersion,
    assets_dir: PathBuf,
    state: Mutex<State>,
}

impl Testbed {
    /// Starts the clusters in parallel; returns when every /readyz answers "ok" (and, with
    /// `aws`, the AWS world is ready and the aws-auth ConfigMaps exist). A reaper process
    /// stops everything if this process dies without dropping the testbed.
    pub async fn up(opts: TestbedOptions) -> Result<Testbed, TestbedError> {
        launch::launch(opts, true).await
    }

    /// Like `up`, but without a reaper: for `testbed up`, which detaches and exits.
    pub async fn up_detachable(opts: TestbedOptions) -> Result<Testbed, TestbedError> {
        launch::launch(opts, false).await
    }

    /// The testbed of this test binary (3 clusters, AWS world), started on first use; stopped
    /// by its reaper when the process exits, even on panic or abort.
    pub fn shared() -> &'static Testbed {
        reaper::shared()
    }

    /// Leaves the processes running after drop (`testbed up` uses this; `testbed down` stops them).
    pub fn detach(mut self) -> PathBuf {
        self.detached = true;
        self.dir.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Panics (test-only API) on an unknown name.
    pub fn cluster(&self, name: &str) -> &ClusterInfo {
        match self.clusters.iter().find(|c| c.name == name) {
            Some(c) => c,
            None => panic!("the testbed has no cluster named {name:?}"),
        }
    }

    pub fn clusters(&self) -> &[ClusterInfo] {
        &self.clusters
    }

    /// Whether kube-controller-manager runs (namespace deletion, garbage collection).
    pub fn has_controller_manager(&self) -> bool {
        self.has_controller_manager
    }

    /// The admin kube::Config of a cluster, read from DIR/kubeconfig (context = cluster name),
    /// for tests that adjust timeouts. Panics (test-only API) if it cannot be built.
    pub async fn admin_config(&self, cluster: &str) -> kube::Config {
        context_config(&self.kubeconfig_path(), &self.cluster(cluster).name).await
    }

    /// An admin client (system:masters) through the proxy. Create one per test: clients are
    /// bound to the tokio runtime that made them.
    pub async fn admin_client(&self, cluster: &str) -> kube::Client {
        self.client(cluster, ClientOpts::default()).await
    }

    /// An admin client as `opts` says (direct, with timeouts, without retries). Panics
    /// (test-only API) if it cannot be built.
    pub async fn client(&self, cluster: &str, opts: ClientOpts) -> kube::Client {
        let mut cfg = self.admin_config(cluster).await;
        if opts.direct {
            match self.cluster(cluster).direct_server.parse() {
                Ok(url) => cfg.cluster_url = url,
                Err(e) => panic!("the direct address of {cluster} is no URL: {e}"),
            }
        }
        if let Some(t) = opts.connect_timeout {
            cfg.connect_timeout = Some(t);
        }
        if let Some(t) = opts.io_timeout {
            cfg.read_timeout = Some(t);
            cfg.write_timeout = Some(t);
        }
        if opts.no_retry {
            cfg.default_retry = false;
        }
        match kube::Client::try_from(cfg) {
            Ok(c) => c,
            Err(e) => panic!("cannot build an admin client for {cluster}: {e}"),
        }
    }

    /// DIR/env as pairs (empty without the AWS world).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        read_env(&self.dir)
    }

    /// The Kubernetes version the clusters run (what kube-apiserver says of itself).
    pub fn version(&self) -> &KubeVersion {
        &self.version
    }

    /// The kubectl of this version (`assets::kubectl_for`) with KUBECONFIG=DIR/kubeconfig.
    /// Panics (test-only API) when that kubectl is too far from the clusters' version.
    pub fn kubectl(&self) -> std::process::Command {
        let path = match assets::kubectl_for(&self.assets_dir, &self.version) {
            Ok(p) => p,
            Err(e) => panic!("{}", error_chain(&e)),
        };
        let mut cmd = std::process::Command::new(path);
        cmd.env("KUBECONFIG", self.kubeconfig_path());
        cmd
    }

    pub async fn fault(&self, cluster: &str, fault: Fault) -> Result<(), TestbedError> {
        cluster::fault(&self.state, cluster, fault).await
    }

    /// DIR/<cluster>/audit.log: one JSON audit event (level Metadata) per request.
    pub fn audit_log(&self, cluster: &str) -> PathBuf {
        cluster::cluster_dir(&self.dir, &self.cluster(cluster).name).join("audit.log")
    }

    /// A copy of the current state (what DIR/state.json holds).
    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = launch::teardown(&state) {
            tracing::error!(error = %e, dir = %self.dir.display(), "testbed teardown incomplete");
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// DIR/env of a testbed as pairs (empty without the AWS world).
pub fn read_env(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The kube::Config of context `context` of the kubeconfig at `path`. Panics (test-only API)
/// if it cannot be loaded.
pub async fn context_config(path: &Path, context: &str) -> kube::Config {
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let loaded = match kube::config::Kubeconfig::read_from(path) {
        Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &opts).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(c) => c,
        Err(e) => panic!("cannot load the admin kubeconfig for {context}: {e}"),
    }
}

/// `KCS_SOAK` is set (to anything but empty or 0): the long versions of the fault, load and
/// model runs (`make soak`).
pub fn soak() -> bool {
    std::env::var_os("KCS_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The first of the environment variables `vars` that holds a number (blanks around it allowed):
/// a seed to replay (`KCS_MODEL_SEED`, `KCS_FAULT_SEED`) or a count (`KCS_MODEL_OPS`).
pub fn env_u64(vars: &[&str]) -> Option<u64> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| s.trim().parse().ok()))
}

/// `prefix` plus a random suffix: a fresh namespace name for one test.
pub fn unique_ns(prefix: &str) -> String {
    format!("{}-{}", prefix.trim_end_matches('-'), &rng::random_hex(4))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cluster_specs_parse_with_and_without_account() {
        let table = [
            ("mc-mgmt-k8s", 0, Some(("mc-mgmt-k8s", "111111111111"))),
            ("mc-x-k8s", 3, Some(("mc-x-k8s", "444444444444"))),
            ("a@123456789012", 0, Some(("a", "123456789012"))),
            ("a@123", 0, None),
            ("A_b", 0, None),
            ("../etc", 0, None),
            ("", 0, None),
        ];
        for (text, index, want) in table {
            let got = ClusterSpec::parse(text, index).ok();
            let want = want.map(|(n, a)| ClusterSpec::new(n, a));
            assert_eq!(got, want, "{text}");
        }
        assert_eq!(default_account(9), "000000000010");
    }

    #[test]
    fn default_three_matches_the_shared_world() {
        let o = TestbedOptions::default_three(true);
        let names: Vec<_> = o.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mc-mgmt-k8s", "mc-project-k8s", "mc-project2-k8s"]);
        assert_eq!(o.clusters[2].account, "333333333333");
        assert!(!o.keep_dir && o.dir.is_none());
    }

    #[test]
    fn unique_ns_is_a_valid_distinct_name() {
        let a = unique_ns("sync-");
        assert!(
            a.starts_with("sync-") && a.len() == "sync-".len() + 8,
            "{a}"
        );
        assert_ne!(a, unique_ns("sync-"));
    }
}
