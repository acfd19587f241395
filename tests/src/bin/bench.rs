//! `bench`: sync-daemon benchmarks against testbed clusters (`make bench`; the harness is
//! `e2e::bench`). Prints the Markdown report that BENCHMARKS.md's figures come from.
use anyhow::Result;
use clap::Parser;
use e2e::bench::{Args, run};

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let report = run(&args).await?;
    println!("{report}");
    Ok(())
}
