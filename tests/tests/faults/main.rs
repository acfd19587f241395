//! Fault suite: the real sync-daemon against a testbed of its own (source + followers A and B)
//! while follower A's apiserver is stopped, its etcd killed, it is partitioned or slowed, while the
//! source's watch streams are cut again and again, while a cluster's etcd is compacted past the
//! daemon's resourceVersions, and while the daemon itself is SIGKILLed during a large sync. Every test ends by asserting the follower state equals the model (each
//! source's latest value, nothing else carrying our origin), that an unmanaged look-alike was
//! never modified, and that no Secret value reached the daemon's log.
//!
//! Short versions run in `make test`; `KCS_SOAK=1` (`make soak`) runs the long ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod case;
mod compaction;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use e2e::audit::{self, DAEMON_AGENT};
use e2e::daemon::Daemon;
use e2e::rng::{self, Rng};
use e2e::{ClientOpts, Fault, Testbed, TestbedOptions, env_u64, k8s, soak, unique_ns, wait_for};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, VersionMatch};
use tokio::sync::mpsc;

use case::{Case, fault_rng, latencies_b, median};
use compaction::{daemon_lists, expire_rvs, expired_watches, list_rv};

const SRC: &str = "fault-src-k8s";
const A: &str = "fault-a-k8s";
const B: &str = "fault-b-k8s";
const LOOKALIKE: &str = "lookalike";

/// The tests take turns: faults hit whole clusters of the suite's one testbed.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Follower A suffers `fault` (undone by `undo`) while every source changes: B's latency stays
/// within 2× (plus 20 ms for scheduler noise on a loaded 2-core machine), and A converges within
/// `back` of its return (when it serves reads again).
async fn follower_fault(prefix: &str, fault: Fault, undo: Fault, back: Duration) {
    let _turn = SERIAL.lock().await;
    let sources = if soak() { 200 } else { 20 };
    let mut case = Case::new(prefix, sources).await;
    let mut d = case.daemon("main");
    case.converged(A, Duration::from_secs(120)).await;
    case.converged(B, Duration::from_secs(120)).await;
    let base = latencies_b(&mut case, 10, "base").await;
    case.tb.fault(A, fault).await.unwrap();
    let outage = if soak() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(15)
    };
    let start = Instant::now();
    let mut during = Vec::new();
    let mut round = 1;
    while start.elapsed() < outage {
        case.change_all(round).await;
        during.extend(latencies_b(&mut case, 3, &format!("out{round}")).await);
        round += 1;
        d.check_alive().unwrap();
    }
    case.tb.fault(A, undo).await.unwrap();
    // The return is when A serves reads again: after an etcd restart, v1.20's apiserver takes
    // from 0 to ~10 s to reconnect, which is not the daemon's to shorten.
    let undone = Instant::now();
    let api = Api::<ConfigMap>::namespaced(case.a.clone(), &case.ns);
    wait_for("A serves reads again", Duration::from_secs(60), || async {
        api.list(&ListParams::default().limit(1))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let answered = undone.elapsed();
    let took = case.converged(A, Duration::from_secs(120)).await;
    let (mb, md) = (median(&base), median(&during));
    eprintln!(
        "{prefix}: B p50 {mb:.1} ms before, {md:.1} ms during; A answered {answered:?} after the fault was undone and converged {took:?} after that"
    );
    assert!(
        md <= 2.0 * mb + 20.0,
        "B slowed down while A was out: {md:.1} ms vs {mb:.1} ms"
    );
    assert!(
        took <= back,
        "A took {took:?} to converge after it returned (limit {back:?})"
    );
    case.final_checks().await;
    d.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_apiserver_stopped() {
    follower_fault("f-stop", Fault::Stop, Fault::Start, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_etcd_killed() {
    follower_fault(
        "f-etcd",
        Fault::KillEtcd,
        Fault::StartEtcd,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_partitioned() {
    follower_fault(
        "f-part",
        Fault::Partition,
        Fault::Heal,
        Duration::from_secs(10),
    )
    .await;
}

/// 500 ms each way on A (a write costs ≥ 1 s): B unaffected, A keeps converging while slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_slow() {
    let _turn = SERIAL.lock().await;
    let mut case = Case::new("f-slow", 10).await;
    let mut d = case.daemon("main");
    case.converged(A, Duration::from_secs(120)).await;
    let base = latencies_b(&mut case, 10, "base").await;
    case.tb
        .fault(A, Fault::Latency(Duration::from_millis(500)))
        .await
        .unwrap();
    case.change_all(1).await;
    let during = latencies_b(&mut case, 10, "slow").await;
    let took = case.converged(A, Duration::from_secs(60)).await;
    d.check_alive().unwrap();
    case.tb.fault(A, Fault::Heal).await.unwrap();
    let (mb, md) = (median(&base), median(&during));
    eprintln!(
        "f-slow: B p50 {mb:.1} ms before, {md:.1} ms during; A converged in {took:?} while slow"
    );
    assert!(
        md <= 2.0 * mb + 20.0,
        "B slowed down with A slow: {md:.1} ms vs {mb:.1} ms"
    );
    case.final_checks().await;
    d.stop(Duration::from_secs(5));
}

/// The source's watch streams are cut over and over (partition/heal of the source's proxy)
/// while sources change through a direct connection: no update is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_watch_cut_repeatedly() {
    let _turn = SERIAL.lock().await;
    let mut rng = fault_rng();
    let mut case = Case::new("f-cut", 10).await;
    let mut d = case.daemon("main");
    case.converged(A, Duration::from_secs(120)).await;
    let cycles = if soak() { 40 } else { 6 };
    let names: Vec<String> = case.model.keys().cloned().collect();
    for i in 0..cycles {
        case.tb.fault(SRC, Fault::Partition).await.unwrap();
        for _ in 0..3 {
            let n = &names[rng.below(names.len() as u64) as usize];
            case.set(n, &format!("cut{i}")).await;
        }
        tokio::time::sleep(Duration::from_millis(200 + rng.below(800))).await;
        case.tb.fault(SRC, Fault::Heal).await.unwrap();
        let n = &names[rng.below(names.len() as u64) as usize];
        case.set(n, &format!("healed{i}")).await;
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        d.check_alive().unwrap();
    }
    case.final_checks().await;
    d.stop(Duration::from_secs(5));
}

/// SIGKILL the daemon at random moments during a large initial sync (sources also change
/// between restarts); after the last restart everything converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_during_large_sync() {
    let _turn = SERIAL.lock().await;
    let mut rng = fault_rng();
    let (sources, kills) = if soak() { (1000, 20) } else { (200, 3) };
    let mut case = Case::new("f-kill", sources).await;
    for k in 0..kills {
        let d = case.daemon(&format!("run{k}"));
        tokio::time::sleep(Duration::from_millis(300 + rng.below(3000))).await;
        d.kill();
        for _ in 0..5 {
            let i = rng.below(sources as u64);
            case.set(&format!("src-{i:04}"), &format!("k{k}")).await;
        }
    }
    let d = case.daemon("last");
    let took = wait_for(
        "convergence after the last restart",
        Duration::from_secs(300),
        || async {
            let a = case.diff(&case.a, true).await;
            let b = case.diff(&case.b, false).await;
            (a.is_none() && b.is_none()).then(|| d.started().elapsed())
        },
    )
    .await;
    eprintln!("f-kill: {sources} sources × 2 followers converged {took:?} after the last restart");
    case.final_checks().await;
    d.stop(Duration::from_secs(5));
}

/// Item 3, expired resourceVersion, source side: while the source is partitioned, sources are
/// updated, created and deleted, then the source's etcd is compacted past all of it and its
/// apiserver restarted; after the heal the daemon's source watches get 410, re-list, and both
/// followers end equal to the model (no missed update, create or delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_rv_expired_by_compaction() {
    let _turn = SERIAL.lock().await;
    let mut case = Case::new("f-compact-src", 10).await;
    let mut d = case.daemon("main");
    case.converged(A, Duration::from_secs(120)).await;
    case.converged(B, Duration::from_secs(120)).await;
    let old_rv = list_rv(&case.src, &case.ns).await;
    let mut lists = audit::Mark::now(&case.tb.audit_log(SRC));
    let expired_before = expired_watches(d.log(), SRC, "configmaps");

    case.tb.fault(SRC, Fault::Partition).await.unwrap();
    case.change_all(1).await;
    let api = Api::<ConfigMap>::namespaced(case.src.clone(), &case.ns);
    api.delete("src-0009", &DeleteParams::default())
        .await
        .unwrap();
    case.model.remove("src-0009");
    let followers = vec![A.to_string(), B.to_string()];
    k8s::create_all(
        &case.src,
        vec![k8s::load_configmap(&case.ns, "src-new", &followers, "new")],
        1,
    )
    .await
    .unwrap();
    case.model.insert("src-new".into(), "new".into());
    case.change_all(2).await;
    expire_rvs(&case, SRC, &old_rv).await;
    case.tb.fault(SRC, Fault::Heal).await.unwrap();

    let took = case.converged(A, Duration::from_secs(60)).await;
    d.check_alive().unwrap();
    case.final_checks().await;
    let expired = expired_watches(d.log(), SRC, "configmaps") - expired_before;
    let relisted = daemon_lists(&mut lists);
    eprintln!(
        "f-compact-src: A converged {took:?} after the heal; {expired} watch(es) got 410, {relisted} re-list(s)"
    );
    assert!(
        expired >= 1,
        "the daemon's source watch never got 410 Expired: the fault had no effect ({})",
        d.log().display()
    );
    assert!(
        relisted >= 1,
        "no re-list of the source's ConfigMaps after 410"
    );
    d.stop(Duration::from_secs(5));
}

/// Item 3, expired resourceVersion, follower side: while A is partitioned, one copy there is
/// edited and another deleted by hand (through a direct client) and the sources change; A's
/// etcd is compacted past it and its apiserver restarted. After the heal the daemon's watch of
/// A's copies gets 410 and re-lists, and the drift is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_rv_expired_by_compaction() {
    let _turn = SERIAL.lock().await;
    let mut case = Case::new("f-compact-a", 10).await;
    let mut d = case.daemon("main");
    case.converged(A, Duration::from_secs(120)).await;
    case.converged(B, Duration::from_secs(120)).await;
    let old_rv = list_rv(&case.a, &case.ns).await;
    let mut lists = audit::Mark::now(&case.tb.audit_log(A));
    let expired_before = expired_watches(d.log(), A, "configmap copies");

    case.tb.fault(A, Fault::Partition).await.unwrap();
    let a_direct =
        Api::<ConfigMap>::namespaced(case.tb.client(A, ClientOpts::direct()).await, &case.ns);
    let edit = serde_json::json!({ "data": { "v": "edited-by-hand" } });
    a_direct
        .patch("src-0003", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    a_direct
        .delete("src-0004", &DeleteParams::default())
        .await
        .unwrap();
    case.set("src-0005", "while-a-was-out").await;
    expire_rvs(&case, A, &old_rv).await;
    case.tb.fault(A, Fault::Heal).await.unwrap();

    let took = case.converged(A, Duration::from_secs(60)).await;
    d.check_alive().unwrap();
    case.final_checks().await;
    let expired = expired_watches(d.log(), A, "configmap copies") - expired_before;
    let relisted = daemon_lists(&mut lists);
    eprintln!(
        "f-compact-a: A repaired {took:?} after the heal; {expired} watch(es) got 410, {relisted} re-list(s)"
    );
    assert!(
        expired >= 1,
        "the daemon's watch of A's copies never got 410 Expired: the fault had no effect ({})",
        d.log().display()
    );
    assert!(relisted >= 1, "no re-list of A's copies after 410");
    d.stop(Duration::from_secs(5));
}
