//! DIR/state.json (everything needed to find, fault and stop a running testbed from another
//! process) and DIR/kubeconfig (admin, one context per cluster, current = the first).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::TestbedError;
use crate::procs::{ProcRecord, write_file};

pub const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub dir: PathBuf,
    /// The Kubernetes version the apiservers report (`v1.20.2`, `v1.32.0-rc.0`).
    #[serde(default)]
    pub version: String,
    /// Where the Kubernetes binaries (and the matching kubectl) came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<PathBuf>,
    pub aws: bool,
    pub clusters: Vec<ClusterState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awsworld: Option<AwsState>,
    /// The reaper of a testbed started through the Rust API (none for `testbed up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper: Option<ProcRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub account: String,
    /// https://127.0.0.1:<proxy port>: what clients use, and where network faults apply.
    pub server: String,
    /// https://127.0.0.1:<apiserver port>: bypasses the proxy.
    pub direct_server: String,
    pub ca_file: PathBuf,
    pub admin_token_file: PathBuf,
    /// arn:aws:eks:<region>:<account>:cluster/<name> when the AWS world runs, else empty.
    pub arn: String,
    pub ports: Ports,
    /// Keys: "proxy", "etcd", "apiserver", "controller-manager".
    pub processes: BTreeMap<String, ProcRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ports {
    pub proxy: u16,
    pub proxy_control: u16,
    pub apiserver: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AwsState {
    pub moto_port: u16,
    pub verifier_port: u16,
    pub process: Option<ProcRecord>,
}

impl State {
    pub fn load(dir: &Path) -> Result<State, TestbedError> {
        let path = dir.join(STATE_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| TestbedError::io("read", &path, e))?;
        serde_json::from_str(&text).map_err(|source| TestbedError::State { path, source })
    }

    pub fn save(&self) -> Result<(), TestbedError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| TestbedError::Encode {
            what: "state.json",
            source: Box::new(e),
        })?;
        write_file(&self.dir.join(STATE_FILE), &text, 0o600)
    }

    pub fn cluster(&self, name: &str) -> Result<&ClusterState, TestbedError> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| TestbedError::UnknownCluster(name.to_string()))
    }

    pub fn cluster_mut(&mut self, name: &str) -> Result<&mut ClusterState, TestbedError> {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| TestbedError::UnknownCluster(name.to_string()))
    }

    /// Every recorded process, in the order to stop them: controller-managers and apiservers
    /// before their etcds, proxies, the AWS world, and the reaper last.
    pub fn processes(&self) -> Vec<(String, &ProcRecord)> {
        let mut out = Vec::new();
        for role in ["controller-manager", "apiserver", "etcd", "proxy"] {
            for c in &self.clusters {
                if let Some(p) = c.processes.get(role) {
                    out.push((format!("{}/{role}", c.name), p));
                }
            }
        }
        if let Some(p) = self.awsworld.as_ref().and_then(|a| a.process.as_ref()) {
            out.push(("awsworld".to_string(), p));
        }
        if let Some(p) = &self.reaper {
            out.push(("reaper".to_string(), p));
        }
        out
    }

    pub fn any_running(&self) -> bool {
        self.processes().iter().any(|(_, p)| p.is_running())
    }
}

/// One kubeconfig entry: where a cluster is and how the admin reaches it.
pub struct KubeconfigEntry<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub token: &'a str,
}

/// Renders an admin kubeconfig (YAML) with one cluster, user and context per entry, named after
/// the cluster; current-context is the first. The CA is embedded so the file stands alone.
pub fn render_kubeconfig(entries: &[KubeconfigEntry<'_>]) -> Result<String, TestbedError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let clusters: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({"name": e.name, "cluster": {
                "server": e.server, "certificate-authority-data": b64.encode(e.ca_pem)}})
        })
        .collect();
    let users: Vec<_> = entries
        .iter()
        .map(|e| json!({"name": format!("{}-admin", e.name), "user": {"token": e.token}}))
        .collect();
    let contexts: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({"name": e.name, "context": {"cluster": e.name, "user": format!("{}-admin", e.name)}})
        })
        .collect();
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": entries.first().map(|e| e.name).unwrap_or_default(),
        "preferences": {},
    });
    serde_saphyr::to_string(&doc).map_err(|e| TestbedError::Encode {
        what: "kubeconfig",
        source: Box::new(e),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_with_kube_and_names_contexts_after_clusters() {
        let text = render_kubeconfig(&[
            KubeconfigEntry {
                name: "a-k8s",
                server: "https://127.0.0.1:1",
                ca_pem: "PEM",
                token: "t1",
            },
            KubeconfigEntry {
                name: "b-k8s",
                server: "https://127.0.0.1:2",
                ca_pem: "PEM",
                token: "t2",
            },
        ])
        .unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("a-k8s"));
        let names: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a-k8s", "b-k8s"]);
        let b = kc.clusters.iter().find(|c| c.name == "b-k8s").unwrap();
        assert_eq!(
            b.cluster.as_ref().unwrap().server.as_deref(),
            Some("https://127.0.0.1:2")
        );
    }

    #[test]
    fn processes_are_ordered_for_shutdown() {
        let rec = |pid| ProcRecord {
            pid,
            start_time: 0,
            argv: vec![],
            log: PathBuf::new(),
        };
        let mut procs = BTreeMap::new();
        procs.insert("etcd".to_string(), rec(1));
        procs.insert("apiserver".to_string(), rec(2));
        procs.insert("proxy".to_string(), rec(3));
        let state = State {
            clusters: vec![ClusterState {
                name: "c".into(),
                account: "1".into(),
                server: String::new(),
                direct_server: String::new(),
                ca_file: PathBuf::new(),
                admin_token_file: PathBuf::new(),
                arn: String::new(),
                ports: Ports::default(),
                processes: procs,
            }],
            reaper: Some(rec(4)),
            ..State::default()
        };
        let order: Vec<u32> = state.processes().iter().map(|(_, p)| p.pid).collect();
        assert_eq!(order, [2, 1, 3, 4]);
    }
}
