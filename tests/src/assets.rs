//! Where the real parts live: kube-apiserver, kube-controller-manager, etcd, kubectl 1.20, the
//! Python venv with moto, and the `testbed` binary itself (proxies and the reaper run it).
use std::path::{Path, PathBuf};

use crate::error::TestbedError;

/// The cache `make setup` fills (scripts/setup.sh); used when the variables are unset.
pub const DEFAULT_CACHE: &str = "/var/cache/kubed-cross-sync";

#[derive(Clone, Debug)]
pub struct Assets {
    pub apiserver: PathBuf,
    /// None: clusters run without it (namespaces stay Terminating, no garbage collection).
    pub controller_manager: Option<PathBuf>,
    pub etcd: PathBuf,
    pub testbed: PathBuf,
}

impl Assets {
    /// `KUBE_TEST_ASSETS` (or envtest's `KUBEBUILDER_ASSETS`) names a directory holding
    /// `kube-apiserver`, optionally `kube-controller-manager` and `etcd`; etcd falls back to PATH.
    pub fn find() -> Result<Assets, TestbedError> {
        let dir = env_path("KUBE_TEST_ASSETS")
            .or_else(|| env_path("KUBEBUILDER_ASSETS"))
            .unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("kube"));
        let apiserver = dir.join("kube-apiserver");
        if !is_executable(&apiserver) {
            return Err(TestbedError::MissingBinary {
                what: "kube-apiserver",
                hint: format!(
                    "not in {} (run `make setup`, or set KUBE_TEST_ASSETS to a directory holding kube-apiserver)",
                    dir.display()
                ),
            });
        }
        let controller_manager =
            Some(dir.join("kube-controller-manager")).filter(|p| is_executable(p));
        let etcd = Some(dir.join("etcd"))
            .filter(|p| is_executable(p))
            .or_else(|| search_path("etcd"))
            .ok_or_else(|| TestbedError::MissingBinary {
                what: "etcd",
                hint: format!(
                    "neither in {} nor on PATH (Debian: apt-get install etcd-server)",
                    dir.display()
                ),
            })?;
        Ok(Assets {
            apiserver,
            controller_manager,
            etcd,
            testbed: testbed_binary()?,
        })
    }
}

/// kubectl 1.20 (`KCS_KUBECTL`), never the newer /usr/bin/kubectl.
pub fn kubectl() -> PathBuf {
    env_path("KCS_KUBECTL").unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("kubectl/kubectl"))
}

/// The venv's python (`KCS_VENV`), which has moto and boto3.
pub fn venv_python() -> PathBuf {
    env_path("KCS_VENV")
        .unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("venv"))
        .join("bin/python")
}

/// tests/aws/awsworld.py of this checkout (`KCS_AWSWORLD` overrides).
pub fn awsworld_script() -> PathBuf {
    env_path("KCS_AWSWORLD")
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("aws/awsworld.py"))
}

/// The `testbed` binary, which the library runs for its proxies and its reaper. A library
/// cannot use `env!("CARGO_BIN_EXE_testbed")` (cargo sets it for integration tests only), so:
/// `KCS_TESTBED_BIN`; the running executable if it is `testbed`; `testbed` next to the running
/// executable or one directory up (an integration test runs from target/debug/deps/, and
/// cargo builds target/debug/testbed before it runs the tests of package e2e).
pub fn testbed_binary() -> Result<PathBuf, TestbedError> {
    if let Some(p) = env_path("KCS_TESTBED_BIN") {
        return Ok(p);
    }
    let exe = std::env::current_exe()
        .map_err(|e| TestbedError::io("locate", "the running executable", e))?;
    if exe.file_name().is_some_and(|n| n == "testbed") {
        return Ok(exe);
    }
    let candidates = exe
        .parent()
        .into_iter()
        .flat_map(|d| [d.join("testbed"), d.join("../testbed")]);
    for c in candidates {
        if is_executable(&c) {
            return Ok(c);
        }
    }
    Err(TestbedError::MissingBinary {
        what: "the testbed binary",
        hint: format!(
            "not next to {} (run `cargo build -p e2e --bin testbed` or set KCS_TESTBED_BIN)",
            exe.display()
        ),
    })
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn search_path_finds_sh() {
        assert!(search_path("sh").is_some());
        assert!(search_path("no-such-binary-here").is_none());
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
