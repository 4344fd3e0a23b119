"""Guest profiles: how a lab guest is prepared for (or broken for) a crash.

A profile is the set of sysctls the first kernel sets, whether a capture kernel is loaded,
what the capture kernel does, and the makedumpfile option sets it saves with. The failure
profiles reproduce what goes wrong on real machines, so the doctor and the drill can be
tested against them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdiag.errors import ConfigError

__all__ = ("DEFAULT_DUMP", "PROFILES", "TRIGGERS", "Profile", "get_profile")

#: makedumpfile options of the default capture: zlib-compressed kdump, dump level 31
DEFAULT_DUMP = ("-c", "-d", "31")

#: crash triggers sent over the command channel (``Guest.trigger``)
TRIGGERS = (
    "sysrq-c",
    "oom",
    "hung-task",
    "null",
    "bug",
    "gpf",
    "warn",
    "softlockup",
    "rcu",
)

_NMI_PANIC = (
    ("kernel.unknown_nmi_panic", "1"),
    ("kernel.panic_on_unrecovered_nmi", "1"),
    ("kernel.panic_on_io_nmi", "1"),
)


@dataclass(frozen=True)
class Profile:
    """One way of preparing the guest."""

    name: str
    description: str
    sysctls: tuple[tuple[str, str], ...]
    kdump: bool = True
    capture: str = "save"  # "save" | "hang"
    dumps: tuple[tuple[str, ...], ...] = (DEFAULT_DUMP,)
    crashkernel: bool = True
    #: the readiness marker this profile reaches (kdump_loaded=...)
    expect_kdump_loaded: bool = True
    #: give ``kexec -p`` the ``_text`` symbol Debian's arm64 kallsyms lacks (no-op on x86_64)
    text_fix: bool = True

    def cmdline(self) -> list[str]:
        """Kernel command line words read by the guest /init."""
        words = [f"lab_profile={self.name}", f"lab_kdump={int(self.kdump)}"]
        words.append(f"lab_capture={self.capture}")
        words.append("lab_dump=" + "/".join("_".join(opts) for opts in self.dumps))
        if self.sysctls:
            words.append("lab_sysctl=" + ",".join(f"{k}={v}" for k, v in self.sysctls))
        if not self.text_fix:
            words.append("lab_text_fix=0")
        return words


def _dump_profile(name: str, opts: tuple[str, ...], what: str) -> Profile:
    return Profile(
        name=name,
        description=f"ready; the capture kernel saves with makedumpfile {' '.join(opts)} ({what})",
        sysctls=(*_NMI_PANIC, ("kernel.panic", "10")),
        dumps=(opts,),
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="default",
            description="ready: NMI panics, kdump loaded, makedumpfile -c -d 31",
            sysctls=(*_NMI_PANIC, ("kernel.panic", "10")),
        ),
        Profile(
            name="unprepared",
            description="no unknown_nmi_panic: the NMI is logged as unknown and ignored",
            sysctls=(
                ("kernel.unknown_nmi_panic", "0"),
                ("kernel.panic_on_unrecovered_nmi", "0"),
                ("kernel.panic_on_io_nmi", "0"),
                ("kernel.panic", "10"),
            ),
        ),
        Profile(
            name="no-crashkernel",
            description="no crashkernel reservation: the NMI panics and no dump is written",
            sysctls=(*_NMI_PANIC, ("kernel.panic", "10")),
            kdump=False,
            crashkernel=False,
            expect_kdump_loaded=False,
        ),
        Profile(
            name="panic-hang",
            description="kernel.panic=0 and no capture kernel: the machine stays dead",
            sysctls=(*_NMI_PANIC, ("kernel.panic", "0")),
            kdump=False,
            expect_kdump_loaded=False,
        ),
        Profile(
            name="capture-hang",
            description="the capture kernel starts but never writes the dump",
            sysctls=(*_NMI_PANIC, ("kernel.panic", "10")),
            capture="hang",
        ),
        Profile(
            name="text-trap",
            description=(
                "arm64: kexec -p without the _text workaround loads (rc 0, kdump loaded) "
                "but the capture kernel cannot save a dump"
            ),
            sysctls=(*_NMI_PANIC, ("kernel.panic", "10")),
            text_fix=False,
        ),
        _dump_profile("dump-c31", ("-c", "-d", "31"), "kdump, zlib"),
        _dump_profile("dump-l31", ("-l", "-d", "31"), "kdump, lzo"),
        _dump_profile("dump-z31", ("-z", "-d", "31"), "kdump, zstd if built in"),
        _dump_profile("dump-n31", ("-d", "31"), "kdump, uncompressed"),
        _dump_profile("dump-c1", ("-c", "-d", "1"), "kdump, zlib, only zero pages excluded"),
        _dump_profile("dump-F31", ("-F", "-c", "-d", "31"), "flattened stream, zlib"),
        _dump_profile("dump-E31", ("-E", "-d", "31"), "filtered ELF"),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a :class:`ConfigError` names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ConfigError(f"unknown lab profile {name!r} (known: {known})") from None
