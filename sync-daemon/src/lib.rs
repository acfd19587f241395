//! sync-daemon: mirrors ConfigMaps and Secrets annotated the kubed way into other namespaces
//! and into follower clusters.
//!
//! Layers, dependencies pointing one way (README "Architecture" says why):
//! `plan` (pure decisions) → `cache` (watch-fed caches) → `controller` (queues, workers,
//! reconcile = read → plan → write → report) → `cli` (the binary: run, once, status), with
//! `clusters` (kubeconfig, clients, credentials, rate limit) and `ops` (admin server, health,
//! metrics, leader election, Events, logging) beside the controller.
pub mod cache;
pub mod cli;
pub mod clusters;
pub mod controller;
pub mod ops;
pub mod plan;

/// `error: cause: cause` on one line, for logs, Events and messages (no secret value is ever in
/// these errors). The one renderer of error chains in the daemon.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Wrappers often print their source already (kube's `ServiceError: {0}`): once is enough.
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
