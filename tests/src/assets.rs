//! Where the real parts live: kube-apiserver, kube-controller-manager, etcd and kubectl of one
//! Kubernetes version, the Python venv with moto, and the `testbed` binary itself (proxies and
//! the reaper run it).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::bins::is_executable;
use crate::error::TestbedError;
use crate::version::KubeVersion;

/// The cache `make setup` fills (scripts/setup.sh); used when the variables are unset.
pub const DEFAULT_CACHE: &str = "/var/cache/kubed-cross-sync";

#[derive(Clone, Debug)]
pub struct Assets {
    /// The directory they were found in (`KUBE_TEST_ASSETS`).
    pub dir: PathBuf,
    /// What kube-apiserver says of itself; flags are chosen by it.
    pub version: KubeVersion,
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
        Assets::find_in(None)
    }

    /// Like `find`, in `dir` when given.
    pub fn find_in(dir: Option<PathBuf>) -> Result<Assets, TestbedError> {
        let dir = dir.unwrap_or_else(assets_dir);
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
            version: KubeVersion::of_binary(&apiserver)?,
            dir,
            apiserver,
            controller_manager,
            etcd,
            testbed: testbed_binary()?,
        })
    }
}

/// The kubectl for the clusters under test: `KCS_KUBECTL`; else `kubectl` in the assets
/// directory (`make setup` puts each version's kubectl beside its apiserver); else the cache's
/// kubectl 1.20. Never whatever `kubectl` is on PATH.
pub fn kubectl() -> PathBuf {
    kubectl_in(&assets_dir())
}

/// `kubectl()` for the assets in `dir`.
pub fn kubectl_in(dir: &Path) -> PathBuf {
    env_path("KCS_KUBECTL")
        .or_else(|| Some(dir.join("kubectl")).filter(|p| is_executable(p)))
        .unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("kubectl/kubectl"))
}

/// `kubectl_in(dir)`, once checked to be within kubectl's supported skew (one minor version
/// either way) of `server`, so a test never drives a v1.32 cluster with kubectl 1.20 by accident.
pub fn kubectl_for(dir: &Path, server: &KubeVersion) -> Result<PathBuf, TestbedError> {
    static CLIENTS: Mutex<BTreeMap<PathBuf, Result<KubeVersion, String>>> =
        Mutex::new(BTreeMap::new());
    let path = kubectl_in(dir);
    let client = {
        let mut known = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
        known
            .entry(path.clone())
            .or_insert_with(|| KubeVersion::of_kubectl(&path).map_err(|e| crate::error_chain(&e)))
            .clone()
    };
    let skew = |detail: String| TestbedError::KubectlSkew {
        kubectl: path.display().to_string(),
        server: server.text.clone(),
        detail,
    };
    match client {
        Ok(v) if v.minor_skew(server) <= 1 => Ok(path),
        Ok(v) => Err(skew(format!(
            "it is {v}, more than one minor version away (set KCS_KUBECTL, or put a matching kubectl in {})",
            dir.display()
        ))),
        Err(e) => Err(skew(e)),
    }
}

/// The kubectl for the version in `KUBE_TEST_ASSETS`, checked like `kubectl_for`, without
/// starting a testbed (to render manifests, say).
pub fn kubectl_for_assets() -> Result<PathBuf, TestbedError> {
    let dir = assets_dir();
    kubectl_for(&dir, &KubeVersion::of_binary(&dir.join("kube-apiserver"))?)
}

/// The kubectl for the running testbed in `dir` (`testbed up`), checked against the version and
/// the binaries its state.json records.
pub fn kubectl_for_dir(dir: &Path) -> Result<PathBuf, TestbedError> {
    let state = crate::State::load(dir)?;
    let assets = state.assets.clone().unwrap_or_else(assets_dir);
    match KubeVersion::parse(&state.version) {
        Some(v) => kubectl_for(&assets, &v),
        None => Ok(kubectl_in(&assets)),
    }
}

/// `KUBE_TEST_ASSETS`, else envtest's `KUBEBUILDER_ASSETS`, else the cache's v1.20.2 set.
pub fn assets_dir() -> PathBuf {
    env_path("KUBE_TEST_ASSETS")
        .or_else(|| env_path("KUBEBUILDER_ASSETS"))
        .unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("kube"))
}

/// The venv's python (`KCS_VENV`), which has moto and boto3.
pub fn venv_python() -> PathBuf {
    venv_bin("python")
}

/// A program of the venv (`KCS_VENV`, default the cache's): python, aws (the reference awscli).
pub fn venv_bin(name: &str) -> PathBuf {
    env_path("KCS_VENV")
        .unwrap_or_else(|| Path::new(DEFAULT_CACHE).join("venv"))
        .join("bin")
        .join(name)
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
    crate::bins::beside_exe("testbed").ok_or_else(|| TestbedError::MissingBinary {
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
}
