//! `namespaced_rbac_is_enough_and_nothing_cluster_wide_is_asked` step by step: the least-privilege
//! installs (manifests/follower/namespaced in each allowed follower namespace, manifests/source-push-only
//! in the source namespace) with every cluster-wide binding of our groups removed; sync-daemon with
//! `--follower-namespaces` and `--no-intra-cluster`, through the kubeconfig the initContainer writes
//! (EKS tokens, aws-auth), syncs, repairs and reports; the audit logs show no cluster-wide request of
//! ours; and with one verb fewer in one namespace, only that namespace is refused.
use super::deployed::{PodFs, product_bin, wait_logged};
use super::*;
use e2e::audit::{DAEMON_AGENT, Event};

/// Removes a ClusterRoleBinding (absent is fine): our groups keep only the namespaced grants.
async fn unbind(tb: &Testbed, cluster: &str, name: &str) {
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
        Api::all(tb.admin_client(cluster).await);
    match crbs.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("delete ClusterRoleBinding {name} in {cluster}: {e}"),
    }
}

/// The requests of ours (by User-Agent) that were not about one namespace: resource requests with
/// no namespace in their objectRef (a list or watch across namespaces, a cluster-scoped kind).
fn cluster_wide(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.user_agent.starts_with(DAEMON_AGENT))
        .filter(|e| e.resource.is_some() && e.namespace.is_empty())
        .map(|e| format!("{} {} ({})", e.verb, e.uri, e.username))
        .collect()
}

struct Names {
    src: String,
    team_a: String,
    team_b: String,
    outside: String,
}

pub(crate) async fn run() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    let kubeconfig_gen = product_bin("kubeconfig-gen");
    let overlay = mgmt_overlay();
    let mgmt = docs(&render(overlay));
    let d = Deployed::of(&mgmt);
    // The mgmt install as the operator applies it (its namespace, ServiceAccount, leader Role), minus
    // the cluster-wide source binding; the followers without theirs.
    apply(tb, MGMT, &render(overlay));
    unbind(tb, MGMT, "kubed-cross-sync:source").await;
    for f in [PROJECT, PROJECT2] {
        unbind(tb, f, "kubed-cross-sync:follower").await;
    }
    let n = Names {
        src: unique_ns("push-src"),
        team_a: unique_ns("team-a"),
        team_b: unique_ns("team-b"),
        outside: unique_ns("outside"),
    };
    k8s::ensure_ns(&tb.admin_client(MGMT).await, &n.src, &[])
        .await
        .unwrap();
    apply_in(tb, MGMT, Some(&n.src), &render("source-push-only"));
    for f in [PROJECT, PROJECT2] {
        let admin = tb.admin_client(f).await;
        for ns in [&n.team_a, &n.team_b, &n.outside] {
            k8s::ensure_ns(&admin, ns, &[("team", "payments")])
                .await
                .unwrap();
        }
        for ns in [&n.team_a, &n.team_b] {
            apply_in(tb, f, Some(ns), &render("follower/namespaced"));
        }
    }

    // The kubeconfig, as the initContainer writes it.
    let pod = PodFs::new(tb, &mgmt, &d, &kubeconfig_gen);
    pod.run_init(&kubeconfig_gen, d.init);

    // The Deployment's daemon args, in the least-privilege mode (no Lease: a single replica here).
    let metrics = format!("127.0.0.1:{}", e2e::procs::free_port().unwrap());
    let mut args: Vec<String> = strs(&d.main["args"])
        .into_iter()
        .filter(|a| {
            let flag = a.split('=').next().unwrap();
            ![
                "--config-source-namespace",
                "--leader-elect",
                "--lease-namespace",
                "--metrics-addr",
            ]
            .contains(&flag)
        })
        .collect();
    args.extend([
        format!("--config-source-namespace={}", n.src),
        format!("--follower-namespaces={},{}", n.team_a, n.team_b),
        "--no-intra-cluster".into(),
        format!("--metrics-addr={metrics}"),
        "--resync-period=1h".into(),
    ]);
    let marks: Vec<(&str, usize)> = [MGMT, PROJECT, PROJECT2]
        .into_iter()
        .map(|c| (c, audit::read(&tb.audit_log(c)).len()))
        .collect();
    let log = pod.root.path().join("sync-daemon.log");
    let daemon = pod
        .daemon(&args)
        .admin_addr(&metrics)
        .log(&log)
        .spawn()
        .unwrap();

    let name = syncs_repairs_and_reports(tb, &n, &log).await;
    drop(daemon);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        text.matches("forbidden").count(),
        0,
        "the daemon met a 403 (see {})",
        log.display()
    );
    status_reports_the_same(&pod, &args, &n, &name);
    for (c, mark) in &marks {
        let events = audit::read(&tb.audit_log(c));
        let wide = cluster_wide(&events[*mark..]);
        assert!(
            wide.is_empty(),
            "cluster-wide requests of ours in {c}: {wide:#?}"
        );
        let ours = (events[*mark..].iter())
            .filter(|e| e.user_agent.starts_with(DAEMON_AGENT) && e.resource.is_some())
            .count();
        assert!(ours > 0, "no request of ours in {c}'s audit log");
    }

    // The reported source is gone (its problems would keep `once` from exit 0); its copies are
    // orphans that `once` removes below.
    let src = tb.admin_client(MGMT).await;
    Api::<ConfigMap>::namespaced(src.clone(), &n.src)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    one_verb_fewer(tb, &pod, &args, &n).await;
    for f in [PROJECT, PROJECT2] {
        for ns in [&n.team_a, &n.team_b] {
            let c = Api::<ConfigMap>::namespaced(tb.admin_client(f).await, ns);
            assert!(
                c.get_opt(&name).await.unwrap().is_none(),
                "orphan left in {f}/{ns}"
            );
        }
    }
    k8s::delete_ns(&src, &n.src).await;
    for f in [PROJECT, PROJECT2] {
        let admin = tb.admin_client(f).await;
        for ns in [&n.team_a, &n.team_b, &n.outside] {
            k8s::delete_ns(&admin, ns).await;
        }
    }
}

/// A source for both allowed namespaces and one outside them, and one asking for intra-cluster
/// copies: the allowed copies appear (and are repaired), the rest is reported on the sources.
async fn syncs_repairs_and_reports(tb: &Testbed, n: &Names, log: &Path) -> String {
    let src = tb.admin_client(MGMT).await;
    let name = unique_ns("least-privilege");
    let contexts = [PROJECT, PROJECT2]
        .iter()
        .flat_map(|f| [&n.team_a, &n.team_b, &n.outside].map(|ns| format!("{f}/{ns}")))
        .collect::<Vec<_>>()
        .join(",");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": contexts, "kubed.appscode.com/sync": ""}},
        "data": {"foo": "bar"}}))
    .unwrap();
    let cms = Api::<ConfigMap>::namespaced(src.clone(), &n.src);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let copy_value = |f: &'static str, ns: String| {
        let name = name.clone();
        async move {
            let c = tb.admin_client(f).await;
            let cm = Api::<ConfigMap>::namespaced(c, &ns)
                .get_opt(&name)
                .await
                .ok()??;
            cm.data?.get("foo").cloned()
        }
    };
    for f in [PROJECT, PROJECT2] {
        for ns in [&n.team_a, &n.team_b] {
            let what = format!("the copy in {f}/{ns}");
            wait_logged(&what, Duration::from_secs(60), log, || {
                let v = copy_value(f, ns.clone());
                async move { (v.await.as_deref() == Some("bar")).then_some(()) }
            })
            .await;
        }
    }
    for reason in ["NamespaceNotAllowed", "IntraClusterOff"] {
        k8s::wait_event(&src, &n.src, &name, reason).await;
    }
    for f in [PROJECT, PROJECT2] {
        assert_eq!(copy_value(f, n.outside.clone()).await, None, "{f}/outside");
    }
    // A change reaches every allowed copy; a copy deleted by hand is put back (namespaced watches).
    cms.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"foo": "baz"}})),
    )
    .await
    .unwrap();
    let gone = Api::<ConfigMap>::namespaced(tb.admin_client(PROJECT2).await, &n.team_b);
    wait_logged(
        "the update in every allowed copy",
        Duration::from_secs(30),
        log,
        || {
            let all = [PROJECT, PROJECT2]
                .into_iter()
                .flat_map(|f| [&n.team_a, &n.team_b].map(|ns| copy_value(f, ns.clone())));
            let all: Vec<_> = all.collect();
            async move {
                for v in all {
                    if v.await.as_deref() != Some("baz") {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    gone.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_logged(
        "the deleted copy put back",
        Duration::from_secs(30),
        log,
        || {
            let v = copy_value(PROJECT2, n.team_b.clone());
            async move { (v.await.as_deref() == Some("baz")).then_some(()) }
        },
    )
    .await;
    name
}

/// Without `create` in one follower namespace's Role, `once` (same args) cannot converge a new
/// source there (exit 1) and still converges everywhere else; the manifests' Role restores it.
async fn one_verb_fewer(tb: &Testbed, pod: &PodFs, args: &[String], n: &Names) {
    let role = render("follower/namespaced").replace(
        "  - create\n  - update\n  - patch\n  - delete\n",
        "  - update\n  - patch\n  - delete\n",
    );
    assert!(!role.contains("- create"), "the Role lost its create verb");
    apply_in(tb, PROJECT2, Some(&n.team_b), &role);
    let src = tb.admin_client(MGMT).await;
    let name = unique_ns("one-verb-fewer");
    let contexts = format!(
        "{PROJECT}/{a},{PROJECT}/{b},{PROJECT2}/{a},{PROJECT2}/{b}",
        a = n.team_a,
        b = n.team_b
    );
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": contexts}}, "data": {"foo": "bar"}}))
    .unwrap();
    let cms = Api::<ConfigMap>::namespaced(src.clone(), &n.src);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut once: Vec<String> = args.to_vec();
    once[0] = "once".into();
    once.retain(|a| !a.starts_with("--metrics-addr"));
    let out = pod.daemon(&once).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "once must report non-convergence: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let has = |f: &'static str, ns: String| {
        let name = name.clone();
        async move {
            let c = tb.admin_client(f).await;
            Api::<ConfigMap>::namespaced(c, &ns)
                .get_opt(&name)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(
        !has(PROJECT2, n.team_b.clone()).await,
        "no copy without create"
    );
    for (f, ns) in [
        (PROJECT, &n.team_a),
        (PROJECT, &n.team_b),
        (PROJECT2, &n.team_a),
    ] {
        assert!(has(f, ns.clone()).await, "{f}/{ns} still gets its copy");
    }
    apply_in(
        tb,
        PROJECT2,
        Some(&n.team_b),
        &render("follower/namespaced"),
    );
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let out = pod.daemon(&once).output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < end,
            "once did not converge with the manifests' Role: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(has(PROJECT2, n.team_b.clone()).await);
    let _ = cms.delete(&name, &DeleteParams::default()).await;
}

/// `status` with the daemon's cluster flags plans as the daemon did, through the same Roles: the
/// allowed copies in sync, the outside namespaces and the sync annotation as `invalid` rows, no
/// cluster refused or unreachable (its own requests are in the audit window checked after it).
fn status_reports_the_same(pod: &PodFs, args: &[String], n: &Names, name: &str) {
    let cluster_flags = [
        "--kubeconfig-file",
        "--source-context",
        "--cluster-name",
        "--config-source-namespace",
        "--follower-namespaces",
        "--no-intra-cluster",
    ];
    let mut status: Vec<String> = vec!["status".into(), "-o".into(), "json".into()];
    status.extend(
        (args.iter())
            .filter(|a| cluster_flags.contains(&a.split('=').next().unwrap()))
            .cloned(),
    );
    let out = pod.daemon(&status).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "status: {stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status -o json: {e}: {stderr}"));
    let rows: Vec<&Value> = (doc["items"].as_array().unwrap().iter())
        .filter(|r| r["name"] == name)
        .collect();
    let state = |ctx: &str, ns: &str| {
        (rows.iter())
            .find(|r| r["context"] == ctx && r["namespace"] == ns)
            .map(|r| r["state"].as_str().unwrap().to_string())
    };
    for f in [PROJECT, PROJECT2] {
        for ns in [&n.team_a, &n.team_b] {
            assert_eq!(
                state(f, ns).as_deref(),
                Some("in-sync"),
                "{f}/{ns}: {rows:#?}"
            );
        }
        let invalid = (rows.iter()).any(|r| {
            r["context"] == f
                && r["state"] == "invalid"
                && r["detail"]
                    .as_str()
                    .unwrap()
                    .contains("NamespaceNotAllowed")
                && r["detail"].as_str().unwrap().contains(&n.outside)
        });
        assert!(invalid, "no NamespaceNotAllowed row for {f}: {rows:#?}");
    }
    assert!(
        (rows.iter()).any(|r| r["detail"].as_str().unwrap().contains("IntraClusterOff")),
        "{rows:#?}"
    );
    assert!(
        !(rows.iter()).any(|r| r["state"] == "target-unreachable"),
        "{rows:#?}"
    );
}
