//! The worlds the scenario tests run in: three clusters with admin clients, a namespace in all of
//! them and sync-daemon started as the sync suites start it (`World`), and the AWS world of the
//! token tests, shared or already running (`AwsWorld`). Test-only API: failures panic.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kube::Client;

use crate::daemon::Daemon;
use crate::{MGMT, PROJECT, PROJECT2, Testbed, error_chain, k8s};

pub struct World<'a> {
    pub tb: &'a Testbed,
    pub mgmt: Client,
    pub project: Client,
    pub project2: Client,
}

impl World<'static> {
    /// The world of the shared testbed of this test binary (`Testbed::shared`).
    pub async fn shared() -> World<'static> {
        World::on(Testbed::shared()).await
    }
}

impl<'a> World<'a> {
    /// The world of `tb`, which runs the three clusters of `TestbedOptions::default_three`.
    pub async fn on(tb: &'a Testbed) -> World<'a> {
        World {
            tb,
            mgmt: tb.admin_client(MGMT).await,
            project: tb.admin_client(PROJECT).await,
            project2: tb.admin_client(PROJECT2).await,
        }
    }

    /// The testbed's admin kubeconfig (every cluster a context), as a command-line argument.
    pub fn kubeconfig(&self) -> String {
        self.tb.kubeconfig_path().display().to_string()
    }

    /// Every cluster with its client, mc-mgmt first.
    pub fn all(&self) -> [(&'static str, &Client); 3] {
        [
            (MGMT, &self.mgmt),
            (PROJECT, &self.project),
            (PROJECT2, &self.project2),
        ]
    }

    /// Namespace `ns` (without labels) in every cluster.
    pub async fn ns_everywhere(&self, ns: &str) {
        for (_, c) in self.all() {
            if let Err(e) = k8s::ensure_ns(c, ns, &[]).await {
                panic!("{}", error_chain(&e));
            }
        }
    }

    /// Deletes `namespaces` in every cluster, best effort.
    pub async fn cleanup(&self, namespaces: &[&str]) {
        for (_, c) in self.all() {
            for ns in namespaces {
                k8s::delete_ns(c, ns).await;
            }
        }
    }

    /// `sync-daemon run ARGS` as the sync scenarios start it (`start_daemon`), in the testbed's
    /// directory.
    pub fn daemon(&self, tag: &str, args: &[&str]) -> Daemon {
        start_daemon(self.tb.dir(), tag, args)
    }

    /// The daemon of mc-mgmt (`--cluster-name mc-mgmt`) for the sources of `source_ns`, plus
    /// `extra` flags.
    pub fn mgmt_daemon(&self, tag: &str, source_ns: &str, extra: &[&str]) -> Daemon {
        let kc = self.kubeconfig();
        let mut args = vec![
            "--kubeconfig-file",
            &kc,
            "--cluster-name",
            "mc-mgmt",
            "--config-source-namespace",
            source_ns,
        ];
        args.extend_from_slice(extra);
        self.daemon(tag, &args)
    }
}

/// `sync-daemon run ARGS` as the sync scenarios start it: debug logs of the daemon itself in
/// DIR/sync-daemon-TAG.log, the admin server on any free port (several daemons run at once).
pub fn start_daemon(dir: &Path, tag: &str, args: &[&str]) -> Daemon {
    let started = Daemon::command("run")
        .args(args)
        .env("RUST_LOG", "warn,sync_daemon=debug")
        .env("NO_COLOR", "1")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .log(dir.join(format!("sync-daemon-{tag}.log")))
        .spawn();
    match started {
        Ok(d) => d,
        Err(e) => panic!("{}", error_chain(&e)),
    }
}

/// Runs `sync-daemon once ARGS`: (exit code, stderr).
pub fn once(args: &[&str]) -> (i32, String) {
    let ran = Daemon::command("once")
        .args(args)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .output();
    match ran {
        Ok(out) => (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(e) => panic!("{}", error_chain(&e)),
    }
}

/// The testbed the AWS tests run against: the shared one of this test binary or, when
/// `KCS_TESTBED_DIR` names the directory of a running `testbed up --aws`, that one (quick
/// iteration on the verifier or the token code without starting clusters on every run).
#[derive(Clone, Copy)]
pub enum AwsWorld {
    Shared(&'static Testbed),
    Dir(&'static Path),
}

impl AwsWorld {
    pub fn get() -> AwsWorld {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        match DIR.get_or_init(|| std::env::var_os("KCS_TESTBED_DIR").map(PathBuf::from)) {
            Some(dir) => AwsWorld::Dir(dir.as_path()),
            None => AwsWorld::Shared(Testbed::shared()),
        }
    }

    pub fn dir(self) -> PathBuf {
        match self {
            AwsWorld::Shared(tb) => tb.dir().to_path_buf(),
            AwsWorld::Dir(d) => d.to_path_buf(),
        }
    }

    pub fn kubeconfig_path(self) -> PathBuf {
        self.dir().join("kubeconfig")
    }

    /// DIR/env as pairs: the AWS endpoints, region and profiles of the testbed.
    pub fn aws_env(self) -> Vec<(String, String)> {
        match self {
            AwsWorld::Shared(tb) => tb.aws_env(),
            AwsWorld::Dir(d) => {
                if !d.join("env").is_file() {
                    panic!(
                        "{} has no env: not a testbed started with --aws",
                        d.display()
                    );
                }
                crate::read_env(d)
            }
        }
    }

    /// The kubectl of the clusters' version with KUBECONFIG set.
    pub fn kubectl(self) -> Command {
        match self {
            AwsWorld::Shared(tb) => tb.kubectl(),
            AwsWorld::Dir(d) => {
                let kubectl = match crate::assets::kubectl_for_dir(d) {
                    Ok(k) => k,
                    Err(e) => panic!("{}", error_chain(&e)),
                };
                let mut cmd = Command::new(kubectl);
                cmd.env("KUBECONFIG", d.join("kubeconfig"));
                cmd
            }
        }
    }

    /// The admin kube::Config of `cluster` (context of DIR/kubeconfig).
    pub async fn admin_config(self, cluster: &str) -> kube::Config {
        crate::context_config(&self.kubeconfig_path(), cluster).await
    }

    /// An admin client of `cluster` through its proxy.
    pub async fn admin_client(self, cluster: &str) -> Client {
        match self {
            AwsWorld::Shared(tb) => tb.admin_client(cluster).await,
            AwsWorld::Dir(_) => match Client::try_from(self.admin_config(cluster).await) {
                Ok(c) => c,
                Err(e) => panic!("cannot build an admin client for {cluster}: {e}"),
            },
        }
    }
}
