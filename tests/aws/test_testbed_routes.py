"""awsworld's test-only route: ``POST /testbed/eks-clusters`` registers an EKS cluster with a real endpoint
and CA in a running moto (what tests/tests/kubeconfig_gen/follower.rs uses to make a cluster appear).

Checks: DescribeCluster in the account and region named returns the endpoint and the CA file's PEM
(base64); a taken name is 409, a malformed body 400; moto's own DeleteCluster removes it and the name can
be registered again; every other path still reaches moto.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import awsworld  # noqa: E402

ACCOUNT, REGION, NAME = "765432109876", "eu-central-1", "late-k8s"
ENDPOINT = "https://127.0.0.1:6443"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestbedRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        cls.moto = awsworld.Moto(free_port())
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ca_file = Path(cls.tmp.name) / "ca.crt"
        cls.ca_file.write_bytes(PEM)

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()
        cls.tmp.cleanup()

    def post(self, body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.moto.url + awsworld.TESTBED_EKS_PATH, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def register(self) -> tuple[int, dict]:
        c = {"name": NAME, "account": ACCOUNT, "region": REGION, "endpoint": ENDPOINT, "ca_file": str(self.ca_file)}
        return self.post(json.dumps(c).encode())

    def eks(self):
        return awsworld.account_session(self.moto.url, REGION, ACCOUNT).client("eks", endpoint_url=self.moto.url)

    def test_register_describe_delete_register_again(self):
        code, got = self.register()
        self.assertEqual(code, 200, got)
        self.assertEqual(got["arn"], f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{NAME}")
        described = self.eks().describe_cluster(name=NAME)["cluster"]
        self.assertEqual(described["endpoint"], ENDPOINT)
        self.assertEqual(base64.b64decode(described["certificateAuthority"]["data"]), PEM)

        code, got = self.register()
        self.assertEqual(code, 409, got)
        self.assertIn("ResourceInUseException", got["error"])

        self.eks().delete_cluster(name=NAME)
        self.assertNotIn(NAME, self.eks().list_clusters()["clusters"])
        code, got = self.register()
        self.assertEqual(code, 200, got)
        self.eks().delete_cluster(name=NAME)

    def test_a_malformed_body_is_400(self):
        for body in (b"not json", b"{}", json.dumps({"name": NAME, "region": REGION}).encode()):
            code, got = self.post(body)
            self.assertEqual(code, 400, (body, got))

    def test_other_paths_reach_moto(self):
        with urllib.request.urlopen(self.moto.url + "/moto-api/", timeout=30) as resp:
            self.assertEqual(resp.status, 200)


if __name__ == "__main__":
    unittest.main()
