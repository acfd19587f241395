//! kubeconfig-gen: resolves AWS profile chains, finds EKS clusters and writes one multi-context
//! kubeconfig; its `token` subcommand is the kubectl exec credential plugin.
pub mod cli;
pub mod error;
pub mod profiles;
pub mod kubeconfig;
pub mod token;
