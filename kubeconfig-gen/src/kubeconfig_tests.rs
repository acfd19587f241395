use super::*;

fn entry(profile: &str, name: &str, account: &str) -> ClusterEntry {
    ClusterEntry {
        context: name.into(),
        profile: profile.into(),
        name: name.into(),
        arn: format!("arn:aws:eks:eu-central-1:{account}:cluster/{name}"),
        region: "eu-central-1".into(),
        endpoint: format!("https://{name}.example"),
        ca_data: "Q0E=".into(),
    }
}

fn seed() -> (Vec<ClusterEntry>, HashMap<String, String>) {
    let entries = vec![
        entry("mc-mgmt", "mc-mgmt-k8s", "111111111111"),
        entry("mc-project", "mc-project-k8s", "222222222222"),
        entry("mc-project2", "mc-project2-k8s", "333333333333"),
    ];
    let roots = ["mc-mgmt", "mc-project", "mc-project2"]
        .iter()
        .map(|p| (p.to_string(), "mc-mgmt".to_string()))
        .collect();
    (entries, roots)
}

fn native() -> ExecSettings {
    ExecSettings {
        style: ExecStyle::Native,
        command: "kubeconfig-gen".into(),
        extra_env: vec![],
    }
}

#[test]
fn current_context_is_the_root_profiles_context() {
    let (entries, roots) = seed();
    assert_eq!(
        choose_current(&entries, &roots, None, None, true).unwrap(),
        "mc-mgmt-k8s"
    );
    assert_eq!(
        choose_current(&entries, &roots, Some("mc-project-k8s"), None, true).unwrap(),
        "mc-project-k8s"
    );
    let err = choose_current(&entries, &roots, Some("nope"), None, true).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn current_context_ambiguities() {
    let (mut entries, mut roots) = seed();
    // The root profile reaches two clusters.
    let mut extra = entry("mc-mgmt", "mc-mgmt2-k8s", "111111111111");
    extra.context = "mc-mgmt2-k8s".into();
    entries.push(extra);
    let msg = choose_current(&entries, &roots, None, None, true)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("several clusters: mc-mgmt-k8s, mc-mgmt2-k8s"),
        "{msg}"
    );
    entries.pop();
    // Two roots.
    roots.insert("mc-project2".into(), "other".into());
    let msg = choose_current(&entries, &roots, None, None, true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("several roots: mc-mgmt, other"), "{msg}");
    assert!(msg.contains("--current-context"), "{msg}");
}

#[test]
fn after_a_skip_a_lone_follower_is_not_the_management_context() {
    let (entries, roots) = seed();
    let follower = &entries[1..2];
    assert_eq!(
        choose_current(follower, &roots, None, None, true).unwrap(),
        follower[0].context
    );
    let err = choose_current(follower, &roots, None, None, false).unwrap_err();
    assert!(
        matches!(err, Error::NoRootContext { ref root } if root == "mc-mgmt"),
        "{err}"
    );
}

#[test]
fn no_current_context_keeps_the_existing_one() {
    let (entries, _) = seed();
    let existing = from_yaml("apiVersion: v1\nkind: Config\ncurrent-context: foreign\ncontexts:\n- name: foreign\n  context: {cluster: c, user: u}\n").unwrap();
    let merged = merge(existing, build(&entries[1..], &native(), None));
    assert_eq!(merged.current_context.as_deref(), Some("foreign"));
    assert_eq!(merged.contexts.len(), 3);
}

#[test]
fn duplicate_context_names_both() {
    let (mut entries, _) = seed();
    let mut dup = entry("mc-project2", "mc-project-k8s", "333333333333");
    dup.context = "mc-project-k8s".into();
    entries.push(dup);
    let msg = check_contexts(&entries).unwrap_err().to_string();
    assert!(
        msg.contains(
            "arn:aws:eks:eu-central-1:222222222222:cluster/mc-project-k8s (profile mc-project)"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(
            "arn:aws:eks:eu-central-1:333333333333:cluster/mc-project-k8s (profile mc-project2)"
        ),
        "{msg}"
    );
}

#[test]
fn build_puts_current_last_and_names_by_arn() {
    let (entries, _) = seed();
    let k = build(&entries, &native(), Some("mc-mgmt-k8s"));
    let names = |v: Vec<&str>| v.join(",");
    assert_eq!(
        names(k.contexts.iter().map(|c| c.name.as_str()).collect()),
        "mc-project-k8s,mc-project2-k8s,mc-mgmt-k8s"
    );
    assert!(
        k.clusters
            .last()
            .unwrap()
            .name
            .ends_with(":111111111111:cluster/mc-mgmt-k8s")
    );
    assert!(
        k.auth_infos
            .last()
            .unwrap()
            .name
            .ends_with(":111111111111:cluster/mc-mgmt-k8s")
    );
    assert_eq!(k.current_context.as_deref(), Some("mc-mgmt-k8s"));
    let exec = k.auth_infos[0]
        .auth_info
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap();
    assert_eq!(exec.command.as_deref(), Some("kubeconfig-gen"));
    assert_eq!(
        exec.args.as_ref().unwrap().join(" "),
        "token --cluster-name mc-project-k8s --region eu-central-1"
    );
    assert_eq!(exec.env.as_ref().unwrap()[0]["value"], "mc-project");
    assert_eq!(exec.api_version.as_deref(), Some(EXEC_API_VERSION));
}

#[test]
fn awscli_style_and_extra_env() {
    let (entries, _) = seed();
    let settings = ExecSettings {
        style: ExecStyle::Awscli,
        command: "ignored".into(),
        extra_env: vec![("AWS_CONFIG_FILE".into(), "/etc/aws/config".into())],
    };
    let k = build(&entries[..1], &settings, Some("mc-mgmt-k8s"));
    let exec = k.auth_infos[0]
        .auth_info
        .as_ref()
        .unwrap()
        .exec
        .clone()
        .unwrap();
    assert_eq!(exec.command.as_deref(), Some("aws"));
    assert_eq!(
        exec.args.unwrap().join(" "),
        "--region eu-central-1 eks get-token --cluster-name mc-mgmt-k8s --output json"
    );
    let env = exec.env.unwrap();
    assert_eq!(env[1]["name"], "AWS_CONFIG_FILE");
    assert_eq!(env[1]["value"], "/etc/aws/config");
}

#[test]
fn same_cluster_through_two_profiles_gets_two_users() {
    let mut a = entry("p1", "c", "1");
    a.context = "c-p1".into();
    let mut b = entry("p2", "c", "1");
    b.context = "c-p2".into();
    let k = build(&[a, b], &native(), Some("c-p1"));
    assert_eq!(k.clusters.len(), 1);
    let users: Vec<&str> = k.auth_infos.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        users,
        vec![
            "arn:aws:eks:eu-central-1:1:cluster/c/p2",
            "arn:aws:eks:eu-central-1:1:cluster/c/p1"
        ]
    );
}

#[test]
fn merge_replaces_in_place_keeps_foreign_and_moves_current_last() {
    let existing = from_yaml(
        "apiVersion: v1\nkind: Config\ncurrent-context: foreign\n\
         clusters:\n- name: arn:aws:eks:eu-central-1:111111111111:cluster/mc-mgmt-k8s\n  cluster: {server: https://old}\n- name: foreign\n  cluster: {server: https://foreign}\n\
         users:\n- name: foreign\n  user: {token: t0ken}\n\
         contexts:\n- name: foreign\n  context: {cluster: foreign, user: foreign}\n",
    )
    .unwrap();
    let (entries, _) = seed();
    let merged = merge(existing, build(&entries, &native(), Some("mc-mgmt-k8s")));
    let clusters: Vec<&str> = merged.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters.len(), 4);
    assert_eq!(clusters[0], "foreign");
    assert!(clusters[3].ends_with("mc-mgmt-k8s"));
    assert_eq!(
        merged.clusters[3]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .as_deref(),
        Some("https://mc-mgmt-k8s.example")
    );
    assert_eq!(merged.contexts.len(), 4);
    assert_eq!(merged.contexts.last().unwrap().name, "mc-mgmt-k8s");
    assert_eq!(merged.current_context.as_deref(), Some("mc-mgmt-k8s"));
    // The foreign user's token survives the round trip.
    let yaml = to_yaml(&merged).unwrap();
    assert!(yaml.contains("t0ken"), "{yaml}");
    let again = from_yaml(&yaml).unwrap();
    assert_eq!(again.contexts.len(), 4);
}

#[test]
fn generated_yaml_has_no_static_credentials() {
    let (entries, _) = seed();
    let yaml = to_yaml(&build(&entries, &native(), Some("mc-mgmt-k8s"))).unwrap();
    for forbidden in [
        "token:",
        "password",
        "client-key",
        "aws_secret",
        "AWS_SECRET",
        "AWS_ACCESS",
    ] {
        assert!(!yaml.contains(forbidden), "{forbidden} in {yaml}");
    }
    let k = from_yaml(&yaml).unwrap();
    assert_eq!(k.contexts.len(), 3);
}

#[test]
fn empty_existing_file_is_an_empty_config() {
    assert!(from_yaml("  \n").unwrap().clusters.is_empty());
    assert!(from_yaml("clusters: [").is_err());
}

#[test]
fn yaml_is_byte_stable_with_sorted_keys() {
    let (entries, _) = seed();
    let settings = ExecSettings {
        extra_env: vec![
            ("AWS_CONFIG_FILE".into(), "/c".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/s".into()),
        ],
        ..native()
    };
    let first = to_yaml(&build(&entries, &settings, Some("mc-mgmt-k8s"))).unwrap();
    // HashMap order differs between maps built in one process too: many builds, one text.
    for _ in 0..20 {
        let again = to_yaml(&build(&entries, &settings, Some("mc-mgmt-k8s"))).unwrap();
        assert_eq!(again, first);
    }
    let at = |needle: &str| {
        first
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {first}"))
    };
    // awscli's key order: top level and inside each entry.
    assert!(at("apiVersion:") < at("clusters:"));
    assert!(at("clusters:") < at("contexts:"));
    assert!(at("contexts:") < at("current-context:"));
    assert!(at("current-context:") < at("kind:"));
    assert!(at("kind:") < at("users:"));
    assert!(first.contains("- name: AWS_PROFILE\n"), "{first}");
    assert!(at("name: AWS_PROFILE") < at("value: mc-mgmt"));
    assert_eq!(from_yaml(&first).unwrap().auth_infos.len(), 3);
}

#[test]
fn same_named_clusters_in_two_regions_get_region_suffixed_contexts() {
    let in_region = |profile: &str, name: &str, account: &str, region: &str| ClusterEntry {
        region: region.into(),
        arn: format!("arn:aws:eks:{region}:{account}:cluster/{name}"),
        ..entry(profile, name, account)
    };
    let mut entries = vec![
        in_region("mc-mgmt", "mc-mgmt-k8s", "111111111111", "eu-central-1"),
        in_region("mc-project", "app", "222222222222", "eu-central-1"),
        in_region("mc-project", "app", "222222222222", "us-west-2"),
        in_region("mc-project", "west-only", "222222222222", "us-west-2"),
        ClusterEntry {
            context: "pinned".into(),
            ..in_region("mc-project2", "app", "333333333333", "ap-south-1")
        },
    ];
    name_by_region(&mut entries);
    let contexts: Vec<&str> = entries.iter().map(|e| e.context.as_str()).collect();
    assert_eq!(
        contexts,
        [
            "mc-mgmt-k8s",
            "app@eu-central-1",
            "app@us-west-2",
            "west-only",
            "pinned"
        ]
    );
    check_contexts(&entries).unwrap();
    // Each exec entry asks for its token in its cluster's region.
    let k = build(&entries, &native(), Some("mc-mgmt-k8s"));
    let west = k
        .auth_infos
        .iter()
        .find(|u| u.name.contains("us-west-2:222222222222:cluster/app"))
        .unwrap();
    let args = west
        .auth_info
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap()
        .args
        .clone();
    assert!(
        args.unwrap()
            .windows(2)
            .any(|w| w == ["--region", "us-west-2"])
    );
}

/// `--watch`: a cluster that went away leaves a merged file; foreign entries and the clusters
/// still there stay, in place.
#[test]
fn forget_removes_only_what_was_generated_and_is_gone() {
    let (entries, _) = seed();
    let before = build(&entries, &native(), Some("mc-mgmt-k8s"));
    let now = build(
        &[entries[0].clone(), entries[1].clone()],
        &native(),
        Some("mc-mgmt-k8s"),
    );
    let mut file = build(
        &[entry("foreign", "foreign-k8s", "999999999999")],
        &native(),
        None,
    );
    file = merge(file, before.clone());
    let (before, now) = (Names::of(&before), Names::of(&now));
    let mut forgotten = file.clone();
    forget(&mut forgotten, &before, &now);
    let names = Names::of(&forgotten);
    let gone = &entries[2];
    assert!(!names.contexts.contains(&gone.context), "{names:?}");
    assert!(!names.clusters.contains(&gone.arn) && !names.users.contains(&gone.arn));
    assert!(names.contexts.contains("foreign-k8s"));
    assert_eq!(names.contexts.len(), 3, "{names:?}");
    assert_eq!(forgotten.current_context, file.current_context);
    // Nothing generated before: nothing removed.
    let mut same = file.clone();
    forget(&mut same, &Names::default(), &now);
    assert_eq!(Names::of(&same), Names::of(&file));
    // The current context itself gone: no current context left pointing at nothing.
    let mut lost = file.clone();
    lost.current_context = Some(gone.context.clone());
    forget(&mut lost, &before, &now);
    assert_eq!(lost.current_context, None);
}
