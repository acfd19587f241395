use super::*;

/// 2026-01-01T12:00:00Z
fn noon() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_268_800)
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token.map(str::to_string),
        None,
        "test",
    )
}

/// Reference URLs printed (base64-decoded) by `aws eks get-token` (awscli 1.46.3) under libfaketime
/// frozen at 2026-01-01 12:00:00 UTC, region eu-central-1, cluster mc-project-k8s.
#[test]
fn presigned_url_matches_awscli() {
    let cases = [
        (
            None,
            "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Feu-central-1%2Fsts%2Faws4_request&X-Amz-Date=20260101T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=ec84c33f99d22cd07f9bdadba23b46b10ab340565a235201cd4784c68f394efa",
        ),
        (
            Some("FQoGZXIvYXdzE+/x="),
            "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Feu-central-1%2Fsts%2Faws4_request&X-Amz-Date=20260101T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Fx%3D&X-Amz-Signature=15448d24c917d9589b6752df488b7dc15afcc6de1e83a75a5048ed3de25bc5d8",
        ),
    ];
    for (token, want) in cases {
        let url = presigned_url(&creds(token), "eu-central-1", "mc-project-k8s", noon()).unwrap();
        assert_eq!(url, want);
    }
}

#[test]
fn another_cluster_gets_another_signature() {
    let a = presigned_url(&creds(None), "eu-central-1", "a", noon()).unwrap();
    let b = presigned_url(&creds(None), "eu-central-1", "b", noon()).unwrap();
    assert_ne!(a, b);
    assert_eq!(a[..a.len() - 64], b[..b.len() - 64]);
}

#[test]
fn token_is_unpadded_base64url() {
    for url in ["a", "ab", "abc", "https://x/?a=b&c=~d"] {
        let t = token_from_url(url);
        assert!(t.starts_with("k8s-aws-v1."));
        assert!(
            !t.contains('=') && !t.contains('+') && !t.contains('/'),
            "{t}"
        );
    }
}

#[test]
fn hosts_per_partition() {
    let cases = [
        ("eu-central-1", "sts.eu-central-1.amazonaws.com"),
        ("us-east-1", "sts.us-east-1.amazonaws.com"),
        ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com"),
        ("us-iso-east-1", "sts.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", "sts.us-isob-east-1.sc2s.sgov.gov"),
    ];
    for (region, host) in cases {
        assert_eq!(sts_host(region), host);
    }
}

#[test]
fn expiration_is_14_minutes_or_credential_expiry_minus_one() {
    let now = noon();
    let m = |n: u64| Duration::from_secs(n * 60);
    let cases = [
        (None, now + m(14)),
        (Some(now + m(60)), now + m(14)),
        (Some(now + m(15)), now + m(14)),
        (Some(now + m(10)), now + m(9)),
    ];
    for (expiry, want) in cases {
        assert_eq!(
            expiration_after(now, expiry, TOKEN_LIFETIME),
            want,
            "{expiry:?}"
        );
    }
    // The test-only lifetime is a maximum like the 14 minutes.
    let s = Duration::from_secs;
    assert_eq!(expiration_after(now, None, s(20)), now + s(20));
    assert_eq!(expiration_after(now, Some(now + s(70)), s(20)), now + s(10));
}

#[test]
fn api_version_from_exec_info() {
    let cases: [(Option<&str>, &str, bool); 7] = [
        (None, V1BETA1, false),
        (Some(""), V1BETA1, false),
        (
            Some(
                r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
            ),
            "client.authentication.k8s.io/v1",
            false,
        ),
        (
            Some(r#"{"apiVersion":"client.authentication.k8s.io/v1beta1"}"#),
            V1BETA1,
            false,
        ),
        (
            Some(r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#),
            "client.authentication.k8s.io/v1alpha1",
            true,
        ),
        (Some(r#"{"apiVersion":"v9"}"#), V1BETA1, true),
        (Some("{not json"), V1BETA1, true),
    ];
    for (info, want, notice) in cases {
        let (got, n) = api_version(info);
        assert_eq!(got, want, "{info:?}");
        assert_eq!(n.is_some(), notice, "{info:?}");
    }
}

#[test]
fn exec_credential_has_awscli_layout() {
    let text = exec_credential(V1BETA1, noon() + TOKEN_LIFETIME, "k8s-aws-v1.abc").unwrap();
    let want = "{\n    \"kind\": \"ExecCredential\",\n    \"apiVersion\": \"client.authentication.k8s.io/v1beta1\",\n    \"spec\": {},\n    \"status\": {\n        \"expirationTimestamp\": \"2026-01-01T12:14:00Z\",\n        \"token\": \"k8s-aws-v1.abc\"\n    }\n}\n\n";
    assert_eq!(text, want);
}
