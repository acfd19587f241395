//! sync-daemon in production (issue 5), on the shared three-cluster testbed: leader election
//! and failover, /readyz and /metrics after a known sequence of operations, Events for every
//! reason, dry-run, `status`, fast-expiring exec tokens, SIGTERM, the seed's exact args, and a
//! trace-level log scan for secret values. Each test owns unique namespaces and its daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod ops_common;
mod sync_common;

use std::time::{Duration, Instant};

use e2e::{Testbed, unique_ns, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use ops_common::*;
use serde_json::{Value, json};
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
    fn kc(&self) -> String {
        self.tb.kubeconfig_path().display().to_string()
    }
    async fn ns_everywhere(&self, ns: &str) {
        for c in [&self.mgmt, &self.project, &self.project2] {
            create_ns(c, ns, &[]).await;
        }
    }
    async fn cleanup(&self, ns: &str) {
        for c in [&self.mgmt, &self.project, &self.project2] {
            delete_ns(c, ns).await;
        }
    }
}

/// `run` args scoped to `ns` (plus `extra`).
fn run_args<'a>(kc: &'a str, ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--kubeconfig-file",
        kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        ns,
    ];
    v.extend_from_slice(extra);
    v
}

async fn wait_ready(p: &mut Proc) {
    p.assert_running();
    let admin = p.admin.clone();
    wait_for("/readyz 200", SOON, || {
        let admin = admin.clone();
        async move { matches!(http_get(&admin, "/readyz").await, Some((200, _))).then_some(()) }
    })
    .await;
}

async fn cm_data(c: &Client, ns: &str, name: &str) -> Option<String> {
    get::<ConfigMap>(c, ns, name)
        .await
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("k").cloned())
}

async fn wait_cm_data(c: &Client, ns: &str, name: &str, want: &str, limit: Duration) {
    wait_for(&format!("{ns}/{name} k={want}"), limit, || async {
        (cm_data(c, ns, name).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_failover_syncs_change_made_during_gap() {
    let w = World::get().await;
    let ns = unique_ns("ops-lead");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    let extra = ["--leader-elect", "--lease-namespace", ns.as_str()];
    let mut a = Proc::start(
        w.tb.dir(),
        &format!("{ns}-a"),
        &run_args(&kc, &ns, &extra),
        &[],
    );
    let mut b = Proc::start(
        w.tb.dir(),
        &format!("{ns}-b"),
        &run_args(&kc, &ns, &extra),
        &[],
    );
    wait_ready(&mut a).await;
    wait_ready(&mut b).await;
    // Exactly one leader; both ready.
    let (leader_a, leader_b) = wait_for("one leader", SOON, || async {
        let la = a.metric("kcs_leader").await?;
        let lb = b.metric("kcs_leader").await?;
        (la + lb == 1.0).then_some((la, lb))
    })
    .await;
    let (mut leader, mut standby) = if leader_a == 1.0 { (a, b) } else { (b, a) };
    assert_eq!(leader_a + leader_b, 1.0);
    let src = configmap("cfg", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v1")]);
    create(&w.mgmt, &ns, &src).await;
    wait_cm_data(&w.project, &ns, "cfg", "v1", SOON).await;
    assert!(
        standby.log_text().contains("standby"),
        "standby waited for the lease"
    );

    leader.kill(); // SIGKILL: the lease is not released
    let killed = Instant::now();
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}})).await;
    wait_cm_data(&w.project, &ns, "cfg", "v2", Duration::from_secs(45)).await;
    let gap = killed.elapsed();
    eprintln!("failover: change synced {gap:?} after the leader was killed");
    // Default lease duration 12 s: the standby must be writing within 15 s of the crash.
    assert!(gap < Duration::from_secs(15), "failover took {gap:?}");
    assert_eq!(standby.metric("kcs_leader").await, Some(1.0));
    standby.assert_running();
    let lease: Lease = Api::namespaced(w.mgmt.clone(), &ns)
        .get("kubed-cross-sync")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert!(spec.lease_duration_seconds.unwrap() <= 15);
    drop(standby);
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_and_metrics_count_the_operations_done() {
    let w = World::get().await;
    let ns = unique_ns("ops-metrics");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    let mut d = Proc::start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
    // /livez answers at once; /readyz once the caches are synced and every cluster probed.
    let livez = wait_for("livez", SOON, || async { d.get("/livez").await }).await;
    assert_eq!(livez.0, 200);
    wait_ready(&mut d).await;
    let (_, ready) = d.get("/readyz").await.unwrap();
    for c in [MGMT, PROJECT, PROJECT2] {
        assert!(ready.contains(&format!("cluster {c}: up")), "{ready}");
    }

    // 1: a source to both followers → 2 creates.
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "v1")]),
    )
    .await;
    wait_cm_data(&w.project, &ns, "cfg", "v1", SOON).await;
    wait_cm_data(&w.project2, &ns, "cfg", "v1", SOON).await;
    // 2: a data change → 1 update per follower.
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}})).await;
    wait_cm_data(&w.project, &ns, "cfg", "v2", SOON).await;
    wait_cm_data(&w.project2, &ns, "cfg", "v2", SOON).await;
    // 3: a hand edit in project → 1 drift repair (an update).
    merge::<ConfigMap>(&w.project, &ns, "cfg", json!({"data": {"k": "hand"}})).await;
    wait_cm_data(&w.project, &ns, "cfg", "v2", SOON).await;
    // 4: an unmanaged same-named object in project2 → 1 conflict, no write.
    create(
        &w.project2,
        &ns,
        &configmap("mine", &[], &[], &[("k", "theirs")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("mine", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "ours")]),
    )
    .await;
    wait_event(&w.mgmt, &ns, "mine", "OriginConflict").await;

    let sample = |c: &str, op: &str| {
        format!(r#"kcs_writes_total{{cluster="{c}",kind="ConfigMap",operation="{op}"}}"#)
    };
    let want = [
        (sample(PROJECT, "create"), 1.0),
        (sample(PROJECT2, "create"), 1.0),
        (sample(PROJECT, "update"), 2.0),
        (sample(PROJECT2, "update"), 1.0),
        (
            format!(r#"kcs_drift_repairs_total{{cluster="{PROJECT}",kind="ConfigMap"}}"#),
            1.0,
        ),
        (
            format!(r#"kcs_conflicts_total{{cluster="{PROJECT2}",kind="ConfigMap"}}"#),
            1.0,
        ),
        (
            format!(r#"kcs_objects_in_sync{{cluster="{PROJECT}"}}"#),
            1.0,
        ),
        (format!(r#"kcs_cluster_up{{cluster="{PROJECT2}"}}"#), 1.0),
        ("kcs_leader".to_string(), 1.0),
    ];
    let deadline = Instant::now() + SOON;
    let body = loop {
        let body = d.get("/metrics").await.map(|r| r.1).unwrap_or_default();
        let wrong: Vec<_> = want
            .iter()
            .filter(|(s, v)| metric_value(&body, s) != Some(*v))
            .map(|(s, v)| format!("{s} = {:?}, want {v}", metric_value(&body, s)))
            .collect();
        if wrong.is_empty() {
            break body;
        }
        if Instant::now() > deadline {
            panic!("metrics differ from the operations done: {wrong:#?}\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        metric_value(&body, "kcs_propagation_seconds_count").unwrap() >= 2.0,
        "{body}"
    );
    assert!(
        metric_value(&body, &sample(MGMT, "create")).is_none(),
        "no local writes: {body}"
    );
    assert!(!body.contains("name=\""), "no object names in labels");
    assert!(
        !body.contains("kcs_reconcile_errors_total{"),
        "no errors: {body}"
    );
    d.assert_running();
    drop(d);
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_every_reason() {
    let w = World::get().await;
    let ns = unique_ns("ops-events");
    w.ns_everywhere(&ns).await;
    let mut kcv = kubeconfig_json(w.tb);
    add_dead_context(&mut kcv, "mc-dead-k8s");
    let kc = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &kcv);
    let kc = kc.display().to_string();
    // Sources first, so every reason is raised by the first pass.
    create(
        &w.project,
        &ns,
        &configmap("taken", &[], &[], &[("k", "theirs")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("taken", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "x")]),
    )
    .await;
    let no_ns = format!("{PROJECT}/no-such-namespace-{ns}");
    create(
        &w.mgmt,
        &ns,
        &configmap("nons", &[(SYNC_CONTEXTS, &no_ns)], &[], &[("k", "x")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("bad", &[(SYNC, "a in (b")], &[], &[("k", "x")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("far", &[(SYNC_CONTEXTS, "mc-dead-k8s")], &[], &[("k", "x")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("good", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "x")]),
    )
    .await;
    let mut d = Proc::start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--unreachable-after", "3s"]),
        &[],
    );
    for (name, reason) in [
        ("taken", "OriginConflict"),
        ("nons", "NamespaceMissing"),
        ("bad", "MalformedAnnotation"),
        ("far", "FollowerUnreachable"),
        ("good", "Synced"),
    ] {
        let ev = wait_for(&format!("{reason} on {name}"), SOON, || async {
            events_any(&w.mgmt, &ns, name, reason)
                .await
                .into_iter()
                .next()
        })
        .await;
        let want_type = if reason == "Synced" {
            "Normal"
        } else {
            "Warning"
        };
        assert_eq!(ev.type_.as_deref(), Some(want_type), "{reason}");
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some("kubed-cross-sync"),
            "{reason}"
        );
    }
    // Readiness does not wait for the dead follower: it is marked down.
    wait_ready(&mut d).await;
    let (_, ready) = d.get("/readyz").await.unwrap();
    assert!(ready.contains("cluster mc-dead-k8s: down"), "{ready}");
    assert_eq!(
        d.metric(r#"kcs_cluster_up{cluster="mc-dead-k8s"}"#).await,
        Some(0.0)
    );
    drop(d);
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_logs_intended_writes_and_changes_nothing() {
    let w = World::get().await;
    let ns = unique_ns("ops-dry");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    create(
        &w.mgmt,
        &ns,
        &configmap(
            "new",
            &[(SYNC_CONTEXTS, PROJECT), (SYNC, "")],
            &[],
            &[("k", "v")],
        ),
    )
    .await;
    // An orphan copy in project2 (its source does not exist): dry-run would delete it.
    let orphan = configmap(
        "gone",
        &[],
        &[
            (ORIGIN_NAME, "gone"),
            (ORIGIN_NAMESPACE, &ns),
            (ORIGIN_CLUSTER, "mc-mgmt"),
        ],
        &[("k", "old")],
    );
    create(&w.project2, &ns, &orphan).await;
    let audit: Vec<_> = [MGMT, PROJECT, PROJECT2]
        .iter()
        .map(|c| (c, w.tb.audit_log(c), audit_mark(&w.tb.audit_log(c))))
        .collect();

    let out = std::process::Command::new(daemon_binary())
        .args([
            "once",
            "--dry-run",
            "--kubeconfig-file",
            &kc,
            "--cluster-name",
            "mc-mgmt",
        ])
        .args(["--config-source-namespace", &ns])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("dry run: would apply") && log.contains("dry run: would delete"),
        "{log}"
    );
    let created_line = log
        .lines()
        .find(|l| l.contains("copy created") && l.contains(PROJECT))
        .unwrap_or_else(|| panic!("a create line for {PROJECT}: {log}"));
    assert!(
        created_line.contains(&format!("ConfigMap/{ns}/new")),
        "{created_line}"
    );

    // run --dry-run as well: wait until it has logged its intended writes.
    let mut d = Proc::start(w.tb.dir(), &ns, &run_args(&kc, &ns, &["--dry-run"]), &[]);
    wait_ready(&mut d).await;
    wait_for("run --dry-run logged", SOON, || async {
        let t = d.log_text();
        (t.contains("dry run: would delete") && t.contains("dry run: would apply")).then_some(())
    })
    .await;
    drop(d);

    assert!(get::<ConfigMap>(&w.project, &ns, "new").await.is_none());
    assert!(get::<ConfigMap>(&w.project2, &ns, "gone").await.is_some());
    for (c, path, mark) in audit {
        let writes = daemon_writes(&path, mark, &|n| n == ns);
        assert!(writes.is_empty(), "dry-run wrote in {c}: {writes:?}");
    }
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_each_state() {
    let w = World::get().await;
    let ns = unique_ns("ops-status");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    create(
        &w.mgmt,
        &ns,
        &configmap("insync", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("drift", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await;
    let (code, log) = once(&[
        "--kubeconfig-file",
        &kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        &ns,
    ]);
    assert_eq!(code, 0, "{log}");
    merge::<ConfigMap>(&w.project, &ns, "drift", json!({"data": {"k": "hand"}})).await;
    create(
        &w.mgmt,
        &ns,
        &configmap("later", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await;
    create(
        &w.project2,
        &ns,
        &configmap("taken", &[], &[], &[("k", "theirs")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("taken", &[(SYNC_CONTEXTS, PROJECT2)], &[], &[("k", "v")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("far", &[(SYNC_CONTEXTS, "mc-dead-k8s")], &[], &[("k", "v")]),
    )
    .await;
    create(
        &w.mgmt,
        &ns,
        &secret(
            "rel",
            "helm.sh/release.v1",
            &[(SYNC_CONTEXTS, PROJECT)],
            &[("k", b"v")],
        ),
    )
    .await;

    let mut kcv = kubeconfig_json(w.tb);
    add_dead_context(&mut kcv, "mc-dead-k8s");
    let kc2 = write_kubeconfig(w.tb.dir(), &format!("{ns}.kubeconfig"), &kcv);
    let run = |fmt: &str| {
        std::process::Command::new(daemon_binary())
            .args(["status", "--kubeconfig-file"])
            .arg(&kc2)
            .args([
                "--cluster-name",
                "mc-mgmt",
                "--config-source-namespace",
                &ns,
                "-o",
                fmt,
            ])
            .output()
            .unwrap()
    };
    let out = run("json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not all in sync: {stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let state = |name: &str| -> Vec<String> {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == name)
            .map(|r| r["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(state("insync"), ["in-sync"], "{stdout}");
    assert_eq!(state("drift"), ["drifted"], "{stdout}");
    assert_eq!(state("later"), ["missing"], "{stdout}");
    assert_eq!(state("taken"), ["conflict"], "{stdout}");
    assert_eq!(state("far"), ["target-unreachable"], "{stdout}");
    assert_eq!(state("rel"), ["skipped"], "{stdout}");
    let table = run("table");
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.starts_with("STATE"), "{t}");
    assert!(
        t.contains(
            "6 copies: 1 target-unreachable, 1 conflict, 1 missing, 1 drifted, 1 skipped, 1 in-sync"
        ),
        "{t}"
    );
    eprintln!("{t}");
    w.cleanup(&ns).await;
}

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

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_exec_token_is_renewed_after_the_401() {
    let w = World::get().await;
    let ns = unique_ns("ops-401");
    w.ns_everywhere(&ns).await;
    let (kc, count) = exec_kubeconfig(&w, &ns, "+1 hour", true);
    let mut d = Proc::start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await;
    wait_cm_data(&w.project, &ns, "cfg", "v", SOON).await;
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
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_expiring_exec_tokens_never_fail_a_sync() {
    let w = World::get().await;
    let ns = unique_ns("ops-token");
    w.ns_everywhere(&ns).await;
    let (kc, count) = exec_kubeconfig(&w, &ns, "+62 seconds", false);
    let mut d = Proc::start(w.tb.dir(), &ns, &run_args(&kc, &ns, &[]), &[]);
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
    .await;
    let start_calls = calls();
    // Several token lifetimes: one change every ~3 s, each must reach both followers.
    for i in 1..=6 {
        tokio::time::sleep(Duration::from_secs(3)).await; // let the ~2 s tokens expire
        merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": i.to_string()}})).await;
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
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_within_10s_and_releases_the_lease() {
    let w = World::get().await;
    let ns = unique_ns("ops-term");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    let mut d = Proc::start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--leader-elect", "--lease-namespace", &ns]),
        &[],
    );
    wait_ready(&mut d).await;
    wait_for("leader", SOON, || async {
        (d.metric("kcs_leader").await == Some(1.0)).then_some(())
    })
    .await;
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", "v")]),
    )
    .await;
    wait_cm_data(&w.project, &ns, "cfg", "v", SOON).await;
    let t = Instant::now();
    d.sigterm();
    let status = d.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    eprintln!("SIGTERM → exit in {took:?}");
    let status = status.unwrap_or_else(|| panic!("no exit within 10 s; log:\n{}", d.log_text()));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(
        d.log_text().contains("leader lease released"),
        "{}",
        d.log_text()
    );
    let lease: Lease = Api::namespaced(w.mgmt.clone(), &ns)
        .get("kubed-cross-sync")
        .await
        .unwrap();
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(holder.is_empty(), "lease still held by {holder:?}");
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_args_start_the_daemon() {
    let w = World::get().await;
    let ns = unique_ns("ops-seed");
    w.ns_everywhere(&ns).await;
    let kcf = format!("--kubeconfig-file={}", w.kc());
    let src_ns = format!("--config-source-namespace={ns}");
    // The seed Deployment's args, verbatim apart from the two paths/namespaces.
    let args = [
        "run",
        "--v=3",
        "--secure-port=8443",
        "--audit-log-path=-",
        "--tls-cert-file=/var/serving-cert/tls.crt",
        "--tls-private-key-file=/var/serving-cert/tls.key",
        "--use-kubeapiserver-fqdn-for-aks=true",
        "--enable-analytics=false",
        "--cluster-name=mc-mgmt",
        kcf.as_str(),
        src_ns.as_str(),
    ];
    let mut d = Proc::start(w.tb.dir(), &ns, &args, &[("RUST_LOG", "")]);
    wait_ready(&mut d).await;
    create(
        &w.mgmt,
        &ns,
        &configmap(
            "cross-acc-sync-demo",
            &[(SYNC_CONTEXTS, PROJECT)],
            &[],
            &[("k", "v")],
        ),
    )
    .await;
    wait_cm_data(&w.project, &ns, "cross-acc-sync-demo", "v", SOON).await;
    let log = d.log_text();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("accepted and ignored"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    for f in [
        "--secure-port",
        "--audit-log-path",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--use-kubeapiserver-fqdn-for-aks",
        "--enable-analytics",
    ] {
        assert!(warnings[0].contains(f), "{f}: {}", warnings[0]);
    }
    assert!(!log.contains("DEBUG"), "--v=3 is info level");
    drop(d);
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_logs_never_contain_secret_values() {
    use base64::Engine;
    let w = World::get().await;
    let ns = unique_ns("ops-leak");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    let v1 = format!("pw-{}-first", unique_ns("x"));
    let v2 = format!("pw-{}-second", unique_ns("y"));
    let mut d = Proc::start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--log-format", "json"]),
        &[("RUST_LOG", "trace")],
    );
    wait_ready(&mut d).await;
    let both = format!("{PROJECT},{PROJECT2}");
    let s = secret(
        "creds",
        "Opaque",
        &[(SYNC_CONTEXTS, &both), (SYNC, "")],
        &[("password", v1.as_bytes())],
    );
    create(&w.mgmt, &ns, &s).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let has = |want: &str| {
        let want = want.to_string();
        move |s: &Secret| {
            s.data
                .as_ref()
                .and_then(|d| d.get("password"))
                .map(|b| b.0.clone())
                == Some(want.clone().into_bytes())
        }
    };
    for c in [&w.project, &w.project2] {
        wait_for("secret copy", SOON, || async {
            get::<Secret>(c, &ns, "creds")
                .await
                .filter(has(&v1))
                .map(|_| ())
        })
        .await;
    }
    merge::<Secret>(
        &w.mgmt,
        &ns,
        "creds",
        json!({"data": {"password": b64.encode(&v2)}}),
    )
    .await;
    for c in [&w.project, &w.project2] {
        wait_for("secret update", SOON, || async {
            get::<Secret>(c, &ns, "creds")
                .await
                .filter(has(&v2))
                .map(|_| ())
        })
        .await;
    }
    d.sigterm();
    d.wait_exit(Duration::from_secs(10));
    let log = d.log_text();
    assert!(log.lines().count() > 100, "trace logging is on");
    assert!(log.lines().all(|l| l.starts_with('{')), "json log lines");
    let mut needles = vec![];
    for v in [&v1, &v2] {
        needles.push(v.to_string());
        needles.push(b64.encode(v));
        needles.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(v));
    }
    for c in w.tb.clusters() {
        needles.push(c.admin_token.clone());
    }
    for n in &needles {
        assert!(
            !log.contains(n.as_str()),
            "a secret value is in the log ({} bytes scanned)",
            log.len()
        );
    }
    w.cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_that_loses_its_lease_exits_3() {
    let w = World::get().await;
    let ns = unique_ns("ops-lost");
    w.ns_everywhere(&ns).await;
    let kc = w.kc();
    let mut d = Proc::start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--leader-elect", "--lease-namespace", &ns]),
        &[],
    );
    wait_ready(&mut d).await;
    wait_for("leader", SOON, || async {
        (d.metric("kcs_leader").await == Some(1.0)).then_some(())
    })
    .await;
    // Someone else takes the Lease (as a split brain would look from here).
    // MicroTime: exactly six fractional digits.
    let now = format!(
        "{}.000000Z",
        k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S")
    );
    let pp = kube::api::PatchParams {
        field_manager: Some("e2e-intruder".into()),
        ..Default::default()
    };
    Api::<Lease>::namespaced(w.mgmt.clone(), &ns)
        .patch(
            "kubed-cross-sync",
            &pp,
            &kube::api::Patch::Merge(json!({"spec": {
                "holderIdentity": "intruder",
                "leaseDurationSeconds": 3600,
                "acquireTime": now,
                "renewTime": now,
            }})),
        )
        .await
        .unwrap();
    let status = d
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running; log:\n{}", d.log_text()));
    assert_eq!(status.code(), Some(3), "{}", d.log_text());
    assert!(d.log_text().contains("leader lease lost"));
    w.cleanup(&ns).await;
}
