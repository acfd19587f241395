//! sync-daemon acceptance scenarios on the shared three-cluster testbed (issue 4).
//!
//! Each test owns a unique source namespace and runs its own daemon with
//! `--config-source-namespace` set to it, so tests running side by side never see each
//! other's sources or copies. Every wait is a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod sync_common;

use std::time::Duration;

use e2e::{Testbed, unique_ns, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Client, ResourceExt};
use serde_json::json;
use sync_common::*;

struct World {
    tb: &'static Testbed,
    mgmt: Client,
    project: Client,
    project2: Client,
}

impl World {
    async fn get() -> World {
        let tb = Testbed::shared();
        World {
            tb,
            mgmt: tb.admin_client(MGMT).await,
            project: tb.admin_client(PROJECT).await,
            project2: tb.admin_client(PROJECT2).await,
        }
    }

    fn kubeconfig(&self) -> String {
        self.tb.kubeconfig_path().display().to_string()
    }

    /// The daemon of the management cluster, scoped to `source_ns`.
    fn daemon(&self, tag: &str, source_ns: &str, extra: &[&str]) -> Daemon {
        let kc = self.kubeconfig();
        let mut args = vec![
            "--kubeconfig-file",
            &kc,
            "--cluster-name",
            "mc-mgmt",
            "--config-source-namespace",
            source_ns,
        ];
        args.extend_from_slice(extra);
        Daemon::start(self.tb.dir(), tag, &args)
    }

    fn all(&self) -> [(&'static str, &Client); 3] {
        [
            (MGMT, &self.mgmt),
            (PROJECT, &self.project),
            (PROJECT2, &self.project2),
        ]
    }

    async fn ns_everywhere(&self, ns: &str) {
        for (_, c) in self.all() {
            create_ns(c, ns, &[]).await;
        }
    }

    async fn cleanup(&self, namespaces: &[&str]) {
        for (_, c) in self.all() {
            for ns in namespaces {
                delete_ns(c, ns).await;
            }
        }
    }
}

/// The seed's ConfigMap and a TLS Secret reach both followers; data, label and Secret type
/// changes propagate; a follower-local annotation survives; hand edits and deletes are
/// repaired; a no-op resync writes nothing; dropping a context, removing the annotation and
/// deleting the source remove the copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_cluster_lifecycle() {
    let w = World::get().await;
    let ns = unique_ns("kcs-x");
    w.ns_everywhere(&ns).await;
    let ctxs = format!("{PROJECT}, {PROJECT2}");
    let src = create(
        &w.mgmt,
        &ns,
        &configmap(
            "cross-acc-sync-demo",
            &[(SYNC_CONTEXTS, &ctxs), ("team.example/owner", "platform")],
            &[("app", "demo")],
            &[("greeting", "hello from mc-mgmt")],
        ),
    )
    .await;
    let tls = create(
        &w.mgmt,
        &ns,
        &secret(
            "wildcard-company-io",
            "kubernetes.io/tls",
            &[(SYNC_CONTEXTS, &ctxs)],
            &[("tls.crt", b"CERT-1"), ("tls.key", b"KEY-1")],
        ),
    )
    .await;
    let _d = w.daemon("lifecycle", &ns, &["--resync-period", "2s"]);
    let both: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];

    // Seed scenario: both followers get both objects, nothing appears in mgmt.
    let got = wait_copies::<ConfigMap, _>(
        "demo ConfigMap in both followers",
        &w.all(),
        &ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    let copy = &got[PROJECT][&ns];
    assert_eq!(
        copy.annotations()
            .get("team.example/owner")
            .map(String::as_str),
        Some("platform")
    );
    assert!(!copy.annotations().contains_key(SYNC_CONTEXTS));
    let origin: serde_json::Value = serde_json::from_str(&copy.annotations()[ORIGIN]).unwrap();
    assert_eq!(origin["kind"], "ConfigMap");
    assert_eq!(origin["namespace"], ns.as_str());
    assert_eq!(origin["name"], "cross-acc-sync-demo");
    assert_eq!(origin["apiVersion"], "v1");
    wait_copies::<Secret, _>(
        "TLS Secret in both followers",
        &w.all(),
        &ns,
        "wildcard-company-io",
        both,
        |c| is_copy_of_secret(c, &tls, "mc-mgmt"),
    )
    .await;

    // No-op: after convergence (and one resync, so one-off Events of the first sync are
    // out), three more resyncs (every 2 s) write nothing at all, in any cluster. The first
    // sync's `Synced` Events (batched for 1 s) must be written before the window opens: on a
    // loaded machine they can take longer than one resync.
    for name in ["cross-acc-sync-demo", "wildcard-company-io"] {
        wait_for(&format!("the Synced Event on {name}"), SOON, || async {
            let found = events_of_type(&w.mgmt, &ns, name, "Synced", "Normal").await;
            (!found.is_empty()).then_some(())
        })
        .await;
    }
    let resyncs = || _d.log_text().matches("periodic resync").count();
    let start = resyncs();
    wait_for("one periodic resync", SOON, || async {
        (resyncs() > start).then_some(())
    })
    .await;
    let marks: Vec<u64> = w
        .all()
        .iter()
        .map(|(c, _)| audit_mark(&w.tb.audit_log(c)))
        .collect();
    let log_mark = resyncs();
    wait_for("three periodic resyncs", SOON, || async {
        (resyncs() >= log_mark + 3).then_some(())
    })
    .await;
    for ((c, _), mark) in w.all().iter().zip(&marks) {
        let writes = daemon_writes(&w.tb.audit_log(c), *mark, &|n| n == ns);
        assert!(writes.is_empty(), "no-op resync wrote in {c}: {writes:?}");
    }

    // Follower-local annotation (the seed's fan-out) on the copy, then a source update.
    merge::<ConfigMap>(
        &w.project,
        &ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC: "", "local/note": "kept"}}}),
    )
    .await;
    let src = merge::<ConfigMap>(
        &w.mgmt,
        &ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"labels": {"app": "demo2"}}, "data": {"greeting": "v2", "extra": "x"}}),
    )
    .await;
    let got = wait_copies::<ConfigMap, _>(
        "data+label update in both followers",
        &w.all(),
        &ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    let a = got[PROJECT][&ns].annotations();
    assert_eq!(
        a.get("local/note").map(String::as_str),
        Some("kept"),
        "{a:?}"
    );
    assert_eq!(a.get(SYNC).map(String::as_str), Some(""), "{a:?}");

    // Hand edit of a copied field (and a hand-added key) is reverted; hand delete recreated.
    merge::<ConfigMap>(
        &w.project2,
        &ns,
        "cross-acc-sync-demo",
        json!({"data": {"greeting": "hacked", "added": "y"}}),
    )
    .await;
    delete::<ConfigMap>(&w.project, &ns, "cross-acc-sync-demo").await;
    wait_copies::<ConfigMap, _>(
        "hand edit and delete repaired",
        &w.all(),
        &ns,
        "cross-acc-sync-demo",
        both,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;

    // Secret type change (type is immutable: the source is re-created) → copies re-created.
    delete::<Secret>(&w.mgmt, &ns, "wildcard-company-io").await;
    let opaque = create(
        &w.mgmt,
        &ns,
        &secret(
            "wildcard-company-io",
            "Opaque",
            &[(SYNC_CONTEXTS, &ctxs)],
            &[("tls.crt", b"CERT-2")],
        ),
    )
    .await;
    wait_copies::<Secret, _>(
        "type change in both followers",
        &w.all(),
        &ns,
        "wildcard-company-io",
        both,
        |c| is_copy_of_secret(c, &opaque, "mc-mgmt"),
    )
    .await;

    // Context dropped from the annotation → only that follower's copy goes.
    merge::<ConfigMap>(
        &w.mgmt,
        &ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC_CONTEXTS: PROJECT}}}),
    )
    .await;
    wait_copies::<ConfigMap, _>(
        "copy removed from dropped context",
        &w.all(),
        &ns,
        "cross-acc-sync-demo",
        &[(PROJECT, &[ns.as_str()])],
        |_| true,
    )
    .await;
    // Annotation removed → copies gone; the source itself stays.
    merge::<ConfigMap>(
        &w.mgmt,
        &ns,
        "cross-acc-sync-demo",
        json!({"metadata": {"annotations": {SYNC_CONTEXTS: null}}}),
    )
    .await;
    wait_copies::<ConfigMap, _>(
        "copies gone after annotation removal",
        &w.all(),
        &ns,
        "cross-acc-sync-demo",
        &[],
        |_| true,
    )
    .await;
    assert!(
        get::<ConfigMap>(&w.mgmt, &ns, "cross-acc-sync-demo")
            .await
            .is_some()
    );
    // Source deleted → copies gone.
    delete::<Secret>(&w.mgmt, &ns, "wildcard-company-io").await;
    wait_copies::<Secret, _>(
        "copies gone after source delete",
        &w.all(),
        &ns,
        "wildcard-company-io",
        &[],
        |_| true,
    )
    .await;
    w.cleanup(&[&ns]).await;
}

/// Intra-cluster selector sync: matching namespaces only, a namespace created later, a
/// namespace relabelled out; immutable source re-created; an unmanaged same-named object is
/// untouched with an OriginConflict Event; malformed annotations and unknown contexts get
/// Events while the other sources sync; a service-account-token Secret is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intra_cluster_selector_and_safety() {
    let w = World::get().await;
    let src_ns = unique_ns("kcs-sel");
    let id = src_ns.rsplit('-').next().unwrap().to_string();
    let (n1, n2, n3, n4) = (
        unique_ns("kcs-sel-a"),
        unique_ns("kcs-sel-b"),
        unique_ns("kcs-sel-c"),
        unique_ns("kcs-sel-d"),
    );
    create_ns(&w.mgmt, &src_ns, &[("kcs-sel", &id)]).await; // the source's own ns never gets a copy
    create_ns(&w.mgmt, &n1, &[("kcs-sel", &id)]).await;
    create_ns(&w.mgmt, &n2, &[("kcs-sel", "other")]).await;
    create_ns(&w.mgmt, &n4, &[("kcs-sel", &id)]).await;
    let selector = format!("kcs-sel={id}");
    let src = create(
        &w.mgmt,
        &src_ns,
        &configmap("sel-demo", &[(SYNC, &selector)], &[], &[("k", "v")]),
    )
    .await;
    // Same name as an unmanaged ConfigMap already in n4.
    let unmanaged = create(
        &w.mgmt,
        &n4,
        &configmap("clash", &[], &[], &[("mine", "1")]),
    )
    .await;
    create(
        &w.mgmt,
        &src_ns,
        &configmap("clash", &[(SYNC, &selector)], &[], &[("theirs", "1")]),
    )
    .await;
    // Malformed annotations; a good source beside them.
    create(
        &w.mgmt,
        &src_ns,
        &configmap("bad-selector", &[(SYNC, "kcs-sel in (")], &[], &[]),
    )
    .await;
    create(
        &w.mgmt,
        &src_ns,
        &configmap(
            "bad-context",
            &[(SYNC_CONTEXTS, "no-such-context")],
            &[],
            &[],
        ),
    )
    .await;
    create(
        &w.mgmt,
        &src_ns,
        &configmap(
            "missing-ns",
            &[(SYNC_CONTEXTS, &format!("{PROJECT}/kcs-absent-{id}"))],
            &[],
            &[],
        ),
    )
    .await;
    // Immutable source.
    let imm = {
        let mut c = configmap("frozen", &[(SYNC, &selector)], &[], &[("v", "1")]);
        c.immutable = Some(true);
        create(&w.mgmt, &src_ns, &c).await
    };
    // A service-account-token Secret with the sync key: skipped (never even cached).
    create(
        &w.mgmt,
        &src_ns,
        &secret(
            "sa-token",
            "kubernetes.io/service-account-token",
            &[
                (SYNC, &selector),
                ("kubernetes.io/service-account.name", "default"),
            ],
            &[],
        ),
    )
    .await;
    let _d = w.daemon("selector", &src_ns, &[]);
    let first = [n1.as_str(), n4.as_str()];
    let want: Vec<(&str, &[&str])> = vec![(MGMT, &first)];
    wait_copies::<ConfigMap, _>(
        "copies in matching namespaces",
        &w.all(),
        &src_ns,
        "sel-demo",
        &want,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    wait_copies::<ConfigMap, _>("immutable copy", &w.all(), &src_ns, "frozen", &want, |c| {
        c.immutable == Some(true)
    })
    .await;

    // Conflict: the unmanaged object is untouched, an Event names it.
    let ev = wait_event(&w.mgmt, &src_ns, "clash", "OriginConflict").await;
    assert!(ev.note.as_deref().unwrap_or("").contains(&n4), "{ev:?}");
    let still = get::<ConfigMap>(&w.mgmt, &n4, "clash").await.unwrap();
    assert_eq!(still.resource_version(), unmanaged.resource_version());
    // n1 got the clash copy (no conflict there).
    let only_n1 = [n1.as_str()];
    let clash_want: Vec<(&str, &[&str])> = vec![(MGMT, &only_n1)];
    wait_copies::<ConfigMap, _>(
        "clash copy only where free",
        &w.all(),
        &src_ns,
        "clash",
        &clash_want,
        |_| true,
    )
    .await;
    // Malformed annotations and unknown contexts: Events; nothing copied for them.
    wait_event(&w.mgmt, &src_ns, "bad-selector", "MalformedAnnotation").await;
    let ev = wait_event(&w.mgmt, &src_ns, "bad-context", "UnknownContext").await;
    assert!(ev.note.as_deref().unwrap_or("").contains("no-such-context"));
    wait_event(&w.mgmt, &src_ns, "missing-ns", "NamespaceMissing").await;
    for name in ["bad-selector", "bad-context", "missing-ns"] {
        wait_copies::<ConfigMap, _>(
            "no copies of malformed sources",
            &w.all(),
            &src_ns,
            name,
            &[],
            |_| true,
        )
        .await;
    }
    assert!(
        copies::<Secret>(&w.mgmt, &src_ns, "sa-token")
            .await
            .is_empty()
    );

    // A namespace created later gets the copy; one relabelled out loses it.
    create_ns(&w.mgmt, &n3, &[("kcs-sel", &id)]).await;
    label_ns(&w.mgmt, &n1, "kcs-sel", None).await;
    let second = [n3.as_str(), n4.as_str()];
    let want2: Vec<(&str, &[&str])> = vec![(MGMT, &second)];
    wait_copies::<ConfigMap, _>(
        "copy follows namespace labels",
        &w.all(),
        &src_ns,
        "sel-demo",
        &want2,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;

    // Immutable: a changed source (re-created, it is immutable too) → copies re-created.
    let old_uids: Vec<String> = copies::<ConfigMap>(&w.mgmt, &src_ns, "frozen")
        .await
        .values()
        .map(|c| c.uid().unwrap())
        .collect();
    delete::<ConfigMap>(&w.mgmt, &src_ns, "frozen").await;
    let mut c = configmap("frozen", &[(SYNC, &selector)], &[], &[("v", "2")]);
    c.immutable = Some(true);
    let imm2 = create(&w.mgmt, &src_ns, &c).await;
    assert_ne!(imm.uid(), imm2.uid());
    wait_copies::<ConfigMap, _>(
        "immutable copies re-created",
        &w.all(),
        &src_ns,
        "frozen",
        &want2,
        |c| {
            c.data == imm2.data
                && c.immutable == Some(true)
                && !old_uids.contains(&c.uid().unwrap())
        },
    )
    .await;
    assert!(
        copies::<Secret>(&w.mgmt, &src_ns, "sa-token")
            .await
            .is_empty()
    );
    // `once` over the same scope is a no-op pass; it reports the conflict as not converged.
    let kc = w.kubeconfig();
    let (code, err) = once(&[
        "--kubeconfig-file",
        &kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &src_ns,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("conflicts=1"), "{err}");
    w.cleanup(&[&src_ns, &n1, &n2, &n3, &n4]).await;
}

/// A source deleted while the daemon is down: the restarted daemon removes the orphans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_removed_after_restart() {
    let w = World::get().await;
    let ns = unique_ns("kcs-orph");
    w.ns_everywhere(&ns).await;
    let ctxs = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("orphan-me", &[(SYNC_CONTEXTS, &ctxs)], &[], &[("k", "v")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("keep-me", &[(SYNC_CONTEXTS, &ctxs)], &[], &[("k", "v")]),
    )
    .await;
    let both: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];
    let d = w.daemon("orphans-1", &ns, &[]);
    for name in ["orphan-me", "keep-me"] {
        wait_copies::<ConfigMap, _>("copies before restart", &w.all(), &ns, name, both, |_| true)
            .await;
    }
    d.stop();
    delete::<ConfigMap>(&w.mgmt, &ns, "orphan-me").await;
    let _d = w.daemon("orphans-2", &ns, &[]);
    wait_copies::<ConfigMap, _>(
        "orphans removed at start",
        &w.all(),
        &ns,
        "orphan-me",
        &[],
        |_| true,
    )
    .await;
    wait_copies::<ConfigMap, _>("other copies kept", &w.all(), &ns, "keep-me", both, |_| {
        true
    })
    .await;
    w.cleanup(&[&ns]).await;
}

/// The seed's fan-out: a copy from mc-mgmt annotated locally in mc-project is fanned out by
/// mc-project's own daemon; mc-project never pushes it back, and mc-mgmt's updates still
/// reach the copy and then the fan-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_fan_out_never_pushed_back() {
    let w = World::get().await;
    let ns = unique_ns("kcs-fan");
    let fan = unique_ns("kcs-fan-to");
    let id = fan.rsplit('-').next().unwrap().to_string();
    w.ns_everywhere(&ns).await;
    create_ns(&w.project, &fan, &[("kcs-fan", &id)]).await;
    create_ns(&w.mgmt, &fan, &[("kcs-fan", &id)]).await;
    let src = create(
        &w.mgmt,
        &ns,
        &configmap("wildcard", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("v", "1")]),
    )
    .await;
    let _a = w.daemon("fan-mgmt", &ns, &[]);
    let in_project: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()])];
    wait_copies::<ConfigMap, _>(
        "copy in mc-project",
        &w.all(),
        &ns,
        "wildcard",
        in_project,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    // The follower's own annotation on the copy, and mc-project's own daemon.
    merge::<ConfigMap>(
        &w.project,
        &ns,
        "wildcard",
        json!({"metadata": {"annotations": {SYNC: format!("kcs-fan={id}")}}}),
    )
    .await;
    let kc = w.kubeconfig();
    let _b = Daemon::start(
        w.tb.dir(),
        "fan-project",
        &[
            "--kubeconfig-file",
            &kc,
            "--source-context",
            PROJECT,
            "--cluster-name",
            "mc-project",
            "--config-source-namespace",
            &ns,
        ],
    );
    let fanned = |data: &'static str| {
        move |c: &ConfigMap| {
            c.labels().get(ORIGIN_CLUSTER).map(String::as_str) == Some("mc-project")
                && c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some(data)
        }
    };
    let lp_fan = |c: &ConfigMap| c.namespace().as_deref() == Some(fan.as_str());
    wait_for("fan-out copy in mc-project", SOON, || async {
        let got = copies::<ConfigMap>(&w.project, &ns, "wildcard").await;
        got.get(&fan)
            .filter(|c| lp_fan(c) && fanned("1")(c))
            .map(|_| ())
    })
    .await;
    // mc-mgmt updates: the copy and then its fan-out follow; the original is never touched by
    // mc-project (no copy with origin.cluster=mc-project anywhere in mc-mgmt or mc-project2).
    let src2 = merge::<ConfigMap>(&w.mgmt, &ns, "wildcard", json!({"data": {"v": "2"}})).await;
    wait_for("update reaches the fan-out", SOON, || async {
        let got = copies::<ConfigMap>(&w.project, &ns, "wildcard").await;
        got.get(&fan).filter(|c| fanned("2")(c)).map(|_| ())
    })
    .await;
    let orig = get::<ConfigMap>(&w.mgmt, &ns, "wildcard").await.unwrap();
    assert_eq!(
        orig.resource_version(),
        src2.resource_version(),
        "original modified"
    );
    assert!(!orig.labels().contains_key(ORIGIN_CLUSTER));
    for c in [&w.mgmt, &w.project2] {
        let pushed: Vec<ConfigMap> = copies::<ConfigMap>(c, &ns, "wildcard")
            .await
            .into_values()
            .filter(|c| c.labels().get(ORIGIN_CLUSTER).map(String::as_str) == Some("mc-project"))
            .collect();
        assert!(pushed.is_empty(), "mc-project pushed back: {pushed:?}");
    }
    let copy = get::<ConfigMap>(&w.project, &ns, "wildcard").await.unwrap();
    assert!(
        copy.annotations().contains_key(SYNC),
        "local fan-out annotation lost"
    );
    w.cleanup(&[&ns, &fan]).await;
}

/// A kubeconfig where another context points at the source cluster is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_as_target_refused() {
    let w = World::get().await;
    let text = std::fs::read_to_string(w.tb.kubeconfig_path()).unwrap();
    let mut kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let mut alias = kc.contexts.iter().find(|c| c.name == MGMT).unwrap().clone();
    alias.name = "mgmt-alias".into();
    kc.contexts.push(alias);
    let path =
        w.tb.dir()
            .join(format!("{}.kubeconfig", unique_ns("refuse")));
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    let p = path.display().to_string();
    let (code, err) = once(&["--kubeconfig-file", &p, "--cluster-name", "mc-mgmt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(MGMT) && err.contains("mgmt-alias"), "{err}");
    let _ = std::fs::remove_file(&path);
    let _ = Duration::ZERO;
}

/// `ctx/namespace` items put one source into several namespaces of one follower (kubed
/// #457/#469); with --create-namespaces a missing target namespace is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_namespaces_created_on_demand() {
    let w = World::get().await;
    let ns = unique_ns("kcs-multi");
    let (prod, staging) = (unique_ns("kcs-prod"), unique_ns("kcs-staging"));
    create_ns(&w.mgmt, &ns, &[]).await;
    let items = format!("{PROJECT}/{prod}, {PROJECT}/{staging}");
    let src = create(
        &w.mgmt,
        &ns,
        &configmap("multi", &[(SYNC_CONTEXTS, &items)], &[], &[("k", "v")]),
    )
    .await;
    let _d = w.daemon("multi", &ns, &["--create-namespaces"]);
    let want: &[(&str, &[&str])] = &[(PROJECT, &[prod.as_str(), staging.as_str()])];
    wait_copies::<ConfigMap, _>(
        "copies in both named namespaces",
        &w.all(),
        &ns,
        "multi",
        want,
        |c| is_copy_of_cm(c, &src, "mc-mgmt"),
    )
    .await;
    // Dropping one item removes that copy only.
    merge::<ConfigMap>(
        &w.mgmt,
        &ns,
        "multi",
        json!({"metadata": {"annotations": {SYNC_CONTEXTS: format!("{PROJECT}/{prod}")}}}),
    )
    .await;
    let want: &[(&str, &[&str])] = &[(PROJECT, &[prod.as_str()])];
    wait_copies::<ConfigMap, _>(
        "copy left only in the remaining namespace",
        &w.all(),
        &ns,
        "multi",
        want,
        |_| true,
    )
    .await;
    w.cleanup(&[&ns, &prod, &staging]).await;
}
