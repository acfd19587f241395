//! Leader election: failover to the standby after the leader is killed, SIGTERM releasing the
//! Lease, and a leader that finds its Lease taken exiting with code 3.
use super::*;

/// The mc-mgmt daemon for the sources of `ns`, electing its leader with a Lease in `ns`, once it
/// is ready and leading.
async fn leading_daemon(w: &World<'_>, ns: &str) -> Daemon {
    let kc = w.kubeconfig();
    let mut d = start(
        w.tb.dir(),
        ns,
        &run_args(&kc, ns, &["--leader-elect", "--lease-namespace", ns]),
        &[],
    );
    wait_ready(&mut d).await;
    wait_for("leader", SOON, || async {
        (d.metric("kcs_leader").await == Some(1.0)).then_some(())
    })
    .await;
    d
}

pub(crate) async fn leader_failover_syncs_change_made_during_gap() {
    let w = World::shared().await;
    let ns = unique_ns("ops-lead");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    let extra = ["--leader-elect", "--lease-namespace", ns.as_str()];
    let mut a = start(
        w.tb.dir(),
        &format!("{ns}-a"),
        &run_args(&kc, &ns, &extra),
        &[],
    );
    let mut b = start(
        w.tb.dir(),
        &format!("{ns}-b"),
        &run_args(&kc, &ns, &extra),
        &[],
    );
    wait_ready(&mut a).await;
    wait_ready(&mut b).await;
    // Exactly one leader; both ready (and running: a replica that exits has no metric).
    let (leader_a, leader_b) = wait_for("one leader", SOON, || async {
        let la = a.metric("kcs_leader").await?;
        let lb = b.metric("kcs_leader").await?;
        (la + lb == 1.0).then_some((la, lb))
    })
    .await;
    let (leader, mut standby) = if leader_a == 1.0 { (a, b) } else { (b, a) };
    assert_eq!(leader_a + leader_b, 1.0);
    synced_to_project(&w, &ns, "cfg", "v1").await;
    assert!(
        standby.log_text().contains("standby"),
        "standby waited for the lease"
    );

    leader.kill(); // SIGKILL: the lease is not released
    let killed = Instant::now();
    merge::<ConfigMap>(&w.mgmt, &ns, "cfg", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
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
    w.cleanup(&[&ns]).await;
}

/// Three replicas started together on a free Lease: exactly one leads, and none of them exits
/// over three lease lifetimes (a replica that "won" a Lease another also took would find itself
/// not the holder at its first renewal and exit 3, "lease lost").
pub(crate) async fn replicas_started_together_elect_one_leader_and_all_stay() {
    let w = World::shared().await;
    let ns = unique_ns("ops-race");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    let extra = [
        "--leader-elect",
        "--lease-namespace",
        ns.as_str(),
        "--lease-duration",
        "3s",
    ];
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            start(
                w.tb.dir(),
                &format!("{ns}-{n}"),
                &run_args(&kc, &ns, &extra),
                &[],
            )
        })
        .collect();
    for d in &mut ds {
        wait_ready(d).await;
    }
    wait_for("one leader", SOON, || async {
        (leaders(&ds).await? == 1.0).then_some(())
    })
    .await;
    // Past the first renewals (two thirds of the 3 s lease) and a lease lifetime beyond them.
    tokio::time::sleep(Duration::from_secs(9)).await;
    for d in &mut ds {
        d.assert_running();
    }
    assert_eq!(leaders(&ds).await, Some(1.0), "still exactly one leader");
    synced_to_project(&w, &ns, "cfg", "v1").await;
    let logs: Vec<String> = ds.iter().map(|d| d.log_text()).collect();
    let lost = logs.iter().filter(|l| l.contains("lease lost")).count();
    assert_eq!(
        lost,
        0,
        "a replica lost the lease:\n{}",
        logs.join("\n----\n")
    );
    drop(ds);
    w.cleanup(&[&ns]).await;
}

/// The sum of the replicas' `kcs_leader` gauges; `None` when one does not answer.
async fn leaders(ds: &[Daemon]) -> Option<f64> {
    let mut sum = 0.0;
    for d in ds {
        sum += d.metric("kcs_leader").await?;
    }
    Some(sum)
}

pub(crate) async fn sigterm_exits_within_10s_and_releases_the_lease() {
    let w = World::shared().await;
    let ns = unique_ns("ops-term");
    w.ns_everywhere(&ns).await;
    let mut d = leading_daemon(&w, &ns).await;
    synced_to_project(&w, &ns, "cfg", "v").await;
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
    w.cleanup(&[&ns]).await;
}

/// A SIGTERM that lands while the daemon is still starting is a clean stop as well: exit 0 at
/// once, no lease left held. The source's credential plugin takes 8 s, so the signal lands while
/// the daemon waits to join the election. Before the listener was made first thing, such a
/// signal killed the process outright (no exit code); a stop that waited for the start would
/// take 8 s.
pub(crate) async fn sigterm_during_start_up_is_a_clean_stop() {
    let w = World::shared().await;
    let ns = unique_ns("ops-early");
    w.ns_everywhere(&ns).await;
    let kc = slow_source_kubeconfig(&w, &ns, 8);
    let args = run_args(&kc, &ns, &["--leader-elect", "--lease-namespace", &ns]);
    let mut d = start(w.tb.dir(), &ns, &args, &[]);
    wait_for("the admin server", SOON, || async {
        d.log_text()
            .contains("admin server listening")
            .then_some(())
    })
    .await;
    let t = Instant::now();
    d.sigterm();
    let status = (d.wait_exit(Duration::from_secs(5)))
        .unwrap_or_else(|| panic!("no exit within 5 s; log:\n{}", d.log_text()));
    eprintln!("SIGTERM during start-up → exit in {:?}", t.elapsed());
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let lease = Api::<Lease>::namespaced(w.mgmt.clone(), &ns)
        .get_opt("kubed-cross-sync")
        .await
        .unwrap();
    let holder = (lease.and_then(|l| l.spec).and_then(|s| s.holder_identity)).unwrap_or_default();
    assert!(holder.is_empty(), "lease still held by {holder:?}");
    w.cleanup(&[&ns]).await;
}

/// The testbed's kubeconfig with the source's user replaced by an exec plugin that takes `secs`
/// before it answers with the admin token.
fn slow_source_kubeconfig(w: &World, ns: &str, secs: u32) -> String {
    let dir = w.tb.dir();
    let script = dir.join(format!("{ns}-slow.sh"));
    let body = format!(
        "#!/bin/sh\nsleep {secs}\n\
         printf '{{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"spec\":{{}},\"status\":{{\"token\":\"%s\"}}}}' \"$1\"\n"
    );
    std::fs::write(&script, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut kc = kubeconfig_json(w.tb);
    let contexts = kc["contexts"].as_array().unwrap();
    let source = contexts.iter().find(|c| c["name"] == MGMT).unwrap();
    let user = source["context"]["user"].clone();
    let mgmt = w.tb.clusters().iter().find(|c| c.name == MGMT).unwrap();
    for u in kc["users"].as_array_mut().unwrap() {
        if u["name"] == user {
            u["user"] = json!({"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": script.display().to_string(),
                "args": [mgmt.admin_token],
                "interactiveMode": "Never",
            }});
        }
    }
    write_kubeconfig(dir, &format!("{ns}-slow.kubeconfig"), &kc)
        .display()
        .to_string()
}

pub(crate) async fn leader_that_loses_its_lease_exits_3() {
    let w = World::shared().await;
    let ns = unique_ns("ops-lost");
    w.ns_everywhere(&ns).await;
    let mut d = leading_daemon(&w, &ns).await;
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
    w.cleanup(&[&ns]).await;
}
