//! sync-daemon acceptance scenarios on the shared three-cluster testbed (issue 4).
//!
//! Each test owns a unique source namespace and runs its own daemon with
//! `--config-source-namespace` set to it, so tests running side by side never see each
//! other's sources or copies. Every wait is a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod conflicts;
mod create;
mod lifecycle;
mod policies;
mod selector;
mod throttle;

use std::time::Duration;

use e2e::k8s::*;
use e2e::world::{World, once};
use e2e::{MGMT, PROJECT, PROJECT2, audit, kubeconfig, unique_ns, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use serde_json::json;

/// The copy's data/labels/annotations checks shared by the scenarios.
fn is_copy_of_cm(copy: &ConfigMap, source: &ConfigMap, cluster_name: &str) -> bool {
    let l = copy.labels();
    let a = copy.annotations();
    let src_ns = source.namespace().unwrap_or_default();
    let mut want_labels = source.labels().clone();
    want_labels.insert(ORIGIN_NAME.into(), source.name_any());
    want_labels.insert(ORIGIN_NAMESPACE.into(), src_ns);
    want_labels.insert(ORIGIN_CLUSTER.into(), cluster_name.into());
    copy.data == source.data
        && want_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        && !a.contains_key(SYNC_CONTEXTS)
        && a.get(ORIGIN).is_some_and(|o| {
            o.contains(&format!("\"uid\":\"{}\"", source.uid().unwrap_or_default()))
        })
        && copy.metadata.owner_references.is_none()
}

fn is_copy_of_secret(copy: &Secret, source: &Secret, cluster_name: &str) -> bool {
    copy.data == source.data
        && copy.type_ == source.type_
        && copy.labels().get(ORIGIN_CLUSTER).map(String::as_str) == Some(cluster_name)
        && !copy.annotations().contains_key(SYNC_CONTEXTS)
        && copy
            .annotations()
            .get(ORIGIN)
            .is_some_and(|o| o.contains("\"kind\":\"Secret\""))
}

/// The seed's ConfigMap and a TLS Secret reach both followers; data, label and Secret type
/// changes propagate; a follower-local annotation survives; hand edits and deletes are
/// repaired; a no-op resync writes nothing; dropping a context, removing the annotation and
/// deleting the source remove the copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_cluster_lifecycle() {
    lifecycle::run().await;
}

/// Intra-cluster selector sync: matching namespaces only, a namespace created later, a
/// namespace relabelled out; immutable source re-created; an unmanaged same-named object is
/// untouched with an OriginConflict Event; malformed annotations and unknown contexts get
/// Events while the other sources sync; a service-account-token Secret is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intra_cluster_selector_and_safety() {
    selector::run().await;
}

/// A source deleted while the daemon is down: the restarted daemon removes the orphans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_removed_after_restart() {
    let w = World::shared().await;
    let ns = unique_ns("kcs-orph");
    w.ns_everywhere(&ns).await;
    let ctxs = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("orphan-me", &[(SYNC_CONTEXTS, &ctxs)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &ns,
        &configmap("keep-me", &[(SYNC_CONTEXTS, &ctxs)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let both: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];
    let d = w.mgmt_daemon("orphans-1", &ns, &[]);
    for name in ["orphan-me", "keep-me"] {
        wait_copies::<ConfigMap, _>("copies before restart", &w.all(), &ns, name, both, |_| true)
            .await;
    }
    d.kill();
    delete::<ConfigMap>(&w.mgmt, &ns, "orphan-me")
        .await
        .unwrap();
    let _d = w.mgmt_daemon("orphans-2", &ns, &[]);
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
    let w = World::shared().await;
    let ns = unique_ns("kcs-fan");
    let fan = unique_ns("kcs-fan-to");
    let id = fan.rsplit('-').next().unwrap().to_string();
    w.ns_everywhere(&ns).await;
    ensure_ns(&w.project, &fan, &[("kcs-fan", &id)])
        .await
        .unwrap();
    ensure_ns(&w.mgmt, &fan, &[("kcs-fan", &id)]).await.unwrap();
    let src = create(
        &w.mgmt,
        &ns,
        &configmap("wildcard", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("v", "1")]),
    )
    .await
    .unwrap();
    let _a = w.mgmt_daemon("fan-mgmt", &ns, &[]);
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
    .await
    .unwrap();
    let kc = w.kubeconfig();
    let _b = w.daemon(
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
        let got = copies::<ConfigMap>(&w.project, &ns, "wildcard")
            .await
            .unwrap();
        got.get(&fan)
            .filter(|c| lp_fan(c) && fanned("1")(c))
            .map(|_| ())
    })
    .await;
    // mc-mgmt updates: the copy and then its fan-out follow; the original is never touched by
    // mc-project (no copy with origin.cluster=mc-project anywhere in mc-mgmt or mc-project2).
    let src2 = merge::<ConfigMap>(&w.mgmt, &ns, "wildcard", json!({"data": {"v": "2"}}))
        .await
        .unwrap();
    wait_for("update reaches the fan-out", SOON, || async {
        let got = copies::<ConfigMap>(&w.project, &ns, "wildcard")
            .await
            .unwrap();
        got.get(&fan).filter(|c| fanned("2")(c)).map(|_| ())
    })
    .await;
    let orig = get::<ConfigMap>(&w.mgmt, &ns, "wildcard")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        orig.resource_version(),
        src2.resource_version(),
        "original modified"
    );
    assert!(!orig.labels().contains_key(ORIGIN_CLUSTER));
    for c in [&w.mgmt, &w.project2] {
        let pushed: Vec<ConfigMap> = copies::<ConfigMap>(c, &ns, "wildcard")
            .await
            .unwrap()
            .into_values()
            .filter(|c| c.labels().get(ORIGIN_CLUSTER).map(String::as_str) == Some("mc-project"))
            .collect();
        assert!(pushed.is_empty(), "mc-project pushed back: {pushed:?}");
    }
    let copy = get::<ConfigMap>(&w.project, &ns, "wildcard")
        .await
        .unwrap()
        .unwrap();
    assert!(
        copy.annotations().contains_key(SYNC),
        "local fan-out annotation lost"
    );
    w.cleanup(&[&ns, &fan]).await;
}

/// A kubeconfig where another context points at the source cluster is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_as_target_refused() {
    let w = World::shared().await;
    let mut kc = kubeconfig::read(&w.tb.kubeconfig_path()).unwrap();
    kubeconfig::add_alias(&mut kc, MGMT, "mgmt-alias", None).unwrap();
    let path =
        w.tb.dir()
            .join(format!("{}.kubeconfig", unique_ns("refuse")));
    kubeconfig::write(&kc, &path).unwrap();
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
    let w = World::shared().await;
    let ns = unique_ns("kcs-multi");
    let (prod, staging) = (unique_ns("kcs-prod"), unique_ns("kcs-staging"));
    ensure_ns(&w.mgmt, &ns, &[]).await.unwrap();
    let items = format!("{PROJECT}/{prod}, {PROJECT}/{staging}");
    let src = create(
        &w.mgmt,
        &ns,
        &configmap("multi", &[(SYNC_CONTEXTS, &items)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let _d = w.mgmt_daemon("multi", &ns, &["--create-namespaces"]);
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
    .await
    .unwrap();
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

/// Argo CD, Flux and Helm ownership marks stay off copies (existing copies lose them),
/// `--strip-metadata` adds a key (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_marks_stay_off_copies() {
    policies::gitops_marks().await;
}

/// `kubed-cross-sync.io/keys` and binaryData create/update (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_keys_and_binary_data() {
    policies::chosen_keys_and_binary_data().await;
}

/// `kubed-cross-sync.io/exclude-namespaces` and the system namespaces (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_namespaces() {
    policies::excluded_namespaces().await;
}

/// `kubed-cross-sync.io/follower-namespaces` (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_namespaces_by_selector() {
    policies::follower_namespaces_by_selector().await;
}

/// `--previous-cluster-name`: a migration from kubed's Helm chart keeps every copy (issue 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_previous_cluster_name_are_taken_over() {
    policies::copies_of_a_previous_cluster_name_are_taken_over().await;
}

/// `kubed-cross-sync.io/on-delete: retain` (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_copies_are_released() {
    policies::retained_copies_are_released().await;
}

/// Contexts named by their ARN (what `aws eks update-kubeconfig` writes without `--alias`) work
/// in `sync-contexts`, alone and with a `/namespace` (kubed splits them at the first `/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arn_named_contexts() {
    let w = World::shared().await;
    let ns = unique_ns("kcs-arn");
    let ns2 = unique_ns("kcs-arn2");
    w.ns_everywhere(&ns).await;
    ensure_ns(&w.project2, &ns2, &[]).await.unwrap();
    let arn = "arn:aws:eks:eu-central-1:111122223333:cluster/mc-project2-k8s";
    let mut kc = kubeconfig::read(&w.tb.kubeconfig_path()).unwrap();
    kubeconfig::add_alias(&mut kc, PROJECT2, arn, None).unwrap();
    let path = w.tb.dir().join(format!("{ns}.kubeconfig"));
    kubeconfig::write(&kc, &path).unwrap();
    let items = format!("{arn}, {arn}/{ns2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("by-arn", &[(SYNC_CONTEXTS, &items)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let p = path.display().to_string();
    let args = [
        "--kubeconfig-file",
        &p,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &ns,
    ];
    let _d = w.daemon("arn", &args);
    let want: &[(&str, &[&str])] = &[(PROJECT2, &[ns.as_str(), ns2.as_str()])];
    wait_copies::<ConfigMap, _>(
        "copies through the ARN context",
        &w.all(),
        &ns,
        "by-arn",
        want,
        |_| true,
    )
    .await;
    let (code, log) = once(&args);
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_file(&path);
    w.cleanup(&[&ns, &ns2]).await;
}

/// Every update of an intra-cluster source is exactly one PATCH per target namespace and one per
/// follower: a reconcile that runs between a write and
/// its watch event (the copy's event for the last namespace is often still on its way) must not
/// plan the same write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_update_is_one_write_per_copy() {
    let w = World::shared().await;
    let src_ns = unique_ns("kcs-once");
    let id = src_ns.rsplit('-').next().unwrap().to_string();
    let targets: Vec<String> = (0..4)
        .map(|i| unique_ns(&format!("kcs-once-{i}")))
        .collect();
    ensure_ns(&w.mgmt, &src_ns, &[]).await.unwrap();
    for ns in &targets {
        ensure_ns(&w.mgmt, ns, &[("kcs-once", &id)]).await.unwrap();
    }
    ensure_ns(&w.project, &src_ns, &[]).await.unwrap();
    let d = w.mgmt_daemon("one-write", &src_ns, &[]);
    let selector = format!("kcs-once={id}");
    create(
        &w.mgmt,
        &src_ns,
        &configmap(
            "cfg",
            &[(SYNC, selector.as_str()), (SYNC_CONTEXTS, PROJECT)],
            &[],
            &[("k", "0")],
        ),
    )
    .await
    .unwrap();
    let all_have = |v: String| {
        let (w, targets, src_ns) = (&w, &targets, &src_ns);
        async move {
            for ns in targets {
                let cm = get::<ConfigMap>(&w.mgmt, ns, "cfg").await.ok()??;
                (cm.data?.get("k")? == &v).then_some(())?;
            }
            let cm = get::<ConfigMap>(&w.project, src_ns, "cfg").await.ok()??;
            (cm.data?.get("k")? == &v).then_some(())
        }
    };
    wait_for("first copies", SOON, || all_have("0".into())).await;
    let mut mgmt = audit::Mark::now(&w.tb.audit_log(MGMT));
    let mut project = audit::Mark::now(&w.tb.audit_log(PROJECT));
    const UPDATES: usize = 30;
    for i in 1..=UPDATES {
        merge::<ConfigMap>(
            &w.mgmt,
            &src_ns,
            "cfg",
            json!({"data": {"k": i.to_string()}}),
        )
        .await
        .unwrap();
        wait_for(&format!("update {i} everywhere"), SOON, || {
            all_have(i.to_string())
        })
        .await;
    }
    // The last update's events are in; one resync more writes nothing either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let patches = |m: &mut audit::Mark, in_ns: &dyn Fn(&str) -> bool| -> Vec<usize> {
        let events = m.take_events().unwrap();
        let ours = |e: &&audit::Event| {
            e.user_agent.starts_with(audit::DAEMON_AGENT)
                && e.is_object_write()
                && e.resource.as_deref() == Some("configmaps")
                && e.name == "cfg"
        };
        let writes: Vec<&audit::Event> = events.iter().filter(ours).collect();
        let mut by_ns: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in writes.iter().filter(|e| in_ns(&e.namespace)) {
            *by_ns.entry(e.namespace.as_str()).or_default() += 1;
        }
        by_ns.into_values().collect()
    };
    let local = patches(&mut mgmt, &|ns| targets.iter().any(|t| t == ns));
    let follower = patches(&mut project, &|ns| ns == src_ns);
    assert_eq!(
        local,
        vec![UPDATES; targets.len()],
        "writes per target namespace"
    );
    assert_eq!(follower, vec![UPDATES], "writes in the follower");
    drop(d);
    w.cleanup(&[&src_ns]).await;
    for ns in &targets {
        let _ = delete_ns(&w.mgmt, ns).await;
    }
}

/// A write the follower refuses for good (here a ResourceQuota allowing no ConfigMap: 403) is
/// reported on the source as a `WriteRefused` Warning Event and retried slowly (10 s, then
/// minutes) instead of every few seconds; a change of the source retries it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_back_off_and_are_reported() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let w = World::shared().await;
    let ns = unique_ns("kcs-refused");
    w.ns_everywhere(&ns).await;
    let quotas: kube::Api<ResourceQuota> = kube::Api::namespaced(w.project.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-configmaps"},
        "spec": {"hard": {"count/configmaps": "0"}},
    }))
    .unwrap();
    quotas.create(&Default::default(), &quota).await.unwrap();
    // In force once the quota controller has computed its usage: a create is then refused.
    wait_for("the quota in force", SOON, || async {
        let probe = configmap("probe", &[], &[], &[("k", "v")]);
        match create(&w.project, &ns, &probe).await {
            Err(_) => Some(()),
            Ok(_) => {
                let _ = kube::Api::<ConfigMap>::namespaced(w.project.clone(), &ns)
                    .delete("probe", &Default::default())
                    .await;
                None
            }
        }
    })
    .await;
    let mut project = audit::Mark::now(&w.tb.audit_log(PROJECT));
    let _d = w.mgmt_daemon("refused", &ns, &[]);
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let event = wait_for("the WriteRefused Event", SOON, || async {
        let found = events(&w.mgmt, &ns, "cfg", "WriteRefused", Some("Warning"))
            .await
            .unwrap();
        found.into_iter().next()
    })
    .await;
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("forbidden") || note.contains("quota"),
        "{note}"
    );
    // 15 s of refusals: the first attempt and the one 10 s later (a 250 ms–10 s backoff would
    // have made about seven).
    tokio::time::sleep(Duration::from_secs(15)).await;
    let attempts = (project.take_events().unwrap().iter())
        .filter(|e| e.user_agent.starts_with(audit::DAEMON_AGENT))
        .filter(|e| e.verb == "create" && e.namespace == ns && e.name == "cfg")
        .count();
    assert!((1..=3).contains(&attempts), "{attempts} attempts in 15 s");
    // The quota goes and the source changes: retried at once, not after the backoff.
    quotas
        .delete("no-configmaps", &Default::default())
        .await
        .unwrap();
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
    let want: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()])];
    let started = std::time::Instant::now();
    wait_copies::<ConfigMap, _>("the copy once allowed", &w.all(), &ns, "cfg", want, |c| {
        c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("v2")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    w.cleanup(&[&ns]).await;
}

/// An unmanaged object in a copy's way is left alone (OriginConflict) and watched: once it is
/// deleted, the copy is made within seconds, not at the next full sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_clears_as_soon_as_the_look_alike_goes() {
    conflicts::run().await;
}

/// A new copy is one POST and no read; an unmanaged object by that name is never merged into
/// (409, one read, OriginConflict, left exactly as it was); what only the POST owned is removed
/// when the source drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_copy_is_one_post_and_nothing_unmanaged_is_merged_into() {
    create::run().await;
}

/// A follower whose flow control (API Priority and Fairness) rejects most of the daemon's
/// creates with 429: followed (window, Retry-After, the same request sent again), not failed;
/// every copy made exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_follower_is_followed_not_failed() {
    throttle::run().await;
}
