//! The data of profiles and chains (pure): file kinds, a parsed profile, the hops of a credential
//! chain and the configuration errors; `profiles.rs` builds them from the INI files.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Config,
    Credentials,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Config => "config",
            FileKind::Credentials => "credentials",
        })
    }
}

/// The most `source_profile` references one chain may follow. No SDK has a limit, but a chain of
/// a thousand profiles is a mistake, and following it for every profile made `explain` quadratic
/// (1 GB at 1,000, 8 GB at 3,000 profiles). Real chains have two or three hops.
pub const MAX_CHAIN_HOPS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read AWS {kind} file {path}")]
    Read {
        kind: FileKind,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("AWS {kind} file {path} is not valid INI: {message}")]
    Parse {
        kind: FileKind,
        path: PathBuf,
        message: String,
    },
    #[error("profile {profile} not found in the AWS config or credentials file{hint}")]
    NotFound { profile: String, hint: String },
    #[error("could not find source profile {source_profile} referenced from {profile}")]
    MissingSource {
        profile: String,
        source_profile: String,
    },
    #[error("profile formed an infinite loop: {}", .0.join(" -> "))]
    Loop(Vec<String>),
    #[error(
        "profile {profile}: the chain follows more than {MAX_CHAIN_HOPS} source_profile references (stopped at {at})"
    )]
    TooDeep { profile: String, at: String },
    #[error(
        "profile {0}: role_arn needs `source_profile` or `credential_source`, and the profile must contain `source_profile` or `credential_source` but neither were defined"
    )]
    NoSource(String),
    #[error(
        "profile {0}: profile contained both source_profile and credential_source; only one may be set"
    )]
    BothSources(String),
    #[error("profile {profile}: profile missing {key}")]
    MissingKey { profile: String, key: &'static str },
    #[error("profile `{0}` did not contain credential information")]
    NoCredentials(String),
    #[error("profile {0}: web_identity_token_file is set but `role_arn` was missing")]
    WebIdentityWithoutRole(String),
    #[error("profile {profile}: web identity token file {path} cannot be read")]
    TokenFile {
        profile: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "profile {profile}: credential_source {value} is not one of Environment, Ec2InstanceMetadata, EcsContainer"
    )]
    BadCredentialSource { profile: String, value: String },
    /// The SDK's own words for SSO settings it rejects (smithy-rs `sso_from_profile`).
    #[error("profile {profile}: invalid SSO configuration: {message}")]
    Sso { profile: String, message: String },
    #[error("sso-session named `{session}` (referenced by profile `{profile}`) was not found")]
    MissingSsoSession { profile: String, session: String },
    /// aws-config ignores `mfa_serial`: the AssumeRole would go out without a code and be denied
    /// by a role that requires MFA, with an error that never mentions MFA.
    #[error(
        "profile {profile}: mfa_serial is set, but MFA is not supported (kubeconfig-gen runs unattended and cannot ask for a code); assume the role from a profile without mfa_serial, or use SSO or credential_process"
    )]
    MfaUnsupported { profile: String },
    /// The SDK resolves such a profile (a token provider), but it yields no AWS credentials.
    #[error(
        "profile {profile}: sso_session without sso_account_id and sso_role_name gives an SSO access token, not AWS credentials; set both"
    )]
    SsoTokenOnly { profile: String },
    #[error(
        "profile {profile}: login_session is not supported (use SSO, credential_process or keys)"
    )]
    LoginSessionUnsupported { profile: String },
}

/// A section that was read but does not define a profile, and why (AWS rules, §1 of eks-auth.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub file: FileKind,
    pub path: PathBuf,
    pub section: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub props: BTreeMap<String, String>,
    pub files: BTreeSet<FileKind>,
}

impl Profile {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }
    pub(crate) fn static_keys(&self) -> Result<(), ProfileError> {
        match (
            self.get("aws_access_key_id"),
            self.get("aws_secret_access_key"),
        ) {
            (Some(_), Some(_)) => Ok(()),
            (Some(_), None) => Err(self.missing("aws_secret_access_key")),
            (None, Some(_)) => Err(self.missing("aws_access_key_id")),
            (None, None) => Err(ProfileError::NoCredentials(self.name.clone())),
        }
    }
    fn missing(&self, key: &'static str) -> ProfileError {
        ProfileError::MissingKey {
            profile: self.name.clone(),
            key,
        }
    }
}

/// One step of a credential chain, root first. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hop {
    Static {
        profile: String,
        source: String,
    },
    WebIdentity {
        profile: String,
        role_arn: String,
        token_file: PathBuf,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_name: Option<String>,
    },
    AssumeRole {
        profile: String,
        role_arn: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
        /// The profile whose credentials make the AssumeRole call.
        source: String,
    },
    CredentialSource {
        profile: String,
        source: String,
    },
    CredentialProcess {
        profile: String,
    },
    /// IAM Identity Center: the token `aws sso login` cached, exchanged for role credentials.
    /// `account_id`/`role_name` absent (a bare `sso_session`) is a token-only profile, which the
    /// SDK resolves but which yields no AWS credentials (a problem, see `sso::problems`).
    Sso {
        profile: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sso_session: Option<String>,
        start_url: String,
        sso_region: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        account_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        role_name: Option<String>,
    },
}

impl Hop {
    pub fn profile(&self) -> &str {
        match self {
            Hop::Static { profile, .. }
            | Hop::WebIdentity { profile, .. }
            | Hop::AssumeRole { profile, .. }
            | Hop::CredentialSource { profile, .. }
            | Hop::CredentialProcess { profile }
            | Hop::Sso { profile, .. } => profile,
        }
    }
}

/// A resolved chain: `hops[0]` is the base credential source, the last hop yields the profile's
/// credentials. `root` is the profile that holds the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub hops: Vec<Hop>,
}

impl Chain {
    pub fn root(&self) -> &str {
        self.hops.first().map(Hop::profile).unwrap_or_default()
    }
    pub fn token_files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.hops.iter().filter_map(|h| match h {
            Hop::WebIdentity {
                profile,
                token_file,
                ..
            } => Some((profile.as_str(), token_file.as_path())),
            _ => None,
        })
    }
}
