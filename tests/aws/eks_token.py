"""Pure checks of an EKS bearer token (``k8s-aws-v1.`` + base64url of a presigned STS URL).

``parse_token`` applies the checks of aws-iam-authenticator's server (pkg/token/token.go,
``tokenVerifier.Verify``) in the same order and raises ``Rejected`` with a short reason on the
first failure. ``verify_signature`` recomputes the SigV4 query signature for one cluster name:
real STS binds a token to its cluster through the signed ``x-k8s-aws-id`` header, moto checks no
signatures, so the test verifier does it itself.

Nothing here does I/O; the reasons never contain the token, the signature or any key material.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

PREFIX = "k8s-aws-v1."
MAX_TOKEN_BYTES = 4096
MAX_EXPIRES_SECONDS = 900
# STS honours a presigned GetCallerIdentity for 15 minutes after X-Amz-Date, whatever X-Amz-Expires says.
LIFETIME = dt.timedelta(minutes=15)
# aws-iam-authenticator does not check dates in the future; real STS refuses requests "not yet valid".
# Allow a small clock skew only.
FUTURE_SKEW = dt.timedelta(minutes=5)
CLUSTER_ID_HEADER = "x-k8s-aws-id"
ALLOWED_QUERY_KEYS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
# Region identifiers of the `aws` partition (the testbed's only partition), as validated by the
# authenticator before it resolves the STS endpoints of a region.
_AWS_REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d{1,2}$")
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Rejected(Exception):
    """A token check failed; ``str(exc)`` is the reason (safe to log)."""


@dataclass(frozen=True)
class ParsedToken:
    """The parts of a well-formed token that the later checks need."""

    host: str
    params: dict[str, str]  # query keys lower-cased, values decoded
    raw_query: list[tuple[str, str]]  # as sent (original key case), for the signature
    access_key_id: str
    date: dt.datetime

    @property
    def signed_headers(self) -> list[str]:
        return self.params["x-amz-signedheaders"].split(";")


def sts_host_allowed(host: str) -> bool:
    """The STS hosts of the `aws` partition: global, regional, FIPS and dual-stack."""
    if host == "sts.amazonaws.com":
        return True
    for pattern in (
        r"^sts\.([a-z0-9-]+)\.amazonaws\.com$",
        r"^sts-fips\.([a-z0-9-]+)\.amazonaws\.com$",
        r"^sts(?:-fips)?\.([a-z0-9-]+)\.api\.aws$",
    ):
        m = re.match(pattern, host)
        if m and _AWS_REGION.match(m.group(1)):
            return True
    return False


def decode_token(token: str) -> str:
    """Size, prefix and raw (unpadded) base64url; returns the URL."""
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise Rejected("token is too large")
    if not token.startswith(PREFIX):
        raise Rejected(f"token is missing expected {PREFIX!r} prefix")
    body = token[len(PREFIX) :]
    # Go's RawURLEncoding: URL alphabet, no padding, strict.
    if not re.fullmatch(r"[A-Za-z0-9_-]*", body) or len(body) % 4 == 1:
        raise Rejected("token is not raw (unpadded) base64url")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Rejected("token is not raw (unpadded) base64url") from None


def parse_token(token: str, now: dt.datetime, lifetime: dt.timedelta = LIFETIME) -> ParsedToken:
    """Every format check of the authenticator's Verify, in its order. ``now`` is timezone-aware UTC;
    ``lifetime`` is how long after X-Amz-Date the URL is honoured (STS: 15 minutes)."""
    url = urlsplit(decode_token(token))
    if url.scheme != "https":
        raise Rejected(f"unexpected scheme {url.scheme!r} in pre-signed URL")
    if not sts_host_allowed(url.netloc):
        raise Rejected(f"unexpected hostname {url.netloc!r} in pre-signed URL")
    if url.path != "/":
        raise Rejected("unexpected path in pre-signed URL")
    if re.search(r"%(?![0-9A-Fa-f]{2})", url.query):
        raise Rejected("malformed query parameter")
    pairs = parse_qsl(url.query, keep_blank_values=True)
    params: dict[str, str] = {}
    seen_exact: set[str] = set()
    for key, value in pairs:
        lower = key.lower()
        if lower not in ALLOWED_QUERY_KEYS:
            raise Rejected(f"non-whitelisted query parameter {key!r}")
        if key in seen_exact:
            raise Rejected("query parameter with multiple values not supported")
        if lower in params:
            raise Rejected(f"duplicate query parameter found: {key!r}")
        seen_exact.add(key)
        params[lower] = value
    if params.get("action") != "GetCallerIdentity":
        raise Rejected("unexpected action parameter in pre-signed URL")
    signed = params.get("x-amz-signedheaders", "").split(";")
    if not any(h.lower() == CLUSTER_ID_HEADER for h in signed):
        raise Rejected(f"client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL")
    expires = params.get("x-amz-expires", "")
    if not re.fullmatch(r"[+-]?\d+", expires) or not 0 <= int(expires) <= MAX_EXPIRES_SECONDS:
        raise Rejected(f"invalid X-Amz-Expires parameter in pre-signed URL: {expires[:16]!r}")
    if not params.get("x-amz-date"):
        raise Rejected("X-Amz-Date parameter must be present in pre-signed URL")
    try:
        date = dt.datetime.strptime(params["x-amz-date"], _DATE_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise Rejected("error parsing X-Amz-Date parameter") from None
    if now > date + lifetime:
        minutes = lifetime.total_seconds() / 60
        raise Rejected(f"X-Amz-Date parameter is expired ({minutes:g} minute expiration) {date:%Y-%m-%dT%H:%M:%SZ}")
    if date > now + FUTURE_SKEW:
        raise Rejected(f"X-Amz-Date parameter is in the future {date:%Y-%m-%dT%H:%M:%SZ}")
    access_key_id = params.get("x-amz-credential", "").split("/")[0]
    if not access_key_id:
        raise Rejected("X-Amz-Credential parameter missing in pre-signed URL")
    return ParsedToken(url.netloc, params, pairs, access_key_id, date)


def _uri_encode(s: str) -> str:
    return quote(s, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def expected_signatures(tok: ParsedToken, cluster: str, secret_key: str) -> list[str]:
    """The SigV4 query signatures a client holding ``secret_key`` computes for this URL when it
    signs ``host`` and ``x-k8s-aws-id: <cluster>``. Two candidates: presigning clients hash the
    empty GET body (botocore) or send UNSIGNED-PAYLOAD; either is a valid signature.

    Written by hand (not botocore's signer) because verifying means re-deriving the canonical
    request from the URL exactly as received, which botocore's request-building signer cannot do.
    """
    if tok.params.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        raise Rejected("unsupported X-Amz-Algorithm")
    scope = tok.params["x-amz-credential"].split("/")
    if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request":
        raise Rejected("malformed credential scope in X-Amz-Credential")
    _, day, region, service, _ = scope
    if day != tok.params["x-amz-date"][:8]:
        raise Rejected("credential scope date differs from X-Amz-Date")
    headers = {"host": tok.host, CLUSTER_ID_HEADER: cluster}
    signed = [h.lower() for h in tok.signed_headers]
    if any(h not in headers for h in signed) or signed != sorted(signed):
        raise Rejected("X-Amz-SignedHeaders names headers the verifier cannot reproduce")
    query = sorted(
        (_uri_encode(k), _uri_encode(v)) for k, v in tok.raw_query if k.lower() != "x-amz-signature"
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in query)
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    key = _hmac(("AWS4" + secret_key).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    out = []
    for payload in (_EMPTY_SHA256, "UNSIGNED-PAYLOAD"):
        canonical_request = "\n".join(
            ["GET", "/", canonical_query, canonical_headers, ";".join(signed), payload]
        )
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                tok.params["x-amz-date"],
                "/".join(scope[1:]),
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        out.append(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())
    return out


def verify_signature(tok: ParsedToken, cluster: str, secret_key: str) -> None:
    """Raises ``Rejected`` unless the token's signature is valid for ``cluster``."""
    given = tok.params.get("x-amz-signature", "")
    if not any(hmac.compare_digest(given, sig) for sig in expected_signatures(tok, cluster, secret_key)):
        raise Rejected(
            f"signature does not match for {CLUSTER_ID_HEADER}={cluster!r} "
            "(token minted for another cluster, or tampered)"
        )
