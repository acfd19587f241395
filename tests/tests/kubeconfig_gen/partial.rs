//! `--keep-going` (issue 13, item 1): with the pod's own arguments, broken followers are skipped
//! one line each and the rest is written with the management context current; without the
//! management cluster the rest is still written and the exit code is 7.
use super::cases::{SECRET, SEED, fill, run_case};
use super::*;

/// Followers broken in every way the issue names, beside the seed's three good profiles.
const BROKEN: &str = "\
[broken-trust]\nrole_arn = arn:aws:iam::444444444444:role/kubed-follower\nsource_profile = mc-mgmt\n\
role_session_name = a-session-name-longer-than-sixty-four-characters-which-sts-refuses-xx\n\
[typo]\nrole_arn = arn:aws:iam::555555555555:role/kubed-follower\nsource_profile = mc-mgmtt\n\
[no-token]\nrole_arn = arn:aws:iam::666666666666:role/kubed-master\nweb_identity_token_file = {dir}/missing-token\n\
[mgmt-twin]\nrole_arn = arn:aws:iam::111111111111:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = twin\n";

/// The init container's own arguments, read from manifests/mgmt/base/deployment.yaml with the
/// seed's settings (manifests/mgmt/example/settings.env: `$(KCS_MGMT_CONTEXT)` is mc-mgmt-k8s), the
/// pod's paths moved into DIR and the exec command at the built binary (the image has it on PATH).
fn pod_args(dir: &Path) -> Vec<String> {
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/mgmt");
    let path = format!("{manifests}/base/deployment.yaml");
    let settings = std::fs::read_to_string(format!("{manifests}/example/settings.env")).unwrap();
    let settings: Vec<(String, String)> = settings
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("$({k})"), v.to_string()))
        .collect();
    let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let init = doc["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kubeconfig-gen")
        .unwrap();
    let mut args: Vec<String> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.split_once('=') {
                Some(("--credentials-file", _)) => {
                    fill("--credentials-file={dir}/credentials", dir)
                }
                Some(("--kubeconfig", _)) => fill("--kubeconfig={dir}/kubeconfig", dir),
                _ => settings
                    .iter()
                    .fold(a.to_string(), |a, (var, value)| a.replace(var, value)),
            }
        })
        .collect();
    args.push(format!("--exec-command={}", binary().display()));
    args
}

fn skipped_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("  - ")).collect()
}

#[tokio::test]
async fn keep_going_skips_each_broken_follower_and_writes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let creds = fill(&format!("{SEED}{BROKEN}"), d);
    let path = d.join("kubeconfig");

    let args = pod_args(d);
    assert!(
        args.contains(&"--keep-going".to_string()),
        "the manifests' init container keeps going: {args:?}"
    );
    // Without --keep-going: all or nothing, as before.
    let strict: Vec<String> = args
        .iter()
        .filter(|a| *a != "--keep-going")
        .cloned()
        .collect();
    let strict = run_case(d, &creds, "", &strict, &[]);
    assert_ne!(strict.status.code(), Some(0), "{}", text(&strict.stderr));
    assert!(
        !path.exists(),
        "nothing may be written without --keep-going"
    );

    let out = run_case(d, &creds, "", &args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    // One line per failure, each naming its profile and cause: configuration (typo, no-token),
    // STS (broken-trust: moto refuses the session name, as STS does), and the twin of the
    // management profile, whose cluster collides with the management context.
    let lines = skipped_lines(&stderr);
    let want = [
        "profile broken-trust: cannot get AWS credentials",
        "could not find source profile mc-mgmtt referenced from typo",
        &fill(
            "profile no-token: web identity token file {dir}/missing-token cannot be read",
            d,
        ),
        "context mc-mgmt-k8s: skipped arn:aws:eks:eu-central-1:111111111111:cluster/mc-mgmt-k8s (profile mgmt-twin)",
    ];
    for w in want {
        assert_eq!(
            lines.iter().filter(|l| l.contains(w)).count(),
            1,
            "{w:?} not on exactly one line: {stderr}"
        );
    }
    assert_eq!(lines.len(), want.len(), "{stderr}");
    assert!(
        stderr.contains("warning: 3 of 7 profiles and 1 of 4 clusters failed and skipped"),
        "{stderr}"
    );

    let kc = Kubeconfig::read_from(&path).unwrap();
    let contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        contexts,
        ["mc-project-k8s", "mc-project2-k8s", "mc-mgmt-k8s"],
        "the management context last"
    );
    assert_eq!(kc.current_context.as_deref(), Some("mc-mgmt-k8s"));
    let mgmt_user = &kc.contexts[2].context.as_ref().unwrap().user;
    assert_eq!(
        mgmt_user.as_deref(),
        Some("arn:aws:eks:eu-central-1:111111111111:cluster/mc-mgmt-k8s"),
        "the skipped twin leaves the management user as awscli names it"
    );

    // The followers that were written work: real kubectl through the exec plugin.
    allow_list_namespaces("mc-project2-k8s").await;
    let listed = wait_for(
        "kubectl lists namespaces in mc-project2-k8s through the partial kubeconfig",
        Duration::from_secs(30),
        || async {
            let o = clean(&kubectl(), d, &aws_env())
                .env("AWS_SHARED_CREDENTIALS_FILE", d.join("credentials"))
                .args(["--kubeconfig", path.to_str().unwrap()])
                .args(["--context", "mc-project2-k8s", "get", "ns", "-o", "name"])
                .output()
                .unwrap();
            o.status.success().then(|| text(&o.stdout))
        },
    )
    .await;
    assert!(listed.contains("namespace/kube-system"), "{listed}");
}

#[test]
fn keep_going_without_the_management_cluster_writes_the_rest_and_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\ncurrent-context: foreign\nclusters:\n- name: foreign\n  cluster: {server: 'https://foreign.example'}\nusers:\n- name: foreign\n  user: {token: keep-me}\ncontexts:\n- name: foreign\n  context: {cluster: foreign, user: foreign}\n",
    )
    .unwrap();
    let kubeconfig = fill("--kubeconfig={dir}/kubeconfig", d);
    // Without and with --current-context: the root profile's rule, then the pod's flag.
    for flag in [None, Some("--current-context=mc-mgmt-k8s")] {
        let mut args: Vec<String> = [
            "generate",
            "--keep-going",
            kubeconfig.as_str(),
            "--cluster",
            "mc-mgmt:no-such-cluster",
            "--cluster",
            "mc-project:mc-project-k8s",
        ]
        .map(String::from)
        .to_vec();
        args.extend(flag.map(String::from));
        let out = run_case(d, &fill(SEED, d), "", &args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{flag:?}: {stderr}");
        assert!(
            stderr.contains("1 of 2 clusters failed; --keep-going wrote the rest, but not the management context"),
            "{flag:?}: {stderr}"
        );
        assert_eq!(
            skipped_lines(&stderr),
            ["  - profile mc-mgmt: cluster no-such-cluster not found in eu-central-1"],
            "{flag:?}: {stderr}"
        );
        let kc = Kubeconfig::read_from(d.join("kubeconfig")).unwrap();
        let mut contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        contexts.sort_unstable();
        assert_eq!(contexts, ["foreign", "mc-project-k8s"], "{flag:?}");
        assert_eq!(
            kc.current_context.as_deref(),
            Some("foreign"),
            "{flag:?}: a follower must not become current"
        );
    }
}
