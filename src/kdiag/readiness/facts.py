"""The readiness facts: read from a live system, from a root tree, or from collect.sh's JSON.

One schema (version 1) is shared by ``collect.sh`` and :func:`read_root`; a test runs both on
the same trees and asserts they agree.  The rules both follow:

- a single-value file (``/proc/cmdline``, a sysctl, a DMI string) is its content with trailing
  newlines removed (shell ``$(cat f)``; NUL bytes dropped), or ``None`` when absent;
- a configuration file under ``files`` keeps its exact content, keyed by its absolute path;
- an absolute symlink inside a root tree is followed inside the tree (one level).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdiag.errors import ConfigError

__all__ = (
    "CONFIG_GLOBS",
    "DMI_NAMES",
    "SCHEMA",
    "SYSCTL_NAMES",
    "TOOLS",
    "Facts",
    "collector_source",
    "from_json",
    "load",
    "read_root",
)

SCHEMA = 1

#: kernel.* sysctls collected (from /proc/sys/kernel/<name>), plus vm.panic_on_oom.
SYSCTL_NAMES = (
    "hardlockup_panic",
    "hung_task_panic",
    "hung_task_timeout_secs",
    "nmi_watchdog",
    "panic",
    "panic_on_io_nmi",
    "panic_on_oops",
    "panic_on_unrecovered_nmi",
    "panic_on_warn",
    "softlockup_panic",
    "sysrq",
    "unknown_nmi_panic",
)

#: Configuration files collected, in the collector's order (globs sorted in the C locale).
CONFIG_GLOBS = (
    "/boot/grub/grub.conf",
    "/etc/debian_version",
    "/etc/default/grub",
    "/etc/default/grub.d/*.cfg",
    "/etc/default/kdump-tools",
    "/etc/kdump.conf",
    "/etc/os-release",
    "/etc/redhat-release",
    "/etc/sysconfig/kdump",
    "/etc/sysctl.conf",
    "/etc/sysctl.d/*.conf",
    "/etc/system-release",
    "/usr/lib/os-release",
    "/usr/lib/sysctl.d/*.conf",
)

DMI_NAMES = (
    "bios_vendor",
    "board_asset_tag",
    "board_vendor",
    "chassis_asset_tag",
    "chassis_vendor",
    "product_name",
    "product_version",
    "sys_vendor",
)

TOOLS = ("crash", "kdump-config", "kdumpctl", "kexec", "makedumpfile")
_TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_SERVICES = ("kdump", "kdump-tools")
_UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")


@dataclass(frozen=True)
class Facts:
    """Everything the readiness checks look at (the collector's JSON, schema 1)."""

    kernel_release: str | None
    arch: str
    cmdline: str | None
    kexec_crash_loaded: str | None
    kexec_crash_size: str | None
    fadump_registered: str | None
    fadump_mem_reserved: str | None
    iomem_crash_kernel: tuple[str, ...]
    sysctl: Mapping[str, str | None]
    service: Mapping[str, Any]
    files: Mapping[str, str]
    dmi: Mapping[str, str | None]
    hypervisor: Mapping[str, Any]
    hv_modules: tuple[str, ...]
    efi: bool
    mem_total_kb: int | None
    swap_total_kb: int | None
    cpus: int | None
    dump_target: Mapping[str, Any]
    tools: Mapping[str, bool]
    #: Whether /proc/kallsyms lists ``_text`` (what arm64 ``kexec -p`` looks up): "present"
    #: (with an address), "missing" (``_stext`` has an address, ``_text`` is not listed),
    #: "unknown" (addresses read as 0: not root, or kptr_restrict), None (no kallsyms, or a
    #: facts document from before this field).
    kallsyms_text: str | None = None
    schema: int = SCHEMA
    #: Where the facts came from ("/" live, a root directory, or a JSON file); not compared.
    origin: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The collector's JSON document (without ``origin``)."""
        data = dataclasses.asdict(self)
        data.pop("origin")
        data["iomem_crash_kernel"] = list(self.iomem_crash_kernel)
        data["hv_modules"] = list(self.hv_modules)
        return data

    @property
    def live(self) -> bool:
        """True when the facts describe the running system (proc and sys are real)."""
        return self.origin == "/"

    @property
    def booted(self) -> bool:
        """True when the facts hold a running kernel's state (``/proc`` or ``/sys`` was there);
        False for an offline image, where only the configuration can be judged."""
        return any(
            value is not None
            for value in (
                self.cmdline,
                self.kernel_release,
                self.mem_total_kb,
                self.kexec_crash_loaded,
                self.kexec_crash_size,
            )
        )


#: Fields added to schema 1 later: a document from an older collector may lack them.
_OPTIONAL = frozenset({"kallsyms_text"})


def collector_source() -> str:
    """The text of collect.sh, as shipped in the package."""
    return (Path(__file__).with_name("collect.sh")).read_text(encoding="utf-8")


def from_json(data: Mapping[str, Any], *, origin: str = "") -> Facts:
    """Facts from the collector's JSON document; ``ConfigError`` when it is not one."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ConfigError(f"not a kdiag facts document (schema {SCHEMA} expected)")
    names = {f.name for f in dataclasses.fields(Facts)} - {"origin"}
    missing = sorted(names - data.keys() - _OPTIONAL)
    if missing:
        raise ConfigError(f"facts document lacks {', '.join(missing)}")
    shapes: dict[str, type | tuple[type, ...]] = {
        "sysctl": dict,
        "service": dict,
        "files": dict,
        "dmi": dict,
        "hypervisor": dict,
        "dump_target": dict,
        "tools": dict,
        "iomem_crash_kernel": list,
        "hv_modules": list,
        "arch": str,
        "efi": bool,
    }
    for name, shape in shapes.items():
        if not isinstance(data[name], shape):
            raise ConfigError(f"malformed facts document: {name} is {type(data[name]).__name__}")
    if data.get("kallsyms_text") not in (None, "present", "missing", "unknown"):
        raise ConfigError("malformed facts document: kallsyms_text is not present/missing/unknown")
    if not all(isinstance(v, str) for v in data["files"].values()):
        raise ConfigError("malformed facts document: files must map paths to text")
    try:
        kwargs = {name: data[name] for name in names if name in data}
        kwargs["iomem_crash_kernel"] = tuple(data["iomem_crash_kernel"])
        kwargs["hv_modules"] = tuple(data["hv_modules"])
        return Facts(origin=origin, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"malformed facts document: {exc}") from exc


def load(path: str | os.PathLike[str]) -> Facts:
    """Facts from a saved collector JSON file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read facts file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from exc
    return from_json(data, origin=str(path))


class _Tree:
    """Path resolution under a root, mirroring collect.sh's ``rp``."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def path(self, abspath: str) -> str:
        p = self.root + abspath
        if self.root and os.path.islink(p):
            try:
                target = os.readlink(p)
            except OSError:
                return p
            if target.startswith("/"):
                p = self.root + target
        return p

    def value(self, abspath: str) -> str | None:
        p = self.path(abspath)
        if not os.path.isfile(p) or not os.access(p, os.R_OK):
            return None
        try:
            raw = Path(p).read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b"").decode("utf-8", errors="replace").rstrip("\n")

    def text(self, abspath: str) -> str | None:
        p = self.path(abspath)
        if not os.path.isfile(p) or not os.access(p, os.R_OK):
            return None
        try:
            return Path(p).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, abspath: str) -> bool:
        p = self.path(abspath)
        return os.path.lexists(p)

    def isdir(self, abspath: str) -> bool:
        return os.path.isdir(self.path(abspath))


def _files(tree: _Tree) -> dict[str, str]:
    out: dict[str, str] = {}
    for pattern in CONFIG_GLOBS:
        if "*" in pattern:
            matches = sorted(glob.glob(glob.escape(tree.root) + pattern))
            names = [m[len(tree.root) :] for m in matches]
        else:
            names = [pattern]
        for name in names:
            content = tree.text(name)
            if content is not None:
                out[name] = content
    return out


def _lines(tree: _Tree, abspath: str) -> list[str]:
    content = tree.text(abspath)
    return content.splitlines() if content is not None else []


def _iomem(tree: _Tree) -> tuple[str, ...]:
    ranges = []
    for line in _lines(tree, "/proc/iomem"):
        parts = line.split(" : ")
        if len(parts) >= 2 and parts[1] == "Crash kernel":
            ranges.append(parts[0].replace(" ", ""))
    return tuple(ranges)


def _hv_modules(tree: _Tree) -> tuple[str, ...]:
    names = []
    for line in _lines(tree, "/proc/modules"):
        words = line.split()
        if words and (words[0].startswith("hv_") or "hyperv" in words[0]):
            names.append(words[0])
    return tuple(names)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _meminfo(tree: _Tree, key: str) -> int | None:
    for line in _lines(tree, "/proc/meminfo"):
        words = line.split()
        if words and words[0] == key + ":":
            return _int(words[1]) if len(words) > 1 else None
    return None


def _cpus(tree: _Tree) -> int | None:
    if tree.text("/proc/cpuinfo") is None:
        return None
    return sum(1 for line in _lines(tree, "/proc/cpuinfo") if line.startswith("processor"))


def _cpuinfo_flag(tree: _Tree) -> bool:
    return any(
        line.startswith("flags") and "hypervisor" in line.replace("\t", " ").split(" ")
        for line in _lines(tree, "/proc/cpuinfo")
    )


def _service(tree: _Tree) -> dict[str, Any]:
    name = None
    for svc in _SERVICES:
        units = (f"{d}/{svc}.service" for d in _UNIT_DIRS)
        inits = (f"/etc/init.d/{svc}", f"/etc/rc.d/init.d/{svc}")
        if any(tree.exists(u) for u in units) or any(tree.exists(i) for i in inits):
            name = svc
            break
    if name is None:
        return {"name": None, "enabled": False, "active": None}
    links = (
        f"/etc/systemd/system/*.wants/{name}.service",
        f"/etc/rc[2345].d/S*{name}",
        f"/etc/rc.d/rc[2345].d/S*{name}",
    )
    root = glob.escape(tree.root)
    enabled = any(glob.glob(root + pattern) for pattern in links)
    active = None
    if not tree.root and shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        proc = subprocess.run(
            ["systemctl", "is-active", f"{name}.service"],
            capture_output=True,
            text=True,
            check=False,
        )
        active = proc.stdout.rstrip("\n")
    return {"name": name, "enabled": enabled, "active": active}


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _last_assignment(content: str, key: str) -> str | None:
    found = None
    for line in content.splitlines():
        stripped = line.lstrip(" \t")
        if stripped.startswith(key + "="):
            found = stripped[len(key) + 1 :]
    return found


_Target = tuple[str, str | None]  # (dump directory, remote target type or None)


def _target_kdump_conf(content: str) -> _Target:
    path, remote = "/var/crash", None
    for line in content.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "path":
            path = words[1] if len(words) > 1 else ""
        elif words[0] in ("nfs", "ssh", "raw", "net"):
            remote = words[0]
    return path or "/var/crash", remote


def _target_kdump_tools(content: str) -> _Target:
    path, remote = "/var/crash", None
    value = _last_assignment(content, "KDUMP_COREDIR")
    if value is not None and _unquote(value):
        path = _unquote(value)
    for line in content.splitlines():
        stripped = line.lstrip(" \t")
        for key in ("NFS", "SSH", "FTP"):
            if stripped.startswith(key + "=") and stripped[len(key) + 1 :].strip("\"'"):
                remote = key.lower()
    return path, remote


def _target_sysconfig(content: str) -> _Target:
    value = _last_assignment(content, "KDUMP_SAVEDIR")
    value = _unquote(value) if value is not None else ""
    if value.startswith("file://"):
        return value[len("file://") :], None
    if value.startswith("/"):
        return value, None
    if value:
        return "/var/crash", value.split("://", 1)[0]
    return "/var/crash", None


def _dump_target(tree: _Tree) -> dict[str, Any]:
    """The dump directory and its free space (the first family's file found decides)."""
    path, remote = "/var/crash", None
    readers = (
        ("/etc/kdump.conf", _target_kdump_conf),
        ("/etc/default/kdump-tools", _target_kdump_tools),
        ("/etc/sysconfig/kdump", _target_sysconfig),
    )
    for name, read in readers:
        content = tree.text(name)
        if content is not None:
            path, remote = read(content)
            break
    probe = path
    while probe and probe != "/" and not os.path.isdir(tree.root + probe):
        probe = probe.rsplit("/", 1)[0]
    probe = probe or "/"
    free_kb = size_kb = None
    try:
        st = os.statvfs(tree.root + probe)
    except OSError:
        pass
    else:
        free_kb = st.f_bavail * st.f_frsize // 1024
        size_kb = st.f_blocks * st.f_frsize // 1024
    return {
        "path": path,
        "probe": probe,
        "remote": remote,
        "free_kb": free_kb,
        "size_kb": size_kb,
    }


def _tools(tree: _Tree) -> dict[str, bool]:
    found = {}
    for tool in TOOLS:
        found[tool] = any(
            os.path.isfile(p := tree.path(f"{d}/{tool}")) and os.access(p, os.X_OK)
            for d in _TOOL_DIRS
        )
    return found


_NONZERO = re.compile(r"[1-9a-fA-F]")


def _kallsyms_text(tree: _Tree) -> str | None:
    """``_text`` in /proc/kallsyms: present, missing, unknown (addresses hidden) or None."""
    content = tree.text("/proc/kallsyms")
    if content is None:
        return None
    text = stext = False
    for line in content.splitlines():
        words = line.split()
        if len(words) >= 3 and words[2] in ("_text", "_stext") and _NONZERO.search(words[0]):
            if words[2] == "_text":
                text = True
            else:
                stext = True
    if text:
        return "present"
    return "missing" if stext else "unknown"


def _arch(tree: _Tree) -> str:
    return tree.value("/proc/sys/kernel/arch") or platform.machine()


def read_root(root: str | os.PathLike[str] = "/") -> Facts:
    """The facts of the live system (``root="/"``) or of a tree laid out like one."""
    root_s = os.fspath(root)
    if not os.path.exists(root_s):
        raise ConfigError(f"root {root_s} does not exist")
    if not os.path.isdir(root_s):
        raise ConfigError(f"root {root_s} is not a directory")
    tree = _Tree("" if os.path.realpath(root_s) == "/" else root_s)
    facts = _read_tree(tree, root_s)
    if tree.root and not facts.files and not facts.booted:
        raise ConfigError(
            f"root {root_s} holds no Linux system (no /etc/os-release, no kdump or sysctl "
            "configuration, no /proc): give the root directory of a mounted image"
        )
    return facts


def _read_tree(tree: _Tree, root_s: str) -> Facts:
    sysctl: dict[str, str | None] = {
        f"kernel.{n}": tree.value(f"/proc/sys/kernel/{n}") for n in SYSCTL_NAMES
    }
    sysctl["vm.panic_on_oom"] = tree.value("/proc/sys/vm/panic_on_oom")
    return Facts(
        kernel_release=tree.value("/proc/sys/kernel/osrelease"),
        arch=_arch(tree),
        cmdline=tree.value("/proc/cmdline"),
        kexec_crash_loaded=tree.value("/sys/kernel/kexec_crash_loaded"),
        kexec_crash_size=tree.value("/sys/kernel/kexec_crash_size"),
        fadump_registered=tree.value("/sys/kernel/fadump_registered"),
        fadump_mem_reserved=tree.value("/sys/kernel/fadump/mem_reserved"),
        iomem_crash_kernel=_iomem(tree),
        sysctl=sysctl,
        service=_service(tree),
        files=_files(tree),
        dmi={n: tree.value(f"/sys/class/dmi/id/{n}") for n in DMI_NAMES},
        hypervisor={
            "sys_type": tree.value("/sys/hypervisor/type"),
            "sys_uuid": tree.value("/sys/hypervisor/uuid"),
            "proc_xen": tree.isdir("/proc/xen"),
            "xen_capabilities": tree.value("/proc/xen/capabilities"),
            "cpuinfo_flag": _cpuinfo_flag(tree),
            "vmbus": tree.isdir("/sys/bus/vmbus"),
            "device_tree": tree.value("/proc/device-tree/hypervisor/compatible"),
        },
        hv_modules=_hv_modules(tree),
        efi=tree.isdir("/sys/firmware/efi"),
        mem_total_kb=_meminfo(tree, "MemTotal"),
        swap_total_kb=_meminfo(tree, "SwapTotal"),
        cpus=_cpus(tree),
        dump_target=_dump_target(tree),
        tools=_tools(tree),
        kallsyms_text=_kallsyms_text(tree),
        origin="/" if not tree.root else root_s,
    )
