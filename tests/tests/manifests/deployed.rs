//! `the_daemon_syncs_with_the_manifests_args_and_identities_and_not_with_one_verb_fewer` step by
//! step: the pod's filesystem and environment on this machine, the initContainer and the daemon
//! with their own args, readiness and the Lease, the seed's scenario written as the IAM roles, and
//! `once` with one verb fewer.
use super::*;

/// The product binaries under test (`e2e::bins::product`).
pub(crate) fn product_bin(name: &str) -> PathBuf {
    e2e::bins::product(name).unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)))
}

/// The pod's filesystem and environment on this machine: its in-pod paths (the mounted profiles, the
/// kubeconfig emptyDir) mapped under a temporary directory, as the kubelet would mount them.
pub(crate) struct PodFs {
    pub(crate) root: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl PodFs {
    /// What EKS and the kubelet give the pod: the profiles ConfigMap mounted (placeholders filled
    /// in with the testbed's accounts), the IRSA token, AWS_REGION; the AWS endpoints of the
    /// testbed.
    pub(crate) fn new(tb: &Testbed, mgmt: &[Value], d: &Deployed, kubeconfig_gen: &Path) -> PodFs {
        let root = tempfile::tempdir().unwrap();
        let env_file: BTreeMap<String, String> = tb.aws_env().into_iter().collect();
        let mut env: Vec<(String, String)> = env_file.clone().into_iter().collect();
        let bin_dir = kubeconfig_gen.parent().unwrap().display().to_string();
        env.push(("PATH".into(), format!("{bin_dir}:/usr/bin:/bin"))); // the image's PATH has both binaries
        // The daemon's env (values, the settings ConfigMap's keys, POD_NAMESPACE): a superset of the
        // init step's and the sidecar's, so that `command` expands their $(KCS_...) args too.
        for (name, value) in d.env(d.main) {
            let value = match value.as_str() {
                "<AWS_REGION>" => env_file["AWS_REGION"].clone(),
                _ => value,
            };
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
        }
        let env = env
            .into_iter()
            .map(|(k, v)| {
                let v = PodFs::map(root.path(), &v);
                (k, v)
            })
            .collect();
        let pod = PodFs { root, env };
        let cm = d.profiles_configmap(mgmt);
        let aws_dir = pod.root.path().join("etc/kubed-cross-sync/aws");
        std::fs::create_dir_all(&aws_dir).unwrap();
        std::fs::create_dir_all(pod.root.path().join("srv/kubeconfig")).unwrap();
        let token_file = tb.dir().join("aws/web-identity-token");
        for (key, text) in cm["data"].as_object().unwrap() {
            let text = text
                .as_str()
                .unwrap()
                .replace("<MGMT_ACCOUNT_ID>", &tb.cluster(MGMT).account)
                .replace("<PROJECT_ACCOUNT_ID>", &tb.cluster(PROJECT).account)
                .replace("<PROJECT2_ACCOUNT_ID>", &tb.cluster(PROJECT2).account)
                .replace(IRSA_TOKEN, &token_file.display().to_string());
            assert!(
                !text.lines().any(|l| !l.starts_with('#') && l.contains('<')),
                "a placeholder is left in the profiles: {text}"
            );
            std::fs::write(aws_dir.join(key), text).unwrap();
        }
        pod
    }

    fn map(root: &Path, s: &str) -> String {
        let root = root.display().to_string();
        s.replace(
            "/etc/kubed-cross-sync/aws",
            &format!("{root}/etc/kubed-cross-sync/aws"),
        )
        .replace("/srv/kubeconfig", &format!("{root}/srv/kubeconfig"))
    }

    /// An arg of the Deployment as the kubelet passes it (`$(VAR)` expanded from the pod's env), with
    /// its in-pod paths mapped.
    pub(crate) fn arg(&self, a: &str) -> String {
        let env: BTreeMap<String, String> = self.env.iter().cloned().collect();
        Self::map(self.root.path(), &expand(a, &env))
    }

    /// Sets (or replaces) one variable of the pod's environment.
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The initContainer `init` with its own args: kubeconfig-gen writes the pod's kubeconfig.
    pub(crate) fn run_init(&self, kubeconfig_gen: &Path, init: &Value) {
        let init_args = strs(&init["args"]);
        let out = self.command(kubeconfig_gen, &init_args).output().unwrap();
        assert!(
            out.status.success(),
            "kubeconfig-gen {init_args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .args(args.iter().map(|a| self.arg(a)));
        cmd
    }

    /// sync-daemon with `args`, in the pod's environment only.
    pub(crate) fn daemon(&self, args: &[String]) -> DaemonBuilder {
        Daemon::bare()
            .env_clear()
            .envs(self.env.iter().cloned())
            .args(args.iter().map(|a| self.arg(a)))
    }
}

/// The status of GET `path` on the daemon's admin server (a probe as the kubelet sends it).
pub(crate) async fn http_status(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path, Duration::from_secs(2))
        .await
        .map(|(code, _)| code)
}

/// `wait_for`, but a timeout shows the end of the daemon's log (the pod's temporary directory goes away).
pub(crate) async fn wait_logged<F, Fut, T>(
    what: &str,
    deadline: Duration,
    log: &Path,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= end {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| {
                    !l.contains("\"level\":\"DEBUG\"") && !l.contains("\"level\":\"TRACE\"")
                })
                .take(40)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out after {deadline:?} waiting for {what}; daemon log tail:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn run() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    let kubeconfig_gen = product_bin("kubeconfig-gen");
    let overlay = mgmt_overlay();
    let mgmt = docs(&render(overlay));
    let d = Deployed::of(&mgmt);
    let (init, main, pod_ns) = (d.init, d.main, d.ns.clone());

    // The manifests, as an operator applies them (kubectl validates them against the clusters' API:
    // v1.20 has no native sidecars, and gets the plain-container overlay).
    apply(tb, MGMT, &render(overlay));
    for f in [PROJECT, PROJECT2] {
        apply(tb, f, &render("follower"));
    }

    let pod = PodFs::new(tb, &mgmt, &d, &kubeconfig_gen);

    pod.run_init(&kubeconfig_gen, init);

    watch_sidecar_keeps_the_file(&pod, &kubeconfig_gen, &strs(&d.watch["args"]));

    // The daemon, with the Deployment's args (the admin address on a free loopback port instead of
    // 0.0.0.0:8080, which another process on this machine may hold).
    let metrics = format!("127.0.0.1:{}", e2e::procs::free_port().unwrap());
    let args: Vec<String> = strs(&main["args"])
        .into_iter()
        .map(|a| match a.split('=').next().unwrap() {
            "--metrics-addr" => format!("--metrics-addr={metrics}"),
            "--lease-namespace" => format!("--lease-namespace={pod_ns}"),
            _ => a,
        })
        .collect();
    let log = pod.root.path().join("sync-daemon.log");
    let daemon = pod
        .daemon(&args)
        .admin_addr(&metrics)
        .log(&log)
        .spawn()
        .unwrap();

    ready_and_leading(tb, &metrics, &log, &pod_ns).await;
    let (name, sync_to, src) = seed_scenario(tb, &log).await;
    written_as_the_iam_roles(tb, &name, &src, &log).await;
    drop(daemon);

    let name2 = one_verb_fewer(tb, &pod, &args, &sync_to, &src).await;

    // Clean up the sources; the copies go with them (checked by the sync tests, not here).
    for n in [&name, &name2] {
        let _ = Api::<ConfigMap>::namespaced(src.clone(), "prod")
            .delete(n, &DeleteParams::default())
            .await;
    }
    let _ = Api::<Secret>::namespaced(src, "prod")
        .delete(&name, &DeleteParams::default())
        .await;
}

/// The kubeconfig-watch sidecar with its own args: its first round finds the world the init step
/// wrote and leaves the file alone (same inode and mtime); SIGTERM ends it with 0 within 5 s.
fn watch_sidecar_keeps_the_file(pod: &PodFs, kubeconfig_gen: &Path, args: &[String]) {
    use std::os::unix::fs::MetadataExt;
    let file = pod.root.path().join("srv/kubeconfig/kubeconfig");
    let stamp = || {
        let m = std::fs::metadata(&file).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before = stamp();
    let log = pod.root.path().join("kubeconfig-watch.log");
    let mut child = pod
        .command(kubeconfig_gen, args)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(60);
    while !text().contains("watch: round 1 done") {
        let exited = child.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < end,
            "{exited:?}: {}",
            text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stamp(),
        before,
        "the sidecar rewrote an unchanged file: {}",
        text()
    );
    assert!(
        text().contains("current-context mc-mgmt-k8s; unchanged:"),
        "the first round's summary: {}",
        text()
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("kubeconfig-watch still runs 5 s after SIGTERM: {}", text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", text());
}

async fn ready_and_leading(tb: &Testbed, metrics: &str, log: &Path, pod_ns: &str) {
    // Ready (caches synced, every follower answered) and leading, as the kubelet's probes would see it.
    let t0 = Instant::now();
    wait_logged("/readyz = 200", Duration::from_secs(60), log, || {
        let m = metrics.to_string();
        async move { (http_status(&m, "/readyz").await == Some(200)).then_some(()) }
    })
    .await;
    assert_eq!(http_status(metrics, "/livez").await, Some(200));
    // The Lease sits in the pod's namespace, written as the kubed-master role (rbac-leader-election).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(tb.admin_client(MGMT).await, pod_ns);
    let list = leases.list(&ListParams::default()).await.unwrap();
    assert!(!list.items.is_empty(), "no Lease in {pod_ns}");
    eprintln!(
        "sync-daemon ready and leading {:?} after start",
        t0.elapsed()
    );
}

/// The source ConfigMap and Secret; returns (their name, the sync-contexts value, the mgmt client).
async fn seed_scenario(tb: &Testbed, log: &Path) -> (String, String, Client) {
    // The seed's scenario in `prod` (the Deployment's --config-source-namespace): a ConfigMap and a TLS
    // Secret for both followers. Target namespaces exist (no --create-namespaces in the manifests).
    for c in [MGMT, PROJECT, PROJECT2] {
        k8s::ensure_ns(&tb.admin_client(c).await, "prod", &[])
            .await
            .unwrap();
    }
    let name = unique_ns("cross-acc-sync-demo");
    let sync_to = format!("{PROJECT},{PROJECT2}");
    let src = tb.admin_client(MGMT).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "data": {"foo": "bar", "spam": "eggs"}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let sec: Secret = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "crt", "tls.key": "key"}}))
    .unwrap();
    Api::<Secret>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &sec)
        .await
        .unwrap();
    let started = Instant::now();
    for f in [PROJECT, PROJECT2] {
        let c = tb.admin_client(f).await;
        let (cms, secs) = (
            Api::<ConfigMap>::namespaced(c.clone(), "prod"),
            Api::<Secret>::namespaced(c, "prod"),
        );
        let what = format!("the copies in {f}");
        wait_logged(&what, Duration::from_secs(60), log, || {
            let (cms, secs, name) = (cms.clone(), secs.clone(), name.clone());
            async move {
                let cm = cms.get_opt(&name).await.ok()??;
                secs.get_opt(&name).await.ok()??;
                (cm.data?.get("foo")? == "bar").then_some(())
            }
        })
        .await;
    }
    eprintln!(
        "copies in both followers {:?} after the sources were created",
        started.elapsed()
    );
    (name, sync_to, src)
}

async fn written_as_the_iam_roles(tb: &Testbed, name: &str, src: &Client, log: &Path) {
    // ... written as the follower IAM role, authenticated by EKS token and mapped by aws-auth.
    for (f, user) in [
        (PROJECT, "kubed-follower:mc-project"),
        (PROJECT2, "kubed-follower:mc-project2"),
    ] {
        let who = wait_for(
            "the audit log entry of the copy",
            Duration::from_secs(10),
            || {
                let who = audit::writers(&audit::read(&tb.audit_log(f)), "configmaps", name);
                async move { (!who.is_empty()).then_some(who) }
            },
        )
        .await;
        assert_eq!(who, [user], "{f}");
    }
    // Events on the source (events.k8s.io/v1, the Synced one at least) are written as kubed-master:
    // rbac-source.yaml's events rule is enough.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(src.clone(), "prod");
    wait_logged(
        "an Event on the source",
        Duration::from_secs(30),
        log,
        || {
            let (events, name) = (events.clone(), name.to_string());
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .any(|e| e.regarding.and_then(|r| r.name).as_deref() == Some(name.as_str()))
                    .then_some(())
            }
        },
    )
    .await;
    let forbidden = std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("forbidden")
        .count();
    assert_eq!(forbidden, 0, "the daemon met a 403 (see {})", log.display());
}

/// Returns the name of the source it made.
async fn one_verb_fewer(
    tb: &Testbed,
    pod: &PodFs,
    args: &[String],
    sync_to: &str,
    src: &Client,
) -> String {
    // One verb fewer: the follower ClusterRole without `create` in mc-project2-k8s. `sync-daemon once`
    // (same args) then cannot converge a new source there, while mc-project-k8s still gets it.
    let role = render("follower").replace(
        "  - create\n  - update\n  - patch\n  - delete\n",
        "  - update\n  - patch\n  - delete\n",
    );
    assert!(
        !role.contains("- create"),
        "the follower role lost its create verb"
    );
    apply(tb, PROJECT2, &role);
    let name2 = unique_ns("one-verb-fewer");
    let cm2: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name2,
        "annotations": {"kubed.appscode.com/sync-contexts": sync_to}}, "data": {"foo": "bar"}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(src.clone(), "prod")
        .create(&PostParams::default(), &cm2)
        .await
        .unwrap();
    let mut once: Vec<String> = args.to_vec();
    once[0] = "once".into();
    once.retain(|a| {
        !a.starts_with("--leader-elect")
            && !a.starts_with("--lease-namespace")
            && !a.starts_with("--metrics-addr")
    });
    let out = pod.daemon(&once).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "once must report non-convergence: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p1 = Api::<ConfigMap>::namespaced(tb.admin_client(PROJECT).await, "prod");
    let p2 = Api::<ConfigMap>::namespaced(tb.admin_client(PROJECT2).await, "prod");
    assert!(
        p1.get_opt(&name2).await.unwrap().is_some(),
        "the healthy follower still gets the copy"
    );
    assert!(
        p2.get_opt(&name2).await.unwrap().is_none(),
        "no copy without create"
    );
    // Restore the manifests' role: the same `once` converges.
    apply(tb, PROJECT2, &render("follower"));
    let out = wait_for(
        "sync-daemon once to converge with the manifests' role",
        Duration::from_secs(30),
        || {
            let out = pod.daemon(&once).output().unwrap();
            async move { out.status.success().then_some(out) }
        },
    )
    .await;
    drop(out);
    assert!(p2.get_opt(&name2).await.unwrap().is_some());

    name2
}
