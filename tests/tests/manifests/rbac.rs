//! `follower_rbac_grants_the_daemon_its_verbs_and_nothing_more` step by step, as the follower
//! identity (impersonated, so RBAC sees exactly it): every verb the daemon uses in a follower,
//! nothing else, and the create-namespaces variant adding exactly namespaces create.
use super::*;

pub(crate) async fn run() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    apply(tb, PROJECT, &render("follower"));
    let admin = tb.admin_client(PROJECT).await;
    let ns = unique_ns("rbac");
    k8s::ensure_ns(&admin, &ns, &[]).await.unwrap();
    let me = client_as(tb, PROJECT, "kubed-follower:mc-project", &[FOLLOWER_GROUP]).await;
    // The binding takes effect at once (RBAC is read from the apiserver's informer; allow it a moment).
    let cms: Api<ConfigMap> = Api::namespaced(me.clone(), &ns);
    wait_for(
        "the follower binding to take effect",
        Duration::from_secs(10),
        || {
            let cms = cms.clone();
            async move { cms.list(&ListParams::default()).await.ok() }
        },
    )
    .await;

    the_daemons_verbs(&me, &ns).await;
    nothing_else(tb, &me, &ns).await;
    the_create_namespaces_variant(tb).await;
    let _ = Api::<Namespace>::all(admin)
        .delete(&ns, &DeleteParams::default())
        .await;
}

/// Everything sync-daemon does in a follower, on both kinds.
async fn the_daemons_verbs(me: &Client, ns: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(me.clone(), ns);
    let label = "kubed.appscode.com/origin.cluster";
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "copy", "labels": {label: "mc-mgmt"}}, "data": {"k": "v1"}}))
    .unwrap();
    let sec: Secret = serde_json::from_value(json!({
        "metadata": {"name": "copy", "labels": {label: "mc-mgmt"}}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "c", "tls.key": "k"}}))
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(me.clone(), ns);
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    secrets
        .create(&PostParams::default(), &sec)
        .await
        .expect("create secret");
    let mut got = cms.get("copy").await.expect("get configmap");
    got.data.as_mut().unwrap().insert("k".into(), "v2".into());
    cms.replace("copy", &PostParams::default(), &got)
        .await
        .expect("update configmap");
    let merge = Patch::Merge(json!({"data": {"k": "v3"}}));
    cms.patch("copy", &PatchParams::default(), &merge)
        .await
        .expect("patch configmap");
    let mut s = secrets.get("copy").await.expect("get secret");
    s.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    secrets
        .replace("copy", &PostParams::default(), &s)
        .await
        .expect("update secret");
    let apply_patch =
        Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "copy"}}));
    secrets
        .patch(
            "copy",
            &PatchParams::apply("kubed-cross-sync").force(),
            &apply_patch,
        )
        .await
        .expect("server-side apply secret");
    // Cluster-wide, label-selected reads and watches of copies, and namespaces.
    let lp = ListParams::default().labels(label);
    for r in [
        Api::<ConfigMap>::all(me.clone())
            .list(&lp)
            .await
            .map(|_| ()),
        Api::<Secret>::all(me.clone()).list(&lp).await.map(|_| ()),
        Api::<Namespace>::all(me.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        Api::<Namespace>::all(me.clone()).get(ns).await.map(|_| ()),
    ] {
        r.expect("cluster-wide read");
    }
    let wp = WatchParams::default().labels(label).timeout(1);
    for w in [
        Api::<ConfigMap>::all(me.clone())
            .watch(&wp, "0")
            .await
            .map(|_| ()),
        Api::<Secret>::all(me.clone())
            .watch(&wp, "0")
            .await
            .map(|_| ()),
        Api::<Namespace>::all(me.clone())
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .map(|_| ()),
    ] {
        w.expect("cluster-wide watch");
    }
    cms.delete("copy", &DeleteParams::default())
        .await
        .expect("delete configmap");
    secrets
        .delete("copy", &DeleteParams::default())
        .await
        .expect("delete secret");
}

/// No namespace writes, no other kinds, no Events (those go to the source cluster); and another
/// identity gets nothing from this binding.
async fn nothing_else(tb: &Testbed, me: &Client, ns: &str) {
    let new_ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": unique_ns("nope")}})).unwrap();
    assert!(is_forbidden(
        Api::<Namespace>::all(me.clone())
            .create(&PostParams::default(), &new_ns)
            .await
    ));
    assert!(is_forbidden(
        Api::<Namespace>::all(me.clone())
            .delete(ns, &DeleteParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Pod>::all(me.clone())
            .list(&ListParams::default())
            .await
    ));
    let ev_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(me.clone(), ns);
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "x",
        "reportingInstance": "x", "action": "x", "reason": "x", "type": "Normal"})).unwrap();
    assert!(is_forbidden(
        ev_api.create(&PostParams::default(), &ev).await
    ));
    // Another identity gets nothing from this binding.
    let stranger = client_as(tb, PROJECT, "someone", &["other"]).await;
    assert!(is_forbidden(
        Api::<ConfigMap>::namespaced(stranger, ns)
            .list(&ListParams::default())
            .await
    ));
}

/// The create-namespaces variant adds exactly namespaces create (applied elsewhere, removed after).
async fn the_create_namespaces_variant(tb: &Testbed) {
    apply(tb, PROJECT2, &render("follower/create-namespaces"));
    let me2 = client_as(
        tb,
        PROJECT2,
        "kubed-follower:mc-project2",
        &[FOLLOWER_GROUP],
    )
    .await;
    let made = unique_ns("made");
    let made_ns: Namespace = serde_json::from_value(json!({"metadata": {"name": made}})).unwrap();
    wait_for(
        "namespaces create through the create-namespaces variant",
        Duration::from_secs(10),
        || {
            let api = Api::<Namespace>::all(me2.clone());
            let made_ns = made_ns.clone();
            async move { api.create(&PostParams::default(), &made_ns).await.ok() }
        },
    )
    .await;
    let admin2 = tb.admin_client(PROJECT2).await;
    assert!(is_forbidden(
        Api::<Namespace>::all(me2.clone())
            .delete(&made, &DeleteParams::default())
            .await
    ));
    let _ = Api::<Namespace>::all(admin2.clone())
        .delete(&made, &DeleteParams::default())
        .await;
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin2.clone());
    crbs.delete(
        "kubed-cross-sync:follower-create-namespaces",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
}
