//! sync-daemon under follower outages, on a testbed of its own (faults would disturb the shared
//! one): a stopped or partitioned follower never delays the other, and catches up on return.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::time::{Duration, Instant};

use e2e::k8s::*;
use e2e::world::World;
use e2e::{Fault, MGMT, PROJECT, PROJECT2, Testbed, TestbedOptions, unique_ns};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use serde_json::json;

/// The healthy follower must see a change this fast even while the other one is down.
const ON_TIME: Duration = Duration::from_secs(5);

fn has_value(v: &'static str) -> impl Fn(&ConfigMap) -> bool {
    move |c: &ConfigMap| c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some(v)
}

async fn update_and_check(
    label: &str,
    clients: &[(&str, &Client)],
    mgmt: &Client,
    ns: &str,
    value: &'static str,
    down: &str,
    down_client: &Client,
) {
    let t0 = Instant::now();
    merge::<ConfigMap>(mgmt, ns, "outage", json!({"data": {"v": value}}))
        .await
        .unwrap();
    let healthy: Vec<(&str, &Client)> = clients
        .iter()
        .filter(|(c, _)| *c != down && *c != MGMT)
        .copied()
        .collect();
    let nss = [ns];
    let want: Vec<(&str, &[&str])> = healthy.iter().map(|(c, _)| (*c, &nss[..])).collect();
    wait_copies::<ConfigMap, _>(
        &format!("{label}: healthy follower updated"),
        &healthy,
        ns,
        "outage",
        &want,
        has_value(value),
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took < ON_TIME,
        "{label}: healthy follower took {took:?} while {down} was down"
    );
    // The unreachable follower still has the old copy (nothing could reach it).
    let _ = down_client;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_outage_isolated_and_caught_up() {
    let tb = Testbed::up(TestbedOptions::default_three(false))
        .await
        .expect("own testbed");
    let w = World::on(&tb).await;
    let (mgmt, project, project2) = (&w.mgmt, &w.project, &w.project2);
    let all = w.all();
    let ns = unique_ns("kcs-fault");
    w.ns_everywhere(&ns).await;
    let ctxs = format!("{PROJECT},{PROJECT2}");
    create(
        mgmt,
        &ns,
        &configmap("outage", &[(SYNC_CONTEXTS, &ctxs)], &[], &[("v", "0")]),
    )
    .await
    .unwrap();
    let mut d = w.mgmt_daemon("faults", &ns, &[]);
    let both: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];
    wait_copies::<ConfigMap, _>("initial copies", &all, &ns, "outage", both, has_value("0")).await;

    // 1. mc-project2's apiserver stopped (connections refused).
    tb.fault(PROJECT2, Fault::Stop)
        .await
        .expect("stop apiserver");
    update_and_check("stopped", &all, mgmt, &ns, "1", PROJECT2, project2).await;
    // A second change while it is still down, then it comes back and catches up.
    update_and_check(
        "stopped, 2nd change",
        &all,
        mgmt,
        &ns,
        "2",
        PROJECT2,
        project2,
    )
    .await;
    tb.fault(PROJECT2, Fault::Start)
        .await
        .expect("start apiserver");
    let project2 = tb.admin_client(PROJECT2).await;
    let all = [(MGMT, mgmt), (PROJECT, project), (PROJECT2, &project2)];
    wait_copies::<ConfigMap, _>(
        "stopped follower caught up",
        &all,
        &ns,
        "outage",
        both,
        has_value("2"),
    )
    .await;

    // 2. mc-project2 partitioned (connections accepted, nothing answers: requests hang).
    tb.fault(PROJECT2, Fault::Partition)
        .await
        .expect("partition");
    update_and_check("partitioned", &all, mgmt, &ns, "3", PROJECT2, &project2).await;
    tb.fault(PROJECT2, Fault::Heal).await.expect("heal");
    wait_copies::<ConfigMap, _>(
        "partitioned follower caught up",
        &all,
        &ns,
        "outage",
        both,
        has_value("3"),
    )
    .await;
    d.assert_running();
    let log = d.log_text();
    assert!(!log.contains("panicked"), "daemon panicked:\n{log}");
}
