//! The AWS side of the testbed, from Rust: the verifier's certificate, world.json, the
//! apiservers' webhook kubeconfigs, starting tests/aws/awsworld.py (moto + token verifier), the
//! seed-shaped profiles INI, DIR/env, and the default aws-auth ConfigMaps.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::assets;
use crate::certs::Ca;
use crate::error::TestbedError;
use crate::procs::{ProcRecord, create_dir, free_port, spawn, write_file};
use crate::state::{AwsState, ClusterState};
use crate::wait::{file_exists, poll};
use crate::{REGION, cluster};

const AWSWORLD_READY: Duration = Duration::from_secs(120);

pub(crate) struct AwsPlan {
    pub dir: PathBuf,
    pub moto_port: u16,
    pub verifier_port: u16,
}

pub(crate) fn aws_dir(root: &Path) -> PathBuf {
    root.join("aws")
}

/// The AWS profile of a cluster: its name without a trailing `-k8s`.
pub fn profile_name(cluster: &str) -> &str {
    cluster.strip_suffix("-k8s").unwrap_or(cluster)
}

/// Creates DIR/aws with the verifier's CA and serving certificate, and picks the two ports.
pub(crate) fn prepare(root: &Path) -> Result<AwsPlan, TestbedError> {
    let dir = aws_dir(root);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TestbedError::io("remove old", &dir, e))?;
    }
    create_dir(&dir)?;
    let ca = Ca::new("testbed AWS verifier CA")?;
    write_file(&dir.join("ca.crt"), ca.cert_pem.as_bytes(), 0o644)?;
    let cert = ca.server_cert("token verifier", &["127.0.0.1", "localhost"])?;
    write_file(&dir.join("verifier.crt"), cert.cert_pem.as_bytes(), 0o644)?;
    write_file(&dir.join("verifier.key"), cert.key_pem.as_bytes(), 0o600)?;
    Ok(AwsPlan {
        dir,
        moto_port: free_port()?,
        verifier_port: free_port()?,
    })
}

fn encode_err(what: &'static str) -> impl FnOnce(serde_saphyr::SerializeError) -> TestbedError {
    move |e| TestbedError::Encode {
        what,
        source: Box::new(e),
    }
}

/// The kubeconfig-format file kube-apiserver's webhook token authenticator reads. The cluster
/// is named in the path: client-go keeps the server URL's path but drops a `?cluster=` query.
pub(crate) fn webhook_kubeconfig(plan: &AwsPlan, cluster: &str) -> Result<String, TestbedError> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "verifier", "cluster": {
            "server": format!("https://127.0.0.1:{}/authenticate/{cluster}", plan.verifier_port),
            "certificate-authority": plan.dir.join("ca.crt"),
        }}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "verifier", "user": "kube-apiserver"}}],
        "current-context": "webhook",
    });
    serde_saphyr::to_string(&doc).map_err(encode_err("webhook kubeconfig"))
}

/// world.json, the input of awsworld.py (its fields: the structs below).
pub(crate) fn world_json(plan: &AwsPlan, clusters: &[(ClusterState, String)]) -> serde_json::Value {
    let clusters: Vec<_> = clusters
        .iter()
        .map(|(c, token)| {
            json!({
                "name": c.name, "account": c.account, "endpoint": c.server,
                "ca_file": c.ca_file, "apiserver_url": c.direct_server, "admin_token": token,
            })
        })
        .collect();
    json!({
        "region": REGION,
        "moto_port": plan.moto_port,
        "verifier_port": plan.verifier_port,
        "tls_cert_file": plan.dir.join("verifier.crt"),
        "tls_key_file": plan.dir.join("verifier.key"),
        "ready_file": plan.dir.join("ready"),
        "log_file": plan.dir.join("awsworld.log"),
        "clusters": clusters,
    })
}

/// Writes the webhook kubeconfigs and world.json, then starts awsworld.py.
pub(crate) fn start(
    root: &Path,
    plan: &AwsPlan,
    clusters: &[(ClusterState, String)],
) -> Result<ProcRecord, TestbedError> {
    for (c, _) in clusters {
        let text = webhook_kubeconfig(plan, &c.name)?;
        write_file(
            &cluster::webhook_kubeconfig_path(root, &c.name),
            text.as_bytes(),
            0o644,
        )?;
    }
    let world = serde_json::to_vec_pretty(&world_json(plan, clusters)).map_err(|e| {
        TestbedError::Encode {
            what: "world.json",
            source: Box::new(e),
        }
    })?;
    let world_path = plan.dir.join("world.json");
    write_file(&world_path, &world, 0o600)?;
    let script = assets::awsworld_script();
    if !script.exists() {
        return Err(TestbedError::MissingBinary {
            what: "awsworld.py",
            hint: format!("{} does not exist (set KCS_AWSWORLD)", script.display()),
        });
    }
    let python = assets::venv_python();
    if !python.exists() {
        return Err(TestbedError::MissingBinary {
            what: "the Python venv with moto",
            hint: format!(
                "{} does not exist (run `make setup` or set KCS_VENV)",
                python.display()
            ),
        });
    }
    let argv = vec![
        python.display().to_string(),
        script.display().to_string(),
        "--config".into(),
        world_path.display().to_string(),
    ];
    // awsworld.py writes its own log to aws/awsworld.log; this file catches what it prints.
    spawn("awsworld.py", &argv, &plan.dir.join("awsworld.out"))
}

pub(crate) fn state(plan: &AwsPlan, process: Option<ProcRecord>) -> AwsState {
    AwsState {
        moto_port: plan.moto_port,
        verifier_port: plan.verifier_port,
        process,
    }
}

pub(crate) async fn wait_ready(plan: &AwsPlan, rec: &ProcRecord) -> Result<(), TestbedError> {
    let ready = plan.dir.join("ready");
    poll("awsworld.py", AWSWORLD_READY, Some(rec), &rec.log, || {
        file_exists(ready.clone())
    })
    .await
}

/// The profiles INI, shaped exactly like the seed's `credentials` (bare sections, no blank
/// lines): the first cluster's profile assumes kubed-master with a web identity token, every
/// other profile chains from it into its account's kubed-follower role. Written by hand
/// because the seed's exact layout is the point (rust-ini would reformat it).
pub fn credentials_ini(clusters: &[(&str, &str)], token_file: &Path) -> String {
    let mut out = String::new();
    let Some(((mgmt, mgmt_account), followers)) = clusters.split_first() else {
        return out;
    };
    let mgmt = profile_name(mgmt);
    out.push_str(&format!(
        "[{mgmt}]\nrole_arn = arn:aws:iam::{mgmt_account}:role/kubed-master\nweb_identity_token_file = {}\n",
        token_file.display()
    ));
    for (name, account) in followers {
        let p = profile_name(name);
        out.push_str(&format!(
            "[{p}]\nrole_arn = arn:aws:iam::{account}:role/kubed-follower\nsource_profile = {mgmt}\nrole_session_name = {p}\n"
        ));
    }
    out
}

/// A string shaped like an EKS service-account token (moto does not check it).
fn web_identity_token() -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = json!({"alg": "RS256", "kid": "testbed"});
    let claims = json!({
        "aud": ["sts.amazonaws.com"],
        "iss": format!("https://oidc.eks.{REGION}.amazonaws.com/id/TESTBED"),
        "sub": "system:serviceaccount:kube-system:kubed",
        "iat": now, "exp": now + 86_400,
    });
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(crate::rng::random_hex(32))
    )
}

/// DIR/env lines, in order. AWS_DEFAULT_REGION too, as the EKS pod identity webhook injects
/// both, and awscli v1 reads only that one.
pub fn env_lines(root: &Path, moto_port: u16) -> Vec<(String, String)> {
    let aws = aws_dir(root);
    [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{moto_port}")),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            aws.join("credentials").display().to_string(),
        ),
        ("AWS_CONFIG_FILE", aws.join("config").display().to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_DEFAULT_REGION", REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes aws/credentials, aws/config (empty), aws/web-identity-token and DIR/env.
pub(crate) fn write_profiles(
    root: &Path,
    plan: &AwsPlan,
    clusters: &[ClusterState],
) -> Result<(), TestbedError> {
    let token_file = plan.dir.join("web-identity-token");
    write_file(&token_file, web_identity_token().as_bytes(), 0o600)?;
    let pairs: Vec<(&str, &str)> = clusters
        .iter()
        .map(|c| (c.name.as_str(), c.account.as_str()))
        .collect();
    write_file(
        &plan.dir.join("credentials"),
        credentials_ini(&pairs, &token_file).as_bytes(),
        0o600,
    )?;
    write_file(&plan.dir.join("config"), b"", 0o600)?;
    let env: String = env_lines(root, plan.moto_port)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    write_file(&root.join("env"), env.as_bytes(), 0o644)
}

/// The default `mapRoles` of a cluster: kubed-master in the management (first) cluster,
/// kubed-follower (user per session name) in each follower.
pub fn default_map_roles(account: &str, management: bool) -> String {
    if management {
        format!(
            "- rolearn: arn:aws:iam::{account}:role/kubed-master\n  username: kubed-master\n  groups:\n    - kubed-cross-sync:master\n"
        )
    } else {
        format!(
            "- rolearn: arn:aws:iam::{account}:role/kubed-follower\n  username: kubed-follower:{{{{SessionName}}}}\n  groups:\n    - kubed-cross-sync:follower\n"
        )
    }
}

/// Creates (server-side apply) kube-system/aws-auth with the default mapping.
pub(crate) async fn apply_aws_auth(c: &ClusterState, management: bool) -> Result<(), TestbedError> {
    let client = cluster::admin_client_for(c, &c.direct_server)?;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "mapRoles".to_string(),
            default_map_roles(&c.account, management),
        )])),
        ..Default::default()
    };
    let params = PatchParams::apply("testbed").force();
    let what = format!("aws-auth ConfigMap of {}", c.name);
    let log = c.ca_file.with_file_name("apiserver.log");
    poll(&what, Duration::from_secs(30), None, &log, || async {
        let mut cm = cm.clone();
        cm.metadata.managed_fields = None;
        api.patch("aws-auth", &params, &Patch::Apply(&cm))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_shaped_like_the_seed() {
        let ini = credentials_ini(
            &[
                ("mc-mgmt-k8s", "111111111111"),
                ("mc-project-k8s", "222222222222"),
            ],
            Path::new("/d/aws/web-identity-token"),
        );
        assert_eq!(
            ini,
            "[mc-mgmt]
role_arn = arn:aws:iam::111111111111:role/kubed-master
web_identity_token_file = /d/aws/web-identity-token
[mc-project]
role_arn = arn:aws:iam::222222222222:role/kubed-follower
source_profile = mc-mgmt
role_session_name = mc-project
"
        );
    }

    #[test]
    fn map_roles_use_the_session_name_template_for_followers() {
        let f = default_map_roles("222222222222", false);
        assert!(
            f.contains("username: kubed-follower:{{SessionName}}"),
            "{f}"
        );
        let m = default_map_roles("111111111111", true);
        assert!(m.contains("kubed-cross-sync:master"), "{m}");
    }

    #[test]
    fn web_identity_token_looks_like_a_jwt() {
        let t = web_identity_token();
        assert_eq!(t.split('.').count(), 3);
        assert!(t.starts_with("eyJ"));
    }

    #[test]
    fn env_names_the_files() {
        let env = env_lines(Path::new("/d"), 41001);
        assert_eq!(
            env[0],
            ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:41001".into())
        );
        assert_eq!(env[2].1, "/d/aws/config");
    }
}
