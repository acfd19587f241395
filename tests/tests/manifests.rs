//! The packaging's manifests (manifests/), rendered by kubectl 1.20's kustomize and applied for real:
//! - they agree with each other and with the IAM policies (paths, names, groups, the IRSA subject);
//! - the follower RBAC grants the follower identity what sync-daemon does in a follower and nothing
//!   else (impersonating that identity against a real apiserver, so a missing verb is a real 403);
//! - sync-daemon, started with the Deployment's own args from a kubeconfig that kubeconfig-gen wrote
//!   with the initContainer's own args, syncs as the IAM identities the manifests bind (EKS tokens,
//!   checked by the testbed's verifier and aws-auth), and with one verb fewer it does not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Testbed, unique_ns, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Client, Config};
use serde_json::{Value, json};

const MGMT: &str = "mc-mgmt-k8s";
const PROJECT: &str = "mc-project-k8s";
const PROJECT2: &str = "mc-project2-k8s";
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

/// `kubectl kustomize manifests/<overlay>` with Debian's kubectl 1.20 (its built-in kustomize).
fn render(overlay: &str) -> String {
    let out = Command::new(e2e::assets::kubectl())
        .arg("kustomize")
        .arg(repo().join("manifests").join(overlay))
        .output()
        .expect("run kubectl kustomize");
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

fn read_json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join(rel)).unwrap()).unwrap()
}

#[test]
fn manifests_render_and_agree_with_each_other_and_the_iam_policies() {
    let mgmt = docs(&render("mgmt"));
    let follower = docs(&render("follower"));
    let create_ns = docs(&render("follower/create-namespaces"));

    // The pod: the init step writes the kubeconfig that the daemon reads, from the profiles it mounts.
    let deploy = find(&mgmt, "Deployment", "kubed-cross-sync");
    let ns = deploy["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let pod = &deploy["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    let main = &pod["containers"][0];
    let (init_args, main_args) = (strs(&init["args"]), strs(&main["args"]));
    assert_eq!(strs(&init["command"]), ["kubeconfig-gen"]);
    assert_eq!(init_args[0], "generate");
    assert_eq!(strs(&main["command"]), ["sync-daemon"]);
    assert_eq!(main_args[0], "run");
    let kubeconfig = flag(&init_args, "--kubeconfig").unwrap();
    assert_eq!(
        flag(&main_args, "--kubeconfig-file").as_ref(),
        Some(&kubeconfig)
    );
    assert_eq!(
        Path::new(&kubeconfig).parent().unwrap(),
        Path::new(&mount_path(init, "kubeconfig"))
    );
    assert_eq!(
        Path::new(&kubeconfig).parent().unwrap(),
        Path::new(&mount_path(main, "kubeconfig"))
    );
    let creds = flag(&init_args, "--credentials-file").unwrap();
    for c in [init, main] {
        assert_eq!(
            Path::new(&creds).parent().unwrap(),
            Path::new(&mount_path(c, "aws-profiles"))
        );
        let env: BTreeMap<_, _> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["value"].as_str().unwrap_or(""),
                )
            })
            .collect();
        // the exec entries of the kubeconfig run `kubeconfig-gen token` with the container's env
        assert_eq!(env["AWS_SHARED_CREDENTIALS_FILE"], creds, "{}", c["name"]);
    }
    // The daemon's source is the context that kubeconfig-gen makes current, and the seed's flags stay.
    assert_eq!(
        flag(&init_args, "--current-context"),
        flag(&main_args, "--source-context")
    );
    assert_eq!(
        flag(&main_args, "--cluster-name").as_deref(),
        Some("mc-mgmt")
    );
    assert_eq!(
        flag(&main_args, "--config-source-namespace").as_deref(),
        Some("prod")
    );
    assert!(main_args.iter().any(|a| a == "--leader-elect"));
    assert_eq!(
        flag(&main_args, "--lease-namespace").as_deref(),
        Some("$(POD_NAMESPACE)")
    );

    // The profiles ConfigMap the pod mounts is the seed's INI: web identity root, followers chained.
    let cm_name = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "aws-profiles")
        .unwrap()["configMap"]["name"]
        .as_str()
        .unwrap();
    let cm = find(&mgmt, "ConfigMap", cm_name);
    let key = Path::new(&creds).file_name().unwrap().to_str().unwrap();
    let profiles = ini(cm["data"][key]
        .as_str()
        .expect("the profiles ConfigMap has the credentials key"));
    assert_eq!(profiles["mc-mgmt"]["web_identity_token_file"], IRSA_TOKEN);
    assert!(profiles["mc-mgmt"]["role_arn"].ends_with(":role/kubed-master"));
    for p in ["mc-project", "mc-project2"] {
        assert_eq!(profiles[p]["source_profile"], "mc-mgmt");
        assert_eq!(profiles[p]["role_session_name"], p);
        assert!(profiles[p]["role_arn"].ends_with(":role/kubed-follower"));
    }

    // Hardening, as the issue lists it.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for c in [init, main] {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{}", c["name"]);
        for k in ["requests", "limits"] {
            assert!(c["resources"][k]["memory"].is_string(), "{} {k}", c["name"]);
        }
    }
    assert_eq!(main["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(main["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port = main["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(
        flag(&main_args, "--metrics-addr"),
        Some(format!("0.0.0.0:{port}"))
    );
    let svc = find(&mgmt, "Service", "kubed-cross-sync-metrics");
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"],
        main["ports"][0]["name"]
    );

    // Identities: the IRSA subject of the trust policy is this ServiceAccount; RBAC binds the groups
    // that the aws-auth entries (and access entries) give the two roles.
    let sa = find(&mgmt, "ServiceAccount", "kubed-cross-sync");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/kubed-master")
    );
    let trust = read_json("manifests/iam/mgmt-trust-policy.json");
    let cond = &trust["Statement"][0]["Condition"]["StringEquals"];
    let sub = cond
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(":sub"))
        .unwrap()
        .1;
    assert_eq!(
        sub.as_str().unwrap(),
        format!(
            "system:serviceaccount:{ns}:{}",
            sa["metadata"]["name"].as_str().unwrap()
        )
    );
    let tf = std::fs::read_to_string(repo().join("manifests/iam/terraform/mgmt/main.tf")).unwrap();
    assert!(
        tf.contains(&format!("default     = \"{ns}\"")),
        "the Terraform's default namespace is {ns}"
    );
    let follower_trust = read_json("manifests/iam/follower-trust-policy.json");
    assert!(
        follower_trust["Statement"][0]["Principal"]["AWS"]
            .as_str()
            .unwrap()
            .ends_with(":role/kubed-master")
    );

    for (dir, group, docs) in [
        ("mgmt", MASTER_GROUP, &mgmt),
        ("follower", FOLLOWER_GROUP, &follower),
    ] {
        let mapping: Vec<Value> = serde_saphyr::from_str(
            &std::fs::read_to_string(
                repo().join(format!("manifests/{dir}/aws-auth-mapRoles.example.yaml")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(strs(&mapping[0]["groups"]), [group]);
        let entry = read_json(&format!("manifests/{dir}/access-entry.example.json"));
        assert_eq!(strs(&entry["kubernetesGroups"]), [group]);
        assert_eq!(entry["username"], mapping[0]["username"]);
        let bound: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRoleBinding")
            .flat_map(|d| d["subjects"].as_array().unwrap())
            .filter(|s| s["kind"] == "Group")
            .collect();
        assert!(
            bound.iter().all(|s| s["name"] == group),
            "{dir} binds only {group}"
        );
        assert!(!bound.is_empty());
    }
    // Nothing is bound to system:masters or cluster-admin anywhere.
    for d in mgmt.iter().chain(&follower).chain(&create_ns) {
        assert_ne!(d["roleRef"]["name"], "cluster-admin");
        let subjects = d["subjects"].as_array().cloned().unwrap_or_default();
        assert!(subjects.iter().all(|s| s["name"] != "system:masters"));
    }
    // --create-namespaces is the only thing that adds namespaces create.
    let creates = |docs: &[Value]| {
        docs.iter()
            .filter(|d| d["kind"] == "ClusterRole")
            .flat_map(|d| d["rules"].as_array().unwrap().clone())
            .any(|r| {
                strs(&r["resources"]).contains(&"namespaces".to_string())
                    && strs(&r["verbs"]).contains(&"create".to_string())
            })
    };
    assert!(!creates(&follower) && !creates(&mgmt));
    assert!(creates(&create_ns));
}

// ------------------------------------------------------------------ cluster helpers

/// `kubectl apply -f -` of rendered manifests into one testbed cluster, as admin.
fn apply(tb: &Testbed, cluster: &str, yaml: &str) {
    let mut child = tb
        .kubectl()
        .args(["--context", cluster, "apply", "-f", "-"])
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

async fn ensure_ns(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

#[tokio::test]
async fn follower_rbac_grants_the_daemon_its_verbs_and_nothing_more() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    apply(tb, PROJECT, &render("follower"));
    let admin = tb.admin_client(PROJECT).await;
    let ns = unique_ns("rbac");
    ensure_ns(&admin, &ns).await;
    let me = client_as(tb, PROJECT, "kubed-follower:mc-project", &[FOLLOWER_GROUP]).await;
    // The binding takes effect at once (RBAC is read from the apiserver's informer; allow it a moment).
    let cms: Api<ConfigMap> = Api::namespaced(me.clone(), &ns);
    wait_for(
        "the follower binding to take effect",
        Duration::from_secs(10),
        || {
            let cms = cms.clone();
            async move { cms.list(&ListParams::default()).await.ok() }
        },
    )
    .await;

    // Everything sync-daemon does in a follower, on both kinds.
    let label = "kubed.appscode.com/origin.cluster";
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "copy", "labels": {label: "mc-mgmt"}}, "data": {"k": "v1"}}))
    .unwrap();
    let sec: Secret = serde_json::from_value(json!({
        "metadata": {"name": "copy", "labels": {label: "mc-mgmt"}}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "c", "tls.key": "k"}}))
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(me.clone(), &ns);
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    secrets
        .create(&PostParams::default(), &sec)
        .await
        .expect("create secret");
    let mut got = cms.get("copy").await.expect("get configmap");
    got.data.as_mut().unwrap().insert("k".into(), "v2".into());
    cms.replace("copy", &PostParams::default(), &got)
        .await
        .expect("update configmap");
    let merge = Patch::Merge(json!({"data": {"k": "v3"}}));
    cms.patch("copy", &PatchParams::default(), &merge)
        .await
        .expect("patch configmap");
    let mut s = secrets.get("copy").await.expect("get secret");
    s.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    secrets
        .replace("copy", &PostParams::default(), &s)
        .await
        .expect("update secret");
    let apply_patch =
        Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "copy"}}));
    secrets
        .patch(
            "copy",
            &PatchParams::apply("kubed-cross-sync").force(),
            &apply_patch,
        )
        .await
        .expect("server-side apply secret");
    // Cluster-wide, label-selected reads and watches of copies, and namespaces.
    let lp = ListParams::default().labels(label);
    for r in [
        Api::<ConfigMap>::all(me.clone())
            .list(&lp)
            .await
            .map(|_| ()),
        Api::<Secret>::all(me.clone()).list(&lp).await.map(|_| ()),
        Api::<Namespace>::all(me.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        Api::<Namespace>::all(me.clone()).get(&ns).await.map(|_| ()),
    ] {
        r.expect("cluster-wide read");
    }
    let wp = WatchParams::default().labels(label).timeout(1);
    for w in [
        Api::<ConfigMap>::all(me.clone())
            .watch(&wp, "0")
            .await
            .map(|_| ()),
        Api::<Secret>::all(me.clone())
            .watch(&wp, "0")
            .await
            .map(|_| ()),
        Api::<Namespace>::all(me.clone())
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .map(|_| ()),
    ] {
        w.expect("cluster-wide watch");
    }
    cms.delete("copy", &DeleteParams::default())
        .await
        .expect("delete configmap");
    secrets
        .delete("copy", &DeleteParams::default())
        .await
        .expect("delete secret");

    // Nothing else: no namespace writes, no other kinds, no Events (those go to the source cluster).
    let new_ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": unique_ns("nope")}})).unwrap();
    assert!(is_forbidden(
        Api::<Namespace>::all(me.clone())
            .create(&PostParams::default(), &new_ns)
            .await
    ));
    assert!(is_forbidden(
        Api::<Namespace>::all(me.clone())
            .delete(&ns, &DeleteParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Pod>::all(me.clone())
            .list(&ListParams::default())
            .await
    ));
    let ev_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(me.clone(), &ns);
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "x",
        "reportingInstance": "x", "action": "x", "reason": "x", "type": "Normal"})).unwrap();
    assert!(is_forbidden(
        ev_api.create(&PostParams::default(), &ev).await
    ));
    // Another identity gets nothing from this binding.
    let stranger = client_as(tb, PROJECT, "someone", &["other"]).await;
    assert!(is_forbidden(
        Api::<ConfigMap>::namespaced(stranger, &ns)
            .list(&ListParams::default())
            .await
    ));

    // The create-namespaces variant adds exactly namespaces create (applied elsewhere, removed after).
    apply(tb, PROJECT2, &render("follower/create-namespaces"));
    let me2 = client_as(
        tb,
        PROJECT2,
        "kubed-follower:mc-project2",
        &[FOLLOWER_GROUP],
    )
    .await;
    let made = unique_ns("made");
    let made_ns: Namespace = serde_json::from_value(json!({"metadata": {"name": made}})).unwrap();
    wait_for(
        "namespaces create through the create-namespaces variant",
        Duration::from_secs(10),
        || {
            let api = Api::<Namespace>::all(me2.clone());
            let made_ns = made_ns.clone();
            async move { api.create(&PostParams::default(), &made_ns).await.ok() }
        },
    )
    .await;
    let admin2 = tb.admin_client(PROJECT2).await;
    assert!(is_forbidden(
        Api::<Namespace>::all(me2.clone())
            .delete(&made, &DeleteParams::default())
            .await
    ));
    let _ = Api::<Namespace>::all(admin2.clone())
        .delete(&made, &DeleteParams::default())
        .await;
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin2.clone());
    crbs.delete(
        "kubed-cross-sync:follower-create-namespaces",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    let _ = Api::<Namespace>::all(admin)
        .delete(&ns, &DeleteParams::default())
        .await;
}

// ------------------------------------------------------------------ the daemon, as deployed

/// The product binaries built beside this test (target/<profile>/), as the Makefile builds them.
fn product_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/deps/<test> -> target/<profile>
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// The pod's filesystem and environment on this machine: its in-pod paths (the mounted profiles, the
/// kubeconfig emptyDir) mapped under a temporary directory, as the kubelet would mount them.
struct PodFs {
    root: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl PodFs {
    fn map(root: &Path, s: &str) -> String {
        let root = root.display().to_string();
        s.replace(
            "/etc/kubed-cross-sync/aws",
            &format!("{root}/etc/kubed-cross-sync/aws"),
        )
        .replace("/srv/kubeconfig", &format!("{root}/srv/kubeconfig"))
    }

    fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .args(args.iter().map(|a| Self::map(self.root.path(), a)));
        cmd
    }
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_status(addr: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `wait_for`, but a timeout shows the end of the daemon's log (the pod's temporary directory goes away).
async fn wait_logged<F, Fut, T>(what: &str, deadline: Duration, log: &Path, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= end {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| {
                    !l.contains("\"level\":\"DEBUG\"") && !l.contains("\"level\":\"TRACE\"")
                })
                .take(40)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out after {deadline:?} waiting for {what}; daemon log tail:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Users who wrote (create, update or patch — server-side apply is a patch) `<resource>/<name>` in a
/// cluster, from its audit log.
fn writers(tb: &Testbed, cluster: &str, resource: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(tb.audit_log(cluster)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            ["create", "update", "patch"]
                .iter()
                .any(|v| e["verb"] == *v)
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["name"] == name
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
        })
        .map(|e| e["user"]["username"].as_str().unwrap_or("").to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn the_daemon_syncs_with_the_manifests_args_and_identities_and_not_with_one_verb_fewer() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    let (kubeconfig_gen, sync_daemon) = (product_bin("kubeconfig-gen"), product_bin("sync-daemon"));
    let mgmt = docs(&render("mgmt"));
    let deploy = find(&mgmt, "Deployment", "kubed-cross-sync");
    let pod_ns = deploy["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = &deploy["spec"]["template"]["spec"];
    let (init, main) = (&spec["initContainers"][0], &spec["containers"][0]);

    // The manifests, as an operator applies them (kubectl 1.20 validates them against the v1.20 API).
    apply(tb, MGMT, &render("mgmt"));
    for f in [PROJECT, PROJECT2] {
        apply(tb, f, &render("follower"));
    }

    // What EKS and the kubelet give the pod: the profiles ConfigMap mounted (placeholders filled in
    // with the testbed's accounts), the IRSA token, AWS_REGION; the AWS endpoints of the testbed.
    let root = tempfile::tempdir().unwrap();
    let env_file: BTreeMap<String, String> = tb.aws_env().into_iter().collect();
    let mut env: Vec<(String, String)> = env_file.clone().into_iter().collect();
    let bin_dir = kubeconfig_gen.parent().unwrap().display().to_string();
    env.push(("PATH".into(), format!("{bin_dir}:/usr/bin:/bin"))); // the image's PATH has both binaries
    for e in main["env"].as_array().unwrap() {
        let value = match e["value"].as_str() {
            Some("<AWS_REGION>") => env_file["AWS_REGION"].clone(),
            Some(v) => v.to_string(),
            None => pod_ns.clone(), // POD_NAMESPACE, from the downward API
        };
        env.retain(|(k, _)| k != e["name"].as_str().unwrap());
        env.push((e["name"].as_str().unwrap().to_string(), value));
    }
    let env = env
        .into_iter()
        .map(|(k, v)| {
            let v = PodFs::map(root.path(), &v);
            (k, v)
        })
        .collect();
    let pod = PodFs { root, env };
    let cm_name = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "aws-profiles")
        .unwrap()["configMap"]["name"]
        .as_str()
        .unwrap();
    let cm = find(&mgmt, "ConfigMap", cm_name);
    let aws_dir = pod.root.path().join("etc/kubed-cross-sync/aws");
    std::fs::create_dir_all(&aws_dir).unwrap();
    std::fs::create_dir_all(pod.root.path().join("srv/kubeconfig")).unwrap();
    let token_file = tb.dir().join("aws/web-identity-token");
    for (key, text) in cm["data"].as_object().unwrap() {
        let text = text
            .as_str()
            .unwrap()
            .replace("<MGMT_ACCOUNT_ID>", &tb.cluster(MGMT).account)
            .replace("<PROJECT_ACCOUNT_ID>", &tb.cluster(PROJECT).account)
            .replace("<PROJECT2_ACCOUNT_ID>", &tb.cluster(PROJECT2).account)
            .replace(IRSA_TOKEN, &token_file.display().to_string());
        assert!(
            !text.lines().any(|l| !l.starts_with('#') && l.contains('<')),
            "a placeholder is left in the profiles: {text}"
        );
        std::fs::write(aws_dir.join(key), text).unwrap();
    }

    // The initContainer, with its own args.
    let init_args = strs(&init["args"]);
    let out = pod.command(&kubeconfig_gen, &init_args).output().unwrap();
    assert!(
        out.status.success(),
        "kubeconfig-gen {init_args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The daemon, with the Deployment's args (the admin address on a free loopback port instead of
    // 0.0.0.0:8080, which another process on this machine may hold).
    let metrics = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = strs(&main["args"])
        .into_iter()
        .map(|a| match a.split('=').next().unwrap() {
            "--metrics-addr" => format!("--metrics-addr={metrics}"),
            "--lease-namespace" => format!("--lease-namespace={pod_ns}"),
            _ => a,
        })
        .collect();
    let log = pod.root.path().join("sync-daemon.log");
    let daemon = Daemon(
        pod.command(&sync_daemon, &args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Ready (caches synced, every follower answered) and leading, as the kubelet's probes would see it.
    let t0 = Instant::now();
    wait_logged("/readyz = 200", Duration::from_secs(60), &log, || {
        let m = metrics.clone();
        async move { (http_status(&m, "/readyz").await == Some(200)).then_some(()) }
    })
    .await;
    assert_eq!(http_status(&metrics, "/livez").await, Some(200));
    // The Lease sits in the pod's namespace, written as the kubed-master role (rbac-leader-election).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(tb.admin_client(MGMT).await, &pod_ns);
    let list = leases.list(&ListParams::default()).await.unwrap();
    assert!(!list.items.is_empty(), "no Lease in {pod_ns}");
    eprintln!(
        "sync-daemon ready and leading {:?} after start",
        t0.elapsed()
    );

    // The seed's scenario in `prod` (the Deployment's --config-source-namespace): a ConfigMap and a TLS
    // Secret for both followers. Target namespaces exist (no --create-namespaces in the manifests).
    for c in [MGMT, PROJECT, PROJECT2] {
        ensure_ns(&tb.admin_client(c).await, "prod").await;
    }
    let name = unique_ns("cross-acc-sync-demo");
    let sync_to = format!("{PROJECT},{PROJECT2}");
    let src = tb.admin_client(MGMT).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "data": {"foo": "bar", "spam": "eggs"}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let sec: Secret = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "crt", "tls.key": "key"}}))
    .unwrap();
    Api::<Secret>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &sec)
        .await
        .unwrap();
    let started = Instant::now();
    for f in [PROJECT, PROJECT2] {
        let c = tb.admin_client(f).await;
        let (cms, secs) = (
            Api::<ConfigMap>::namespaced(c.clone(), "prod"),
            Api::<Secret>::namespaced(c, "prod"),
        );
        let what = format!("the copies in {f}");
        wait_logged(&what, Duration::from_secs(60), &log, || {
            let (cms, secs, name) = (cms.clone(), secs.clone(), name.clone());
            async move {
                let cm = cms.get_opt(&name).await.ok()??;
                secs.get_opt(&name).await.ok()??;
                (cm.data?.get("foo")? == "bar").then_some(())
            }
        })
        .await;
    }
    eprintln!(
        "copies in both followers {:?} after the sources were created",
        started.elapsed()
    );
    // ... written as the follower IAM role, authenticated by EKS token and mapped by aws-auth.
    for (f, user) in [
        (PROJECT, "kubed-follower:mc-project"),
        (PROJECT2, "kubed-follower:mc-project2"),
    ] {
        let who = wait_for(
            "the audit log entry of the copy",
            Duration::from_secs(10),
            || {
                let who = writers(tb, f, "configmaps", &name);
                async move { (!who.is_empty()).then_some(who) }
            },
        )
        .await;
        assert_eq!(who, [user], "{f}");
    }
    // Events on the source (events.k8s.io/v1, the Synced one at least) are written as kubed-master:
    // rbac-source.yaml's events rule is enough.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(src.clone(), "prod");
    wait_logged(
        "an Event on the source",
        Duration::from_secs(30),
        &log,
        || {
            let (events, name) = (events.clone(), name.clone());
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .any(|e| e.regarding.and_then(|r| r.name).as_deref() == Some(name.as_str()))
                    .then_some(())
            }
        },
    )
    .await;
    let forbidden = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("forbidden")
        .count();
    assert_eq!(forbidden, 0, "the daemon met a 403 (see {})", log.display());
    drop(daemon);

    // One verb fewer: the follower ClusterRole without `create` in mc-project2-k8s. `sync-daemon once`
    // (same args) then cannot converge a new source there, while mc-project-k8s still gets it.
    let role = render("follower").replace(
        "  - create\n  - update\n  - patch\n  - delete\n",
        "  - update\n  - patch\n  - delete\n",
    );
    assert!(
        !role.contains("- create"),
        "the follower role lost its create verb"
    );
    apply(tb, PROJECT2, &role);
    let name2 = unique_ns("one-verb-fewer");
    let cm2: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name2,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "data": {"foo": "bar"}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &cm2)
        .await
        .unwrap();
    let mut once: Vec<String> = args.clone();
    once[0] = "once".into();
    once.retain(|a| {
        !a.starts_with("--leader-elect")
            && !a.starts_with("--lease-namespace")
            && !a.starts_with("--metrics-addr")
    });
    let out = pod.command(&sync_daemon, &once).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "once must report non-convergence: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p1 = Api::<ConfigMap>::namespaced(tb.admin_client(PROJECT).await, "prod");
    let p2 = Api::<ConfigMap>::namespaced(tb.admin_client(PROJECT2).await, "prod");
    assert!(
        p1.get_opt(&name2).await.unwrap().is_some(),
        "the healthy follower still gets the copy"
    );
    assert!(
        p2.get_opt(&name2).await.unwrap().is_none(),
        "no copy without create"
    );
    // Restore the manifests' role: the same `once` converges.
    apply(tb, PROJECT2, &render("follower"));
    let out = wait_for(
        "sync-daemon once to converge with the manifests' role",
        Duration::from_secs(30),
        || {
            let out = pod.command(&sync_daemon, &once).output().unwrap();
            async move { out.status.success().then_some(out) }
        },
    )
    .await;
    drop(out);
    assert!(p2.get_opt(&name2).await.unwrap().is_some());

    // Clean up the sources; the copies go with them (checked by the sync tests, not here).
    for n in [&name, &name2] {
        let _ = Api::<ConfigMap>::namespaced(src.clone(), "prod")
            .delete(n, &DeleteParams::default())
            .await;
    }
    let _ = Api::<Secret>::namespaced(src, "prod")
        .delete(&name, &DeleteParams::default())
        .await;
}
