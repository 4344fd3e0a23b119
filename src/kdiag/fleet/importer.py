"""``kdiag instances import -i INVENTORY``: inventory hosts become kdiag instances.

Backend and target come from host variables the operator already has or adds once:

- ``kdiag_backend`` and ``kdiag_target`` (a mapping, a JSON object or a bare address), with
  optional ``kdiag_instance_id``, ``kdiag_region``, ``kdiag_arch`` and ``kdiag_tags``;
- or what the ``amazon.aws.aws_ec2`` inventory plugin provides, ``instance_id`` and
  ``placement.region`` (and ``placement.availability_zone``, ``architecture``): the
  ``aws`` backend, the EC2 instance id kept as the kdiag instance id.

Every instance is tagged ``Name`` = the inventory host name, which makes a second import
of the same inventory skip the hosts already there.  Targets hold no secrets (the store
refuses them): a host whose target has one is reported, never stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kdiag.errors import ConfigError, KdiagError
from kdiag.fleet.ansible import list_hosts
from kdiag.store import Store

__all__ = ("ImportOutcome", "import_inventory", "instance_spec")

_EC2_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
NAME_TAG = "Name"


@dataclass(frozen=True)
class ImportOutcome:
    """One host: ``added`` (with the instance id), ``exists``, or ``skipped`` (why)."""

    host: str
    status: str
    instance_id: str | None = None
    backend: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "instance_id": self.instance_id,
            "backend": self.backend,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class _Spec:
    backend: str
    target: dict[str, Any]
    instance_id: str | None
    region: str
    availability_zone: str | None
    arch: str
    tags: dict[str, str]


def _target(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"kdiag_target is not valid JSON: {exc}") from exc
        if isinstance(parsed, dict):
            return parsed
    if isinstance(value, str) and value:
        return {"address": value}
    raise ConfigError("kdiag_target must be a mapping, a JSON object or an address")


def instance_spec(host: str, hv: Mapping[str, Any]) -> _Spec | None:
    """What to register for ``host`` from its variables; None: nothing says how to reach it.

    :raises ConfigError: variables that are there but malformed.
    """
    placement = hv.get("placement") if isinstance(hv.get("placement"), Mapping) else {}
    assert isinstance(placement, Mapping)
    arch = _ARCHES.get(str(hv.get("kdiag_arch") or hv.get("architecture") or "x86_64"))
    if arch is None:
        raise ConfigError(
            f"unknown architecture {hv.get('kdiag_arch') or hv.get('architecture')!r}"
        )
    tags = {NAME_TAG: host[:255]}
    extra = hv.get("kdiag_tags")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise ConfigError("kdiag_tags must be a mapping")
        tags.update({str(k): str(v) for k, v in extra.items()})
    if hv.get("kdiag_backend"):
        if "kdiag_target" not in hv:
            raise ConfigError("kdiag_backend is set but kdiag_target is not")
        region = str(hv.get("kdiag_region") or placement.get("region") or "us-east-1")
        iid = hv.get("kdiag_instance_id")
        return _Spec(
            backend=str(hv["kdiag_backend"]),
            target=_target(hv["kdiag_target"]),
            instance_id=str(iid) if iid else None,
            region=region,
            availability_zone=None,
            arch=arch,
            tags=tags,
        )
    ec2_id, ec2_region = hv.get("instance_id"), placement.get("region")
    if isinstance(ec2_id, str) and isinstance(ec2_region, str):
        if not _EC2_ID.fullmatch(ec2_id):
            raise ConfigError(f"instance_id {ec2_id[:40]!r} is not an EC2 instance id")
        zone = placement.get("availability_zone")
        return _Spec(
            backend="aws",
            target={"region": ec2_region, "instance_id": ec2_id},
            instance_id=ec2_id,
            region=ec2_region,
            availability_zone=zone if isinstance(zone, str) else None,
            arch=arch,
            tags=tags,
        )
    return None


def import_inventory(
    store: Store,
    inventory: str,
    *,
    limit: str | None = None,
    dry_run: bool = False,
    account_id: str | None = None,
    hostvars: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ImportOutcome]:
    """Register every host of ``inventory`` (matching ``limit``) that says how to reach it.

    ``hostvars`` replaces reading the inventory (tests, callers that have it).  A host's
    error (a malformed variable, a target the backend or the store refuses) is its outcome;
    the others are still imported.
    """
    hosts = hostvars if hostvars is not None else list_hosts(inventory, limit)
    account = store._account_id(account_id)
    existing = {
        (i.tags.get(NAME_TAG), i.backend): i.id
        for i in store.list_instances(account_id=account)
        if i.tags.get(NAME_TAG)
    }
    out: list[ImportOutcome] = []
    for host, hv in hosts.items():
        try:
            spec = instance_spec(host, hv)
        except ConfigError as exc:
            out.append(ImportOutcome(host, "skipped", reason=str(exc)))
            continue
        if spec is None:
            why = "no kdiag_backend/kdiag_target and no EC2 instance_id with placement.region"
            out.append(ImportOutcome(host, "skipped", reason=why))
            continue
        known = existing.get((spec.tags[NAME_TAG], spec.backend))
        if known is None and spec.instance_id and store.get_instance(spec.instance_id):
            known = spec.instance_id
        if known is not None:
            out.append(ImportOutcome(host, "exists", known, spec.backend))
            continue
        if dry_run:
            out.append(ImportOutcome(host, "would-add", spec.instance_id, spec.backend))
            continue
        try:
            inst = store.add_instance(
                backend=spec.backend,
                target=spec.target,
                instance_id=spec.instance_id,
                region=spec.region,
                availability_zone=spec.availability_zone,
                arch=spec.arch,
                tags=spec.tags,
                account_id=account,
            )
        except KdiagError as exc:
            out.append(ImportOutcome(host, "skipped", backend=spec.backend, reason=str(exc)))
            continue
        existing[(spec.tags[NAME_TAG], spec.backend)] = inst.id
        out.append(ImportOutcome(host, "added", inst.id, spec.backend))
    return out
