//! Fault suite: the real sync-daemon against a testbed of its own (source + followers A and B)
//! while follower A's apiserver is stopped, its etcd killed, it is partitioned or slowed, while the
//! source's watch streams are cut again and again, while a cluster's etcd is compacted past the
//! daemon's resourceVersions, and while the daemon itself is SIGKILLed during a large sync. Every test ends by asserting the follower state equals the model (each
//! source's latest value, nothing else carrying our origin), that an unmanaged look-alike was
//! never modified, and that no Secret value reached the daemon's log.
//!
//! Short versions run in `make test`; `KCS_SOAK=1` (`make soak`) runs the long ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/bin/bench/audit.rs"]
#[allow(dead_code)]
mod audit;
#[path = "../src/bin/bench/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "../src/bin/bench/load.rs"]
#[allow(dead_code)]
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use e2e::{Fault, Testbed, TestbedOptions, unique_ns, wait_for};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, VersionMatch,
};
use tokio::sync::mpsc;

const SRC: &str = "fault-src-k8s";
const A: &str = "fault-a-k8s";
const B: &str = "fault-b-k8s";
const LOOKALIKE: &str = "lookalike";

fn soak() -> bool {
    std::env::var_os("KCS_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The suite's own testbed (faults hit whole clusters, so the tests take turns: `SERIAL`).
fn bed() -> &'static Testbed {
    static BED: OnceLock<Testbed> = OnceLock::new();
    BED.get_or_init(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let opts = TestbedOptions::named(&[SRC, A, B], false);
                rt.block_on(Testbed::up(opts)).expect("fault testbed")
            })
            .join()
            .expect("testbed start-up thread")
        })
    })
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client that bypasses the fault proxy (for writes while the source is partitioned).
async fn direct_client(tb: &Testbed, cluster: &str) -> kube::Client {
    let mut cfg = tb.admin_config(cluster).await;
    cfg.cluster_url = tb.cluster(cluster).direct_server.parse().unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// One test's world: its namespace in every cluster, the sources (name → latest `v`), a Secret
/// source with a distinctive value, an unmanaged look-alike in A, and the daemon(s) it ran.
struct Case {
    tb: &'static Testbed,
    ns: String,
    src: kube::Client,
    a: kube::Client,
    b: kube::Client,
    model: BTreeMap<String, String>,
    secret_value: String,
    lookalike_rv: String,
    logs: Vec<PathBuf>,
    kubeconfig: PathBuf,
}

impl Case {
    async fn new(prefix: &str, sources: usize) -> Case {
        let tb = bed();
        for c in [SRC, A, B] {
            // Whatever an earlier (failed) test left behind: everything up and healed.
            tb.fault(c, Fault::StartEtcd).await.unwrap();
            tb.fault(c, Fault::Start).await.unwrap();
            tb.fault(c, Fault::Heal).await.unwrap();
        }
        let ns = unique_ns(prefix);
        let src = direct_client(tb, SRC).await;
        let a = tb.admin_client(A).await;
        let b = tb.admin_client(B).await;
        for c in [&src, &a, &b] {
            load::ensure_ns(c, &ns).await.unwrap();
        }
        let followers = vec![A.to_string(), B.to_string()];
        let mut model = BTreeMap::new();
        let mut objs = Vec::new();
        for i in 0..sources {
            let name = format!("src-{i:04}");
            objs.push(load::config_map(&ns, &name, &followers, "v0"));
            model.insert(name, "v0".to_string());
        }
        objs.push(load::config_map(&ns, LOOKALIKE, &followers, "v0"));
        load::create_all(&src, objs, 8).await.unwrap();
        // The look-alike in A: same name, no origin labels. Never to be touched.
        let mine = ConfigMap {
            metadata: ObjectMeta {
                name: Some(LOOKALIKE.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("v".into(), "hand-made".into())])),
            ..Default::default()
        };
        let made = Api::<ConfigMap>::namespaced(a.clone(), &ns)
            .create(&PostParams::default(), &mine)
            .await
            .unwrap();
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).unwrap();
        let secret_value = format!("fault-secret-{}", hex(&raw));
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("creds".into()),
                annotations: Some(BTreeMap::from([(
                    load::SYNC_CONTEXTS.to_string(),
                    followers.join(","),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "password".into(),
                ByteString(secret_value.clone().into_bytes()),
            )])),
            ..Default::default()
        };
        Api::<Secret>::namespaced(src.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let kubeconfig = tb.dir().join(format!("kubeconfig-{ns}"));
        daemon::subset_kubeconfig(&tb.kubeconfig_path(), SRC, &followers, &kubeconfig).unwrap();
        Case {
            tb,
            ns,
            src,
            a,
            b,
            model,
            secret_value,
            lookalike_rv: made.metadata.resource_version.unwrap_or_default(),
            logs: Vec::new(),
            kubeconfig,
        }
    }

    fn daemon(&mut self, tag: &str) -> daemon::Daemon {
        let log = self
            .tb
            .dir()
            .join(format!("sync-daemon-{}-{tag}.log", self.ns));
        self.logs.push(log.clone());
        daemon::Daemon::start(&self.kubeconfig, &self.ns, "30s", &log).unwrap()
    }

    /// Sets source `name` to `value` (through the direct client) and records it in the model.
    async fn set(&mut self, name: &str, value: &str) -> Instant {
        let patch = serde_json::json!({ "data": { "v": value } });
        Api::<ConfigMap>::namespaced(self.src.clone(), &self.ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        self.model.insert(name.to_string(), value.to_string());
        Instant::now()
    }

    /// Changes every source once (round `r`).
    async fn change_all(&mut self, r: usize) {
        let names: Vec<String> = self.model.keys().cloned().collect();
        for n in names {
            self.set(&n, &format!("v{r}")).await;
        }
    }

    /// None when `client`'s copies equal the model; else what differs.
    async fn diff(&self, client: &kube::Client, is_a: bool) -> Option<String> {
        let lp = ListParams::default().labels(&format!("{}={}", load::ORIGIN_NAMESPACE, self.ns));
        let got = match Api::<ConfigMap>::namespaced(client.clone(), &self.ns)
            .list(&lp)
            .await
        {
            Ok(l) => l.items,
            Err(e) => return Some(format!("list failed: {e}")),
        };
        let have: BTreeMap<String, String> = got
            .into_iter()
            .map(|c| {
                let v = c.data.and_then(|d| d.get("v").cloned()).unwrap_or_default();
                (c.metadata.name.unwrap_or_default(), v)
            })
            .collect();
        let mut want = self.model.clone();
        if !is_a {
            want.insert(LOOKALIKE.into(), "v0".into());
        }
        let wrong: Vec<_> = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: want {v:?}, have {:?}", have.get(k)))
            .chain(
                have.keys()
                    .filter(|k| !want.contains_key(*k))
                    .map(|k| format!("{k}: unexpected")),
            )
            .take(5)
            .collect();
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }

    /// Waits (polling, with a deadline) until follower A or B equals the model; returns how long.
    async fn converged(&self, cluster: &str, deadline: Duration) -> Duration {
        let start = Instant::now();
        let client = if cluster == A { &self.a } else { &self.b };
        loop {
            let Some(last) = self.diff(client, cluster == A).await else {
                return start.elapsed();
            };
            if start.elapsed() > deadline {
                panic!("{cluster} did not converge within {deadline:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The closing assertions every test makes.
    async fn final_checks(&self) {
        self.converged(A, Duration::from_secs(60)).await;
        self.converged(B, Duration::from_secs(60)).await;
        let mine = Api::<ConfigMap>::namespaced(self.a.clone(), &self.ns)
            .get(LOOKALIKE)
            .await
            .unwrap();
        assert_eq!(
            mine.metadata.resource_version.as_deref(),
            Some(self.lookalike_rv.as_str()),
            "the unmanaged look-alike in A was modified"
        );
        let copy = Api::<Secret>::namespaced(self.b.clone(), &self.ns)
            .get("creds")
            .await
            .unwrap();
        let want = ByteString(self.secret_value.clone().into_bytes());
        assert_eq!(
            copy.data.and_then(|d| d.get("password").cloned()),
            Some(want)
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.secret_value);
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            assert!(
                !text.contains(&self.secret_value) && !text.contains(&b64),
                "a Secret value is in the daemon log {}",
                log.display()
            );
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A small deterministic generator seeded from the OS (the seed is printed for reruns).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("KCS_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).unwrap();
                u64::from_le_bytes(b) | 1
            });
        eprintln!("fault suite seed: KCS_FAULT_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Milliseconds from each update of source `probe` to its arrival in follower B.
async fn latencies_b(case: &mut Case, rounds: usize, tag: &str) -> Vec<f64> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watch = load::watch_value(case.b.clone(), &case.ns, "src-0000", 0, tx);
    let mut out = Vec::new();
    for i in 0..rounds {
        let value = format!("{tag}-{i}");
        let sent = case.set("src-0000", &value).await;
        let arrived = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match rx.recv().await {
                    Some((_, v, at)) if v == value => return at,
                    Some(_) => {}
                    None => panic!("watch on B ended"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("update {value} did not reach B within 30 s"));
        out.push(arrived.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Follower A suffers `fault` (undone by `undo`) while every source changes: B's latency stays
/// within 2× (plus 20 ms for scheduler noise on a loaded 2-core machine), and A converges within
/// `back` of its return.
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
    let took = case.converged(A, Duration::from_secs(120)).await;
    let (mb, md) = (median(&base), median(&during));
    eprintln!(
        "{prefix}: B p50 {mb:.1} ms before, {md:.1} ms during; A converged {took:?} after return"
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
    let mut rng = Rng::new();
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
    let mut rng = Rng::new();
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
            (a.is_none() && b.is_none()).then(|| d.started.elapsed())
        },
    )
    .await;
    eprintln!("f-kill: {sources} sources × 2 followers converged {took:?} after the last restart");
    case.final_checks().await;
    d.stop(Duration::from_secs(5));
}

/// How many times the daemon logged that a watch `what` on `cluster` ended with 410 Expired.
fn expired_watches(log: &std::path::Path, cluster: &str, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("too old resource version"))
        .filter(|l| l.contains(cluster) && l.contains(&format!("\"{what}\"")))
        .count()
}

/// Compacts `cluster`'s etcd past `old_rv` and restarts its apiserver, so nothing can serve a
/// watch from an RV before the compaction any more. The restart is part of the fault: measured
/// on 1.20, after a compaction alone the apiserver's watch cache still served a watch from a
/// compacted RV out of its window (events 203..206 after compacting at 206); a fresh cache
/// starts at the current revision and answers an older RV with 410 "too old resource version",
/// as after a real apiserver restart or a failover to another apiserver.
async fn expire_rvs(case: &Case, cluster: &str, old_rv: &str) {
    case.tb.fault(cluster, Fault::CompactEtcd).await.unwrap();
    // The compaction took effect: a list at exactly the old RV is 410 Expired.
    let direct = direct_client(case.tb, cluster).await;
    let at_old = ListParams {
        resource_version: Some(old_rv.to_string()),
        version_match: Some(VersionMatch::Exact),
        ..Default::default()
    };
    match Api::<ConfigMap>::namespaced(direct, &case.ns)
        .list(&at_old)
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 410, "list at a compacted RV: {s:?}"),
        other => panic!("{cluster}: a list at compacted RV {old_rv} answered {other:?}"),
    }
    case.tb.fault(cluster, Fault::Stop).await.unwrap();
    case.tb.fault(cluster, Fault::Start).await.unwrap();
}

/// The current list RV of the test namespace's ConfigMaps in `client`'s cluster.
async fn list_rv(client: &kube::Client, ns: &str) -> String {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// Lists of ConfigMaps the daemon made since `mark` (after the start-up sync, only a watch
/// that had to start over lists; the periodic resync reads the caches).
fn daemon_lists(mark: &mut audit::Mark) -> u64 {
    let c = mark.take(daemon::AGENT).unwrap();
    c.0.get(&("list".to_string(), "configmaps".to_string()))
        .copied()
        .unwrap_or(0)
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
    let expired_before = expired_watches(&d.log, SRC, "configmaps");

    case.tb.fault(SRC, Fault::Partition).await.unwrap();
    case.change_all(1).await;
    let api = Api::<ConfigMap>::namespaced(case.src.clone(), &case.ns);
    api.delete("src-0009", &DeleteParams::default())
        .await
        .unwrap();
    case.model.remove("src-0009");
    let followers = vec![A.to_string(), B.to_string()];
    load::create_all(
        &case.src,
        vec![load::config_map(&case.ns, "src-new", &followers, "new")],
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
    let expired = expired_watches(&d.log, SRC, "configmaps") - expired_before;
    let relisted = daemon_lists(&mut lists);
    eprintln!(
        "f-compact-src: A converged {took:?} after the heal; {expired} watch(es) got 410, {relisted} re-list(s)"
    );
    assert!(
        expired >= 1,
        "the daemon's source watch never got 410 Expired: the fault had no effect ({})",
        d.log.display()
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
    let expired_before = expired_watches(&d.log, A, "configmap copies");

    case.tb.fault(A, Fault::Partition).await.unwrap();
    let a_direct = Api::<ConfigMap>::namespaced(direct_client(case.tb, A).await, &case.ns);
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
    let expired = expired_watches(&d.log, A, "configmap copies") - expired_before;
    let relisted = daemon_lists(&mut lists);
    eprintln!(
        "f-compact-a: A repaired {took:?} after the heal; {expired} watch(es) got 410, {relisted} re-list(s)"
    );
    assert!(
        expired >= 1,
        "the daemon's watch of A's copies never got 410 Expired: the fault had no effect ({})",
        d.log.display()
    );
    assert!(relisted >= 1, "no re-list of A's copies after 410");
    d.stop(Duration::from_secs(5));
}
