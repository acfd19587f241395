//! `status` judges as `run` does, because both plan through the same functions: through a second
//! and third context on one follower (aliases with their own default namespaces) and with a
//! namespace of the source cluster being deleted (Terminating: no copy wanted there).
use super::*;
use e2e::kubeconfig;
use k8s_openapi::api::core::v1::Namespace;

const HOLD: &str = "kubed-cross-sync.io/test-hold";

pub(crate) async fn status_agrees_with_run_for_aliases_and_terminating_namespaces() {
    let w = World::shared().await;
    let ns = unique_ns("ops-agree");
    let (a, b) = (unique_ns("ops-agree-a"), unique_ns("ops-agree-b"));
    let (x, t) = (unique_ns("ops-agree-x"), unique_ns("ops-agree-t"));
    w.ns_everywhere(&ns).await;
    for n in [&a, &b] {
        create_ns(&w.project, n, &[]).await.unwrap();
    }
    let label = ("kcs-agree", ns.as_str());
    for n in [&x, &t] {
        create_ns(&w.mgmt, n, &[label]).await.unwrap();
    }
    hold_terminating(&w.mgmt, &t).await;
    // Two more contexts on mc-project-k8s, each with its own default namespace.
    let mut kc = kubeconfig::read(&w.tb.kubeconfig_path()).unwrap();
    kubeconfig::add_alias(&mut kc, PROJECT, "proj-a", Some(&a)).unwrap();
    kubeconfig::add_alias(&mut kc, PROJECT, "proj-b", Some(&b)).unwrap();
    let path = w.tb.dir().join(format!("{ns}.kubeconfig"));
    kubeconfig::write(&kc, &path).unwrap();
    let source = configmap(
        "agree",
        &[
            (SYNC_CONTEXTS, "proj-a,proj-b"),
            (SYNC, &format!("kcs-agree={ns}")),
        ],
        &[],
        &[("k", "v")],
    );
    create(&w.mgmt, &ns, &source).await.unwrap();

    let kc_arg = path.display().to_string();
    let scope = [
        "--kubeconfig-file",
        kc_arg.as_str(),
        "--cluster-name",
        "mc-agree",
        "--config-source-namespace",
        ns.as_str(),
    ];
    let (code, log) = once(&scope);
    assert_eq!(code, 0, "once did not converge: {log}");
    for (c, n) in [(&w.project, &a), (&w.project, &b), (&w.mgmt, &x)] {
        assert!(
            get::<ConfigMap>(c, n, "agree").await.unwrap().is_some(),
            "no copy in {n}"
        );
    }
    assert!(
        get::<ConfigMap>(&w.mgmt, &t, "agree")
            .await
            .unwrap()
            .is_none()
    );

    let out = Daemon::command("status")
        .args(scope)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status disagrees with once: {stdout}"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let mut rows: Vec<(String, String, String)> = (doc["items"].as_array().unwrap().iter())
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("context"), s("namespace"), s("state"))
        })
        .collect();
    rows.sort();
    let mut want = vec![
        ("proj-a".to_string(), a.clone(), "in-sync".to_string()),
        ("proj-b".to_string(), b.clone(), "in-sync".to_string()),
        (MGMT.to_string(), x.clone(), "in-sync".to_string()),
    ];
    want.sort();
    assert_eq!(rows, want, "{stdout}");

    release_hold(&w.mgmt, &t).await;
    delete_ns(&w.project, &a).await;
    delete_ns(&w.project, &b).await;
    delete_ns(&w.mgmt, &x).await;
    w.cleanup(&[&ns]).await;
}

/// Keeps namespace `ns` Terminating: a ConfigMap with a finalizer nobody removes, then the
/// namespace's deletion; returns once its phase says so.
async fn hold_terminating(c: &Client, ns: &str) {
    let mut held = configmap("held", &[], &[], &[]);
    held.metadata.finalizers = Some(vec![HOLD.to_string()]);
    create(c, ns, &held).await.unwrap();
    delete_ns(c, ns).await;
    wait_for(&format!("namespace {ns} Terminating"), SOON, || async {
        let n = Api::<Namespace>::all(c.clone()).get(ns).await.ok()?;
        let phase = n.status.and_then(|s| s.phase);
        (phase.as_deref() == Some("Terminating")).then_some(())
    })
    .await;
}

/// Lets namespace `ns` go: its held ConfigMap loses the finalizer.
async fn release_hold(c: &Client, ns: &str) {
    merge::<ConfigMap>(c, ns, "held", json!({"metadata": {"finalizers": null}}))
        .await
        .unwrap();
}
