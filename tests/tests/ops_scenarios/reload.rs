//! The live kubeconfig (issue 14, item 1): a context added to the file becomes a follower and
//! is caught up, a context removed is stopped with its copies left in place, a context whose
//! user changed reconnects — each without a restart, and without a re-list in the follower
//! that did not change. A change of the source cluster's entries ends `run` with exit code 4.
use super::*;

/// Writes `kc` to `path` as a writer that never leaves a half-written file does: a temporary
/// file in the same directory, renamed over it.
fn replace_kubeconfig(path: &str, kc: &Value) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(kc).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `kc` without the contexts named in `drop`.
fn without(kc: &Value, drop: &[&str]) -> Value {
    let mut kc = kc.clone();
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .retain(|c| !drop.contains(&c["name"].as_str().unwrap_or_default()));
    kc
}

/// Points the user of `context` at an exec plugin that prints the same token and counts its
/// runs in `count`: new credentials for one cluster.
fn exec_user(w: &World, kc: &mut Value, context: &str, count: &std::path::Path) {
    let user = kc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == context)
        .map(|c| c["context"]["user"].clone())
        .unwrap();
    let cluster = (w.tb.clusters().iter())
        .find(|c| user.as_str().unwrap().contains(&c.name))
        .unwrap();
    let script = count.with_extension("sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {}\nprintf '{{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"status\":{{\"token\":\"{}\"}}}}'\n",
            count.display(),
            cluster.admin_token
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for u in kc["users"].as_array_mut().unwrap() {
        if u["name"] == user {
            u["user"] = json!({"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": script.display().to_string(),
                "interactiveMode": "Never",
            }});
        }
    }
}

/// Lists and watches of our copies of `ns`'s sources in `cluster` since `mark`.
fn copy_lists(mark: &mut audit::Mark, ns: &str) -> Vec<String> {
    let selector = format!("origin.namespace%3D{ns}");
    (mark.take_events().unwrap().iter())
        .filter(|e| e.user_agent.starts_with(audit::DAEMON_AGENT))
        .filter(|e| matches!(e.verb.as_str(), "list" | "watch"))
        .filter(|e| e.uri.contains(&selector))
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}

pub(crate) async fn followers_follow_the_kubeconfig_without_a_restart() {
    let w = World::shared().await;
    let ns = unique_ns("ops-reload");
    w.ns_everywhere(&ns).await;
    let full = kubeconfig_json(w.tb);
    let kc = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &full)
        .display()
        .to_string();
    let mut project_audit = audit::Mark::now(&w.tb.audit_log(PROJECT));
    // Probes every second, so a probe loop left running for a removed cluster would show.
    let extra = ["--unreachable-after", "4s"];
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &extra), &[]);
    wait_ready(&mut d).await;
    // What the check below looks for: the start-up lists of our copies in PROJECT.
    let initial = copy_lists(&mut project_audit, &ns);
    assert!(initial.iter().any(|l| l.starts_with("list")), "{initial:?}");
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "v1")]),
    )
    .await
    .unwrap();
    wait_cm_data(&w.project, &ns, "cfg", "v1", SOON).await;
    wait_cm_data(&w.project2, &ns, "cfg", "v1", SOON).await;

    // Removed: stopped (its probes too), its copy left as it was; the others go on.
    replace_kubeconfig(&kc, &without(&full, &[PROJECT2]));
    wait_for("PROJECT2 stopped", SOON, || async {
        d.log_text()
            .contains("context gone from the kubeconfig")
            .then_some(())
    })
    .await;
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
    wait_cm_data(&w.project, &ns, "cfg", "v2", SOON).await;
    let up = format!("kcs_cluster_up{{cluster=\"{PROJECT2}\"}}");
    wait_for("PROJECT2's series gone", SOON, || async {
        (!d.get("/metrics").await?.1.contains(&up)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // three probe intervals
    let body = d.get("/metrics").await.unwrap().1;
    assert!(
        !body.contains(&up),
        "a probe still runs for PROJECT2: {body}"
    );
    assert_eq!(
        cm_data(&w.project2, &ns, "cfg").await.as_deref(),
        Some("v1"),
        "the removed follower's copy is left in place"
    );

    // Added back: caught up; PROJECT's watches went on (no list, no new watch there).
    replace_kubeconfig(&kc, &full);
    let added = Instant::now();
    wait_cm_data(&w.project2, &ns, "cfg", "v2", SOON).await;
    eprintln!(
        "added context caught up {:?} after the file changed",
        added.elapsed()
    );
    assert!(d.log_text().contains("context added to the kubeconfig"));
    wait_for("PROJECT2 in /readyz", SOON, || async {
        let body = d.get("/readyz").await?.1;
        body.contains(&format!("cluster {PROJECT2}: up"))
            .then_some(())
    })
    .await;
    assert_eq!(copy_lists(&mut project_audit, &ns), Vec::<String>::new());

    // Changed: PROJECT's user is now an exec plugin; it reconnects with it.
    let count = w.tb.dir().join(format!("{ns}.project-exec"));
    let mut changed = full.clone();
    exec_user(&w, &mut changed, PROJECT, &count);
    replace_kubeconfig(&kc, &changed);
    wait_for("PROJECT reconnected", SOON, || async {
        d.log_text()
            .contains("context changed in the kubeconfig, reconnecting")
            .then_some(())
    })
    .await;
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v3"}}))
        .await
        .unwrap();
    wait_cm_data(&w.project, &ns, "cfg", "v3", SOON).await;
    assert!(
        count.exists(),
        "requests to PROJECT go through its new credentials"
    );
    d.assert_running();

    // The source's entries changed: exit 4, for the pod to start again on the new source.
    exec_user(
        &w,
        &mut changed,
        MGMT,
        &w.tb.dir().join(format!("{ns}.mgmt-exec")),
    );
    replace_kubeconfig(&kc, &changed);
    let status = d.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{}", d.log_text());
    w.cleanup(&[&ns]).await;
}
