//! The real sync-daemon process under test: a kubeconfig naming the source and the first N
//! followers, start/stop by pid, its RSS, and the lines it logged.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kube::config::Kubeconfig;

/// The userAgent prefix the daemon sends: audit events are attributed to it by this.
pub const AGENT: &str = "kubed-cross-sync/";

/// The sync-daemon binary: $KCS_SYNC_DAEMON, else the one built beside this executable
/// (target/<profile>/, also from target/<profile>/deps/ for test binaries).
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KCS_SYNC_DAEMON") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locate this executable")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join("sync-daemon");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "no sync-daemon binary beside {}: build it with the same profile (cargo build [--release] -p sync-daemon) or set KCS_SYNC_DAEMON",
        exe.display()
    )
}

/// Writes a kubeconfig with the contexts `source` + `followers` of the admin kubeconfig,
/// current-context = source.
pub fn subset_kubeconfig(
    admin: &Path,
    source: &str,
    followers: &[String],
    out: &Path,
) -> Result<()> {
    let kc = Kubeconfig::read_from(admin).context("read the testbed kubeconfig")?;
    let keep: Vec<&str> = std::iter::once(source)
        .chain(followers.iter().map(String::as_str))
        .collect();
    let mut sub = kc.clone();
    sub.contexts.retain(|c| keep.contains(&c.name.as_str()));
    let clusters: Vec<String> = sub
        .contexts
        .iter()
        .filter_map(|c| c.context.as_ref().map(|x| x.cluster.clone()))
        .collect();
    sub.clusters.retain(|c| clusters.contains(&c.name));
    sub.current_context = Some(source.to_string());
    let yaml = serde_saphyr::to_string(&sub).context("serialise the kubeconfig")?;
    std::fs::write(out, yaml).with_context(|| format!("write {}", out.display()))?;
    Ok(())
}

pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl Daemon {
    /// `sync-daemon run` against `kubeconfig`, syncing sources of `namespace`.
    pub fn start(kubeconfig: &Path, namespace: &str, resync: &str, log: &Path) -> Result<Daemon> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(binary()?)
            .args(["run", "--kubeconfig-file"])
            .arg(kubeconfig)
            .args([
                "--config-source-namespace",
                namespace,
                "--cluster-name",
                "bench-source",
                "--resync-period",
                resync,
                // Any free port: several daemons (and other helpers' tests) may run at once.
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("start sync-daemon")?;
        Ok(Daemon {
            child,
            log: log.to_path_buf(),
            started,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Fails when the process has exited (with the tail of its log).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "sync-daemon exited ({status}); log tail:\n{}",
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.signal(rustix::process::Signal::TERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL now (the fault suite's crash).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = i32::try_from(self.pid())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
