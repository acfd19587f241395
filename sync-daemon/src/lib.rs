//! sync-daemon: mirrors ConfigMaps and Secrets annotated the kubed way into other namespaces
//! and into follower clusters.
//!
//! Pure decisions: `selector`, `annotations`, `desired`, `summary` (planning from the compact
//! copy cache `copies`), and `kinds` for the type mapping. `sources` caches the source objects
//! (`relist` holds what both caches share).
//! I/O: `clusters` (clients), `reconcile` (one key in one cluster), `writer` (every write),
//! `queue` (per-cluster backoff), `runner` (watches, workers, resync). `hooks` reports outcomes.
//! Operations: `app` (binary wiring), `admin` (probes), `metrics`, `ops` (Events), `leader`,
//! `status`, `logging`, `compat` (kubed's server-only flags), `opsargs`.
pub mod admin;
pub mod annotations;
pub mod app;
pub mod args;
pub mod clusters;
pub mod compat;
pub mod copies;
pub mod desired;
pub mod error;
pub mod hooks;
pub mod kinds;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod opsargs;
pub mod queue;
pub mod ratelimit;
pub mod reauth;
pub mod reconcile;
pub mod relist;
pub mod runner;
pub mod selector;
pub mod sources;
pub mod status;
pub mod summary;
pub mod writer;

/// Exit codes: see `app` (0 ok, 1 not converged / not in sync, 2 bad configuration,
/// 3 leader lease lost).
pub fn main() -> std::process::ExitCode {
    app::main()
}
