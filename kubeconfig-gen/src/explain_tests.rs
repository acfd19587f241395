//! smithy-rs's assume-role test vectors (aws-config/test-data/assume-role-tests.json, all 28 of
//! release 1.1.7; Apache-2.0), restated as INI and checked through `explain`'s own JSON: the
//! chain it prints must be the vector's ProfileChain, its error the vector's error.
use super::*;
use crate::profiles::{FileKind, Source};

/// A config file's profiles (`[profile X]`, `[sso-session S]`).
fn config(text: &str) -> Profiles {
    Profiles::parse(&[Source {
        kind: FileKind::Config,
        path: Path::new("/config"),
        text: Some(text),
    }])
    .unwrap()
}

/// One hop of explain's JSON in the vectors' vocabulary. Static keys are named by the profile
/// that holds them (explain never prints a key; each vector's keys are unique to one profile).
fn render(hop: &Value) -> String {
    let s = |k: &str| hop[k].as_str().map(str::to_string);
    let opt = |k: &str, label: &str| s(k).map(|v| format!(", {label}={v}")).unwrap_or_default();
    let field = |k: &str| s(k).unwrap_or_else(|| format!("<no {k}>"));
    match hop["kind"].as_str().unwrap_or_default() {
        "static" => format!("AccessKey({})", field("profile")),
        "assume_role" => format!(
            "AssumeRole({}{}{})",
            field("role_arn"),
            opt("session_name", "role_session_name"),
            opt("external_id", "external_id")
        ),
        "web_identity" => format!(
            "WebIdentityToken({}, {}{})",
            field("role_arn"),
            field("token_file"),
            opt("session_name", "role_session_name")
        ),
        "credential_source" => format!("NamedSource({})", field("source")),
        "credential_process" => format!("CredentialProcess({})", field("profile")),
        "sso" => format!(
            "Sso(region={}, start_url={}{}{}{})",
            field("sso_region"),
            field("start_url"),
            opt("account_id", "account_id"),
            opt("role_name", "role_name"),
            opt("sso_session", "sso_session")
        ),
        other => format!("unknown kind {other}"),
    }
}

const ROLE_A: &str = "arn:aws:iam::123456789:role/RoleA";
const ROLE_B: &str = "arn:aws:iam::123456789:role/RoleB";

/// (docs, config file, selected, Ok(ProfileChain) | Err(message substring))
type Vector = (
    &'static str,
    &'static str,
    &'static str,
    Result<Vec<String>, &'static str>,
);

fn vectors() -> Vec<Vector> {
    let ar = |arn: &str| format!("AssumeRole({arn})");
    let key = |p: &str| format!("AccessKey({p})");
    let web = "WebIdentityToken(arn:aws:iam::123456789:role/RoleA, /var/token.jwt)";
    vec![
        (
            "basic test case, a role_arn backed by a static credential",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\naws_access_key_id = abc123\naws_secret_access_key = def456",
            "A",
            Ok(vec![key("B"), ar(ROLE_A)]),
        ),
        (
            "ignore explicit credentials when source profile is specified",
            "[profile A]\naws_access_key_id = abc123\naws_secret_access_key = def456\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\naws_access_key_id = ghi890\naws_secret_access_key = jkl123",
            "A",
            Ok(vec![key("B"), ar(ROLE_A)]),
        ),
        (
            "load role_session_name for the AssumeRole provider",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nrole_session_name = my_session_name\nsource_profile = B\n[profile B]\naws_access_key_id = abc123\naws_secret_access_key = def456",
            "A",
            Ok(vec![
                key("B"),
                format!("AssumeRole({ROLE_A}, role_session_name=my_session_name)"),
            ]),
        ),
        (
            "load external id for the AssumeRole provider",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nexternal_id = my_external_id\nsource_profile = B\n[profile B]\naws_access_key_id = abc123\naws_secret_access_key = def456",
            "A",
            Ok(vec![
                key("B"),
                format!("AssumeRole({ROLE_A}, external_id=my_external_id)"),
            ]),
        ),
        (
            "self referential profile (first load base creds, then use for the role)",
            "[profile A]\naws_access_key_id = abc123\naws_secret_access_key = def456\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = A",
            "A",
            Ok(vec![key("A"), ar(ROLE_A)]),
        ),
        (
            "Load credentials from a credential_source",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\ncredential_source = Ec2InstanceMetadata",
            "A",
            Ok(vec!["NamedSource(Ec2InstanceMetadata)".into(), ar(ROLE_A)]),
        ),
        (
            "role_arn without source source_profile",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA",
            "A",
            Err("profile must contain `source_profile`"),
        ),
        (
            "source profile and credential source both present",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\ncredential_source = Environment\nsource_profile = B\n[profile B]\naws_access_key_id = !23\naws_secret_access_key = 456",
            "A",
            Err("profile contained both source_profile and credential_source"),
        ),
        (
            "partial credentials error (missing secret)",
            "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]\naws_access_key_id = abc123",
            "A",
            Err("profile missing aws_secret_access_key"),
        ),
        (
            "partial credentials error (missing access key)",
            "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]\naws_secret_access_key = abc123",
            "A",
            Err("profile missing aws_access_key_id"),
        ),
        (
            "missing credentials error (empty source profile)",
            "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]",
            "A",
            Err("profile `B` did not contain credential information"),
        ),
        (
            "profile only contains configuration",
            "[profile A]\nec2_metadata_service_endpoint_mode = IPv6",
            "A",
            Err("profile `A` did not contain credential information"),
        ),
        (
            "missing source profile",
            "[profile A]\nrole_arn = arn:foo\nsource_profile = B",
            "A",
            Err("could not find source profile B referenced from A"),
        ),
        (
            // The SDK says "No profiles were defined"; explain names the profile it looked for.
            "missing root profile (should never happen in practice)",
            "",
            "A",
            Err("profile A not found"),
        ),
        (
            "multiple chained assume role profiles",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = C\n[profile C]\naws_access_key_id = mno456\naws_secret_access_key = pqr789",
            "A",
            Ok(vec![key("C"), ar(ROLE_B), ar(ROLE_A)]),
        ),
        (
            "chained assume role profiles with static credentials (ignore assume role when static credentials present)",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\naws_access_key_id = bug_if_returned\naws_secret_access_key = bug_if_returned\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = C\naws_access_key_id = profile_b_key\naws_secret_access_key = profile_b_secret\n[profile C]\naws_access_key_id = bug_if_returned\naws_secret_access_key = bug_if_returned",
            "A",
            Ok(vec![key("B"), ar(ROLE_A)]),
        ),
        (
            "assume role profile infinite loop",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop"),
        ),
        (
            "infinite loop with static credentials",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\naws_access_key_id = bug_if_returned\naws_secret_access_key = bug_if_returned\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = A",
            "A",
            Err("profile formed an infinite loop"),
        ),
        (
            "web identity role",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nweb_identity_token_file = /var/token.jwt",
            "A",
            Ok(vec![web.into()]),
        ),
        (
            "web identity role with session name",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nweb_identity_token_file = /var/token.jwt\nrole_session_name = some_session_name",
            "A",
            Ok(vec![format!(
                "WebIdentityToken({ROLE_A}, /var/token.jwt, role_session_name=some_session_name)"
            )]),
        ),
        (
            "web identity role (without role_arn)",
            "[profile A]\nweb_identity_token_file = /var/token.jwt",
            "A",
            Err("`role_arn` was missing"),
        ),
        (
            "web identity token as source profile",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nweb_identity_token_file = /var/token.jwt\nrole_session_name = some_session_name",
            "A",
            Ok(vec![
                format!(
                    "WebIdentityToken({ROLE_B}, /var/token.jwt, role_session_name=some_session_name)"
                ),
                ar(ROLE_A),
            ]),
        ),
        (
            "SSO credentials profile selected",
            "[profile A]\nsso_account_id = 0123\nsso_region = us-east-7\nsso_role_name = testrole\nsso_start_url = https://foo.bar",
            "A",
            Ok(vec![
                "Sso(region=us-east-7, start_url=https://foo.bar, account_id=0123, role_name=testrole)"
                    .into(),
            ]),
        ),
        (
            "invalid SSO credentials configuration: missing account ID",
            "[profile A]\nsso_region = us-east-7\nsso_role_name = testrole\nsso_start_url = https://foo.bar",
            "A",
            Err("if `sso_role_name` is set, then `sso_account_id` must also be set"),
        ),
        (
            "invalid SSO credentials configuration: missing role name",
            "[profile A]\nsso_region = us-east-7\nsso_account_id = 012345678901\nsso_start_url = https://foo.bar",
            "A",
            Err("if `sso_account_id` is set, then `sso_role_name` must also be set"),
        ),
        (
            "invalid SSO token configuration: sso_region must be in sso-session",
            "[profile A]\nsso_session = A\nsso_region = us-east-7\n[sso-session A]\nsso_start_url = https://foo.bar",
            "A",
            Err(
                "`sso_region` can only be specified in the [sso-session] config when a session name is given",
            ),
        ),
        (
            "SSO token profile selected",
            "[profile A]\nsso_session = foo\n[sso-session foo]\nsso_region = us-east-7\nsso_start_url = https://foo.bar",
            "A",
            Ok(vec![
                "Sso(region=us-east-7, start_url=https://foo.bar, sso_session=foo)".into(),
            ]),
        ),
        (
            "invalid SSO token configuration: sso-session not found",
            "[profile A]\nsso_session = oops",
            "A",
            Err("sso-session named `oops` (referenced by profile `A`) was not found"),
        ),
    ]
}

fn check(cases: Vec<Vector>) {
    for (docs, text, selected, want) in cases {
        let profiles = config(text);
        let (docs_out, first_error) = profile_docs(&profiles, &[selected.to_string()]);
        let doc = &docs_out[0];
        match want {
            Ok(want) => {
                let got: Vec<String> = doc["chain"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{docs}: no chain in {doc}"))
                    .iter()
                    .map(render)
                    .collect();
                assert_eq!(got, want, "{docs}");
                assert!(first_error.is_none(), "{docs}");
            }
            Err(want) => {
                let msg = doc["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{docs}: {doc}"));
                assert!(msg.contains(want), "{docs}: {msg:?} lacks {want:?}");
                assert_eq!(first_error.map(|e| e.exit_code()), Some(3), "{docs}");
            }
        }
    }
}

#[test]
fn every_assume_role_vector_agrees_through_explain() {
    let cases = vectors();
    assert_eq!(
        cases.len(),
        28,
        "the vector file of smithy-rs 1.1.7 has 28 cases"
    );
    check(cases);
}

/// Beyond the vectors: the laptop sources and what we add on top of the SDK's rules.
#[test]
fn laptop_sources_through_explain() {
    let cases: Vec<Vector> = vec![
        (
            "credential_process",
            "[profile A]\ncredential_process = /usr/bin/creds --user me",
            "A",
            Ok(vec!["CredentialProcess(A)".into()]),
        ),
        (
            "role on top of credential_process",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\ncredential_process = /usr/bin/creds",
            "A",
            Ok(vec!["CredentialProcess(B)".into(), format!("AssumeRole({ROLE_A})")]),
        ),
        (
            "self reference with credential_process (the SDK's base provider, then the role)",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = A\ncredential_process = /usr/bin/creds",
            "A",
            Ok(vec!["CredentialProcess(A)".into(), format!("AssumeRole({ROLE_A})")]),
        ),
        (
            "EcsContainer (EKS Pod Identity), matched case-insensitively",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\ncredential_source = ecscontainer",
            "A",
            Ok(vec!["NamedSource(EcsContainer)".into(), format!("AssumeRole({ROLE_A})")]),
        ),
        (
            "Environment",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\ncredential_source = Environment",
            "A",
            Ok(vec!["NamedSource(Environment)".into(), format!("AssumeRole({ROLE_A})")]),
        ),
        (
            "role on top of an SSO session profile",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n[sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://corp.awsapps.com/start",
            "A",
            Ok(vec![
                "Sso(region=eu-west-1, start_url=https://corp.awsapps.com/start, account_id=1, role_name=r, sso_session=corp)".into(),
                format!("AssumeRole({ROLE_A})"),
            ]),
        ),
        (
            "sso-session without sso_region",
            "[profile A]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n[sso-session corp]\nsso_start_url = https://x",
            "A",
            Err("profile A: invalid SSO configuration: `sso_region` is missing from [sso-session corp]"),
        ),
        (
            "legacy SSO without sso_region",
            "[profile A]\nsso_account_id = 1\nsso_role_name = r\nsso_start_url = https://x",
            "A",
            Err("profile A: profile missing sso_region"),
        ),
        (
            "legacy SSO without sso_start_url",
            "[profile A]\nsso_account_id = 1\nsso_role_name = r\nsso_region = eu-west-1",
            "A",
            Err("profile A: profile missing sso_start_url"),
        ),
        (
            "sso_start_url beside sso_session",
            "[profile A]\nsso_session = corp\nsso_start_url = https://x\n[sso-session corp]\nsso_region = r\nsso_start_url = https://x",
            "A",
            Err("`sso_start_url` can only be specified in the [sso-session] config"),
        ),
        (
            "mfa_serial on the assumed role",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\nmfa_serial = arn:aws:iam::1:mfa/me\n[profile B]\naws_access_key_id = k\naws_secret_access_key = s",
            "A",
            Err("profile A: mfa_serial is set, but MFA is not supported"),
        ),
        (
            "mfa_serial further down the chain",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\ncredential_source = Environment\nmfa_serial = arn:aws:iam::1:mfa/me",
            "A",
            Err("profile B: mfa_serial is set, but MFA is not supported"),
        ),
        (
            "login_session",
            "[profile A]\nlogin_session = arn:aws:iam::1:user/me",
            "A",
            Err("profile A: login_session is not supported"),
        ),
        (
            "a web identity token file that is missing does not hide the chain",
            "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nweb_identity_token_file = /nonexistent/token",
            "A",
            Ok(vec![
                format!("WebIdentityToken({ROLE_B}, /nonexistent/token)"),
                format!("AssumeRole({ROLE_A})"),
            ]),
        ),
    ];
    check(cases);
}

#[test]
fn problems_are_listed_beside_the_chain() {
    let profiles = config(
        "[profile web]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /nonexistent/token\n\
         [profile tokenonly]\nsso_session = corp\n[sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://x\n\
         [profile ok]\naws_access_key_id = k\naws_secret_access_key = s\n",
    );
    let (docs, first_error) = profile_docs(&profiles, &[]);
    assert!(first_error.is_none());
    let by_name = |n: &str| docs.iter().find(|d| d["name"] == n).unwrap();
    let web = by_name("web");
    assert_eq!(web["chain"][0]["kind"], "web_identity");
    let problem = web["problems"][0].as_str().unwrap();
    assert!(
        problem.starts_with(
            "profile web: web identity token file /nonexistent/token cannot be read: "
        ),
        "{problem}"
    );
    let token_only = by_name("tokenonly");
    assert!(
        token_only["problems"][0]
            .as_str()
            .unwrap()
            .contains("gives an SSO access token, not AWS credentials"),
        "{token_only}"
    );
    assert!(by_name("ok").get("problems").is_none());
    // A token-only profile is not a credential profile for discovery.
    assert_eq!(profiles.credential_profiles(), vec!["ok", "web"]);
}
