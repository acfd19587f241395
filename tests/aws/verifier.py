"""The testbed's EKS token verifier: kube-apiserver's authentication webhook.

``POST /authenticate/<cluster>`` (or ``/authenticate?cluster=<cluster>``) takes a TokenReview (authentication.k8s.io/v1) and answers
one. A token is accepted only if it passes the format checks of aws-iam-authenticator
(``eks_token.parse_token``), its SigV4 signature is valid for this cluster's name with the secret
key moto issued for its access key id (real STS enforces that binding; moto does not), moto's
GetCallerIdentity resolves it, and the cluster's ``kube-system/aws-auth`` maps the role.
Every rejection is one log line with the reason; tokens and keys are never logged.

Runs in the same process as moto: the secret keys are read from moto's backend state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import aws_auth
import eks_token

log = logging.getLogger("awsworld.verifier")
AWS_AUTH_CACHE_SECONDS = 1.0
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ClusterConf:
    name: str
    account: str
    apiserver_url: str
    admin_token: str
    ca_file: str


@dataclass(frozen=True)
class IssuedKey:
    """What moto knows about an access key id."""

    account: str
    secret: str
    session_token: str | None  # None for long-term IAM user keys
    expiration: dt.datetime | None


def moto_key(access_key_id: str) -> IssuedKey | None:
    """Look the key up in moto's IAM/STS backends (same process)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account, by_partition in list(iam_backends.items()):
        backend = by_partition["aws"]
        key = backend.access_keys.get(access_key_id)
        if key is None:
            continue
        for role in list(sts_backends[account]["aws"].assumed_roles):
            if role.access_key_id == access_key_id:
                exp = role.expiration.replace(tzinfo=dt.timezone.utc)
                return IssuedKey(account, role.secret_access_key, role.session_token, exp)
        return IssuedKey(account, key.secret_access_key, None, None)
    return None


class Verifier:
    """Token checks for every cluster of the world."""

    def __init__(self, clusters: list[ClusterConf], moto_url: str, max_age_file: str | None = None):
        self.clusters = {c.name: c for c in clusters}
        self.moto_url = moto_url
        self.max_age_file = max_age_file
        self._cache: dict[str, tuple[float, list[aws_auth.Mapping] | str]] = {}
        self._lock = threading.Lock()

    def authenticate(self, cluster: str, token: str) -> dict:
        """status.user for an accepted token; raises Rejected/Unmapped with the reason otherwise."""
        conf = self.clusters.get(cluster)
        if conf is None and not cluster:
            raise eks_token.Rejected(
                "no cluster in the request: the webhook server URL must be https://.../authenticate/<cluster> "
                "(kube-apiserver drops a ?cluster= query)"
            )
        if conf is None:
            raise eks_token.Rejected(f"unknown cluster {cluster!r}")
        tok = eks_token.parse_token(token, dt.datetime.now(dt.timezone.utc), self.token_lifetime())
        key = moto_key(tok.access_key_id)
        if key is None:
            raise eks_token.Rejected(f"access key {tok.access_key_id} was not issued by STS/IAM")
        if key.session_token is not None:
            if tok.params.get("x-amz-security-token") != key.session_token:
                raise eks_token.Rejected(f"security token does not belong to access key {tok.access_key_id}")
            if key.expiration and key.expiration < dt.datetime.now(dt.timezone.utc):
                raise eks_token.Rejected(f"the credentials of access key {tok.access_key_id} have expired")
        eks_token.verify_signature(tok, conf.name, key.secret)
        ident = self.caller_identity(tok, key)
        username, groups = aws_auth.map_identity(self.mappings(conf), ident)
        return aws_auth.user_info(ident, username, groups)

    def token_lifetime(self) -> dt.timedelta:
        """How long a token is honoured: STS's 15 minutes, unless the test-only file ``max_age_file``
        holds a number of seconds (a test shortens it to see clients renew; deleting the file restores
        15 minutes). Read on every request."""
        if self.max_age_file:
            try:
                with open(self.max_age_file, encoding="utf-8") as f:
                    seconds = int(f.read().strip())
                if 0 < seconds < eks_token.LIFETIME.total_seconds():
                    return dt.timedelta(seconds=seconds)
            except (OSError, ValueError):
                pass
        return eks_token.LIFETIME

    def caller_identity(self, tok: eks_token.ParsedToken, key: IssuedKey) -> aws_auth.Identity:
        """POST GetCallerIdentity to moto as the token's key (a presigned GET would reach moto's S3)."""
        region = tok.params["x-amz-credential"].split("/")[2]
        req = AWSRequest(
            method="POST",
            url=self.moto_url + "/",
            data="Action=GetCallerIdentity&Version=2011-06-15",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(Credentials(tok.access_key_id, key.secret, key.session_token), "sts", region).add_auth(req)
        http_req = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")
        try:
            with urllib.request.urlopen(http_req, timeout=10) as resp:
                root = ET.fromstring(resp.read())
        except (urllib.error.URLError, OSError, ET.ParseError) as e:
            raise eks_token.Rejected(f"GetCallerIdentity failed: {e.__class__.__name__}") from None
        found = {el.tag.split("}")[-1]: (el.text or "") for el in root.iter()}
        if not found.get("Arn"):
            raise eks_token.Rejected("GetCallerIdentity returned no Arn")
        return aws_auth.Identity(found["Arn"], found.get("Account", ""), found.get("UserId", ""), tok.access_key_id)

    def mappings(self, conf: ClusterConf) -> list[aws_auth.Mapping]:
        """kube-system/aws-auth of the cluster, cached for at most AWS_AUTH_CACHE_SECONDS."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(conf.name)
        if hit is None or now - hit[0] > AWS_AUTH_CACHE_SECONDS:
            hit = (now, self._fetch_aws_auth(conf))
            with self._lock:
                self._cache[conf.name] = hit
        if isinstance(hit[1], str):
            raise aws_auth.Unmapped(hit[1])
        return hit[1]

    @staticmethod
    def _fetch_aws_auth(conf: ClusterConf) -> list[aws_auth.Mapping] | str:
        url = conf.apiserver_url.rstrip("/") + "/api/v1/namespaces/kube-system/configmaps/aws-auth"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {conf.admin_token}"})
        ctx = ssl.create_default_context(cafile=conf.ca_file)
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                data = json.load(resp).get("data") or {}
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return []  # no aws-auth: nobody is mapped
            return f"reading aws-auth failed: HTTP {e.code}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            return f"reading aws-auth failed: {e.__class__.__name__}"
        try:
            return aws_auth.parse_aws_auth(data)
        except aws_auth.Unmapped as e:
            return str(e)


class _Handler(BaseHTTPRequestHandler):
    server: VerifierServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        # /authenticate/<cluster>, or /authenticate?cluster=<cluster>. kube-apiserver's webhook client
        # (client-go's REST client) keeps the path of the kubeconfig's server URL but drops its query.
        path_cluster = url.path.removeprefix("/authenticate").strip("/")
        cluster = path_cluster or (parse_qs(url.query).get("cluster") or [""])[0]
        length = int(self.headers.get("Content-Length") or 0)
        if not url.path.startswith("/authenticate") or "/" in path_cluster or not 0 < length <= MAX_BODY_BYTES:
            self._send(400, {"error": "bad request"})
            return
        try:
            review = json.loads(self.rfile.read(length))
            api_version = review.get("apiVersion") or "authentication.k8s.io/v1"
            token = review["spec"]["token"]
            if not isinstance(token, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            log.info("cluster=%s rejected: request is not a TokenReview", cluster)
            self._send(400, {"error": "request is not a TokenReview"})
            return
        try:
            user = self.server.verifier.authenticate(cluster, token)
        except (eks_token.Rejected, aws_auth.Unmapped) as e:
            log.info("cluster=%s rejected: %s", cluster, e)
            self._send(200, aws_auth.token_review(api_version, None, "token rejected"))
            return
        except Exception as e:  # one bad request must not kill the verifier
            log.exception("cluster=%s rejected: internal error %s", cluster, e.__class__.__name__)
            self._send(200, aws_auth.token_review(api_version, None, "internal error"))
            return
        log.info("cluster=%s authenticated %s as %s groups=%s", cluster, user["extra"]["arn"][0],
                 user["username"], ",".join(user["groups"]))
        self._send(200, aws_auth.token_review(api_version, user))

    def _send(self, code: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class VerifierServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, cert: str, key: str, verifier: Verifier):
        super().__init__(("127.0.0.1", port), _Handler)
        self.verifier = verifier
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # TLS handshake in the per-connection thread, so a slow client cannot stall accept().
        # Idle keep-alive connections outlive client-go's 90 s IdleConnTimeout: the apiserver closes
        # them first, so it never sends a TokenReview into a connection this side is closing.
        request.settimeout(300)
        with self.tls.wrap_socket(request, server_side=True) as tls_sock:
            super().finish_request(tls_sock, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        log.debug("connection from %s failed", client_address, exc_info=True)
