//! Command-line interface.
use clap::Parser;
use std::process::ExitCode;

/// Generates a multi-context kubeconfig for EKS clusters reached through AWS profile chains.
#[derive(Debug, Parser)]
#[command(name = "kubeconfig-gen", version)]
pub struct Cli {}

pub fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
