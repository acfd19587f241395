//! One fault test's world on the suite's own testbed (source + followers A and B): its sources
//! and their model, a Secret with a distinctive value, an unmanaged look-alike, the daemons it
//! ran, and the checks every test ends with; plus the latency probe of follower B.
use super::*;

/// The suite's own testbed (faults hit whole clusters, so the tests take turns: `SERIAL`).
pub(crate) fn bed() -> &'static Testbed {
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

/// One test's world: its namespace in every cluster, the sources (name → latest `v`), a Secret
/// source with a distinctive value, an unmanaged look-alike in A, and the daemon(s) it ran.
pub(crate) struct Case {
    pub(crate) tb: &'static Testbed,
    pub(crate) ns: String,
    pub(crate) src: kube::Client,
    pub(crate) a: kube::Client,
    pub(crate) b: kube::Client,
    pub(crate) model: BTreeMap<String, String>,
    pub(crate) secret_value: String,
    pub(crate) lookalike_rv: String,
    pub(crate) logs: Vec<PathBuf>,
    pub(crate) kubeconfig: PathBuf,
}

impl Case {
    pub(crate) async fn new(prefix: &str, sources: usize) -> Case {
        let tb = bed();
        for c in [SRC, A, B] {
            // Whatever an earlier (failed) test left behind: everything up and healed.
            tb.fault(c, Fault::StartEtcd).await.unwrap();
            tb.fault(c, Fault::Start).await.unwrap();
            tb.fault(c, Fault::Heal).await.unwrap();
        }
        let ns = unique_ns(prefix);
        let src = tb.client(SRC, ClientOpts::direct()).await;
        let a = tb.admin_client(A).await;
        let b = tb.admin_client(B).await;
        for c in [&src, &a, &b] {
            k8s::ensure_ns(c, &ns, &[]).await.unwrap();
        }
        let followers = vec![A.to_string(), B.to_string()];
        let mut model = BTreeMap::new();
        let mut objs = Vec::new();
        for i in 0..sources {
            let name = format!("src-{i:04}");
            objs.push(k8s::load_configmap(&ns, &name, &followers, "v0"));
            model.insert(name, "v0".to_string());
        }
        objs.push(k8s::load_configmap(&ns, LOOKALIKE, &followers, "v0"));
        k8s::create_all(&src, objs, 8).await.unwrap();
        // The look-alike in A: same name, no origin labels. Never to be touched.
        let mine = k8s::configmap(LOOKALIKE, &[], &[], &[("v", "hand-made")]);
        let made = k8s::create(&a, &ns, &mine).await.unwrap();
        let (secret, secret_value) = k8s::password_secret("creds", &followers, "fault-secret");
        k8s::create(&src, &ns, &secret).await.unwrap();
        let kubeconfig = tb.dir().join(format!("kubeconfig-{ns}"));
        e2e::kubeconfig::write_subset(&tb.kubeconfig_path(), SRC, &followers, &kubeconfig).unwrap();
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

    pub(crate) fn daemon(&mut self, tag: &str) -> Daemon {
        let log = self
            .tb
            .dir()
            .join(format!("sync-daemon-{}-{tag}.log", self.ns));
        self.logs.push(log.clone());
        Daemon::scoped(&self.kubeconfig, &self.ns, "30s")
            .log(log)
            .spawn()
            .unwrap()
    }

    /// Sets source `name` to `value` (through the direct client) and records it in the model.
    pub(crate) async fn set(&mut self, name: &str, value: &str) -> Instant {
        let patch = serde_json::json!({ "data": { "v": value } });
        Api::<ConfigMap>::namespaced(self.src.clone(), &self.ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        self.model.insert(name.to_string(), value.to_string());
        Instant::now()
    }

    /// Changes every source once (round `r`).
    pub(crate) async fn change_all(&mut self, r: usize) {
        let names: Vec<String> = self.model.keys().cloned().collect();
        for n in names {
            self.set(&n, &format!("v{r}")).await;
        }
    }

    /// None when `client`'s copies equal the model; else what differs.
    pub(crate) async fn diff(&self, client: &kube::Client, is_a: bool) -> Option<String> {
        let have = match k8s::copy_values(client, &self.ns).await {
            Ok(have) => have,
            Err(e) => return Some(format!("list failed: {e}")),
        };
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
    pub(crate) async fn converged(&self, cluster: &str, deadline: Duration) -> Duration {
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
    pub(crate) async fn final_checks(&self) {
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

/// The suite's generator, seeded from `KCS_FAULT_SEED` or the OS (the seed is printed for reruns).
pub(crate) fn fault_rng() -> Rng {
    let seed = env_u64(&["KCS_FAULT_SEED"]).unwrap_or_else(|| rng::random_u64() | 1);
    eprintln!("fault suite seed: KCS_FAULT_SEED={seed}");
    Rng::from_state(seed)
}

/// Milliseconds from each update of source `probe` to its arrival in follower B.
pub(crate) async fn latencies_b(case: &mut Case, rounds: usize, tag: &str) -> Vec<f64> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watch = k8s::watch_value(case.b.clone(), &case.ns, "src-0000", 0, tx);
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

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
