//! `explain`: each profile's credential chain as JSON, from the INI files alone (no AWS call), so
//! a reader can see which roles `generate` and `token` will assume before anything runs.
use std::collections::BTreeMap;

use std::path::Path;

use serde_json::{Value, json};

use crate::aws::{self, Files};
use crate::error::{Error, Result};
use crate::profiles::resolve_region;
use crate::profiles::{Chain, Hop, Profiles};
use crate::{env, sso};

/// `explain`: JSON chains of `only` (every profile when empty); exit 3 when a profile named in
/// `only` cannot resolve. Problems beside a chain (`chain_problems`) are warnings: exit 0.
pub fn explain(files: &Files, only: &[String]) -> Result<()> {
    let profiles = files.read_profiles()?;
    let (out, first_error) = profile_docs(&profiles, only);
    for doc in &out {
        for p in doc["problems"].as_array().into_iter().flatten() {
            crate::output::say(&format!("warning: {}", p.as_str().unwrap_or_default()));
        }
    }
    let ignored: Vec<BTreeMap<&str, String>> = profiles
        .ignored
        .iter()
        .map(|i| {
            BTreeMap::from([
                ("file", i.path.display().to_string()),
                ("section", i.section.clone()),
                ("reason", i.reason.to_string()),
            ])
        })
        .collect();
    let doc = json!({
        "config_file": files.config,
        "credentials_file": files.credentials,
        "profiles": out,
        "ignored_sections": ignored,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Serialize {
        what: "explain output",
        source: crate::error::Cause(e.to_string()),
    })?;
    crate::output::print(&format!("{text}\n"))?;
    first_error.map_or(Ok(()), Err)
}

/// One JSON object per profile of `only` (every profile when empty), and the first error of a
/// profile named in `only`. Pure but for the problem checks (token files, SSO caches).
pub(crate) fn profile_docs(profiles: &Profiles, only: &[String]) -> (Vec<Value>, Option<Error>) {
    let names: Vec<String> = if only.is_empty() {
        profiles.profiles.keys().cloned().collect()
    } else {
        only.to_vec()
    };
    let mut first_error = None;
    let mut out = Vec::new();
    for name in &names {
        let region = resolve_region(None, &env::var, || profiles.configured_region(name));
        out.push(match profiles.chain(name) {
            Ok(chain) => {
                // Like the SDKs, a chain that parses is shown; what would stop it at run time
                // (a token file, an SSO login) is listed beside it, not in its place.
                let problems: Vec<String> = aws::chain_problems(&chain)
                    .iter()
                    .map(|p| crate::error::one_line(&crate::error::chain(p)))
                    .collect();
                let mut doc = json!({"name": name, "region": region, "root": chain.root(), "chain": hops(&chain)});
                if !problems.is_empty() {
                    doc["problems"] = json!(problems);
                }
                doc
            }
            Err(e) => {
                let e = Error::from(e);
                let msg = crate::error::chain(&e);
                if !only.is_empty() && first_error.is_none() {
                    first_error = Some(e);
                }
                json!({"name": name, "region": region, "error": msg})
            }
        });
    }
    (out, first_error)
}

/// The hops as JSON; an SSO hop also names the cache file its login is read from.
fn hops(chain: &Chain) -> Value {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    let hops = chain
        .hops
        .iter()
        .map(|hop| {
            let mut v = json!(hop);
            if let (
                Some(home),
                Hop::Sso {
                    sso_session,
                    start_url,
                    ..
                },
            ) = (&home, hop)
            {
                let path = sso::cache_path(Path::new(home), sso_session.as_deref(), start_url);
                v["token_cache"] = json!(path);
            }
            v
        })
        .collect();
    Value::Array(hops)
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
