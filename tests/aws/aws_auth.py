"""aws-auth ConfigMap mapping, as aws-iam-authenticator's ConfigMap mapper and server do it.

Pure functions: canonicalise the caller ARN that STS returns, find it in ``mapRoles`` /
``mapUsers``, render the username and group templates, and build the TokenReview answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


class Unmapped(Exception):
    """The identity is not in aws-auth (or aws-auth is unusable); ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class Identity:
    """What GetCallerIdentity told us about the caller, plus the token's access key id."""

    arn: str
    account: str
    user_id: str  # STS UserId, "AROA...:session" for an assumed role
    access_key_id: str

    @property
    def canonical_arn(self) -> str:
        return canonicalize_arn(self.arn)

    @property
    def principal_id(self) -> str:
        return self.user_id.split(":", 1)[0] if ":" in self.user_id else self.user_id

    @property
    def session_name(self) -> str:
        return self.user_id.split(":", 1)[1] if ":" in self.user_id else ""


_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):(sts|iam)::(\d{12}):(.+)$")


def canonicalize_arn(arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/S`` -> ``arn:aws:iam::A:role/R``; IAM user/role ARNs unchanged.

    The role path is not in an assumed-role ARN, so mapRoles entries must not carry one
    (aws-iam-authenticator#268).
    """
    m = _ARN.match(arn)
    if not m:
        raise Unmapped(f"caller ARN {arn!r} is not an IAM/STS principal ARN")
    partition, service, account, resource = m.groups()
    parts = resource.split("/")
    if service == "sts" and parts[0] == "assumed-role":
        if len(parts) < 3:
            raise Unmapped(f"assumed-role ARN {arn!r} does not have a role")
        return f"arn:{partition}:iam::{account}:role/{'/'.join(parts[1:-1])}"
    if service == "iam" and parts[0] in ("role", "user", "root"):
        return arn
    if service == "sts" and parts[0] == "federated-user":
        return arn
    raise Unmapped(f"unrecognised principal in ARN {arn!r}")


@dataclass(frozen=True)
class Mapping:
    arn: str
    username: str
    groups: tuple[str, ...]


def parse_aws_auth(data: dict[str, str] | None) -> list[Mapping]:
    """``data`` of kube-system/aws-auth -> mappings (roles first, then users). Keys are matched
    case-insensitively, as the authenticator does for mapRoles/mapUsers and their entries."""
    out: list[Mapping] = []
    data = {k.lower(): v for k, v in (data or {}).items()}
    for section, arn_key in (("maproles", "rolearn"), ("mapusers", "userarn")):
        raw = data.get(section)
        if not raw:
            continue
        try:
            entries = yaml.safe_load(raw) or []
        except yaml.YAMLError as e:
            raise Unmapped(f"aws-auth {section} is not valid YAML: {e.__class__.__name__}") from None
        if not isinstance(entries, list):
            raise Unmapped(f"aws-auth {section} is not a YAML list")
        for entry in entries:
            if not isinstance(entry, dict):
                raise Unmapped(f"aws-auth {section} has an entry that is not a mapping")
            entry = {str(k).lower(): v for k, v in entry.items()}
            arn = entry.get(arn_key)
            if not isinstance(arn, str) or not arn:
                raise Unmapped(f"aws-auth {section} has an entry without {arn_key}")
            groups = entry.get("groups") or []
            if not isinstance(groups, list):
                raise Unmapped(f"aws-auth {section} entry {arn!r}: groups is not a list")
            out.append(Mapping(arn, str(entry.get("username") or ""), tuple(str(g) for g in groups)))
    return out


def render(template: str, ident: Identity) -> str:
    """The templates the authenticator expands (EC2PrivateDNSName needs EC2, not emulated)."""
    if "{{EC2PrivateDNSName}}" in template:
        raise Unmapped("template {{EC2PrivateDNSName}} is not supported by the test verifier")
    return (
        template.replace("{{AccountID}}", ident.account)
        .replace("{{SessionName}}", ident.session_name.replace("@", "-"))
        .replace("{{SessionNameRaw}}", ident.session_name)
        .replace("{{AccessKeyID}}", ident.access_key_id)
    )


def map_identity(mappings: list[Mapping], ident: Identity) -> tuple[str, list[str]]:
    """(username, groups) for the identity, matched on the lower-cased canonical ARN."""
    canonical = ident.canonical_arn.lower()
    for m in mappings:
        if m.arn.lower() == canonical:
            username = render(m.username, ident)
            if not username:
                raise Unmapped(f"{ident.canonical_arn} is mapped to an empty username")
            return username, [render(g, ident) for g in m.groups]
    raise Unmapped(f"ARN is not mapped: {ident.canonical_arn}")


def user_info(ident: Identity, username: str, groups: list[str]) -> dict:
    """The TokenReview status.user the authenticator returns."""
    return {
        "username": username,
        "uid": f"aws-iam-authenticator:{ident.account}:{ident.principal_id}",
        "groups": groups,
        "extra": {
            "arn": [ident.arn],
            "canonicalArn": [ident.canonical_arn],
            "sessionName": [ident.session_name],
            "accessKeyId": [ident.access_key_id],
            "principalId": [ident.principal_id],
        },
    }


def token_review(api_version: str, user: dict | None, error: str | None = None) -> dict:
    status: dict = {"authenticated": user is not None}
    if user is not None:
        status["user"] = user
    if error:
        status["error"] = error
    return {"apiVersion": api_version, "kind": "TokenReview", "status": status}
