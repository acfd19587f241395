//! Which Kubernetes the testbed runs: the version a binary reports of itself (`--version`, or
//! kubectl's `version --client -o json`), so flags can be chosen per version and kubectl's
//! client/server skew checked, instead of assuming v1.20.2.
use std::fmt;
use std::path::Path;
use std::process::Command;

use crate::error::TestbedError;

/// `v<major>.<minor>.<patch>[-pre]`, as Kubernetes components print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The whole git version, e.g. `v1.32.0-rc.0`.
    pub text: String,
}

impl KubeVersion {
    /// Parses `v1.32.0-rc.0`, `1.20.2`, or a line that holds one (`Kubernetes v1.20.2`).
    pub fn parse(text: &str) -> Option<KubeVersion> {
        let word = text.split_whitespace().find(|w| {
            w.trim_start_matches('v')
                .starts_with(|c: char| c.is_ascii_digit())
        })?;
        let bare = word.trim_start_matches('v');
        let core = bare.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(KubeVersion {
            major,
            minor,
            patch,
            text: format!("v{bare}"),
        })
    }

    /// At least `major.minor` (any patch).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Minor versions apart (kubectl supports a skew of one either way).
    pub fn minor_skew(&self, other: &KubeVersion) -> u32 {
        if self.major != other.major {
            return u32::MAX;
        }
        self.minor.abs_diff(other.minor)
    }

    /// What a server binary at `path` says of itself (`kube-apiserver --version`).
    pub fn of_binary(path: &Path) -> Result<KubeVersion, TestbedError> {
        let out = run(path, &["--version"])?;
        KubeVersion::parse(&out).ok_or_else(|| unparsable(path, &out))
    }

    /// What kubectl at `path` says of itself (`kubectl version --client -o json`).
    pub fn of_kubectl(path: &Path) -> Result<KubeVersion, TestbedError> {
        let out = run(path, &["version", "--client", "-o", "json"])?;
        let json: serde_json::Value =
            serde_json::from_str(&out).map_err(|_| unparsable(path, &out))?;
        json["clientVersion"]["gitVersion"]
            .as_str()
            .and_then(KubeVersion::parse)
            .ok_or_else(|| unparsable(path, &out))
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn run(path: &Path, args: &[&str]) -> Result<String, TestbedError> {
    let out = Command::new(path)
        .args(args)
        .output()
        .map_err(|e| TestbedError::io("run", path, e))?;
    if !out.status.success() {
        return Err(TestbedError::Version {
            program: path.to_path_buf(),
            detail: format!(
                "`{} {}` exited with {}: {}",
                path.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn unparsable(path: &Path, out: &str) -> TestbedError {
    TestbedError::Version {
        program: path.to_path_buf(),
        detail: format!("no version in its output {:?}", out.trim()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_components_print_them() {
        let table = [
            ("Kubernetes v1.20.2\n", Some((1, 20, 2, "v1.20.2"))),
            ("Kubernetes v1.32.0-rc.0", Some((1, 32, 0, "v1.32.0-rc.0"))),
            ("v1.32.3", Some((1, 32, 3, "v1.32.3"))),
            ("1.30.1+k3s1", Some((1, 30, 1, "v1.30.1+k3s1"))),
            ("Kubernetes", None),
            ("v1.2", None),
            ("v1.2.3.4", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = KubeVersion::parse(text).map(|v| (v.major, v.minor, v.patch, v.text));
            let want = want.map(|(a, b, c, t)| (a, b, c, t.to_string()));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn comparisons_and_skew() {
        let v120 = KubeVersion::parse("v1.20.2").unwrap();
        let v132 = KubeVersion::parse("v1.32.0-rc.0").unwrap();
        assert!(v132.at_least(1, 24) && v132.at_least(1, 32) && !v132.at_least(1, 33));
        assert!(!v120.at_least(1, 24) && v120.at_least(1, 20));
        assert_eq!(v120.minor_skew(&v132), 12);
        assert_eq!(v132.minor_skew(&KubeVersion::parse("v1.31.9").unwrap()), 1);
        assert_eq!(
            v132.minor_skew(&KubeVersion::parse("v2.32.0").unwrap()),
            u32::MAX
        );
    }
}
