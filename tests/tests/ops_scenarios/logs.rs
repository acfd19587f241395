//! What the daemon logs: the seed Deployment's args accepted (the unknown ones warned about
//! once, at info level), and no secret value even at trace level.
use super::*;

pub(crate) async fn seed_args_start_the_daemon() {
    let w = World::shared().await;
    let ns = unique_ns("ops-seed");
    w.ns_everywhere(&ns).await;
    let kcf = format!("--kubeconfig-file={}", w.kubeconfig());
    let src_ns = format!("--config-source-namespace={ns}");
    // The seed Deployment's args, verbatim apart from the two paths/namespaces.
    let args = [
        "run",
        "--v=3",
        "--secure-port=8443",
        "--audit-log-path=-",
        "--tls-cert-file=/var/serving-cert/tls.crt",
        "--tls-private-key-file=/var/serving-cert/tls.key",
        "--use-kubeapiserver-fqdn-for-aks=true",
        "--enable-analytics=false",
        "--cluster-name=mc-mgmt",
        kcf.as_str(),
        src_ns.as_str(),
    ];
    let mut d = start(w.tb.dir(), &ns, &args, &[("RUST_LOG", "")]);
    wait_ready(&mut d).await;
    synced_to_project(&w, &ns, "cross-acc-sync-demo", "v").await;
    let log = d.log_text();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("accepted and ignored"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    for f in [
        "--secure-port",
        "--audit-log-path",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--use-kubeapiserver-fqdn-for-aks",
        "--enable-analytics",
    ] {
        assert!(warnings[0].contains(f), "{f}: {}", warnings[0]);
    }
    assert!(!log.contains("DEBUG"), "--v=3 is info level");
    drop(d);
    w.cleanup(&[&ns]).await;
}

pub(crate) async fn trace_logs_never_contain_secret_values() {
    use base64::Engine;
    let w = World::shared().await;
    let ns = unique_ns("ops-leak");
    w.ns_everywhere(&ns).await;
    let kc = w.kubeconfig();
    let v1 = format!("pw-{}-first", unique_ns("x"));
    let v2 = format!("pw-{}-second", unique_ns("y"));
    let mut d = start(
        w.tb.dir(),
        &ns,
        &run_args(&kc, &ns, &["--log-format", "json"]),
        &[("RUST_LOG", "trace")],
    );
    wait_ready(&mut d).await;
    let both = format!("{PROJECT},{PROJECT2}");
    let s = secret(
        "creds",
        "Opaque",
        &[(SYNC_CONTEXTS, &both), (SYNC, "")],
        &[("password", v1.as_bytes())],
    );
    create(&w.mgmt, &ns, &s).await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let has = |want: &str| {
        let want = want.to_string();
        move |s: &Secret| {
            s.data
                .as_ref()
                .and_then(|d| d.get("password"))
                .map(|b| b.0.clone())
                == Some(want.clone().into_bytes())
        }
    };
    for c in [&w.project, &w.project2] {
        wait_for("secret copy", SOON, || async {
            get::<Secret>(c, &ns, "creds")
                .await
                .unwrap()
                .filter(has(&v1))
                .map(|_| ())
        })
        .await;
    }
    merge::<Secret>(
        &w.mgmt,
        &ns,
        "creds",
        json!({"data": {"password": b64.encode(&v2)}}),
    )
    .await
    .unwrap();
    for c in [&w.project, &w.project2] {
        wait_for("secret update", SOON, || async {
            get::<Secret>(c, &ns, "creds")
                .await
                .unwrap()
                .filter(has(&v2))
                .map(|_| ())
        })
        .await;
    }
    d.sigterm();
    d.wait_exit(Duration::from_secs(10));
    let log = d.log_text();
    assert!(log.lines().count() > 100, "trace logging is on");
    assert!(log.lines().all(|l| l.starts_with('{')), "json log lines");
    let mut needles = vec![];
    for v in [&v1, &v2] {
        needles.push(v.to_string());
        needles.push(b64.encode(v));
        needles.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(v));
    }
    for c in w.tb.clusters() {
        needles.push(c.admin_token.clone());
    }
    for n in &needles {
        assert!(
            !log.contains(n.as_str()),
            "a secret value is in the log ({} bytes scanned)",
            log.len()
        );
    }
    w.cleanup(&[&ns]).await;
}
