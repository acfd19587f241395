//! `cross_cluster_lifecycle` step by step: the seed scenario, a window of no-op resyncs, a
//! follower-local annotation through an update, hand edits, a Secret type change, and the three
//! ways copies go away.
use super::*;
use e2e::daemon::Daemon;

/// Where the copies of the test's sources belong: its namespace in both followers.
type Want<'a> = &'a [(&'a str, &'a [&'a str])];

pub(crate) async fn run() {
    let w = World::shared().await;
    let ns = unique_ns("kcs-x");
    w.ns_everywhere(&ns).await;
    let ctxs = format!("{PROJECT}, {PROJECT2}");
    let (src, tls) = sources(&w, &ns, &ctxs).await;
    let d = w.mgmt_daemon("lifecycle", &ns, &["--resync-period", "2s"]);
    let both: Want = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];
    seed_scenario(&w, &ns, both, &src, &tls).await;
    no_op_resyncs_write_nothing(&w, &ns, &d).await;
    let src = local_annotation_survives_an_update(&w, &ns, both).await;
    hand_edits_are_repaired(&w, &ns, both, &src).await;
    secret_type_change(&w, &ns, both, &ctxs).await;
    copies_go_away(&w, &ns).await;
    w.cleanup(&[&ns]).await;
}

/// The seed's ConfigMap and a TLS Secret, both to both followers.
async fn sources(w: &World<'_>, ns: &str, ctxs: &str) -> (ConfigMap, Secret) {
    let src = create(
        &w.mgmt,
        ns,
        &configmap(
            "cross-acc-sync-demo",
            &[(SYNC_CONTEXTS, ctxs), ("team.example/owner", "platform")],
            &[("app", "demo")],
            &[("greeting", "hello from mc-mgmt")],
        ),
    )
    .await
    .unwrap();
    let tls = create(
        &w.mgmt,
        ns,
        &secret(
            "wildcard-company-io",
            "kubernetes.io/tls",
            &[(SYNC_CONTEXTS, ctxs)],
            &[("tls.crt", b"CERT-1"), ("tls.key", b"KEY-1")],
        ),
    )
    .await
    .unwrap();
    (src, tls)
}

async fn seed_scenario(w: &World<'_>, ns: &str, both: Want<'_>, src: &ConfigMap, tls: &Secret) {
    // Seed scenario: both followers get both objects, nothing appears in mgmt.
    let got = wait_copies::<ConfigMap, _>(
        "demo ConfigMap in both followers",
        &w.all(),
        ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, src, "mc-mgmt"),
    )
    .await;
    let copy = &got[PROJECT][ns];
    assert_eq!(
        copy.annotations()
            .get("team.example/owner")
            .map(String::as_str),
        Some("platform")
    );
    assert!(!copy.annotations().contains_key(SYNC_CONTEXTS));
    let origin: serde_json::Value = serde_json::from_str(&copy.annotations()[ORIGIN]).unwrap();
    assert_eq!(origin["kind"], "ConfigMap");
    assert_eq!(origin["namespace"], ns);
    assert_eq!(origin["name"], "cross-acc-sync-demo");
    assert_eq!(origin["apiVersion"], "v1");
    wait_copies::<Secret, _>(
        "TLS Secret in both followers",
        &w.all(),
        ns,
        "wildcard-company-io",
        both,
        |c| is_copy_of_secret(c, tls, "mc-mgmt"),
    )
    .await;
}

async fn no_op_resyncs_write_nothing(w: &World<'_>, ns: &str, d: &Daemon) {
    // No-op: after convergence (and one resync, so one-off Events of the first sync are
    // out), three more resyncs (every 2 s) write nothing at all, in any cluster. The first
    // sync's `Synced` Events (one per 1-s batch: on the source when it is the batch's only one,
    // else one Event on the first source naming the others) must be written before the window
    // opens: on a loaded machine they can take longer than one resync.
    let names = ["cross-acc-sync-demo", "wildcard-company-io"];
    wait_for("a Synced Event for each source", SOON, || async {
        let mut notes: Vec<(&str, String)> = Vec::new();
        for name in names {
            for e in events(&w.mgmt, ns, name, "Synced", Some("Normal"))
                .await
                .unwrap()
            {
                notes.push((name, e.note.unwrap_or_default()));
            }
        }
        names
            .iter()
            .all(|n| notes.iter().any(|(on, note)| on == n || note.contains(n)))
            .then_some(())
    })
    .await;
    let resyncs = || d.log_text().matches("periodic resync").count();
    let start = resyncs();
    wait_for("one periodic resync", SOON, || async {
        (resyncs() > start).then_some(())
    })
    .await;
    let mut marks: Vec<audit::Mark> = w
        .all()
        .iter()
        .map(|(c, _)| audit::Mark::now(&w.tb.audit_log(c)))
        .collect();
    let log_mark = resyncs();
    wait_for("three periodic resyncs", SOON, || async {
        (resyncs() >= log_mark + 3).then_some(())
    })
    .await;
    for ((c, _), mark) in w.all().iter().zip(&mut marks) {
        let writes = audit::daemon_writes(&mark.take_events().unwrap(), &|n| n == ns);
        assert!(writes.is_empty(), "no-op resync wrote in {c}: {writes:?}");
    }
}

/// Returns the updated source.
async fn local_annotation_survives_an_update(w: &World<'_>, ns: &str, both: Want<'_>) -> ConfigMap {
    // Follower-local annotation (the seed's fan-out) on the copy, then a source update.
    merge::<ConfigMap>(
        &w.project,
        ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC: "", "local/note": "kept"}}}),
    )
    .await
    .unwrap();
    let src = merge::<ConfigMap>(
        &w.mgmt,
        ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"labels": {"app": "demo2"}}, "data": {"greeting": "v2", "extra": "x"}}),
    )
    .await
    .unwrap();
    let got = wait_copies::<ConfigMap, _>(
        "data+label update in both followers",
        &w.all(),
        ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    let a = got[PROJECT][ns].annotations();
    assert_eq!(
        a.get("local/note").map(String::as_str),
        Some("kept"),
        "{a:?}"
    );
    assert_eq!(a.get(SYNC).map(String::as_str), Some(""), "{a:?}");

    src
}

async fn hand_edits_are_repaired(w: &World<'_>, ns: &str, both: Want<'_>, src: &ConfigMap) {
    // Hand edit of a copied field (and a hand-added key) is reverted; hand delete recreated.
    merge::<ConfigMap>(
        &w.project2,
        ns,
        "cross-acc-sync-demo",
        json!({"data": {"greeting": "hacked", "added": "y"}}),
    )
    .await
    .unwrap();
    delete::<ConfigMap>(&w.project, ns, "cross-acc-sync-demo")
        .await
        .unwrap();
    wait_copies::<ConfigMap, _>(
        "hand edit and delete repaired",
        &w.all(),
        ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, src, "mc-mgmt"),
    )
    .await;
}

/// The type is immutable: the source is re-created, and so are the copies.
async fn secret_type_change(w: &World<'_>, ns: &str, both: Want<'_>, ctxs: &str) {
    // Secret type change (type is immutable: the source is re-created) → copies re-created.
    delete::<Secret>(&w.mgmt, ns, "wildcard-company-io")
        .await
        .unwrap();
    let opaque = create(
        &w.mgmt,
        ns,
        &secret(
            "wildcard-company-io",
            "Opaque",
            &[(SYNC_CONTEXTS, ctxs)],
            &[("tls.crt", b"CERT-2")],
        ),
    )
    .await
    .unwrap();
    wait_copies::<Secret, _>(
        "type change in both followers",
        &w.all(),
        ns,
        "wildcard-company-io",
        both,
        |c| is_copy_of_secret(c, &opaque, "mc-mgmt"),
    )
    .await;
}

async fn copies_go_away(w: &World<'_>, ns: &str) {
    // Context dropped from the annotation → only that follower's copy goes.
    merge::<ConfigMap>(
        &w.mgmt,
        ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC_CONTEXTS: PROJECT}}}),
    )
    .await
    .unwrap();
    wait_copies::<ConfigMap, _>(
        "copy removed from dropped context",
        &w.all(),
        ns,
        "cross-acc-sync-demo",
        &[(PROJECT, &[ns])],
        |_| true,
    )
    .await;
    // Annotation removed → copies gone; the source itself stays.
    merge::<ConfigMap>(
        &w.mgmt,
        ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC_CONTEXTS: null}}}),
    )
    .await
    .unwrap();
    wait_copies::<ConfigMap, _>(
        "copies gone after annotation removal",
        &w.all(),
        ns,
        "cross-acc-sync-demo",
        &[],
        |_| true,
    )
    .await;
    assert!(
        get::<ConfigMap>(&w.mgmt, ns, "cross-acc-sync-demo")
            .await
            .unwrap()
            .is_some()
    );
    // Source deleted → copies gone.
    delete::<Secret>(&w.mgmt, ns, "wildcard-company-io")
        .await
        .unwrap();
    wait_copies::<Secret, _>(
        "copies gone after source delete",
        &w.all(),
        ns,
        "wildcard-company-io",
        &[],
        |_| true,
    )
    .await;
}
