//! The binary: argv (kubed's server-only flags stripped), logging, the async runtime, then one
//! subcommand — `run` (the daemon), `once` (one pass), `status` (a read-only report). Exit codes
//! are `exit`'s, shown in `--help`.
pub mod args;
pub mod compat;
pub mod duration;
pub mod exit;
pub mod once;
pub mod run;
pub mod status;
pub mod table;

use crate::cli::args::{Cli, Command, SyncArgs};
use crate::ops::logging::{self, LogFormat};
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

pub fn main() -> ExitCode {
    let (argv, ignored) = compat::strip_server_flags(std::env::args().collect());
    let cli = Cli::parse_from(argv);
    let (format, v) = match &cli.command {
        Command::Run(a) | Command::Once(a) => (a.ops.log_format, a.ops.verbosity),
        Command::Status(_) => (LogFormat::Plain, None),
    };
    logging::init(format, v);
    if !ignored.is_empty() {
        tracing::warn!(flags = %ignored.join(" "), "flags of kubed's embedded API server are accepted and ignored (no API server here; the admin port is --metrics-addr)");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::code(exit::CONFIG);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(a).await,
            Command::Once(a) => once::once(a).await,
            Command::Status(a) => status::status(a).await,
        }
    });
    // Tasks still blocked (watches, the exec plugin) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Logs and prints a start-up failure; exit [`exit::CONFIG`].
pub(crate) fn fail(e: &dyn std::error::Error) -> ExitCode {
    tracing::error!(error = %crate::chain(e), "sync-daemon failed");
    eprintln!("error: {}", crate::chain(e));
    exit::code(exit::CONFIG)
}

/// The client flags of `run` and `once`: kubed's --qps/--burst, and its unused --kubeconfig.
pub(crate) fn client_flags(a: &SyncArgs) {
    crate::clusters::ratelimit::configure(a.ops.qps, a.ops.burst);
    crate::clusters::exec::configure(a.ops.exec_timeout);
    if a.ops.kubeconfig.is_some() {
        tracing::warn!(
            "--kubeconfig is accepted and ignored: the source cluster is --source-context, else the --kubeconfig-file current-context"
        );
    }
}
