//! Every way kubeconfig-gen can fail, and the documented exit code of each.
//! Messages name the profile, file or cluster; causes stay in `#[source]` so the chain prints once.
use std::fmt;
use std::path::PathBuf;

use crate::profile_types::ProfileError;

/// Exit codes (documented in the README and `--help`).
pub mod exit {
    pub const OK: u8 = 0;
    /// The process cannot start its async runtime or, with `--watch`, its signal handlers (out of
    /// file descriptors or threads).
    pub const RUNTIME: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PROFILE: u8 = 3;
    pub const CREDENTIALS: u8 = 4;
    pub const EKS: u8 = 5;
    /// The kubeconfig cannot be read, parsed or written, or stdout cannot be written (also a
    /// closed pipe, as in `explain | head -1`).
    pub const OUTPUT: u8 = 6;
    /// `--keep-going` wrote the clusters that succeeded, but not the management context (the root
    /// profile's cluster, or `--current-context`): the pod's init container must not pass.
    pub const PARTIAL: u8 = 7;
    /// An AWS endpoint did not answer within `--timeout` (connect or whole operation).
    pub const TIMEOUT: u8 = 8;
}

/// A cause rendered to text at the AWS SDK boundary (SDK errors are large generic types): the
/// Display of each error in the source chain, never a Debug dump (`DisplayErrorContext` appends
/// one, `DispatchFailure(...)`, which the issue showed users for SSO).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(pub String);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Profile(#[from] ProfileError),

    #[error("profile {profile}: no region (set `region` in the profile, AWS_REGION or --region)")]
    NoRegion { profile: String },

    /// An SSO hop without a usable login: the cached token is missing, expired beyond refresh,
    /// or refused by the portal. `what` says which, naming the cache file and the session.
    #[error("profile {profile}: {what}; run `{login}`")]
    SsoLogin {
        profile: String,
        what: String,
        /// `aws sso login --profile P`, P being the profile that holds the SSO settings.
        login: String,
    },

    #[error("profile {profile}: cannot get AWS credentials")]
    Credentials {
        profile: String,
        #[source]
        source: Cause,
    },

    #[error("profile {profile}: {call} at {endpoint} did not answer within {after:?} (--timeout)")]
    Timeout {
        profile: String,
        /// `credentials (STS)`, `eks:ListClusters in R`, ...
        call: String,
        endpoint: String,
        after: std::time::Duration,
        #[source]
        source: Cause,
    },

    #[error("profile {profile}: eks:ListClusters in {region} failed")]
    ListClusters {
        profile: String,
        region: String,
        #[source]
        source: Cause,
    },

    #[error("profile {profile}: cluster {cluster} not found in {region}")]
    ClusterNotFound {
        profile: String,
        cluster: String,
        region: String,
    },

    #[error("profile {profile}: eks:DescribeCluster {cluster} in {region} failed")]
    DescribeCluster {
        profile: String,
        cluster: String,
        region: String,
        #[source]
        source: Cause,
    },

    #[error("profile {profile}: cluster {cluster} is {status}, not ACTIVE or UPDATING")]
    ClusterNotReady {
        profile: String,
        cluster: String,
        status: String,
    },

    #[error(
        "context {context} wanted by both {first} and {second}; name one with --cluster PROFILE:CLUSTER=CONTEXT"
    )]
    DuplicateContext {
        context: String,
        first: String,
        second: String,
    },

    #[error("cannot choose the current context ({reason}); pass --current-context")]
    AmbiguousCurrentContext { reason: String },

    /// Kept apart from `AmbiguousCurrentContext`: with `--keep-going` it means the management
    /// cluster failed (a partial result), not a question the flags must answer.
    #[error(
        "cannot choose the current context (the root profile {root} reaches no cluster); pass --current-context"
    )]
    NoRootContext { root: String },

    /// With `--keep-going`: one of several clusters wanting one context, skipped.
    #[error(
        "context {context}: skipped {skipped}, the context is also wanted by {others}; name one with --cluster PROFILE:CLUSTER=CONTEXT"
    )]
    ContextCollision {
        context: String,
        skipped: String,
        others: String,
    },

    #[error("--current-context {0}: no generated or existing context has that name")]
    UnknownCurrentContext(String),

    #[error("existing kubeconfig {path} cannot be parsed (use --replace to overwrite it)")]
    ExistingKubeconfig {
        path: PathBuf,
        #[source]
        source: Cause,
    },

    /// Reading is what fails here (a directory, no permission, an I/O error): saying "cannot
    /// write" sent readers looking at the wrong end.
    #[error("existing kubeconfig {path} cannot be read")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write kubeconfig {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// stdout is closed (`explain | head -1`) or cannot take the output.
    #[error("cannot write stdout")]
    Stdout {
        #[source]
        source: std::io::Error,
    },

    /// `--watch` cannot listen for SIGTERM / SIGINT.
    #[error("cannot install the SIGTERM/SIGINT handlers")]
    Signals {
        #[source]
        source: std::io::Error,
    },

    #[error("cannot serialize {what}")]
    Serialize {
        what: &'static str,
        #[source]
        source: Cause,
    },

    #[error("cannot sign the EKS token for cluster {cluster}")]
    Sign {
        cluster: String,
        #[source]
        source: Cause,
    },

    #[error("{tally} failed, nothing written")]
    Several { failures: Vec<Error>, tally: Tally },

    /// `--keep-going` wrote what succeeded, but the management context is not among it.
    #[error(
        "{tally} failed; --keep-going wrote the rest, but not the management context: {reason}"
    )]
    Partial {
        failures: Vec<Error>,
        tally: Tally,
        reason: Box<Error>,
    },
}

/// What `generate` tried and what failed, each count in its own unit so that a failure is never
/// set against a total of something else. A profile fails as a whole when it fails before its
/// clusters are known (chain, region, credentials, ListClusters); the clusters are those of the
/// other profiles, each failing on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub profiles: usize,
    pub failed_profiles: usize,
    pub clusters: usize,
    pub failed_clusters: usize,
}

impl fmt::Display for Tally {
    /// `2 of 3 profiles`, `1 of 4 clusters`, or both joined by `and`: only the units that failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |failed: usize, total: usize, unit: &str| {
            let plural = if total == 1 { "" } else { "s" };
            format!("{failed} of {total} {unit}{plural}")
        };
        let profiles = part(self.failed_profiles, self.profiles, "profile");
        let clusters = part(self.failed_clusters, self.clusters, "cluster");
        match (self.failed_profiles > 0, self.failed_clusters > 0) {
            (true, true) => write!(f, "{profiles} and {clusters}"),
            (true, false) => f.write_str(&profiles),
            (false, _) => f.write_str(&clusters),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::AmbiguousCurrentContext { .. }
            | Error::UnknownCurrentContext(_)
            | Error::NoRootContext { .. }
            | Error::ContextCollision { .. }
            | Error::DuplicateContext { .. } => exit::USAGE,
            Error::Profile(_) | Error::NoRegion { .. } => exit::PROFILE,
            Error::Credentials { .. } | Error::SsoLogin { .. } | Error::Sign { .. } => {
                exit::CREDENTIALS
            }
            Error::ListClusters { .. }
            | Error::ClusterNotFound { .. }
            | Error::DescribeCluster { .. }
            | Error::ClusterNotReady { .. } => exit::EKS,
            Error::ExistingKubeconfig { .. }
            | Error::ReadKubeconfig { .. }
            | Error::Write { .. }
            | Error::Stdout { .. }
            | Error::Serialize { .. } => exit::OUTPUT,
            // The most fundamental failure decides: a config error hides nothing behind it.
            Error::Several { failures, .. } => failures
                .iter()
                .map(Error::exit_code)
                .min()
                .unwrap_or(exit::USAGE),
            Error::Partial { .. } => exit::PARTIAL,
            Error::Signals { .. } => exit::RUNTIME,
            Error::Timeout { .. } => exit::TIMEOUT,
        }
    }

    /// The message with its cause chain, one line per failure for `Several` and `Partial`.
    pub fn render(&self) -> String {
        match self {
            Error::Several { failures, .. } | Error::Partial { failures, .. } => {
                format!("error: {}{}", one_line(&self.to_string()), list(failures))
            }
            other => format!("error: {}", one_line(&chain(other))),
        }
    }
}

/// `\n  - failure` per failure, each on one line (an SDK cause may span several).
pub fn list(failures: &[Error]) -> String {
    failures
        .iter()
        .map(|f| format!("\n  - {}", one_line(&chain(f))))
        .collect()
}

/// The text with every line break folded into a space, so one failure is one line of stderr.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `message: cause: cause's cause`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !s.is_empty() && !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_per_kind() {
        let cases: Vec<(Error, u8)> = vec![
            (Error::Usage("x".into()), 2),
            (
                Error::NoRegion {
                    profile: "p".into(),
                },
                3,
            ),
            (
                Error::Credentials {
                    profile: "p".into(),
                    source: Cause("denied".into()),
                },
                4,
            ),
            (
                Error::ClusterNotFound {
                    profile: "p".into(),
                    cluster: "c".into(),
                    region: "r".into(),
                },
                5,
            ),
            (
                Error::ReadKubeconfig {
                    path: "/x".into(),
                    source: std::io::Error::other("is a directory"),
                },
                6,
            ),
            (
                Error::Write {
                    path: "/x".into(),
                    source: std::io::Error::other("ro"),
                },
                6,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }

    #[test]
    fn several_takes_the_lowest_code_and_lists_each() {
        let err = Error::Several {
            failures: vec![
                Error::ClusterNotFound {
                    profile: "a".into(),
                    cluster: "c".into(),
                    region: "r".into(),
                },
                Error::Credentials {
                    profile: "b".into(),
                    source: Cause("expired".into()),
                },
            ],
            tally: Tally {
                profiles: 2,
                failed_profiles: 1,
                clusters: 3,
                failed_clusters: 1,
            },
        };
        assert_eq!(err.exit_code(), 4);
        let text = err.render();
        assert!(
            text.contains("1 of 2 profiles and 1 of 3 clusters failed, nothing written"),
            "{text}"
        );
        assert!(
            text.contains("profile b: cannot get AWS credentials: expired"),
            "{text}"
        );
    }

    #[test]
    fn tally_names_only_the_units_that_failed() {
        let t = |profiles, failed_profiles, clusters, failed_clusters| Tally {
            profiles,
            failed_profiles,
            clusters,
            failed_clusters,
        };
        let cases = [
            (t(2, 2, 0, 0), "2 of 2 profiles"),
            (t(1, 1, 0, 0), "1 of 1 profile"),
            (t(1, 0, 2, 1), "1 of 2 clusters"),
            (t(3, 0, 1, 1), "1 of 1 cluster"),
            (t(2, 1, 2, 1), "1 of 2 profiles and 1 of 2 clusters"),
        ];
        for (tally, want) in cases {
            assert_eq!(tally.to_string(), want, "{tally:?}");
        }
    }
}
