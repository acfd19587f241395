//! Issue 7, fault item 4: 1,000 seeded random operations — sources created, updated and deleted,
//! sync annotations changed, namespaces created and relabelled, copies edited and deleted by
//! hand, unmanaged look-alikes made — with follower faults (partition, apiserver stop, etcd kill,
//! latency) and daemon SIGKILLs interleaved, against the real sync-daemon and a testbed of its
//! own (source + followers A and B). At three checkpoints and at the end, every cluster must
//! equal the model (`model_world`): every expected copy with the right content and origin, no
//! other copy of ours, every look-alike and source untouched, no Secret value in the logs.
//!
//! Replay a run: `KCS_MODEL_SEED=<printed seed>` (KCS_FAULT_SEED is honoured too);
//! `KCS_MODEL_OPS=<n>` changes the count (default 1,000; 5,000 with KCS_SOAK=1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_io;
mod model_world;
mod report;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::daemon::Daemon;
use e2e::rng::{Rng, random_u64};
use e2e::{ClientOpts, Testbed, TestbedOptions, env_u64, kubeconfig, soak};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use model_io::*;
use model_world::*;
use serde_json::{Value, json};
use world::{CONVERGE, World};

/// Wall-clock time as in the daemon's log lines (HH:MM:SS.mmm, UTC), to line the two up.
fn utc_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The tests of this binary take turns: each runs a testbed of its own on 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_with_faults_end_in_the_model_state() {
    let _turn = SERIAL.lock().await;
    let seed = env_u64(&["KCS_MODEL_SEED", "KCS_FAULT_SEED"]).unwrap_or_else(|| random_u64() >> 1);
    let total =
        env_u64(&["KCS_MODEL_OPS"]).map_or(if soak() { 5000 } else { 1000 }, |n| n as usize);
    eprintln!("model test seed: KCS_MODEL_SEED={seed} ({total} operations)");
    let started = Instant::now();
    let mut w = World::up(seed).await;
    // Namespace labels come from their own generator, so the op sequence depends on the seed only.
    let mut plan = Plan::new(seed, total);
    let mut setup = Plan::new(seed ^ 0x5eed, 0);
    let mut model = w.initial(&mut setup).await;
    w.start_daemon();
    let up = started.elapsed();
    let mut pace = Rng::new(seed ^ 0x9ace);
    let mut ops = Vec::new();
    let mut checkpoints = Vec::new();
    let ops_started = Instant::now();
    while let Some(op) = plan.next(&model) {
        let line = if matches!(op, Op::Checkpoint) {
            let took = w
                .converge(&model, &format!("checkpoint after op {}", plan.done))
                .await;
            checkpoints.push(took);
            format!("converged in {took:?}")
        } else {
            w.apply(&op, &mut model).await
        };
        w.oplog
            .push(format!("{} #{} {op} -> {line}", utc_now(), plan.done));
        ops.push(op);
        if let Some(d) = w.daemon.as_mut()
            && let Some(status) = d.exited()
        {
            let why = vec![(String::new(), format!("the daemon exited: {status}"))];
            w.fail(&model, &format!("after op {}", plan.done), &why);
        }
        // A few ms between ops, so faults and restarts overlap work in flight.
        tokio::time::sleep(Duration::from_millis(pace.below(15))).await;
    }
    let ops_took = ops_started.elapsed();
    let last = w.converge(&model, "final state").await;
    w.scan_logs(&model);
    let tally = plan::tally(ops.iter());
    let missed = w
        .oplog
        .iter()
        .filter(|l| l.ends_with("no copy there yet"))
        .count();
    eprintln!(
        "model: seed {seed}: {} ops in {ops_took:.1?} (testbed up {up:.1?}), checkpoints converged in {checkpoints:?}, final in {last:?}; total {:.1?}",
        plan.done,
        started.elapsed()
    );
    eprintln!(
        "model: {tally:?}; {missed} hand ops met no copy yet; end: {} sources, {} look-alikes, {} copies",
        model.sources.len(),
        model.lookalikes.len(),
        model.expected().len()
    );
}

/// The reduced reproduction of what the random run found (seed 8279284278087224204, ops
/// #978-#979): a copy is deleted by hand and a person's own object of that name is created in
/// its place while the daemon still has the copy in its cache; the next source change must not
/// take the person's object over. A 500 ms latency on the follower's proxy holds back the
/// daemon's copy watch (the DELETE event) and its writes; the test's own writes go direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_made_in_place_of_a_deleted_copy_is_never_taken_over() {
    let _turn = SERIAL.lock().await;
    const R_SRC: &str = "repro-src-k8s";
    const R_A: &str = "repro-a-k8s";
    let opts = TestbedOptions::named(&[R_SRC, R_A], false);
    let tb = Testbed::up(opts).await.expect("repro testbed");
    let src = tb.admin_client(R_SRC).await;
    let a = tb.client(R_A, ClientOpts::direct()).await;
    let ns = "r-src";
    create_ns(&src, ns, &Labels::new()).await;
    create_ns(&a, ns, &Labels::new()).await;
    let name = "shared";
    let cms = Api::<ConfigMap>::namespaced(src.clone(), ns);
    let source = json!({
        "metadata": {"name": name, "annotations": {SYNC_CONTEXTS: R_A}},
        "data": {"v": "1"},
    });
    create(&src, Kind::ConfigMap, ns, source).await.unwrap();
    let kubeconfig = tb.dir().join("kubeconfig-repro");
    kubeconfig::write_subset(
        &tb.kubeconfig_path(),
        R_SRC,
        &[R_A.to_string()],
        &kubeconfig,
    )
    .unwrap();
    let log = tb.dir().join("sync-daemon-repro.log");
    let mut d = start_daemon(&kubeconfig, &log, "repro");
    let copies = Api::<ConfigMap>::namespaced(a.clone(), ns);
    e2e::wait_for(
        "the copy in the follower",
        Duration::from_secs(60),
        || async {
            let c = copies.get_opt(name).await.ok().flatten()?;
            (c.data.as_ref()?.get("v")? == "1").then_some(())
        },
    )
    .await;

    tb.fault(R_A, e2e::Fault::Latency(Duration::from_millis(500)))
        .await
        .unwrap();
    copies.delete(name, &DeleteParams::default()).await.unwrap();
    let mine = json!({"metadata": {"name": name}, "data": {"v": "mine"}});
    let rv = create(&a, Kind::ConfigMap, ns, mine).await.unwrap();
    let patch = Patch::Merge(json!({"data": {"v": "2"}}));
    cms.patch(name, &PatchParams::default(), &patch)
        .await
        .unwrap();

    // Either outcome is visible: the object taken over, or the conflict reported (the Warning
    // Event `OriginConflict` on the source).
    let events = Api::<Event>::namespaced(src.clone(), ns);
    let now = e2e::wait_for(
        "the daemon's answer to the source change",
        Duration::from_secs(30),
        || async {
            let o = copies.get_opt(name).await.ok().flatten()?;
            let conflict = events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("OriginConflict")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                });
            (o.resource_version().as_deref() != Some(rv.as_str()) || conflict).then_some(o)
        },
    )
    .await;
    tb.fault(R_A, e2e::Fault::Heal).await.unwrap();
    assert!(
        d.exited().is_none(),
        "the daemon exited; log: {}",
        log.display()
    );
    // The daemon logs its write once the (delayed) answer is in.
    let lines = e2e::wait_for("the daemon's log line", Duration::from_secs(15), || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let writes: Vec<String> = text
            .lines()
            // Reconcile's own lines (the write step's and the report's), not the workers'.
            .filter(|l| {
                l.contains("sync_daemon::controller::write")
                    || l.contains("sync_daemon::controller::reconcile")
            })
            .map(str::to_string)
            .collect();
        (writes.len() >= 2).then_some(writes)
    })
    .await;
    assert_eq!(
        now.resource_version().as_deref(),
        Some(rv.as_str()),
        "the daemon modified an object it did not make: labels now {:?}, data {:?}; its log:\n{}",
        now.labels(),
        now.data,
        lines.join("\n")
    );
}
