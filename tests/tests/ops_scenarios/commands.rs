//! The one-shot commands: `once --dry-run` (and `run --dry-run`) logging the writes they would
//! make without making any, and `status` reporting each state of a copy.
use super::*;

pub(crate) async fn dry_run_logs_intended_writes_and_changes_nothing() {
    let w = World::shared().await;
    let ns = unique_ns("ops-dry");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    create(
        &w.mgmt,
        &ns,
        &configmap(
            "new",
            &[(SYNC_CONTEXTS, PROJECT), (SYNC, "")],
            &[],
            &[("k", "v")],
        ),
    )
    .await
    .unwrap();
    // An orphan copy in project2 (its source does not exist): dry-run would delete it.
    let orphan = configmap(
        "gone",
        &[],
        &[
            (ORIGIN_NAME, "gone"),
            (ORIGIN_NAMESPACE, &ns),
            (ORIGIN_CLUSTER, "mc-mgmt"),
        ],
        &[("k", "old")],
    );
    create(&w.project2, &ns, &orphan).await.unwrap();
    let marks: Vec<_> = [MGMT, PROJECT, PROJECT2]
        .iter()
        .map(|c| (c, audit::Mark::now(&w.tb.audit_log(c))))
        .collect();

    let out = Daemon::command("once")
        .arg("--dry-run")
        .kubeconfig(&kc)
        .cluster_name("mc-mgmt")
        .source_namespace(&ns)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("dry run: would create") && log.contains("dry run: would delete"),
        "{log}"
    );
    let created_line = log
        .lines()
        .find(|l| l.contains("copy created") && l.contains(PROJECT))
        .unwrap_or_else(|| panic!("a create line for {PROJECT}: {log}"));
    assert!(
        created_line.contains(&format!("ConfigMap/{ns}/new")),
        "{created_line}"
    );

    // run --dry-run as well: wait until it has logged its intended writes.
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &["--dry-run"]), &[]);
    wait_ready(&mut d).await;
    wait_for("run --dry-run logged", SOON, || async {
        let t = d.log_text();
        (t.contains("dry run: would delete") && t.contains("dry run: would create")).then_some(())
    })
    .await;
    drop(d);

    assert!(
        get::<ConfigMap>(&w.project, &ns, "new")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        get::<ConfigMap>(&w.project2, &ns, "gone")
            .await
            .unwrap()
            .is_some()
    );
    for (c, mut mark) in marks {
        let writes = audit::daemon_writes(&mark.take_events().unwrap(), &|n| n == ns);
        assert!(writes.is_empty(), "dry-run wrote in {c}: {writes:?}");
    }
    w.cleanup(&[&ns]).await;
}

pub(crate) async fn status_reports_each_state() {
    let w = World::shared().await;
    let ns = unique_ns("ops-status");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    create(
        &w.mgmt,
        &ns,
        &configmap("insync", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("drift", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let (code, log) = once(&[
        "--kubeconfig-file",
        &kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &ns,
    ]);
    assert_eq!(code, 0, "{log}");
    one_source_per_state(&w, &ns).await;

    let mut kcv = kubeconfig_json(w.tb);
    add_dead_context(&mut kcv, "mc-dead-k8s");
    let kc2 = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &kcv);
    let run = |fmt: &str| {
        Daemon::command("status")
            .kubeconfig(&kc2)
            .cluster_name("mc-mgmt")
            .source_namespace(&ns)
            .args(["-o", fmt])
            .output()
            .unwrap()
    };
    let out = run("json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not all in sync: {stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let state = |name: &str| -> Vec<String> {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == name)
            .map(|r| r["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(state("insync"), ["in-sync"], "{stdout}");
    assert_eq!(state("drift"), ["drifted"], "{stdout}");
    assert_eq!(state("later"), ["missing"], "{stdout}");
    assert_eq!(state("taken"), ["conflict"], "{stdout}");
    assert_eq!(state("far"), ["target-unreachable"], "{stdout}");
    assert_eq!(state("rel"), ["skipped"], "{stdout}");
    assert_eq!(state("typo"), ["invalid"], "{stdout}");
    let badsel = state("badsel");
    assert_eq!(
        badsel.first().map(String::as_str),
        Some("invalid"),
        "{stdout}"
    );
    let table = run("table");
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.starts_with("STATE"), "{t}");
    assert!(
        t.contains(
            "8 copies: 2 invalid, 1 target-unreachable, 1 conflict, 1 missing, 1 drifted, 1 skipped, 1 in-sync"
        ),
        "{t}"
    );
    eprintln!("{t}");
    w.cleanup(&[&ns]).await;
}

/// After a first pass made `insync` and `drift` in sync: a hand edit of `drift`'s copy, and one
/// source for each other state (missing, conflict, target-unreachable, skipped, invalid).
async fn one_source_per_state(w: &World<'_>, ns: &str) {
    merge::<ConfigMap>(&w.project, ns, "drift", json!({"data": {"k": "hand"}}))
        .await
        .unwrap();
    create(
        &w.mgmt,
        ns,
        &configmap("later", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    create(
        &w.project2,
        ns,
        &configmap("taken", &[], &[], &[("k", "theirs")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        ns,
        &configmap("taken", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        ns,
        &configmap("far", &[(SYNC_CONTEXTS, "mc-dead-k8s")], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        ns,
        &secret(
            "rel",
            "helm.sh/release.v1",
            &[(SYNC_CONTEXTS, PROJECT)],
            &[("k", b"v")],
        ),
    )
    .await
    .unwrap();
    // Sources that are wrong themselves: an unknown context, a malformed selector.
    for (name, key, value) in [
        ("typo", SYNC_CONTEXTS, "mc-nowhere"),
        ("badsel", SYNC, "team in (a"),
    ] {
        create(
            &w.mgmt,
            ns,
            &configmap(name, &[(key, value)], &[], &[("k", "v")]),
        )
        .await
        .unwrap();
    }
}

/// Bad flags and empty environment values exit 2 with a message naming the flag, before the
/// kubeconfig (absent here) is read, so nothing waits on a cluster.
pub(crate) fn bad_flags_exit_2_at_start() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 4] = [
        (&["--cluster-name", "mc mgmt!"], &[], "--cluster-name"),
        (&[], &[("CLUSTER_NAME", "")], "--cluster-name"),
        (
            &[
                "--cluster-name",
                "mc-mgmt",
                "--lease-duration",
                "99999999999999999h",
            ],
            &[],
            "--lease-duration",
        ),
        (
            &["--cluster-name", "mc-mgmt", "--resync-period", "1.5"],
            &[],
            "--resync-period",
        ),
    ];
    for (args, env, flag) in cases {
        let out = Daemon::command("run")
            .kubeconfig("/nonexistent/kubeconfig")
            .args(args.iter().copied())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
    }
    // The same values that are fine parse (and fail only later, on the missing kubeconfig).
    let out = Daemon::command("once")
        .kubeconfig("/nonexistent/kubeconfig")
        .args(["--cluster-name", "mc-mgmt", "--resync-period", "1.5h"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}
