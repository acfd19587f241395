//! A cluster created during watch mode appears in the daemon's followers (issue 13, acceptance): the
//! sidecar (`generate --watch` with the Deployment's args) writes the kubeconfig that `sync-daemon run`
//! reads, both as processes in the testbed's AWS world, the daemon's clusters reached through the exec
//! plugin (`kubeconfig-gen token`) and the token webhook. A follower's EKS cluster is created in moto
//! while both run; the file gains its context within an interval, the daemon adds the follower without
//! a restart and the copy appears there. Deleted in moto, the context leaves the file and the daemon
//! stops the follower, its copy left in place (README: Kubeconfig changes).
//!
//! The follower is mc-project2's apiserver, registered as an EKS cluster of the same name in an account
//! of this run (awsworld's `POST /testbed/eks-clusters`, which gives it the real endpoint and CA as
//! start-up does), reached as that account's kubed-follower role, which mc-project2's aws-auth maps for
//! the test: the shared moto's own mc-project2-k8s (account 333…) stays, so the other tests of this
//! binary see the world unchanged.
use std::time::Instant;

use e2e::daemon::Daemon;
use e2e::k8s::{SYNC_CONTEXTS, configmap, create, delete_ns, ensure_ns, get};
use e2e::{MGMT, PROJECT2, unique_ns};
use k8s_openapi::api::core::v1::ConfigMap;

use super::cases::fill;
use super::moto_proxy::{Moto, described};
use super::watch::{INTERVAL, Watcher, aws_eks, contexts_of, fresh_account};
use super::*;

/// The next round starts at most one interval after the change; a round at this scale takes well
/// under a second, and the machine is shared.
const NEXT_ROUND: Duration = Duration::from_secs(INTERVAL.as_secs() + 5);
/// The daemon reads the file every 5 s.
const DAEMON_READS: Duration = Duration::from_secs(15);
const SOON: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_created_during_watch_mode_becomes_a_follower_without_a_restart() {
    let account = fresh_account();
    apply_rbac(MGMT, "mgmt/base/rbac-source.yaml");
    apply_rbac(PROJECT2, "follower/base/rbac-follower.yaml");
    let original = map_follower_role(&account).await;
    let ns = unique_ns("kcg-follower");
    let (mgmt, project2) = (admin_client(MGMT).await, admin_client(PROJECT2).await);
    for c in [&mgmt, &project2] {
        ensure_ns(c, &ns, &[]).await.unwrap();
    }
    // In a task, so that aws-auth and the namespaces are restored even when an assertion fails.
    let ran = tokio::spawn(scenario(account, ns.clone())).await;
    let cms = Api::<ConfigMap>::namespaced(project2.clone(), "kube-system");
    let mut restore = cms.get("aws-auth").await.unwrap();
    restore.data = original.data;
    cms.replace("aws-auth", &PostParams::default(), &restore)
        .await
        .unwrap();
    for c in [&mgmt, &project2] {
        delete_ns(c, &ns).await;
    }
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(account: String, ns: String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mgmt_account, path) = (CLUSTERS[0].2, d.join("kubeconfig"));
    // The management profile (web identity) and one follower account, which has no cluster yet.
    let creds = format!(
        "[mc-mgmt]\nrole_arn = arn:aws:iam::{mgmt_account}:role/kubed-master\nweb_identity_token_file = {{token}}\n\
         [late]\nrole_arn = arn:aws:iam::{account}:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = late\n"
    );
    std::fs::write(d.join("credentials"), fill(&creds, d)).unwrap();
    std::fs::write(d.join("config"), "").unwrap();

    // The sidecar: the args of manifests/mgmt/base/deployment.yaml's kubeconfig-watch after
    // `generate`, in this directory, at the floor interval (Watcher adds `generate` and
    // --exec-command: the binary is not on PATH here).
    let moto = Moto::start();
    let credentials = format!("--credentials-file={}", d.join("credentials").display());
    let kubeconfig = format!("--kubeconfig={}", path.display());
    let current = format!("--current-context={MGMT}");
    let interval = format!("--interval={}s", INTERVAL.as_secs());
    let sidecar = [
        &credentials,
        &kubeconfig,
        "--replace",
        &current,
        "--keep-going",
        "--watch",
        &interval,
    ];
    let w = Watcher::start(d, &moto.url, &sidecar);
    w.wait_log("round 1", SOON, 0, |l| l.contains("watch: round 1 done"))
        .await;
    assert_eq!(contexts_of(&path), [MGMT], "{}", w.log());

    // The daemon: the Deployment's sync-daemon args without leader election, reading that file.
    let mut daemon = start_daemon(d, &path, &ns);
    daemon
        .wait_ready(SOON)
        .await
        .unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)));
    let pid = daemon.pid();
    let (mgmt, project2) = (admin_client(MGMT).await, admin_client(PROJECT2).await);
    let src = configmap("cfg", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "v1")]);
    create(&mgmt, &ns, &src).await.unwrap();
    wait_for("the source planned without its follower", SOON, || async {
        let log = daemon.log_text();
        (log.contains("is not in the kubeconfig file") && log.contains(PROJECT2)).then_some(())
    })
    .await;
    assert!(copy(&project2, &ns).await.is_none());

    // The follower's cluster appears in moto: the next round writes it, described once.
    let (mark, from, created) = (moto.requests().len(), w.log().len(), Instant::now());
    register_project2_as(&account);
    wait_for("the new context in the file", NEXT_ROUND, || async {
        contexts_of(&path)
            .contains(&PROJECT2.to_string())
            .then_some(())
    })
    .await;
    let written = created.elapsed();
    w.wait_log("the added context logged", INTERVAL, from, |l| {
        l.contains(&format!("watch: added context {PROJECT2}"))
    })
    .await;
    assert_eq!(described(&moto.requests()[mark..]), [PROJECT2]);

    // ... and the running daemon follows it: no restart, the copy made.
    wait_for("the daemon adding the follower", DAEMON_READS, || async {
        (daemon.log_text())
            .contains("context added to the kubeconfig, syncing to it")
            .then_some(())
    })
    .await;
    wait_for("the copy in the new follower", SOON, || async {
        (copy(&project2, &ns).await.as_deref() == Some("v1")).then_some(())
    })
    .await;
    eprintln!(
        "cluster created -> context in the file {written:?}, -> copy in the follower {:?}",
        created.elapsed()
    );
    daemon.assert_running();
    assert_eq!(daemon.pid(), pid);
    let up = format!("cluster {PROJECT2}: up");
    wait_for("the follower in /readyz", SOON, || async {
        (daemon.get("/readyz").await?.1.contains(&up)).then_some(())
    })
    .await;

    // Deleted in moto: the context leaves the file, the daemon stops the follower, the copy stays.
    let from = w.log().len();
    aws_eks(d, "late", &["delete-cluster", "--name", PROJECT2]);
    wait_for("the context gone from the file", NEXT_ROUND, || async {
        (contexts_of(&path) == [MGMT]).then_some(())
    })
    .await;
    w.wait_log("the removed context logged", INTERVAL, from, |l| {
        l.contains(&format!("watch: removed context {PROJECT2}"))
    })
    .await;
    wait_for("the daemon stopping the follower", DAEMON_READS, || async {
        (daemon.log_text())
            .contains("context gone from the kubeconfig: stopped, its copies left in place")
            .then_some(())
    })
    .await;
    let series = format!("kcs_cluster_up{{cluster=\"{PROJECT2}\"}}");
    wait_for("the follower's series gone", SOON, || async {
        (!daemon.get("/metrics").await?.1.contains(&series)).then_some(())
    })
    .await;
    assert_eq!(copy(&project2, &ns).await.as_deref(), Some("v1"));
    daemon.assert_running();
    assert_eq!(daemon.pid(), pid);
}

/// The copy's `k`, if the copy exists.
async fn copy(c: &Client, ns: &str) -> Option<String> {
    get::<ConfigMap>(c, ns, "cfg")
        .await
        .unwrap()
        .and_then(|cm| cm.data?.get("k").cloned())
}

/// `sync-daemon run` as the Deployment runs it (manifests/mgmt/base/deployment.yaml) minus leader
/// election, its environment that of the pod: the profile files (which the exec entries name), the
/// region, and the testbed's AWS endpoint for the plugin's STS calls.
fn start_daemon(d: &Path, kubeconfig: &Path, ns: &str) -> Daemon {
    let mut env: Vec<(String, String)> = aws_env()
        .into_iter()
        .filter(|(k, _)| !["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"].contains(&k.as_str()))
        .collect();
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        d.join("credentials").display().to_string(),
    ));
    env.push((
        "AWS_CONFIG_FILE".into(),
        d.join("config").display().to_string(),
    ));
    let admin = format!("127.0.0.1:{}", e2e::procs::free_port().unwrap());
    Daemon::command("run")
        .arg(format!("--kubeconfig-file={}", kubeconfig.display()))
        .arg(format!("--source-context={MGMT}"))
        .arg("--cluster-name=mc-mgmt")
        .arg(format!("--config-source-namespace={ns}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d)
        .envs(env)
        .env("RUST_LOG", "warn,sync_daemon=info")
        .env("NO_COLOR", "1")
        .admin_env(&admin)
        .log(d.join("sync-daemon.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)))
}

/// The install's own RBAC for the daemon's identities (the testbed binds none), applied as the
/// README's install says; idempotent, and nothing else in this binary depends on its absence.
fn apply_rbac(cluster: &str, manifest: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .join(manifest);
    let out = AwsWorld::get()
        .kubectl()
        .args(["--context", cluster, "apply", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{manifest}: {}", text(&out.stderr));
}

/// Maps ACCOUNT's kubed-follower role in mc-project2's aws-auth as the follower's own entry reads
/// (every existing entry kept); returns the ConfigMap as it was, to restore.
async fn map_follower_role(account: &str) -> ConfigMap {
    let cms = Api::<ConfigMap>::namespaced(admin_client(PROJECT2).await, "kube-system");
    let original = cms.get("aws-auth").await.unwrap();
    let roles = original.data.as_ref().unwrap()["mapRoles"].clone();
    let mut mapped = original.clone();
    mapped.data.as_mut().unwrap().insert(
        "mapRoles".into(),
        format!(
            "{}\n{}",
            roles.trim_end(),
            e2e::aws::default_map_roles(account, false)
        ),
    );
    cms.replace("aws-auth", &PostParams::default(), &mapped)
        .await
        .unwrap();
    original
}

/// Creates PROJECT2 as an EKS cluster of ACCOUNT with the endpoint and CA the testbed registered for
/// it (DIR/aws/world.json), through awsworld's test-only route on moto's port.
fn register_project2_as(account: &str) {
    let world: Value =
        serde_json::from_slice(&std::fs::read(world_dir().join("aws/world.json")).unwrap())
            .unwrap();
    let testbed = (world["clusters"].as_array().unwrap().iter())
        .find(|c| c["name"] == PROJECT2)
        .unwrap();
    let body = json!({
        "name": PROJECT2, "account": account, "region": world["region"],
        "endpoint": testbed["endpoint"], "ca_file": testbed["ca_file"],
    });
    let moto = aws_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v)
        .unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", &body.to_string()])
        .arg(format!("{moto}/testbed/eks-clusters"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
