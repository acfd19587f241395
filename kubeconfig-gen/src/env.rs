//! The process environment as kubeconfig-gen reads it: one reader for every variable.
//! A variable set to the empty string counts as unset, as it does for the AWS SDKs and awscli.

/// The variable's value; `None` when it is unset, empty or not Unicode.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
