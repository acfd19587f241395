//! kubeconfig-gen: resolves AWS profile chains, finds EKS clusters and writes one multi-context
//! kubeconfig; its `token` subcommand is the kubectl exec credential plugin.
// Tests may unwrap: a failed step is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
pub mod app;
pub mod aws;
pub mod cli;
pub mod credential;
pub mod deadline;
pub mod env;
pub mod error;
pub mod explain;
pub mod generate;
pub mod kubeconfig;
pub mod outcome;
pub mod output;
pub mod profile_types;
pub mod profiles;
pub mod sdk_error;
pub mod sso;
pub mod token;
pub mod update;
pub mod watch;
