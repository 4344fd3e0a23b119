"""``run_drill``: the six steps, timed, then the diagnosis and the record.

The drill never stops at the first bad sign: it keeps watching until it can name the cause
(or its time runs out), because "no dump" has five different causes and the fix depends on
which.  Waiting is bounded by :class:`DrillLimits` and the overall ``timeout``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdiag import vmcore
from kdiag.backends.base import Target
from kdiag.backends.libvirt import LibvirtSettings
from kdiag.drill import api, identity
from kdiag.drill.diagnosis import check_dump, diagnose
from kdiag.drill.evidence import CHAIN_CHECKS, DumpFindings, Evidence, from_facts
from kdiag.drill.hostdump import take_host_dump, take_libvirt_dump
from kdiag.drill.hypervisor_events import HypervisorWatch, LibvirtEventWatch, QMPEventWatch
from kdiag.drill.observe import DumpDirWatch, LabWatch, lab_guest_for
from kdiag.drill.record import catalog_dump, save
from kdiag.drill.report import DrillReport
from kdiag.drill.steps import ProgressFn, StepClock
from kdiag.errors import (
    ConfigError,
    DumpFormatError,
    InvalidInstanceIDNotFound,
    KdiagError,
)
from kdiag.lab.guest import Guest
from kdiag.paths import state_dir
from kdiag.readiness import facts as facts_mod
from kdiag.readiness.checks import run_checks
from kdiag.store import Instance, Store, check_instance_id
from kdiag.vmcore.triage import triage

__all__ = ("DrillLimits", "read_dump", "run_drill")


@dataclass(frozen=True, slots=True)
class DrillLimits:
    """How long the drill waits for each sign (seconds), within the overall timeout.

    ``quiet``: after a send with no reaction at all, send once more, then give up;
    ``settle``: after "NMI received for unknown reason", how long a panic may still come;
    ``stable``: how long a new file under ``--dump-dir`` must keep its size to be done;
    ``hang``: after a panic with no capture kernel and ``kernel.panic=0``, how long to
    confirm the machine stays down; ``clock_skew``: how far before our send a dump's crash
    time may be and still count as ours (guest and host clocks differ); ``poll``: the
    polling interval.
    """

    # 60 s, not less: under TCG a capture kernel's first sign comes ~30 s after the NMI
    # (purgatory's SHA-256 of the capture kernel), and a second NMI sent into it is worse
    # than waiting longer for a lost one.
    quiet: float = 60.0
    settle: float = 10.0
    hang: float = 20.0
    clock_skew: float = 120.0
    poll: float = 0.25
    stable: float = 3.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def read_dump(path: Path, origin: str) -> DumpFindings:
    """Triage one dump into :class:`DumpFindings` (an unreadable one says why)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return DumpFindings(str(path), origin, error=str(exc), error_code="OSError")
    try:
        with vmcore.open(path) as dump:
            t = triage(dump)
    except DumpFormatError as exc:
        return DumpFindings(str(path), origin, size=size, error=str(exc), error_code=exc.code)
    except OSError as exc:
        return DumpFindings(str(path), origin, size=size, error=str(exc), error_code="OSError")
    return DumpFindings(
        str(path),
        origin,
        format=t.format,
        size=size,
        complete=t.complete,
        incomplete_reason=t.incomplete_reason,
        panic_class=t.panic.klass,
        panic_message=t.panic.message,
        signature_id=t.panic.signature_id,
        crash_time=t.crash_time,
        release=t.release,
    )


class _Run:
    """The state of one drill between its steps."""

    def __init__(
        self,
        store: Store,
        instance: Instance,
        *,
        endpoint: str,
        timeout: float,
        limits: DrillLimits,
        progress: ProgressFn | None,
        dump_dir: Path | None,
        facts_path: Path | None,
        host_dump: bool,
        host_dump_dir: Path | None,
        sleep: Callable[[float], None],
        watch_api: bool = False,
    ) -> None:
        self.store = store
        self.instance = instance
        self.endpoint = endpoint
        self.limits = limits
        self.clock = StepClock(progress)
        self.deadline = time.monotonic() + timeout
        self.dump_dir = dump_dir
        self.facts_path = facts_path
        self.want_host_dump = host_dump
        self.host_dump_dir = host_dump_dir
        self.sleep = sleep
        self.watch_api = watch_api
        self.guest: Guest | None = (
            lab_guest_for(dict(instance.target)) if instance.backend == "qmp" else None
        )
        self.watch: LabWatch | DumpDirWatch | HypervisorWatch | None = None
        observer = "dump-dir" if dump_dir else "none"
        if self.guest is not None:
            observer = "lab"
        elif instance.backend == "qmp":
            observer = QMPEventWatch.observer
        elif instance.backend == "libvirt":
            observer = LibvirtEventWatch.observer
        self.ev = Evidence(
            instance_id=instance.id,
            observer=observer,
            clock_skew_s=limits.clock_skew,
        )
        self.notes: list[str] = []
        self.started_at = _now()
        self.host_dump_early = False

    # ------------------------------------------------------------------ helpers
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def update(self, **changes: object) -> None:
        self.ev = dataclasses.replace(self.ev, **changes)  # type: ignore[arg-type]

    def poll(self, step: str) -> None:
        if self.watch is None:
            return
        for note in self.watch.poll():
            self.clock.note(step, note)

    # ------------------------------------------------------------------ 1 readiness
    def readiness(self) -> None:
        self.clock.start("readiness")
        if self.guest is not None:
            self._wait_guest_ready()
        path = self.facts_path
        if path is None and self.guest is not None and self.guest.facts_path.exists():
            path = self.guest.facts_path
        if path is None:
            self.clock.finish("readiness", "warn", "no facts for this instance (--facts FILE)")
            return
        facts = facts_mod.load(path)
        report = run_checks(facts, "nmi")
        found = from_facts(facts, report, str(path))
        self.update(readiness=found)
        chain = [c for c in found.failed_checks if c in CHAIN_CHECKS]
        other = [c for c in found.failed_checks if c not in CHAIN_CHECKS]
        detail = f"kernel {found.release}; "
        detail += f"fails: {', '.join(chain)}" if chain else "every check of the NMI chain passes"
        if other:
            detail += f" (also failing: {', '.join(other)})"
        self.clock.finish("readiness", "warn" if chain else "pass", detail)

    def _wait_guest_ready(self) -> None:
        assert self.guest is not None
        noted = False
        while self.guest.phase != "ready" and self.left() > 0:
            if self.guest.phase == "stopped":
                return
            if not noted:
                self.clock.note("readiness", f"waiting for {self.guest.name} to be ready")
                noted = True
            self.sleep(self.limits.poll)

    # ------------------------------------------------------------------ 2 send
    def send(self) -> bool:
        if self.guest is not None:
            self.watch = LabWatch(self.guest)
            self.update(boot_before=self.watch.boot_before, boot_after=self.watch.boot_before)
        elif self.instance.backend in ("qmp", "libvirt"):
            self.watch = self._hypervisor_watch()
        elif self.dump_dir is not None:
            self.watch = DumpDirWatch(self.dump_dir, stable=self.limits.stable)
        self.clock.start("send")
        if isinstance(self.watch, LibvirtEventWatch):
            self._start_events("send")  # libvirt's events are not exclusive: watch first
        if self.watch_api:
            sent = self._await_api_send()
        else:
            outcome = self._send_once()
            sent = outcome.ok
            if not outcome.ok:
                self.update(send_error_code=outcome.error_code, send_error=outcome.message)
                self.clock.finish("send", "fail", f"{outcome.error_code}: {outcome.message}")
            else:
                self.clock.finish(
                    "send", "pass", f"accepted by {self.endpoint} (request {outcome.request_id})"
                )
        return sent

    def _hypervisor_watch(self) -> HypervisorWatch:
        target = dict(self.instance.target)
        if self.instance.backend == "libvirt":
            settings = LibvirtSettings.parse(target)
            return LibvirtEventWatch(
                settings,
                Target(self.instance.id, target, self.instance.arch),
                self.dump_dir,
                stable=self.limits.stable,
            )
        return QMPEventWatch(
            str(target.get("address", "")), self.dump_dir, stable=self.limits.stable
        )

    def _start_events(self, step: str) -> None:
        watch = self.watch
        if not isinstance(watch, HypervisorWatch):
            return
        try:
            watch.start()
        except KdiagError as exc:
            watch.error = str(exc)
        if watch.connected:
            self.clock.note(step, f"watching the hypervisor's events ({watch.observer})")
        else:
            self.clock.note(step, f"hypervisor events not available: {watch.error}")

    def _await_api_send(self) -> bool:
        """``watch_api``: the next NMI someone sends to the instance through the API (its
        audit row, outcome ``sent`` or ``unknown``) is the drill's NMI."""
        since = self.started_at - dt.timedelta(seconds=1)
        self.clock.note("send", "waiting for an NMI sent to this instance through the API")
        while self.left() > 0:
            for row in self.store.audit_rows(since, instance_id=self.instance.id):
                if row.action != "SendDiagnosticInterrupt" or row.dry_run:
                    continue
                if row.outcome in ("sent", "unknown"):  # "pending": delivery under way
                    self.update(sent=True, sent_at=row.time, sends=1)
                    who = (row.principal or "?").rsplit("/", 1)[-1]
                    self.clock.finish(
                        "send",
                        "pass",
                        f"sent by {who} through the API (request {row.request_id}, "
                        f"audit row {row.id}, outcome {row.outcome})",
                    )
                    return True
            self.sleep(self.limits.poll)
        self.update(
            send_error_code="NoSendSeen", send_error="no NMI was sent through the API in time"
        )
        self.clock.finish("send", "fail", "no NMI was sent to this instance through the API")
        return False

    def _send_once(self) -> api.SendOutcome:
        try:
            creds = identity.credentials(self.store, self.instance.account_id)
        except ConfigError as exc:
            return api.SendOutcome(False, "", "DrillNotSetUp", str(exc))
        sent_at = _now()
        outcome = api.send_nmi(self.endpoint, self.instance.region, self.instance.id, creds)
        if outcome.ok:
            self.update(sent=True, sends=self.ev.sends + 1)
            if self.ev.sent_at is None:
                self.update(sent_at=sent_at)
        return outcome

    # ------------------------------------------------------------------ 3 panic
    def panic(self) -> bool:
        self.clock.start("panic")
        watch = self.watch
        if isinstance(watch, HypervisorWatch):
            if isinstance(watch, QMPEventWatch):
                # QEMU serves one monitor client at a time: connect once the backend let go
                self._start_events("panic")
            return self._panic_hv(watch)
        if not isinstance(watch, LabWatch):
            self.clock.finish("panic", "skipped", "not observable for this instance")
            return True
        last_send = time.monotonic()
        unknown_at: float | None = None
        while True:
            self.poll("panic")
            self._sync_lab()
            if watch.panic_seen:
                how = watch.crash_event or (
                    "capture kernel started" if watch.capture_started else ""
                )
                self.clock.finish("panic", "pass", f"{watch.panic_line or how}")
                return True
            now = time.monotonic()
            if "nmi_unknown" in watch.seen:
                unknown_at = unknown_at or now
                if now - unknown_at > self.limits.settle:
                    self.clock.finish(
                        "panic", "fail", "the NMI was logged as unknown and the kernel carried on"
                    )
                    return False
            elif now - last_send > self.limits.quiet:
                if self.ev.sends >= 2 or self.watch_api:
                    self.clock.finish("panic", "fail", f"no reaction to {self.ev.sends} NMIs")
                    return False
                self.clock.note("panic", "no reaction yet: sending the NMI once more")
                outcome = self._send_once()
                last_send = time.monotonic()
                if not outcome.ok:
                    self.clock.note("panic", f"second send failed: {outcome.error_code}")
            if watch.stopped or self.left() <= 0:
                self.update(timed_out="panic")
                self.clock.finish("panic", "fail", "no panic observed in time")
                return False
            self.sleep(self.limits.poll)

    def _panic_hv(self, watch: HypervisorWatch) -> bool:
        """A panic event (or state), else a reset or a new dump, within ``quiet`` seconds;
        no second send: the monitor may have missed a panic that is being captured."""
        begun = time.monotonic()
        while True:
            self.poll("panic")
            self._sync_hv()
            if watch.panic_seen:
                self.clock.finish("panic", "pass", watch.panic_via or "")
                return True
            if watch.resets or watch.new_dump is not None:
                self.update(panic_seen=True)
                why = "a reset" if watch.resets else "a new dump"
                self.clock.finish("panic", "pass", f"no panic event, but {why} followed the NMI")
                return True
            quiet = time.monotonic() - begun > self.limits.quiet
            if watch.powered_off or quiet or self.left() <= 0:
                self.clock.finish(
                    "panic",
                    "skipped",
                    "no panic event from the hypervisor (no pvpanic device, or it came before "
                    "the drill's monitor connection)",
                )
                return True
            self.sleep(self.limits.poll)

    def _sync_hv(self) -> None:
        watch = self.watch
        if not isinstance(watch, HypervisorWatch):
            return
        self.update(
            panic_seen=self.ev.panic_seen or watch.panic_seen,
            crash_event=watch.crash_event,
            capture_started=watch.capture_started,
            boot_before=0,
            boot_after=watch.resets,
            ready_again=watch.resets > 0,
            console=tuple(watch.excerpt),
        )

    def _reboot_hv(self, watch: HypervisorWatch) -> bool:
        """A reset (a reboot) after the panic; a new dump with no reset within ``settle``
        seconds leaves the step unobserved, a power-off or a dead machine fails it."""
        if self.ev.readiness.kdump_loaded is False and self.want_host_dump and watch.panic_seen:
            self.host_dump(pause=True)
        panic_0 = (self.ev.readiness.panic_timeout or "").strip() == "0"
        begun = time.monotonic()
        dump_at: float | None = None
        while True:
            self.poll("reboot")
            self._sync_hv()
            now = time.monotonic()
            if watch.resets:
                self.clock.finish("reboot", "pass", f"{watch.resets} reset(s) after the NMI")
                return True
            if watch.new_dump is not None:
                dump_at = dump_at or now
                if now - dump_at > self.limits.settle:
                    self.clock.finish("reboot", "skipped", "a new dump, but no reset event")
                    return True
            if watch.powered_off:
                self.clock.finish("reboot", "fail", "the machine powered off instead of rebooting")
                self.host_dump(pause=False)
                return False
            hung = watch.panic_seen and not watch.capture_started and panic_0
            if hung and now - begun > self.limits.hang:
                self.clock.finish(
                    "reboot",
                    "fail",
                    f"still down {now - begun:.0f} s after the panic (kernel.panic=0)",
                )
                self.host_dump(pause=False)
                return False
            if self.left() <= 0:
                if not watch.panic_seen:  # nothing seen at all: the dump step has the say
                    self.clock.finish("reboot", "skipped", "no event from the hypervisor")
                    return True
                self.update(timed_out="reboot")
                self.clock.finish("reboot", "fail", "the machine did not come back in time")
                if watch.capture_started:
                    self.host_dump(pause=False)
                return False
            self.sleep(self.limits.poll)

    def _sync_lab(self) -> None:
        watch = self.watch
        if isinstance(watch, HypervisorWatch):
            self._sync_hv()
            return
        if not isinstance(watch, LabWatch):
            return
        self.update(
            nmi_unknown="nmi_unknown" in watch.seen,
            nmi_continued="nmi_continued" in watch.seen,
            panic_seen=watch.panic_seen,
            panic_line=watch.panic_line,
            crash_event=watch.crash_event,
            capture_started=watch.capture_started,
            capture_hang="capture_hang" in watch.seen,
            capture_failed=watch.capture_failed,
            boot_after=watch.boot_after,
            ready_again=watch.ready_again,
            console=tuple(watch.excerpt),
        )

    # ------------------------------------------------------------------ 4 reboot
    def reboot(self) -> bool:
        self.clock.start("reboot")
        watch = self.watch
        if isinstance(watch, HypervisorWatch):
            return self._reboot_hv(watch)
        if not isinstance(watch, LabWatch):
            self.clock.finish("reboot", "skipped", "not observable for this instance")
            return True
        no_capture = self.ev.readiness.kdump_loaded is False
        if no_capture and self.want_host_dump:
            # nothing will save this crash: dump it from the host before a reboot erases it
            self.host_dump(pause=True)
        panic_0 = (self.ev.readiness.panic_timeout or "").strip() == "0"
        panicked_at = time.monotonic()
        while True:
            self.poll("reboot")
            self._sync_lab()
            if watch.capture_started and self.want_host_dump and not self._host_dump_tried():
                # the crashed kernel's memory is whole while the capture kernel runs (it
                # lives in its reservation); a failed save reboots at once (kdump-tools:
                # reboot -f), so this is the moment to have it from the host as well
                self.host_dump(pause=True)
                self.host_dump_early = True
            if watch.rebooted and watch.ready_again:
                self.clock.finish(
                    "reboot",
                    "pass",
                    f"boot {watch.boot_before} -> {watch.boot_after}, ready again",
                )
                return True
            if "capture_hang" in watch.seen:
                self.clock.finish("reboot", "fail", "the capture kernel hung (no dump, no reboot)")
                self.host_dump(pause=False)
                return False
            quiet = time.monotonic() - panicked_at
            if panic_0 and not watch.capture_started and quiet > self.limits.hang:
                self.clock.finish(
                    "reboot", "fail", f"still down {quiet:.0f} s after the panic (kernel.panic=0)"
                )
                self.host_dump(pause=False)
                return False
            if watch.stopped or self.left() <= 0:
                self.update(timed_out="reboot")
                self.clock.finish("reboot", "fail", "the machine did not come back in time")
                if watch.capture_started:
                    self.host_dump(pause=False)
                return False
            self.sleep(self.limits.poll)

    # ------------------------------------------------------------------ host dump
    def _host_dump_tried(self) -> bool:
        return self.ev.host_dump is not None or self.ev.host_dump_error is not None

    def drop_early_host_dump(self) -> None:
        """The host dump taken as the capture kernel started is not needed once the
        machine's own dump is good (``--host-dump`` is for a failed capture): removed."""
        found = self.ev.host_dump
        if not self.host_dump_early or found is None:
            return
        Path(found.path).unlink(missing_ok=True)
        self.update(host_dump=None)
        self.notes.append(
            "the host-side dump taken as the capture kernel started was removed: the "
            "machine's own dump is good"
        )

    def host_dump(self, *, pause: bool) -> None:
        if not self.want_host_dump or self.ev.host_dump is not None:
            return
        if self.instance.backend not in ("qmp", "libvirt"):
            self.update(host_dump_error=f"not available for backend {self.instance.backend}")
            return
        stamp = self.started_at.strftime("%Y-%m-%d-%H:%M:%S")
        root = self.host_dump_dir or state_dir() / "drill"
        path = root / f"{self.instance.id}-{stamp}" / "host-vmcore"
        self.clock.note("reboot", f"taking a host-side dump: {path}")
        try:
            if self.instance.backend == "libvirt":
                settings = LibvirtSettings.parse(dict(self.instance.target))
                target = Target(self.instance.id, dict(self.instance.target), self.instance.arch)
                take_libvirt_dump(settings, target, path)
            else:
                if isinstance(self.watch, QMPEventWatch):
                    self.watch.close()  # the dump needs the monitor the watch holds
                address = str(self.instance.target.get("address", ""))
                take_host_dump(address, path, pause=pause, timeout=max(30.0, self.left() + 60))
        except KdiagError as exc:
            self.update(host_dump_error=str(exc))
            self.clock.note("reboot", f"host-side dump failed: {exc}")
            return
        found = read_dump(path, "host")
        self.update(host_dump=found)
        self.clock.note("reboot", f"host-side dump: class {found.panic_class}, {found.size} bytes")

    # ------------------------------------------------------------------ 5 dump
    def dump(self) -> Path | None:
        self.clock.start("dump")
        watch = self.watch
        if watch is None or (isinstance(watch, HypervisorWatch) and watch.dumps is None):
            self.clock.finish("dump", "fail", "nowhere to look: give --dump-dir DIR")
            return None
        settle = time.monotonic() + 5.0  # the watcher counts the dump before the reboot
        while True:
            self.poll("dump")
            self._sync_lab()
            if watch.new_dump is not None:
                self.clock.finish("dump", "pass", str(watch.new_dump))
                return watch.new_dump
            reboot = self.clock.results.get("reboot")
            gave_up = isinstance(watch, HypervisorWatch) and reboot and reboot.status == "fail"
            if gave_up and time.monotonic() > settle:
                self.clock.finish("dump", "fail", f"no new dump under {self.dump_dir}")
                return None
            if isinstance(watch, LabWatch) and time.monotonic() > settle:
                why = watch.capture_failed or watch.dump_error or "no new vmcore in the crash tree"
                self.clock.finish("dump", "fail", why)
                return None
            if self.left() <= 0:
                self.update(timed_out="dump")
                self.clock.finish("dump", "fail", f"no new dump under {self.dump_dir} in time")
                return None
            self.sleep(self.limits.poll)

    # ------------------------------------------------------------------ 6 triage
    def triage(self, path: Path) -> None:
        self.clock.start("triage")
        found = read_dump(path, "guest")
        host = self.guest.name if self.guest is not None else None
        if found.error is None:
            entry, why = catalog_dump(
                self.store, found, host=host, account_id=self.instance.account_id
            )
            if entry is not None:
                found = dataclasses.replace(found, catalog_id=entry)
            elif why:
                self.notes.append(why)
        self.update(dump=found)
        bad = check_dump(found, self.ev)
        if bad is not None:
            self.clock.finish("triage", "fail", bad.summary)
            return
        self.drop_early_host_dump()
        after = ""
        if found.crash_time is not None and self.ev.sent_at is not None:
            delta = (found.crash_time - self.ev.sent_at).total_seconds()
            # CRASHTIME has whole seconds: within 2 s of the send is "at once"
            after = (
                ", crashed within a second or two of the send"
                if abs(delta) < 2
                else f", crashed {delta:.0f} s after the send"
            )
        self.clock.finish(
            "triage", "pass", f"class {found.panic_class}{after}, release {found.release}"
        )

    # ------------------------------------------------------------------ all
    def run(self) -> DrillReport:
        try:
            return self._run()
        finally:
            if isinstance(self.watch, HypervisorWatch):
                self.watch.close()

    def _run(self) -> DrillReport:
        self.readiness()
        ok = self.send() and self.panic() and self.reboot()
        if ok or (self.ev.sent and self.watch is not None and self.ev.panic_seen):
            path = self.dump()
            if path is not None:
                self.triage(path)
            elif self.watch is not None and not isinstance(self.watch, LabWatch):
                self.host_dump(pause=False)  # nothing to watch but the dump: it never came
        self._sync_lab()
        if self.ev.host_dump is not None and self.ev.host_dump.error is None:
            host = self.guest.name if self.guest is not None else None
            entry, _why = catalog_dump(
                self.store, self.ev.host_dump, host=host, account_id=self.instance.account_id
            )
            if entry is not None:
                self.update(host_dump=dataclasses.replace(self.ev.host_dump, catalog_id=entry))
        self.clock.skip_rest()
        diagnosis = diagnose(self.ev)
        return DrillReport(
            instance_id=self.instance.id,
            account_id=self.instance.account_id,
            started_at=self.started_at,
            finished_at=_now(),
            steps=self.clock.ordered(),
            evidence=self.ev,
            diagnosis=diagnosis,
            endpoint=self.endpoint,
            notes=tuple(self.notes),
        )


def run_drill(
    store: Store,
    instance_id: str,
    *,
    endpoint: str,
    timeout: float = 600.0,
    progress: ProgressFn | None = None,
    dump_dir: Path | None = None,
    facts_path: Path | None = None,
    host_dump: bool = False,
    host_dump_dir: Path | None = None,
    limits: DrillLimits | None = None,
    record: bool = True,
    account_id: str | None = None,
    watch_api: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> DrillReport:
    """Run one drill of ``instance_id`` and return its report (recorded unless ``record``
    is false: then ``drill_id`` stays ``None``).

    :param endpoint: the kdiag service URL the NMI is requested from.
    :param progress: called with each :class:`~kdiag.drill.steps.ProgressEvent` (from
        this thread); a callback that raises is dropped, never fails the drill.
    :param account_id: when given, the instance must belong to that account.
    :param watch_api: send nothing: the next NMI anyone sends to the instance through the
        API (seen in the audit log) is the one the drill follows and judges.
    :raises InvalidInstanceIDMalformed: a malformed id.
    :raises InvalidInstanceIDNotFound: no such instance (in that account).
    :raises ConfigError: a timeout that is not positive, or unreadable ``facts_path``.
    """
    check_instance_id(instance_id)
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    instance = store.get_instance(instance_id)
    if instance is None or (account_id is not None and instance.account_id != account_id):
        raise InvalidInstanceIDNotFound(f"the instance ID '{instance_id}' does not exist")
    run = _Run(
        store,
        instance,
        endpoint=endpoint,
        timeout=timeout,
        limits=limits or DrillLimits(),
        progress=progress,
        dump_dir=dump_dir,
        facts_path=facts_path,
        host_dump=host_dump,
        host_dump_dir=host_dump_dir,
        sleep=sleep,
        watch_api=watch_api,
    )
    report = run.run()
    if record:
        stored = save(store, report)
        report = dataclasses.replace(report, drill_id=stored.id)
    return report
