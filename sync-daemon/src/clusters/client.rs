//! The clients of one cluster: a request client with short timeouts and a watch client, sharing
//! one rate limit, both with our user agent and without kube's built-in retry, and (for exec
//! plugin contexts) our credential refresh.
use crate::clusters::ClusterError;
use kube::Client;
use kube::config::Config;
use std::time::Duration;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sent on every request, so audit logs and apiserver metrics tell the daemon's requests apart.
const USER_AGENT: &str = concat!("kubed-cross-sync/", env!("CARGO_PKG_VERSION"));

/// What every client of the daemon has in common.
fn common(mut config: Config) -> Config {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    // kube's client would otherwise retry 429/503/504 inside one request (up to 15 times, backing
    // off to 1000 s): a follower answering 503 would hold its worker for minutes before the queue's
    // outage pause and per-key backoff ever saw the error. Those govern retries here.
    config.default_retry = false;
    config
}

pub(crate) fn clients(config: Config, context: &str) -> Result<(Client, Client), ClusterError> {
    let mut config = common(config);
    // Exec-plugin contexts authenticate through `reauth` (renewal on expiry and after a 401).
    let reauth = crate::clusters::reauth::take(&mut config, context);
    // One bucket for the cluster's request and watch clients (--qps/--burst).
    let limit = crate::clusters::ratelimit::RateLimitLayer::new();
    let build = |c: Config| {
        let b = kube::client::ClientBuilder::try_from(c).map_err(|e| ClusterError::Build {
            context: context.to_string(),
            source: Box::new(e),
        })?;
        let b = b.with_layer(&limit);
        Ok(match &reauth {
            Some(layer) => b.with_layer(layer).build(),
            None => b.build(),
        })
    };
    let watch = build(config.clone())?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    Ok((build(config)?, watch))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_not_retried_inside_the_client() {
        let url: http::Uri = "https://127.0.0.1:6443".parse().unwrap();
        let c = common(Config::new(url));
        assert!(!c.default_retry, "the queue's backoff governs retries");
        assert!(
            c.headers
                .iter()
                .any(|(k, v)| k == http::header::USER_AGENT && v == USER_AGENT)
        );
    }
}
