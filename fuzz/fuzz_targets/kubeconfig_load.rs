//! Kubeconfig YAML as the daemon loads it (`kube::config::Kubeconfig::read_from`, then the
//! source-context choice and reversal guard with server normalisation, then kube's Config and
//! Client for every context), and as kubeconfig-gen merges into an existing file and writes it
//! back. The same bytes also go through KUBERNETES_EXEC_INFO parsing (`token`).
//!
//! File references (certificate-authority, client-certificate/-key, token-file) and exec /
//! auth-provider entries are dropped before building clients: they name local files and
//! programs (a fuzzer writing `/dev/zero` there would only test the disk), which the daemon takes
//! from its operator, not from the cluster.
#![no_main]

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kubeconfig_gen::kubeconfig as kg;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use sync_daemon::clusters;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fuzz runtime")
    })
}

/// A per-process scratch file on tmpfs: the daemon reads its kubeconfig from a path.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        PathBuf::from(format!("{dir}/kcs-fuzz-kubeconfig-{}.yaml", std::process::id()))
    })
}

fn without_local_references(mut kc: Kubeconfig) -> Kubeconfig {
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        c.certificate_authority = None;
    }
    for a in kc.auth_infos.iter_mut().filter_map(|a| a.auth_info.as_mut()) {
        a.client_certificate = None;
        a.client_key = None;
        a.token_file = None;
        a.exec = None;
        a.auth_provider = None;
    }
    kc
}

fn daemon_load(text: &str) {
    let path = scratch();
    if std::fs::write(path, text).is_err() {
        return;
    }
    let Ok(kc) = Kubeconfig::read_from(path) else {
        return;
    };
    for c in kc.clusters.iter().filter_map(|c| c.cluster.as_ref()) {
        if let Some(server) = &c.server {
            let n = clusters::normalise_server(server);
            assert_eq!(
                clusters::normalise_server(&n),
                n,
                "normalising {server:?} is not idempotent"
            );
        }
    }
    let Ok(source) = clusters::source_context(&kc, path, None).map_err(|e| e.to_string()) else {
        return;
    };
    let kc = without_local_references(kc);
    let rt = runtime();
    let _guard = rt.enter();
    for ctx in &kc.contexts {
        let opts = KubeConfigOptions {
            context: Some(ctx.name.clone()),
            ..Default::default()
        };
        if let Ok(config) = rt.block_on(Config::from_custom_kubeconfig(kc.clone(), &opts)) {
            let _ = kube::Client::try_from(config);
        }
    }
    let _ = source;
}

fn generator_merge(text: &str) {
    let Ok(existing) = kg::from_yaml(text) else {
        return;
    };
    let entry = kg::ClusterEntry {
        context: "mc-project-k8s".into(),
        profile: "mc-project".into(),
        name: "mc-project-k8s".into(),
        arn: "arn:aws:eks:eu-central-1:222222222222:cluster/mc-project-k8s".into(),
        region: "eu-central-1".into(),
        endpoint: "https://127.0.0.1:6443".into(),
        ca_data: "Y2E=".into(),
    };
    let settings = kg::ExecSettings {
        style: kg::ExecStyle::Native,
        command: "kubeconfig-gen".into(),
        extra_env: Vec::new(),
    };
    let generated = kg::build(std::slice::from_ref(&entry), &settings, &entry.context);
    let merged = kg::merge(existing, generated);
    let Ok(yaml) = kg::to_yaml(&merged) else {
        return;
    };
    // What kubeconfig-gen writes must read back, with the same contexts.
    let back = kg::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("kubeconfig-gen wrote a kubeconfig it cannot read: {e}\n{yaml}"));
    let names = |k: &Kubeconfig| k.contexts.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&merged), names(&back));
    assert_eq!(back.current_context.as_deref(), Some("mc-project-k8s"));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    daemon_load(text);
    generator_merge(text);
    let _ = kubeconfig_gen::token::api_version(Some(text));
});
