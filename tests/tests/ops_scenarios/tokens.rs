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
    // 4 s tokens: renewed a quarter of their lifetime (1 s) before they expire.
    let (kc, count) = exec_kubeconfig(&w, &ns, "+4 seconds", false);
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
        tokio::time::sleep(Duration::from_secs(3)).await; // past the renewal point of the 4 s tokens
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

/// A kubeconfig whose users run one script: PROJECT2's first run hangs (a child of the plugin
/// sleeping, tagged `marker`), its later runs fail with JSON-hostile stderr; the others succeed.
fn stuck_plugin_kubeconfig(w: &World, ns: &str, marker: &str) -> String {
    let dir = w.tb.dir();
    let count = dir.join(format!("{ns}.exec-calls"));
    let script = dir.join(format!("{ns}-stuck.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {count}\n\
             if [ \"$3\" = stuck ]; then\n\
               if [ \"$(grep -c \"^$1$\" {count})\" -le 1 ]; then sh -c 'sleep 300; : {marker}'; fi\n\
               printf 'error: \"AccessDenied\" {{\"role\": \"x\"}}\\n\\tfor role kubed-follower\\n' >&2\n\
               exit 1\n\
             fi\n\
             exp=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\n\
             printf '{{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"spec\":{{}},\"status\":{{\"token\":\"%s\",\"expirationTimestamp\":\"%s\"}}}}' \"$2\" \"$exp\"\n",
            count = count.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut kc = kubeconfig_json(w.tb);
    let stuck_user = kc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == PROJECT2)
        .map(|c| c["context"]["user"].clone())
        .unwrap();
    for u in kc["users"].as_array_mut().unwrap() {
        let name = u["name"].as_str().unwrap().to_string();
        let cluster =
            w.tb.clusters()
                .iter()
                .find(|c| name.contains(&c.name))
                .unwrap_or_else(|| panic!("user {name} names a cluster"));
        let mode = if u["name"] == stuck_user {
            "stuck"
        } else {
            "ok"
        };
        u["user"] = json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": script.display().to_string(),
            "args": [cluster.name, cluster.admin_token, mode],
            "interactiveMode": "Never",
        }});
    }
    write_kubeconfig(dir, &format!("{ns}-stuck.kubeconfig"), &kc)
        .display()
        .to_string()
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(marker))
        .count()
}

pub(crate) async fn a_hung_or_failing_plugin_stalls_only_its_follower() {
    let w = World::shared().await;
    let ns = unique_ns("ops-stuck");
    w.ns_everywhere(&ns).await;
    let marker = format!("kcs-stuck-{ns}");
    let kc = stuck_plugin_kubeconfig(&w, &ns, &marker);
    let extra = ["--exec-timeout", "6s", "--log-format", "json"];
    let mut d = start(w.tb.dir(), &ns, &run_args(&kc, &ns, &extra), &[]);
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    // PROJECT is served while PROJECT2's plugin hangs (its deadline is 6 s away).
    wait_cm_data(&w.project, &ns, "cfg", "v", Duration::from_secs(5)).await;
    assert!(processes_with(&marker) > 0, "PROJECT2's plugin still hangs");
    // At the deadline the plugin and its child are killed; later runs fail (with backoff) and
    // are counted as credential failures of PROJECT2 only.
    wait_for("the hung plugin killed", SOON, || async {
        (processes_with(&marker) == 0).then_some(())
    })
    .await;
    let failures = |body: &str, ctx: &str| {
        metric_value(
            body,
            &format!("kcs_credential_refresh_failures_total{{cluster=\"{ctx}\"}}"),
        )
    };
    wait_for("credential failures of PROJECT2", SOON, || async {
        let body = d.get("/metrics").await?.1;
        (failures(&body, PROJECT2)? >= 2.0).then_some(())
    })
    .await;
    let body = d.get("/metrics").await.unwrap().1;
    assert_eq!(failures(&body, PROJECT), None, "{body}");
    // Still serving PROJECT: a change reaches it.
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
    wait_cm_data(&w.project, &ns, "cfg", "v2", SOON).await;
    d.assert_running();
    // The log stays one JSON document per line, the plugin's stderr inside one field.
    let log = d.log_text();
    let lines: Vec<Value> = (log.lines())
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let text = |v: &Value| v.to_string();
    assert!(
        lines
            .iter()
            .any(|v| text(v).contains("did not finish within 6s")),
        "{log}"
    );
    assert!(
        lines.iter().any(|v| text(v).contains("exec plugin failed")
            && text(v).contains("for role kubed-follower")),
        "{log}"
    );
    // status names the cause on PROJECT2's rows.
    let out = Daemon::command("status")
        .kubeconfig(&kc)
        .cluster_name("mc-mgmt")
        .source_namespace(&ns)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["items"].as_array().unwrap();
    let row = |ctx: &str| rows.iter().find(|r| r["context"] == ctx).unwrap().clone();
    assert_eq!(row(PROJECT)["state"], "in-sync", "{doc}");
    assert_eq!(row(PROJECT2)["state"], "target-unreachable", "{doc}");
    let detail = row(PROJECT2)["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("\"AccessDenied\" {\"role\": \"x\"} | for role kubed-follower"),
        "{detail}"
    );
    drop(d);
    w.cleanup(&[&ns]).await;
}
