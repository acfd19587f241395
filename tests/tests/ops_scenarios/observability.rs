//! What an operator sees: /readyz and /metrics after a known sequence of operations, and an
//! Event for every reason the daemon reports.
use super::*;

pub(crate) async fn readyz_and_metrics_count_the_operations_done() {
    let w = World::shared().await;
    let ns = unique_ns("ops-metrics");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
    // /livez answers at once; /readyz once the caches are synced and every cluster probed.
    let livez = wait_for("livez", SOON, || async { d.get("/livez").await }).await;
    assert_eq!(livez.0, 200);
    wait_ready(&mut d).await;
    let (_, ready) = d.get("/readyz").await.unwrap();
    for c in [MGMT, PROJECT, PROJECT2] {
        assert!(ready.contains(&format!("cluster {c}: up")), "{ready}");
    }

    known_operations(&w, &ns).await;

    let sample = |c: &str, op: &str| {
        format!(r#"kcs_writes_total{{cluster="{c}",kind="ConfigMap",operation="{op}"}}"#)
    };
    let want = [
        (sample(PROJECT, "create"), 1.0),
        (sample(PROJECT2, "create"), 1.0),
        (sample(PROJECT, "update"), 2.0),
        (sample(PROJECT2, "update"), 1.0),
        (
            format!(r#"kcs_drift_repairs_total{{cluster="{PROJECT}",kind="ConfigMap"}}"#),
            1.0,
        ),
        (
            format!(r#"kcs_conflicts_total{{cluster="{PROJECT2}",kind="ConfigMap"}}"#),
            1.0,
        ),
        (
            format!(r#"kcs_objects_in_sync{{cluster="{PROJECT}"}}"#),
            1.0,
        ),
        (format!(r#"kcs_cluster_up{{cluster="{PROJECT2}"}}"#), 1.0),
        ("kcs_leader".to_string(), 1.0),
    ];
    let deadline = Instant::now() + SOON;
    let body = loop {
        let body = d.get("/metrics").await.map(|r| r.1).unwrap_or_default();
        let wrong: Vec<_> = want
            .iter()
            .filter(|(s, v)| metric_value(&body, s) != Some(*v))
            .map(|(s, v)| format!("{s} = {:?}, want {v}", metric_value(&body, s)))
            .collect();
        if wrong.is_empty() {
            break body;
        }
        if Instant::now() > deadline {
            panic!("metrics differ from the operations done: {wrong:#?}\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        metric_value(&body, "kcs_propagation_seconds_count").unwrap() >= 2.0,
        "{body}"
    );
    assert!(
        metric_value(&body, &sample(MGMT, "create")).is_none(),
        "no local writes: {body}"
    );
    assert!(!body.contains("name=\""), "no object names in labels");
    assert!(
        !body.contains("kcs_reconcile_errors_total{"),
        "no errors: {body}"
    );
    d.assert_running();
    drop(d);
    w.cleanup(&[&ns]).await;
}

pub(crate) async fn events_for_every_reason() {
    let w = World::shared().await;
    let ns = unique_ns("ops-events");
    w.ns_everywhere(&ns).await;
    let mut kcv = kubeconfig_json(w.tb);
    add_dead_context(&mut kcv, "mc-dead-k8s");
    let kc = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &kcv);
    let kc = kc.display().to_string();
    // Sources first, so every reason is raised by the first pass.
    create(
        &w.project,
        &ns,
        &configmap("taken", &[], &[], &[("k", "theirs")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("taken", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "x")]),
    )
    .await
    .unwrap();
    let no_ns = format!("{PROJECT}/no-such-namespace-{ns}");
    create(
        &w.mgmt,
        &ns,
        &configmap("nons", &[(SYNC_CONTEXTS, &no_ns)], &[], &[("k", "x")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("bad", &[(SYNC, "a in (b")], &[], &[("k", "x")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("far", &[(SYNC_CONTEXTS, "mc-dead-k8s")], &[], &[("k", "x")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("good", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "x")]),
    )
    .await
    .unwrap();
    let mut d = start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--unreachable-after", "3s"]),
        &[],
    );
    for (name, reason) in [
        ("taken", "OriginConflict"),
        ("nons", "NamespaceMissing"),
        ("bad", "MalformedAnnotation"),
        ("far", "FollowerUnreachable"),
        ("good", "Synced"),
    ] {
        let ev = wait_for(&format!("{reason} on {name}"), SOON, || async {
            events(&w.mgmt, &ns, name, reason, None)
                .await
                .unwrap()
                .into_iter()
                .next()
        })
        .await;
        let want_type = if reason == "Synced" {
            "Normal"
        } else {
            "Warning"
        };
        assert_eq!(ev.type_.as_deref(), Some(want_type), "{reason}");
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some("kubed-cross-sync"),
            "{reason}"
        );
    }
    // Readiness does not wait for the dead follower: it is marked down.
    wait_ready(&mut d).await;
    let (_, ready) = d.get("/readyz").await.unwrap();
    assert!(ready.contains("cluster mc-dead-k8s: down"), "{ready}");
    assert_eq!(
        d.metric(r#"kcs_cluster_up{cluster="mc-dead-k8s"}"#).await,
        Some(0.0)
    );
    drop(d);
    w.cleanup(&[&ns]).await;
}

/// 2 creates, 1 update per follower, 1 drift repair and 1 conflict, each waited for.
async fn known_operations(w: &World<'_>, ns: &str) {
    // 1: a source to both followers → 2 creates.
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "v1")]),
    )
    .await
    .unwrap();
    wait_cm_data(&w.project, ns, "cfg", "v1", SOON).await;
    wait_cm_data(&w.project2, ns, "cfg", "v1", SOON).await;
    // 2: a data change → 1 update per follower.
    merge::<ConfigMap>(&w.mgmt, ns, "cfg", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
    wait_cm_data(&w.project, ns, "cfg", "v2", SOON).await;
    wait_cm_data(&w.project2, ns, "cfg", "v2", SOON).await;
    // 3: a hand edit in project → 1 drift repair (an update).
    merge::<ConfigMap>(&w.project, ns, "cfg", json!({"data": {"k": "hand"}}))
        .await
        .unwrap();
    wait_cm_data(&w.project, ns, "cfg", "v2", SOON).await;
    // 4: an unmanaged same-named object in project2 → 1 conflict, no write.
    create(
        &w.project2,
        ns,
        &configmap("mine", &[], &[], &[("k", "theirs")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        ns,
        &configmap("mine", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "ours")]),
    )
    .await
    .unwrap();
    wait_event(&w.mgmt, ns, "mine", "OriginConflict").await;
}
