//! `update-kubeconfig` (issue 13, item 5): awscli's entries for one cluster — compared with
//! what the reference awscli writes for the same arguments — with our exec plugin, and global
//! flags before or after the subcommand.
use super::regions::create_west_cluster;
use super::*;

fn ours(home: &Path, args: &[&str]) -> Output {
    clean(&binary(), home, &aws_env())
        .args(args)
        .args(["--exec-command", binary().to_str().unwrap()])
        .output()
        .unwrap()
}

/// Names, servers, CAs, contexts and current-context: everything but the exec command.
fn shape(kc: &Kubeconfig) -> Value {
    let users: Vec<Value> = kc
        .auth_infos
        .iter()
        .map(|u| {
            let exec = u.auth_info.as_ref().unwrap().exec.as_ref().unwrap();
            // Ours also names non-default AWS files (the plugin must read the same files;
            // awscli's `aws` finds them in the inherited environment): compared apart.
            let profile: Vec<_> = exec
                .env
                .iter()
                .flatten()
                .filter(|e| e["name"] == "AWS_PROFILE")
                .collect();
            json!({"name": u.name, "apiVersion": exec.api_version, "env": profile})
        })
        .collect();
    json!({
        "clusters": kc.clusters.iter().map(|c| {
            let cl = c.cluster.as_ref().unwrap();
            json!([c.name, cl.server, cl.certificate_authority_data])
        }).collect::<Vec<_>>(),
        "contexts": kc.contexts.iter().map(|c| {
            let ctx = c.context.as_ref().unwrap();
            json!([c.name, ctx.cluster, ctx.user])
        }).collect::<Vec<_>>(),
        "users": users,
        "current": kc.current_context,
    })
}

#[tokio::test]
async fn update_kubeconfig_writes_what_awscli_writes_with_our_plugin() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (theirs_path, ours_path) = (h.join("awscli.yaml"), h.join("ours.yaml"));
    let args = |path: &Path| -> Vec<String> {
        [
            "eks",
            "update-kubeconfig",
            "--name",
            "mc-project-k8s",
            "--alias",
            "proj",
            "--profile",
            "mc-project",
            "--region",
            "eu-central-1",
            "--kubeconfig",
            path.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    for (round, said) in [
        (0, "Added new context proj to"),
        (1, "Updated context proj in"),
    ] {
        let reference = clean(&aws_cli(), h, &aws_env())
            .args(args(&theirs_path))
            .output()
            .unwrap();
        assert!(reference.status.success(), "{}", text(&reference.stderr));
        let ours_args = args(&ours_path);
        let ours_args: Vec<&str> = ours_args[1..].iter().map(String::as_str).collect();
        let out = ours(h, &ours_args);
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{said} {}\n", ours_path.display()),
            "round {round}"
        );
        assert!(text(&reference.stdout).starts_with(said), "round {round}");
        let theirs = Kubeconfig::read_from(&theirs_path).unwrap();
        let mine = Kubeconfig::read_from(&ours_path).unwrap();
        assert_eq!(shape(&mine), shape(&theirs), "round {round}");
        let exec = mine.auth_infos[0].auth_info.as_ref().unwrap().exec.as_ref();
        assert_eq!(exec.unwrap().command.as_deref(), binary().to_str());
        let names: Vec<&str> = exec
            .unwrap()
            .env
            .iter()
            .flatten()
            .map(|e| e["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "AWS_PROFILE",
                "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE"
            ],
            "the testbed's files are not the defaults"
        );
    }

    // The entry works: real kubectl through our plugin.
    allow_list_namespaces("mc-project-k8s").await;
    let listed = wait_for(
        "kubectl lists namespaces through the update-kubeconfig entry",
        Duration::from_secs(30),
        || async {
            let o = clean(&kubectl(), h, &aws_env())
                .args(["--kubeconfig", ours_path.to_str().unwrap()])
                .args(["get", "ns", "-o", "name"])
                .output()
                .unwrap();
            o.status.success().then(|| text(&o.stdout))
        },
    )
    .await;
    assert!(listed.contains("namespace/default"), "{listed}");
}

/// `--dry-run` prints and writes nothing; `--user-alias` names the user and, without `--alias`,
/// the context; `--role-arn` goes to the exec args.
#[test]
fn update_kubeconfig_dry_run_user_alias_and_role_arn() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let ours_path = h.join("never-written.yaml");
    let dry = ours(
        h,
        &[
            "update-kubeconfig",
            "--name",
            "mc-project-k8s",
            "--profile",
            "mc-project",
            "--user-alias",
            "me",
            "--role-arn",
            "arn:aws:iam::222222222222:role/kubed-follower",
            "--kubeconfig",
            ours_path.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(!ours_path.exists(), "--dry-run wrote");
    let kc = Kubeconfig::from_yaml(&text(&dry.stdout)).unwrap();
    let arn = "arn:aws:eks:eu-central-1:222222222222:cluster/mc-project-k8s";
    assert_eq!(
        kc.current_context.as_deref(),
        Some("me"),
        "context = the user name"
    );
    let ctx = kc.contexts.iter().find(|c| c.name == "me").unwrap();
    assert_eq!(ctx.context.as_ref().unwrap().cluster, arn);
    let me = kc.auth_infos.iter().find(|u| u.name == "me").unwrap();
    let args = me
        .auth_info
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap()
        .args
        .clone();
    assert!(args.unwrap().ends_with(&[
        "--role-arn".to_string(),
        "arn:aws:iam::222222222222:role/kubed-follower".to_string()
    ]));
}

/// `--region` before the subcommand was silently ignored by `generate`. (The current context
/// is named: the regions test may have put a second cluster into us-west-2.)
#[test]
fn region_before_or_after_the_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    create_west_cluster(h, "west-only-k8s");
    let west = "arn:aws:eks:us-west-2:222222222222:cluster/west-only-k8s";
    for args in [
        &[
            "--region",
            "us-west-2",
            "generate",
            "--profile",
            "mc-project",
            "--kubeconfig",
            "-",
            "--current-context=west-only-k8s",
        ][..],
        &[
            "generate",
            "--profile",
            "mc-project",
            "--kubeconfig",
            "-",
            "--region",
            "us-west-2",
            "--current-context=west-only-k8s",
        ][..],
        &[
            "--region",
            "us-west-2",
            "update-kubeconfig",
            "--name",
            "west-only-k8s",
            "--profile",
            "mc-project",
            "--dry-run",
        ][..],
        &[
            "update-kubeconfig",
            "--name",
            "west-only-k8s",
            "--profile",
            "mc-project",
            "--dry-run",
            "--region",
            "us-west-2",
        ][..],
    ] {
        let out = ours(h, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let kc = Kubeconfig::from_yaml(&text(&out.stdout)).unwrap();
        assert!(
            kc.clusters.iter().any(|c| c.name == west),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}
