//! The sync-daemon process under test: one builder for every way the tests and the bench start
//! it (subcommand, flags, environment, log file), and one handle to wait for it, read its log,
//! ask its admin server and stop it (SIGTERM, SIGKILL).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::TestbedError;
use crate::{bins, procs};

/// The environment variable and value the Dockerfile sets for glibc's allocator (see its
/// comment): the daemon under test runs with it, so tests and benchmarks measure what the image
/// ships. `image_contract.rs` checks the Dockerfile says the same.
pub const IMAGE_TUNABLES: (&str, &str) = ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072");

/// How long one admin-server request may take before it counts as no answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// A sync-daemon command line and environment, from `Daemon::builder`, `Daemon::command`,
/// `Daemon::bare` or `Daemon::scoped`; `spawn` starts it in the background, `output` runs it
/// to the end (`once`, `status`). The binary is `bins::sync_daemon()` (`KCS_SYNC_DAEMON`).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct DaemonBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_clear: bool,
    log: Option<PathBuf>,
    admin: Option<String>,
}

impl DaemonBuilder {
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--kubeconfig-file PATH`.
    pub fn kubeconfig(self, path: impl AsRef<Path>) -> Self {
        self.arg("--kubeconfig-file").arg(path.as_ref())
    }

    /// `--cluster-name NAME`: the value of `origin.cluster` on the daemon's copies.
    pub fn cluster_name(self, name: &str) -> Self {
        self.arg("--cluster-name").arg(name)
    }

    /// `--config-source-namespace NS`: sources of this namespace only.
    pub fn source_namespace(self, ns: &str) -> Self {
        self.arg("--config-source-namespace").arg(ns)
    }

    /// `--resync-period PERIOD` (e.g. "30s").
    pub fn resync_period(self, period: &str) -> Self {
        self.arg("--resync-period").arg(period)
    }

    /// `--metrics-addr ADDR` (the admin server; "127.0.0.1:0" for any free port).
    pub fn metrics_addr(self, addr: &str) -> Self {
        self.arg("--metrics-addr").arg(addr)
    }

    /// The admin server on `addr` through `METRICS_ADDR` (the command line stays as given), and
    /// the address `Daemon::get` and `Daemon::wait_ready` ask.
    pub fn admin_env(self, addr: &str) -> Self {
        self.env("METRICS_ADDR", addr).admin_addr(addr)
    }

    /// The address `Daemon::get` and `Daemon::wait_ready` ask, when the command line sets it.
    pub fn admin_addr(mut self, addr: &str) -> Self {
        self.admin = Some(addr.to_string());
        self
    }

    /// One environment variable; a later one of the same name wins.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Start from an empty environment (as a pod, or a distroless image, has).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Where stderr (the daemon's log) goes; the file is created afresh.
    pub fn log(mut self, path: impl AsRef<Path>) -> Self {
        self.log = Some(path.as_ref().to_path_buf());
        self
    }

    fn command(&self) -> Result<(Command, PathBuf), TestbedError> {
        let program = bins::sync_daemon()?;
        let mut cmd = Command::new(&program);
        if self.env_clear {
            cmd.env_clear();
        }
        // As the image runs it (its ENV), unless a test says otherwise.
        cmd.env(IMAGE_TUNABLES.0, IMAGE_TUNABLES.1);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        Ok((cmd, program))
    }

    /// Starts the daemon in the background, stdout discarded, stderr into the log.
    pub fn spawn(self) -> Result<Daemon, TestbedError> {
        let Some(log) = self.log.clone() else {
            return Err(TestbedError::DaemonUsage(
                "no log file given (DaemonBuilder::log)",
            ));
        };
        let (mut cmd, program) = self.command()?;
        let err = std::fs::File::create(&log).map_err(|e| TestbedError::io("create", &log, e))?;
        let started = Instant::now();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|source| TestbedError::Spawn {
                what: bins::SYNC_DAEMON.to_string(),
                program: program.display().to_string(),
                source,
            })?;
        Ok(Daemon {
            child,
            log,
            started,
            admin: self.admin,
        })
    }

    /// Runs the command to its end: exit status, stdout and stderr (the log is not used).
    pub fn output(self) -> Result<Output, TestbedError> {
        let (mut cmd, program) = self.command()?;
        cmd.output().map_err(|source| TestbedError::Spawn {
            what: bins::SYNC_DAEMON.to_string(),
            program: program.display().to_string(),
            source,
        })
    }
}

/// A running sync-daemon; SIGKILLed (by its pid) when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    started: Instant,
    admin: Option<String>,
}

impl Daemon {
    /// `sync-daemon run --kubeconfig-file KUBECONFIG`, to which the caller adds its flags.
    pub fn builder(kubeconfig: impl AsRef<Path>) -> DaemonBuilder {
        Daemon::command("run").kubeconfig(kubeconfig)
    }

    /// `sync-daemon SUBCOMMAND` (`run`, `once`, `status`), nothing else yet.
    pub fn command(subcommand: &str) -> DaemonBuilder {
        DaemonBuilder::default().arg(subcommand)
    }

    /// `sync-daemon` with an empty command line, for one given verbatim (the seed's args, the
    /// Deployment's).
    pub fn bare() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// `run` as the bench and the fault and load suites start it: the sources of `namespace`,
    /// `--cluster-name bench-source`, this resync period, the admin server on any free port
    /// (several daemons run at once), info logs.
    pub fn scoped(kubeconfig: impl AsRef<Path>, namespace: &str, resync: &str) -> DaemonBuilder {
        Daemon::builder(kubeconfig)
            .source_namespace(namespace)
            .cluster_name("bench-source")
            .resync_period(resync)
            .metrics_addr("127.0.0.1:0")
            .env("RUST_LOG", "info")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Everything the daemon has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// When the process was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The admin server's address, when the builder was told it.
    pub fn admin(&self) -> Option<&str> {
        self.admin.as_deref()
    }

    /// The exit status once the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails when the process has exited, with the last 20 lines of its log.
    pub fn check_alive(&mut self) -> Result<(), TestbedError> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(TestbedError::DaemonExited {
                status: status.to_string(),
                log: self.log.clone(),
                tail: procs::log_tail(&self.log, 20),
            }),
        }
    }

    /// Panics (test-only API) with the whole log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("sync-daemon exited ({status}); log:\n{}", self.log_text());
        }
    }

    /// Waits until the admin server's /readyz answers 200 (caches synced, every cluster probed);
    /// fails early when the process exits, or after `deadline`.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), TestbedError> {
        let end = Instant::now() + deadline;
        let mut last = "no answer yet".to_string();
        loop {
            self.check_alive()?;
            match self.get("/readyz").await {
                Some((200, _)) => return Ok(()),
                Some((code, body)) => last = format!("{code}: {}", body.trim()),
                None if self.admin.is_none() => last = "no admin address given".to_string(),
                None => {}
            }
            if Instant::now() >= end {
                return Err(TestbedError::NotReady {
                    what: "sync-daemon /readyz".to_string(),
                    secs: deadline.as_secs(),
                    last,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// GET `path` from the admin server: (status, body); None when nothing answers (yet).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin.as_deref()?, path, ADMIN_TIMEOUT).await
    }

    /// The value of one metric sample line (`name{labels}` exactly as exposed).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        metric_value(&body, sample)
    }

    /// (VmRSS, VmHWM) in KiB, while the process runs.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let pid = self.pid();
        Some((
            procs::status_kib(pid, "VmRSS:")?,
            procs::status_kib(pid, "VmHWM:")?,
        ))
    }

    /// Sends SIGTERM (the graceful stop a kubelet asks for).
    pub fn sigterm(&self) {
        self.signal(Signal::TERM);
    }

    /// Waits for the process to end; None if it still runs after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.sigterm();
        if self.wait_exit(grace).is_none() {
            self.kill_now();
        }
    }

    /// SIGKILL now: a crash, as far as the clusters can tell.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = i32::try_from(self.pid()).ok().and_then(Pid::from_raw) {
            // ESRCH (already gone) is the expected race.
            let _ = kill_process(pid, sig);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill_now();
        }
    }
}

/// HTTP/1.0 GET of `path` on `addr`: (status, body); None when nothing answers within `timeout`.
pub async fn http_get(addr: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(timeout, s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    parse_response(&String::from_utf8_lossy(&buf))
}

/// (status, body) of an HTTP/1.x response.
fn parse_response(text: &str) -> Option<(u16, String)> {
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The value of the sample `sample` (`name{labels}` exactly as exposed) in a /metrics body.
pub fn metric_value(body: &str, sample: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(sample)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builders_spell_the_flags_in_order() {
        let b = Daemon::scoped("/k", "ns", "30s");
        let args: Vec<_> = b.args.iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "run",
                "--kubeconfig-file",
                "/k",
                "--config-source-namespace",
                "ns",
                "--cluster-name",
                "bench-source",
                "--resync-period",
                "30s",
                "--metrics-addr",
                "127.0.0.1:0"
            ]
        );
        let ops = Daemon::bare().arg("run").admin_env("127.0.0.1:9");
        assert_eq!(ops.admin.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(ops.env[0].1, "127.0.0.1:9");
    }

    #[test]
    fn metric_samples_and_responses_parse() {
        let body = "# HELP x\nkcs_leader 1\nkcs_cluster_up{cluster=\"a\"} 0\n";
        assert_eq!(metric_value(body, "kcs_leader"), Some(1.0));
        assert_eq!(
            metric_value(body, r#"kcs_cluster_up{cluster="a"}"#),
            Some(0.0)
        );
        assert_eq!(metric_value(body, "kcs_cluster_up"), None);
        let r = parse_response("HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\nnot ready\n");
        assert_eq!(r, Some((503, "not ready\n".to_string())));
    }

    #[test]
    fn spawn_without_a_log_is_refused_before_any_lookup() {
        let err = Daemon::builder("/k").spawn().err().unwrap();
        assert!(matches!(err, TestbedError::DaemonUsage(_)), "{err}");
    }
}
