//! The model test's world: its own testbed (source + followers A and B), the daemon under test,
//! the operations of the plan carried out against the clusters and recorded in the model, and
//! the wait until every cluster equals the model.
use super::*;

/// From the last operation (or checkpoint start) to every cluster equal to the model. Generous:
/// a copy waiting for a follower namespace made later is retried every 30 s.
pub(crate) const CONVERGE: Duration = Duration::from_secs(90);

pub(crate) struct World {
    // The daemon first: it is killed before the testbed goes down.
    pub(crate) daemon: Option<Daemon>,
    pub(crate) tb: Testbed,
    pub(crate) clients: BTreeMap<&'static str, Client>,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) logs: Vec<PathBuf>,
    pub(crate) seed: u64,
    pub(crate) oplog: Vec<String>,
}

impl World {
    pub(crate) async fn up(seed: u64) -> World {
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

    pub(crate) fn client(&self, cluster: &str) -> &Client {
        &self.clients[cluster]
    }

    /// Namespaces of the start (labels from `rng`); returns the model of that world.
    pub(crate) async fn initial(&self, rng: &mut Plan) -> Model {
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

    pub(crate) fn start_daemon(&mut self) {
        let log = self
            .tb
            .dir()
            .join(format!("sync-daemon-model-{}.log", self.logs.len()));
        self.daemon = Some(start_daemon(&self.kubeconfig, &log, CLUSTER_NAME));
        self.logs.push(log);
    }

    /// Performs `op` and records its effect in the model; returns what happened.
    pub(crate) async fn apply(&mut self, op: &Op, m: &mut Model) -> String {
        match op {
            Op::CreateSource(..)
            | Op::SetData(..)
            | Op::SetMeta(..)
            | Op::SetSync(..)
            | Op::SetContexts(..)
            | Op::DeleteSource(..) => self.apply_to_source(op, m).await,
            Op::LabelNs(..) | Op::CreateNs(..) | Op::CreateFollowerNs(..) => {
                self.apply_to_namespaces(op, m).await
            }
            Op::HandEdit(..) | Op::HandDelete(..) | Op::LookAlike(..) => {
                self.apply_by_hand(op, m).await
            }
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

    /// A source created, changed or deleted: the model follows (its resourceVersion too).
    async fn apply_to_source(&mut self, op: &Op, m: &mut Model) -> String {
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
            _ => unreachable!("not a source operation: {op}"),
        }
    }

    async fn apply_to_namespaces(&mut self, op: &Op, m: &mut Model) -> String {
        let src = self.client(SRC).clone();
        match op {
            Op::LabelNs(ns, k, v) => {
                e2e::k8s::label_ns(&src, ns, k, *v)
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
            _ => unreachable!("not a namespace operation: {op}"),
        }
    }

    /// A person's write: whatever it meets, the model stays (the daemon must repair it); a
    /// look-alike enters the model once certainly made.
    async fn apply_by_hand(&mut self, op: &Op, m: &mut Model) -> String {
        match op {
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
            _ => unreachable!("not a hand operation: {op}"),
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
            // No connection (an apiserver still restarting after a fault): nothing was sent.
            Err(e) if never_connected(&e) => format!("failed: {e}"),
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
    pub(crate) async fn converge(&mut self, m: &Model, what: &str) -> Duration {
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

    /// No Secret value, raw or base64, in any log of the daemon.
    pub(crate) fn scan_logs(&self, m: &Model) {
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

/// An admin client whose requests give up after 10 s: an operation aimed at a partitioned
/// follower (the proxy accepts and never answers) must fail, not hang for kube's default 295 s.
async fn op_client(tb: &Testbed, cluster: &str) -> Client {
    let opts = ClientOpts::timeouts(Duration::from_secs(5), Duration::from_secs(10));
    tb.client(cluster, opts).await
}

/// The daemon's kubeconfig: the source (current-context) and both followers, plus `A_F1`, a
/// second context for follower A whose entry sets `namespace: m-f1`.
fn write_kubeconfig(tb: &Testbed, out: &Path) {
    let followers = FOLLOWERS.map(str::to_string);
    let admin = kubeconfig::read(&tb.kubeconfig_path()).unwrap();
    let mut kc = kubeconfig::subset(&admin, SRC, &followers);
    kubeconfig::add_alias(&mut kc, A, A_F1, Some("m-f1")).unwrap();
    kubeconfig::write(&kc, out).unwrap();
}

/// Whether a request failed before any connection was made (so it certainly did nothing).
fn never_connected(e: &kube::Error) -> bool {
    e2e::error_chain(e).contains("client error (Connect)")
}
