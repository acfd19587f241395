//! Deadlines of every AWS call (`--timeout`): the SDK's own `TimeoutConfig` for the clients and
//! for the STS clients inside the credential chains, telling a timeout apart from other failures,
//! and naming the endpoint that did not answer.
use std::error::Error as StdError;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::ConnectorError;

use crate::env;

/// `--timeout`'s default: a silent endpoint is reported well within a minute.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A TCP connect gets at most this long (or the whole timeout, if shorter): a host that does
/// not accept is known much sooner than one that accepts and never answers.
pub const MAX_CONNECT: Duration = Duration::from_secs(10);

/// The SDK's timeouts for one `--timeout`: the connect timeout, and an operation timeout that
/// covers every attempt and retry of one call (one hop of a chain is one call).
pub fn timeout_config(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(timeout.min(MAX_CONNECT))
        .operation_timeout(timeout)
        .build()
}

/// Go-style durations, as sync-daemon's flags take them: `30s`, `500ms`, `2m`, `1h30m`, or plain
/// seconds (`30`); zero is refused (it would fail every call). No fractions (`1.5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let units = "(ms, s, m, h)";
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = s.parse().map_err(|_| format!("{s:?}: too large"))?;
        return nonzero(s, Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: expected numbers with units {units}, as in 1h30m"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            other => return Err(format!("{s:?}: unknown unit {other:?} {units}")),
        };
        total = total.saturating_add(d);
        rest = &rest[unit_len..];
    }
    nonzero(s, total)
}

fn nonzero(s: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

/// Whether ERR, or any error it wraps, is a timeout of the SDK: a connect or read timeout of
/// the HTTP client, an operation timeout, or a credentials provider that timed out.
pub fn is_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<ConnectorError>()
            .is_some_and(ConnectorError::is_timeout)
            || matches!(
                e.downcast_ref::<CredentialsError>(),
                Some(CredentialsError::ProviderTimedOut(_))
            )
            // `SdkError::TimeoutError`'s own text: the type is generic over each operation's
            // error, and its source (the timeout itself) is private to aws-smithy-runtime.
            || e.to_string() == "request has timed out"
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The endpoint a SERVICE call (`sts`, `eks`) of PROFILE goes to, for messages: the
/// service variable, the global variable, the profile's `endpoint_url`, else the regional host.
pub fn endpoint(service: &str, region: &str, profile_endpoint: Option<&str>) -> String {
    let configured = if env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        None
    } else {
        env::var(&format!(
            "AWS_ENDPOINT_URL_{}",
            service.to_ascii_uppercase()
        ))
        .or_else(|| env::var("AWS_ENDPOINT_URL"))
        .or_else(|| profile_endpoint.map(str::to_string))
    };
    configured.unwrap_or_else(|| {
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{service}.{region}.{domain}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::SdkError;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
        for bad in [
            "", "0", "0s", "0m0s", "s", "-1s", "1.5s", "1d", "1h30", "m5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_connect_timeout_never_exceeds_the_timeout() {
        let c = timeout_config(Duration::from_secs(2));
        assert_eq!(c.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(c.operation_timeout(), Some(Duration::from_secs(2)));
        let c = timeout_config(DEFAULT_TIMEOUT);
        assert_eq!(c.connect_timeout(), Some(MAX_CONNECT));
        assert!(DEFAULT_TIMEOUT <= Duration::from_secs(30));
    }

    /// The SDK's own timeout errors, built the way its runtime builds them, and wrapped the way
    /// the credentials providers wrap them.
    #[test]
    fn timeouts_are_told_apart() {
        let op: SdkError<CredentialsError, ()> =
            SdkError::timeout_error(std::io::Error::other("operation timeout occurred after 2s"));
        assert!(is_timeout(&op));
        let wrapped = CredentialsError::provider_error(op);
        assert!(is_timeout(&wrapped));
        let connect: SdkError<CredentialsError, ()> = SdkError::dispatch_failure(
            ConnectorError::timeout(std::io::Error::other("connect").into()),
        );
        assert!(is_timeout(&CredentialsError::provider_error(connect)));
        let refused: SdkError<CredentialsError, ()> = SdkError::dispatch_failure(
            ConnectorError::io(std::io::Error::other("connection refused").into()),
        );
        assert!(!is_timeout(&CredentialsError::provider_error(refused)));
        assert!(!is_timeout(&CredentialsError::not_loaded("no keys")));
    }
}
