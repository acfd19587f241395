//! `sync-daemon once`: one pass over every source and copy in every cluster; exit 0 when all
//! converged, 1 otherwise (the summary line is on stderr).
use crate::cli::args::SyncArgs;
use crate::cli::{client_flags, exit, fail};
use std::process::ExitCode;

pub async fn once(a: SyncArgs) -> ExitCode {
    client_flags(&a);
    match crate::controller::run::once(a.config(), a.ops.dry_run).await {
        Ok(true) => exit::code(exit::OK),
        Ok(false) => exit::code(exit::NOT_CONVERGED),
        Err(e) => fail(&e),
    }
}
