//! `intra_cluster_selector_and_safety` step by step: the sources (one per case) in a namespace
//! of mc-mgmt, the first copies, conflicts and malformed annotations, namespaces that start or
//! stop matching, an immutable source re-created, and `once` over the same scope.
use super::*;

/// The test's namespaces in mc-mgmt: the sources', n1, n2 (labelled to miss), n3 (made later),
/// n4 (holding an unmanaged object of a source's name); `id` is the selector's label value.
struct Names {
    src_ns: String,
    id: String,
    n1: String,
    n2: String,
    n3: String,
    n4: String,
    selector: String,
}

pub(crate) async fn run() {
    let w = World::shared().await;
    let src_ns = unique_ns("kcs-sel");
    let id = src_ns.rsplit('-').next().unwrap().to_string();
    let (n1, n2, n3, n4) = (
        unique_ns("kcs-sel-a"),
        unique_ns("kcs-sel-b"),
        unique_ns("kcs-sel-c"),
        unique_ns("kcs-sel-d"),
    );
    ensure_ns(&w.mgmt, &src_ns, &[("kcs-sel", &id)])
        .await
        .unwrap(); // the source's own ns never gets a copy
    ensure_ns(&w.mgmt, &n1, &[("kcs-sel", &id)]).await.unwrap();
    ensure_ns(&w.mgmt, &n2, &[("kcs-sel", "other")])
        .await
        .unwrap();
    ensure_ns(&w.mgmt, &n4, &[("kcs-sel", &id)]).await.unwrap();
    let selector = format!("kcs-sel={id}");
    let t = Names {
        src_ns,
        id,
        n1,
        n2,
        n3,
        n4,
        selector,
    };
    let (src, unmanaged, imm) = sources(&w, &t).await;
    let _d = w.mgmt_daemon("selector", &t.src_ns, &[]);
    first_copies(&w, &t, &src).await;
    conflicts_and_malformed_sources(&w, &t, &unmanaged).await;
    namespaces_that_start_and_stop_matching(&w, &t, &src).await;
    immutable_source_recreated(&w, &t, &imm).await;
    // `once` over the same scope is a no-op pass; it reports the conflict as not converged.
    let kc = w.kubeconfig();
    let (code, err) = once(&[
        "--kubeconfig-file",
        &kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &t.src_ns,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("conflicts=1"), "{err}");
    w.cleanup(&[&t.src_ns, &t.n1, &t.n2, &t.n3, &t.n4]).await;
}

/// The sources: one to copy, one whose name an unmanaged object holds in n4, two malformed, one
/// naming a missing namespace, an immutable one, a service-account token. Returns the first,
/// the unmanaged object and the immutable source.
async fn sources(w: &World<'_>, t: &Names) -> (ConfigMap, ConfigMap, ConfigMap) {
    let src = create(
        &w.mgmt,
        &t.src_ns,
        &configmap("sel-demo", &[(SYNC, &t.selector)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    // Same name as an unmanaged ConfigMap already in n4.
    let unmanaged = create(
        &w.mgmt,
        &t.n4,
        &configmap("clash", &[], &[], &[("mine", "1")]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &t.src_ns,
        &configmap("clash", &[(SYNC, &t.selector)], &[], &[("theirs", "1")]),
    )
    .await
    .unwrap();
    // Malformed annotations; a good source beside them.
    create(
        &w.mgmt,
        &t.src_ns,
        &configmap("bad-selector", &[(SYNC, "kcs-sel in (")], &[], &[]),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &t.src_ns,
        &configmap(
            "bad-context",
            &[(SYNC_CONTEXTS, "no-such-context")],
            &[],
            &[],
        ),
    )
    .await
    .unwrap();
    create(
        &w.mgmt,
        &t.src_ns,
        &configmap(
            "missing-ns",
            &[(SYNC_CONTEXTS, &format!("{PROJECT}/kcs-absent-{}", t.id))],
            &[],
            &[],
        ),
    )
    .await
    .unwrap();
    // Immutable source.
    let imm = {
        let mut c = configmap("frozen", &[(SYNC, &t.selector)], &[], &[("v", "1")]);
        c.immutable = Some(true);
        create(&w.mgmt, &t.src_ns, &c).await.unwrap()
    };
    // A service-account-token Secret with the sync key: skipped (never even cached).
    create(
        &w.mgmt,
        &t.src_ns,
        &secret(
            "sa-token",
            "kubernetes.io/service-account-token",
            &[
                (SYNC, &t.selector),
                ("kubernetes.io/service-account.name", "default"),
            ],
            &[],
        ),
    )
    .await
    .unwrap();
    (src, unmanaged, imm)
}

async fn first_copies(w: &World<'_>, t: &Names, src: &ConfigMap) {
    let first = [t.n1.as_str(), t.n4.as_str()];
    let want: Vec<(&str, &[&str])> = vec![(MGMT, &first)];
    wait_copies::<ConfigMap, _>(
        "copies in matching namespaces",
        &w.all(),
        &t.src_ns,
        "sel-demo",
        &want,
        |c| is_copy_of_cm(c, src, "mc-mgmt"),
    )
    .await;
    wait_copies::<ConfigMap, _>(
        "immutable copy",
        &w.all(),
        &t.src_ns,
        "frozen",
        &want,
        |c| c.immutable == Some(true),
    )
    .await;
}

async fn conflicts_and_malformed_sources(w: &World<'_>, t: &Names, unmanaged: &ConfigMap) {
    // Conflict: the unmanaged object is untouched, an Event names it.
    let ev = wait_event(&w.mgmt, &t.src_ns, "clash", "OriginConflict").await;
    assert!(ev.note.as_deref().unwrap_or("").contains(&t.n4), "{ev:?}");
    let still = get::<ConfigMap>(&w.mgmt, &t.n4, "clash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.resource_version(), unmanaged.resource_version());
    // n1 got the clash copy (no conflict there).
    let only_n1 = [t.n1.as_str()];
    let clash_want: Vec<(&str, &[&str])> = vec![(MGMT, &only_n1)];
    wait_copies::<ConfigMap, _>(
        "clash copy only where free",
        &w.all(),
        &t.src_ns,
        "clash",
        &clash_want,
        |_| true,
    )
    .await;
    // Malformed annotations and unknown contexts: Events; nothing copied for them.
    wait_event(&w.mgmt, &t.src_ns, "bad-selector", "MalformedAnnotation").await;
    let ev = wait_event(&w.mgmt, &t.src_ns, "bad-context", "UnknownContext").await;
    assert!(ev.note.as_deref().unwrap_or("").contains("no-such-context"));
    wait_event(&w.mgmt, &t.src_ns, "missing-ns", "NamespaceMissing").await;
    for name in ["bad-selector", "bad-context", "missing-ns"] {
        wait_copies::<ConfigMap, _>(
            "no copies of malformed sources",
            &w.all(),
            &t.src_ns,
            name,
            &[],
            |_| true,
        )
        .await;
    }
    assert!(
        copies::<Secret>(&w.mgmt, &t.src_ns, "sa-token")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn namespaces_that_start_and_stop_matching(w: &World<'_>, t: &Names, src: &ConfigMap) {
    // A namespace created later gets the copy; one relabelled out loses it.
    ensure_ns(&w.mgmt, &t.n3, &[("kcs-sel", &t.id)])
        .await
        .unwrap();
    label_ns(&w.mgmt, &t.n1, "kcs-sel", None).await.unwrap();
    let second = [t.n3.as_str(), t.n4.as_str()];
    let want2: Vec<(&str, &[&str])> = vec![(MGMT, &second)];
    wait_copies::<ConfigMap, _>(
        "copy follows namespace labels",
        &w.all(),
        &t.src_ns,
        "sel-demo",
        &want2,
        |c| is_copy_of_cm(c, src, "mc-mgmt"),
    )
    .await;
}

async fn immutable_source_recreated(w: &World<'_>, t: &Names, imm: &ConfigMap) {
    let second = [t.n3.as_str(), t.n4.as_str()];
    let want2: Vec<(&str, &[&str])> = vec![(MGMT, &second)];
    // Immutable: a changed source (re-created, it is immutable too) → copies re-created.
    let old_uids: Vec<String> = copies::<ConfigMap>(&w.mgmt, &t.src_ns, "frozen")
        .await
        .unwrap()
        .values()
        .map(|c| c.uid().unwrap())
        .collect();
    delete::<ConfigMap>(&w.mgmt, &t.src_ns, "frozen")
        .await
        .unwrap();
    let mut c = configmap("frozen", &[(SYNC, &t.selector)], &[], &[("v", "2")]);
    c.immutable = Some(true);
    let imm2 = create(&w.mgmt, &t.src_ns, &c).await.unwrap();
    assert_ne!(imm.uid(), imm2.uid());
    wait_copies::<ConfigMap, _>(
        "immutable copies re-created",
        &w.all(),
        &t.src_ns,
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
        copies::<Secret>(&w.mgmt, &t.src_ns, "sa-token")
            .await
            .unwrap()
            .is_empty()
    );
}
