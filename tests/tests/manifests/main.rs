//! The packaging's manifests (manifests/), rendered by kubectl 1.32's kustomize (v5, as `make lint`
//! renders them; kubectl 1.20's v2.0 cannot read them) and applied for real with the clusters' own
//! kubectl, on v1.20 as on v1.32:
//! - they agree with each other and with the IAM policies (paths, names, groups, the IRSA subject);
//! - the follower RBAC grants the follower identity what sync-daemon does in a follower and nothing
//!   else (impersonating that identity against a real apiserver, so a missing verb is a real 403);
//! - sync-daemon, started with the Deployment's own args from a kubeconfig that kubeconfig-gen wrote
//!   with the initContainer's own args, syncs as the IAM identities the manifests bind (EKS tokens,
//!   checked by the testbed's verifier and aws-auth), and with one verb fewer it does not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod deployed;
mod lifetimes;
#[path = "../kubeconfig_gen/moto_proxy.rs"]
#[allow(dead_code)] // shared with the kubeconfig_gen tests, which use its fault modes
mod moto_proxy;
mod namespaced;
mod rbac;
mod render;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::daemon::{Daemon, DaemonBuilder, http_get};
use e2e::{MGMT, PROJECT, PROJECT2, Testbed, audit, k8s, unique_ns, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The groups the testbed's aws-auth gives the two IAM roles (notes: shared world conventions).
const MASTER_GROUP: &str = "kubed-cross-sync:master";
const FOLLOWER_GROUP: &str = "kubed-cross-sync:follower";
/// In-pod paths of the Deployment that the daemon test maps to temporary directories.
const IRSA_TOKEN: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/// The cluster tests change cluster-wide RBAC (one verb fewer): they run one at a time.
static CLUSTER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The kubectl whose kustomize renders the manifests, whatever the clusters' version: 1.32's
/// (kustomize v5), which `make setup` unpacks into the cache (scripts/setup.sh) and `make lint` and
/// `make demo` use too; `KCS_KUSTOMIZE_KUBECTL` overrides it.
fn kustomize_kubectl() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("KCS_KUSTOMIZE_KUBECTL").map_or_else(
        || {
            var("KCS_CACHE")
                .map_or_else(|| PathBuf::from(e2e::assets::DEFAULT_CACHE), PathBuf::from)
                .join("kubectl-v1.32/kubectl")
        },
        PathBuf::from,
    )
}

/// `kubectl kustomize manifests/<overlay>` with kubectl 1.32 (`kustomize_kubectl`).
fn render(overlay: &str) -> String {
    let kubectl = kustomize_kubectl();
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo().join("manifests").join(overlay))
        .output()
        .unwrap_or_else(|e| panic!("run {} kustomize (make setup): {e}", kubectl.display()));
    assert!(
        out.status.success(),
        "kubectl kustomize manifests/{overlay} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(name_prefix)
        })
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}* in the rendered manifests"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `--flag=value` (or `--flag value`) in an args list.
fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&eq)
            .map(str::to_string)
            .or_else(|| (a == name).then(|| args.get(i + 1).cloned()).flatten())
    })
}

fn mount_path(container: &Value, volume: &str) -> String {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .unwrap_or_else(|| panic!("container {} mounts no {volume}", container["name"]))["mountPath"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A minimal INI reader for the profiles file (section → key → value): enough to check its shape.
fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().into(), v.trim().into());
        }
    }
    out
}

/// The Kubernetes version of the clusters under test (the assets' kube-apiserver).
fn server_version() -> e2e::version::KubeVersion {
    let apiserver = e2e::assets::assets_dir().join("kube-apiserver");
    e2e::version::KubeVersion::of_binary(&apiserver)
        .unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)))
}

/// The mgmt overlay a cluster of the assets' version applies: `mgmt/example` with its native sidecar
/// from Kubernetes 1.29 on, `mgmt/example-plain-sidecar` before (an initContainer's restartPolicy
/// does not exist there, and kubectl rejects the field).
fn mgmt_overlay() -> &'static str {
    if server_version().at_least(1, 29) {
        "mgmt/example"
    } else {
        "mgmt/example-plain-sidecar"
    }
}

/// Rendered manifests less what the clusters' version cannot have, as the README tells an operator:
/// the PodDisruptionBudget (policy/v1) before Kubernetes 1.21.
fn for_server(yaml: &str) -> String {
    if server_version().at_least(1, 21) {
        return yaml.to_string();
    }
    yaml.split("\n---\n")
        .filter(|doc| {
            let pdb = doc.lines().any(|l| l == "kind: PodDisruptionBudget");
            if pdb {
                eprintln!(
                    "NOTE: the PodDisruptionBudget is left out: policy/v1 needs Kubernetes 1.21"
                );
            }
            !pdb
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The mgmt Deployment's pod as rendered: its namespace, pod spec, init and daemon containers, and
/// the kubeconfig-watch sidecar (an initContainer or a container, as the overlay has it).
struct Deployed<'a> {
    /// Every rendered object (the ConfigMaps the containers' env refers to).
    docs: &'a [Value],
    ns: String,
    pod: &'a Value,
    init: &'a Value,
    main: &'a Value,
    watch: &'a Value,
}

impl<'a> Deployed<'a> {
    fn of(mgmt: &'a [Value]) -> Deployed<'a> {
        let deploy = find(mgmt, "Deployment", "kubed-cross-sync");
        let ns = deploy["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string();
        let pod = &deploy["spec"]["template"]["spec"];
        let watch = ["initContainers", "containers"]
            .iter()
            .filter_map(|list| pod[*list].as_array())
            .flatten()
            .find(|c| c["name"] == "kubeconfig-watch")
            .expect("a kubeconfig-watch container");
        Deployed {
            docs: mgmt,
            ns,
            pod,
            init: &pod["initContainers"][0],
            main: &pod["containers"][0],
            watch,
        }
    }

    /// A container's environment as the kubelet gives it: values, keys of the rendered ConfigMaps
    /// (`configMapKeyRef`), the pod's namespace (`fieldRef`).
    fn env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap().to_string();
            let from = &e["valueFrom"];
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if from["fieldRef"]["fieldPath"] == "metadata.namespace" {
                self.ns.clone()
            } else if let Some(cm) = from["configMapKeyRef"]["name"].as_str() {
                let key = from["configMapKeyRef"]["key"].as_str().unwrap();
                find(self.docs, "ConfigMap", cm)["data"][key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: ConfigMap {cm} has no key {key}"))
                    .to_string()
            } else {
                panic!("{name}: a valueFrom this test does not know: {from}");
            };
            env.insert(name, value);
        }
        env
    }

    /// A container's args as the kubelet runs them: `$(VAR)` expanded from its env.
    fn args(&self, container: &Value) -> Vec<String> {
        let env = self.env(container);
        strs(&container["args"])
            .iter()
            .map(|a| expand(a, &env))
            .collect()
    }

    /// The ConfigMap of the profiles the pod mounts (volume aws-profiles).
    fn profiles_configmap(&self, mgmt: &'a [Value]) -> &'a Value {
        let cm_name = self.pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "aws-profiles")
            .unwrap()["configMap"]["name"]
            .as_str()
            .unwrap();
        find(mgmt, "ConfigMap", cm_name)
    }
}

/// `$(VAR)` in `s` replaced by VAR's value in `env`, as the kubelet expands a container's command and
/// args: `$$` is a `$`, and a reference to a variable the container lacks stays as written.
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(t) = tail.strip_prefix('$') {
            out.push('$');
            rest = t;
        } else if let Some((var, after)) = tail.strip_prefix('(').and_then(|t| t.split_once(')')) {
            match env.get(var) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({var})")),
            }
            rest = after;
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn read_json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join(rel)).unwrap()).unwrap()
}

#[test]
fn manifests_render_and_agree_with_each_other_and_the_iam_policies() {
    render::run();
}

/// `kubectl apply -f -` of rendered manifests into one testbed cluster, as admin (less what its
/// version cannot have: `for_server`).
fn apply(tb: &Testbed, cluster: &str, yaml: &str) {
    apply_in(tb, cluster, None, yaml);
}

/// [`apply`], objects without a namespace landing in `namespace` (`kubectl apply -n`).
fn apply_in(tb: &Testbed, cluster: &str, namespace: Option<&str>, yaml: &str) {
    let yaml = for_server(yaml);
    let mut args = vec!["--context", cluster];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    args.extend(["apply", "-f", "-"]);
    let mut child = tb
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply to {cluster} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client of `cluster` that acts as `user` in `groups` (admin impersonation): RBAC sees exactly
/// that identity, as it would see the EKS-authenticated IAM role.
async fn client_as(tb: &Testbed, cluster: &str, user: &str, groups: &[&str]) -> Client {
    let mut cfg: Config = tb.admin_config(cluster).await;
    cfg.auth_info.impersonate = Some(user.to_string());
    cfg.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(cfg).unwrap()
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(ref s)) if s.code == 403)
}

#[tokio::test]
async fn follower_rbac_grants_the_daemon_its_verbs_and_nothing_more() {
    rbac::run().await;
}

#[tokio::test]
async fn the_daemon_syncs_with_the_manifests_args_and_identities_and_not_with_one_verb_fewer() {
    deployed::run().await;
}

#[tokio::test]
async fn namespaced_rbac_is_enough_and_nothing_cluster_wide_is_asked() {
    namespaced::run().await;
}

/// The testbed's AWS environment (for the moto proxy).
fn aws_env() -> Vec<(String, String)> {
    Testbed::shared().aws_env()
}

#[tokio::test]
async fn tokens_are_renewed_through_the_real_path_over_several_lifetimes() {
    lifetimes::run().await;
}
