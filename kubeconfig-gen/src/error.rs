//! Every way kubeconfig-gen can fail, and the documented exit code of each.
//! Messages name the profile, file or cluster; causes stay in `#[source]` so the chain prints once.
use std::path::PathBuf;

use crate::profiles::ProfileError;

/// Exit codes (documented in the README and `--help`).
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 2;
    pub const PROFILE: u8 = 3;
    pub const CREDENTIALS: u8 = 4;
    pub const EKS: u8 = 5;
    pub const OUTPUT: u8 = 6;
}

/// A cause rendered to text at the AWS SDK boundary (SDK errors are large generic types; their
/// `DisplayErrorContext` text is what a reader needs, and it never contains credentials).
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

    #[error("profile {profile}: cannot get AWS credentials")]
    Credentials {
        profile: String,
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

    #[error("--current-context {0}: no generated or existing context has that name")]
    UnknownCurrentContext(String),

    #[error("existing kubeconfig {path} cannot be parsed (use --replace to overwrite it)")]
    ExistingKubeconfig {
        path: PathBuf,
        #[source]
        source: Cause,
    },

    #[error("cannot write kubeconfig {path}")]
    Write {
        path: PathBuf,
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

    #[error("{} of {total} failed{}", failures.len(), if *kept_going { " (--keep-going: the rest was written)" } else { ", nothing written" })]
    Several {
        failures: Vec<Error>,
        total: usize,
        kept_going: bool,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::AmbiguousCurrentContext { .. }
            | Error::UnknownCurrentContext(_)
            | Error::DuplicateContext { .. } => exit::USAGE,
            Error::Profile(_) | Error::NoRegion { .. } => exit::PROFILE,
            Error::Credentials { .. } | Error::Sign { .. } => exit::CREDENTIALS,
            Error::ListClusters { .. }
            | Error::ClusterNotFound { .. }
            | Error::DescribeCluster { .. }
            | Error::ClusterNotReady { .. } => exit::EKS,
            Error::ExistingKubeconfig { .. } | Error::Write { .. } | Error::Serialize { .. } => {
                exit::OUTPUT
            }
            // The most fundamental failure decides: a config error hides nothing behind it.
            Error::Several { failures, .. } => failures
                .iter()
                .map(Error::exit_code)
                .min()
                .unwrap_or(exit::USAGE),
        }
    }

    /// The message with its cause chain, one line per failure for `Several`.
    pub fn render(&self) -> String {
        match self {
            Error::Several { failures, .. } => {
                let mut out = format!("error: {self}");
                for f in failures {
                    out.push_str("\n  - ");
                    out.push_str(&chain(f));
                }
                out
            }
            other => format!("error: {}", chain(other)),
        }
    }
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
            total: 3,
            kept_going: false,
        };
        assert_eq!(err.exit_code(), 4);
        let text = err.render();
        assert!(text.contains("2 of 3 failed, nothing written"), "{text}");
        assert!(
            text.contains("profile b: cannot get AWS credentials: expired"),
            "{text}"
        );
    }
}
