//! `one_cluster_by_two_urls_is_one_follower`: a follower is a cluster, not a URL. A second
//! context on mc-project-k8s through the apiserver's own address (the first goes through the
//! testbed's proxy) is an alias of the first, known by the uid of its kube-system namespace: the
//! copies wanted through each context are made once and then left alone (before, the two were
//! two followers deleting each other's copies, hundreds of writes a second), and `status` plans
//! the same. A context reaching the source cluster by another URL is refused at start (exit 2).
use super::*;

/// `kc` plus context `name`: the cluster of context `of` reached at `server`, with its CA and user,
/// and `namespace` as its default.
fn add_by_url(kc: &mut Value, of: &str, name: &str, server: &str, namespace: Option<&str>) {
    let ctx = (kc["contexts"].as_array().unwrap().iter())
        .find(|c| c["name"] == of)
        .unwrap()["context"]
        .clone();
    let mut cluster = (kc["clusters"].as_array().unwrap().iter())
        .find(|c| c["name"] == ctx["cluster"])
        .unwrap()["cluster"]
        .clone();
    cluster["server"] = json!(server);
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": name, "cluster": cluster}));
    let mut new_ctx = json!({"cluster": name, "user": ctx["user"]});
    if let Some(ns) = namespace {
        new_ctx["namespace"] = json!(ns);
    }
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": name, "context": new_ctx}));
}

pub(crate) async fn one_cluster_by_two_urls_is_one_follower() {
    let w = World::shared().await;
    let ns = unique_ns("ops-identity");
    let (a, b) = (unique_ns("ops-identity-a"), unique_ns("ops-identity-b"));
    w.ns_everywhere(&ns).await;
    for n in [&a, &b] {
        create_ns(&w.project, n, &[]).await.unwrap();
    }
    let mut kc = kubeconfig_json(w.tb);
    let direct = w.tb.cluster(PROJECT).direct_server.clone();
    assert_ne!(direct, w.tb.cluster(PROJECT).server);
    add_by_url(&mut kc, PROJECT, "proj-direct", &direct, Some(&b));
    let path = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &kc);
    let kc_arg = path.display().to_string();
    let source = configmap(
        "one",
        &[(SYNC_CONTEXTS, &format!("{PROJECT}/{a},proj-direct"))],
        &[],
        &[("k", "v")],
    );
    create(&w.mgmt, &ns, &source).await.unwrap();
    let mut project = audit::Mark::now(&w.tb.audit_log(PROJECT));
    let args = run_args(&kc_arg, &ns, &["--resync-period", "2s"]);
    let mut d = start(w.tb.dir(), "identity", &args, &[]);
    wait_ready(&mut d).await;
    let both: &[(&str, &[&str])] = &[(PROJECT, &[a.as_str(), b.as_str()])];
    wait_copies::<ConfigMap, _>(
        "a copy through each context",
        &w.all(),
        &ns,
        "one",
        both,
        |_| true,
    )
    .await;
    // Converged: five sweeps later, not one more write (two followers would delete each other's
    // copies on every sweep).
    let mine = |n: &str| n == a || n == b;
    let made = audit::daemon_writes(&project.take_events().unwrap(), &mine);
    assert_eq!(made.len(), 2, "{made:#?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = audit::daemon_writes(&project.take_events().unwrap(), &mine);
    assert!(after.is_empty(), "writes after convergence: {after:#?}");
    let log = d.log_text();
    assert!(
        log.contains("reaches the same cluster as another by a different URL"),
        "{log}"
    );
    drop(d);
    // `status` sees one follower with two contexts, as `run` did.
    let out = Daemon::command("status")
        .args(&run_args(&kc_arg, &ns, &[])[1..])
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let mut rows: Vec<(String, String)> = (doc["items"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["context"].as_str().unwrap().into(),
                r["namespace"].as_str().unwrap().into(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (PROJECT.into(), a.clone()),
            ("proj-direct".into(), b.clone())
        ]
    );

    // The source cluster by its other address: refused before anything starts.
    let mut kc = kubeconfig_json(w.tb);
    let mgmt_direct = w.tb.cluster(MGMT).direct_server.clone();
    add_by_url(&mut kc, MGMT, "mgmt-direct", &mgmt_direct, None);
    let path2 = write_kubeconfig(w.tb.dir(), &format!("{ns}-reversed.kubeconfig"), &kc);
    let kc2 = path2.display().to_string();
    let (code, err) = once(&[
        "--kubeconfig-file",
        &kc2,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &ns,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("mgmt-direct") && err.contains("kube-system uid"),
        "{err}"
    );

    delete_ns(&w.project, &a).await;
    delete_ns(&w.project, &b).await;
    w.cleanup(&[&ns]).await;
}
