"""Every crash trigger of the command channel, on real guests: each one panics the kernel the
way it names, kdump saves a vmcore, and the log in it shows the cause.

Three guests (lzo capture for speed) work through three triggers each, in
parallel; the tests then check what each trigger produced.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

TIMEOUT = 400.0
CHAINS = (
    ("sysrq-c", "null", "bug"),
    ("gpf", "warn", "oom"),
    ("softlockup", "rcu", "hung-task"),
)
#: vCPUs per chain: an RCU stall is only detected with a second CPU (on one CPU the spinning
#: task also keeps the grace-period kthread from starting a grace period)
CPUS = (1, 1, 2)
#: what the kernel log in the dump must contain for each trigger
EXPECT = {
    "sysrq-c": ("Kernel panic - not syncing: sysrq triggered crash",),
    "null": ("BUG: kernel NULL pointer dereference", "crashme_null"),
    "bug": ("kernel BUG at", "crashme"),
    "gpf": ("general protection fault", "crashme_gpf"),
    "warn": ("crashme: warning requested", "panic_on_warn set"),
    "oom": ("Kernel panic - not syncing: Out of memory", "panic_on_oom"),
    "softlockup": ("watchdog: BUG: soft lockup", "Kernel panic - not syncing: softlockup"),
    "rcu": ("rcu: INFO: rcu_preempt", "stall", "Kernel panic - not syncing: RCU Stall"),
    "hung-task": ("blocked for more than", "Kernel panic - not syncing: hung_task"),
}


def _run_chain(guest: Any, kinds: tuple[str, ...], results: dict[str, Any]) -> None:
    for kind in kinds:
        try:
            guest.wait_ready(TIMEOUT)
            guest.trigger(kind)
            results[kind] = guest.wait_dump(TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - reported by the test of that trigger
            results[kind] = exc
            return


@pytest.fixture(scope="module")
def trigger_dumps(module_lab_root: Path) -> dict[str, Any]:
    from kdiag.lab import Lab

    lab = Lab(module_lab_root)
    assert lab.build().crashme is not None, "crashme.ko was not built (linux-headers missing?)"
    guests = [
        lab.up(name=f"e2e-trig{i}", profile="dump-l31", memory="512M", cpus=CPUS[i])
        for i in range(len(CHAINS))
    ]
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=_run_chain, args=(g, chain, results))
        for g, chain in zip(guests, CHAINS, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("kind", [k for chain in CHAINS for k in chain])
def test_trigger_produces_a_vmcore_showing_its_cause(
    trigger_dumps: dict[str, Any], kind: str
) -> None:
    result = trigger_dumps.get(kind)
    if isinstance(result, Exception):
        raise result
    assert isinstance(result, Path), f"{kind} never ran (an earlier trigger of its chain failed)"
    assert result.read_bytes()[:8] == b"KDUMP   "
    import kdiag.vmcore

    with kdiag.vmcore.open(result) as dump:
        log = kdiag.vmcore.format_dmesg(dump.kernel_log())
    # the reader's log matches the one makedumpfile wrote in the capture kernel
    assert log == (result.parent / "dmesg.txt").read_text(errors="replace")
    for needle in EXPECT[kind]:
        assert needle in log, f"{kind}: {needle!r} not in the dump's log"
