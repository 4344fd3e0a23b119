"""``kdiag configure``: plan the file changes doctor asks for, show them, apply them safely.

A :class:`Plan` is computed from the tree's files and facts and holds whole-file before/after
texts, so the diff is exact and applying it twice changes nothing.  Files are edited in place
(comments and unrelated settings kept), written atomically (temporary file + rename in the same
directory) after a ``.kdiag-bak`` copy of the original.  Every path is resolved inside the root
with chroot semantics (absolute symlinks restart at the root, ``..`` stops at it), so nothing
outside ``--root`` is ever read or written.
"""

from __future__ import annotations

import difflib
import os
import shlex
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import ConfigError
from kdiag.readiness import crashkernel, edits, kdumpconf, sysctlconf
from kdiag.readiness.checks import PURPOSES, Report, run_checks
from kdiag.readiness.distro import Layout, family, layout, shell_value
from kdiag.readiness.facts import Facts, read_root

__all__ = (
    "BACKUP_SUFFIX",
    "SYSCTL_FILE",
    "SYSCTL_HEADER",
    "FileChange",
    "Plan",
    "apply",
    "install_commands",
    "plan",
    "resolve_in_root",
    "sysctl_settings",
)

BACKUP_SUFFIX = ".kdiag-bak"
SYSCTL_FILE = "/etc/sysctl.d/99-kdiag-kdump.conf"
_MAX_LINKS = 40

HV_LEGACY_LINES = (
    "blacklist hv_vmbus hv_storvsc hv_utils hv_netvsc hid_hyperv",
    "extra_modules ata_piix sr_mod sd_mod",
    "options ata_piix prefer_ms_hyperv=0",
    "disk_timeout 100",
)
_HV_LIST = ",".join(kdumpconf.HV_MODULES)
_DEBIAN_SNIPPET_HEAD = (
    "# Written by kdiag configure: the capture kernel's memory.  Sourced after\n"
    "# kdump-tools.cfg, so this crashkernel= is the last one and the one the kernel uses.\n"
)


@dataclass(frozen=True)
class FileChange:
    """One file's content before (None: new file) and after, and why."""

    path: str  # absolute path inside the root
    old: str | None
    new: str
    reasons: tuple[str, ...]
    reboot: bool  # True when the change takes effect only after a reboot

    def diff(self) -> str:
        old = self.old.splitlines(keepends=True) if self.old is not None else []
        lines = difflib.unified_diff(
            old,
            self.new.splitlines(keepends=True),
            fromfile="/dev/null" if self.old is None else "a" + self.path,
            tofile="b" + self.path,
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True)
class Plan:
    """What configure will change on a root, and what to run afterwards."""

    root: str
    family: str
    changes: tuple[FileChange, ...]
    commands: tuple[str, ...]  # to run after writing (service restart, grub update, sysctl)
    notes: tuple[str, ...]
    missing_packages: tuple[str, ...]

    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    @property
    def needs_reboot(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.reboot)


# --- paths ---------------------------------------------------------------------------------


def resolve_in_root(root: str, abspath: str) -> str:
    """The real path of ``abspath`` inside ``root``, following symlinks chroot-style.

    The result is always inside ``root``; ``ConfigError`` on symlink loops.
    """
    base = os.path.realpath(root)
    parts = [p for p in abspath.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(base, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > _MAX_LINKS:
                raise ConfigError(f"too many symlinks resolving {abspath} under {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    final = os.path.join(base, *resolved)
    if os.path.commonpath([final, base]) != base:  # pragma: no cover - by construction
        raise ConfigError(f"{abspath} resolves outside {root}")
    return final


def _read(root: str, abspath: str) -> str | None:
    path = resolve_in_root(root, abspath)
    try:
        return Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise ConfigError(f"{abspath} under {root} is a directory") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {abspath} under {root}: {exc.strerror}") from exc


# --- the plan ------------------------------------------------------------------------------


class _Files:
    """Pending contents by path, so several edits to one file compose."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.old: dict[str, str | None] = {}
        self.new: dict[str, str] = {}
        self.reasons: dict[str, list[str]] = {}
        self.reboot: dict[str, bool] = {}

    def get(self, path: str) -> str | None:
        if path in self.new:
            return self.new[path]
        if path not in self.old:
            self.old[path] = _read(self.root, path)
        return self.old[path]

    def put(self, path: str, text: str, reason: str, *, reboot: bool = False) -> None:
        current = self.get(path)
        if current == text:
            return
        self.new[path] = text
        self.reasons.setdefault(path, []).append(reason)
        self.reboot[path] = self.reboot.get(path, False) or reboot

    def changes(self) -> tuple[FileChange, ...]:
        out = []
        for path, text in self.new.items():
            old = self.old.get(path)
            if old == text:
                continue
            out.append(FileChange(path, old, text, tuple(self.reasons[path]), self.reboot[path]))
        return tuple(out)


def _boot_config_sysrq(root: str, release: str | None) -> int | None:
    """CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE from the root's /boot/config-* (the running kernel's,
    else every installed kernel's when they agree)."""
    boot = resolve_in_root(root, "/boot")
    names = [f"config-{release}"] if release else []
    if not names and os.path.isdir(boot):
        names = sorted(n for n in os.listdir(boot) if n.startswith("config-"))
    found = set()
    for name in names:
        text = _read(root, f"/boot/{name}") or ""
        for line in text.splitlines():
            if line.startswith("CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE="):
                try:
                    found.add(int(line.partition("=")[2], 0))
                except ValueError:
                    continue
    return found.pop() if len(found) == 1 else None


def _sysrq_value(facts: Facts, root: str, fam: str) -> tuple[str | None, str]:
    """``kernel.sysrq`` with the SysRq-c bit (8) ORed into what the machine has without
    kdiag's file: the distribution's sysctl files, else the running value, else the kernel's
    build default.  None when that already allows SysRq-c; never fewer functions than before."""
    others = {p: t for p, t in facts.files.items() if p != SYSCTL_FILE}
    item = sysctlconf.effective(others, "kernel.sysrq")
    running = facts.sysctl.get("kernel.sysrq")
    if item is not None:
        raw, source = item.value, f"{item.path}:{item.line + 1}"
    elif running is not None:
        raw, source = running, "the running kernel"
    elif (config := _boot_config_sysrq(root, facts.kernel_release)) is not None:
        raw, source = str(config), "CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE in /boot/config-*"
    else:
        raw = sysctlconf.kernel_default("kernel.sysrq", fam)
        source = f"the {fam} kernel's default"
    try:
        base = int(raw.strip(), 0)
    except ValueError:
        base = int(sysctlconf.kernel_default("kernel.sysrq", fam))
    if base == 1 or base & 8:
        return None, source
    return str(base | 8), f"{base} from {source}, plus 8 (SysRq-c)"


_HANG_SYSCTLS = {
    "kernel.softlockup_panic": "1",
    "kernel.hung_task_panic": "1",
    "kernel.hardlockup_panic": "1",
    "kernel.nmi_watchdog": "1",
}


SYSCTL_HEADER = (
    "# Written by kdiag configure: an NMI, an oops or a panic produces a crash dump\n"
    "# and the machine comes back.  Edit with care; kdiag doctor checks these.\n"
)


def sysctl_settings(panic_timeout: int, purpose: str) -> dict[str, str]:
    """The panic sysctls configure sets (``kernel.sysrq`` apart: it depends on the machine)."""
    desired = {
        "kernel.unknown_nmi_panic": "1",
        "kernel.panic_on_unrecovered_nmi": "1",
        "kernel.panic": str(panic_timeout),
        "kernel.panic_on_oops": "1",
    }
    if purpose in ("hang", "all"):
        desired.update(_HANG_SYSCTLS)
    return desired


def _plan_sysctl(
    files: _Files, facts: Facts, panic_timeout: int, root: str, purpose: str
) -> list[str]:
    desired = sysctl_settings(panic_timeout, purpose)
    reason = "panic sysctls for kdump"
    sysrq, why = _sysrq_value(facts, root, family(facts.files) or "")
    if sysrq is not None:
        desired["kernel.sysrq"] = sysrq
        reason += f"; kernel.sysrq = {why}"
    use_dir = any(
        os.path.isdir(resolve_in_root(root, d))
        for d in ("/etc/sysctl.d", "/usr/lib/sysctl.d", "/lib/systemd", "/usr/lib/systemd")
    )
    # Assignments in /etc that apply after ours would undo it: edit them in place.
    for item in sysctlconf.assignments(facts.files):
        want = desired.get(item.key)
        if want is None or item.value == want or not item.path.startswith("/etc/"):
            continue
        if item.path == SYSCTL_FILE:
            continue
        if use_dir and item.path != "/etc/sysctl.conf" and item.path < SYSCTL_FILE:
            continue  # applied before ours
        text = files.get(item.path)
        if text is not None:
            files.put(
                item.path,
                edits.set_sysctl_line(text, item.key, want),
                f"{item.key} = {want} (was {item.value}; this file applies last)",
            )
    body = "".join(f"{k} = {v}\n" for k, v in desired.items())
    if use_dir:
        files.put(SYSCTL_FILE, SYSCTL_HEADER + body, reason)
        return ["sysctl --system"]
    text = files.get("/etc/sysctl.conf") or ""
    for key, value in desired.items():
        if sysctlconf.effective({"/etc/sysctl.conf": text}, key) is None:
            if "# kdiag: kdump readiness" not in text:
                lead = text.rstrip("\n") + "\n\n" if text.strip() else ""
                text = lead + "# kdiag: kdump readiness (kdiag configure)\n"
            text += f"{key} = {value}\n"
        else:
            text = edits.set_sysctl_line(text, key, value)
    files.put("/etc/sysctl.conf", text, reason)
    return ["sysctl -p"]


def _crashkernel_value(facts: Facts, requested: str | None) -> tuple[str | None, str]:
    reserved = facts.kexec_crash_size or ""
    ram = (facts.mem_total_kb or 0) * 1024 + (int(reserved) if reserved.isdigit() else 0)
    if requested is not None:
        try:
            crashkernel.reserved_for(requested, ram)
        except ConfigError as exc:
            raise ConfigError(f"--crashkernel {requested!r}: {exc}") from exc
        return requested, "requested with --crashkernel"
    table, size = crashkernel.recommended(facts.arch, ram)
    configured = kdumpconf.configured_crashkernel(facts.files)
    if configured is not None and not ram:
        # An offline image: the RAM it boots with is not known, so the configured value must
        # give at least the recommendation at every size.
        try:
            enough = not crashkernel.shortfalls(configured[1], table)
        except ConfigError:
            enough = False
        if enough:
            return None, "already configured"
        return table, (
            f"configured crashkernel={configured[1]} reserves less than the {facts.arch} "
            "recommendation for some RAM sizes"
        )
    if configured is not None:
        try:
            gives = crashkernel.reserved_for(configured[1], ram)
        except ConfigError:
            gives = 0
        if gives is None or gives >= size:
            return None, "already configured"
        return table, (
            f"configured crashkernel={configured[1]} gives {gives >> 20}M for this RAM, "
            f"below the {facts.arch} recommendation of {size >> 20}M"
        )
    if size == 0 and ram:
        return "128M", (
            f"{crashkernel.explain(table, ram)}; a fixed 128M (Debian's kdump-tools reserves "
            "128M from 384M of RAM)"
        )
    if not ram:
        return table, f"the {facts.arch} recommendation"
    return table, f"the {facts.arch} recommendation; {crashkernel.explain(table, ram)}"


def _plan_crashkernel(
    files: _Files, facts: Facts, lay: Layout, requested: str | None
) -> tuple[list[str], list[str]]:
    value, why = _crashkernel_value(facts, requested)
    if value is None:
        return [], []
    reason = f"crashkernel={value} ({why})"
    if lay.family == "rhel" and files.get("/etc/default/grub") is None:
        grub_conf = files.get("/boot/grub/grub.conf")
        if grub_conf is None:
            return [], [f"no boot loader configuration found; add crashkernel={value} by hand"]
        lines = []
        for line in grub_conf.splitlines(keepends=True):
            if line.lstrip().startswith("kernel "):
                body = line.rstrip("\n")
                words = [w for w in body.split(" ") if not w.startswith("crashkernel=")]
                line = " ".join(words).rstrip() + f" crashkernel={value}" + line[len(body) :]  # noqa: PLW2901
            lines.append(line)
        files.put("/boot/grub/grub.conf", "".join(lines), reason, reboot=True)
        return [], []
    template = None
    if lay.family == "debian":
        template = _DEBIAN_SNIPPET_HEAD + (
            f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={value}"'
        )
    text = files.get(lay.grub_file) or ""
    new = edits.set_grub_crashkernel(text, lay.grub_key, value, template=template)
    files.put(lay.grub_file, new, reason, reboot=True)
    return [lay.grub_update.replace("SIZE", shlex.quote(value))], []


def _plan_collector(files: _Files, facts: Facts, lay: Layout) -> list[str]:
    coll = kdumpconf.collector(lay.family, facts.files)
    notes: list[str] = []
    if lay.family == "rhel":
        text = files.get("/etc/kdump.conf")
        if text is None:
            return ["/etc/kdump.conf is missing: install kexec-tools first"]
        good = coll is not None and coll.makedumpfile and coll.dump_level == 31
        if not (good and coll is not None and coll.compression):
            files.put(
                "/etc/kdump.conf",
                edits.set_kdump_conf_directive(
                    text, "core_collector", kdumpconf.RHEL_DEFAULT_COLLECTOR
                ),
                "filtered (-d 31) and compressed (-l) dumps",
            )
    elif lay.family == "debian":
        text = files.get("/etc/default/kdump-tools")
        if text is None:
            return ["/etc/default/kdump-tools is missing: install kdump-tools first"]
        if shell_value(text, "USE_KDUMP") not in ("1", None):
            text = edits.set_shell_key(text, "USE_KDUMP", "1")
        if coll is None or coll.dump_level != 31 or coll.compression is None:
            # LZO, as on the other families: bench/lab.py (docs/lab.md) measured -l -d 31
            # saving 2-2.2x faster than -c -d 31 for 30-35 % more bytes, and a machine that is
            # down waits for the save before it reboots. An existing -c -d 31 is left alone.
            text = edits.set_shell_key(text, "MAKEDUMP_ARGS", "-l -d 31")
        files.put("/etc/default/kdump-tools", text, "kdump enabled, -l -d 31 dumps")
    else:
        text = files.get("/etc/sysconfig/kdump")
        if text is None:
            return ["/etc/sysconfig/kdump is missing: install kdump first"]
        if coll is None or coll.dump_level != 31:
            text = edits.set_shell_key(text, "KDUMP_DUMPLEVEL", "31")
        if coll is None or coll.compression is None:
            text = edits.set_shell_key(text, "KDUMP_DUMPFORMAT", "lzo")
        files.put("/etc/sysconfig/kdump", text, "dump level 31, lzo compression")
    return notes


def _plan_hyperv(
    files: _Files, facts: Facts, lay: Layout, report: Report, *, force: bool
) -> list[str]:
    check = report.get("hyperv-capture-drivers")
    if force and check.status == "n/a":
        raise ConfigError("--hyperv-fallback: this is not a Hyper-V/Azure machine")
    if kdumpconf.hyperv_blacklist(lay.family, facts.files) is not None:
        return []
    if check.status != "fail" and not force:
        return []
    if facts.efi:
        return ["Hyper-V fallback not applied: UEFI (Generation 2) VM has no emulated IDE"]
    version = kdumpconf.kernel_version(facts.kernel_release)
    legacy = version is not None and version[:2] < (3, 10)
    if lay.family == "rhel" and legacy:
        text = files.get("/etc/kdump.conf")
        if text is None:
            return ["/etc/kdump.conf is missing"]
        for line in HV_LEGACY_LINES:
            text = edits.add_kdump_conf_directive(text, line)
        files.put("/etc/kdump.conf", text, "Hyper-V capture-kernel fallback (KB2858695, legacy)")
        return []
    path, key, value = kdumpconf.capture_append(lay.family, facts.files)
    if lay.family == "debian":
        token = f"modprobe.blacklist={_HV_LIST}"
    else:
        token = f"rd.driver.blacklist={_HV_LIST}"
    new_value = edits.add_cmdline_token(
        edits.add_cmdline_token(value, token), "ata_piix.prefer_ms_hyperv=0"
    )
    text = files.get(path) or ""
    files.put(
        path,
        edits.set_shell_key(text, key, new_value),
        "Hyper-V capture-kernel fallback (KB2858695)",
    )
    return []


def _missing_packages(facts: Facts, lay: Layout) -> tuple[str, ...]:
    tools = facts.tools
    missing = []
    needs = {
        "rhel": {"kexec": "kexec-tools", "makedumpfile": "makedumpfile"},
        "debian": {
            "kdump-config": "kdump-tools",
            "kexec": "kexec-tools",
            "makedumpfile": "makedumpfile",
        },
        "suse": {"kexec": "kexec-tools", "makedumpfile": "makedumpfile"},
    }[lay.family]
    for tool, package in needs.items():
        if not tools.get(tool) and package not in missing:
            missing.append(package)
    if facts.service.get("name") is None and lay.packages[0] not in missing:
        missing.append(lay.packages[0])
    if not tools.get("crash"):
        missing.append("crash")
    return tuple(missing)


def install_commands(plan_: Plan) -> list[list[str]]:
    """The package-manager commands that install the missing packages, non-interactively (in
    a chroot for a root): on Debian and Ubuntu ``apt-get update`` first."""
    lay = layout(plan_.family)
    manager = list(lay.install)
    if plan_.family == "rhel":
        has = {
            name: os.path.exists(resolve_in_root(plan_.root, f"/usr/bin/{name}"))
            for name in ("dnf", "yum")
        }
        if has["yum"] and not has["dnf"]:
            manager[0] = "yum"
    commands = [[*manager, *plan_.missing_packages]]
    if plan_.family == "debian":
        commands.insert(0, ["apt-get", "update"])
    if os.path.realpath(plan_.root) != "/":
        commands = [["chroot", plan_.root, *cmd] for cmd in commands]
    return commands


def _follow_up(
    root: str, facts: Facts, lay: Layout, changes: tuple[FileChange, ...], proposed: list[str]
) -> list[str]:
    """What to run after writing: apply the sysctls, reload kdump, regenerate the boot loader
    configuration, enable the service.  On an offline image nothing runs yet: only the boot
    loader and the service (``systemctl --root``) are left to do."""
    sysv = os.path.isdir(resolve_in_root(root, "/etc/rc.d/init.d")) and not any(
        os.path.exists(resolve_in_root(root, f"{d}/{lay.service}.service"))
        for d in ("/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system")
    )
    commands = []
    if facts.booted and any("sysctl" in c.path for c in changes):
        commands += [c for c in proposed if c.startswith("sysctl")]
    if facts.booted and any(c.path in (*lay.kdump_files, "/etc/kdump.conf") for c in changes):
        if lay.family == "debian":
            commands.append("kdump-config reload")
        elif sysv:
            commands.append(f"service {lay.service} restart")
        else:
            commands.append(f"systemctl restart {lay.service}")
    if any(c.reboot for c in changes):
        commands += [c for c in proposed if not c.startswith("sysctl")]
    name = facts.service.get("name")
    if name and not facts.service.get("enabled"):
        if sysv:
            commands.append(f"chkconfig {name} on")
        elif facts.booted:
            commands.append(f"systemctl enable --now {name}")
        else:
            commands.append(f"systemctl --root {shlex.quote(root)} enable {name}")
    return commands


def plan(
    root: str | os.PathLike[str] = "/",
    *,
    panic_timeout: int = 10,
    crashkernel_size: str | None = None,
    purpose: str = "nmi",
    hyperv_fallback: bool = False,
    facts: Facts | None = None,
) -> Plan:
    """The changes that make ``root`` ready for an NMI-triggered crash dump (and, with
    ``purpose`` hang or all, for lockups and hung tasks too).  ``hyperv_fallback`` applies the
    KB2858695 blacklist even where doctor does not ask for it (after a capture kernel hung).
    ``facts`` (a remote host's, collected elsewhere) replaces reading them from ``root``, which
    then only holds that host's configuration files (``kdiag fleet configure``)."""
    root_s = os.fspath(root)
    if purpose not in PURPOSES:
        raise ConfigError(f"--for must be one of {', '.join(PURPOSES)}")
    if panic_timeout <= 0:
        raise ConfigError("--panic-timeout must be > 0 (seconds before the reboot)")
    if facts is None:
        facts = read_root(root_s)
    fam = family(facts.files)
    if fam is None:
        raise ConfigError(f"cannot tell the distribution family of {root_s} (no os-release)")
    lay = layout(fam)
    report = run_checks(facts, "nmi")
    files = _Files(root_s)
    notes: list[str] = []
    commands = _plan_sysctl(files, facts, panic_timeout, root_s, purpose)
    grub_cmds, grub_notes = _plan_crashkernel(files, facts, lay, crashkernel_size)
    notes += grub_notes
    notes += _plan_collector(files, facts, lay)
    notes += _plan_hyperv(files, facts, lay, report, force=hyperv_fallback)
    changes = files.changes()
    commands = _follow_up(root_s, facts, lay, changes, commands + grub_cmds)
    return Plan(
        root_s,
        fam,
        changes,
        tuple(dict.fromkeys(commands)),
        tuple(notes),
        _missing_packages(facts, lay),
    )


# --- applying ------------------------------------------------------------------------------


def _write_atomic(path: str, text: str, mode: int) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".kdiag-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", errors="surrogateescape"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _makedirs_in_root(root: str, directory: str) -> None:
    base = os.path.realpath(root)
    parts = [p for p in directory.split("/") if p]
    for i in range(1, len(parts) + 1):
        path = resolve_in_root(root, "/" + "/".join(parts[:i]))
        if not os.path.isdir(path):
            os.mkdir(path, 0o755)
        if os.path.commonpath([os.path.realpath(path), base]) != base:
            raise ConfigError(f"{directory} escapes {root}")


def apply(plan_: Plan) -> list[str]:
    """Write every change (backup first, atomically); returns the paths written."""
    written = []
    for change in plan_.changes:
        target = resolve_in_root(plan_.root, change.path)
        base = os.path.realpath(plan_.root)
        _makedirs_in_root(plan_.root, "/" + os.path.relpath(os.path.dirname(target), base))
        current = _read(plan_.root, change.path)
        if current != change.old:
            raise ConfigError(f"{change.path} changed since the plan was made; run again")
        mode = 0o644
        if change.old is not None:
            info = os.stat(target)
            mode = stat.S_IMODE(info.st_mode)
            backup = target + BACKUP_SUFFIX
            _write_atomic(backup, change.old, mode)
        _write_atomic(target, change.new, mode)
        written.append(change.path)
    return written
