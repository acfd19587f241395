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

#[path = "../src/bin/bench/daemon.rs"]
#[allow(dead_code)]
mod daemon;
mod model_io;
mod model_world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Testbed, TestbedOptions};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use model_io::*;
use model_world::*;
use serde_json::{Value, json};

/// From the last operation (or checkpoint start) to every cluster equal to the model. Generous:
/// a copy waiting for a follower namespace made later is retried every 30 s.
const CONVERGE: Duration = Duration::from_secs(90);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn soak() -> bool {
    std::env::var_os("KCS_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

struct World {
    // The daemon first: it is killed before the testbed goes down.
    daemon: Option<DaemonProc>,
    tb: Testbed,
    clients: BTreeMap<&'static str, Client>,
    kubeconfig: PathBuf,
    logs: Vec<PathBuf>,
    seed: u64,
    oplog: Vec<String>,
}

impl World {
    async fn up(seed: u64) -> World {
        let opts = TestbedOptions::named(&[SRC, A, B], false);
        let tb = Testbed::up(opts).await.expect("model testbed");
        let mut clients = BTreeMap::new();
        for c in [SRC, A, B] {
            clients.insert(c, op_client(&tb, c).await);
        }
        let kubeconfig = tb.dir().join("kubeconfig-model");
        write_kubeconfig(&tb, &kubeconfig);
        World {
            daemon: None,
            tb,
            clients,
            kubeconfig,
            logs: Vec::new(),
            seed,
            oplog: Vec::new(),
        }
    }

    fn client(&self, cluster: &str) -> &Client {
        &self.clients[cluster]
    }

    /// Namespaces of the start (labels from `rng`); returns the model of that world.
    async fn initial(&self, rng: &mut Plan) -> Model {
        let mut model = Model {
            follower_ns: plan::initial_follower_ns(),
            ..Default::default()
        };
        for ns in SOURCE_NS.iter().chain(&TARGET_NS) {
            create_ns(self.client(SRC), ns, &rng.ns_labels()).await;
        }
        for (cluster, namespaces) in &model.follower_ns {
            for ns in namespaces {
                create_ns(self.client(cluster), ns, &Labels::new()).await;
            }
        }
        let all = Api::<Namespace>::all(self.client(SRC).clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        for n in all.items {
            model.namespaces.insert(n.name_any(), n.labels().clone());
        }
        model
    }

    fn start_daemon(&mut self) {
        let log = self
            .tb
            .dir()
            .join(format!("sync-daemon-model-{}.log", self.logs.len()));
        self.daemon = Some(DaemonProc::start(&self.kubeconfig, &log, CLUSTER_NAME));
        self.logs.push(log);
    }

    /// Performs `op` and records its effect in the model; returns what happened.
    async fn apply(&mut self, op: &Op, m: &mut Model) -> String {
        let src = self.client(SRC).clone();
        match op {
            Op::CreateSource((kind, ns, name), s) => {
                let mut body = json!({
                    "metadata": {"name": name, "labels": s.labels, "annotations": s.all_annotations()},
                    "data": data_json(*kind, &s.data, &BTreeMap::new()),
                });
                if let Some(t) = &s.secret_type {
                    body["type"] = json!(t);
                }
                let rv = create(&src, *kind, ns, body)
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e}"));
                if *kind == Kind::Secret {
                    m.secret_values.extend(s.data.get("password").cloned());
                }
                let mut s = s.clone();
                s.rv = rv;
                m.sources.insert((*kind, ns.clone(), name.clone()), s);
                "ok".into()
            }
            Op::SetData(key, data) => {
                let old = &m.sources[key].data;
                let body = json!({"data": data_json(key.0, data, old)});
                let rv = self.patch_source(key, body, op).await;
                if key.0 == Kind::Secret {
                    m.secret_values.extend(data.get("password").cloned());
                }
                let s = m.sources.get_mut(key).unwrap();
                s.data = data.clone();
                s.rv = rv;
                "ok".into()
            }
            Op::SetMeta(key, app, note) => {
                let body = json!({"metadata": {
                    "labels": {"app": app}, "annotations": {"model/note": note}}});
                let rv = self.patch_source(key, body, op).await;
                let s = m.sources.get_mut(key).unwrap();
                set_opt(&mut s.labels, "app", app.clone());
                set_opt(&mut s.annotations, "model/note", note.clone());
                s.rv = rv;
                "ok".into()
            }
            Op::SetSync(key, sync) => {
                let text = sync.as_ref().map(Intra::text);
                let body = json!({"metadata": {"annotations": {SYNC: text}}});
                let rv = self.patch_source(key, body, op).await;
                let s = m.sources.get_mut(key).unwrap();
                s.sync = sync.clone();
                s.rv = rv;
                "ok".into()
            }
            Op::SetContexts(key, contexts) => {
                let body = json!({"metadata": {"annotations": {SYNC_CONTEXTS: contexts}}});
                let rv = self.patch_source(key, body, op).await;
                let s = m.sources.get_mut(key).unwrap();
                s.contexts = contexts.clone();
                s.rv = rv;
                "ok".into()
            }
            Op::DeleteSource(key @ (kind, ns, name)) => {
                delete(&src, *kind, ns, name)
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e}"));
                m.sources.remove(key);
                "ok".into()
            }
            Op::LabelNs(ns, k, v) => {
                Api::<Namespace>::all(src)
                    .patch(
                        ns,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"labels": {*k: v}}})),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e}"));
                let labels = m.namespaces.get_mut(ns).unwrap();
                set_opt(labels, k, v.map(str::to_string));
                "ok".into()
            }
            Op::CreateNs(ns, labels) => {
                create_ns(&src, ns, labels).await;
                m.namespaces.insert(ns.clone(), labels.clone());
                "ok".into()
            }
            Op::CreateFollowerNs(cluster, ns) => {
                create_ns(self.client(cluster), ns, &Labels::new()).await;
                m.follower_ns.get_mut(cluster).unwrap().insert(ns.clone());
                "ok".into()
            }
            // A person's write: whatever it meets, the model stays (the daemon must repair it).
            Op::HandEdit(p, value) => {
                let v = if p.kind == Kind::Secret {
                    b64(value)
                } else {
                    value.clone()
                };
                let body = json!({"data": {value_key(p.kind): v}});
                let c = self.client(p.cluster).clone();
                match merge(&c, p.kind, &p.ns, &p.name, body, "e2e-hand").await {
                    Ok(_) => "edited".into(),
                    Err(e) if api_code(&e) == Some(404) => "no copy there yet".into(),
                    Err(e) => format!("failed: {e}"),
                }
            }
            Op::HandDelete(p) => {
                let c = self.client(p.cluster).clone();
                match delete(&c, p.kind, &p.ns, &p.name).await {
                    Ok(()) => "deleted".into(),
                    Err(e) if api_code(&e) == Some(404) => "no copy there yet".into(),
                    Err(e) => format!("failed: {e}"),
                }
            }
            Op::LookAlike(p, foreign) => self.lookalike(p, *foreign, m).await,
            Op::Fault(cluster, f) => {
                self.tb
                    .fault(cluster, *f)
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e}"));
                "ok".into()
            }
            Op::Unfault(cluster, f) => {
                self.tb
                    .fault(cluster, *f)
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e}"));
                // Fresh connections: pooled ones may have died with the apiserver or the proxy.
                let fresh = op_client(&self.tb, cluster).await;
                self.clients.insert(cluster, fresh);
                "ok".into()
            }
            Op::KillDaemon => {
                self.daemon = None;
                "ok".into()
            }
            Op::StartDaemon => {
                self.start_daemon();
                "ok".into()
            }
            Op::Checkpoint => unreachable!("checkpoints are handled by the run loop"),
        }
    }

    async fn patch_source(&self, key: &Key, body: Value, op: &Op) -> String {
        let (kind, ns, name) = key;
        merge(self.client(SRC), *kind, ns, name, body, "e2e-model")
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    /// Creates a look-alike; it enters the model only if the create certainly succeeded.
    async fn lookalike(&mut self, p: &Pos, foreign: bool, m: &mut Model) -> String {
        let value = format!("look-alike-{}", self.oplog.len());
        let v = if p.kind == Kind::Secret {
            b64(&value)
        } else {
            value.clone()
        };
        let labels = if foreign {
            json!({ORIGIN_NAME: p.name, ORIGIN_NAMESPACE: owner_ns(&p.name), ORIGIN_CLUSTER: "elsewhere"})
        } else {
            json!({})
        };
        let body = json!({
            "metadata": {"name": p.name, "labels": labels},
            "data": {value_key(p.kind): v},
        });
        let c = self.client(p.cluster).clone();
        match create(&c, p.kind, &p.ns, body).await {
            Ok(rv) => {
                m.lookalikes.insert(p.clone(), LookAlike { rv });
                "created".into()
            }
            Err(e) if api_code(&e) == Some(409) => "skipped: an object is there".into(),
            Err(e) => {
                // Unknown outcome (e.g. the response was lost): look.
                let mine = observe_one(&c, p)
                    .await
                    .unwrap_or_else(|e2| panic!("look-alike {p}: {e}; then: {e2}"));
                match mine {
                    Some(o) if o.data.get(value_key(p.kind)) == Some(&value) => {
                        m.lookalikes.insert(p.clone(), LookAlike { rv: o.rv });
                        format!("created (answer lost: {e})")
                    }
                    _ => format!("failed: {e}"),
                }
            }
        }
    }

    /// Every ConfigMap and Secret of every cluster.
    async fn observe(&self) -> Result<BTreeMap<Pos, Obj>, kube::Error> {
        let mut out = BTreeMap::new();
        let lp = ListParams::default();
        for (cluster, c) in &self.clients {
            for o in Api::<ConfigMap>::all(c.clone()).list(&lp).await?.items {
                let (ns, name, obj) = obj_of_cm(o);
                out.insert(pos(cluster, Kind::ConfigMap, ns, name), obj);
            }
            for o in Api::<Secret>::all(c.clone()).list(&lp).await?.items {
                let (ns, name, obj) = obj_of_secret(o);
                out.insert(pos(cluster, Kind::Secret, ns, name), obj);
            }
        }
        Ok(out)
    }

    /// Waits until every cluster equals the model; fails with the differences after `CONVERGE`.
    async fn converge(&mut self, m: &Model, what: &str) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(d) = self.daemon.as_mut()
                && let Some(status) = d.exited()
            {
                let why = vec![(String::new(), format!("the daemon exited: {status}"))];
                self.fail(m, what, &why);
            }
            let diffs = match self.observe().await {
                Ok(seen) => m.diff(&seen),
                Err(e) => vec![(String::new(), format!("cannot list the clusters: {e}"))],
            };
            if diffs.is_empty() {
                return start.elapsed();
            }
            if start.elapsed() > CONVERGE {
                self.fail(m, what, &diffs);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Panics with the first differences, the seed, and for the first objects involved the
    /// operations and daemon log lines naming them; keeps the op log and daemon logs.
    fn fail(&self, m: &Model, what: &str, diffs: &[(String, String)]) -> ! {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("model-{}", self.seed));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("ops.log"), self.oplog.join("\n"));
        for log in &self.logs {
            if let Some(name) = log.file_name() {
                let _ = std::fs::copy(log, dir.join(name));
            }
        }
        // The daemon's own read-only view of the same clusters (same planner, fresh lists).
        if let Ok(bin) = daemon::binary() {
            let status = Command::new(bin)
                .arg("status")
                .arg("--kubeconfig-file")
                .arg(&self.kubeconfig)
                .args(["--cluster-name", CLUSTER_NAME, "-o", "json"])
                .output();
            if let Ok(out) = status {
                let _ = std::fs::write(dir.join("status.json"), &out.stdout);
            }
        }
        let mut msg = format!(
            "{what}: {} difference(s) after {CONVERGE:?} (replay: KCS_MODEL_SEED={} cargo test -p e2e --test model -- --nocapture)\n",
            diffs.len(),
            self.seed
        );
        for (_, d) in diffs.iter().take(15) {
            msg += &format!("  {d}\n");
        }
        let mut names: Vec<&String> = diffs
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !n.is_empty())
            .collect();
        names.dedup();
        for name in names.into_iter().take(3) {
            let needle = format!("/{name}");
            let ops: Vec<&String> = self.oplog.iter().filter(|l| l.contains(&needle)).collect();
            msg += &format!("operations on {name} (last 15 of {}):\n", ops.len());
            for l in ops.iter().rev().take(15).rev() {
                msg += &format!("  {l}\n");
            }
            msg += &format!("daemon log lines naming {name} (last 15):\n");
            let mut lines = Vec::new();
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tag = log
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter(|l| l.contains(name.as_str()))
                        .map(|l| format!("  [{tag}] {l}")),
                );
            }
            for l in lines.iter().rev().take(15).rev() {
                msg += &format!("{l}\n");
            }
        }
        let events: Vec<&String> = self
            .oplog
            .iter()
            .filter(|l| l.contains("fault") || l.contains("daemon"))
            .collect();
        msg += "faults and daemon restarts (last 8):\n";
        for l in events.iter().rev().take(8).rev() {
            msg += &format!("  {l}\n");
        }
        msg += &format!(
            "model: {} sources, {} look-alikes, {} expected copies; op log and daemon logs kept in {}",
            m.sources.len(),
            m.lookalikes.len(),
            m.expected().len(),
            dir.display()
        );
        let _ = std::fs::write(dir.join("failure.txt"), &msg);
        panic!("{msg}");
    }

    /// No Secret value, raw or base64, in any log of the daemon.
    fn scan_logs(&self, m: &Model) {
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for v in &m.secret_values {
                assert!(
                    !text.contains(v.as_str()) && !text.contains(&b64(v)),
                    "a Secret value is in the daemon log {} (seed {})",
                    log.display(),
                    self.seed
                );
            }
        }
    }
}

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

/// The daemon's kubeconfig: the source (current-context) and both followers, plus `A_F1`, a
/// second context for follower A whose entry sets `namespace: m-f1`.
/// An admin client whose requests give up after 10 s: an operation aimed at a partitioned
/// follower (the proxy accepts and never answers) must fail, not hang for kube's default 295 s.
async fn op_client(tb: &Testbed, cluster: &str) -> Client {
    let mut cfg = tb.admin_config(cluster).await;
    cfg.connect_timeout = Some(Duration::from_secs(5));
    cfg.read_timeout = Some(Duration::from_secs(10));
    cfg.write_timeout = Some(Duration::from_secs(10));
    Client::try_from(cfg).unwrap_or_else(|e| panic!("client for {cluster}: {e}"))
}

fn write_kubeconfig(tb: &Testbed, out: &Path) {
    let followers = FOLLOWERS.map(str::to_string);
    daemon::subset_kubeconfig(&tb.kubeconfig_path(), SRC, &followers, out).unwrap();
    let mut kc = kube::config::Kubeconfig::read_from(out).unwrap();
    let mut alias = kc
        .contexts
        .iter()
        .find(|c| c.name == A)
        .cloned()
        .expect("context A");
    alias.name = A_F1.into();
    if let Some(ctx) = alias.context.as_mut() {
        ctx.namespace = Some("m-f1".into());
    }
    kc.contexts.push(alias);
    std::fs::write(out, serde_saphyr::to_string(&kc).unwrap()).unwrap();
}

/// The tests of this binary take turns: each runs a testbed of its own on 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_with_faults_end_in_the_model_state() {
    let _turn = SERIAL.lock().await;
    let seed = env_u64("KCS_MODEL_SEED")
        .or_else(|| env_u64("KCS_FAULT_SEED"))
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            u64::from_le_bytes(b) >> 1
        });
    let total = env_u64("KCS_MODEL_OPS").map_or(if soak() { 5000 } else { 1000 }, |n| n as usize);
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
    let mut cfg = tb.admin_config(R_A).await;
    cfg.cluster_url = tb.cluster(R_A).direct_server.parse().unwrap();
    let a = Client::try_from(cfg).unwrap();
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
    daemon::subset_kubeconfig(
        &tb.kubeconfig_path(),
        R_SRC,
        &[R_A.to_string()],
        &kubeconfig,
    )
    .unwrap();
    let log = tb.dir().join("sync-daemon-repro.log");
    let mut d = DaemonProc::start(&kubeconfig, &log, "repro");
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
            .filter(|l| l.contains("sync_daemon::reconcile"))
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
