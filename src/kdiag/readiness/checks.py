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

from collections.abc import Callable
from dataclasses import dataclass

from kdiag.errors import ConfigError
from kdiag.readiness import crashkernel, kdumpconf, sysctlconf
from kdiag.readiness.distro import family as distro_family
from kdiag.readiness.distro import kdump_conf_directives as distro_directives
from kdiag.readiness.distro import layout
from kdiag.readiness.facts import Facts
from kdiag.readiness.hyperv import LEGACY_KERNEL, check_hyperv
from kdiag.readiness.platform import Platform, detect
from kdiag.readiness.registry import TRIGGERS, Registry, Verdict
from kdiag.readiness.report import Check, Report

__all__ = (
    "CHECK_IDS",
    "CONFIG_CHECK_IDS",
    "PURPOSES",
    "REGISTRY",
    "Check",
    "Context",
    "Report",
    "run_checks",
)

PURPOSES = (*TRIGGERS, "all")


@dataclass(frozen=True)
class Context:
    """What every check may look at: the facts and what was derived from them once."""

    facts: Facts
    purpose: str
    platform: Platform
    family: str | None
    collector: kdumpconf.Collector | None

    @property
    def configure(self) -> str:
        """The configure command the fixes name: on an offline image, with ``--root``."""
        return "kdiag configure" if self.facts.booted else "kdiag configure --root DIR"


REGISTRY: Registry[Context] = Registry()
check = REGISTRY.check

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
    ctx: Context,
    *,
    key: str,
    ok: Callable[[str], bool],
    want: str,
    fix: str,
    severity: str = "fail",
) -> Verdict:
    s = _sysctl(ctx.facts, key)
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
        default = sysctlconf.kernel_default(key, ctx.family)
        value = s.persisted if s.persisted is not None else default
        if s.persisted is None:
            evidence += f" (kernel default {value})"
        return Verdict("pass", evidence) if ok(value) else Verdict(severity, evidence, fix)
    if runtime_ok and (persisted_ok or s.persisted is None):
        return Verdict("pass", evidence)
    if runtime_ok:
        return Verdict("warn", evidence + "; reverts at the next boot", fix)
    if persisted_ok and s.persisted_where and s.persisted_where.startswith("/proc/cmdline"):
        # A command-line value was applied at boot; something has overridden it since.
        return Verdict(severity, evidence + "; overridden since boot", fix)
    if persisted_ok:
        return Verdict(
            "warn", evidence + "; persisted but not applied", "sysctl --system (or reboot)"
        )
    return Verdict(severity, evidence, fix)


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


# --- the checks, in report order ---------------------------------------------------------


@check(
    "kdump-supported",
    needs="runtime",
    passes="`/sys/kernel/kexec_crash_loaded` (or fadump) exists",
    otherwise="fail",
)
def _kdump_supported(ctx: Context) -> Verdict:
    if ctx.facts.kexec_crash_loaded is not None:
        return Verdict("pass", "/sys/kernel/kexec_crash_loaded exists")
    if ctx.facts.fadump_registered is not None:
        return Verdict("pass", "/sys/kernel/fadump_registered exists")
    return Verdict(
        "fail",
        "/sys/kernel/kexec_crash_loaded is absent: this kernel has no kdump support",
        "boot a kernel built with CONFIG_KEXEC_CORE and CONFIG_CRASH_DUMP",
    )


def _reserved_offline(ctx: Context) -> Verdict:
    configured = kdumpconf.configured_crashkernel(ctx.facts.files)
    if configured is None:
        return Verdict(
            "fail",
            "no crashkernel= in the boot loader configuration (/etc/default/grub, "
            "/etc/default/grub.d/*.cfg, /boot/grub/grub.conf)",
            f"{ctx.configure} (adds crashkernel= to the boot loader)",
        )
    return Verdict(
        "pass",
        f"crashkernel={configured[1]} configured in {configured[0]}; reserved when the image "
        "boots (regenerate the boot loader's configuration if the image does not at boot)",
    )


@check(
    "crashkernel-reserved",
    needs="boot",
    passes="`kexec_crash_size` > 0; on an offline image, `crashkernel=` in the boot loader's "
    "configuration",
    otherwise="fail; warn when `crashkernel=` is configured for the next boot but not booted",
)
def _crashkernel_reserved(ctx: Context) -> Verdict:
    facts = ctx.facts
    if not facts.booted:
        return _reserved_offline(ctx)
    size = _int(facts.kexec_crash_size) or _int(facts.fadump_mem_reserved) or 0
    booted = crashkernel.cmdline_values(facts.cmdline or "")
    configured = kdumpconf.configured_crashkernel(facts.files)
    evidence = f"/sys/kernel/kexec_crash_size = {facts.kexec_crash_size or '(absent)'}"
    if facts.iomem_crash_kernel:
        evidence += f"; /proc/iomem Crash kernel {', '.join(facts.iomem_crash_kernel)}"
    evidence += f"; /proc/cmdline crashkernel={','.join(booted) or '(none)'}"
    if size > 0:
        return Verdict("pass", f"{_fmt(size)} reserved; " + evidence)
    if configured and not booted:
        return Verdict(
            "warn",
            evidence + f"; crashkernel={configured[1]} configured in {configured[0]}",
            "reboot to apply the reservation",
        )
    if booted:
        return _requested_not_reserved(ctx, booted[-1], evidence)
    return Verdict(
        "fail",
        evidence + "; no memory reserved for the capture kernel",
        f"{ctx.configure} (adds crashkernel= to the boot loader), then reboot",
    )


def _requested_not_reserved(ctx: Context, value: str, evidence: str) -> Verdict:
    ram = _ram_bytes(ctx.facts)
    table, want = crashkernel.recommended(ctx.facts.arch, ram or 0)
    try:
        gives = crashkernel.reserved_for(value, ram) if ram else None
    except ConfigError:
        gives = None
    if ram and gives == 0:
        # A range table whose ranges all miss this RAM: nothing was asked for.
        fix_value = table if want else "192M"
        return Verdict(
            "fail",
            evidence + "; " + crashkernel.explain(value, ram),
            f"{ctx.configure} --crashkernel {fix_value}, then reboot",
        )
    return Verdict(
        "fail",
        evidence + "; requested but nothing reserved (too large, or no room below 4G?)",
        f"{ctx.configure} --crashkernel SIZE with a smaller size (or SIZE,high), then reboot",
    )


def _size_offline(ctx: Context) -> Verdict:
    configured = kdumpconf.configured_crashkernel(ctx.facts.files)
    table = crashkernel.RECOMMENDED.get(ctx.facts.arch, crashkernel.RECOMMENDED["x86_64"])
    if configured is None:
        return Verdict("n/a", "no crashkernel= configured (see crashkernel-reserved)")
    value = configured[1]
    evidence = (
        f"crashkernel={value} in {configured[0]}; {ctx.facts.arch} recommendation "
        f"crashkernel={table}; the RAM of the machine that boots the image is not known"
    )
    try:
        missing = crashkernel.shortfalls(value, table)
    except ConfigError:
        return Verdict("fail", evidence + "; not valid crashkernel= syntax", ctx.configure)
    short = [
        f"{_fmt(gives) if gives else 'nothing'} for {_fmt(ram)} (want {_fmt(want)})"
        for ram, gives, want in missing
    ]
    if short:
        return Verdict(
            "warn",
            evidence + "; reserves " + ", ".join(short),
            f"{ctx.configure} --crashkernel {table}",
        )
    return Verdict("pass", evidence + "; at least the recommendation at every RAM size")


@check(
    "crashkernel-size",
    needs="boot",
    passes="the reservation (or the configured value for this RAM) ≥ the architecture's "
    "recommendation (x86_64 `512M-2G:192M,2G-64G:256M,64G-:512M`; aarch64, ppc64le, s390x in "
    "crashkernel.py); `crashkernel=auto` passes; on an offline image, the configured value "
    "at every RAM size",
    otherwise="warn; n/a when nothing is configured",
)
def _crashkernel_size(ctx: Context) -> Verdict:
    facts = ctx.facts
    ram = _ram_bytes(facts)
    if not facts.booted:
        return _size_offline(ctx)
    if ram is None:
        return Verdict("n/a", "MemTotal unknown")
    size = _int(facts.kexec_crash_size) or 0
    table, want = crashkernel.recommended(facts.arch, ram)
    evidence = (
        f"reserved {_fmt(size) if size else '0'}; {facts.arch} recommendation "
        f"crashkernel={table}; {crashkernel.explain(table, ram)}"
    )
    if size == 0:
        configured = kdumpconf.configured_crashkernel(facts.files)
        if configured is None:
            return Verdict("n/a", evidence + "; nothing reserved")
        try:
            planned = crashkernel.reserved_for(configured[1], ram)
        except ConfigError:
            planned = 0
        if planned is None:
            return Verdict("pass", evidence + "; configured auto")
        size = planned
        evidence += f"; configured crashkernel={configured[1]} gives {_fmt(planned)}"
    if "auto" in crashkernel.cmdline_values(facts.cmdline or ""):
        return Verdict("pass", evidence + "; crashkernel=auto (sized by the RHEL kernel)")
    if want == 0:
        return Verdict(
            "pass",
            evidence + "; no distribution recommends a size for this little RAM: prove the "
            "reservation with a fire drill",
        )
    if size >= want:
        return Verdict("pass", evidence)
    return Verdict(
        "warn",
        evidence + ": the capture kernel may run out of memory",
        f"{ctx.configure} --crashkernel {table}, then reboot",
    )


@check(
    "capture-kernel-loaded",
    needs="runtime",
    passes="`kexec_crash_loaded` = 1",
    otherwise="fail, with `kdump-config load` / `systemctl enable --now kdump`",
)
def _capture_loaded(ctx: Context) -> Verdict:
    facts, fam = ctx.facts, ctx.family
    service = layout(fam).service if fam else "kdump"
    start = (
        "kdump-config load"
        if fam == "debian"
        else f"systemctl enable --now {service} (or kdumpctl start)"
    )
    if facts.kexec_crash_loaded == "1" or facts.fadump_registered == "1":
        return Verdict("pass", "/sys/kernel/kexec_crash_loaded = 1")
    evidence = f"/sys/kernel/kexec_crash_loaded = {facts.kexec_crash_loaded or '(absent)'}"
    if not (_int(facts.kexec_crash_size) or 0):
        return Verdict(
            "fail",
            evidence + "; nothing can be loaded without reserved memory",
            "reserve memory (crashkernel-reserved), reboot, then " + start,
        )
    return Verdict("fail", evidence, start)


#: How the lab (and the arm64 fixtures) work around kexec-tools' ``_text`` lookup: arm64's
#: head text puts ``_text`` 64 KiB below ``_stext`` on Debian 12's kernel (lab.md §16).
_TEXT_WORKAROUND = (
    "before `kexec -p`, give kexec a /proc/kallsyms that lists _text: copy it, add the line "
    "\"<_stext - 0x10000> T _text\" (grep ' _stext$' /proc/kallsyms for the address), "
    "`mount --bind` the copy over /proc/kallsyms and leave it mounted (a reload needs it, "
    "and this check reads it), then reload the capture kernel ({reload}) "
    "and prove it with a test crash (SysRq-c) on a machine you can spare; Debian 12's "
    "kexec-tools 1:2.0.25 has no fix and no fixed version is recorded, so keep the "
    "workaround until a drill on an upgraded kexec-tools saves a dump"
)


@check(
    "kexec-text-symbol",
    needs="runtime",
    passes="`/proc/kallsyms` lists `_text`, which arm64 `kexec -p` needs (n/a off arm64)",
    otherwise="fail on arm64 when the capture kernel is loaded without `_text` (kexec -p "
    "exits 0 but builds a broken core header: no dump is written), with the kallsyms "
    "workaround; warn when not loaded yet, or when addresses are hidden (unknown)",
)
def _kexec_text(ctx: Context) -> Verdict:
    facts = ctx.facts
    if facts.arch not in ("aarch64", "arm64"):
        return Verdict("n/a", f"arch {facts.arch}: only arm64 kexec -p looks up _text")
    state = facts.kallsyms_text
    loaded = facts.kexec_crash_loaded == "1"
    reload = "kdump-config reload" if ctx.family == "debian" else "kdumpctl restart"
    fix = _TEXT_WORKAROUND.format(reload=reload)
    if state == "present":
        return Verdict("pass", "/proc/kallsyms lists _text")
    if state == "missing":
        evidence = (
            "/proc/kallsyms lists _stext but no _text (no CONFIG_KALLSYMS_ALL): kexec -p "
            'prints "Can\'t get the symbol of _text" and still exits 0'
        )
        if loaded:
            evidence += (
                "; kexec_crash_loaded = 1, but the loaded core header is broken: "
                "the capture kernel will write no dump"
            )
            return Verdict("fail", evidence, fix)
        return Verdict("warn", evidence + "; the next kexec -p will load a broken capture", fix)
    if state == "unknown":
        return Verdict(
            "warn",
            "unknown: /proc/kallsyms addresses read as 0 (not root, or kernel.kptr_restrict), "
            "so whether kexec -p finds _text cannot be told",
            "run kdiag doctor (or collect.sh) as root",
        )
    return Verdict(
        "warn",
        "unknown: /proc/kallsyms was not collected (unreadable, or facts from an older collector)",
        "collect the facts again as root with this kdiag's collect.sh",
    )


@check(
    "kdump-service",
    needs="config",
    passes="service installed and enabled (and active when known)",
    otherwise="fail",
)
def _kdump_service(ctx: Context) -> Verdict:
    facts, fam = ctx.facts, ctx.family
    name = facts.service.get("name")
    enabled = bool(facts.service.get("enabled"))
    active = facts.service.get("active")
    packages = " ".join(layout(fam).packages) if fam else "kexec-tools makedumpfile"
    if not name:
        return Verdict(
            "fail",
            "no kdump or kdump-tools service installed",
            f"{ctx.configure} --install (installs {packages})",
        )
    evidence = f"{name}.service enabled={'yes' if enabled else 'no'}"
    if active is not None:
        evidence += f", active={active}"
    if not enabled:
        fix = (
            f"systemctl enable --now {name}"
            if facts.booted
            else (f"systemctl --root DIR enable {name}")
        )
        return Verdict("fail", evidence, fix)
    if active not in (None, "active"):
        return Verdict("fail", evidence, f"journalctl -u {name}; systemctl restart {name}")
    return Verdict("pass", evidence)


@check(
    "unknown-nmi-panic",
    needs="config",
    for_=("nmi",),
    passes="`kernel.unknown_nmi_panic` = 1",
    otherwise="fail",
)
def _unknown_nmi_panic(ctx: Context) -> Verdict:
    verdict = _judge_sysctl(
        ctx,
        key="kernel.unknown_nmi_panic",
        ok=lambda v: v.strip() == "1",
        want="1 (an external NMI panics, so kdump runs)",
        fix=f"{ctx.configure} (sets kernel.unknown_nmi_panic=1 in /etc/sysctl.d); "
        "note: spurious unknown NMIs then also panic",
    )
    unrecovered = ctx.facts.sysctl.get("kernel.panic_on_unrecovered_nmi")
    if unrecovered is not None:
        evidence = verdict.evidence + f"; kernel.panic_on_unrecovered_nmi = {unrecovered}"
        verdict = Verdict(verdict.status, evidence, verdict.fix)
    return verdict


@check("panic-reboot", needs="config", passes="`kernel.panic` ≠ 0", otherwise="fail")
def _panic_reboot(ctx: Context) -> Verdict:
    return _judge_sysctl(
        ctx,
        key="kernel.panic",
        ok=lambda v: (_int(v) or 0) != 0,
        want="> 0 (reboot N seconds after a panic, so the machine comes back)",
        fix=f"{ctx.configure} --panic-timeout 10 (sets kernel.panic=10)",
    )


@check(
    "panic-on-oops",
    needs="config",
    passes="`kernel.panic_on_oops` = 1",
    otherwise="fail for `--for oops`/`all`, warn for `nmi` and `hang`",
)
def _panic_on_oops(ctx: Context) -> Verdict:
    return _judge_sysctl(
        ctx,
        key="kernel.panic_on_oops",
        ok=lambda v: v.strip() == "1",
        want="1 (an oops panics, so kdump runs)",
        fix=f"{ctx.configure} (sets kernel.panic_on_oops=1)",
        severity="fail" if ctx.purpose in ("oops", "all") else "warn",
    )


@check(
    "hang-panics",
    needs="config",
    for_=("hang",),
    passes="`softlockup_panic` and `hung_task_panic` = 1",
    otherwise="fail; warn without `hardlockup_panic` + `nmi_watchdog`",
)
def _hang_panics(ctx: Context) -> Verdict:
    keys = ("kernel.softlockup_panic", "kernel.hung_task_panic", "kernel.hardlockup_panic")
    states = {k: _sysctl(ctx.facts, k) for k in keys}

    def value(s: _Sysctl) -> str:
        if s.runtime is not None:
            return s.runtime
        return s.persisted or sysctlconf.kernel_default(s.key, ctx.family)

    evidence = "; ".join(f"{k} = {value(s)}" for k, s in states.items())
    watchdog = ctx.facts.sysctl.get("kernel.nmi_watchdog")
    evidence += f"; kernel.nmi_watchdog = {watchdog}"
    missing = [k for k in keys[:2] if value(states[k]).strip() != "1"]
    fix = f"{ctx.configure} --for hang (sysctl.d: " + ", ".join(f"{k}=1" for k in keys) + ")"
    if missing:
        return Verdict("fail", evidence + f"; not set: {', '.join(missing)}", fix)
    if value(states[keys[2]]).strip() != "1" or (watchdog or "1").strip() != "1":
        return Verdict(
            "warn",
            evidence + "; hard lockups will not panic",
            "kernel.hardlockup_panic=1 and kernel.nmi_watchdog=1",
        )
    return Verdict("pass", evidence)


def sysrq_allows_dump(value: str) -> bool:
    """True when a ``kernel.sysrq`` value lets SysRq-c crash the machine (1, or bit 8)."""
    n = _int(value)
    return n is not None and (n == 1 or bool(n & 8))


@check(
    "sysrq",
    needs="config",
    passes="`kernel.sysrq` = 1 or has bit 8 (SysRq-c on a serial console)",
    otherwise="warn",
)
def _sysrq(ctx: Context) -> Verdict:
    return _judge_sysctl(
        ctx,
        key="kernel.sysrq",
        ok=sysrq_allows_dump,
        want="1 or a mask with 8 (crash dump via SysRq-c on the serial console)",
        fix=f"{ctx.configure} (adds bit 8 to kernel.sysrq); "
        "root's /proc/sysrq-trigger works anyway",
        severity="warn",
    )


@check(
    "dump-target-space",
    needs="runtime",
    passes="free ≥ RAM",
    otherwise="fail below RAM/4 (filtered + compressed), RAM/2 (filtered only) or RAM "
    "(unfiltered); warn in between; n/a for remote targets",
)
def _dump_target_space(ctx: Context) -> Verdict:
    facts, coll = ctx.facts, ctx.collector
    target = facts.dump_target
    remote = target.get("remote")
    if remote:
        return Verdict("n/a", f"remote target ({remote}); check free space on the server")
    free_kb = target.get("free_kb")
    ram = _ram_bytes(facts)
    if not isinstance(free_kb, int) or ram is None:
        return Verdict("warn", "free space or RAM unknown", "df -h /var/crash")
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
        return Verdict("fail", evidence, fix)
    if free < ram:
        return Verdict("warn", evidence + "; below the conservative rule (free >= RAM)", fix)
    return Verdict("pass", evidence)


@check(
    "core-collector",
    needs="config",
    passes="makedumpfile, `-d 31`, compression",
    otherwise="fail for `cp`-style collectors or makedumpfile missing; warn for a lower dump "
    "level or no compression",
)
def _core_collector(ctx: Context) -> Verdict:
    coll = ctx.collector
    if coll is None:
        return Verdict("fail", "no kdump configuration found", f"{ctx.configure} --install")
    evidence = f"{coll.source}: {coll.command}"
    if not coll.makedumpfile:
        return Verdict(
            "fail",
            evidence + "; copies all of memory (no filtering, no compression)",
            f"{ctx.configure} (core_collector makedumpfile -l --message-level 7 -d 31)",
        )
    if not ctx.facts.tools.get("makedumpfile"):
        return Verdict(
            "fail", evidence + "; makedumpfile is not installed", f"{ctx.configure} --install"
        )
    problems = []
    if not coll.dump_level:
        problems.append("no dump level (-d): free, cache and user pages are kept")
    elif coll.dump_level != 31:
        problems.append(f"dump level {coll.dump_level} keeps more than -d 31")
    if coll.compression is None:
        problems.append("no compression (-c/-l/-p/-z)")
    if problems:
        return Verdict("warn", evidence + "; " + "; ".join(problems), ctx.configure)
    return Verdict("pass", evidence + f" (dump level {coll.dump_level}, {coll.compression})")


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


@check(
    "deprecated-directives",
    needs="config",
    passes="no `net`, `blacklist`, `options`, `disk_timeout`, `link_delay`, "
    "`debug_mem_level`, `default` in `/etc/kdump.conf` (n/a on RHEL 6 kernels, whose "
    "mkdumprd still needs them)",
    otherwise="warn, with the replacement text",
)
def _deprecated(ctx: Context) -> Verdict:
    facts = ctx.facts
    conf = facts.files.get("/etc/kdump.conf")
    if conf is None:
        return Verdict("n/a", "no /etc/kdump.conf")
    version = kdumpconf.kernel_version(facts.kernel_release)
    if version is not None and version[:2] < LEGACY_KERNEL:
        return Verdict(
            "n/a",
            f"kernel {facts.kernel_release}: RHEL 6 mkdumprd still reads the old directives",
        )
    found = [(word, rest) for word, rest in distro_directives(conf) if word in _DEPRECATED]
    if not found:
        return Verdict("pass", "/etc/kdump.conf: none deprecated")
    evidence = "/etc/kdump.conf: " + "; ".join(f"{w} {r}".strip() for w, r in found)
    return Verdict("warn", evidence, "; ".join(f"{w} -> {_DEPRECATED[w]}" for w, _ in found))


@check(
    "hyperv-capture-drivers",
    needs="config",
    passes="only on Hyper-V/Azure: current guest kernels, or the blacklist present",
    otherwise="fail on old guest kernels (< 3.10) without it (KB2858695); warn when the "
    "blacklist is set on a UEFI (Gen 2) VM",
)
def _hyperv(ctx: Context) -> Verdict:
    return check_hyperv(ctx.facts, ctx.family, ctx.platform)


@check(
    "platform",
    needs="runtime",
    passes="hypervisor and cloud identified, NMI path known",
    otherwise="warn",
)
def _platform(ctx: Context) -> Verdict:
    plat = ctx.platform
    where = plat.hypervisor + (f" on {plat.cloud}" if plat.cloud else "")
    evidence = f"{where} ({'; '.join(plat.evidence)})"
    if plat.nmi_path:
        note = f" ({plat.nmi_note})" if plat.nmi_note else ""
        return Verdict("pass", evidence + f"; NMI: {plat.nmi_path}{note}")
    return Verdict("warn", evidence + f"; {plat.nmi_note}", "trigger with SysRq-c")


CHECK_IDS = REGISTRY.ids()
#: Checks decided by configuration files alone (what ``kdiag configure`` can make pass
#: without a reboot); the rest need the running kernel's state or a reboot.
CONFIG_CHECK_IDS = REGISTRY.ids("config")


def run_checks(facts: Facts, purpose: str = "nmi") -> Report:
    """Every registered check, in registration order, for the purpose (nmi, oops, hang or
    all).  On facts without a running kernel (an offline image) the runtime checks are n/a."""
    if purpose not in PURPOSES:
        raise ConfigError(f"--for must be one of {', '.join(PURPOSES)}")
    fam = distro_family(facts.files)
    ctx = Context(facts, purpose, detect(facts), fam, kdumpconf.collector(fam, facts.files))
    offline = None if facts.booted else "an offline image (no /proc, no /sys)"
    checks = REGISTRY.run(ctx, purpose=purpose, offline=offline)
    return Report(ctx.platform, fam, purpose, checks)
