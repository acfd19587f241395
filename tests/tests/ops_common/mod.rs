//! Helpers of the sync-daemon operations tests (issue 5): the daemon as a child process with
//! its own admin port and environment, SIGTERM, a tiny HTTP client for the admin server,
//! kubeconfig variants (dead context, exec-plugin users) and Events of any type.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use e2e::Testbed;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port nobody listens on right now (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `sync-daemon ARGS` with `--metrics-addr` (or METRICS_ADDR) on a free port.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub admin: String,
}

impl Proc {
    /// `args` start with the subcommand; METRICS_ADDR is set (the seed's args stay unchanged).
    pub fn start(dir: &Path, tag: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let log = dir.join(format!("ops-{tag}.log"));
        let err = std::fs::File::create(&log).expect("daemon log file");
        let admin = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(crate::sync_common::daemon_binary());
        cmd.args(args)
            .env("METRICS_ADDR", &admin)
            .env("RUST_LOG", "info,sync_daemon=debug")
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start sync-daemon");
        Proc { child, log, admin }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Waits for the exit (None after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("sync-daemon exited ({status}); log:\n{}", self.log_text());
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.admin, path).await
    }

    /// The value of one metric sample line (`name{labels}` exactly as exposed).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        metric_value(&body, sample)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(body: &str, sample: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(sample)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// HTTP/1.0 GET: (status, body); `None` when nothing listens yet.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The testbed's admin kubeconfig as JSON (YAML is a superset, so it can be written back as is).
pub fn kubeconfig_json(tb: &Testbed) -> Value {
    let kc = kube::config::Kubeconfig::read_from(tb.kubeconfig_path()).expect("admin kubeconfig");
    serde_json::to_value(&kc).expect("kubeconfig to json")
}

/// Adds a context `name` whose server is a closed port (an unreachable follower).
pub fn add_dead_context(kc: &mut Value, name: &str) {
    let server = format!("https://127.0.0.1:{}", free_port());
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": true}}));
    kc["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "user": {"token": "dead"}}));
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "context": {"cluster": name, "user": name}}));
}

pub fn write_kubeconfig(dir: &Path, file: &str, kc: &Value) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, serde_json::to_vec_pretty(kc).unwrap()).unwrap();
    p
}

/// Events (events.k8s.io/v1, any type) about `name` in `ns` with this reason.
pub async fn events_any(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

pub fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    crate::sync_common::labels(pairs)
}
