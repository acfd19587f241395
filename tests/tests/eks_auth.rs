//! EKS-style authentication, end to end: tokens minted by the reference awscli
//! (`aws eks get-token`, the command the seed's kubeconfigs run), presented to the real
//! kube-apiservers of the shared testbed, checked by tests/aws/awsworld.py's verifier through the
//! apiservers' webhook token authentication, and authorised by real RBAC.
//!
//! How tokens are minted: `aws --profile P sts get-caller-identity` with the testbed's DIR/env
//! resolves the seed's chain (AssumeRoleWithWebIdentity kubed-master, then AssumeRole
//! kubed-follower) against moto, and awscli caches the resulting credentials under $HOME/.aws/cli.
//! `aws --profile P eks get-token` then runs with the same HOME and DIR/env minus
//! AWS_ENDPOINT_URL, so it signs for `sts.eu-central-1.amazonaws.com` as it does on a real EKS pod
//! (with AWS_ENDPOINT_URL set, awscli presigns for the moto URL, which no EKS accepts; the last
//! test shows the verifier rejects that too).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
// The world the tests run in: the binary's shared testbed, or, when KCS_TESTBED_DIR names the
// directory of a running `testbed up --aws`, that one (quick iteration on the verifier).
use e2e::world::AwsWorld as World;
use e2e::{k8s, unique_ns, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{AuthInfo, Kubeconfig};
use serde_json::json;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const PREFIX: &str = "k8s-aws-v1.";
const REGIONAL_STS: &str = "https://sts.eu-central-1.amazonaws.com/?";

fn aws_cli() -> PathBuf {
    e2e::assets::venv_bin("aws")
}

/// Runs the reference awscli in the testbed's AWS environment, with a private HOME (awscli's
/// credential cache lives there).
struct AwsCli {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl AwsCli {
    fn new(tb: World) -> Self {
        let mut env = tb.aws_env();
        assert!(!env.is_empty(), "the shared testbed runs without AWS");
        // botocore (awscli v1) reads AWS_DEFAULT_REGION only; the EKS pod-identity webhook injects
        // both it and AWS_REGION.
        if !env.iter().any(|(k, _)| k == "AWS_DEFAULT_REGION") {
            let region = env
                .iter()
                .find(|(k, _)| k == "AWS_REGION")
                .map(|(_, v)| v.clone());
            env.push((
                "AWS_DEFAULT_REGION".into(),
                region.expect("DIR/env has AWS_REGION"),
            ));
        }
        Self {
            home: tempfile::tempdir().unwrap(),
            env,
        }
    }

    /// `aws args...`; `through_moto = false` drops AWS_ENDPOINT_URL; `faketime` is a libfaketime
    /// offset such as "-20m". Returns stdout; a failure panics with awscli's stderr.
    fn run(&self, through_moto: bool, faketime: Option<&str>, args: &[&str]) -> String {
        let mut cmd = match faketime {
            Some(offset) => {
                let mut c = Command::new("faketime");
                c.args(["-f", offset]).arg(aws_cli());
                c
            }
            None => Command::new(aws_cli()),
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .args(["--output", "json"])
            .args(args);
        for (k, v) in &self.env {
            if through_moto || k != "AWS_ENDPOINT_URL" {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `aws --profile P eks get-token --cluster-name C` -> the token of the ExecCredential.
    fn get_token(
        &self,
        through_moto: bool,
        faketime: Option<&str>,
        profile: &str,
        cluster: &str,
    ) -> String {
        let out = self.run(
            through_moto,
            faketime,
            &[
                "--profile",
                profile,
                "eks",
                "get-token",
                "--cluster-name",
                cluster,
            ],
        );
        let cred: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(cred["kind"], "ExecCredential");
        cred["status"]["token"].as_str().unwrap().to_string()
    }

    /// A token as awscli mints it on an EKS pod: the chain resolved through moto first (and
    /// cached), then presigned for the regional STS host.
    fn token(&self, profile: &str, cluster: &str, faketime: Option<&str>) -> String {
        let who: serde_json::Value = serde_json::from_str(&self.run(
            true,
            None,
            &["--profile", profile, "sts", "get-caller-identity"],
        ))
        .unwrap();
        assert!(
            who["Arn"]
                .as_str()
                .unwrap()
                .contains(":assumed-role/kubed-"),
            "unexpected identity {who}"
        );
        let token = self.get_token(false, faketime, profile, cluster);
        assert!(
            token_url(&token).starts_with(REGIONAL_STS),
            "{}",
            token_url(&token)
        );
        token
    }
}

fn token_url(token: &str) -> String {
    let body = token.strip_prefix(PREFIX).expect("token prefix");
    String::from_utf8(B64.decode(body).unwrap()).unwrap()
}

fn url_token(url: &str) -> String {
    format!("{PREFIX}{}", B64.encode(url))
}

/// A client for `cluster` that authenticates with `token` only.
async fn client_with_token(tb: World, cluster: &str, token: &str) -> Client {
    let mut config = tb.admin_config(cluster).await;
    config.auth_info = serde_json::from_value::<AuthInfo>(json!({ "token": token })).unwrap();
    Client::try_from(config).unwrap()
}

/// The HTTP status of a failed API call (panics on success or on a non-API error).
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected an API error status, got {other:?}"),
    }
}

/// Lists namespaces as the token's user: 401 if the token is rejected, 403 if it is accepted
/// (nothing grants that verb), with the apiserver's message.
async fn probe(tb: World, cluster: &str, token: &str) -> (u16, String) {
    let client = client_with_token(tb, cluster, token).await;
    status_of(
        Api::<Namespace>::all(client)
            .list(&ListParams::default())
            .await,
    )
}

/// Presents `token` to `cluster` and expects 401 plus a line written to awsworld.log after the
/// request was made, `cluster=<cluster> rejected: <reason>...`; the log must hold no token.
async fn expect_rejected(tb: World, cluster: &str, token: &str, reason: &str) {
    let path = tb.dir().join("aws/awsworld.log");
    let mark = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as usize;
    let (code, msg) = probe(tb, cluster, token).await;
    assert_eq!(code, 401, "{cluster} did not refuse the token: {msg}");
    let want = format!("cluster={cluster} rejected: {reason}");
    let line = wait_for(
        "the rejection reason in awsworld.log",
        Duration::from_secs(10),
        || {
            let (path, want) = (path.clone(), want.clone());
            async move {
                let bytes = tokio::fs::read(&path).await.ok()?;
                let new = String::from_utf8_lossy(bytes.get(mark..)?).into_owned();
                new.lines().find(|l| l.contains(&want)).map(str::to_string)
            }
        },
    )
    .await;
    assert!(
        !line.contains("X-Amz-Signature=") && !line.contains("X-Amz-Security-Token="),
        "the log line leaks the URL: {line}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let body = token.strip_prefix(PREFIX).unwrap_or(token);
    assert!(!text.contains(body), "awsworld.log contains a token");
}

async fn create_ns(admin: &Client, name: &str) {
    k8s::create_ns(admin, name, &[]).await.unwrap();
}

#[tokio::test]
async fn follower_token_authenticates_and_can_do_only_what_rbac_grants() {
    let tb = World::get();
    let admin = tb.admin_client("mc-project-k8s").await;
    let (ns, other) = (unique_ns("eks-auth"), unique_ns("eks-auth-other"));
    for n in [&ns, &other] {
        create_ns(&admin, n).await;
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "c1"}, "data": {"k": "v"}}))
                .unwrap();
        Api::<ConfigMap>::namespaced(admin.clone(), n)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s1"}, "stringData": {"k": "v"}}))
            .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let token = AwsCli::new(tb).token("mc-project", "mc-project-k8s", None);
    let follower = client_with_token(tb, "mc-project-k8s", &token).await;
    let cms = Api::<ConfigMap>::namespaced(follower.clone(), &ns);

    // Authenticated and mapped (the 403 names the mapped user), but nothing is granted yet.
    let (code, msg) = status_of(cms.get("c1").await);
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains(r#"User "kubed-follower:mc-project""#), "{msg}");

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "followers-read-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubed-cross-sync:follower"}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let got = wait_for(
        "the RoleBinding to take effect",
        Duration::from_secs(10),
        || {
            let cms = cms.clone();
            async move { cms.get("c1").await.ok() }
        },
    )
    .await;
    assert_eq!(got.data.unwrap()["k"], "v");
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // Only what the binding grants: no secrets, no writes, no other namespace.
    let secrets = Api::<Secret>::namespaced(follower.clone(), &ns);
    assert_eq!(status_of(secrets.get("s1").await).0, 403);
    assert_eq!(status_of(secrets.list(&ListParams::default()).await).0, 403);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c2"}})).unwrap();
    assert_eq!(
        status_of(cms.create(&PostParams::default(), &cm).await).0,
        403
    );
    let elsewhere = Api::<ConfigMap>::namespaced(follower.clone(), &other);
    assert_eq!(status_of(elsewhere.get("c1").await).0, 403);

    // The same through kubectl 1.20 with --token.
    let kubectl = |args: &[&str]| {
        let mut cmd = tb.kubectl();
        cmd.args(["--context", "mc-project-k8s", "--token", &token])
            .args(args);
        cmd.output().unwrap()
    };
    let ok = kubectl(&["-n", &ns, "get", "configmap", "c1", "-o", "name"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "configmap/c1");
    let denied = kubectl(&["-n", &ns, "get", "secrets"]);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("Forbidden") && stderr.contains("kubed-follower:mc-project"),
        "{stderr}"
    );

    k8s::delete_ns(&admin, &ns).await;
    k8s::delete_ns(&admin, &other).await;
}

#[tokio::test]
async fn a_token_for_one_cluster_is_rejected_by_another() {
    let tb = World::get();
    let aws = AwsCli::new(tb);

    // mc-project's token works only on mc-project-k8s.
    let token = aws.token("mc-project", "mc-project-k8s", None);
    let (code, msg) = probe(tb, "mc-project-k8s", &token).await;
    assert_eq!(code, 403, "accepted, then denied by RBAC: {msg}");
    for other in ["mc-project2-k8s", "mc-mgmt-k8s"] {
        expect_rejected(tb, other, &token, "signature does not match").await;
    }

    // Pure cluster binding: mc-project2's identity is mapped in mc-project2-k8s, yet its token
    // minted for mc-project-k8s is refused there.
    let own = aws.token("mc-project2", "mc-project2-k8s", None);
    let (code, msg) = probe(tb, "mc-project2-k8s", &own).await;
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains(r#"User "kubed-follower:mc-project2""#),
        "{msg}"
    );
    let foreign = aws.token("mc-project2", "mc-project-k8s", None);
    expect_rejected(tb, "mc-project2-k8s", &foreign, "signature does not match").await;
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let tb = World::get();
    let aws = AwsCli::new(tb);
    // Minted 10 minutes ago: still inside STS's 15 minutes.
    let recent = aws.token("mc-project", "mc-project-k8s", Some("-10m"));
    assert_eq!(probe(tb, "mc-project-k8s", &recent).await.0, 403);
    // Minted 20 minutes ago: expired.
    let old = aws.token("mc-project", "mc-project-k8s", Some("-20m"));
    expect_rejected(
        tb,
        "mc-project-k8s",
        &old,
        "X-Amz-Date parameter is expired",
    )
    .await;
}

#[tokio::test]
async fn tampered_tokens_are_rejected() {
    let tb = World::get();
    let aws = AwsCli::new(tb);
    let token = aws.token("mc-project", "mc-project-k8s", None);
    assert_eq!(
        probe(tb, "mc-project-k8s", &token).await.0,
        403,
        "the untouched token is accepted"
    );
    let url = token_url(&token);

    // One character of the signature changed.
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut bytes = url.clone().into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let bad_sig = url_token(&String::from_utf8(bytes).unwrap());
    expect_rejected(tb, "mc-project-k8s", &bad_sig, "signature does not match").await;

    // A query parameter aws-iam-authenticator does not allow.
    let extra = url_token(&format!("{url}&X-Amz-Extra=1"));
    let reason = "non-whitelisted query parameter 'X-Amz-Extra'";
    expect_rejected(tb, "mc-project-k8s", &extra, reason).await;

    // Presigned for moto's plain-HTTP endpoint (what awscli does when AWS_ENDPOINT_URL is set).
    let moto = aws.get_token(true, None, "mc-project", "mc-project-k8s");
    assert!(
        token_url(&moto).starts_with("http://127.0.0.1:"),
        "{}",
        token_url(&moto)
    );
    expect_rejected(tb, "mc-project-k8s", &moto, "unexpected scheme 'http'").await;
}

#[tokio::test]
async fn each_profile_sees_its_eks_cluster_with_the_real_endpoint_and_ca() {
    let tb = World::get();
    let aws = AwsCli::new(tb);
    let kubeconfig = Kubeconfig::read_from(tb.kubeconfig_path()).unwrap();
    for (profile, cluster) in [
        ("mc-mgmt", "mc-mgmt-k8s"),
        ("mc-project", "mc-project-k8s"),
        ("mc-project2", "mc-project2-k8s"),
    ] {
        let json = |args: &[&str]| -> serde_json::Value {
            let mut argv = vec!["--profile", profile, "eks"];
            argv.extend_from_slice(args);
            serde_json::from_str(&aws.run(true, None, &argv)).unwrap()
        };
        // The seed's chain lands in the profile's own account, which holds only its own cluster.
        assert_eq!(
            json(&["list-clusters"])["clusters"],
            json!([cluster]),
            "{profile}"
        );
        let got = &json(&["describe-cluster", "--name", cluster])["cluster"];
        let want = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .unwrap();
        let want = want.cluster.as_ref().unwrap();
        assert_eq!(
            got["endpoint"].as_str(),
            want.server.as_deref(),
            "{cluster}"
        );
        assert_eq!(got["status"], "ACTIVE");
        // Both are base64 of the PEM of the apiserver's CA.
        let ca = |b64: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        let got_ca = ca(got["certificateAuthority"]["data"].as_str().unwrap());
        assert!(got_ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            got_ca,
            ca(want.certificate_authority_data.as_deref().unwrap()),
            "{cluster}"
        );
    }
}

#[tokio::test]
async fn an_unmapped_role_is_rejected_until_aws_auth_maps_it() {
    let tb = World::get();
    let admin = tb.admin_client("mc-project-k8s").await;
    // kubed-master's token, correctly bound to mc-project-k8s, but that cluster's aws-auth maps
    // only kubed-follower.
    let token = AwsCli::new(tb).token("mc-mgmt", "mc-project-k8s", None);
    let reason = "ARN is not mapped: arn:aws:iam::111111111111:role/kubed-master";
    expect_rejected(tb, "mc-project-k8s", &token, reason).await;

    // Map it (keeping every existing entry): the verifier re-reads aws-auth within a second.
    let cms = Api::<ConfigMap>::namespaced(admin, "kube-system");
    let original = cms.get("aws-auth").await.unwrap();
    let roles = original.data.as_ref().unwrap()["mapRoles"].clone();
    let mut mapped = original.clone();
    mapped.data.as_mut().unwrap().insert(
        "mapRoles".into(),
        format!(
            "{}\n- rolearn: arn:aws:iam::111111111111:role/kubed-master\n  username: visiting-{{{{SessionName}}}}\n",
            roles.trim_end()
        ),
    );
    cms.replace("aws-auth", &PostParams::default(), &mapped)
        .await
        .unwrap();
    // Checked in a task so that aws-auth is restored even when an assertion fails.
    let checked = tokio::spawn(async move {
        let msg = wait_for(
            "the new mapping to authenticate",
            Duration::from_secs(15),
            || async {
                let (code, msg) = probe(tb, "mc-project-k8s", &token).await;
                (code == 403).then_some(msg)
            },
        )
        .await;
        // mc-mgmt has no role_session_name: botocore names the session itself.
        assert!(msg.contains(r#"User "visiting-botocore-session-"#), "{msg}");
    })
    .await;

    let mut restore = cms.get("aws-auth").await.unwrap();
    restore.data = original.data;
    cms.replace("aws-auth", &PostParams::default(), &restore)
        .await
        .unwrap();
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}
