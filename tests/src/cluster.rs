//! One testbed cluster: its files (CA, serving cert, service-account keys, tokens, audit policy),
//! the command lines of etcd, kube-apiserver and kube-controller-manager, starting them, and the
//! faults that act on a running cluster.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::assets::Assets;
use crate::certs::{self, Ca};
use crate::error::TestbedError;
use crate::procs::{self, ProcRecord, create_dir, free_port, spawn, stop_all, write_file};
use crate::proxy::{self, ProxyPorts};
use crate::state::{ClusterState, KubeconfigEntry, Ports, State, render_kubeconfig};
use crate::version::KubeVersion;
use crate::wait::{default_namespace, file_exists, poll, readyz, tcp_open};
use crate::{ClusterSpec, Fault, REGION};

const APISERVER_READY: Duration = Duration::from_secs(180);
const ETCD_READY: Duration = Duration::from_secs(30);

/// One audit event per request (at ResponseComplete; a watch is logged when it ends), at
/// level Metadata: enough to count requests per verb, resource and user.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
";

/// A cluster whose files are written and whose command lines are known, not yet started.
pub(crate) struct Prepared {
    pub state: ClusterState,
    pub dir: PathBuf,
    pub ca_pem: String,
    pub admin_token: String,
    pub etcd: Vec<String>,
    pub apiserver: Vec<String>,
    pub controller_manager: Option<Vec<String>>,
}

pub(crate) fn cluster_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

pub(crate) fn webhook_kubeconfig_path(root: &Path, name: &str) -> PathBuf {
    cluster_dir(root, name).join("webhook.kubeconfig")
}

/// Writes the cluster's files and builds its command lines (ports are picked here).
pub(crate) fn prepare(
    root: &Path,
    spec: &ClusterSpec,
    index: usize,
    assets: &Assets,
    aws: bool,
) -> Result<Prepared, TestbedError> {
    let dir = cluster_dir(root, &spec.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TestbedError::io("remove old", &dir, e))?;
    }
    create_dir(&dir)?;
    let p = |f: &str| dir.join(f);
    let (ca, token) = write_key_material(&dir, spec)?;
    let ports = Ports {
        proxy: 0,
        proxy_control: 0,
        apiserver: free_port()?,
        etcd_client: free_port()?,
        etcd_peer: free_port()?,
    };
    let direct_server = format!("https://127.0.0.1:{}", ports.apiserver);
    // KCM talks to its apiserver directly: network faults are for clients, not the control plane.
    let kcm_kubeconfig = render_kubeconfig(&[KubeconfigEntry {
        name: &spec.name,
        server: &direct_server,
        ca_pem: &ca.cert_pem,
        token: &token,
    }])?;
    write_file(&p("admin.kubeconfig"), kcm_kubeconfig.as_bytes(), 0o600)?;
    let arn = if aws {
        format!(
            "arn:aws:eks:{REGION}:{}:cluster/{}",
            spec.account, spec.name
        )
    } else {
        String::new()
    };
    Ok(Prepared {
        etcd: etcd_argv(&dir, spec, assets, &ports),
        apiserver: apiserver_argv(root, &dir, spec, index, assets, aws, &ports),
        controller_manager: controller_manager_argv(&dir, assets),
        state: ClusterState {
            name: spec.name.clone(),
            account: spec.account.clone(),
            server: String::new(),
            direct_server,
            ca_file: p("ca.crt"),
            admin_token_file: p("admin.token"),
            arn,
            ports,
            processes: Default::default(),
        },
        dir,
        ca_pem: ca.cert_pem,
        admin_token: token,
    })
}

/// A second user of every testbed cluster (token: the admin's + "-plain"), not in
/// system:masters, without rights until a test binds some.
pub const PLAIN_USER: &str = "kcs-plain";

/// The cluster's CA, the apiserver's serving certificate, the service-account key pair, the
/// admin token (tokens.csv) and the audit policy, written into `dir`; returns the CA and token.
fn write_key_material(dir: &Path, spec: &ClusterSpec) -> Result<(Ca, String), TestbedError> {
    let p = |f: &str| dir.join(f);
    let ca = Ca::new(&format!("{} CA", spec.name))?;
    write_file(&p("ca.crt"), ca.cert_pem.as_bytes(), 0o644)?;
    let serving = ca.server_cert(
        "kube-apiserver",
        &[
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default.svc",
        ],
    )?;
    write_file(&p("apiserver.crt"), serving.cert_pem.as_bytes(), 0o644)?;
    write_file(&p("apiserver.key"), serving.key_pem.as_bytes(), 0o600)?;
    let (sa_pub, sa_key) = certs::service_account_keys()?;
    write_file(&p("sa.pub"), sa_pub.as_bytes(), 0o644)?;
    write_file(&p("sa.key"), sa_key.as_bytes(), 0o600)?;
    let token = crate::rng::random_hex(24);
    write_file(&p("admin.token"), token.as_bytes(), 0o600)?;
    // The admin, and a user with no group of its own (so API Priority and Fairness classifies
    // it by FlowSchema rather than exempting it as it does system:masters): PLAIN_USER, whose
    // token is the admin's + "-plain"; it has no rights until a test binds some.
    let tokens = format!(
        "{token},admin,admin,\"system:masters\"\n{token}-plain,{PLAIN_USER},{PLAIN_USER}\n"
    );
    write_file(&p("tokens.csv"), tokens.as_bytes(), 0o600)?;
    write_file(&p("audit-policy.yaml"), AUDIT_POLICY.as_bytes(), 0o644)?;
    Ok((ca, token))
}

fn etcd_argv(dir: &Path, spec: &ClusterSpec, assets: &Assets, ports: &Ports) -> Vec<String> {
    let etcd_client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let etcd_peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        assets.etcd.display().to_string(),
        format!("--name={}", spec.name),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={etcd_client}"),
        format!("--advertise-client-urls={etcd_client}"),
        format!("--listen-peer-urls={etcd_peer}"),
        format!("--initial-advertise-peer-urls={etcd_peer}"),
        format!("--initial-cluster={}={etcd_peer}", spec.name),
        "--logger=zap".into(),
        "--log-outputs=stderr".into(),
    ]
}

fn apiserver_argv(
    root: &Path,
    dir: &Path,
    spec: &ClusterSpec,
    index: usize,
    assets: &Assets,
    aws: bool,
    ports: &Ports,
) -> Vec<String> {
    let s = |f: &str| dir.join(f).display().to_string();
    let mut apiserver = vec![
        assets.apiserver.display().to_string(),
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--tls-cert-file={}", s("apiserver.crt")),
        format!("--tls-private-key-file={}", s("apiserver.key")),
        format!("--token-auth-file={}", s("tokens.csv")),
        format!("--client-ca-file={}", s("ca.crt")),
        format!("--requestheader-client-ca-file={}", s("ca.crt")),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-key-file={}", s("sa.pub")),
        format!("--service-account-signing-key-file={}", s("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-cluster-ip-range=10.0.{}.0/24", index % 256),
        format!("--audit-policy-file={}", s("audit-policy.yaml")),
        format!("--audit-log-path={}", s("audit.log")),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
        "--profiling=false".into(),
    ];
    apiserver.extend(apiserver_version_flags(&assets.version));
    if aws {
        apiserver.extend([
            format!(
                "--authentication-token-webhook-config-file={}",
                webhook_kubeconfig_path(root, &spec.name).display()
            ),
            "--authentication-token-webhook-version=v1".into(),
            // Short, so a cached answer never hides an expired or withdrawn identity for long.
            "--authentication-token-webhook-cache-ttl=1s".into(),
        ]);
    }
    apiserver
}

fn controller_manager_argv(dir: &Path, assets: &Assets) -> Option<Vec<String>> {
    assets.controller_manager.as_ref().map(|kcm| {
        let mut argv = vec![
            kcm.display().to_string(),
            format!("--kubeconfig={}", dir.join("admin.kubeconfig").display()),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
        ];
        argv.extend(controller_manager_version_flags(&assets.version));
        argv
    })
}

/// The apiserver flags that differ between versions. 1.20 still opens an unauthenticated HTTP
/// port unless `--insecure-port=0`; 1.24 removed the flag (and the port) altogether.
fn apiserver_version_flags(v: &KubeVersion) -> Vec<String> {
    if v.at_least(1, 24) {
        Vec::new()
    } else {
        vec!["--insecure-port=0".into()]
    }
}

/// The controller-manager flags that differ between versions: 1.20's insecure port (10252,
/// which would collide between clusters) is closed with `--port=0`, a flag 1.24 removed; 1.28
/// renamed the controllers (`namespace-controller`, ...; the old names are aliases we do not
/// rely on).
fn controller_manager_version_flags(v: &KubeVersion) -> Vec<String> {
    let mut flags = Vec::new();
    if !v.at_least(1, 24) {
        flags.push("--port=0".into());
    }
    // The resource quota controller computes quota usage, without which a ResourceQuota is
    // never enforced (the refused-write tests use one).
    flags.push(if v.at_least(1, 28) {
        "--controllers=namespace-controller,garbage-collector-controller,resourcequota-controller"
            .into()
    } else {
        "--controllers=namespace,garbagecollector,resourcequota".into()
    });
    flags
}

/// Records a started process in the state (and state.json) at once, so a reaper or
/// `testbed down` finds it even if start-up fails a moment later.
pub(crate) fn record(
    state: &Mutex<State>,
    cluster: &str,
    role: &str,
    rec: ProcRecord,
) -> Result<(), TestbedError> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.cluster_mut(cluster)?
        .processes
        .insert(role.to_string(), rec);
    s.save()
}

fn snapshot(state: &Mutex<State>, cluster: &str) -> Result<ClusterState, TestbedError> {
    let s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.cluster(cluster).cloned()
}

/// Starts the cluster's proxy (`testbed proxy`) and fills in its ports and `server`.
pub(crate) async fn start_proxy(
    testbed: &Path,
    p: &mut Prepared,
) -> Result<ProcRecord, TestbedError> {
    let ports_file = p.dir.join("proxy.ports.json");
    let log = p.dir.join("proxy.log");
    let argv = vec![
        testbed.display().to_string(),
        "proxy".into(),
        format!("--upstream=127.0.0.1:{}", p.state.ports.apiserver),
        format!("--ports-file={}", ports_file.display()),
    ];
    let rec = spawn("proxy", &argv, &log)?;
    let what = format!("proxy of {}", p.state.name);
    let up = poll(&what, Duration::from_secs(15), Some(&rec), &log, || {
        file_exists(ports_file.clone())
    })
    .await;
    if let Err(e) = up {
        stop_all(&[&rec], Duration::ZERO);
        return Err(e);
    }
    let text = std::fs::read(&ports_file).map_err(|e| TestbedError::io("read", &ports_file, e))?;
    let ports: ProxyPorts =
        serde_json::from_slice(&text).map_err(|source| TestbedError::State {
            path: ports_file.clone(),
            source,
        })?;
    p.state.ports.proxy = ports.listen;
    p.state.ports.proxy_control = ports.control;
    p.state.server = format!("https://127.0.0.1:{}", ports.listen);
    Ok(rec)
}

/// An admin client for `server` that trusts the cluster's CA.
pub(crate) fn admin_client_for(
    c: &ClusterState,
    server: &str,
) -> Result<kube::Client, TestbedError> {
    let err = |action, e: Box<dyn std::error::Error + Send + Sync>| TestbedError::Kube {
        cluster: c.name.clone(),
        action,
        source: e,
    };
    let uri: http::Uri = server
        .parse()
        .map_err(|e| err("parse the server URL", Box::new(e)))?;
    let ca =
        std::fs::read_to_string(&c.ca_file).map_err(|e| TestbedError::io("read", &c.ca_file, e))?;
    let der = certs::pem_to_der(&ca).ok_or_else(|| TestbedError::Encode {
        what: "the cluster CA",
        source: "no certificate in ca.crt".into(),
    })?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(vec![der]);
    config.auth_info.token_file = Some(c.admin_token_file.display().to_string());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| err("build a client", Box::new(e)))
}

/// Ready = /readyz says "ok" and the `default` namespace exists (tests create objects there).
async fn wait_apiserver(
    c: &ClusterState,
    server: &str,
    rec: &ProcRecord,
) -> Result<(), TestbedError> {
    let client = admin_client_for(c, server)?;
    let what = format!("kube-apiserver of {}", c.name);
    poll(&what, APISERVER_READY, Some(rec), &rec.log, || async {
        readyz(&client).await?;
        default_namespace(&client).await
    })
    .await
}

async fn wait_etcd(c: &ClusterState, rec: &ProcRecord) -> Result<(), TestbedError> {
    let what = format!("etcd of {}", c.name);
    let port = c.ports.etcd_client;
    poll(&what, ETCD_READY, Some(rec), &rec.log, || tcp_open(port)).await
}

/// Starts etcd, kube-apiserver and (when present) kube-controller-manager; returns when
/// /readyz answers "ok" through the proxy.
pub(crate) async fn start(p: &Prepared, state: &Mutex<State>) -> Result<(), TestbedError> {
    let name = &p.state.name;
    let etcd = spawn("etcd", &p.etcd, &p.dir.join("etcd.log"))?;
    record(state, name, "etcd", etcd.clone())?;
    wait_etcd(&p.state, &etcd).await?;
    let api = spawn("kube-apiserver", &p.apiserver, &p.dir.join("apiserver.log"))?;
    record(state, name, "apiserver", api.clone())?;
    wait_apiserver(&p.state, &p.state.server, &api).await?;
    if let Some(argv) = &p.controller_manager {
        let kcm = spawn(
            "kube-controller-manager",
            argv,
            &p.dir.join("controller-manager.log"),
        )?;
        record(state, name, "controller-manager", kcm)?;
    }
    tracing::info!(cluster = %name, server = %p.state.server, "cluster ready");
    Ok(())
}

fn stop_role(c: &ClusterState, role: &str) -> Result<(), TestbedError> {
    let Some(rec) = c.processes.get(role) else {
        return Ok(());
    };
    // SIGKILL: a crash, not a graceful shutdown.
    match stop_all(&[rec], Duration::ZERO).first() {
        Some(&pid) => Err(TestbedError::Unkillable {
            what: format!("{}/{role}", c.name),
            pid,
        }),
        None => Ok(()),
    }
}

/// Starts `role` again with its recorded command line (same ports, files and data), unless it
/// is running.
fn restart_role(
    state: &Mutex<State>,
    c: &ClusterState,
    role: &str,
) -> Result<ProcRecord, TestbedError> {
    let rec = c
        .processes
        .get(role)
        .ok_or_else(|| TestbedError::UnknownCluster(format!("{}/{role}", c.name)))?;
    if rec.is_running() {
        return Ok(rec.clone());
    }
    let new = spawn(role, &rec.argv, &rec.log)?;
    record(state, &c.name, role, new.clone())?;
    Ok(new)
}

async fn proxy_command(c: &ClusterState, command: &str) -> Result<(), TestbedError> {
    proxy::control(c.ports.proxy_control, command)
        .await
        .map(|mode| tracing::info!(cluster = %c.name, ?mode, "proxy mode changed"))
        .map_err(|detail| TestbedError::Proxy {
            cluster: c.name.clone(),
            command: command.to_string(),
            detail,
        })
}

/// Applies a fault; returns once it is in effect (or, for Start/StartEtcd, once the apiserver
/// answers /readyz again on its direct address).
pub(crate) async fn fault(
    state: &Mutex<State>,
    cluster: &str,
    fault: Fault,
) -> Result<(), TestbedError> {
    let c = snapshot(state, cluster)?;
    tracing::info!(cluster, ?fault, "fault");
    match fault {
        Fault::Stop => stop_role(&c, "apiserver"),
        Fault::KillEtcd => stop_role(&c, "etcd"),
        Fault::Start => {
            let api = restart_role(state, &c, "apiserver")?;
            wait_apiserver(&c, &c.direct_server, &api).await
        }
        Fault::StartEtcd => {
            let etcd = restart_role(state, &c, "etcd")?;
            wait_etcd(&c, &etcd).await?;
            match c.processes.get("apiserver").filter(|a| a.is_running()) {
                Some(api) => wait_apiserver(&c, &c.direct_server, api).await,
                None => Ok(()),
            }
        }
        Fault::CompactEtcd => {
            let port = c.ports.etcd_client;
            let rev = crate::etcd::compact(port)
                .await
                .map_err(|detail| TestbedError::Etcd {
                    cluster: c.name.clone(),
                    detail,
                })?;
            tracing::info!(cluster, revision = rev, "etcd compacted");
            Ok(())
        }
        Fault::Partition => proxy_command(&c, "partition").await,
        Fault::Heal => proxy_command(&c, "heal").await,
        Fault::Latency(d) => proxy_command(&c, &format!("latency {}", d.as_millis())).await,
    }
}

/// RSS in KiB of each running process of a cluster, by role.
pub(crate) fn rss(c: &ClusterState) -> Vec<(String, u64)> {
    c.processes
        .iter()
        .filter(|(_, p)| p.is_running())
        .filter_map(|(role, p)| procs::rss_kib(p.pid).map(|kib| (role.clone(), kib)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_binary_version() {
        let v120 = KubeVersion::parse("v1.20.2").unwrap();
        let v132 = KubeVersion::parse("v1.32.0-rc.0").unwrap();
        assert_eq!(apiserver_version_flags(&v120), ["--insecure-port=0"]);
        assert!(apiserver_version_flags(&v132).is_empty());
        assert_eq!(
            controller_manager_version_flags(&v120),
            [
                "--port=0",
                "--controllers=namespace,garbagecollector,resourcequota"
            ]
        );
        assert_eq!(
            controller_manager_version_flags(&v132),
            [
                "--controllers=namespace-controller,garbage-collector-controller,resourcequota-controller"
            ]
        );
    }
}
