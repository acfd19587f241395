//! The EKS bearer token: a presigned STS GetCallerIdentity URL (aws-sigv4 query signing, the cluster
//! bound through the signed `x-k8s-aws-id` header), wrapped in an ExecCredential byte-identical to
//! `aws eks get-token`'s. Pure: credentials and the clock come from the caller.
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{Cause, Error, Result};

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// awscli `URL_TIMEOUT`; STS honours the URL for 15 min after X-Amz-Date whatever this says.
pub const URL_EXPIRES: Duration = Duration::from_secs(60);
/// awscli `TOKEN_EXPIRATION_MINS`.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
pub const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
const SUPPORTED: [&str; 3] = [
    "client.authentication.k8s.io/v1",
    V1BETA1,
    "client.authentication.k8s.io/v1alpha1",
];

/// The STS host of the region's partition. Always the canonical regional host, even when
/// AWS_ENDPOINT_URL[_STS] points elsewhere: the token must have the shape EKS accepts.
pub fn sts_host(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else {
        "amazonaws.com"
    };
    format!("sts.{region}.{domain}")
}

/// botocore's `percent_encode` (RFC 3986 unreserved characters kept). Hand-written because the
/// token must match awscli byte for byte, and aws-sigv4 only exposes its encoding through
/// `apply_to_request_http1x`, which orders the parameters differently.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The presigned GetCallerIdentity URL, parameters in botocore's order (operation parameters,
/// then X-Amz-Algorithm … X-Amz-SignedHeaders, X-Amz-Security-Token, X-Amz-Signature).
pub fn presigned_url(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| Error::Sign {
        cluster: cluster.to_string(),
        source: Cause(e.to_string()),
    };
    let host = sts_host(region);
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| fail(&e))?
        .into();
    let headers = [("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| fail(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| fail(&e))?.into_parts();
    let (_, query) = instructions.into_parts();
    let (signature, rest): (Vec<_>, Vec<_>) = query
        .into_iter()
        .partition(|(k, _)| *k == "X-Amz-Signature");
    let mut url = base;
    for (k, v) in rest.iter().chain(signature.iter()) {
        url.push('&');
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
    }
    Ok(url)
}

pub fn token_from_url(url: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

/// Test-only: `KUBECONFIG_GEN_TEST_TOKEN_LIFETIME=SECONDS` (10 to 840) shortens the token's
/// `expirationTimestamp`, so that a test sees a client renew its token several times within
/// minutes (the token itself is the same; only the client's idea of when to renew changes).
pub const TEST_LIFETIME_VAR: &str = "KUBECONFIG_GEN_TEST_TOKEN_LIFETIME";

/// The lifetime written into a token: [`TOKEN_LIFETIME`], unless the test-only variable says less.
pub fn lifetime() -> Duration {
    crate::env::var(TEST_LIFETIME_VAR)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (10..=TOKEN_LIFETIME.as_secs()).contains(s))
        .map_or(TOKEN_LIFETIME, Duration::from_secs)
}

/// [`lifetime`] ahead, but never past one minute before the signing credentials expire (a
/// presigned URL dies with its credentials).
pub fn expiration(now: SystemTime, credentials_expiry: Option<SystemTime>) -> SystemTime {
    expiration_after(now, credentials_expiry, lifetime())
}

/// [`expiration`] with the lifetime given.
pub fn expiration_after(
    now: SystemTime,
    credentials_expiry: Option<SystemTime>,
    lifetime: Duration,
) -> SystemTime {
    let by_lifetime = now + lifetime;
    match credentials_expiry.and_then(|e| e.checked_sub(Duration::from_secs(60))) {
        Some(limit) if limit < by_lifetime => limit,
        _ => by_lifetime,
    }
}

/// The apiVersion to answer with, from KUBERNETES_EXEC_INFO, and awscli's stderr notice if any.
pub fn api_version(exec_info: Option<&str>) -> (String, Option<String>) {
    let fallback = V1BETA1.to_string();
    let Some(raw) = exec_info.filter(|s| !s.is_empty()) else {
        return (fallback, None);
    };
    let parsed: Option<serde_json::Value> = serde_json::from_str(raw).ok();
    let Some(value) = parsed else {
        return (
            fallback,
            Some(format!(
                "Error parsing KUBERNETES_EXEC_INFO, defaulting to {V1BETA1}. This is likely a bug in your Kubernetes client. Please update your Kubernetes client."
            )),
        );
    };
    match value.get("apiVersion").and_then(|v| v.as_str()) {
        Some(v) if SUPPORTED[..2].contains(&v) => (v.to_string(), None),
        Some(v) if v == SUPPORTED[2] => (
            v.to_string(),
            Some(format!(
                "Kubeconfig user entry is using deprecated API version {v}. Run 'aws eks update-kubeconfig' to update."
            )),
        ),
        _ => (
            fallback,
            Some(format!(
                "Unrecognized API version in KUBERNETES_EXEC_INFO, defaulting to {V1BETA1}. This is likely due to an outdated AWS CLI. Please update your AWS CLI."
            )),
        ),
    }
}

#[derive(Serialize)]
struct ExecCredential<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    spec: serde_json::Map<String, serde_json::Value>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(rename = "expirationTimestamp")]
    expiration_timestamp: String,
    token: &'a str,
}

/// The ExecCredential exactly as awscli prints it: JSON indented by 4, then two newlines
/// (its JSON formatter ends with one, get-token prints another).
pub fn exec_credential(api_version: &str, expiration: SystemTime, token: &str) -> Result<String> {
    let ts = OffsetDateTime::from(expiration)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|e| Error::Serialize {
            what: "expirationTimestamp",
            source: Cause(e.to_string()),
        })?;
    let body = ExecCredential {
        kind: "ExecCredential",
        api_version,
        spec: Default::default(),
        status: Status {
            expiration_timestamp: ts,
            token,
        },
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    body.serialize(&mut ser).map_err(|e| Error::Serialize {
        what: "ExecCredential",
        source: Cause(e.to_string()),
    })?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str("\n\n");
    Ok(text)
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
