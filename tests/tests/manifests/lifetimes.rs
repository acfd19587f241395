//! `tokens_are_renewed_through_the_real_path_over_several_lifetimes`: the daemon in the manifests'
//! shape (the Deployment's args, its kubeconfig written by the initContainer's `kubeconfig-gen
//! generate` from the profiles ConfigMap), every cluster reached through `kubeconfig-gen token` →
//! STS (moto, behind a counting proxy) → the EKS-style webhook → aws-auth → RBAC, kept busy for
//! several token lifetimes. The lifetimes are shortened for the test only: the token says it
//! expires after 20 s (`KUBECONFIG_GEN_TEST_TOKEN_LIFETIME`) and the verifier honours a token for
//! 30 s instead of STS's 15 minutes (its `token-max-age` file), so a token that was not renewed
//! in time is refused. Every change must arrive, with no 401 and no failed write; the STS calls per
//! renewal are counted.
use super::deployed::{PodFs, http_status, product_bin, wait_logged};
use super::moto_proxy::Moto;
use super::*;
use e2e::audit::DAEMON_AGENT;

/// The token lifetime the test gives `kubeconfig-gen token`, and the verifier's.
const TOKEN_LIFETIME_S: u64 = 20;
const VERIFIER_MAX_AGE_S: u64 = 30;
/// How long the daemon runs, busy: several lifetimes (4¼).
const WINDOW: Duration = Duration::from_secs(85);

/// The verifier's test-only knob (tests/aws/verifier.py): honoured seconds, `None` = 15 minutes.
fn set_max_age(tb: &Testbed, seconds: Option<u64>) {
    let knob = tb.dir().join("aws/token-max-age");
    match seconds {
        Some(s) => std::fs::write(&knob, format!("{s}\n")).unwrap(),
        None => {
            let _ = std::fs::remove_file(&knob);
        }
    }
}

fn count(requests: &[String], action: &str) -> usize {
    let suffix = format!(" Action={action}");
    requests.iter().filter(|r| r.ends_with(&suffix)).count()
}

pub(crate) async fn run() {
    let _serial = CLUSTER_LOCK.lock().await;
    let tb = Testbed::shared();
    let kubeconfig_gen = product_bin("kubeconfig-gen");
    let overlay = mgmt_overlay();
    let mgmt = docs(&render(overlay));
    let d = Deployed::of(&mgmt);
    apply(tb, MGMT, &render(overlay));
    for f in [PROJECT, PROJECT2] {
        apply(tb, f, &render("follower"));
    }
    let moto = Moto::start();
    let mut pod = PodFs::new(tb, &mgmt, &d, &kubeconfig_gen);
    pod.set_env("AWS_ENDPOINT_URL", &moto.url);
    pod.set_env(
        "KUBECONFIG_GEN_TEST_TOKEN_LIFETIME",
        &TOKEN_LIFETIME_S.to_string(),
    );
    pod.run_init(&kubeconfig_gen, d.init);

    let ns = strs(&d.main["args"])
        .iter()
        .find_map(|a| {
            a.strip_prefix("--config-source-namespace=")
                .map(str::to_string)
        })
        .unwrap();
    let ns = pod.arg(&ns);
    for c in [MGMT, PROJECT, PROJECT2] {
        k8s::ensure_ns(&tb.admin_client(c).await, &ns, &[])
            .await
            .unwrap();
    }
    let metrics = format!("127.0.0.1:{}", e2e::procs::free_port().unwrap());
    let args: Vec<String> = strs(&d.main["args"])
        .into_iter()
        .map(|a| match a.split('=').next().unwrap() {
            "--metrics-addr" => format!("--metrics-addr={metrics}"),
            _ => a,
        })
        .filter(|a| !a.starts_with("--leader-elect") && !a.starts_with("--lease-namespace"))
        .collect();
    set_max_age(tb, Some(VERIFIER_MAX_AGE_S));
    let log = pod.root.path().join("sync-daemon.log");
    let marks: Vec<(&str, usize)> = [MGMT, PROJECT, PROJECT2]
        .into_iter()
        .map(|c| (c, audit::read(&tb.audit_log(c)).len()))
        .collect();
    let before = moto.requests().len();
    let started = Instant::now();
    let daemon = pod
        .daemon(&args)
        .admin_addr(&metrics)
        .log(&log)
        .spawn()
        .unwrap();
    wait_logged("/readyz = 200", Duration::from_secs(60), &log, || {
        let m = metrics.clone();
        async move { (http_status(&m, "/readyz").await == Some(200)).then_some(()) }
    })
    .await;
    let changes = busy_until(tb, &ns, &log, started + WINDOW).await;
    let elapsed = started.elapsed();
    let sts = moto.requests()[before..].to_vec();
    drop(daemon);
    set_max_age(tb, None);

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // (Not "401" alone: resourceVersions and timings contain it.)
    for bad in ["write failed", "Unauthorized", "exec plugin failed"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(bad)).collect();
        assert!(
            lines.is_empty(),
            "{bad:?} in the daemon's log:\n{}",
            lines.join("\n")
        );
    }
    for (c, mark) in &marks {
        let refused: Vec<String> = (audit::read(&tb.audit_log(c))[*mark..].iter())
            .filter(|e| e.user_agent.starts_with(DAEMON_AGENT) && e.code == Some(401))
            .map(|e| format!("{} {}", e.verb, e.uri))
            .collect();
        assert!(refused.is_empty(), "401s of ours in {c}: {refused:#?}");
    }
    // Renewals: every token run starts the chain at the web identity (one
    // AssumeRoleWithWebIdentity); a follower's run adds its AssumeRole.
    let (web, assume) = (
        count(&sts, "AssumeRoleWithWebIdentity"),
        count(&sts, "AssumeRole"),
    );
    let lifetimes = elapsed.as_secs() / TOKEN_LIFETIME_S;
    let per_follower = assume as f64 / 2.0;
    eprintln!(
        "{changes} changes in {elapsed:?} ({lifetimes} token lifetimes of {TOKEN_LIFETIME_S} s): \
         {web} AssumeRoleWithWebIdentity, {assume} AssumeRole; token runs per follower {per_follower}, \
         i.e. {:.1} STS calls per follower per hour at this lifetime (2 per run)",
        2.0 * per_follower * 3600.0 / elapsed.as_secs_f64()
    );
    assert!(lifetimes >= 4, "the window spans {lifetimes} lifetimes");
    // Each follower renewed about once per 15 s (renewal a quarter of the lifetime early) —
    // at least once per lifetime, and no plugin run per request.
    assert!(
        per_follower >= lifetimes as f64 && per_follower <= 3.0 * lifetimes as f64,
        "{per_follower} token runs per follower over {lifetimes} lifetimes"
    );
    assert!(
        web >= assume,
        "{web} web identity calls for {assume} AssumeRole"
    );
}

/// A source ConfigMap for both followers, changed every 2 s until `end`; every change reaches
/// both followers. Returns the number of changes.
async fn busy_until(tb: &Testbed, ns: &str, log: &Path, end: Instant) -> usize {
    let src = tb.admin_client(MGMT).await;
    let name = unique_ns("renewed");
    let both = format!("{PROJECT},{PROJECT2}");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"kubed.appscode.com/sync-contexts": both}}, "data": {"n": "0"}}))
    .unwrap();
    let cms = Api::<ConfigMap>::namespaced(src.clone(), ns);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let copies: Vec<Api<ConfigMap>> = futures::future::join_all(
        [PROJECT, PROJECT2].map(|f| async move { tb.admin_client(f).await }),
    )
    .await
    .into_iter()
    .map(|c| Api::namespaced(c, ns))
    .collect();
    let mut n = 0;
    while Instant::now() < end {
        n += 1;
        let value = n.to_string();
        cms.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": value}})),
        )
        .await
        .unwrap();
        let what = format!("change {n} in both followers");
        wait_logged(&what, Duration::from_secs(15), log, || {
            let (copies, name, value) = (copies.clone(), name.clone(), value.clone());
            async move {
                for c in &copies {
                    let cm = c.get_opt(&name).await.ok()??;
                    if cm.data?.get("n")? != &value {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = cms.delete(&name, &DeleteParams::default()).await;
    n
}
