//! Where the binaries under test are: the product binaries (sync-daemon, kubeconfig-gen) and the
//! testbed's own, found one way for the tests, the bench and the testbed library alike.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::TestbedError;

pub const SYNC_DAEMON: &str = "sync-daemon";
pub const KUBECONFIG_GEN: &str = "kubeconfig-gen";

/// `name` where cargo puts the binaries beside the running executable: target/<profile>/NAME,
/// also from target/<profile>/deps/, where test executables run.
pub fn beside_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The sync-daemon under test (`KCS_SYNC_DAEMON`, else `product(SYNC_DAEMON)`).
pub fn sync_daemon() -> Result<PathBuf, TestbedError> {
    product(SYNC_DAEMON)
}

/// A product binary: for sync-daemon `KCS_SYNC_DAEMON` when set (`make soak` runs the release
/// build that way); else the one beside the running executable. A test executable builds it
/// first, once per process and with its own profile, because `cargo test -p e2e` does not build
/// other packages' binaries (a fresh build is a quick no-op); the bench takes what is there.
pub fn product(name: &str) -> Result<PathBuf, TestbedError> {
    if name == SYNC_DAEMON
        && let Some(p) = std::env::var_os("KCS_SYNC_DAEMON").filter(|v| !v.is_empty())
    {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| TestbedError::io("locate", "the running executable", e))?;
    if let Some(profile_dir) = test_profile_dir(&exe) {
        build_once(name, profile_dir);
    }
    beside_exe(name).ok_or_else(|| TestbedError::MissingBinary {
        what: "a product binary",
        hint: format!(
            "no {name} beside {}: build it with the same profile (cargo build [--release] -p {name}){}",
            exe.display(),
            if name == SYNC_DAEMON {
                " or set KCS_SYNC_DAEMON"
            } else {
                ""
            }
        ),
    })
}

/// target/<profile>/ for a test executable (target/<profile>/deps/NAME-HASH), else None.
fn test_profile_dir(exe: &Path) -> Option<&Path> {
    let deps = exe.parent()?;
    (deps.file_name()? == "deps").then_some(deps.parent()?)
}

/// `cargo build -q -p NAME --bin NAME` for the profile of `profile_dir`, at most once per name and
/// process. A failed build is reported and left to the lookup that follows: an existing binary
/// is still used, a missing one is an error there.
fn build_once(name: &str, profile_dir: &Path) {
    static BUILT: Mutex<BTreeMap<String, ()>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.insert(name.to_string(), ()).is_some() {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", name, "--bin", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => eprintln!("e2e: building {name} failed ({other:?}); using what is built"),
    }
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_are_recognised_by_their_deps_directory() {
        let exe = Path::new("/r/target/release/deps/faults-0123abcd");
        assert_eq!(test_profile_dir(exe), Some(Path::new("/r/target/release")));
        assert_eq!(test_profile_dir(Path::new("/r/target/release/bench")), None);
    }

    #[test]
    fn beside_exe_finds_nothing_that_is_not_there() {
        assert_eq!(beside_exe("no-such-binary-here"), None);
    }

    #[test]
    fn is_executable_rejects_directories_and_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("f");
        std::fs::write(&plain, "x").unwrap();
        assert!(!is_executable(dir.path()));
        assert!(!is_executable(&plain));
        assert!(is_executable(Path::new("/bin/sh")));
    }
}
