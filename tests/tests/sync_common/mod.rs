//! Shared helpers of the sync-daemon acceptance tests: the daemon as a child process, object
//! builders, exact-state assertions over every cluster, Events and audit-log write counts.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use e2e::wait_for;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const MGMT: &str = "mc-mgmt-k8s";
pub const PROJECT: &str = "mc-project-k8s";
pub const PROJECT2: &str = "mc-project2-k8s";
pub const ORIGIN: &str = "kubed.appscode.com/origin";
pub const ORIGIN_NAME: &str = "kubed.appscode.com/origin.name";
pub const ORIGIN_NAMESPACE: &str = "kubed.appscode.com/origin.namespace";
pub const ORIGIN_CLUSTER: &str = "kubed.appscode.com/origin.cluster";
pub const SYNC: &str = "kubed.appscode.com/sync";
pub const SYNC_CONTEXTS: &str = "kubed.appscode.com/sync-contexts";

/// Generous for a loaded 2-core machine; the daemon itself reacts within a second.
pub const SOON: Duration = Duration::from_secs(30);

/// target/debug/sync-daemon, built once per test binary (`cargo test -p e2e` alone does not
/// build other packages' binaries; a fresh build is a quick no-op).
pub fn daemon_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe.parent().and_then(Path::parent).expect("target/debug");
        let bin = dir.join("sync-daemon");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "sync-daemon", "--bin", "sync-daemon"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status();
        if !bin.exists() {
            panic!(
                "sync-daemon binary missing at {} (build: {status:?})",
                bin.display()
            );
        }
        bin
    })
    .clone()
}

/// A running `sync-daemon run`; killed (by its pid) on drop. Its stderr goes to `log`.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, tag: &str, args: &[&str]) -> Daemon {
        let log = dir.join(format!("sync-daemon-{tag}.log"));
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log file");
        let child = Command::new(daemon_binary())
            .arg("run")
            .args(args)
            .env("RUST_LOG", "warn,sync_daemon=debug")
            .env("NO_COLOR", "1")
            // The admin server (when built in) on a free port: several daemons run at once.
            .env("METRICS_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start sync-daemon");
        Daemon { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon (SIGKILL: a crash, as far as the clusters can tell).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("sync-daemon exited ({status}); log:\n{}", self.log_text());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sync-daemon once ARGS`: (exit code, stderr).
pub fn once(args: &[&str]) -> (i32, String) {
    let out = Command::new(daemon_binary())
        .arg("once")
        .args(args)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .output()
        .expect("run sync-daemon once");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn create_ns(client: &Client, name: &str, l: &[(&str, &str)]) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels(l)}
    }))
    .unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// Sets (or with `None` removes) one namespace label.
pub async fn label_ns(client: &Client, name: &str, key: &str, value: Option<&str>) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .unwrap();
}

pub async fn delete_ns(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

pub fn configmap(
    name: &str,
    annotations: &[(&str, &str)],
    l: &[(&str, &str)],
    data: &[(&str, &str)],
) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels(l), "annotations": labels(annotations)},
        "data": labels(data),
    }))
    .unwrap()
}

pub fn secret(
    name: &str,
    type_: &str,
    annotations: &[(&str, &str)],
    data: &[(&str, &[u8])],
) -> Secret {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.to_string(), b64.encode(v)))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": labels(annotations)},
        "type": type_,
        "data": data,
    }))
    .unwrap()
}

pub async fn create<K>(client: &Client, ns: &str, obj: &K) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), obj)
        .await
        .unwrap_or_else(|e| panic!("create {ns}/{}: {e}", obj.name_any()))
}

/// A merge patch as a person would make it (own field manager).
pub async fn merge<K>(client: &Client, ns: &str, name: &str, patch: Value) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let pp = PatchParams {
        field_manager: Some("e2e-hand".into()),
        ..Default::default()
    };
    Api::<K>::namespaced(client.clone(), ns)
        .patch(name, &pp, &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("patch {ns}/{name}: {e}"))
}

pub async fn delete<K>(client: &Client, ns: &str, name: &str)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    match Api::<K>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("delete {ns}/{name}: {e}"),
    }
}

pub async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {ns}/{name}: {e}"))
}

/// Every object in the cluster carrying origin labels for `source_ns/name`, as namespace →
/// object (the complete set of copies of that source there).
pub async fn copies<K>(client: &Client, source_ns: &str, name: &str) -> BTreeMap<String, K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let lp = ListParams::default().labels(&format!(
        "{ORIGIN_NAMESPACE}={source_ns},{ORIGIN_NAME}={name}"
    ));
    Api::<K>::all(client.clone())
        .list(&lp)
        .await
        .unwrap_or_else(|e| panic!("list copies of {source_ns}/{name}: {e}"))
        .items
        .into_iter()
        .map(|o| (o.namespace().unwrap_or_default(), o))
        .collect()
}

/// Waits until, in each listed cluster, the copies of `source_ns/name` sit in exactly the
/// given namespaces and `check` accepts each of them; returns the copies per cluster.
pub async fn wait_copies<K, F>(
    what: &str,
    clients: &[(&str, &Client)],
    source_ns: &str,
    name: &str,
    want: &[(&str, &[&str])],
    check: F,
) -> BTreeMap<String, BTreeMap<String, K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
    F: Fn(&K) -> bool,
{
    let check = &check;
    wait_for(what, SOON, || async move {
        let mut all = BTreeMap::new();
        for (cluster, client) in clients {
            let got: BTreeMap<String, K> = copies(client, source_ns, name).await;
            let want_ns: BTreeSet<String> = want
                .iter()
                .find(|(c, _)| c == cluster)
                .map(|(_, n)| n.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            let have_ns: BTreeSet<String> = got.keys().cloned().collect();
            if have_ns != want_ns || !got.values().all(check) {
                return None;
            }
            all.insert(cluster.to_string(), got);
        }
        Some(all)
    })
    .await
}

/// Warning Events (events.k8s.io/v1) about `name` in `ns` with this reason.
pub async fn events(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    events_of_type(client, ns, name, reason, "Warning").await
}

/// Events of `type_` (Normal, Warning) about `name` in `ns` with this reason.
pub async fn events_of_type(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    type_: &str,
) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some(type_)
        })
        .collect()
}

pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> Event {
    wait_for(&format!("{reason} event on {ns}/{name}"), SOON, || async {
        events(client, ns, name, reason).await.into_iter().next()
    })
    .await
}

/// Byte offset of the end of an audit log now: count writes made after this point.
pub fn audit_mark(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Write requests (create/update/patch/delete) the daemon (User-Agent kubed-cross-sync/...)
/// made after `mark` in namespaces accepted by `in_scope`, as "verb resource ns/name" lines.
pub fn daemon_writes(path: &Path, mark: u64, in_scope: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut f = std::fs::File::open(path).expect("audit log");
    f.seek(SeekFrom::Start(mark)).unwrap();
    let mut out = Vec::new();
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(ev) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let verb = ev["verb"].as_str().unwrap_or("");
        let ua = ev["userAgent"].as_str().unwrap_or("");
        let ns = ev["objectRef"]["namespace"].as_str().unwrap_or("");
        if ua.starts_with("kubed-cross-sync/")
            && ["create", "update", "patch", "delete"].contains(&verb)
            && in_scope(ns)
        {
            out.push(format!(
                "{verb} {} {ns}/{}",
                ev["objectRef"]["resource"].as_str().unwrap_or(""),
                ev["objectRef"]["name"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

/// The copy's data/labels/annotations checks shared by the scenarios.
pub fn is_copy_of_cm(copy: &ConfigMap, source: &ConfigMap, cluster_name: &str) -> bool {
    let l = copy.labels();
    let a = copy.annotations();
    let src_ns = source.namespace().unwrap_or_default();
    let mut want_labels = source.labels().clone();
    want_labels.insert(ORIGIN_NAME.into(), source.name_any());
    want_labels.insert(ORIGIN_NAMESPACE.into(), src_ns);
    want_labels.insert(ORIGIN_CLUSTER.into(), cluster_name.into());
    copy.data == source.data
        && want_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        && !a.contains_key(SYNC_CONTEXTS)
        && a.get(ORIGIN).is_some_and(|o| {
            o.contains(&format!("\"uid\":\"{}\"", source.uid().unwrap_or_default()))
        })
        && copy.metadata.owner_references.is_none()
}

pub fn is_copy_of_secret(copy: &Secret, source: &Secret, cluster_name: &str) -> bool {
    copy.data == source.data
        && copy.type_ == source.type_
        && copy.labels().get(ORIGIN_CLUSTER).map(String::as_str) == Some(cluster_name)
        && !copy.annotations().contains_key(SYNC_CONTEXTS)
        && copy
            .annotations()
            .get(ORIGIN)
            .is_some_and(|o| o.contains("\"kind\":\"Secret\""))
}
