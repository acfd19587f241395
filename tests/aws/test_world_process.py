"""awsworld.py as a process: moto + EKS registration + the verifier, without kube-apiservers.

The apiserver that holds aws-auth is replaced by a tiny HTTPS stub (this is a unit test; the
end-to-end tests in tests/tests/eks_auth.rs use real apiservers). Checks: the ready file;
DescribeCluster returns the real endpoint and CA in the right account; the seed's chain
(AssumeRoleWithWebIdentity kubed-master -> AssumeRole kubed-follower) sees that account's
clusters, also through the real awscli; the verifier accepts a token for its cluster, rejects it
for another and logs why; SIGTERM exits 0.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_awsworld import AWS_AUTH, encode  # noqa: E402

REGION = "eu-central-1"
CLUSTERS = [("mc-mgmt-k8s", "111111111111"), ("mc-project-k8s", "222222222222")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a 127.0.0.1 serving certificate signed by it: (ca.crt, tls.crt, tls.key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "awsworld-test-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (d / "ca.crt", d / "tls.crt", d / "tls.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class AwsAuthStub(BaseHTTPRequestHandler):
    """GET .../configmaps/aws-auth with the admin token -> the AWS_AUTH ConfigMap."""

    def do_GET(self) -> None:  # noqa: N802
        ok = self.headers.get("Authorization") == "Bearer admin-token" and self.path.endswith("/configmaps/aws-auth")
        body = json.dumps({"kind": "ConfigMap", "data": AWS_AUTH} if ok else {"kind": "Status"}).encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class WorldProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory(prefix="awsworld-test-")
        d = Path(cls.tmp.name)
        ca, crt, key = make_tls(d)
        cls.ca = ca
        cls.stub = ThreadingHTTPServer(("127.0.0.1", 0), AwsAuthStub)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        cls.stub.socket = ctx.wrap_socket(cls.stub.socket, server_side=True)
        threading.Thread(target=cls.stub.serve_forever, daemon=True).start()
        apiserver = f"https://127.0.0.1:{cls.stub.server_address[1]}"
        cls.moto_port, cls.verifier_port = free_port(), free_port()
        cls.world = {
            "region": REGION, "moto_port": cls.moto_port, "verifier_port": cls.verifier_port,
            "tls_cert_file": str(crt), "tls_key_file": str(key),
            "ready_file": str(d / "ready"), "log_file": str(d / "awsworld.log"),
            "clusters": [
                {"name": n, "account": a, "endpoint": f"https://127.0.0.1:{1000 + i}", "ca_file": str(ca),
                 "apiserver_url": apiserver, "admin_token": "admin-token"}
                for i, (n, a) in enumerate(CLUSTERS)
            ],
        }
        (d / "world.json").write_text(json.dumps(cls.world))
        (d / "web-identity-token").write_text("a-web-identity-token")
        (d / "config").write_text("")
        (d / "credentials").write_text(
            f"[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\n"
            f"web_identity_token_file = {d / 'web-identity-token'}\n\n"
            "[mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\n"
            "source_profile = mc-mgmt\nrole_session_name = mc-project\n"
        )
        cls.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(d),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{cls.moto_port}", "AWS_REGION": REGION,
            # botocore (awscli v1) reads only AWS_DEFAULT_REGION; EKS's pod-identity webhook injects both.
            "AWS_DEFAULT_REGION": REGION,
            "AWS_SHARED_CREDENTIALS_FILE": str(d / "credentials"), "AWS_CONFIG_FILE": str(d / "config"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        # in-process boto3 resolves profiles the way the world's users do (restored in tearDownClass)
        cls.env_patch = mock.patch.dict(os.environ, {k: v for k, v in cls.env.items() if k.startswith("AWS_")})
        cls.env_patch.start()
        cls.proc = subprocess.Popen([sys.executable, str(HERE / "awsworld.py"), "--config", str(d / "world.json")])
        deadline = time.monotonic() + 60
        while not Path(cls.world["ready_file"]).exists():
            if cls.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"awsworld did not become ready (exit {cls.proc.poll()})")
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.env_patch.stop()
        cls.stub.shutdown()
        cls.tmp.cleanup()

    def eks(self, profile: str):  # noqa: ANN201
        return boto3.Session(profile_name=profile, region_name=REGION).client("eks")

    def log(self) -> str:
        return Path(self.world["log_file"]).read_text()

    def review(self, cluster: str, token: str, path: str = "/authenticate/{}") -> dict:
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
        req = urllib.request.Request(
            f"https://127.0.0.1:{self.verifier_port}{path.format(cluster)}", data=body.encode(), method="POST"
        )
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=self.ca), timeout=10) as r:
            return json.load(r)

    def test_1_clusters_real_endpoint_and_ca_through_the_seed_chain(self) -> None:
        eks = self.eks("mc-project")
        self.assertEqual(eks.list_clusters()["clusters"], ["mc-project-k8s"])
        got = eks.describe_cluster(name="mc-project-k8s")["cluster"]
        self.assertEqual(got["endpoint"], "https://127.0.0.1:1001")
        self.assertEqual(base64.b64decode(got["certificateAuthority"]["data"]), self.ca.read_bytes())
        self.assertEqual(got["arn"], "arn:aws:eks:eu-central-1:222222222222:cluster/mc-project-k8s")
        mgmt = self.eks("mc-mgmt")
        self.assertEqual(mgmt.list_clusters()["clusters"], ["mc-mgmt-k8s"])

    def test_2_awscli_with_the_world_env(self) -> None:
        aws = [str(Path(sys.executable).parent / "aws"), "--profile", "mc-project", "--output", "json"]
        out = subprocess.run(aws + ["eks", "list-clusters"], env=self.env, capture_output=True, text=True, check=True)
        self.assertEqual(json.loads(out.stdout)["clusters"], ["mc-project-k8s"])
        out = subprocess.run(aws + ["eks", "describe-cluster", "--name", "mc-project-k8s"], env=self.env,
                             capture_output=True, text=True, check=True)
        self.assertEqual(json.loads(out.stdout)["cluster"]["endpoint"], "https://127.0.0.1:1001")
        out = subprocess.run(aws + ["sts", "get-caller-identity"], env=self.env, capture_output=True, text=True,
                             check=True)
        self.assertEqual(json.loads(out.stdout)["Arn"],
                         "arn:aws:sts::222222222222:assumed-role/kubed-follower/mc-project")

    def test_3_verifier_binds_tokens_to_their_cluster(self) -> None:
        creds = boto3.Session(profile_name="mc-project").get_credentials().get_frozen_credentials()
        sts = boto3.client("sts", region_name=REGION, aws_access_key_id=creds.access_key,
                           aws_secret_access_key=creds.secret_key, aws_session_token=creds.token,
                           endpoint_url=f"https://sts.{REGION}.amazonaws.com")
        sts.meta.events.register("before-sign.sts.GetCallerIdentity",
                                 lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", "mc-project-k8s"))
        token = encode(sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET"))
        ok = self.review("mc-project-k8s", token)["status"]
        self.assertTrue(ok["authenticated"], ok)
        self.assertEqual(ok["user"]["username"], "kubed-follower:mc-project")
        self.assertIn("kubed-cross-sync:follower", ok["user"]["groups"])
        self.assertTrue(ok["user"]["uid"].startswith("aws-iam-authenticator:222222222222:AROA"))
        self.assertEqual(ok["user"]["extra"]["accessKeyId"], [creds.access_key])
        bad = self.review("mc-mgmt-k8s", token)["status"]
        self.assertFalse(bad["authenticated"])
        self.assertNotIn("user", bad)
        self.assertIn("cluster=mc-mgmt-k8s rejected: signature does not match", self.log())
        self.assertFalse(self.review("nope-k8s", token)["status"]["authenticated"])
        self.assertIn("unknown cluster 'nope-k8s'", self.log())
        # the contract's query form works too; no cluster at all (what kube-apiserver sends for a
        # ?cluster= server URL, whose query client-go drops) is refused with a hint
        self.assertTrue(self.review("mc-project-k8s", token, "/authenticate?cluster={}")["status"]["authenticated"])
        self.assertFalse(self.review("", token, "/authenticate")["status"]["authenticated"])
        self.assertIn("no cluster in the request", self.log())
        # keys moto never issued, and a session token that is not the key's own
        for akid, secret, session, reason in [
            ("ASIANEVERISSUED00001", "x", "y", "was not issued by STS/IAM"),
            (creds.access_key, creds.secret_key, "not-the-session-token", "security token does not belong"),
        ]:
            forged = boto3.client("sts", region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret,
                                  aws_session_token=session, endpoint_url=f"https://sts.{REGION}.amazonaws.com")
            forged.meta.events.register(
                "before-sign.sts.GetCallerIdentity",
                lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", "mc-project-k8s"),
            )
            url = forged.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
            self.assertFalse(self.review("mc-project-k8s", encode(url))["status"]["authenticated"])
            self.assertIn(reason, self.log())
        for secret in (token, creds.secret_key, creds.token):
            self.assertNotIn(secret, self.log())

    def test_4_sigterm_stops_cleanly(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=20), 0)
        self.assertFalse(Path(self.world["ready_file"]).exists())


if __name__ == "__main__":
    unittest.main()
