//! kubed compatibility: the flags of kubed's embedded generic API server are accepted so the
//! seed's Deployment args start us unchanged, then warned about once and ignored (we have no
//! embedded API server; the admin port is --metrics-addr). They are removed from argv before
//! clap sees them: the `--authentication-*`/`--authorization-*`/`--audit-*` families are open-ended.

/// Exact server-only flags; `true` = takes a value when not written as `--flag=value`.
const IGNORED: &[(&str, bool)] = &[
    ("secure-port", true),
    ("bind-address", true),
    ("tls-cert-file", true),
    ("tls-private-key-file", true),
    ("tls-cipher-suites", true),
    ("tls-min-version", true),
    ("cert-dir", true),
    ("use-kubeapiserver-fqdn-for-aks", false),
    ("enable-analytics", false),
    ("profiling", false),
    ("contention-profiling", false),
    ("enable-status-report", false),
];
/// Server-only flag families (value-taking unless `=` or the next word is a flag).
const IGNORED_PREFIXES: &[&str] = &["authentication-", "authorization-", "audit-"];

/// Splits argv into what clap parses and the names of the ignored flags (in order).
pub fn strip_server_flags(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::with_capacity(argv.len());
    let mut ignored = Vec::new();
    let mut it = argv.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(body) = arg.strip_prefix("--") else {
            kept.push(arg);
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((n, _)) => (n.to_string(), true),
            None => (body.to_string(), false),
        };
        let takes_value = if let Some((_, v)) = IGNORED.iter().find(|(n, _)| *n == name) {
            Some(*v)
        } else if IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            Some(it.peek().is_some_and(|n| !n.starts_with('-')))
        } else {
            None
        };
        match takes_value {
            None => kept.push(arg),
            Some(v) => {
                if v && !inline_value {
                    it.next();
                }
                ignored.push(format!("--{name}"));
            }
        }
    }
    (kept, ignored)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn seed_args() {
        let (kept, ignored) = strip_server_flags(v(
            "sync-daemon run --v=3 --secure-port=8443 --audit-log-path=- \
             --tls-cert-file=/var/serving-cert/tls.crt --tls-private-key-file=/var/serving-cert/tls.key \
             --use-kubeapiserver-fqdn-for-aks=true --enable-analytics=false --cluster-name=mc-mgmt \
             --kubeconfig-file=/srv/kubed/kubeconfig --config-source-namespace=prod",
        ));
        assert_eq!(
            kept,
            v(
                "sync-daemon run --v=3 --cluster-name=mc-mgmt --kubeconfig-file=/srv/kubed/kubeconfig --config-source-namespace=prod"
            )
        );
        assert_eq!(ignored.len(), 6, "{ignored:?}");
    }

    #[test]
    fn separate_values_and_families() {
        let (kept, ignored) = strip_server_flags(v(
            "x run --secure-port 8443 --profiling --authentication-kubeconfig /k \
             --authorization-always-allow-paths=/h --audit-policy-file p --cluster-name c",
        ));
        assert_eq!(kept, v("x run --cluster-name c"));
        assert_eq!(ignored.len(), 5);
    }
}
