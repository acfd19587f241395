//! sync-daemon: mirrors ConfigMaps and Secrets annotated the kubed way into other namespaces
//! and into follower clusters.
//!
//! Pure decisions: `selector`, `annotations`, `desired` (and `kinds` for the type mapping).
//! I/O: `clusters` (clients), `reconcile` (one key in one cluster), `writer` (every write),
//! `queue` (per-cluster backoff), `runner` (watches, workers, resync). `hooks` reports outcomes.
pub mod annotations;
pub mod args;
pub mod clusters;
pub mod desired;
pub mod error;
pub mod hooks;
pub mod kinds;
pub mod queue;
pub mod reconcile;
pub mod runner;
pub mod selector;
pub mod writer;

use std::process::ExitCode;

/// Exit codes: 0 converged/stopped cleanly, 1 `once` not converged, 2 bad configuration
/// (flags, kubeconfig, a context pointing at the source cluster).
pub fn main() -> ExitCode {
    use clap::Parser;
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            args::Command::Run(a) => {
                let runtime = runner::Runtime {
                    hooks: std::sync::Arc::new(hooks::Tally::default()),
                    writer: writer::Writer::default(),
                };
                runner::run(a, runtime).await.map(|()| true)
            }
            args::Command::Once(a) => runner::once(a, writer::Writer::default()).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", error::chain(&e));
            ExitCode::from(2)
        }
    }
}
