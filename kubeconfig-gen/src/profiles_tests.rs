//! Table tests for the profile parser and chain resolver. The parser cases follow smithy-rs's
//! aws-runtime/test-data/profile-parser-tests.json (Apache-2.0), restated in our own types; the
//! chain cases here are ours and a first part of assume-role-tests.json, whose 28 vectors are
//! checked in full through `explain` (explain_tests.rs).
use super::*;

fn creds(text: &str) -> Profiles {
    Profiles::parse(&[Source {
        kind: FileKind::Credentials,
        path: Path::new("/c"),
        text: Some(text),
    }])
    .unwrap()
}

fn both(config: &str, credentials: &str) -> Result<Profiles, ProfileError> {
    Profiles::parse(&[
        Source {
            kind: FileKind::Config,
            path: Path::new("/config"),
            text: Some(config),
        },
        Source {
            kind: FileKind::Credentials,
            path: Path::new("/credentials"),
            text: Some(credentials),
        },
    ])
}

/// A chain rendered compactly: `static(B) > assume(arn)@A`.
fn render(chain: &Chain) -> String {
    chain
        .hops
        .iter()
        .map(|h| match h {
            Hop::Static { profile, .. } => format!("static({profile})"),
            Hop::WebIdentity {
                role_arn,
                session_name,
                ..
            } => format!("web({role_arn},{})", session_name.as_deref().unwrap_or("-")),
            Hop::AssumeRole {
                role_arn,
                session_name,
                external_id,
                ..
            } => format!(
                "assume({role_arn},{},{})",
                session_name.as_deref().unwrap_or("-"),
                external_id.as_deref().unwrap_or("-")
            ),
            Hop::CredentialSource { source, .. } => format!("source({source})"),
            Hop::CredentialProcess { profile } => format!("process({profile})"),
            Hop::Sso { profile, .. } => format!("sso({profile})"),
        })
        .collect::<Vec<_>>()
        .join(" > ")
}

#[test]
fn chain_vectors() {
    // (docs, credentials file with bare sections, selected, Ok(chain) | Err(message substring))
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        (
            "role backed by static keys",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Ok("static(B) > assume(r:A,-,-)"),
        ),
        (
            "explicit keys ignored on the selected profile when it has a source",
            "[A]\naws_access_key_id = x\naws_secret_access_key = y\nrole_arn = r:A\nsource_profile = B\n[B]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Ok("static(B) > assume(r:A,-,-)"),
        ),
        (
            "session name and external id",
            "[A]\nrole_arn = r:A\nrole_session_name = sess\nexternal_id = ext\nsource_profile = B\n[B]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Ok("static(B) > assume(r:A,sess,ext)"),
        ),
        (
            "self reference with keys",
            "[A]\naws_access_key_id = k\naws_secret_access_key = s\nrole_arn = r:A\nsource_profile = A",
            "A",
            Ok("static(A) > assume(r:A,-,-)"),
        ),
        (
            "credential_source",
            "[A]\nrole_arn = r:A\ncredential_source = ec2instancemetadata",
            "A",
            Ok("source(Ec2InstanceMetadata) > assume(r:A,-,-)"),
        ),
        (
            "role_arn without a source",
            "[A]\nrole_arn = r:A",
            "A",
            Err("must contain `source_profile` or `credential_source`"),
        ),
        (
            "both sources",
            "[A]\nrole_arn = r:A\ncredential_source = Environment\nsource_profile = B\n[B]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Err("both source_profile and credential_source"),
        ),
        (
            "missing secret",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\naws_access_key_id = k",
            "A",
            Err("profile missing aws_secret_access_key"),
        ),
        (
            "missing access key",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\naws_secret_access_key = s",
            "A",
            Err("profile missing aws_access_key_id"),
        ),
        (
            "empty source profile",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]",
            "A",
            Err("profile `B` did not contain credential information"),
        ),
        (
            "configuration only",
            "[A]\nregion = eu-central-1",
            "A",
            Err("profile `A` did not contain credential information"),
        ),
        (
            "missing source profile",
            "[A]\nrole_arn = r:A\nsource_profile = B",
            "A",
            Err("could not find source profile B referenced from A"),
        ),
        (
            "missing selected profile",
            "",
            "A",
            Err("profile A not found"),
        ),
        (
            "three chained roles",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\nrole_arn = r:B\nsource_profile = C\n[C]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Ok("static(C) > assume(r:B,-,-) > assume(r:A,-,-)"),
        ),
        (
            "static keys after the first profile short-circuit",
            "[A]\nrole_arn = r:A\naws_access_key_id = x\naws_secret_access_key = x\nsource_profile = B\n[B]\nrole_arn = r:B\nsource_profile = C\naws_access_key_id = k\naws_secret_access_key = s\n[C]\naws_access_key_id = x\naws_secret_access_key = x",
            "A",
            Ok("static(B) > assume(r:A,-,-)"),
        ),
        (
            "loop of two",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\nrole_arn = r:B\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop: A -> B -> A"),
        ),
        (
            "loop with static keys on the selected profile",
            "[A]\nrole_arn = r:A\naws_access_key_id = x\naws_secret_access_key = x\nsource_profile = B\n[B]\nrole_arn = r:B\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop"),
        ),
        (
            "loop of one (self reference without keys)",
            "[A]\nrole_arn = r:A\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop: A -> A"),
        ),
        (
            "loop of three",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\nrole_arn = r:B\nsource_profile = C\n[C]\nrole_arn = r:C\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop: A -> B -> C -> A"),
        ),
        (
            "web identity",
            "[A]\nrole_arn = r:A\nweb_identity_token_file = /var/token.jwt",
            "A",
            Ok("web(r:A,-)"),
        ),
        (
            "web identity with session name",
            "[A]\nrole_arn = r:A\nweb_identity_token_file = /t\nrole_session_name = s",
            "A",
            Ok("web(r:A,s)"),
        ),
        (
            "web identity without role",
            "[A]\nweb_identity_token_file = /t",
            "A",
            Err("`role_arn` was missing"),
        ),
        (
            "web identity as source profile (the seed's shape)",
            "[A]\nrole_arn = r:A\nsource_profile = B\n[B]\nrole_arn = r:B\nweb_identity_token_file = /t\nrole_session_name = sb",
            "A",
            Ok("web(r:B,sb) > assume(r:A,-,-)"),
        ),
        (
            "sso",
            "[A]\nsso_account_id = 0123\nsso_region = us-east-7\nsso_role_name = r\nsso_start_url = https://x",
            "A",
            Ok("sso(A)"),
        ),
        (
            "sso without account",
            "[A]\nsso_region = us-east-7\nsso_role_name = r\nsso_start_url = https://x",
            "A",
            Err("if `sso_role_name` is set, then `sso_account_id` must also be set"),
        ),
        (
            "sso without role",
            "[A]\nsso_region = us-east-7\nsso_account_id = 1\nsso_start_url = https://x",
            "A",
            Err("if `sso_account_id` is set, then `sso_role_name` must also be set"),
        ),
        (
            "credential_process",
            "[A]\ncredential_process = /bin/creds",
            "A",
            Ok("process(A)"),
        ),
        (
            "unknown credential_source",
            "[A]\nrole_arn = r:A\ncredential_source = Laptop",
            "A",
            Err("credential_source Laptop is not one of"),
        ),
    ];
    for (docs, text, selected, want) in cases {
        let got = creds(text).chain(selected);
        match (want, got) {
            (Ok(want), Ok(chain)) => assert_eq!(&render(&chain), want, "{docs}"),
            (Err(want), Err(err)) => {
                let msg = err.to_string();
                assert!(msg.contains(want), "{docs}: {msg:?} lacks {want:?}");
            }
            (want, got) => panic!("{docs}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn root_of_the_seed_chain_is_the_web_identity_profile() {
    let p = creds(
        "[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = /t\n\
         [mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = mc-project\n",
    );
    let chain = p.chain("mc-project").unwrap();
    assert_eq!(chain.root(), "mc-mgmt");
    assert_eq!(p.chain("mc-mgmt").unwrap().root(), "mc-mgmt");
    assert_eq!(
        chain.token_files().collect::<Vec<_>>(),
        vec![("mc-mgmt", Path::new("/t"))]
    );
}

/// (docs, config file, credentials file, Ok(profile → sorted "k=v" list) | Err(substring))
type ParseCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Result<&'a [(&'a str, &'a str)], &'a str>,
);

#[test]
fn parser_vectors() {
    let cases: &[ParseCase] = &[
        ("empty", "", "", Ok(&[])),
        ("empty profile", "[profile foo]", "", Ok(&[("foo", "")])),
        (
            "name characters",
            "[profile some-thing:long/the_one%only.foo@bar+]\n[profile foo!bar]",
            "",
            Ok(&[("some-thing:long/the_one%only.foo@bar+", "")]),
        ),
        (
            "unterminated section",
            "[profile foo",
            "",
            Err("not valid INI"),
        ),
        (
            "names trimmed",
            "[profile \tfoo \t]",
            "",
            Ok(&[("foo", "")]),
        ),
        ("tab after prefix", "[profile\tfoo]", "", Ok(&[("foo", "")])),
        (
            "property outside a profile",
            "name = value",
            "",
            Err("expected a profile definition"),
        ),
        (
            "properties",
            "[profile foo]\nname = value",
            "",
            Ok(&[("foo", "name=value")]),
        ),
        (
            "CRLF",
            "[profile foo]\r\nname = value",
            "",
            Ok(&[("foo", "name=value")]),
        ),
        (
            "equals in value",
            "[profile foo]\nname = val=ue",
            "",
            Ok(&[("foo", "name=val=ue")]),
        ),
        (
            "trimmed",
            "[profile foo]\nname \t=  \tvalue \t",
            "",
            Ok(&[("foo", "name=value")]),
        ),
        (
            "empty value",
            "[profile foo]\nname =",
            "",
            Ok(&[("foo", "name=")]),
        ),
        (
            "no equals sign",
            "[profile foo]\nkey : value",
            "",
            Err("not valid INI"),
        ),
        (
            "comments after whitespace",
            "# Comment\n[profile foo]\nname = value # Comment with # sign\nb = v ; c",
            "",
            Ok(&[("foo", "b=v,name=value")]),
        ),
        (
            "comment characters adjacent to values are part of them",
            "[profile foo]\nname = value; Adjacent\nname2 = value# Adjacent",
            "",
            Ok(&[("foo", "name2=value# Adjacent,name=value; Adjacent")]),
        ),
        (
            "duplicate profiles merge, last duplicate key wins",
            "[profile foo]\nname = value\n[profile foo]\nname2 = value2\nname = last",
            "",
            Ok(&[("foo", "name2=value2,name=last")]),
        ),
        (
            "keys are case-insensitive",
            "[profile foo]\nName = value\n[profile foo]\nname = value2",
            "",
            Ok(&[("foo", "name=value2")]),
        ),
        (
            "prefixed default wins over bare default (prefix first)",
            "[profile default]\nname = value\n[default]\nname2 = value2",
            "",
            Ok(&[("default", "name=value")]),
        ),
        (
            "prefixed default wins over bare default (prefix last)",
            "[default]\nname2 = value2\n[profile default]\nname = value",
            "",
            Ok(&[("default", "name=value")]),
        ),
        (
            "invalid profile names ignored",
            "[profile in valid]\nname = value",
            "[in valid 2]\nname2 = value2",
            Ok(&[]),
        ),
        (
            "invalid property names ignored",
            "[profile foo]\nin valid = value",
            "",
            Ok(&[("foo", "")]),
        ),
        (
            "profiles in both files merge",
            "[profile foo]\nname = value",
            "[foo]\nname2 = value2",
            Ok(&[("foo", "name2=value2,name=value")]),
        ),
        (
            "credentials file wins on duplicate keys",
            "[profile foo]\nname = value",
            "[foo]\nname = value2",
            Ok(&[("foo", "name=value2")]),
        ),
        (
            "bare section in config ignored",
            "[foo]\nname = value",
            "",
            Ok(&[]),
        ),
        (
            "prefixed section in credentials ignored",
            "",
            "[profile foo]\nname = value",
            Ok(&[]),
        ),
        (
            "sneaky profile name",
            "[profilefoo]\nname = value\n[profile bar]",
            "",
            Ok(&[("bar", "")]),
        ),
        (
            "extra whitespace in config",
            "[   profile foo    ]\nname = value\n[profile bar]",
            "",
            Ok(&[("bar", ""), ("foo", "name=value")]),
        ),
        (
            "extra whitespace in credentials",
            "",
            "[   foo    ]\nname = value",
            Ok(&[("foo", "name=value")]),
        ),
        (
            "sso-session is not a profile",
            "[sso-session foo]\nname = value\n[profile bar]",
            "",
            Ok(&[("bar", "")]),
        ),
    ];
    for (docs, config, credentials, want) in cases {
        match (want, both(config, credentials)) {
            (Ok(want), Ok(p)) => {
                let got: Vec<(String, String)> = p
                    .profiles
                    .values()
                    .map(|p| {
                        let mut kv: Vec<String> =
                            p.props.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        kv.sort();
                        (p.name.clone(), kv.join(","))
                    })
                    .collect();
                let want: Vec<(String, String)> = want
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
                assert_eq!(got, want, "{docs}");
            }
            (Err(want), Err(err)) => {
                let msg = err.to_string();
                assert!(msg.contains(want), "{docs}: {msg:?} lacks {want:?}");
            }
            (want, got) => panic!("{docs}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn wrong_section_style_is_reported_and_named_when_missing() {
    let p = both(
        "[mc-mgmt]\nregion = x",
        "[profile mc-project]\nrole_arn = r",
    )
    .unwrap();
    assert_eq!(p.ignored.len(), 2);
    assert_eq!(p.ignored[0].file, FileKind::Config);
    assert_eq!(p.ignored[1].section, "profile mc-project");
    let msg = p.chain("mc-project").unwrap_err().to_string();
    assert!(
        msg.contains("section [profile mc-project] in credentials file /credentials is ignored"),
        "{msg}"
    );
}

#[test]
fn region_precedence() {
    type Env = &'static [(&'static str, &'static str)];
    let p = creds("[a]\nregion = eu-west-1\n[b]\n[c]\nregion =\n");
    let env_of = |pairs: Env| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let both: Env = &[
        ("AWS_REGION", "us-east-2"),
        ("AWS_DEFAULT_REGION", "ap-south-1"),
    ];
    // (flag, environment, profile, want)
    let cases: [(Option<&str>, Env, &str, Option<&str>); 9] = [
        (None, &[], "a", Some("eu-west-1")),
        (None, &[], "b", None),
        (None, &[], "c", None),
        (None, &[], "missing", None),
        (None, &[("AWS_REGION", "us-east-2")], "a", Some("us-east-2")),
        (
            None,
            &[("AWS_DEFAULT_REGION", "ap-south-1")],
            "b",
            Some("ap-south-1"),
        ),
        (None, both, "a", Some("us-east-2")),
        (
            None,
            &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "ap-south-1")],
            "a",
            Some("ap-south-1"),
        ),
        (Some("eu-north-1"), both, "a", Some("eu-north-1")),
    ];
    for (flag, env, profile, want) in cases {
        let got = resolve_region(flag, &env_of(env), || p.configured_region(profile));
        assert_eq!(got.as_deref(), want, "{flag:?} {env:?} {profile}");
    }
}

#[test]
fn region_reads_the_profile_only_when_needed() {
    let asked = std::cell::Cell::new(false);
    let configured = || {
        asked.set(true);
        Some("eu-west-1".to_string())
    };
    assert_eq!(
        resolve_region(Some("us-east-1"), &|_| None, configured).as_deref(),
        Some("us-east-1")
    );
    assert!(!asked.get());
}

#[test]
fn credential_profiles_skip_config_only_profiles() {
    let p = creds(
        "[base]\naws_access_key_id = k\naws_secret_access_key = s\n[settings]\nregion = x\n[broken]\nrole_arn = r\nsource_profile = nope\n",
    );
    assert_eq!(p.credential_profiles(), vec!["base", "broken"]);
}

/// `p0` has keys; `pN` assumes a role with `source_profile = p(N-1)`.
fn linear_chain(n: usize) -> Profiles {
    let mut text = String::from("[p0]\naws_access_key_id = k\naws_secret_access_key = s\n");
    for i in 1..n {
        text.push_str(&format!(
            "[p{i}]\nrole_arn = arn:aws:iam::1:role/r{i}\nsource_profile = p{}\n",
            i - 1
        ));
    }
    creds(&text)
}

#[test]
fn chains_are_limited_to_32_hops() {
    let profiles = linear_chain(40);
    // p32 follows 32 references down to p0: the limit itself is fine.
    assert_eq!(profiles.chain("p32").unwrap().hops.len(), 33);
    let err = profiles.chain("p33").unwrap_err();
    assert!(matches!(err, ProfileError::TooDeep { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "profile p33: the chain follows more than 32 source_profile references (stopped at p0)"
    );
    // A long cycle is a loop when it closes within the limit, too deep when it does not.
    let cycle = |n: usize| {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "[c{i}]\nrole_arn = r\nsource_profile = c{}\n",
                (i + 1) % n
            ));
        }
        creds(&text)
    };
    assert!(matches!(cycle(5).chain("c0"), Err(ProfileError::Loop(_))));
    assert!(matches!(
        cycle(100).chain("c0"),
        Err(ProfileError::TooDeep { .. })
    ));
}

#[test]
fn every_chain_of_thousands_of_profiles_resolves_in_linear_time() {
    let profiles = linear_chain(3000);
    let started = std::time::Instant::now();
    let resolved = profiles
        .profiles
        .keys()
        .filter(|p| profiles.chain(p).is_ok())
        .count();
    assert_eq!(resolved, 33);
    assert_eq!(profiles.credential_profiles().len(), 3000);
    // Bounded by 33 steps per profile: a few ms; quadratic was seconds (and gigabytes).
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
