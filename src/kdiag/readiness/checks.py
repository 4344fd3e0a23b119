"""The readiness checks: will an NMI (or an oops, or a hang) on this machine produce a vmcore?

Each check has a stable id, a status (``pass``, ``warn``, ``fail``, ``n/a``), the evidence
(files and values) and the fix.  Pure functions of :class:`~kdiag.readiness.facts.Facts`.

A sysctl counts as set when its running value is right and nothing persisted contradicts it
(``/etc/sysctl.d``, ``/etc/sysctl.conf``, ``sysctl.`` or ``panic=`` on the kernel command
line).  A running value that is right but reverts at boot, or a persisted value that is not
applied yet, is a warning; wrong in both places is a failure.  Without a running value (a root
tree with no ``proc/``) the persisted value, else the kernel default, is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kdiag.errors import ConfigError
from kdiag.readiness import crashkernel, kdumpconf, sysctlconf
from kdiag.readiness.distro import family as distro_family
from kdiag.readiness.distro import kdump_conf_directives as distro_directives
from kdiag.readiness.distro import layout
from kdiag.readiness.facts import Facts
from kdiag.readiness.hyperv import LEGACY_KERNEL, check_hyperv
from kdiag.readiness.platform import Platform, detect
from kdiag.readiness.report import Check, Report

__all__ = (
    "CHECK_IDS",
    "CONFIG_CHECK_IDS",
    "PURPOSES",
    "Check",
    "Report",
    "run_checks",
)

PURPOSES = ("nmi", "oops", "hang", "all")

CHECK_IDS = (
    "kdump-supported",
    "crashkernel-reserved",
    "crashkernel-size",
    "capture-kernel-loaded",
    "kdump-service",
    "unknown-nmi-panic",
    "panic-reboot",
    "panic-on-oops",
    "hang-panics",
    "sysrq",
    "dump-target-space",
    "core-collector",
    "deprecated-directives",
    "hyperv-capture-drivers",
    "platform",
)

#: Checks decided by configuration files alone (what ``kdiag configure`` can make pass
#: without a reboot); the rest need the running kernel's state.
CONFIG_CHECK_IDS = (
    "kdump-service",
    "unknown-nmi-panic",
    "panic-reboot",
    "panic-on-oops",
    "sysrq",
    "core-collector",
    "deprecated-directives",
    "hyperv-capture-drivers",
)

_DEFAULTS = {
    "kernel.unknown_nmi_panic": "0",
    "kernel.panic": "0",
    "kernel.panic_on_oops": "0",
    "kernel.panic_on_unrecovered_nmi": "0",
    "kernel.softlockup_panic": "0",
    "kernel.hardlockup_panic": "0",
    "kernel.hung_task_panic": "0",
    "kernel.sysrq": "0",
}


# --- helpers -------------------------------------------------------------------------------


def _int(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return int(text.strip().split()[0]) if text.strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _Sysctl:
    key: str
    runtime: str | None
    persisted: str | None
    persisted_where: str | None


def _sysctl(facts: Facts, key: str) -> _Sysctl:
    runtime = facts.sysctl.get(key)
    item = sysctlconf.effective(facts.files, key)
    persisted = item.value if item else None
    where = f"{item.path}:{item.line + 1}" if item else None
    cmdline = facts.cmdline or ""
    for word in cmdline.split():
        if word.startswith(f"sysctl.{key}="):
            persisted, where = word.partition("=")[2], "/proc/cmdline"
        elif key == "kernel.panic" and word.startswith("panic=") and item is None:
            persisted, where = word.partition("=")[2], "/proc/cmdline (panic=)"
    return _Sysctl(key, runtime, persisted, where)


def _judge_sysctl(
    check_id: str,
    facts: Facts,
    *,
    key: str,
    ok: Callable[[str], bool],
    want: str,
    fix: str,
    severity: str = "fail",
) -> Check:
    s = _sysctl(facts, key)
    runtime_ok = s.runtime is not None and ok(s.runtime)
    persisted_ok = s.persisted is not None and ok(s.persisted)
    parts = []
    if s.runtime is not None:
        parts.append(f"{key} = {s.runtime} (running)")
    if s.persisted is not None:
        parts.append(f"{s.persisted} in {s.persisted_where}")
    else:
        parts.append("not set persistently")
    evidence = "; ".join(parts) + f"; want {want}"
    if s.runtime is None:
        value = s.persisted if s.persisted is not None else _DEFAULTS.get(key, "0")
        if ok(value):
            return Check(check_id, "pass", evidence, "")
        if s.persisted is None:
            evidence += f" (kernel default {value})"
        return Check(check_id, severity, evidence, fix)
    if runtime_ok and (persisted_ok or s.persisted is None):
        return Check(check_id, "pass", evidence, "")
    if runtime_ok:
        return Check(check_id, "warn", evidence + "; reverts at the next boot", fix)
    if persisted_ok and s.persisted_where and s.persisted_where.startswith("/proc/cmdline"):
        # A command-line value was applied at boot; something has overridden it since.
        return Check(check_id, severity, evidence + "; overridden since boot", fix)
    if persisted_ok:
        return Check(
            check_id,
            "warn",
            evidence + "; persisted but not applied",
            "sysctl --system (or reboot)",
        )
    return Check(check_id, severity, evidence, fix)


def _ram_bytes(facts: Facts) -> int | None:
    if facts.mem_total_kb is None:
        return None
    reserved = _int(facts.kexec_crash_size) or 0
    return facts.mem_total_kb * 1024 + reserved


def _fmt(size: int) -> str:
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= div:
            return f"{size / div:.1f}{unit}".replace(".0", "")
    return f"{size}B"


_CONFIGURE = "kdiag configure"


# --- the checks ----------------------------------------------------------------------------


def _kdump_supported(facts: Facts) -> Check:
    if facts.kexec_crash_loaded is not None:
        return Check("kdump-supported", "pass", "/sys/kernel/kexec_crash_loaded exists", "")
    if facts.fadump_registered is not None:
        return Check("kdump-supported", "pass", "/sys/kernel/fadump_registered exists", "")
    return Check(
        "kdump-supported",
        "fail",
        "/sys/kernel/kexec_crash_loaded is absent: this kernel has no kdump support",
        "boot a kernel built with CONFIG_KEXEC_CORE and CONFIG_CRASH_DUMP",
    )


def _crashkernel_reserved(facts: Facts) -> Check:
    size = _int(facts.kexec_crash_size) or _int(facts.fadump_mem_reserved) or 0
    booted = crashkernel.cmdline_values(facts.cmdline or "")
    configured = kdumpconf.configured_crashkernel(facts.files)
    evidence = f"/sys/kernel/kexec_crash_size = {facts.kexec_crash_size or '(absent)'}"
    if facts.iomem_crash_kernel:
        evidence += f"; /proc/iomem Crash kernel {', '.join(facts.iomem_crash_kernel)}"
    evidence += f"; /proc/cmdline crashkernel={','.join(booted) or '(none)'}"
    if size > 0:
        return Check("crashkernel-reserved", "pass", f"{_fmt(size)} reserved; " + evidence, "")
    if configured and not booted:
        return Check(
            "crashkernel-reserved",
            "warn",
            evidence + f"; crashkernel={configured[1]} configured in {configured[0]}",
            "reboot to apply the reservation",
        )
    if booted:
        return Check(
            "crashkernel-reserved",
            "fail",
            evidence + "; requested but nothing reserved (too large, or no room below 4G?)",
            f"{_CONFIGURE} --crashkernel SIZE with a smaller size (or SIZE,high), then reboot",
        )
    return Check(
        "crashkernel-reserved",
        "fail",
        evidence + "; no memory reserved for the capture kernel",
        f"{_CONFIGURE} (adds crashkernel= to the boot loader), then reboot",
    )


def _crashkernel_size(facts: Facts) -> Check:
    ram = _ram_bytes(facts)
    size = _int(facts.kexec_crash_size) or 0
    if ram is None:
        return Check("crashkernel-size", "n/a", "MemTotal unknown", "")
    table, want = crashkernel.recommended(facts.arch, ram)
    evidence = (
        f"reserved {_fmt(size) if size else '0'}; RAM {_fmt(ram)}; {facts.arch} recommendation "
        f"crashkernel={table}"
    )
    if size == 0:
        configured = kdumpconf.configured_crashkernel(facts.files)
        if configured is None:
            return Check("crashkernel-size", "n/a", evidence + "; nothing reserved", "")
        try:
            planned = crashkernel.reserved_for(configured[1], ram)
        except ConfigError:
            planned = 0
        if planned is None:
            return Check("crashkernel-size", "pass", evidence + "; configured auto", "")
        size = planned
        evidence += f"; configured crashkernel={configured[1]} gives {_fmt(planned)}"
    if "auto" in crashkernel.cmdline_values(facts.cmdline or ""):
        return Check(
            "crashkernel-size",
            "pass",
            evidence + "; crashkernel=auto (sized by the RHEL kernel)",
            "",
        )
    if want == 0:
        return Check(
            "crashkernel-size",
            "pass",
            evidence + "; below the table's first range (no recommendation)",
            "",
        )
    if size >= want:
        return Check("crashkernel-size", "pass", evidence + f" gives {_fmt(want)}", "")
    return Check(
        "crashkernel-size",
        "warn",
        evidence + f" gives {_fmt(want)}: the capture kernel may run out of memory",
        f"{_CONFIGURE} --crashkernel {table}, then reboot",
    )


def _capture_loaded(facts: Facts, fam: str | None) -> Check:
    service = layout(fam).service if fam else "kdump"
    start = (
        "kdump-config load"
        if fam == "debian"
        else f"systemctl enable --now {service} (or kdumpctl start)"
    )
    if facts.kexec_crash_loaded == "1" or facts.fadump_registered == "1":
        return Check("capture-kernel-loaded", "pass", "/sys/kernel/kexec_crash_loaded = 1", "")
    evidence = f"/sys/kernel/kexec_crash_loaded = {facts.kexec_crash_loaded or '(absent)'}"
    if not (_int(facts.kexec_crash_size) or 0):
        return Check(
            "capture-kernel-loaded",
            "fail",
            evidence + "; nothing can be loaded without reserved memory",
            "reserve memory (crashkernel-reserved), reboot, then " + start,
        )
    return Check("capture-kernel-loaded", "fail", evidence, start)


def _kdump_service(facts: Facts, fam: str | None) -> Check:
    name = facts.service.get("name")
    enabled = bool(facts.service.get("enabled"))
    active = facts.service.get("active")
    packages = " ".join(layout(fam).packages) if fam else "kexec-tools makedumpfile"
    if not name:
        return Check(
            "kdump-service",
            "fail",
            "no kdump or kdump-tools service installed",
            f"{_CONFIGURE} --install (installs {packages})",
        )
    evidence = f"{name}.service enabled={'yes' if enabled else 'no'}"
    if active is not None:
        evidence += f", active={active}"
    if not enabled:
        return Check("kdump-service", "fail", evidence, f"systemctl enable --now {name}")
    if active not in (None, "active"):
        return Check(
            "kdump-service",
            "fail",
            evidence,
            f"journalctl -u {name}; systemctl restart {name}",
        )
    return Check("kdump-service", "pass", evidence, "")


def _unknown_nmi_panic(facts: Facts, purpose: str) -> Check:
    if purpose not in ("nmi", "all"):
        return Check("unknown-nmi-panic", "n/a", f"not needed for --for {purpose}", "")
    check = _judge_sysctl(
        "unknown-nmi-panic",
        facts,
        key="kernel.unknown_nmi_panic",
        ok=lambda v: v.strip() == "1",
        want="1 (an external NMI panics, so kdump runs)",
        fix=f"{_CONFIGURE} (sets kernel.unknown_nmi_panic=1 in /etc/sysctl.d); "
        "note: spurious unknown NMIs then also panic",
    )
    unrecovered = facts.sysctl.get("kernel.panic_on_unrecovered_nmi")
    if unrecovered is not None:
        check = Check(
            check.id,
            check.status,
            check.evidence + f"; kernel.panic_on_unrecovered_nmi = {unrecovered}",
            check.fix,
        )
    return check


def _panic_reboot(facts: Facts) -> Check:
    return _judge_sysctl(
        "panic-reboot",
        facts,
        key="kernel.panic",
        ok=lambda v: (_int(v) or 0) != 0,
        want="> 0 (reboot N seconds after a panic, so the machine comes back)",
        fix=f"{_CONFIGURE} --panic-timeout 10 (sets kernel.panic=10)",
    )


def _panic_on_oops(facts: Facts, purpose: str) -> Check:
    return _judge_sysctl(
        "panic-on-oops",
        facts,
        key="kernel.panic_on_oops",
        ok=lambda v: v.strip() == "1",
        want="1 (an oops panics, so kdump runs)",
        fix=f"{_CONFIGURE} (sets kernel.panic_on_oops=1)",
        severity="fail" if purpose in ("oops", "all") else "warn",
    )


def _hang_panics(facts: Facts, purpose: str) -> Check:
    if purpose not in ("hang", "all"):
        return Check("hang-panics", "n/a", f"not needed for --for {purpose}", "")
    keys = ("kernel.softlockup_panic", "kernel.hung_task_panic", "kernel.hardlockup_panic")
    states = {k: _sysctl(facts, k) for k in keys}

    def value(s: _Sysctl) -> str:
        return s.runtime if s.runtime is not None else (s.persisted or _DEFAULTS[s.key])

    evidence = "; ".join(f"{k} = {value(s)}" for k, s in states.items())
    watchdog = facts.sysctl.get("kernel.nmi_watchdog")
    evidence += f"; kernel.nmi_watchdog = {watchdog}"
    missing = [k for k in keys[:2] if value(states[k]).strip() != "1"]
    fix = "sysctl.d: " + ", ".join(f"{k}=1" for k in keys)
    if missing:
        return Check("hang-panics", "fail", evidence + f"; not set: {', '.join(missing)}", fix)
    if value(states[keys[2]]).strip() != "1" or (watchdog or "1").strip() != "1":
        return Check(
            "hang-panics",
            "warn",
            evidence + "; hard lockups will not panic",
            "kernel.hardlockup_panic=1 and kernel.nmi_watchdog=1",
        )
    return Check("hang-panics", "pass", evidence, "")


def _sysrq(facts: Facts) -> Check:
    def ok(v: str) -> bool:
        n = _int(v)
        return n is not None and (n == 1 or bool(n & 8))

    check = _judge_sysctl(
        "sysrq",
        facts,
        key="kernel.sysrq",
        ok=ok,
        want="1 or a mask with 8 (crash dump via SysRq-c on the serial console)",
        fix=f"{_CONFIGURE} (adds bit 8 to kernel.sysrq); root's /proc/sysrq-trigger works anyway",
        severity="warn",
    )
    return check


def _dump_target_space(facts: Facts, coll: kdumpconf.Collector | None) -> Check:
    target = facts.dump_target
    remote = target.get("remote")
    if remote:
        return Check(
            "dump-target-space",
            "n/a",
            f"remote target ({remote}); check free space on the server",
            "",
        )
    free_kb = target.get("free_kb")
    ram = _ram_bytes(facts)
    if not isinstance(free_kb, int) or ram is None:
        return Check("dump-target-space", "warn", "free space or RAM unknown", "df -h /var/crash")
    free = free_kb * 1024
    filtered = coll is not None and coll.makedumpfile and (coll.dump_level or 0) >= 1
    compressed = coll is not None and coll.compression is not None
    if filtered and compressed:
        need, rule = ram // 4, "RAM/4 (filtered and compressed)"
    elif filtered:
        need, rule = ram // 2, "RAM/2 (filtered, uncompressed)"
    else:
        need, rule = ram, "RAM (unfiltered)"
    evidence = (
        f"{_fmt(free)} free at {target.get('probe')} (dump path {target.get('path')}); "
        f"RAM {_fmt(ram)}; needs at least {rule} = {_fmt(need)}"
    )
    fix = "free space or point the dump path at a larger filesystem (path / KDUMP_COREDIR)"
    if free < need:
        return Check("dump-target-space", "fail", evidence, fix)
    if free < ram:
        return Check(
            "dump-target-space",
            "warn",
            evidence + "; below the conservative rule (free >= RAM)",
            fix,
        )
    return Check("dump-target-space", "pass", evidence, "")


def _core_collector(facts: Facts, coll: kdumpconf.Collector | None) -> Check:
    if coll is None:
        return Check(
            "core-collector",
            "fail",
            "no kdump configuration found",
            f"{_CONFIGURE} --install",
        )
    evidence = f"{coll.source}: {coll.command}"
    if not coll.makedumpfile:
        return Check(
            "core-collector",
            "fail",
            evidence + "; copies all of memory (no filtering, no compression)",
            f"{_CONFIGURE} (core_collector makedumpfile -l --message-level 7 -d 31)",
        )
    if not facts.tools.get("makedumpfile"):
        return Check(
            "core-collector",
            "fail",
            evidence + "; makedumpfile is not installed",
            f"{_CONFIGURE} --install",
        )
    problems = []
    if not coll.dump_level:
        problems.append("no dump level (-d): free, cache and user pages are kept")
    elif coll.dump_level != 31:
        problems.append(f"dump level {coll.dump_level} keeps more than -d 31")
    if coll.compression is None:
        problems.append("no compression (-c/-l/-p/-z)")
    if problems:
        return Check("core-collector", "warn", evidence + "; " + "; ".join(problems), _CONFIGURE)
    return Check(
        "core-collector",
        "pass",
        evidence + f" (dump level {coll.dump_level}, {coll.compression})",
        "",
    )


#: kdump.conf directives kdump-utils deprecates (kdump.conf.5 "DEPRECATED OPTIONS"), with the
#: replacement text.
_DEPRECATED = {
    "net": "use the nfs or ssh directive",
    "blacklist": "rd.driver.blacklist=<m1>,<m2> in KDUMP_COMMANDLINE_APPEND",
    "options": "<module>.<param>=<value> in KDUMP_COMMANDLINE_APPEND",
    "disk_timeout": "removed; see kdump.conf(5)",
    "link_delay": "removed; see kdump.conf(5)",
    "debug_mem_level": "removed; see kdump.conf(5)",
    "default": "failure_action",
}


def _deprecated(facts: Facts, fam: str | None) -> Check:
    conf = facts.files.get("/etc/kdump.conf")
    if conf is None:
        return Check("deprecated-directives", "n/a", "no /etc/kdump.conf", "")
    version = kdumpconf.kernel_version(facts.kernel_release)
    if version is not None and version[:2] < LEGACY_KERNEL:
        return Check(
            "deprecated-directives",
            "n/a",
            f"kernel {facts.kernel_release}: RHEL 6 mkdumprd still reads the old directives",
            "",
        )
    found = [(word, rest) for word, rest in distro_directives(conf) if word in _DEPRECATED]
    if not found:
        return Check("deprecated-directives", "pass", "/etc/kdump.conf: none deprecated", "")
    evidence = "/etc/kdump.conf: " + "; ".join(f"{w} {r}".strip() for w, r in found)
    fix = "; ".join(f"{w} -> {_DEPRECATED[w]}" for w, _ in found)
    return Check("deprecated-directives", "warn", evidence, fix)


def _platform(plat: Platform) -> Check:
    where = plat.hypervisor + (f" on {plat.cloud}" if plat.cloud else "")
    evidence = f"{where} ({'; '.join(plat.evidence)})"
    if plat.nmi_path:
        note = f" ({plat.nmi_note})" if plat.nmi_note else ""
        return Check("platform", "pass", evidence + f"; NMI: {plat.nmi_path}{note}", "")
    return Check("platform", "warn", evidence + f"; {plat.nmi_note}", "trigger with SysRq-c")


def run_checks(facts: Facts, purpose: str = "nmi") -> Report:
    """Every check, in ``CHECK_IDS`` order, for the purpose (nmi, oops, hang or all)."""
    if purpose not in PURPOSES:
        raise ConfigError(f"--for must be one of {', '.join(PURPOSES)}")
    plat = detect(facts)
    fam = distro_family(facts.files)
    coll = kdumpconf.collector(fam, facts.files)
    checks: Sequence[Check] = (
        _kdump_supported(facts),
        _crashkernel_reserved(facts),
        _crashkernel_size(facts),
        _capture_loaded(facts, fam),
        _kdump_service(facts, fam),
        _unknown_nmi_panic(facts, purpose),
        _panic_reboot(facts),
        _panic_on_oops(facts, purpose),
        _hang_panics(facts, purpose),
        _sysrq(facts),
        _dump_target_space(facts, coll),
        _core_collector(facts, coll),
        _deprecated(facts, fam),
        check_hyperv(facts, fam, plat),
        _platform(plat),
    )
    return Report(plat, fam, purpose, tuple(checks))
