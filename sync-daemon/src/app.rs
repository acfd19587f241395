//! Start-up wiring of the binary: argv (kubed's server-only flags stripped), logging, then
//! `run` (admin server, leader election, metrics hooks), `once` or `status`.
//! Exit codes: 0 converged / stopped cleanly / status all in sync; 1 `once` not converged or
//! `status` found something not in sync; 2 bad configuration or start-up failure;
//! 3 leader lease lost (the pod restarts as a standby).
use crate::args::{Cli, Command, SyncArgs};
use crate::error::chain;
use crate::leader::Leader;
use crate::ops::Ops;
use crate::runner::{self, StartError};
use crate::writer::Writer;
use crate::{compat, logging, status};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for the lease release.
const RELEASE_LIMIT: Duration = Duration::from_secs(3);

pub fn main() -> ExitCode {
    let (argv, ignored) = compat::strip_server_flags(std::env::args().collect());
    let cli = Cli::parse_from(argv);
    let (format, v) = match &cli.command {
        Command::Run(a) | Command::Once(a) => (a.ops.log_format, a.ops.verbosity),
        Command::Status(_) => (crate::opsargs::LogFormat::Plain, None),
    };
    logging::init(format, v);
    if !ignored.is_empty() {
        tracing::warn!(flags = %ignored.join(" "), "flags of kubed's embedded API server are accepted and ignored (no API server here; the admin port is --metrics-addr)");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::Once(a) => {
                warn_client_flags(&a);
                let writer = Writer {
                    dry_run: a.ops.dry_run,
                };
                match runner::once(a, writer).await {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::from(1),
                    Err(e) => fail(&e),
                }
            }
            Command::Status(a) => status_cmd(a).await,
        }
    });
    // Tasks still blocked (watches, the exec plugin) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    tracing::error!(error = %chain(e), "sync-daemon failed");
    eprintln!("error: {}", chain(e));
    ExitCode::from(2)
}

fn warn_client_flags(a: &SyncArgs) {
    crate::ratelimit::configure(a.ops.qps, a.ops.burst);
    if a.ops.kubeconfig.is_some() {
        tracing::warn!(
            "--kubeconfig is accepted and ignored: the source cluster is --source-context, else the --kubeconfig-file current-context"
        );
    }
}

async fn run(a: SyncArgs) -> ExitCode {
    warn_client_flags(&a);
    let ops = Arc::new(Ops::new(a.ops.dry_run, a.ops.unreachable_after));
    if let Err(e) =
        crate::admin::serve(a.ops.metrics_addr, ops.health.clone(), ops.metrics.clone()).await
    {
        tracing::error!(addr = %a.ops.metrics_addr, error = %e, "cannot bind the admin server");
        eprintln!(
            "error: cannot bind the admin server on {}: {e}",
            a.ops.metrics_addr
        );
        return ExitCode::from(2);
    }
    let mut leader: Option<Leader> = None;
    if a.ops.leader_elect {
        let client =
            match crate::clusters::load(a.kubeconfig_file.as_deref(), a.source_context.as_deref())
                .await
            {
                Ok(c) => c.source.client,
                Err(e) => return fail(&e),
            };
        let ns = a
            .ops
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| a.config_source_namespace.clone())
            .unwrap_or_else(|| "default".into());
        match crate::leader::start(client, &ns, &a.ops.lease_name, a.ops.lease_duration).await {
            Ok(l) => leader = Some(l),
            Err(e) => return fail(&e),
        }
    } else {
        ops.metrics.leader.set(1);
    }
    let state = leader.as_ref().map(|l| l.state.clone());
    // Holds a receiver: aborted before the release, which waits for every receiver to go.
    let mut gauge_task = None;
    if let Some(mut s) = state.clone() {
        let m = ops.metrics.clone();
        gauge_task = Some(tokio::spawn(async move {
            loop {
                m.leader.set(i64::from(*s.borrow_and_update()));
                if s.changed().await.is_err() {
                    return;
                }
            }
        }));
    }
    let rt = runner::Runtime {
        hooks: ops.clone(),
        writer: Writer {
            dry_run: a.ops.dry_run,
        },
        leader: state,
    };
    let result = runner::run(a, rt).await;
    let started = std::time::Instant::now();
    if let Some(t) = gauge_task {
        t.abort();
        let _ = t.await;
    }
    if let Some(l) = leader {
        l.release(RELEASE_LIMIT).await;
    }
    tracing::info!(release_ms = started.elapsed().as_millis() as u64, "stopped");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::LeaseLost) => {
            tracing::error!("leader lease lost");
            ExitCode::from(3)
        }
        Err(e) => fail(&e),
    }
}

async fn status_cmd(a: status::StatusArgs) -> ExitCode {
    let rows = match status::collect(&a).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match a.output {
        status::Output::Table => print!("{}", status::table(&rows)),
        status::Output::Json => {
            let doc = serde_json::json!({
                "items": rows,
                "summary": status::summary(&rows).trim(),
            });
            println!("{doc:#}");
        }
    }
    if status::healthy(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
