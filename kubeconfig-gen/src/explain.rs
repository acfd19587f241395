//! `explain`: each profile's credential chain as JSON, from the INI files alone (no AWS call), so
//! a reader can see which roles `generate` and `token` will assume before anything runs.
use std::collections::BTreeMap;

use serde_json::json;

use crate::aws::{self, Files};
use crate::env;
use crate::error::{Error, Result};
use crate::profiles::resolve_region;

/// `explain`: JSON chains of `only` (every profile when empty); exit 3 when a profile named in
/// `only` cannot resolve.
pub fn explain(files: &Files, only: &[String]) -> Result<()> {
    let profiles = files.read_profiles()?;
    let names: Vec<String> = if only.is_empty() {
        profiles.profiles.keys().cloned().collect()
    } else {
        only.to_vec()
    };
    let mut first_error = None;
    let mut out = Vec::new();
    for name in &names {
        let resolved = profiles.chain(name).map_err(Error::from).and_then(|c| {
            aws::check_token_files(&c)?;
            Ok(c)
        });
        let region = resolve_region(None, &env::var, || profiles.configured_region(name));
        out.push(match resolved {
            Ok(chain) => {
                json!({"name": name, "region": region, "root": chain.root(), "chain": chain.hops})
            }
            Err(e) => {
                let msg = crate::error::chain(&e);
                if !only.is_empty() && first_error.is_none() {
                    first_error = Some(e);
                }
                json!({"name": name, "region": region, "error": msg})
            }
        });
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
