use super::*;

#[test]
fn a_failed_profile_keeps_its_last_clusters_and_no_other() {
    let entry = |profile: &str, name: &str, region: &str| ClusterEntry {
        context: name.into(),
        profile: profile.into(),
        name: name.into(),
        arn: format!("arn:aws:eks:{region}:1:cluster/{name}"),
        region: region.into(),
        endpoint: format!("https://{name}"),
        ca_data: "Q0E=".into(),
    };
    let last = vec![
        entry("mgmt", "m", "r1"),
        entry("a", "a1", "r1"),
        entry("a", "a2", "r2"),
        entry("b", "b1", "r1"),
    ];
    // Profile a failed in r2 only (its r1 cluster came back this round); b succeeded and
    // lost b1; mgmt is fine.
    let mut now = vec![entry("mgmt", "m", "r1"), entry("a", "a1", "r1")];
    let failed = BTreeSet::from(["a".to_string()]);
    carry_over(&mut now, &last, &failed);
    let names: Vec<&str> = now.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["m", "a1", "a2"]);
    // Nothing failed, or nothing known yet (plain generate): nothing added.
    let mut same = vec![entry("mgmt", "m", "r1")];
    carry_over(&mut same, &last, &BTreeSet::new());
    carry_over(&mut same, &[], &failed);
    assert_eq!(same.len(), 1);
}

#[test]
fn cluster_args() {
    let ok = |p: &str, c: &str, x: Option<&str>| ClusterArg {
        profile: p.into(),
        cluster: c.into(),
        region: None,
        context: x.map(str::to_string),
    };
    let at = |r: &str, a: ClusterArg| ClusterArg {
        region: Some(r.into()),
        ..a
    };
    let cases = [
        (
            "mc-mgmt:mc-mgmt-k8s",
            Some(ok("mc-mgmt", "mc-mgmt-k8s", None)),
        ),
        ("p:c=ctx", Some(ok("p", "c", Some("ctx")))),
        ("c", Some(ok("envp", "c", None))),
        ("c=ctx", Some(ok("envp", "c", Some("ctx")))),
        (":c", None),
        ("p:", None),
        ("p:c=", None),
        ("p:c@us-west-2", Some(at("us-west-2", ok("p", "c", None)))),
        (
            "p:c@us-west-2=x",
            Some(at("us-west-2", ok("p", "c", Some("x")))),
        ),
        ("c@r", Some(at("r", ok("envp", "c", None)))),
        ("p:c@", None),
        ("p:@r", None),
        ("", None),
    ];
    for (raw, want) in cases {
        let got = parse_cluster_arg(raw, "envp").ok();
        assert_eq!(got, want, "{raw:?}");
    }
}
