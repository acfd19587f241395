//! The kubeconfig's contexts as clusters: which context is the source (--source-context, else
//! current-context), the server a context reaches (normalised, so two spellings of one URL
//! compare equal), and the guard that refuses a follower context pointing at the source.
use crate::clusters::ClusterError;
use kube::config::Kubeconfig;
use std::path::Path;

/// dropped: two servers are the same cluster when these are equal.
pub fn normalise_server(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    let (scheme, rest) = s.split_once("://").unwrap_or(("https", s));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
    let has_port = match authority.rfind(':') {
        Some(i) => {
            !authority.ends_with(']') && authority[i + 1..].chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    };
    if has_port {
        format!("{scheme}://{authority}")
    } else {
        let port = if scheme == "http" { 80 } else { 443 };
        format!("{scheme}://{authority}:{port}")
    }
}

pub(crate) fn server_of(kc: &Kubeconfig, context: &str) -> Option<String> {
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .as_ref()?;
    cluster.server.as_deref().map(normalise_server)
}

/// Picks the source context and checks that no other context points at the same server.
pub fn source_context(
    kc: &Kubeconfig,
    path: &Path,
    requested: Option<&str>,
) -> Result<String, ClusterError> {
    let source = match requested.or(kc.current_context.as_deref()) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err(ClusterError::NoSourceContext(path.to_path_buf())),
    };
    if !kc.contexts.iter().any(|c| c.name == source) {
        return Err(ClusterError::UnknownSourceContext(source));
    }
    if let Some(server) = server_of(kc, &source) {
        for c in &kc.contexts {
            if c.name != source && server_of(kc, &c.name).as_deref() == Some(server.as_str()) {
                return Err(ClusterError::SourceIsTarget {
                    source_context: source,
                    other: c.name.clone(),
                    server,
                });
            }
        }
    }
    Ok(source)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn normalises_servers() {
        let table = [
            ("https://127.0.0.1:6443", "https://127.0.0.1:6443"),
            ("https://127.0.0.1:6443/", "https://127.0.0.1:6443"),
            (
                "https://ABC.eks.amazonaws.com",
                "https://abc.eks.amazonaws.com:443",
            ),
            (
                "https://abc.eks.amazonaws.com/",
                "https://abc.eks.amazonaws.com:443",
            ),
            ("http://h", "http://h:80"),
            ("https://[::1]", "https://[::1]:443"),
            ("https://[::1]:8443/x", "https://[::1]:8443"),
        ];
        for (input, want) in table {
            assert_eq!(normalise_server(input), want, "{input}");
        }
    }

    fn kubeconfig(current: &str, servers: &[(&str, &str)]) -> Kubeconfig {
        let mut y =
            format!("apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n");
        for (n, s) in servers {
            y += &format!("- name: {n}\n  cluster:\n    server: {s}\n");
        }
        y += "contexts:\n";
        for (n, _) in servers {
            y += &format!("- name: {n}\n  context:\n    cluster: {n}\n    user: u\n");
        }
        y += "users:\n- name: u\n  user:\n    token: t\n";
        Kubeconfig::from_yaml(&y).expect("test kubeconfig")
    }

    #[test]
    fn source_selection_and_reversal_guard() {
        let p = Path::new("/k");
        let ok = kubeconfig("a", &[("a", "https://h:1"), ("b", "https://h:2")]);
        assert_eq!(source_context(&ok, p, None).ok().as_deref(), Some("a"));
        assert_eq!(source_context(&ok, p, Some("b")).ok().as_deref(), Some("b"));
        assert!(matches!(
            source_context(&ok, p, Some("zz")),
            Err(ClusterError::UnknownSourceContext(_))
        ));
        let dup = kubeconfig("a", &[("a", "https://h:1"), ("b", "https://H:1/")]);
        let err = source_context(&dup, p, None).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("\"a\"") && msg.contains("\"b\""), "{msg}");
        let none = kubeconfig("", &[("a", "https://h:1")]);
        assert!(matches!(
            source_context(&none, p, None),
            Err(ClusterError::NoSourceContext(_))
        ));
    }
}
