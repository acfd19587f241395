//! Exec-plugin credentials: a token the apiserver rejects is renewed after the 401, and tokens
//! that expire every few seconds never fail a sync.
use super::*;

/// An exec plugin that hands out the admin token with an expiry `ttl` ahead; each call appends
/// a line to `count`. With `bogus_first`, the first call per cluster hands out a token the API
/// server rejects (valid-looking, long expiry): only a renewal after the 401 gets past it.
fn exec_kubeconfig(
    w: &World,
    ns: &str,
    ttl: &str,
    bogus_first: bool,
) -> (String, std::path::PathBuf) {
    let dir = w.tb.dir();
    let count = dir.join(format!("{ns}.exec-calls"));
    let script = dir.join(format!("{ns}-exec.sh"));
    let first = if bogus_first {
        format!(
            "if [ ! -e \"{c}.$1\" ]; then touch \"{c}.$1\"; set -- \"$1\" bogus-token; fi\n",
            c = count.display()
        )
    } else {
        String::new()
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {count}\n{first}exp=$(date -u -d '{ttl}' +%Y-%m-%dT%H:%M:%SZ)\n\
             printf '{{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"spec\":{{}},\"status\":{{\"token\":\"%s\",\"expirationTimestamp\":\"%s\"}}}}' \"$2\" \"$exp\"\n",
            count = count.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut kc = kubeconfig_json(w.tb);
    for u in kc["users"].as_array_mut().unwrap() {
        let name = u["name"].as_str().unwrap().to_string();
        let cluster =
            w.tb.clusters()
                .iter()
                .find(|c| name.contains(&c.name))
                .unwrap_or_else(|| panic!("user {name} names a cluster"));
        u["user"] = json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": script.display().to_string(),
            "args": [cluster.name, cluster.admin_token],
            "interactiveMode": "Never",
        }});
    }
    let p = write_kubeconfig(dir, &format!("{ns}-exec.kubeconfig"), &kc);
    (p.display().to_string(), count)
}

pub(crate) async fn a_rejected_exec_token_is_renewed_after_the_401() {
    let w = World::shared().await;
    let ns = unique_ns("ops-401");
    w.ns_everywhere(&ns).await;
    let (kc, count) = exec_kubeconfig(&w, &ns, "+1 hour", true);
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
    synced_to_project(&w, &ns, "cfg", "v").await;
    wait_ready(&mut d).await;
    let calls = std::fs::read_to_string(&count).unwrap_or_default();
    for c in [MGMT, PROJECT] {
        let n = calls.lines().filter(|l| *l == c).count();
        assert!(
            n >= 2,
            "{c}: plugin ran {n} times (bogus, then after the 401)"
        );
    }
    assert!(
        d.log_text().contains("401 Unauthorized"),
        "{}",
        d.log_text()
    );
    drop(d);
    w.cleanup(&[&ns]).await;
}

pub(crate) async fn fast_expiring_exec_tokens_never_fail_a_sync() {
    let w = World::shared().await;
    let ns = unique_ns("ops-token");
    w.ns_everywhere(&ns).await;
    let (kc, count) = exec_kubeconfig(&w, &ns, "+62 seconds", false);
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
    wait_ready(&mut d).await;
    let calls = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "0")]),
    )
    .await
    .unwrap();
    let start_calls = calls();
    // Several token lifetimes: one change every ~3 s, each must reach both followers.
    for i in 1..=6 {
        tokio::time::sleep(Duration::from_secs(3)).await; // let the ~2 s tokens expire
        merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": i.to_string()}}))
            .await
            .unwrap();
        wait_cm_data(&w.project, &ns, "cfg", &i.to_string(), SOON).await;
        wait_cm_data(&w.project2, &ns, "cfg", &i.to_string(), SOON).await;
    }
    let renewed = calls() - start_calls;
    eprintln!(
        "exec plugin calls during 6 expiry cycles: {renewed} (total {})",
        calls()
    );
    assert!(renewed >= 6, "tokens were renewed: {renewed}");
    let body = d.get("/metrics").await.unwrap().1;
    assert!(
        !body.contains("kcs_reconcile_errors_total{"),
        "no failed sync: {body}"
    );
    assert!(
        !body.contains("kcs_credential_refresh_failures_total{"),
        "{body}"
    );
    let log = d.log_text();
    assert!(
        !log.contains("reconcile failed") && !log.contains("write failed"),
        "{log}"
    );
    d.assert_running();
    drop(d);
    w.cleanup(&[&ns]).await;
}
