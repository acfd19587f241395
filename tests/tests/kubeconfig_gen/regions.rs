//! Regions (issue 13, item 2): `--regions` discovers in each region for every profile,
//! `--cluster PROFILE:CLUSTER@REGION` names one, contexts of same-named clusters in two regions
//! do not collide, and each exec entry's token is signed for its cluster's region — with
//! AWS_REGION set to another region, as EKS injects it.
use super::*;

const WEST: &str = "us-west-2";

/// Creates CLUSTER in us-west-2 of mc-project's account (222222222222) in the testbed's moto,
/// through the reference awscli and the testbed's profile chain. Already there is fine (a
/// reused testbed).
pub(super) fn create_west_cluster(home: &Path, cluster: &str) {
    let mut env = aws_env();
    env.push(("AWS_PROFILE".into(), "mc-project".into()));
    let out = clean(&aws_cli(), home, &env)
        .args(["--region", WEST, "eks", "create-cluster", "--name", cluster])
        .args(["--role-arn", "arn:aws:iam::222222222222:role/eks"])
        .args(["--resources-vpc-config", "subnetIds=subnet-12345678"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("ResourceInUse"),
        "create-cluster {cluster}: {stderr}"
    );
}

fn exec_of<'a>(kc: &'a Kubeconfig, context: &str) -> &'a kube::config::ExecConfig {
    let ctx = kc.contexts.iter().find(|c| c.name == context);
    let user = ctx
        .and_then(|c| c.context.as_ref()?.user.clone())
        .unwrap_or_else(|| panic!("no context {context}"));
    let auth = kc.auth_infos.iter().find(|u| u.name == user).unwrap();
    auth.auth_info.as_ref().unwrap().exec.as_ref().unwrap()
}

/// Runs the exec entry of CONTEXT as kubectl would (its command, args and env) and returns the
/// region its token was signed for (the X-Amz-Credential scope).
fn token_region(home: &Path, kc: &Kubeconfig, context: &str) -> String {
    let exec = exec_of(kc, context);
    let mut env = aws_env();
    for e in exec.env.clone().unwrap_or_default() {
        env.push((e["name"].clone(), e["value"].clone()));
    }
    let out = clean(Path::new(exec.command.as_ref().unwrap()), home, &env)
        .args(exec.args.clone().unwrap_or_default())
        .output()
        .unwrap();
    assert!(out.status.success(), "{context}: {}", text(&out.stderr));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = cred["status"]["token"].as_str().unwrap();
    use base64::Engine;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.strip_prefix("k8s-aws-v1.").unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    // X-Amz-Credential=AKID%2F20260101%2Fus-west-2%2Fsts%2Faws4_request
    let scope = url.split("X-Amz-Credential=").nth(1).unwrap();
    scope.split("%2F").nth(2).unwrap().to_string()
}

#[test]
fn regions_discover_name_and_sign_per_region() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // A same-named cluster in a second region, and one only there.
    create_west_cluster(h, "mc-project-k8s");
    create_west_cluster(h, "west-only-k8s");
    assert!(
        aws_env().contains(&("AWS_REGION".into(), "eu-central-1".into())),
        "the pod's shape: AWS_REGION injected"
    );

    let out = generate(
        h,
        &["--regions", "eu-central-1,us-west-2", "--kubeconfig", "-"],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kc = Kubeconfig::from_yaml(&text(&out.stdout)).unwrap();
    let mut contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts.last(), Some(&"mc-mgmt-k8s"), "management last");
    assert_eq!(kc.current_context.as_deref(), Some("mc-mgmt-k8s"));
    contexts.sort_unstable();
    assert_eq!(
        contexts,
        [
            "mc-mgmt-k8s",
            "mc-project-k8s@eu-central-1",
            "mc-project-k8s@us-west-2",
            "mc-project2-k8s",
            "west-only-k8s",
        ],
        "{stderr}"
    );
    for (context, region) in [
        ("mc-project-k8s@us-west-2", WEST),
        ("west-only-k8s", WEST),
        ("mc-project-k8s@eu-central-1", "eu-central-1"),
    ] {
        let args = exec_of(&kc, context).args.clone().unwrap();
        assert!(
            args.windows(2).any(|w| w == ["--region", region]),
            "{context}: {args:?}"
        );
        assert_eq!(token_region(h, &kc, context), region, "{context}");
    }

    // One cluster by name in its region, whatever AWS_REGION says.
    let one = generate(
        h,
        &[
            "--cluster",
            "mc-project:west-only-k8s@us-west-2",
            "--kubeconfig",
            "-",
        ],
    );
    assert!(one.status.success(), "{}", text(&one.stderr));
    let kc = Kubeconfig::from_yaml(&text(&one.stdout)).unwrap();
    assert_eq!(kc.contexts.len(), 1);
    assert_eq!(
        kc.contexts[0].context.as_ref().unwrap().cluster,
        "arn:aws:eks:us-west-2:222222222222:cluster/west-only-k8s"
    );
    assert_eq!(token_region(h, &kc, "west-only-k8s"), WEST);

    // Without --regions, AWS_REGION decides: the second region's clusters are not there.
    let plain = generate(h, &["--profile", "mc-project", "--kubeconfig", "-"]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let kc = Kubeconfig::from_yaml(&text(&plain.stdout)).unwrap();
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mc-project-k8s"]);
}
