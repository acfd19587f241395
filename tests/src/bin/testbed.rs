//! `testbed`: start, fault and stop real kube-apiserver clusters (see `testbed --help`, README.md).
use std::process::ExitCode;

use clap::Parser;
use e2e::cli::{Cli, Command, faults};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
            }),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Up { dir, clusters, aws } => e2e::cli::up(dir, &clusters, aws).await,
        Command::Down { dir } => e2e::down(&dir),
        Command::Fault {
            dir,
            cluster,
            kind,
            latency_ms,
        } => match faults(kind, latency_ms) {
            Ok(list) => e2e::cli::fault(dir, &cluster, &list).await,
            Err(usage) => {
                eprintln!("testbed: {usage}");
                return ExitCode::from(2);
            }
        },
        Command::Status { dir } => e2e::status(&dir).map(|v| println!("{v:#}")),
        Command::Proxy {
            upstream,
            ports_file,
        } => e2e::proxy::run(upstream, &ports_file).await,
        Command::Reap {
            parent_pid,
            parent_start,
            dir,
            remove_dir,
        } => e2e::reap(parent_pid, parent_start, &dir, remove_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {}", e2e::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
