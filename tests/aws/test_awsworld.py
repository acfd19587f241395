"""Unit tests for the pure parts of awsworld (token checks, SigV4 binding, aws-auth mapping).

Run: ``$KCS_VENV/bin/python -m unittest discover -s tests/aws`` (part of ``make test``).
Tokens are presigned with botocore exactly as ``aws eks get-token`` does, then altered per case.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import sys
import unittest
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import botocore.session  # noqa: E402
from botocore.auth import S3SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

import aws_auth  # noqa: E402
import eks_token  # noqa: E402
from eks_token import Rejected  # noqa: E402

AKID, SECRET, SESSION = "ASIAEXAMPLEEXAMPLE01", "s3cr3t/key+value", "session-token-value"
CLUSTER = "mc-project-k8s"


def presign(
    cluster: str = CLUSTER, region: str = "eu-central-1", token: str | None = SESSION, endpoint: str | None = None
) -> str:
    """A presigned GetCallerIdentity URL, signed the way awscli's get-token signs it."""
    session = botocore.session.get_session()
    sts = session.create_client(
        "sts",
        region_name=region,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        # explicit, so an AWS_ENDPOINT_URL in the environment cannot change the signed host
        endpoint_url=endpoint or f"https://sts.{region}.amazonaws.com",
    )
    sts.meta.events.register(
        "before-sign.sts.GetCallerIdentity",
        lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", cluster),
    )
    return sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")


def encode(url: str) -> str:
    return eks_token.PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def with_query(url: str, edit) -> str:
    """``edit(pairs) -> pairs`` applied to the URL's query."""
    u = urlsplit(url)
    return urlunsplit(u._replace(query=urlencode(edit(parse_qsl(u.query, keep_blank_values=True)))))


def set_param(key: str, value: str | None):
    def edit(pairs):
        out = [(k, v) for k, v in pairs if k != key]
        return out + [(key, value)] if value is not None else out

    return edit


def date_of(url: str) -> dt.datetime:
    d = dict(parse_qsl(urlsplit(url).query))["X-Amz-Date"]
    return dt.datetime.strptime(d, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


class TokenFormatTest(unittest.TestCase):
    def setUp(self) -> None:
        self.url = presign()
        self.now = date_of(self.url) + dt.timedelta(seconds=5)

    def test_valid_token_parses(self) -> None:
        tok = eks_token.parse_token(encode(self.url), self.now)
        self.assertEqual(tok.access_key_id, AKID)
        self.assertEqual(tok.host, "sts.eu-central-1.amazonaws.com")
        eks_token.verify_signature(tok, CLUSTER, SECRET)

    def test_accepted_variants(self) -> None:
        u = self.url
        cases = {
            "global host": u.replace("sts.eu-central-1.amazonaws.com", "sts.amazonaws.com"),
            "other region": u.replace("eu-central-1.amazonaws", "us-west-2.amazonaws"),
            "expires 0": with_query(u, set_param("X-Amz-Expires", "0")),
            "expires 900": with_query(u, set_param("X-Amz-Expires", "900")),
            "lower-case keys": with_query(u, lambda p: [(k.lower(), v) for k, v in p]),
        }
        for name, url in cases.items():
            with self.subTest(name):
                eks_token.parse_token(encode(url), self.now)
        for name, now in {
            "just before 15 min": date_of(u) + dt.timedelta(minutes=15),
            "small clock skew": date_of(u) - dt.timedelta(minutes=4),
        }.items():
            with self.subTest(name):
                eks_token.parse_token(encode(u), now)

    def test_each_rejection_reason(self) -> None:
        u, tok = self.url, encode(self.url)
        cases = [
            ("too large", eks_token.PREFIX + "A" * 4096, "token is too large"),
            ("no prefix", tok.replace("k8s-aws-v1.", "k8s-aws-v2."), "missing expected"),
            ("padded base64", tok + "==", "base64url"),
            ("std alphabet", tok[:-2] + "+/", "base64url"),
            ("not utf-8", eks_token.PREFIX + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="), "base64url"),
            ("http", encode(u.replace("https://", "http://")), "unexpected scheme"),
            ("moto host", encode(u.replace("sts.eu-central-1.amazonaws.com", "127.0.0.1:4566")), "hostname"),
            ("foreign host", encode(u.replace("amazonaws.com", "amazonaws.com.evil.example")), "hostname"),
            ("bad region", encode(u.replace("eu-central-1", "moon-base-alpha")), "hostname"),
            ("path", encode(u.replace(".com/?", ".com/x?")), "unexpected path"),
            ("extra param", encode(with_query(u, set_param("Foo", "bar"))), "non-whitelisted query parameter 'Foo'"),
            ("repeated", encode(with_query(u, lambda p: p + [("Action", "GetCallerIdentity")])), "multiple values"),
            ("case dup", encode(with_query(u, lambda p: p + [("action", "GetCallerIdentity")])), "duplicate"),
            ("bad escape", encode(u + "&Version=%zz"), "malformed query"),
            ("action", encode(with_query(u, set_param("Action", "AssumeRole"))), "unexpected action"),
            ("no action", encode(with_query(u, set_param("Action", None))), "unexpected action"),
            ("unsigned id", encode(with_query(u, set_param("X-Amz-SignedHeaders", "host"))), "did not sign"),
            ("expires 901", encode(with_query(u, set_param("X-Amz-Expires", "901"))), "X-Amz-Expires"),
            ("expires -1", encode(with_query(u, set_param("X-Amz-Expires", "-1"))), "X-Amz-Expires"),
            ("expires nan", encode(with_query(u, set_param("X-Amz-Expires", "soon"))), "X-Amz-Expires"),
            ("no date", encode(with_query(u, set_param("X-Amz-Date", None))), "must be present"),
            ("bad date", encode(with_query(u, set_param("X-Amz-Date", "2026-01-01"))), "parsing X-Amz-Date"),
            ("no credential", encode(with_query(u, set_param("X-Amz-Credential", None))), "X-Amz-Credential"),
        ]
        for name, token, reason in cases:
            with self.subTest(name):
                with self.assertRaises(Rejected) as ctx:
                    eks_token.parse_token(token, self.now)
                self.assertIn(reason, str(ctx.exception))
                self.assertNotIn(SESSION, str(ctx.exception))

    def test_time_window(self) -> None:
        tok = encode(self.url)
        for name, now, reason in [
            ("expired", date_of(self.url) + dt.timedelta(minutes=15, seconds=1), "expired"),
            ("future", date_of(self.url) - dt.timedelta(minutes=6), "in the future"),
        ]:
            with self.subTest(name), self.assertRaises(Rejected) as ctx:
                eks_token.parse_token(tok, now)
            self.assertIn(reason, str(ctx.exception))
        # A shortened lifetime (the verifier's test-only knob): refused after it, accepted within.
        short = dt.timedelta(seconds=20)
        eks_token.parse_token(tok, date_of(self.url) + dt.timedelta(seconds=19), short)
        with self.assertRaises(Rejected) as ctx:
            eks_token.parse_token(tok, date_of(self.url) + dt.timedelta(seconds=21), short)
        self.assertIn("0.333333 minute expiration", str(ctx.exception))

    def test_max_age_file(self) -> None:
        import tempfile

        from verifier import Verifier

        with tempfile.TemporaryDirectory() as d:
            knob = os.path.join(d, "token-max-age")
            v = Verifier([], "http://moto.invalid", knob)
            self.assertEqual(v.token_lifetime(), eks_token.LIFETIME)
            for text, want in [("30\n", dt.timedelta(seconds=30)), ("nope", eks_token.LIFETIME),
                               ("0", eks_token.LIFETIME), ("100000", eks_token.LIFETIME)]:
                with open(knob, "w", encoding="utf-8") as f:
                    f.write(text)
                self.assertEqual(v.token_lifetime(), want, text)
            os.remove(knob)
            self.assertEqual(v.token_lifetime(), eks_token.LIFETIME)


class SignatureTest(unittest.TestCase):
    def setUp(self) -> None:
        self.url = presign()
        self.now = date_of(self.url)

    def check(self, url: str, cluster: str = CLUSTER, secret: str = SECRET) -> None:
        eks_token.verify_signature(eks_token.parse_token(encode(url), self.now), cluster, secret)

    def test_valid_for_its_cluster_only(self) -> None:
        self.check(self.url)
        with self.assertRaisesRegex(Rejected, "signature does not match"):
            self.check(self.url, cluster="mc-project2-k8s")

    def test_unsigned_payload_global_host_and_long_term_keys(self) -> None:
        self.check(presign(token=None))
        self.check(presign(region="us-east-1", endpoint="https://sts.amazonaws.com"))
        # A signer that sends UNSIGNED-PAYLOAD (S3-style presigning) instead of the empty-body hash.
        req = AWSRequest(
            method="GET",
            url="https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            headers={"x-k8s-aws-id": CLUSTER},
        )
        S3SigV4QueryAuth(Credentials(AKID, SECRET, SESSION), "sts", "eu-central-1", expires=60).add_auth(req)
        self.now = date_of(req.url)
        self.check(req.url)

    def test_recorded_awscli_urls(self) -> None:
        """URLs printed by `aws eks get-token` (awscli 1.46.3, libfaketime at 2026-01-01 12:00:00Z,
        cluster mc-project-k8s; the vectors kubeconfig-gen's signer is tested against too)."""
        base = (
            "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
            "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Feu-central-1%2Fsts"
            "%2Faws4_request&X-Amz-Date=20260101T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"
        )
        secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        now = dt.datetime(2026, 1, 1, 12, 0, 5, tzinfo=dt.timezone.utc)
        for url in (
            base + "&X-Amz-Signature=ec84c33f99d22cd07f9bdadba23b46b10ab340565a235201cd4784c68f394efa",
            base + "&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Fx%3D"
            "&X-Amz-Signature=15448d24c917d9589b6752df488b7dc15afcc6de1e83a75a5048ed3de25bc5d8",
        ):
            tok = eks_token.parse_token(encode(url), now)
            eks_token.verify_signature(tok, "mc-project-k8s", secret)
            with self.assertRaises(Rejected):
                eks_token.verify_signature(tok, "mc-project2-k8s", secret)

    def test_rejections(self) -> None:
        sig = dict(parse_qsl(urlsplit(self.url).query))["X-Amz-Signature"]
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        cases = [
            ("wrong secret", self.url, CLUSTER, "wrong", "signature does not match"),
            ("tampered signature", self.url.replace(sig, flipped), CLUSTER, SECRET, "signature does not match"),
            ("tampered expires", with_query(self.url, set_param("X-Amz-Expires", "900")), CLUSTER, SECRET,
             "signature does not match"),
            ("other region host", self.url.replace("sts.eu-central-1", "sts.eu-west-1"), CLUSTER, SECRET,
             "signature does not match"),
            ("algorithm", with_query(self.url, set_param("X-Amz-Algorithm", "AWS4-HMAC-SHA1")), CLUSTER, SECRET,
             "X-Amz-Algorithm"),
            ("scope service", self.url.replace("%2Fsts%2F", "%2Fs3%2F"), CLUSTER, SECRET, "credential scope"),
            ("scope date", self.url.replace("%2F20", "%2F19", 1), CLUSTER, SECRET, "scope date"),
            ("extra signed header", with_query(self.url, set_param("X-Amz-SignedHeaders", "accept;host;x-k8s-aws-id")),
             CLUSTER, SECRET, "cannot reproduce"),
        ]
        for name, url, cluster, secret, reason in cases:
            with self.subTest(name), self.assertRaises(Rejected) as ctx:
                self.check(url, cluster, secret)
            self.assertIn(reason, str(ctx.exception))
            self.assertNotIn(secret, str(ctx.exception))


AWS_AUTH = {
    "mapRoles": """
- rolearn: arn:aws:iam::222222222222:role/kubed-follower
  username: kubed-follower:{{SessionName}}
  groups: [kubed-cross-sync:follower, "acct-{{AccountID}}", "raw-{{SessionNameRaw}}", "key-{{AccessKeyID}}"]
- rolearn: arn:aws:iam::222222222222:role/Admins
  username: admin
""",
    "mapUsers": """
- userarn: arn:aws:iam::222222222222:user/alice
  username: alice
  groups: [devs]
""",
}


def ident(arn: str, user_id: str = "AROAEXAMPLE:me@corp") -> aws_auth.Identity:
    return aws_auth.Identity(arn, arn.split(":")[4], user_id, AKID)


class MappingTest(unittest.TestCase):
    def test_canonicalize(self) -> None:
        for arn, want in [
            ("arn:aws:sts::222222222222:assumed-role/kubed-follower/mc-project", "arn:aws:iam::222222222222:role/kubed-follower"),
            ("arn:aws:sts::222222222222:assumed-role/a/b/sess", "arn:aws:iam::222222222222:role/a/b"),
            ("arn:aws:iam::222222222222:user/alice", "arn:aws:iam::222222222222:user/alice"),
            ("arn:aws:iam::222222222222:role/r", "arn:aws:iam::222222222222:role/r"),
        ]:
            self.assertEqual(aws_auth.canonicalize_arn(arn), want)
        for bad in ["arn:aws:sts::222222222222:assumed-role/onlyrole", "arn:aws:s3:::bucket", "nope",
                    "arn:aws:sts::222222222222:user/moto"]:
            with self.subTest(bad), self.assertRaises(aws_auth.Unmapped):
                aws_auth.canonicalize_arn(bad)

    def test_templates_and_user_info(self) -> None:
        who = ident("arn:aws:sts::222222222222:assumed-role/kubed-follower/me@corp")
        username, groups = aws_auth.map_identity(aws_auth.parse_aws_auth(AWS_AUTH), who)
        self.assertEqual(username, "kubed-follower:me-corp")
        self.assertEqual(groups, ["kubed-cross-sync:follower", "acct-222222222222", "raw-me@corp", f"key-{AKID}"])
        user = aws_auth.user_info(who, username, groups)
        self.assertEqual(user["uid"], "aws-iam-authenticator:222222222222:AROAEXAMPLE")
        self.assertEqual(user["extra"]["canonicalArn"], ["arn:aws:iam::222222222222:role/kubed-follower"])
        self.assertEqual(user["extra"]["sessionName"], ["me@corp"])
        self.assertEqual(user["extra"]["principalId"], ["AROAEXAMPLE"])

    def test_case_insensitive_arn_and_users(self) -> None:
        maps = aws_auth.parse_aws_auth(AWS_AUTH)
        self.assertEqual(aws_auth.map_identity(maps, ident("arn:aws:sts::222222222222:assumed-role/admins/x"))[0], "admin")
        self.assertEqual(aws_auth.map_identity(maps, ident("arn:aws:iam::222222222222:user/alice", "AIDA1")),
                         ("alice", ["devs"]))

    def test_unmapped(self) -> None:
        maps = aws_auth.parse_aws_auth(AWS_AUTH)
        for name, data, arn in [
            ("other account", AWS_AUTH, "arn:aws:sts::333333333333:assumed-role/kubed-follower/s"),
            ("other role", AWS_AUTH, "arn:aws:sts::222222222222:assumed-role/kubed-master/s"),
            ("no aws-auth", None, "arn:aws:sts::222222222222:assumed-role/kubed-follower/s"),
        ]:
            with self.subTest(name), self.assertRaisesRegex(aws_auth.Unmapped, "not mapped"):
                aws_auth.map_identity(aws_auth.parse_aws_auth(data) if data is not AWS_AUTH else maps, ident(arn))

    def test_bad_aws_auth(self) -> None:
        for name, data in [
            ("yaml", {"mapRoles": "- rolearn: [unclosed"}),
            ("not a list", {"mapRoles": "rolearn: x"}),
            ("no rolearn", {"mapRoles": "- username: x"}),
            ("groups not list", {"mapRoles": "- {rolearn: a, username: b, groups: c}"}),
        ]:
            with self.subTest(name), self.assertRaises(aws_auth.Unmapped):
                aws_auth.parse_aws_auth(data)


if __name__ == "__main__":
    unittest.main()
