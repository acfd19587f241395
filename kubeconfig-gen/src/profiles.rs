//! AWS config/credentials INI files → named profiles → the credential chain of each profile.
//! Pure (the caller reads the files). aws-config resolves the real chains; this module exists for
//! what aws-config does not expose: listing profiles, reporting ignored sections, and `explain`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};

pub use crate::profile_types::{
    Chain, FileKind, Hop, Ignored, MAX_CHAIN_HOPS, Profile, ProfileError,
};

#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub profiles: BTreeMap<String, Profile>,
    /// `[sso-session NAME]` sections of the config file: NAME → keys.
    pub sso_sessions: BTreeMap<String, BTreeMap<String, String>>,
    pub ignored: Vec<Ignored>,
}

/// A file's text as read by the caller (`None`: the file does not exist, which AWS treats as empty).
pub struct Source<'a> {
    pub kind: FileKind,
    pub path: &'a Path,
    pub text: Option<&'a str>,
}

/// rust-ini also accepts `key: value`; AWS parsers require `=` ("Expected an '=' sign defining a
/// property"), so such a line must be an error here too, or `explain` would disagree with aws-config.
fn property_without_equals(text: &str) -> Option<String> {
    text.lines().enumerate().find_map(|(i, line)| {
        let starts_blank = line.starts_with([' ', '\t']);
        let t = line.trim();
        let is_property =
            !starts_blank && !t.is_empty() && !t.starts_with(['#', ';', '[']) && !t.contains('=');
        is_property.then(|| format!("line {}: expected an '=' sign defining a property", i + 1))
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/.%@_:+".contains(c))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

enum Section {
    Profile { name: String, prefixed: bool },
    SsoSession(String),
    Other,
    Ignored(&'static str),
}

fn classify(kind: FileKind, raw: &str) -> (Section, String) {
    let trimmed = raw.trim().to_string();
    let after_prefix = |prefix: &str| {
        trimmed
            .strip_prefix(prefix)
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map(|rest| rest.trim().to_string())
    };
    let section = match kind {
        FileKind::Config => {
            if let Some(name) = after_prefix("profile") {
                Section::Profile {
                    name,
                    prefixed: true,
                }
            } else if trimmed == "default" {
                Section::Profile {
                    name: trimmed.clone(),
                    prefixed: false,
                }
            } else if let Some(name) = after_prefix("sso-session") {
                Section::SsoSession(name)
            } else if after_prefix("services").is_some() {
                Section::Other
            } else {
                Section::Ignored("the config file takes [profile NAME]; a bare [NAME] is ignored")
            }
        }
        FileKind::Credentials => {
            if after_prefix("profile").is_some() {
                Section::Ignored(
                    "the credentials file takes a bare [NAME]; [profile NAME] is ignored",
                )
            } else {
                Section::Profile {
                    name: trimmed.clone(),
                    prefixed: false,
                }
            }
        }
    };
    (section, trimmed)
}

impl Profiles {
    /// Parses the files in the order given; profiles in a later file override keys of an earlier one,
    /// so pass config first and credentials second (the credentials file wins, as in every SDK).
    pub fn parse(sources: &[Source<'_>]) -> Result<Profiles, ProfileError> {
        let mut out = Profiles::default();
        for src in sources {
            let Some(text) = src.text else { continue };
            let opt = ParseOption {
                enabled_quote: false,
                enabled_escape: false,
                enabled_indented_mutiline_value: false,
                ..ParseOption::default()
            };
            if let Some(message) = property_without_equals(text) {
                return Err(ProfileError::Parse {
                    kind: src.kind,
                    path: src.path.to_path_buf(),
                    message,
                });
            }
            let ini = Ini::load_from_str_opt(text, opt).map_err(|e| ProfileError::Parse {
                kind: src.kind,
                path: src.path.to_path_buf(),
                message: e.to_string(),
            })?;
            if !ini.general_section().is_empty() {
                return Err(ProfileError::Parse {
                    kind: src.kind,
                    path: src.path.to_path_buf(),
                    message:
                        "a property appears before any [section]: expected a profile definition"
                            .into(),
                });
            }
            // `[profile default]` beats a bare `[default]` in the config file, whatever the order.
            let has_prefixed_default = ini.sections().flatten().any(|s| {
                matches!(classify(src.kind, s).0, Section::Profile { ref name, prefixed: true } if name == "default")
            });
            for (section, props) in ini.iter() {
                let Some(raw) = section else { continue };
                let (class, trimmed) = classify(src.kind, raw);
                let name = match class {
                    Section::Other => continue,
                    Section::SsoSession(name) => {
                        let session = out.sso_sessions.entry(name).or_default();
                        for (key, value) in props.iter() {
                            let key = key.trim().to_ascii_lowercase();
                            if valid_key(&key) {
                                session.insert(key, value.trim().to_string());
                            }
                        }
                        continue;
                    }
                    Section::Ignored(reason) => {
                        out.ignore(src, &trimmed, reason);
                        continue;
                    }
                    Section::Profile { name, prefixed } => {
                        if !valid_name(&name) {
                            out.ignore(src, &trimmed, "not a valid profile name");
                            continue;
                        }
                        if src.kind == FileKind::Config
                            && name == "default"
                            && !prefixed
                            && has_prefixed_default
                        {
                            out.ignore(src, &trimmed, "[profile default] in the same file wins");
                            continue;
                        }
                        name
                    }
                };
                let profile = out.profiles.entry(name.clone()).or_insert_with(|| Profile {
                    name,
                    ..Profile::default()
                });
                profile.files.insert(src.kind);
                for (key, value) in props.iter() {
                    let key = key.trim().to_ascii_lowercase();
                    if valid_key(&key) {
                        profile.props.insert(key, value.trim().to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    fn ignore(&mut self, src: &Source<'_>, section: &str, reason: &'static str) {
        self.ignored.push(Ignored {
            file: src.kind,
            path: src.path.to_path_buf(),
            section: section.to_string(),
            reason,
        });
    }

    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles.get(name).ok_or_else(|| {
            let hint = self
                .ignored
                .iter()
                .find(|i| i.section == name || i.section.split_whitespace().last() == Some(name))
                .map(|i| {
                    format!(
                        " (section [{}] in {} file {} is ignored: {})",
                        i.section,
                        i.file,
                        i.path.display(),
                        i.reason
                    )
                })
                .unwrap_or_default();
            ProfileError::NotFound {
                profile: name.to_string(),
                hint,
            }
        })
    }

    /// The profile's own `region` key (empty counts as unset). Which region wins is
    /// [`resolve_region`]'s rule.
    pub fn configured_region(&self, name: &str) -> Option<String> {
        self.profiles
            .get(name)
            .and_then(|p| p.get("region"))
            .filter(|r| !r.is_empty())
            .map(str::to_string)
    }

    /// Profiles that can produce credentials on their own or through a chain: everything except
    /// config-only profiles (no credential information at all) and SSO token-only profiles.
    pub fn credential_profiles(&self) -> Vec<&str> {
        self.profiles
            .keys()
            .map(String::as_str)
            .filter(|p| match self.chain(p) {
                Err(ProfileError::NoCredentials(ref n)) => n != p,
                // A bare `sso_session` profile holds an SSO token for tools, not AWS credentials.
                Ok(c) => !matches!(
                    c.hops.as_slice(),
                    [Hop::Sso {
                        account_id: None,
                        ..
                    }]
                ),
                Err(_) => true,
            })
            .collect()
    }

    /// Resolves the chain of `selected` the way aws-config's profile provider does
    /// (smithy-rs `profile/credentials/repr.rs` rules; checked against its test vectors below).
    pub fn chain(&self, selected: &str) -> Result<Chain, ProfileError> {
        let mut visited: Vec<String> = Vec::new();
        let mut links: Vec<Hop> = Vec::new();
        let mut current = selected.to_string();
        let base = loop {
            let profile = match self.profiles.get(&current) {
                Some(p) => p,
                None if visited.is_empty() => {
                    return Err(self.get(&current).err().unwrap_or(ProfileError::NotFound {
                        profile: current.clone(),
                        hint: String::new(),
                    }));
                }
                None => {
                    return Err(ProfileError::MissingSource {
                        profile: visited.last().cloned().unwrap_or_default(),
                        source_profile: current,
                    });
                }
            };
            if visited.contains(&current) {
                visited.push(current);
                return Err(ProfileError::Loop(visited));
            }
            // `visited` holds one profile per reference followed so far.
            if visited.len() > MAX_CHAIN_HOPS {
                return Err(ProfileError::TooDeep {
                    profile: selected.to_string(),
                    at: current,
                });
            }
            visited.push(current.clone());
            // After the first profile, static keys short-circuit the rest of the chain.
            if visited.len() > 1 && profile.static_keys().is_ok() {
                break static_hop(profile);
            }
            let role_arn = profile.get("role_arn");
            let web_identity = profile.get("web_identity_token_file");
            let Some(role_arn) = role_arn.filter(|_| web_identity.is_none()) else {
                break base_hop(self, profile)?;
            };
            let source_profile = profile.get("source_profile");
            let credential_source = profile.get("credential_source");
            let next = match (source_profile, credential_source) {
                (Some(_), Some(_)) => return Err(ProfileError::BothSources(current)),
                (None, None) => return Err(ProfileError::NoSource(current)),
                // Only where awscli would use it: on a profile whose role is assumed.
                _ if profile.get("mfa_serial").is_some() => {
                    return Err(ProfileError::MfaUnsupported { profile: current });
                }
                (Some(sp), None) => sp.to_string(),
                (None, Some(cs)) => {
                    links.push(assume_role(profile, role_arn, cs));
                    break named_source(profile, cs)?;
                }
            };
            links.push(assume_role(profile, role_arn, &next));
            if next == current {
                // Self reference: the profile's own base (keys, SSO, a process), then its own
                // role. Without any it is a loop (botocore's word; the SDK says "no credentials").
                match base_hop(self, profile) {
                    Err(ProfileError::NoCredentials(_)) => {
                        return Err(ProfileError::Loop(vec![current.clone(), current]));
                    }
                    other => break other?,
                }
            }
            current = next;
        };
        let mut hops = vec![base];
        hops.extend(links.into_iter().rev());
        Ok(Chain { hops })
    }
}

/// The one region rule of generate, token and explain: the `--region` flag, then AWS_REGION,
/// then AWS_DEFAULT_REGION, then the profile's own `region` (the SDKs' order, flag first).
/// `configured` is asked last, so `token` without a profile reads the INI files only when
/// nothing before it answers. Empty variables count as unset; the flag is taken as given.
pub fn resolve_region(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    configured: impl FnOnce() -> Option<String>,
) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| env("AWS_REGION").filter(|r| !r.is_empty()))
        .or_else(|| env("AWS_DEFAULT_REGION").filter(|r| !r.is_empty()))
        .or_else(configured)
}

fn assume_role(profile: &Profile, role_arn: &str, source: &str) -> Hop {
    Hop::AssumeRole {
        profile: profile.name.clone(),
        role_arn: role_arn.to_string(),
        session_name: profile.get("role_session_name").map(str::to_string),
        external_id: profile.get("external_id").map(str::to_string),
        source: source.to_string(),
    }
}

fn static_hop(profile: &Profile) -> Hop {
    Hop::Static {
        profile: profile.name.clone(),
        source: format!("aws_access_key_id in profile {}", profile.name),
    }
}

fn named_source(profile: &Profile, value: &str) -> Result<Hop, ProfileError> {
    let known = ["Environment", "Ec2InstanceMetadata", "EcsContainer"];
    match known.iter().find(|k| k.eq_ignore_ascii_case(value)) {
        Some(k) => Ok(Hop::CredentialSource {
            profile: profile.name.clone(),
            source: (*k).to_string(),
        }),
        None => Err(ProfileError::BadCredentialSource {
            profile: profile.name.clone(),
            value: value.to_string(),
        }),
    }
}

fn base_hop(profiles: &Profiles, profile: &Profile) -> Result<Hop, ProfileError> {
    let name = profile.name.clone();
    if let Some(cs) = profile.get("credential_source") {
        return named_source(profile, cs);
    }
    if let Some(file) = profile.get("web_identity_token_file") {
        let role_arn = profile
            .get("role_arn")
            .ok_or_else(|| ProfileError::WebIdentityWithoutRole(name.clone()))?;
        return Ok(Hop::WebIdentity {
            profile: name,
            role_arn: role_arn.to_string(),
            token_file: PathBuf::from(file),
            session_name: profile.get("role_session_name").map(str::to_string),
        });
    }
    if let Some(hop) = sso_hop(profiles, profile)? {
        return Ok(hop);
    }
    if profile.get("login_session").is_some() {
        return Err(ProfileError::LoginSessionUnsupported { profile: name });
    }
    if profile.get("credential_process").is_some() {
        return Ok(Hop::CredentialProcess { profile: name });
    }
    profile.static_keys()?;
    Ok(static_hop(profile))
}

/// The SSO hop of PROFILE, or `None` when it has no SSO key at all. The rules and messages are
/// smithy-rs's `sso_from_profile` (aws-config 1.13): any of the five keys makes an SSO profile;
/// with `sso_session`, the start URL and region come from `[sso-session NAME]` only.
fn sso_hop(profiles: &Profiles, profile: &Profile) -> Result<Option<Hop>, ProfileError> {
    const KEYS: [&str; 5] = [
        "sso_account_id",
        "sso_region",
        "sso_role_name",
        "sso_start_url",
        "sso_session",
    ];
    if KEYS.iter().all(|k| profile.get(k).is_none()) {
        return Ok(None);
    }
    let name = &profile.name;
    let invalid = |message: String| ProfileError::Sso {
        profile: name.clone(),
        message,
    };
    let session = profile.get("sso_session");
    let (start_url, region) = match session {
        Some(session) => {
            for key in ["sso_start_url", "sso_region"] {
                if profile.get(key).is_some() {
                    return Err(invalid(format!(
                        "`{key}` can only be specified in the [sso-session] config when a session name is given"
                    )));
                }
            }
            let Some(section) = profiles.sso_sessions.get(session) else {
                return Err(ProfileError::MissingSsoSession {
                    profile: name.clone(),
                    session: session.to_string(),
                });
            };
            let get = |k: &str| section.get(k).map(String::as_str);
            (get("sso_start_url"), get("sso_region"))
        }
        None => (profile.get("sso_start_url"), profile.get("sso_region")),
    };
    let (account_id, role_name) = (profile.get("sso_account_id"), profile.get("sso_role_name"));
    match (account_id, role_name) {
        (Some(_), None) => {
            return Err(invalid(
                "if `sso_account_id` is set, then `sso_role_name` must also be set".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "if `sso_role_name` is set, then `sso_account_id` must also be set".into(),
            ));
        }
        _ => {}
    }
    let missing = |key: &'static str| match session {
        Some(s) => invalid(format!("`{key}` is missing from [sso-session {s}]")),
        None => ProfileError::MissingKey {
            profile: name.clone(),
            key,
        },
    };
    let region = region.ok_or_else(|| missing("sso_region"))?;
    let start_url = start_url.ok_or_else(|| missing("sso_start_url"))?;
    Ok(Some(Hop::Sso {
        profile: name.clone(),
        sso_session: session.map(str::to_string),
        start_url: start_url.to_string(),
        sso_region: region.to_string(),
        account_id: account_id.map(str::to_string),
        role_name: role_name.map(str::to_string),
    }))
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
