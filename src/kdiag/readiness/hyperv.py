"""The Hyper-V / Azure capture-kernel hang (Microsoft KB2858695) and its fixes.

Hyper-V cannot host two simultaneous connections from the same synthetic driver: the capture
kernel's ``hv_storvsc`` tries to reconnect while the crashed kernel's connection still exists,
and hangs.  The fix keeps the synthetic drivers out of the capture kernel and uses emulated
IDE (``ata_piix``): in the RHEL 6 ``kdump.conf`` directives (legacy), or on the capture kernel
command line (modern).  Current guest kernels handle the synthetic drivers, and Generation 2
(UEFI) VMs have no emulated IDE at all, so the fix is asked for only on old guest kernels.
"""

from __future__ import annotations

from kdiag.readiness import kdumpconf
from kdiag.readiness.facts import Facts
from kdiag.readiness.platform import Platform
from kdiag.readiness.registry import Verdict

__all__ = ("LEGACY_FIX", "LEGACY_KERNEL", "MODERN_FIX", "check_hyperv")

_CONFIGURE = "kdiag configure"

MODERN_FIX = (
    "rd.driver.blacklist=hv_vmbus,hv_storvsc,hv_utils,hv_netvsc,hid_hyperv "
    "ata_piix.prefer_ms_hyperv=0 in KDUMP_COMMANDLINE_APPEND (RHEL 7+, /etc/sysconfig/kdump); "
    "modprobe.blacklist=hv_vmbus,hv_storvsc,hv_utils,hv_netvsc,hid_hyperv "
    "ata_piix.prefer_ms_hyperv=0 in KDUMP_CMDLINE_APPEND (Debian/Ubuntu)"
)
LEGACY_FIX = (
    "/etc/kdump.conf (RHEL 6): blacklist hv_vmbus hv_storvsc hv_utils hv_netvsc hid_hyperv; "
    "extra_modules ata_piix sr_mod sd_mod; options ata_piix prefer_ms_hyperv=0; "
    "disk_timeout 100"
)
#: Guest kernels older than this predate working Hyper-V kdump with the synthetic drivers.
LEGACY_KERNEL = (3, 10)


def check_hyperv(facts: Facts, fam: str | None, plat: Platform) -> Verdict:
    """The ``hyperv-capture-drivers`` check."""
    if not plat.is_hyperv:
        return Verdict(
            "n/a",
            f"platform is {plat.hypervisor}, not Hyper-V/Azure",
            "",
        )
    version = kdumpconf.kernel_version(facts.kernel_release)
    legacy = version is not None and version[:2] < LEGACY_KERNEL
    fix_found = kdumpconf.hyperv_blacklist(fam, facts.files)
    where = "Azure" if plat.cloud == "azure" else "Hyper-V"
    evidence = f"{where}; kernel {facts.kernel_release}; hv modules {', '.join(facts.hv_modules)}"
    if fix_found is not None:
        kind, text = fix_found
        evidence += f"; {kind} fix present: {text}"
        if facts.efi:
            return Verdict(
                "warn",
                evidence + "; UEFI (Generation 2) VM: no emulated IDE, blacklisting "
                "hv_storvsc removes the only disk path",
                "remove the blacklist unless an end-to-end test proved it necessary",
            )
        if legacy and kind == "modern" and fam == "rhel":
            return Verdict(
                "fail",
                evidence + "; RHEL 6 mkdumprd ignores rd.driver.blacklist",
                f"{_CONFIGURE} (legacy form) — {LEGACY_FIX}",
            )
        return Verdict("pass", evidence)
    if legacy:
        form = LEGACY_FIX if fam == "rhel" else MODERN_FIX
        return Verdict(
            "fail",
            evidence + "; old guest kernel and no blacklist: the capture kernel's hv_storvsc "
            "reconnects to a VMBus channel the crashed kernel still holds and hangs "
            "(Microsoft KB2858695)",
            f"{_CONFIGURE} — {form}",
        )
    cpus = facts.cpus or 0
    _, _, append = kdumpconf.capture_append(fam, facts.files)
    if cpus >= 15 and "nr_cpus=1" not in append and fam == "debian":
        return Verdict(
            "warn",
            evidence + f"; {cpus} vCPUs (KB2858695: 15+ vCPUs hang on 2012 R2 hosts)",
            "add nr_cpus=1 to the capture kernel command line",
        )
    return Verdict(
        "pass",
        evidence + "; current kernels handle the synthetic drivers in the capture kernel; "
        f"if an end-to-end test hangs, fall back to: {MODERN_FIX}",
    )
