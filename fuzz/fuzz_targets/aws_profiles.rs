//! AWS config/credentials INI → kubeconfig-gen's profiles and credential chains, and the same
//! text through aws-config's own profile parser (which resolves the real chains at run time).
//! Input: `config text` NUL `credentials text`; without a NUL the whole input is the credentials
//! file (the seed's shape). Set KCS_FUZZ_DIFF=1 to also require both parsers to agree on which
//! profiles exist when both accept the files.
#![no_main]

use kubeconfig_gen::profiles::{FileKind, ProfileError, Profiles, Source};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("fuzz runtime")
    })
}

fn split(data: &[u8]) -> (Option<String>, String) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[..i]).into_owned()),
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => (None, String::from_utf8_lossy(data).into_owned()),
    }
}

/// aws-config's view: the profile names it finds, or None when it rejects the files.
fn aws_config_profiles(config: Option<&str>, credentials: &str) -> Option<BTreeSet<String>> {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    use aws_types::os_shim_internal::{Env, Fs};
    let mut files = ProfileFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false)
        .with_contents(ProfileFileKind::Credentials, credentials.to_string());
    if let Some(c) = config {
        files = files.with_contents(ProfileFileKind::Config, c.to_string());
    }
    let files = files.build();
    let set = runtime()
        .block_on(aws_config::profile::load(
            &Fs::from_slice(&[]),
            &Env::from_slice(&[]),
            &files,
            None,
        ))
        .ok()?;
    Some(set.profiles().map(str::to_string).collect())
}

fuzz_target!(|data: &[u8]| {
    let (config, credentials) = split(data);
    let sources = [
        Source {
            kind: FileKind::Config,
            path: Path::new("/fuzz/config"),
            text: config.as_deref(),
        },
        Source {
            kind: FileKind::Credentials,
            path: Path::new("/fuzz/credentials"),
            text: Some(&credentials),
        },
    ];
    let ours = match Profiles::parse(&sources) {
        Ok(p) => p,
        Err(e) => {
            // Every error must render (the CLI prints it) without panicking.
            let _ = e.to_string();
            aws_config_profiles(config.as_deref(), &credentials);
            return;
        }
    };
    for name in ours.profiles.keys() {
        match ours.chain(name) {
            Ok(chain) => {
                assert!(!chain.hops.is_empty(), "empty chain for {name:?}");
                assert!(
                    ours.profiles.contains_key(chain.root()),
                    "chain root {:?} of {name:?} is not a profile",
                    chain.root()
                );
                for (p, _) in chain.token_files() {
                    assert!(ours.profiles.contains_key(p));
                }
            }
            Err(ProfileError::Loop(path)) => assert!(path.len() >= 2),
            Err(e) => {
                let _ = e.to_string();
            }
        }
        let _ = ours.configured_region(name);
    }
    let _ = ours.credential_profiles();
    for ignored in &ours.ignored {
        let _ = ours.get(&ignored.section).err().map(|e| e.to_string());
    }
    let _ = ours.chain("default");

    let theirs = aws_config_profiles(config.as_deref(), &credentials);
    if std::env::var_os("KCS_FUZZ_DIFF").is_some()
        && let Some(theirs) = theirs
    {
        let ours: BTreeSet<String> = ours.profiles.keys().cloned().collect();
        assert_eq!(ours, theirs, "kubeconfig-gen and aws-config disagree on the profiles");
    }
});
