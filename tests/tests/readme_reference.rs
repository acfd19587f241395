//! Keeps README.md's configuration reference true: every long flag and every environment
//! variable that `--help` of each subcommand of both binaries shows must be documented there.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn bin(name: &str) -> PathBuf {
    e2e::bins::product(name).unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)))
}

/// `--flag` and `[env: NAME]` tokens of one `--help` page.
fn help_tokens(binary: &str, sub: &str) -> BTreeSet<String> {
    let out = Command::new(bin(binary))
        .args([sub, "--help"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{binary} {sub} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tokens = BTreeSet::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let flag = word.split('=').next().unwrap_or_default();
        if flag.starts_with("--") && flag.len() > 2 && flag != "--help" && flag != "--version" {
            tokens.insert(flag.trim_end_matches(['.', ':']).to_string());
        }
    }
    for piece in text.split("[env: ").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            tokens.insert(name);
        }
    }
    tokens
}

#[test]
fn readme_documents_every_flag_and_env_var_of_both_binaries() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let pages = [
        ("kubeconfig-gen", "generate"),
        ("kubeconfig-gen", "token"),
        ("kubeconfig-gen", "explain"),
        ("kubeconfig-gen", "update-kubeconfig"),
        ("sync-daemon", "run"),
        ("sync-daemon", "once"),
        ("sync-daemon", "status"),
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for (binary, sub) in pages {
        for token in help_tokens(binary, sub) {
            seen += 1;
            // A flag counts as documented when it appears as a whole word (`--kubeconfig`
            // must not be satisfied by `--kubeconfig-file`).
            let documented = readme.match_indices(token.as_str()).any(|(i, _)| {
                let next = readme[i + token.len()..].chars().next();
                !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
            if !documented {
                missing.push(format!("{binary} {sub}: {token}"));
            }
        }
    }
    assert!(seen > 30, "expected many flags, parsed only {seen}");
    assert!(
        missing.is_empty(),
        "README.md does not document:\n  {}",
        missing.join("\n  ")
    );
}
