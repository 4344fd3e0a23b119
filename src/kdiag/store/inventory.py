"""The instance inventory: what kdiag may interrupt, and how to reach it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select

from kdiag.backends.base import InstanceState, check_target
from kdiag.backends.credentials import refuse_secrets
from kdiag.errors import ConfigError, NoSuchEntity
from kdiag.filters import Filter, match_filters
from kdiag.store import ids
from kdiag.store._base import StoreBase, _now
from kdiag.store.credentials import refuse_unknown_name
from kdiag.store.models import InstanceRow
from kdiag.store.records import Instance

__all__ = ("INSTANCE_STATES", "Inventory", "normalize_arch")

#: The EC2 instance states (:class:`InstanceState` without ``paused``); only ``running``
#: can take a diagnostic interrupt.
INSTANCE_STATES = tuple(s.value for s in InstanceState if s.code is not None)

_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_TAG_KEY_MAX = 128
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "i686": "i386"}
_TABLE = InstanceRow.metadata.tables["instances"]
_GET = select(_TABLE).where(_TABLE.c.id == bindparam("id"))  # built once: on every request


def normalize_arch(arch: str) -> str:
    arch = arch.strip().lower()
    return _ARCH_ALIASES.get(arch, arch)


class Inventory(StoreBase):
    """Instances: id, account, region and zone, backend and target, arch, state, tags."""

    # --- instances -------------------------------------------------------------------------

    @staticmethod
    def _instance(row: Any) -> Instance:  # an InstanceRow or a Core row of its table
        return Instance(
            id=row.id,
            account_id=row.account_id,
            region=row.region,
            availability_zone=row.availability_zone,
            backend=row.backend,
            target=row.target,
            arch=row.arch,
            state=row.state,
            tags=row.tags,
            created_at=row.created_at,
        )

    def add_instance(
        self,
        *,
        backend: str,
        target: Mapping[str, Any],
        instance_id: str | None = None,
        region: str = "us-east-1",
        availability_zone: str | None = None,
        arch: str = "x86_64",
        state: str = "running",
        tags: Mapping[str, str] | None = None,
        account_id: str | None = None,
    ) -> Instance:
        """Register a machine kdiag can interrupt.

        :param backend: the backend's registry name (``qmp``, ``fake``, ...).
        :param target: the backend's settings, JSON-serialisable; validated by the backend's
            own parser (:func:`kdiag.backends.check_target`).
        :raises InvalidInstanceIDMalformed: ``instance_id`` is not ``i-`` + 8/17 hex.
        :raises EntityAlreadyExists: the id is taken.
        :raises ConfigError: an unknown backend, a bad target setting, region, zone, state
            or tag key, two tag keys that differ only in case, or a secret anywhere in
            ``target`` (a password, token, API or private key, URL userinfo): targets
            name a ``credentials`` reference instead (:mod:`kdiag.backends.credentials`).
        """
        iid = ids.check_instance_id(instance_id) if instance_id else ids.new_instance_id()
        if not _REGION.fullmatch(region):
            raise ConfigError(f"invalid region {region!r} (expected e.g. us-east-1)")
        az = availability_zone or f"{region}a"
        if not az.startswith(region):
            raise ConfigError(f"availability zone {az!r} is not in region {region!r}")
        state = InstanceState.parse(state, ec2_only=True).value
        clean_tags = dict(tags or {})
        folded: dict[str, str] = {}
        for key in clean_tags:
            if not key or len(key) > _TAG_KEY_MAX or key.startswith("aws:"):
                raise ConfigError(f"invalid tag key {key!r}")
            # IAM compares condition keys without case: aws:ResourceTag/Env and .../env are
            # one key, so two such tags would make a policy's answer depend on their order.
            if (other := folded.setdefault(key.casefold(), key)) != key:
                raise ConfigError(f"tag keys {other!r} and {key!r} differ only in case")
        try:
            target_json = json.loads(json.dumps(dict(target)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend target settings must be JSON: {exc}") from exc
        refuse_secrets(target_json, backend)  # whatever the backend's own parser does
        check_target(backend, target_json)
        acct = self._account_id(account_id)
        with self._read() as session:
            refuse_unknown_name(session, acct, target_json)  # "name:NAME" must exist
        row = InstanceRow(
            id=iid,
            account_id=acct,
            region=region,
            availability_zone=az,
            backend=backend,
            target=target_json,
            arch=normalize_arch(arch),
            state=state,
            tags=clean_tags,
            created_at=_now(),
        )
        self._insert(row, f"instance {iid}")
        return self._instance(row)

    def get_instance(self, instance_id: str) -> Instance | None:
        with self._engine.connect() as conn:
            row = conn.execute(_GET, {"id": instance_id}).first()
        return None if row is None else self._instance(row)

    def list_instances(
        self,
        ids: Iterable[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        *,
        account_id: str | None = None,
        region: str | None = None,
    ) -> list[Instance]:
        """Instances, optionally by id and by EC2-style filters.

        Filters (values may use ``*`` and ``?``; a filter matches when any value does) are
        :mod:`kdiag.filters`' (``instance-id``, ``instance-state-name``, ``tag:<key>``, ...,
        ``backend``, ``region``); an unknown name raises ``InvalidParameterValue``.
        """
        with self._read() as session:
            query = select(InstanceRow).order_by(InstanceRow.id)
            if ids is not None:
                query = query.where(InstanceRow.id.in_(list(ids)))
            if account_id is not None:
                query = query.where(InstanceRow.account_id == account_id)
            if region is not None:
                query = query.where(InstanceRow.region == region)
            found = [self._instance(r) for r in session.scalars(query)]
        wanted = [Filter(name, tuple(values)) for name, values in (filters or {}).items()]
        return [i for i in found if match_filters(i, wanted)]

    def set_instance_state(self, instance_id: str, state: str) -> Instance:
        if state not in INSTANCE_STATES:
            raise ConfigError(f"invalid state {state!r}: one of {', '.join(INSTANCE_STATES)}")
        with self._write() as session:
            row = session.get(InstanceRow, instance_id)
            if row is None:
                raise NoSuchEntity(f"no instance {instance_id}")
            row.state = state
            return self._instance(row)

    def remove_instance(self, instance_id: str) -> None:
        with self._write() as session:
            result = session.execute(delete(InstanceRow).where(InstanceRow.id == instance_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise NoSuchEntity(f"no instance {instance_id}")
