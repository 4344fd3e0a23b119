"""What the facts say about the kdump configuration: collector, capture command line, grub.

Read-only interpretation shared by the checks and the configurator, per family
(kdump-readiness.md §5): ``/etc/kdump.conf`` + ``/etc/sysconfig/kdump`` (RHEL family),
``/etc/default/kdump-tools`` (Debian/Ubuntu), ``/etc/sysconfig/kdump`` (SUSE).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kdiag.readiness.distro import kdump_conf_directives, shell_value

__all__ = (
    "HV_MODULES",
    "Collector",
    "capture_append",
    "collector",
    "configured_crashkernel",
    "hyperv_blacklist",
    "kernel_version",
)

HV_MODULES = ("hv_vmbus", "hv_storvsc", "hv_utils", "hv_netvsc", "hid_hyperv")

RHEL_DEFAULT_COLLECTOR = "makedumpfile -l --message-level 7 -d 31"
DEBIAN_DEFAULT_ARGS = "-c -d 31"


@dataclass(frozen=True)
class Collector:
    """The configured core collector."""

    source: str  # file and setting it comes from
    command: str  # as configured (or the default)
    makedumpfile: bool
    dump_level: int | None
    compression: str | None  # zlib, lzo, snappy, zstd or None


_LEVEL = re.compile(r"(?:^|\s)(?:-d\s*|--dump-level[=\s]+)(\d+)")
_COMPRESS = {"-c": "zlib", "-l": "lzo", "-p": "snappy", "-z": "zstd"}


def _makedumpfile_args(args: str) -> tuple[int | None, str | None]:
    match = _LEVEL.search(args)
    level = int(match.group(1)) if match else None
    compression = None
    for word in args.split():
        if word in _COMPRESS:
            compression = _COMPRESS[word]
        elif re.fullmatch(r"-[a-zA-Z]+", word) and not word.startswith("-d"):
            for letter in word[1:]:
                compression = _COMPRESS.get("-" + letter, compression)
    return level, compression


def collector(family: str | None, files: Mapping[str, str]) -> Collector | None:
    """The collector this family's configuration selects, or None without kdump config."""
    if family == "debian" or (family is None and "/etc/default/kdump-tools" in files):
        content = files.get("/etc/default/kdump-tools")
        if content is None:
            return None
        args = shell_value(content, "MAKEDUMP_ARGS")
        source = "/etc/default/kdump-tools MAKEDUMP_ARGS"
        if args is None:
            args, source = DEBIAN_DEFAULT_ARGS, source + " (default)"
        level, comp = _makedumpfile_args(args)
        return Collector(source, "makedumpfile " + args, True, level, comp)
    if family == "suse":
        content = files.get("/etc/sysconfig/kdump")
        if content is None:
            return None
        level_s = shell_value(content, "KDUMP_DUMPLEVEL") or "31"
        fmt = (shell_value(content, "KDUMP_DUMPFORMAT") or "compressed").lower()
        comp = {"compressed": "zlib", "lzo": "lzo", "snappy": "snappy", "zstd": "zstd"}.get(fmt)
        level = int(level_s) if level_s.isdigit() else None
        return Collector(
            "/etc/sysconfig/kdump KDUMP_DUMPLEVEL/KDUMP_DUMPFORMAT",
            f"makedumpfile -d {level_s} ({fmt})",
            True,
            level,
            comp,
        )
    content = files.get("/etc/kdump.conf")
    if content is None:
        return None
    command = None
    for word, rest in kdump_conf_directives(content):
        if word == "core_collector":
            command = rest
    source = "/etc/kdump.conf core_collector"
    if command is None:
        command, source = RHEL_DEFAULT_COLLECTOR, source + " (default)"
    first = command.split()[0] if command.split() else ""
    if first.rsplit("/", 1)[-1] != "makedumpfile":
        return Collector(source, command, False, None, None)
    level, comp = _makedumpfile_args(command[len(first) :])
    return Collector(source, command, True, level, comp)


def capture_append(family: str | None, files: Mapping[str, str]) -> tuple[str, str, str]:
    """(file, key, value) of the capture kernel's extra command line for the family."""
    if family == "debian":
        path, key = "/etc/default/kdump-tools", "KDUMP_CMDLINE_APPEND"
    else:
        path, key = "/etc/sysconfig/kdump", "KDUMP_COMMANDLINE_APPEND"
    content = files.get(path)
    value = shell_value(content, key) if content is not None else None
    return path, key, value or ""


def hyperv_blacklist(family: str | None, files: Mapping[str, str]) -> tuple[str, str] | None:
    """Where the Hyper-V capture-kernel fix is configured: ("legacy"|"modern", evidence)."""
    conf = files.get("/etc/kdump.conf")
    if conf is not None:
        for word, rest in kdump_conf_directives(conf):
            if word == "blacklist" and "hv_storvsc" in rest.split():
                return "legacy", f"/etc/kdump.conf: blacklist {rest}"
    path, key, value = capture_append(family, files)
    for word in value.split():
        name, _, modules = word.partition("=")
        if name in ("rd.driver.blacklist", "modprobe.blacklist") and "hv_storvsc" in modules.split(
            ","
        ):
            return "modern", f"{path} {key}: {word}"
    return None


def kernel_version(release: str | None) -> tuple[int, ...] | None:
    """(major, minor, patch) from a kernel release string such as ``2.6.32-754.el6.x86_64``."""
    if not release:
        return None
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not match:
        return None
    return tuple(int(g or 0) for g in match.groups())


_GRUB_CONF_KERNEL = re.compile(r"^\s*kernel\s")


def configured_crashkernel(files: Mapping[str, str]) -> tuple[str, str] | None:
    """(file, value) of the last ``crashkernel=`` configured for the next boot, or None."""
    found = None
    for path in sorted(files):
        if path == "/etc/default/grub" or (
            path.startswith("/etc/default/grub.d/") and path.endswith(".cfg")
        ):
            for line in files[path].splitlines():
                if line.lstrip().startswith("#"):
                    continue
                for match in re.finditer(r"crashkernel=([^\s\"']+)", line):
                    found = (path, match.group(1))
    grub_conf = files.get("/boot/grub/grub.conf")
    if found is None and grub_conf is not None:
        for line in grub_conf.splitlines():
            if _GRUB_CONF_KERNEL.match(line):
                value = re.search(r"crashkernel=(\S+)", line)
                if value:
                    found = ("/boot/grub/grub.conf", value.group(1))
    return found
