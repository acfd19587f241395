//! Where the daemon may read and write copies in a cluster: everywhere (the default), or only in
//! some namespaces (`--follower-namespaces` in followers; none at all in the source cluster with
//! `--no-intra-cluster`). Wanted namespaces outside the scope are not planned there: they are
//! reported on the source instead, so a Role-only install says what it cannot do.
use std::collections::BTreeSet;

/// The namespaces a cluster's copies may live in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace: copies are watched cluster-wide (by label).
    #[default]
    Cluster,
    /// Only these: one watch per namespace and kind, nothing cluster-wide. Empty: no copies at
    /// all in this cluster.
    Namespaces(BTreeSet<String>),
}

/// Event reason of a follower namespace outside `--follower-namespaces`.
pub const NOT_ALLOWED: &str = "NamespaceNotAllowed";
/// Event reason of a `sync` annotation while intra-cluster sync is off.
pub const INTRA_CLUSTER_OFF: &str = "IntraClusterOff";

impl Scope {
    /// The namespaces listed, when the scope is a list.
    pub fn namespaces(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::Cluster => None,
            Scope::Namespaces(list) => Some(list),
        }
    }

    /// No namespace at all (`--no-intra-cluster` in the source cluster).
    pub fn is_nothing(&self) -> bool {
        self.namespaces().is_some_and(BTreeSet::is_empty)
    }

    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespaces(list) => list.contains(namespace),
        }
    }

    /// Splits `wanted` into the namespaces allowed and those outside the scope.
    pub fn split(&self, wanted: BTreeSet<String>) -> (BTreeSet<String>, BTreeSet<String>) {
        wanted.into_iter().partition(|ns| self.allows(ns))
    }

    /// The flag's value as the problem notes quote it.
    pub fn listed(&self) -> String {
        match self {
            Scope::Cluster => String::new(),
            Scope::Namespaces(list) => list.iter().cloned().collect::<Vec<_>>().join(","),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_list_scope_keeps_its_namespaces_and_reports_the_rest() {
        let scope = Scope::Namespaces(set(&["team-a", "team-b"]));
        let (inside, outside) = scope.split(set(&["team-a", "default", "team-c"]));
        assert_eq!(inside, set(&["team-a"]));
        assert_eq!(outside, set(&["default", "team-c"]));
        assert_eq!(scope.listed(), "team-a,team-b");
    }

    #[test]
    fn the_cluster_scope_allows_everything_and_an_empty_list_nothing() {
        let all = set(&["a", "b"]);
        assert_eq!(Scope::Cluster.split(all.clone()), (all.clone(), set(&[])));
        assert_eq!(
            Scope::Namespaces(set(&[])).split(all.clone()),
            (set(&[]), all)
        );
        assert_eq!(Scope::Cluster.namespaces(), None);
    }
}
