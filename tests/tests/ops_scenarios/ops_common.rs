//! Helpers of the sync-daemon operations tests (issue 5): the daemon with its own admin port and
//! environment, and kubeconfig variants (a dead context; exec-plugin users in `exec_kubeconfig`).

use std::path::{Path, PathBuf};

use e2e::Testbed;
use e2e::daemon::Daemon;
use serde_json::Value;

/// A port nobody listens on (`e2e::procs::free_port`).
pub fn free_port() -> u16 {
    e2e::procs::free_port().expect("free port")
}

/// `sync-daemon ARGS` (they start with the subcommand and stay as given: the seed's args) with
/// the admin server on a free port through METRICS_ADDR, debug logs of the daemon itself in
/// DIR/ops-TAG.log, and `env` on top.
pub fn start(dir: &Path, tag: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
    Daemon::bare()
        .args(args)
        .admin_env(&format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "info,sync_daemon=debug")
        .envs(env.iter().copied())
        .log(dir.join(format!("ops-{tag}.log")))
        .spawn()
        .unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)))
}

/// The testbed's admin kubeconfig as JSON (YAML is a superset, so it can be written back as is).
pub fn kubeconfig_json(tb: &Testbed) -> Value {
    let kc = kube::config::Kubeconfig::read_from(tb.kubeconfig_path()).expect("admin kubeconfig");
    serde_json::to_value(&kc).expect("kubeconfig to json")
}

/// Adds a context `name` whose server is a closed port (an unreachable follower).
pub fn add_dead_context(kc: &mut Value, name: &str) {
    let server = format!("https://127.0.0.1:{}", free_port());
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": true}}));
    kc["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "user": {"token": "dead"}}));
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": name, "context": {"cluster": name, "user": name}}));
}

pub fn write_kubeconfig(dir: &Path, file: &str, kc: &Value) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, serde_json::to_vec_pretty(kc).unwrap()).unwrap();
    p
}
