//! kubeconfig-gen acceptance: the built binary against the testbed's moto and real apiservers,
//! real kubectl of the clusters' version through the exec plugin, and the reference awscli for
//! the token bytes. The binary is target/<profile>/kubeconfig-gen (`e2e::bins`, which builds it
//! when it is missing).
//! KCS_TESTBED_DIR=<dir of a running `testbed up --aws`> reuses that world for quick iteration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::world::AwsWorld;
use e2e::{error_chain, wait_for};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use serde_json::{Value, json};

const CLUSTERS: [(&str, &str, &str); 3] = [
    ("mc-mgmt-k8s", "mc-mgmt", "111111111111"),
    ("mc-project-k8s", "mc-project", "222222222222"),
    ("mc-project2-k8s", "mc-project2", "333333333333"),
];

/// The testbed directory of the AWS world (the shared testbed, or `KCS_TESTBED_DIR`).
fn world_dir() -> PathBuf {
    AwsWorld::get().dir()
}

fn aws_env() -> Vec<(String, String)> {
    let env = AwsWorld::get().aws_env();
    assert!(!env.is_empty(), "the testbed runs without AWS");
    env
}

async fn admin_client(cluster: &str) -> Client {
    AwsWorld::get().admin_client(cluster).await
}

/// The kubeconfig-gen binary (`e2e::bins`: beside this test, built first if missing).
fn binary() -> PathBuf {
    e2e::bins::product(e2e::bins::KUBECONFIG_GEN).unwrap_or_else(|e| panic!("{}", error_chain(&e)))
}

/// The kubectl of the world's Kubernetes version (1.20 against 1.20, 1.32 against 1.32).
fn kubectl() -> PathBuf {
    e2e::assets::kubectl_for_dir(&world_dir()).unwrap_or_else(|e| panic!("{}", error_chain(&e)))
}

fn aws_cli() -> PathBuf {
    e2e::assets::venv_bin("aws")
}

/// A clean environment: PATH, a private HOME, and the given variables only.
fn clean(program: &Path, home: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("TZ", "UTC")
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `kubeconfig-gen generate` in the testbed's AWS environment with extra args.
fn generate(home: &Path, args: &[&str]) -> Output {
    clean(&binary(), home, &aws_env())
        .arg("generate")
        .arg("--exec-command")
        .arg(binary())
        .args(args)
        .output()
        .unwrap()
}

/// Lets the testbed's identities list namespaces (the testbed binds no RBAC).
async fn allow_list_namespaces(cluster: &str) {
    let client = admin_client(cluster).await;
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client);
    let role = serde_json::from_value(json!({
        "metadata": {"name": "kcg-test-list-namespaces"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]
    }))
    .unwrap();
    let binding = serde_json::from_value(json!({
        "metadata": {"name": "kcg-test-list-namespaces"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kcg-test-list-namespaces"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubed-cross-sync:master"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubed-cross-sync:follower"}
        ]
    }))
    .unwrap();
    for r in [
        roles
            .create(&PostParams::default(), &role)
            .await
            .map(|_| ()),
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .map(|_| ()),
    ] {
        match r {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("cannot bind RBAC in {cluster}: {e}"),
        }
    }
}

#[tokio::test]
async fn seed_scenario_discovery_then_kubectl_in_every_cluster() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("new/dir/config");
    let out = generate(home.path(), &["--kubeconfig", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("current-context mc-mgmt-k8s"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let yaml = std::fs::read_to_string(&path).unwrap();
    for forbidden in ["token:", "AWS_SECRET", "AWS_ACCESS_KEY", "password"] {
        assert!(!yaml.contains(forbidden), "{forbidden} written: {yaml}");
    }
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("mc-mgmt-k8s"));
    let contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts.len(), 3, "{contexts:?}");
    assert_eq!(contexts.last(), Some(&"mc-mgmt-k8s"));
    for (name, profile, account) in CLUSTERS {
        let arn = format!("arn:aws:eks:eu-central-1:{account}:cluster/{name}");
        let ctx = kc.contexts.iter().find(|c| c.name == name).unwrap();
        assert_eq!(ctx.context.as_ref().unwrap().cluster, arn);
        let user = kc.auth_infos.iter().find(|u| u.name == arn).unwrap();
        let exec = user.auth_info.as_ref().unwrap().exec.as_ref().unwrap();
        assert_eq!(exec.env.as_ref().unwrap()[0]["value"], profile);
        assert!(stderr.contains(&format!(
            "context {name}: profile {profile}, account {account}"
        )));
    }
    assert!(
        kc.clusters
            .last()
            .unwrap()
            .name
            .ends_with("cluster/mc-mgmt-k8s")
    );

    // Real kubectl of the clusters' version, through the exec plugin, in every cluster.
    for (name, _, _) in CLUSTERS {
        allow_list_namespaces(name).await;
    }
    for (name, _, _) in CLUSTERS {
        let listed = wait_for(
            &format!("kubectl lists namespaces in {name}"),
            Duration::from_secs(30),
            || async {
                let out = clean(&kubectl(), home.path(), &aws_env())
                    .args(["--kubeconfig", path.to_str().unwrap(), "--context", name])
                    .args(["get", "namespaces", "-o", "name"])
                    .output()
                    .unwrap();
                out.status.success().then(|| text(&out.stdout))
            },
        )
        .await;
        assert!(listed.contains("namespace/kube-system"), "{listed}");
    }
}

#[tokio::test]
async fn a_token_for_one_cluster_is_refused_by_another() {
    let home = tempfile::tempdir().unwrap();
    let mut env = aws_env();
    env.push(("AWS_PROFILE".into(), "mc-project".into()));
    let out = clean(&binary(), home.path(), &env)
        .args(["token", "--cluster-name", "mc-project-k8s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = cred["status"]["token"].as_str().unwrap().to_string();
    allow_list_namespaces("mc-project-k8s").await;
    let admin = Kubeconfig::read_from(world_dir().join("kubeconfig")).unwrap();
    let server = |name: &str| {
        admin
            .clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.cluster.as_ref()?.server.clone())
            .unwrap()
    };
    let get_ns = |cluster: &str| {
        clean(&kubectl(), home.path(), &[])
            .args(["--kubeconfig", "/dev/null", "--server", &server(cluster)])
            .arg(format!(
                "--certificate-authority={}",
                world_dir().join(cluster).join("ca.crt").display()
            ))
            .args(["--token", &token, "get", "namespaces", "-o", "name"])
            .output()
            .unwrap()
    };
    let own = wait_for(
        "the token works on its own cluster",
        Duration::from_secs(30),
        || async {
            let o = get_ns("mc-project-k8s");
            o.status.success().then_some(o)
        },
    )
    .await;
    assert!(text(&own.stdout).contains("namespace/default"));
    let other = get_ns("mc-project2-k8s");
    assert!(!other.status.success());
    let err = text(&other.stderr);
    // kubectl words a 401 per version: 1.20 prints the Status reason ("Unauthorized"), 1.32
    // "You must be logged in to the server (the server has asked for the client to provide
    // credentials)"; both are the apiserver's 401, and a 403 or a connection error is neither.
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "expected a 401: {err}"
    );
}

/// Same static credentials, region, cluster and frozen clock: the same bytes as awscli.
#[test]
fn token_is_byte_identical_to_aws_eks_get_token() {
    let home = tempfile::tempdir().unwrap();
    let creds_file = home.path().join("credentials");
    std::fs::write(
        &creds_file,
        "[static]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = c2VjcmV0/+=\naws_session_token = IQoJb3JpZ2luX2VjE+/abc==\n",
    )
    .unwrap();
    let frozen = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            (
                "LD_PRELOAD",
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
            ),
            ("FAKETIME", "2026-01-01 12:00:00"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push((
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            creds_file.display().to_string(),
        ));
        env
    };
    let env_keys = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEBYaDH+/x=="),
    ];
    let infos = [
        None,
        Some(
            r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#,
        ),
        Some(r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#),
    ];
    for (label, creds) in [
        ("env keys", &env_keys[..]),
        ("profile", &[("AWS_PROFILE", "static")][..]),
    ] {
        for info in infos {
            let mut extra: Vec<(&str, &str)> = creds.to_vec();
            if let Some(i) = info {
                extra.push(("KUBERNETES_EXEC_INFO", i));
            }
            let env = frozen(&extra);
            let reference = clean(&aws_cli(), home.path(), &env)
                .args(["--region", "eu-central-1", "eks", "get-token"])
                .args(["--cluster-name", "mc-project-k8s", "--output", "json"])
                .output()
                .unwrap();
            assert!(reference.status.success(), "{}", text(&reference.stderr));
            let ours = clean(&binary(), home.path(), &env)
                .args([
                    "token",
                    "--cluster-name",
                    "mc-project-k8s",
                    "--region",
                    "eu-central-1",
                ])
                .output()
                .unwrap();
            assert!(ours.status.success(), "{}", text(&ours.stderr));
            assert_eq!(
                text(&ours.stdout),
                text(&reference.stdout),
                "{label} {info:?}"
            );
            // awscli's own argument shape, accepted unchanged.
            let shaped = clean(&binary(), home.path(), &env)
                .args(["--region", "eu-central-1", "eks", "get-token"])
                .args(["--cluster-name", "mc-project-k8s", "--output", "json"])
                .output()
                .unwrap();
            assert_eq!(
                text(&shaped.stdout),
                text(&reference.stdout),
                "{label} {info:?} awscli shape"
            );
        }
    }
}

#[test]
fn merge_replace_stdout_and_atomic_write() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("config");
    let p = path.to_str().unwrap();
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: foreign\nclusters:\n- name: foreign\n  cluster: {server: 'https://foreign.example'}\nusers:\n- name: foreign\n  user: {token: keep-me}\ncontexts:\n- name: foreign\n  context: {cluster: foreign, user: foreign}\n",
    )
    .unwrap();
    let merged = generate(home.path(), &["--kubeconfig", p]);
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let kc = Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kc.contexts.len(), 4);
    assert_eq!(kc.contexts[0].name, "foreign");
    assert!(std::fs::read_to_string(&path).unwrap().contains("keep-me"));
    assert_eq!(kc.current_context.as_deref(), Some("mc-mgmt-k8s"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Running again replaces same-named entries in place: still 4.
    let again = generate(home.path(), &["--kubeconfig", p]);
    assert!(again.status.success());
    assert_eq!(Kubeconfig::read_from(&path).unwrap().contexts.len(), 4);

    // A failed run leaves the old file untouched.
    let before = std::fs::read(&path).unwrap();
    let failed = generate(
        home.path(),
        &["--kubeconfig", p, "--cluster", "mc-mgmt:no-such-cluster"],
    );
    assert_eq!(failed.status.code(), Some(5), "{}", text(&failed.stderr));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".kubeconfig-gen")
        })
        .collect();
    assert!(leftovers.is_empty());

    // --replace: only the generated entries.
    let replaced = generate(home.path(), &["--kubeconfig", p, "--replace"]);
    assert!(replaced.status.success());
    let kc = Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kc.contexts.len(), 3);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("keep-me"));

    // stdout: the YAML only; the summary stays on stderr.
    let out = generate(
        home.path(),
        &[
            "--kubeconfig",
            "-",
            "--cluster",
            "mc-project:mc-project-k8s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kc = Kubeconfig::from_yaml(&text(&out.stdout)).unwrap();
    assert_eq!(kc.contexts.len(), 1);
    assert_eq!(kc.current_context.as_deref(), Some("mc-project-k8s"));
    assert!(text(&out.stderr).contains("context mc-project-k8s: profile mc-project"));
}

#[path = "kubeconfig_gen/cases.rs"]
mod cases;
#[path = "kubeconfig_gen/deadline.rs"]
mod deadline;
#[path = "kubeconfig_gen/files.rs"]
mod files;
#[path = "kubeconfig_gen/follower.rs"]
mod follower;
#[path = "kubeconfig_gen/moto_proxy.rs"]
mod moto_proxy;
#[path = "kubeconfig_gen/partial.rs"]
mod partial;
#[path = "kubeconfig_gen/regions.rs"]
mod regions;
#[path = "kubeconfig_gen/update.rs"]
mod update;
#[path = "kubeconfig_gen/watch.rs"]
mod watch;
// Laptop credentials (SSO through a fake portal, credential_process, credential_source).
#[path = "kubeconfig_gen/laptop.rs"]
mod laptop;
#[path = "kubeconfig_gen/sso_portal.rs"]
mod sso_portal;
