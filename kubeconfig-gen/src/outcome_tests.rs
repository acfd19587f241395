use super::*;

fn entry(profile: &str, name: &str) -> ClusterEntry {
    ClusterEntry {
        context: name.into(),
        profile: profile.into(),
        name: name.into(),
        arn: format!("arn:aws:eks:r:1:cluster/{name}"),
        region: "r".into(),
        endpoint: "https://e".into(),
        ca_data: "ca".into(),
    }
}

#[test]
fn failures_are_counted_once_in_their_own_unit() {
    let mut n = 0;
    let mut broken = || {
        n += 1;
        Fetched::Profile(format!("p{n}"), Error::Usage("profile failed".into()))
    };
    let ok = |p: &str, c: &str| Ok(entry(p, c));
    let missing = || Err(Error::Usage("cluster failed".into()));
    // (profiles asked for, what they came to, want tally, want message)
    let cases: Vec<(usize, Vec<Fetched>, [usize; 4], &str)> = vec![
        // Two profiles failing their plan, nothing run: once "2 of 1 failed".
        (2, vec![broken(), broken()], [2, 2, 0, 0], "2 of 2 profiles"),
        // One of three fails before the others ran.
        (3, vec![broken()], [3, 1, 0, 0], "1 of 3 profiles"),
        (
            1,
            vec![Fetched::Clusters(vec![ok("a", "x"), missing()])],
            [1, 0, 2, 1],
            "1 of 2 clusters",
        ),
        // A broken profile beside a profile with a missing cluster: once "2 of 3 failed",
        // a profile and a cluster set against a profile and two clusters.
        (
            2,
            vec![broken(), Fetched::Clusters(vec![ok("a", "x"), missing()])],
            [2, 1, 2, 1],
            "1 of 2 profiles and 1 of 2 clusters",
        ),
        // Credentials of one profile fail while the others' clusters are fine.
        (
            3,
            vec![
                Fetched::Clusters(vec![ok("a", "x")]),
                broken(),
                Fetched::Clusters(vec![ok("b", "y"), ok("b", "z")]),
            ],
            [3, 1, 3, 0],
            "1 of 3 profiles",
        ),
        // Discovery that finds nothing is no failure.
        (
            1,
            vec![Fetched::Clusters(vec![])],
            [1, 0, 0, 0],
            "0 of 0 clusters",
        ),
    ];
    for (profiles, fetched, want, message) in cases {
        let got = collect(profiles, fetched);
        let t = got.tally;
        assert_eq!(
            [t.profiles, t.failed_profiles, t.clusters, t.failed_clusters],
            want,
            "{message}"
        );
        assert!(t.failed_profiles <= t.profiles && t.failed_clusters <= t.clusters);
        assert_eq!(got.failures.len(), t.failed_profiles + t.failed_clusters);
        assert_eq!(got.entries.len(), t.clusters - t.failed_clusters);
        assert_eq!(t.to_string(), message);
    }
}
#[test]
fn a_lone_failure_is_itself_several_are_tallied() {
    let one = collect(
        2,
        vec![Fetched::Profile("a".into(), Error::Usage("only".into()))],
    );
    assert_eq!(one.error().to_string(), "only");
    let two = collect(
        2,
        vec![
            Fetched::Profile("a".into(), Error::Usage("a".into())),
            Fetched::Profile("b".into(), Error::Usage("b\nsecond line".into())),
        ],
    );
    let report = two.skipped_report();
    assert_eq!(
        report,
        "warning: 2 of 2 profiles failed and skipped (--keep-going; the rest was written)\n  - a\n  - b second line"
    );
    assert_eq!(
        two.error().to_string(),
        "2 of 2 profiles failed, nothing written"
    );
}

fn with_context(profile: &str, name: &str, context: &str) -> ClusterEntry {
    ClusterEntry {
        context: context.into(),
        ..entry(profile, name)
    }
}

#[test]
fn keep_going_skips_colliding_contexts_but_never_the_root_s() {
    let roots: HashMap<String, String> = ["mgmt", "f1", "f2"]
        .iter()
        .map(|p| (p.to_string(), "mgmt".to_string()))
        .collect();
    // (entries as (profile, cluster, context), contexts kept, collisions reported)
    type Case<'a> = (Vec<(&'a str, &'a str, &'a str)>, Vec<&'a str>, usize);
    let cases: Vec<Case> = vec![
        (
            vec![("mgmt", "m", "m"), ("f1", "a", "a")],
            vec!["m", "a"],
            0,
        ),
        // Two followers want one context: both skipped, neither is more right.
        (
            vec![("mgmt", "m", "m"), ("f1", "a", "x"), ("f2", "b", "x")],
            vec!["m"],
            2,
        ),
        // A follower wants the management context: the follower is skipped.
        (
            vec![("f1", "a", "m"), ("mgmt", "m", "m"), ("f2", "b", "b")],
            vec!["m", "b"],
            1,
        ),
    ];
    for (entries, kept, skipped) in cases {
        let mut c = collect(
            3,
            vec![Fetched::Clusters(
                entries
                    .iter()
                    .map(|(p, n, x)| Ok(with_context(p, n, x)))
                    .collect(),
            )],
        );
        c.skip_collisions(&roots);
        let contexts: Vec<&str> = c.entries.iter().map(|e| e.context.as_str()).collect();
        assert_eq!(contexts, kept, "{entries:?}");
        assert_eq!(c.failures.len(), skipped, "{entries:?}");
        assert_eq!(c.tally.failed_clusters, skipped, "{entries:?}");
        for f in &c.failures {
            let text = f.to_string();
            assert!(text.contains("skipped arn:aws:eks:r:1:cluster/"), "{text}");
            assert!(text.contains("(profile f"), "{text}");
            assert_eq!(f.exit_code(), 2);
        }
    }
}

#[test]
fn a_profile_failing_in_two_regions_is_one_profile() {
    let fail = |r: &str| Fetched::Profile("p".into(), Error::Usage(format!("in {r}")));
    let c = collect(1, vec![fail("eu-central-1"), fail("us-west-2")]);
    assert_eq!(c.tally.failed_profiles, 1);
    assert_eq!(c.failures.len(), 2, "one line per region");
    assert_eq!(c.tally.to_string(), "1 of 1 profile");
}
