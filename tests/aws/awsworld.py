"""The AWS side of the testbed: moto (STS, IAM, EKS) and the EKS token verifier, in one process.

Usage: ``$KCS_VENV/bin/python tests/aws/awsworld.py --config DIR/aws/world.json``

world.json (written by the Rust testbed, see notes/TESTBED-API.md)::

    {"region": "eu-central-1", "moto_port": 41001, "verifier_port": 41002,
     "tls_cert_file": ..., "tls_key_file": ..., "ready_file": ..., "log_file": ...,
     "clusters": [{"name", "account", "endpoint", "ca_file", "apiserver_url", "admin_token"}, ...]}

Steps: start moto on 127.0.0.1:moto_port; register every cluster as an EKS cluster in its own
account and overwrite moto's fake endpoint and CA with the real ones (DescribeCluster is checked
to return them); serve the verifier (verifier.py) over HTTPS on 127.0.0.1:verifier_port; write
ready_file. SIGTERM or SIGINT stops both servers, removes ready_file and exits 0.
Test-only: ``POST /testbed/eks-clusters`` on moto's port registers one more cluster the same way while the
world runs (``with_testbed_routes``): a cluster that appears during a test.

Exit codes: 0 stopped by signal; 2 bad config; 3 startup failed (port taken, EKS setup wrong).
Logs (one line per event, never a token or a key) go to log_file.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

# Sibling modules (eks_token, aws_auth, verifier) live next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from verifier import ClusterConf, Verifier, VerifierServer  # noqa: E402

log = logging.getLogger("awsworld")
EXIT_CONFIG = 2
EXIT_STARTUP = 3


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class World:
    region: str
    moto_port: int
    verifier_port: int
    tls_cert_file: str
    tls_key_file: str
    ready_file: str
    log_file: str
    clusters: list[dict]


def token_max_age_file(world: World) -> str:
    """The verifier's test-only knob: a file beside ready_file holding the seconds a token is
    honoured (absent: STS's 15 minutes). See verifier.Verifier.token_lifetime."""
    return os.path.join(os.path.dirname(world.ready_file), "token-max-age")


def load_world(path: str) -> World:
    try:
        raw = json.loads(Path(path).read_text())
        world = World(
            region=str(raw["region"]),
            moto_port=int(raw["moto_port"]),
            verifier_port=int(raw["verifier_port"]),
            tls_cert_file=str(raw["tls_cert_file"]),
            tls_key_file=str(raw["tls_key_file"]),
            ready_file=str(raw["ready_file"]),
            log_file=str(raw["log_file"]),
            clusters=list(raw["clusters"]),
        )
        for c in world.clusters:
            for k in ("name", "account", "endpoint", "ca_file", "apiserver_url", "admin_token"):
                if not isinstance(c.get(k), str) or not c[k]:
                    raise ConfigError(f"{path}: cluster entry {c.get('name', '?')!r} lacks {k!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: {e.__class__.__name__}: {e}") from None
    if not world.clusters:
        raise ConfigError(f"{path}: no clusters")
    return world


class Moto:
    """moto's server app on a werkzeug server in a thread (ThreadedMotoServer's recipe, but a taken
    port raises here instead of leaving ThreadedMotoServer.start() waiting forever)."""

    def __init__(self, port: int):
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        app = DomainDispatcherApplication(create_backend_app)
        self.url = f"http://127.0.0.1:{port}"
        app = with_testbed_routes(app, self.url)
        self.server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


def account_session(moto_url: str, region: str, account: str) -> boto3.Session:
    """Credentials that land in ``account``: moto puts AssumeRole keys in the role's account."""
    sts = boto3.client(
        "sts", region_name=region, endpoint_url=moto_url, aws_access_key_id="awsworld", aws_secret_access_key="x"
    )
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/awsworld-setup", RoleSessionName="awsworld")[
        "Credentials"
    ]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def register_clusters(world: World, moto_url: str) -> None:
    """One EKS cluster per testbed cluster, in its account, with the real endpoint and CA."""
    for c in world.clusters:
        register_cluster(moto_url, world.region, c)


def register_cluster(moto_url: str, region: str, c: dict) -> dict:
    """CreateCluster ``c["name"]`` in account ``c["account"]`` and ``region``, then give it the real endpoint
    and CA (``c["endpoint"]``, the PEM file ``c["ca_file"]``); returns what DescribeCluster says."""
    from moto.eks.models import eks_backends

    ca_pem = Path(c["ca_file"]).read_bytes()
    ca_data = base64.b64encode(ca_pem).decode()
    eks = account_session(moto_url, region, c["account"]).client("eks", endpoint_url=moto_url)
    eks.create_cluster(
        name=c["name"],
        roleArn=f"arn:aws:iam::{c['account']}:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
    # moto invents endpoint and CA; the clients under test need the real ones.
    state = eks_backends[c["account"]][region].clusters[c["name"]]
    state.endpoint = c["endpoint"]
    state.certificate_authority = {"data": ca_data}
    got = eks.describe_cluster(name=c["name"])["cluster"]
    if got["endpoint"] != c["endpoint"] or got["certificateAuthority"]["data"] != ca_data:
        raise RuntimeError(f"DescribeCluster({c['name']}) does not return the real endpoint and CA")
    log.info("EKS cluster %s registered in %s: %s (status %s)", c["name"], c["account"], got["arn"], got["status"])
    return got


TESTBED_EKS_PATH = "/testbed/eks-clusters"


def with_testbed_routes(moto_app, moto_url: str):
    """moto's WSGI app plus one test-only route, because moto has no call that sets a cluster's endpoint or
    CA: ``POST /testbed/eks-clusters`` with ``{"name", "account", "region", "endpoint", "ca_file"}`` registers
    that EKS cluster as start-up does (``register_cluster``), so a test can make a cluster with a real
    apiserver appear in the running world; moto's own DeleteCluster takes it away. Answers 200 with
    DescribeCluster's cluster, 400 for a malformed body, 409 when moto refuses (the name is taken)."""

    def app(environ, start_response):
        if environ.get("PATH_INFO") != TESTBED_EKS_PATH:
            return moto_app(environ, start_response)
        status = "200 OK"
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise ValueError("POST only")
            c = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            region = str(c["region"])
            body = json.dumps(register_cluster(moto_url, region, c), default=str)
        except (ValueError, KeyError, TypeError, OSError) as e:
            status, body = "400 Bad Request", json.dumps({"error": f"{e.__class__.__name__}: {e}"})
        except Exception as e:  # botocore's ClientError: moto refused the CreateCluster
            status, body = "409 Conflict", json.dumps({"error": f"{e.__class__.__name__}: {e}"})
        data = body.encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


def write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path of world.json")
    args = parser.parse_args(argv)
    try:
        world = load_world(args.config)
    except ConfigError as e:
        print(f"awsworld: bad config: {e}", file=sys.stderr)
        return EXIT_CONFIG

    logging.basicConfig(
        filename=world.log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    moto = None
    try:
        moto = Moto(world.moto_port)
        log.info("moto listening on %s", moto.url)
        register_clusters(world, moto.url)
        clusters = [
            ClusterConf(c["name"], c["account"], c["apiserver_url"], c["admin_token"], c["ca_file"])
            for c in world.clusters
        ]
        server = VerifierServer(world.verifier_port, world.tls_cert_file, world.tls_key_file, Verifier(clusters, moto.url, token_max_age_file(world)))
        threading.Thread(target=server.serve_forever, name="verifier", daemon=True).start()
        log.info("verifier listening on https://127.0.0.1:%d/authenticate", world.verifier_port)
    except Exception as e:
        log.exception("startup failed")
        print(f"awsworld: startup failed: {e.__class__.__name__}: {e}", file=sys.stderr)
        if moto is not None:
            moto.stop()
        return EXIT_STARTUP

    ready = {"pid": os.getpid(), "moto": moto.url, "verifier": f"https://127.0.0.1:{world.verifier_port}"}
    write_atomically(world.ready_file, json.dumps(ready) + "\n")
    log.info("ready")
    while not stop.wait(3600):
        pass
    log.info("stopping")
    server.shutdown()
    moto.stop()
    Path(world.ready_file).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
