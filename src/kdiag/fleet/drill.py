"""``kdiag fleet drill``: fire drills rolled across an inventory, canary first, then batches.

Each inventory host must be a kdiag instance already (``kdiag instances import``): its id
comes from the host variable ``kdiag_instance_id``, or the ``aws_ec2`` plugin's
``instance_id``, or the instance tagged ``Name`` = the host.  The canary hosts are drilled
first (together), then the others ``batch`` at a time, in the inventory's order (Ansible's
play order, not ``ansible-inventory``'s sorted list): never more than ``batch`` machines
are down at once.  The roll stops after the first batch with a failure, and that failure's
diagnosis is the answer; the hosts not reached are listed as not drilled.  Every drill is
recorded (``kdiag drill history``) and the roll itself is a fleet run in the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag.drill import DrillLimits, DrillReport, run_drill
from kdiag.errors import ConfigError, KdiagError
from kdiag.fleet.ansible import list_hosts, play_order
from kdiag.fleet.importer import NAME_TAG
from kdiag.store import Store
from kdiag.store.fleet import FleetHost, FleetRun, record_fleet_run

__all__ = ("DrillOutcome", "RollReport", "fleet_drill", "resolve_instances")


@dataclass(frozen=True)
class DrillOutcome:
    """One host: ``pass``, ``fail`` (with the diagnosis), ``error`` or ``not-drilled``."""

    host: str
    instance_id: str | None
    status: str
    phase: str  # canary | batch N | -
    code: str | None = None
    summary: str | None = None
    fix: str | None = None
    drill_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "instance_id": self.instance_id,
            "status": self.status,
            "phase": self.phase,
            "diagnosis": self.code,
            "summary": self.summary,
            "fix": self.fix,
            "drill_id": self.drill_id,
        }


@dataclass(frozen=True)
class RollReport:
    """The roll: every host's outcome in drill order, and where it stopped."""

    hosts: tuple[DrillOutcome, ...]
    stopped_at: DrillOutcome | None
    run_id: int | None = None

    @property
    def failed(self) -> bool:
        return self.stopped_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "passed": not self.failed,
            "stopped_at": self.stopped_at.to_json() if self.stopped_at else None,
            "hosts": [h.to_json() for h in self.hosts],
        }


def resolve_instances(
    store: Store, hostvars: Mapping[str, Mapping[str, Any]], *, account_id: str | None = None
) -> dict[str, str]:
    """Host -> instance id, for every host.

    :raises ConfigError: hosts that are not instances (naming them and the fix).
    """
    account = store._account_id(account_id)
    by_name = {i.tags.get(NAME_TAG): i.id for i in store.list_instances(account_id=account)}
    out: dict[str, str] = {}
    missing: list[str] = []
    for host, hv in hostvars.items():
        iid = hv.get("kdiag_instance_id") or hv.get("instance_id") or by_name.get(host)
        instance = store.get_instance(str(iid)) if iid else None
        if instance is None or instance.account_id != account:
            missing.append(host)
        else:
            out[host] = instance.id
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(
            f"{len(missing)} hosts are not kdiag instances ({shown}): "
            "run kdiag instances import -i INVENTORY first"
        )
    return out


def _phases(hosts: Sequence[str], canary: int, batch: int) -> list[tuple[str, list[str]]]:
    phases = [("canary", list(hosts[:canary]))] if canary else []
    rest = list(hosts[canary:])
    for n, start in enumerate(range(0, len(rest), batch), start=1):
        phases.append((f"batch {n}", rest[start : start + batch]))
    return [(name, group) for name, group in phases if group]


Progress = Callable[[DrillOutcome], None]


def fleet_drill(
    store: Store,
    inventory: str,
    *,
    endpoint: str,
    limit: str | None = None,
    canary: int = 1,
    batch: int = 1,
    timeout: float = 600.0,
    limits: DrillLimits | None = None,
    progress: Progress | None = None,
    hostvars: Mapping[str, Mapping[str, Any]] | None = None,
    account_id: str | None = None,
) -> RollReport:
    """Drill every host of ``inventory`` in the inventory's play order (``hostvars``, when
    given, in its own order): ``canary`` first, then ``batch`` at a time,
    stopping after the first batch with a failure.  A host variable ``kdiag_dump_dir`` names
    the directory where that host's dumps appear on this machine (as ``drill --dump-dir``).

    :raises ConfigError: a bad canary/batch, or hosts that are not instances.
    """
    if isinstance(canary, bool) or not 0 <= canary <= 1000:
        raise ConfigError(f"--canary must be 0 to 1000, not {canary!r}")
    if isinstance(batch, bool) or not 1 <= batch <= 1000:
        raise ConfigError(f"--batch must be 1 to 1000, not {batch!r}")
    if hostvars is None:
        hostvars = play_order(inventory, list_hosts(inventory, limit), limit)
    hv = hostvars
    if not hv:
        raise ConfigError(f"-i {inventory}: the inventory has no hosts")
    ids = resolve_instances(store, hv, account_id=account_id)
    started = dt.datetime.now(dt.UTC)
    done: list[DrillOutcome] = []
    stopped: DrillOutcome | None = None

    def one(host: str, phase: str) -> DrillOutcome:
        dump_dir = hv[host].get("kdiag_dump_dir")
        try:
            report: DrillReport = run_drill(
                store,
                ids[host],
                endpoint=endpoint,
                timeout=timeout,
                dump_dir=Path(str(dump_dir)) if dump_dir else None,
                limits=limits,
                account_id=account_id,
            )
        except KdiagError as exc:
            return DrillOutcome(host, ids[host], "error", phase, type(exc).__name__, str(exc))
        d = report.diagnosis
        status = "pass" if report.passed else "fail"
        return DrillOutcome(
            host, ids[host], status, phase, d.code, d.summary, d.fix, report.drill_id
        )

    phases = _phases(list(hv), canary, batch)
    for phase, group in phases:
        if stopped is not None:
            done += [DrillOutcome(h, ids[h], "not-drilled", "-") for h in group]
            continue
        with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="kdiag-drill") as pool:
            results = list(pool.map(lambda h, p=phase: one(h, p), group))
        for outcome in results:
            if progress is not None:
                progress(outcome)
        done += results
        stopped = next((o for o in results if o.status != "pass"), None)
    run, _ = record_fleet_run(
        store,
        FleetRun(
            account_id=store._account_id(account_id),
            kind="drill",
            inventory=inventory,
            limit_pattern=limit,
            purpose="nmi",
            started_at=started,
            finished_at=dt.datetime.now(dt.UTC),
            hosts=len(done),
            failed=sum(o.status in ("fail", "error") for o in done),
        ),
        [
            FleetHost(
                host=o.host,
                status={"pass": "pass", "fail": "fail"}.get(o.status, "error"),
                answered_at=dt.datetime.now(dt.UTC),
                failing=(o.code,) if o.code and o.status != "pass" else (),
                message=o.summary if o.status != "not-drilled" else "not drilled (roll stopped)",
            )
            for o in done
        ],
    )
    return RollReport(tuple(done), stopped, run.id)
