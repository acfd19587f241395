//! Kubeconfig files for the daemon under test, cut from the testbed's admin kubeconfig: the
//! source and some followers only, and aliases (a second context for a cluster, maybe with a
//! namespace of its own).
use std::path::Path;

use kube::config::Kubeconfig;

use crate::error::TestbedError;

pub fn read(path: &Path) -> Result<Kubeconfig, TestbedError> {
    Kubeconfig::read_from(path).map_err(|source| TestbedError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `kc` as YAML.
pub fn write(kc: &Kubeconfig, path: &Path) -> Result<(), TestbedError> {
    let yaml = serde_saphyr::to_string(kc).map_err(|e| TestbedError::Encode {
        what: "a kubeconfig",
        source: Box::new(e),
    })?;
    std::fs::write(path, yaml).map_err(|e| TestbedError::io("write", path, e))
}

/// The contexts `source` and `followers` of `kc` with their clusters, current-context = source.
pub fn subset(kc: &Kubeconfig, source: &str, followers: &[String]) -> Kubeconfig {
    let keep: Vec<&str> = std::iter::once(source)
        .chain(followers.iter().map(String::as_str))
        .collect();
    let mut sub = kc.clone();
    sub.contexts.retain(|c| keep.contains(&c.name.as_str()));
    let clusters: Vec<String> = sub
        .contexts
        .iter()
        .filter_map(|c| c.context.as_ref().map(|x| x.cluster.clone()))
        .collect();
    sub.clusters.retain(|c| clusters.contains(&c.name));
    sub.current_context = Some(source.to_string());
    sub
}

/// Writes the `subset` of the admin kubeconfig at `admin` to `out`.
pub fn write_subset(
    admin: &Path,
    source: &str,
    followers: &[String],
    out: &Path,
) -> Result<(), TestbedError> {
    write(&subset(&read(admin)?, source, followers), out)
}

/// Adds context `alias`, a copy of context `of` (same cluster and user); with `namespace`, the
/// alias sets that namespace.
pub fn add_alias(
    kc: &mut Kubeconfig,
    of: &str,
    alias: &str,
    namespace: Option<&str>,
) -> Result<(), TestbedError> {
    let mut ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == of)
        .cloned()
        .ok_or_else(|| TestbedError::NoContext(of.to_string()))?;
    ctx.name = alias.to_string();
    if let (Some(ns), Some(c)) = (namespace, ctx.context.as_mut()) {
        c.namespace = Some(ns.to_string());
    }
    kc.contexts.push(ctx);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
        clusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n\
        - name: b\n  cluster: {server: 'https://127.0.0.1:2'}\n\
        - name: c\n  cluster: {server: 'https://127.0.0.1:3'}\n\
        users:\n- name: u\n  user: {token: t}\n\
        contexts:\n- name: a\n  context: {cluster: a, user: u}\n\
        - name: b\n  context: {cluster: b, user: u}\n\
        - name: c\n  context: {cluster: c, user: u}\n";

    #[test]
    fn subset_keeps_the_named_contexts_and_their_clusters() {
        let kc = Kubeconfig::from_yaml(ADMIN).unwrap();
        let sub = subset(&kc, "b", &["c".to_string()]);
        let names = |v: Vec<&str>| v.join(",");
        assert_eq!(
            names(sub.contexts.iter().map(|c| c.name.as_str()).collect()),
            "b,c"
        );
        assert_eq!(
            names(sub.clusters.iter().map(|c| c.name.as_str()).collect()),
            "b,c"
        );
        assert_eq!(sub.current_context.as_deref(), Some("b"));
    }

    #[test]
    fn aliases_copy_a_context_and_may_set_a_namespace() {
        let mut kc = Kubeconfig::from_yaml(ADMIN).unwrap();
        add_alias(&mut kc, "a", "a-ns", Some("team")).unwrap();
        add_alias(&mut kc, "b", "b-too", None).unwrap();
        assert!(add_alias(&mut kc, "nope", "x", None).is_err());
        let ctx = |n: &str| {
            kc.contexts
                .iter()
                .find(|c| c.name == n)
                .and_then(|c| c.context.clone())
                .unwrap()
        };
        assert_eq!(ctx("a-ns").cluster, "a");
        assert_eq!(ctx("a-ns").namespace.as_deref(), Some("team"));
        assert_eq!(ctx("b-too").namespace, None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kc");
        write(&kc, &p).unwrap();
        assert_eq!(read(&p).unwrap().contexts.len(), 5);
    }
}
