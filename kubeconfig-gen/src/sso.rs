//! IAM Identity Center (SSO) profiles: the SDK's rules for their settings (pure), and the state
//! of the token `aws sso login` cached, so a missing or expired login is named before any call,
//! with the login to run. aws-config does the credential fetch itself (`SsoCredentialsProvider`,
//! the `sso` feature); a failure of it that is the login's gets the same advice.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sdk_sso::error::ProvideErrorMetadata;

use crate::error::Error;
use crate::profiles::{Chain, Hop, ProfileError};

/// Where `aws sso login` caches the token of an SSO hop: `~/.aws/sso/cache/<sha1>.json`, the
/// SHA-1 of the session name (or of the start URL for a legacy profile without a session).
pub fn cache_path(home: &Path, session: Option<&str>, start_url: &str) -> PathBuf {
    use sha1::{Digest, Sha1};
    let key = session.unwrap_or(start_url);
    let hex: String = Sha1::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    home.join(".aws/sso/cache").join(format!("{hex}.json"))
}

/// What the cached token file says, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Missing,
    /// Unreadable or not the JSON `aws sso login` writes: left to the SDK, which names the fault.
    Unknown,
    Valid,
    /// Expired, and the SDK cannot refresh it (no refresh token and client registration, or the
    /// registration expired too). `at` is the file's `expiresAt`, verbatim.
    Expired {
        at: String,
    },
}

/// The state of a cached token file's TEXT (`None`: no file) at NOW. An expired token that the
/// SDK could refresh through SSO OIDC counts as valid: the SDK tries, and a failure is mapped
/// to the same advice afterwards.
pub fn token_state(text: Option<&str>, now: SystemTime, session: bool) -> TokenState {
    let Some(text) = text else {
        return TokenState::Missing;
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return TokenState::Unknown;
    };
    let field = |k: &str| doc.get(k).and_then(serde_json::Value::as_str);
    let (Some(_), Some(expires)) = (field("accessToken"), field("expiresAt")) else {
        return TokenState::Unknown;
    };
    let Some(expires_at) = parse_time(expires) else {
        return TokenState::Unknown;
    };
    if expires_at > now {
        return TokenState::Valid;
    }
    // Refresh exists for sessions only (the legacy form has no OIDC registration).
    let registration_valid = field("registrationExpiresAt")
        .and_then(parse_time)
        .is_some_and(|t| t > now);
    let refreshable = session
        && registration_valid
        && ["refreshToken", "clientId", "clientSecret"]
            .iter()
            .all(|k| field(k).is_some());
    if refreshable {
        TokenState::Valid
    } else {
        TokenState::Expired {
            at: expires.to_string(),
        }
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(t))
}

/// The login to run for an SSO hop: awscli v2 logs in the profile that holds the SSO settings
/// (with a session, that logs in the session for every profile sharing it).
pub fn login_command(hop_profile: &str) -> String {
    format!("aws sso login --profile {hop_profile}")
}

/// The SSO problem of CHAIN, if its base is SSO: a profile without account and role (a token,
/// not credentials), or no usable login in the cache.
///
/// Checked here rather than left to aws-config: for a legacy profile it never looks at
/// `expiresAt` (the portal refuses the token, an UnauthorizedException), and for a missing file
/// it says "failed to read" without the command that fixes it.
pub fn login_problem(chain: &Chain) -> Option<Error> {
    let Some(Hop::Sso {
        profile,
        sso_session,
        start_url,
        account_id,
        ..
    }) = chain.hops.first()
    else {
        return None;
    };
    if account_id.is_none() {
        return Some(
            ProfileError::SsoTokenOnly {
                profile: profile.clone(),
            }
            .into(),
        );
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let selected = chain.hops.last().map(Hop::profile).unwrap_or_default();
    let path = cache_path(Path::new(&home), sso_session.as_deref(), start_url);
    let text = std::fs::read_to_string(&path).ok();
    let of = subject(selected, profile, sso_session.as_deref(), start_url);
    let what = match token_state(text.as_deref(), SystemTime::now(), sso_session.is_some()) {
        TokenState::Missing => format!(
            "not logged in to SSO {of}: no cached token {}",
            path.display()
        ),
        TokenState::Expired { at } => format!(
            "the SSO login {of} expired at {at} (cached token {})",
            path.display()
        ),
        TokenState::Valid | TokenState::Unknown => return None,
    };
    Some(Error::SsoLogin {
        profile: selected.to_string(),
        what,
        login: login_command(profile),
    })
}

/// A credentials failure of CHAIN that is its SSO login's (the portal refused the cached token,
/// or the SDK's token provider could not use or refresh it), as the advice of a missing login.
pub fn login_failure(chain: &Chain, err: &(dyn std::error::Error + 'static)) -> Option<Error> {
    type RoleCredentialsError = aws_sdk_sso::error::SdkError<
        aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >;
    let Some(Hop::Sso {
        profile: sso_profile,
        sso_session,
        start_url,
        ..
    }) = chain.hops.first()
    else {
        return None;
    };
    let mut refused = false;
    let mut token = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(sdk) = e.downcast_ref::<RoleCredentialsError>() {
            refused |= sdk.code() == Some("UnauthorizedException");
        }
        token |= e.is::<aws_credential_types::provider::error::TokenError>();
        cur = e.source();
    }
    let selected = chain.hops.last().map(Hop::profile).unwrap_or_default();
    let of = subject(selected, sso_profile, sso_session.as_deref(), start_url);
    let what = if refused {
        format!("the SSO portal refused the cached token {of} (logged out, revoked or expired)")
    } else if token {
        format!(
            "the cached SSO token {of} cannot be used: {}",
            crate::sdk_error::describe(err)
        )
    } else {
        return None;
    };
    Some(Error::SsoLogin {
        profile: selected.to_string(),
        what,
        login: login_command(sso_profile),
    })
}

/// `(profile B, sso-session S)` / `(sso_start_url U)`: whose login it is (the profile only when
/// it is not the selected one).
fn subject(selected: &str, sso_profile: &str, session: Option<&str>, start_url: &str) -> String {
    let mut parts = Vec::new();
    if selected != sso_profile {
        parts.push(format!("profile {sso_profile}"));
    }
    parts.push(match session {
        Some(s) => format!("sso-session {s}"),
        None => format!("sso_start_url {start_url}"),
    });
    format!("({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cache_file_names_are_the_sdks() {
        // smithy-rs `sso/cache.rs` test vectors: SHA-1 of the session name / start URL.
        let home = Path::new("/home/me");
        let cases = [
            (
                Some("admin"),
                "https://ignored",
                "d033e22ae348aeb5660fc2140aec35850c4da997",
            ),
            (
                Some("dev-scopes"),
                "https://ignored",
                "75e4d41276d8bd17f85986fc6cccef29fd725ce3",
            ),
            (
                None,
                "https://d-92671207e4.awsapps.com/start",
                "13f9d35043871d073ab260e020f0ffde092cb14b",
            ),
        ];
        for (session, start_url, sha1) in cases {
            assert_eq!(
                cache_path(home, session, start_url),
                home.join(format!(".aws/sso/cache/{sha1}.json"))
            );
        }
    }

    #[test]
    fn token_states() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15
        let token = |expires: &str, extra: &str| {
            format!(r#"{{"accessToken":"secret","expiresAt":"{expires}"{extra}}}"#)
        };
        let refresh = r#","refreshToken":"r","clientId":"c","clientSecret":"s","registrationExpiresAt":"2030-01-01T00:00:00Z""#;
        let old_registration = r#","refreshToken":"r","clientId":"c","clientSecret":"s","registrationExpiresAt":"2020-01-01T00:00:00Z""#;
        let expired = |at: &str| TokenState::Expired { at: at.into() };
        let cases: Vec<(Option<String>, bool, TokenState)> = vec![
            (None, true, TokenState::Missing),
            (Some("not json".into()), true, TokenState::Unknown),
            (
                Some(r#"{"expiresAt":"2030-01-01T00:00:00Z"}"#.into()),
                true,
                TokenState::Unknown,
            ),
            (Some(token("soon", "")), true, TokenState::Unknown),
            (
                Some(token("2030-01-01T00:00:00Z", "")),
                true,
                TokenState::Valid,
            ),
            (
                Some(token("2020-01-01T00:00:00Z", "")),
                true,
                expired("2020-01-01T00:00:00Z"),
            ),
            (
                Some(token("2020-01-01T00:00:00Z", refresh)),
                true,
                TokenState::Valid,
            ),
            // Legacy profiles cannot refresh, whatever the file holds.
            (
                Some(token("2020-01-01T00:00:00Z", refresh)),
                false,
                expired("2020-01-01T00:00:00Z"),
            ),
            (
                Some(token("2020-01-01T00:00:00Z", old_registration)),
                true,
                expired("2020-01-01T00:00:00Z"),
            ),
        ];
        for (text, session, want) in cases {
            assert_eq!(token_state(text.as_deref(), now, session), want, "{text:?}");
        }
    }
}
