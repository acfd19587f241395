//! kubeconfig-gen: resolves AWS profile chains, finds EKS clusters and writes one multi-context
//! kubeconfig; its `token` subcommand is the kubectl exec credential plugin.
// Tests may unwrap: a failed step is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
pub mod aws;
pub mod cli;
pub mod error;
pub mod generate;
pub mod kubeconfig;
pub mod profiles;
pub mod token;
