//! The exit codes of every subcommand, named once and shown in `--help`.
use std::process::ExitCode;

/// Stopped cleanly; `once` converged; `status` found everything in sync.
pub const OK: u8 = 0;
/// `once` did not converge; `status` found something not in sync.
pub const NOT_CONVERGED: u8 = 1;
/// Bad configuration or a start-up failure: flags (clap's usage errors too), the kubeconfig, the
/// admin port, the Lease, the async runtime.
pub const CONFIG: u8 = 2;
/// The leader lease was lost (the pod restarts as a standby).
pub const LEASE_LOST: u8 = 3;
/// The source cluster's entries changed in the kubeconfig file (the pod restarts on the new
/// source; followers are followed without a restart).
pub const SOURCE_CHANGED: u8 = 4;

/// The `--help` footer.
pub const HELP: &str = "Exit codes: 0 stopped cleanly / once converged / status all in sync; \
1 once not converged, status found something not in sync; 2 bad configuration or start-up \
failure (flags, kubeconfig, admin port, Lease, runtime); 3 leader lease lost; 4 the source \
cluster's kubeconfig entries changed (restart to apply)";

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_footer_names_every_code() {
        for c in [OK, NOT_CONVERGED, CONFIG, LEASE_LOST, SOURCE_CHANGED] {
            assert!(HELP.contains(&format!("{c} ")), "{c}");
        }
    }
}
