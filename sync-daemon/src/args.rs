//! Command-line interface.
use clap::Parser;
use std::process::ExitCode;

/// Mirrors kubed-annotated ConfigMaps and Secrets across namespaces and clusters.
#[derive(Debug, Parser)]
#[command(name = "sync-daemon", version)]
pub struct Args {}

pub fn main() -> ExitCode {
    let _args = Args::parse();
    ExitCode::SUCCESS
}
