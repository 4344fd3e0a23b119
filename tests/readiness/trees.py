"""Hand-made root trees laid out like real RHEL-family, SUSE and Azure CentOS 6 machines.

Each builder writes ``proc/``, ``sys/`` and ``etc/`` files under a directory, with the
contents those distributions ship (trimmed to the settings that matter), so collect.sh, the
Python reader, doctor and configure all run on them with ``--root``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = (
    "azure_centos6",
    "rhel9_ready",
    "rhel9_unprepared",
    "suse15",
    "tricky",
    "write_tree",
)

GIB = 1 << 30

RHEL_KDUMP_CONF = """\
# This file contains a series of commands to perform (in order) in the kdump
# kernel after a kernel crash in the crash kernel(1st kernel) has happened.
#
# Directives in this configuration file are only applicable to the kdump
# initramfs, and have no effect once the root filesystem is mounted and
# the normal init scripts are processed.
#
# For more details on the syntax, see kdump.conf(5).

auto_reset_crashkernel yes
#raw /dev/vg/lv_kdump
#ext4 /dev/vg/lv_kdump
#nfs my.server.com:/export/tmp
#ssh user@my.server.com
#sshkey /root/.ssh/kdump_id_rsa
path /var/crash
core_collector makedumpfile -l --message-level 7 -d 31
#kdump_post /var/crash/scripts/kdump-post.sh
#failure_action shell
"""

RHEL_SYSCONFIG = """\
# Kernel Version string for the -kdump kernel, such as 2.6.13-1544.FC5kdump
# If no version is specified, then the init script will try to find a
# kdump kernel with the same version number as the running kernel.
KDUMP_KERNELVER=""

# The kdump commandline is the command line that needs to be passed off to
# the kdump kernel.
KDUMP_COMMANDLINE=""

# This variable lets us remove arguments from the current kdump commandline
KDUMP_COMMANDLINE_REMOVE="hugepages hugepagesz slub_debug quiet log_buf_len swiotlb"

# This variable lets us append arguments to the current kdump commandline
KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off \
numa=off udev.children-max=2 panic=10 acpi_no_memhotplug transparent_hugepage=never"

# Any additional kexec arguments required.
KEXEC_ARGS="-s"

#Where to find the boot image
#KDUMP_BOOTDIR="/boot"

#What is the image type used for kdump
KDUMP_IMG="vmlinuz"
"""

RHEL_GRUB = """\
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 no_timer_check net.ifnames=0"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
"""

ROCKY_OS_RELEASE = """\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
"""

SLES_OS_RELEASE = """\
NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp5"
"""

SUSE_SYSCONFIG = """\
## Path:        System/Kernel/Kdump
## Description: Crash Dump Configuration

## Type:        string
## Default:     ""
## ServiceRestart: kdump
#
# Kernel Version string for the -kdump kernel.
KDUMP_KERNELVER=""

## Type:        string
## Default:     ""
#
# Set this variable if you want to append parameters to the kdump kernel.
KDUMP_COMMANDLINE_APPEND=""

## Type:        string
## Default:     "file:///var/crash"
#
# Which directory should the dumps be saved in by the default dumper?
KDUMP_SAVEDIR="file:///var/crash"

## Type:        integer(0:31)
## Default:     31
#
# Determines the dump level.
KDUMP_DUMPLEVEL=1

## Type:        list(,none,ELF,compressed,lzo,snappy,zstd,raw)
## Default:     "lzo"
#
# This variable specifies the dump format.
KDUMP_DUMPFORMAT="ELF"
"""

SUSE_GRUB = """\
# If you change this file, run 'grub2-mkconfig -o /boot/grub2/grub.cfg' afterwards to update
# /boot/grub2/grub.cfg.

GRUB_DISTRIBUTOR=
GRUB_DEFAULT=saved
GRUB_HIDDEN_TIMEOUT=0
GRUB_TIMEOUT=8
GRUB_CMDLINE_LINUX_DEFAULT="splash=silent quiet crashkernel=189M,high crashkernel=72M,low"
GRUB_CMDLINE_LINUX=""
"""

CENTOS6_KDUMP_CONF = """\
# Configures where to put the kdump /proc/vmcore files
#
# This file contains a series of commands to perform (in order) when a
# kernel crash has happened and the kdump kernel has been loaded.
#
#raw /dev/sda5
#ext4 /dev/sda3
#net my.server.com:/export/tmp
#path /var/crash
core_collector makedumpfile -c --message-level 1 -d 31
#link_delay 60
#kdump_post /var/crash/scripts/kdump-post.sh
#extra_bins /usr/bin/lftp
#disk_timeout 30
#extra_modules gfs2
#options modulename options
#default shell
#debug_mem_level 0
#force_rebuild 1
#sshkey /root/.ssh/kdump_id_rsa
#fence_kdump_args -p 7410 -f auto -c 0 -i 10
#fence_kdump_nodes node1 node2
"""

CENTOS6_SYSCTL = """\
# Kernel sysctl configuration file for Red Hat Linux
#
# For binary values, 0 is disabled, 1 is enabled.  See sysctl(8) and
# sysctl.conf(5) for more details.

# Controls IP packet forwarding
net.ipv4.ip_forward = 0

# Controls the System Request debugging functionality of the kernel
kernel.sysrq = 0

# Controls whether core dumps will append the PID to the core filename.
# Useful for debugging multi-threaded applications.
kernel.core_uses_pid = 1

# Controls the use of TCP syncookies
net.ipv4.tcp_syncookies = 1

# Controls the default maxmimum size of a mesage queue
kernel.msgmnb = 65536

# Do not reboot on a kernel panic (Azure image default)
kernel.panic = 0
"""

CENTOS6_GRUB_CONF = """\
# grub.conf generated by anaconda
default=0
timeout=1
title CentOS (2.6.32-754.35.1.el6.x86_64)
\troot (hd0,0)
\tkernel /boot/vmlinuz-2.6.32-754.35.1.el6.x86_64 ro root=UUID=6d31a7f3 \
numa=off console=ttyS0 earlyprintk=ttyS0 rootdelay=300 crashkernel=auto
\tinitrd /boot/initramfs-2.6.32-754.35.1.el6.x86_64.img
"""

CENTOS6_SYSCONFIG = """\
KDUMP_KERNELVER=""
KDUMP_COMMANDLINE=""
KDUMP_COMMANDLINE_REMOVE="hugepages hugepagesz slub_debug"
KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off"
KEXEC_ARGS=""
KDUMP_BOOTDIR="/boot"
KDUMP_IMG="vmlinuz"
KDUMP_IMG_EXT=""
"""


def _cpuinfo(cpus: int, hypervisor: bool = True) -> str:
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov" + (
        " hypervisor" if hypervisor else ""
    )
    blocks = []
    for n in range(cpus):
        blocks.append(
            f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
            f"flags\t\t: {flags}\n"
        )
    return "\n".join(blocks) + "\n"


def _meminfo(ram_kb: int) -> str:
    return f"MemTotal:       {ram_kb} kB\nMemFree:        {ram_kb // 2} kB\nSwapTotal:      0 kB\n"


def _sysctl_files(values: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        path = "proc/sys/" + key.replace(".", "/")
        out[path] = value + "\n"
    return out


def write_tree(root: Path, files: Mapping[str, str | bytes], *, dirs: tuple[str, ...] = ()) -> Path:
    """Write ``files`` (relative path -> content) and empty ``dirs`` under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for rel in dirs:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel in files:
        if rel.split("/")[-2:-1] in (["sbin"], ["bin"]) or "/init.d/" in rel:
            (root / rel).chmod(0o755)
    return root


def _base_sysctls(**overrides: str) -> dict[str, str]:
    values = {
        "kernel.hardlockup_panic": "0",
        "kernel.hung_task_panic": "0",
        "kernel.hung_task_timeout_secs": "120",
        "kernel.nmi_watchdog": "1",
        "kernel.panic": "0",
        "kernel.panic_on_io_nmi": "0",
        "kernel.panic_on_oops": "0",
        "kernel.panic_on_unrecovered_nmi": "0",
        "kernel.panic_on_warn": "0",
        "kernel.softlockup_panic": "0",
        "kernel.sysrq": "16",
        "kernel.unknown_nmi_panic": "0",
        "vm.panic_on_oom": "0",
        "kernel.osrelease": "5.14.0-427.13.1.el9_4.x86_64",
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return values


def _kvm_dmi() -> dict[str, str]:
    return {
        "sys/class/dmi/id/sys_vendor": "QEMU\n",
        "sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
        "sys/class/dmi/id/bios_vendor": "SeaBIOS\n",
        "sys/class/dmi/id/chassis_asset_tag": "\n",
    }


def rhel9_unprepared(root: Path) -> Path:
    """Rocky 9 on KVM, kdump installed but nothing reserved and no panic sysctls."""
    files: dict[str, str | bytes] = {
        "etc/os-release": ROCKY_OS_RELEASE,
        "etc/redhat-release": "Rocky Linux release 9.4 (Blue Onyx)\n",
        "etc/kdump.conf": RHEL_KDUMP_CONF,
        "etc/sysconfig/kdump": RHEL_SYSCONFIG,
        "etc/default/grub": RHEL_GRUB,
        "etc/sysctl.conf": "# sysctl settings are defined through files in\n# /usr/lib/sysctl.d/\n",
        "usr/lib/sysctl.d/50-default.conf": "kernel.sysrq = 16\nkernel.core_uses_pid = 1\n",
        "usr/lib/systemd/system/kdump.service": "[Unit]\nDescription=Crash recovery kernel\n",
        "usr/sbin/makedumpfile": "#!/bin/sh\n",
        "usr/sbin/kexec": "#!/bin/sh\n",
        "usr/bin/kdumpctl": "#!/bin/sh\n",
        "usr/bin/dnf": "#!/bin/sh\n",
        "proc/cmdline": "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-5.14.0 root=/dev/vda3 ro console=ttyS0\n",
        "proc/meminfo": _meminfo(8 * 1024 * 1024 - 200_000),
        "proc/cpuinfo": _cpuinfo(4),
        "proc/iomem": "00000000-00000fff : Reserved\n00100000-7ffdffff : System RAM\n",
        "proc/modules": "virtio_net 77824 0 - Live 0x0000000000000000\n",
        "sys/kernel/kexec_crash_loaded": "0\n",
        "sys/kernel/kexec_crash_size": "0\n",
        **_kvm_dmi(),
        **_sysctl_files(_base_sysctls()),
    }
    return write_tree(root, files, dirs=("etc/sysctl.d", "var/crash"))


def rhel9_ready(root: Path) -> Path:
    """Rocky 9 on KVM, fully prepared for an NMI."""
    rhel9_unprepared(root)
    files: dict[str, str | bytes] = {
        "proc/cmdline": "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-5.14.0 root=/dev/vda3 ro "
        "crashkernel=2G-64G:256M,64G-:512M\n",
        "proc/iomem": "00000000-00000fff : Reserved\n00100000-7ffdffff : System RAM\n"
        "  5b000000-6affffff : Crash kernel\n",
        "sys/kernel/kexec_crash_loaded": "1\n",
        "sys/kernel/kexec_crash_size": str(256 << 20) + "\n",
        "etc/sysctl.d/90-nmi.conf": "kernel.unknown_nmi_panic = 1\nkernel.panic = 10\n"
        "kernel.panic_on_oops = 1\nkernel.sysrq = 1\n",
        "etc/systemd/system/multi-user.target.wants/kdump.service": "",
        **_sysctl_files(
            {
                "kernel.unknown_nmi_panic": "1",
                "kernel.panic": "10",
                "kernel.panic_on_oops": "1",
                "kernel.sysrq": "1",
            }
        ),
    }
    return write_tree(root, files)


def suse15(root: Path) -> Path:
    """SLES 15 SP5 on VMware with ELF dumps at level 1 and kdump not enabled."""
    files: dict[str, str | bytes] = {
        "etc/os-release": SLES_OS_RELEASE,
        "etc/sysconfig/kdump": SUSE_SYSCONFIG,
        "etc/default/grub": SUSE_GRUB,
        "usr/lib/systemd/system/kdump.service": "[Unit]\nDescription=Load kdump kernel\n",
        "usr/sbin/makedumpfile": "#!/bin/sh\n",
        "usr/sbin/kexec": "#!/bin/sh\n",
        "proc/cmdline": "BOOT_IMAGE=/boot/vmlinuz-5.14.21 root=/dev/sda2 splash=silent "
        "crashkernel=189M,high crashkernel=72M,low\n",
        "proc/meminfo": _meminfo(16 * 1024 * 1024 - 300_000),
        "proc/cpuinfo": _cpuinfo(8),
        "proc/iomem": "  0f000000-1bcfffff : Crash kernel\n  a0000000-a47fffff : Crash kernel\n",
        "proc/modules": "vmw_vmci 102400 0 - Live 0x0000000000000000\n",
        "sys/kernel/kexec_crash_loaded": "0\n",
        "sys/kernel/kexec_crash_size": str(189 << 20) + "\n",
        "sys/class/dmi/id/sys_vendor": "VMware, Inc.\n",
        "sys/class/dmi/id/product_name": "VMware7,1\n",
        "sys/class/dmi/id/bios_vendor": "VMware, Inc.\n",
        **_sysctl_files(_base_sysctls(kernel__osrelease="5.14.21-150500.55.39-default")),
    }
    return write_tree(root, files, dirs=("var/crash", "sys/firmware/efi"))


def azure_centos6(root: Path) -> Path:
    """CentOS 6.10 on Azure: kernel.panic = 0 and no Hyper-V blacklist in kdump.conf.

    Both findings of the well-known Azure CentOS case: after a panic the VM never comes back,
    and the capture kernel hangs in hv_storvsc.
    """
    release = "2.6.32-754.35.1.el6.x86_64"
    files: dict[str, str | bytes] = {
        "etc/redhat-release": "CentOS release 6.10 (Final)\n",
        "etc/system-release": "CentOS release 6.10 (Final)\n",
        "etc/kdump.conf": CENTOS6_KDUMP_CONF,
        "etc/sysconfig/kdump": CENTOS6_SYSCONFIG,
        "etc/sysctl.conf": CENTOS6_SYSCTL,
        "boot/grub/grub.conf": CENTOS6_GRUB_CONF,
        "etc/rc.d/init.d/kdump": "#!/bin/sh\n# kdump init script\n",
        "etc/rc.d/rc3.d/S26kdump": "",
        "sbin/makedumpfile": "#!/bin/sh\n",
        "sbin/kexec": "#!/bin/sh\n",
        "usr/bin/yum": "#!/bin/sh\n",
        "proc/cmdline": "ro root=UUID=6d31a7f3 rd_NO_LUKS numa=off console=ttyS0 "
        "earlyprintk=ttyS0 rootdelay=300 crashkernel=auto\n",
        "proc/meminfo": _meminfo(7 * 1024 * 1024),
        "proc/cpuinfo": _cpuinfo(2),
        "proc/iomem": "  03000000-0affffff : Crash kernel\n",
        "proc/modules": "hv_netvsc 32913 0 - Live 0xffffffffa0123000\n"
        "hv_utils 7055 0 - Live 0xffffffffa0118000\n"
        "hv_storvsc 13402 2 - Live 0xffffffffa0101000\n"
        "hv_vmbus 44123 4 hv_netvsc,hv_utils,hv_storvsc, Live 0xffffffffa00e0000\n",
        "sys/kernel/kexec_crash_loaded": "1\n",
        "sys/kernel/kexec_crash_size": str(128 << 20) + "\n",
        "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
        "sys/class/dmi/id/product_name": "Virtual Machine\n",
        "sys/class/dmi/id/product_version": "7.0\n",
        "sys/class/dmi/id/bios_vendor": "American Megatrends Inc.\n",
        "sys/class/dmi/id/chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77\n",
        "sys/class/dmi/id/chassis_vendor": "Microsoft Corporation\n",
        **_sysctl_files(
            _base_sysctls(
                kernel__osrelease=release, kernel__sysrq="0", kernel__unknown_nmi_panic="1"
            )
        ),
    }
    return write_tree(root, files, dirs=("var/crash", "sys/bus/vmbus/devices"))


def tricky(root: Path) -> Path:
    """Files whose content stresses JSON escaping: quotes, backslashes, control characters."""
    files: dict[str, str | bytes] = {
        "etc/os-release": 'NAME="Tricky \\"Linux\\""\nID=debian\nPRETTY_NAME=\'a\\b\'\n',
        "etc/default/kdump-tools": 'USE_KDUMP=1\r\nMAKEDUMP_ARGS="-c -d 31"\t# tab\n'
        '\x01\x02\x1b[0m\x7f caf\u00e9 \u65e5\u672c\n\n\nno-final-newline \\ \\\\ "',
        "etc/default/grub.d/kdump-tools.cfg": b"",
        "etc/sysctl.d/10-a.conf": "kernel.panic = 5\n",
        'etc/sysctl.d/20-we"ird\\name $x.conf': "kernel.sysrq = 1\n",
        "etc/sysctl.d/99-link.conf": b"",
        "proc/cmdline": 'a="b c" \\x quote" \t tab\n\n',
        "sys/class/dmi/id/product_name": "Standard PC \\ (Q35)\n",
        "sys/class/dmi/id/board_asset_tag": "\n",
        "proc/sys/kernel/osrelease": "6.1.0-21-amd64\n",
        "proc/meminfo": "MemTotal: 1024 kB\n",
        "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu hypervisor_x\n",
        "proc/device-tree/hypervisor/compatible": b"linux,kvm\0",
    }
    write_tree(root, files, dirs=("proc/xen",))
    link = root / "etc/sysctl.d/99-link.conf"
    link.unlink()
    os.symlink("/etc/sysctl.d/10-a.conf", link)  # absolute: must resolve inside the tree
    return root


DEBIAN12_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

#: /proc/kallsyms of Debian 12's arm64 kernel, abridged: no CONFIG_KALLSYMS_ALL, so no _text.
ARM64_KALLSYMS = """\
ffff800008010000 T _stext
ffff800008010000 T __exception_text_start
ffff800008010800 t el1t_64_sync
ffff80000a4a0000 D _edata
ffff800001234560 t virtio_blk_probe\t[virtio_blk]
"""


def _debian12_arm64(root: Path, kallsyms: str) -> Path:
    """Debian 12 on arm64 (QEMU virt), kdump-tools armed and the capture kernel loaded."""
    files: dict[str, str | bytes] = {
        "etc/os-release": DEBIAN12_OS_RELEASE,
        "etc/debian_version": "12.8\n",
        "etc/default/kdump-tools": 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\n'
        'MAKEDUMP_ARGS="-c -d 31"\n',
        "etc/default/grub.d/kdump-tools.cfg": 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_'
        'DEFAULT crashkernel=384M-:256M"\n',
        "etc/sysctl.d/90-kdiag.conf": "kernel.unknown_nmi_panic = 1\nkernel.panic = 10\n"
        "kernel.panic_on_oops = 1\nkernel.sysrq = 1\n",
        "lib/systemd/system/kdump-tools.service": "[Unit]\nDescription=Kernel crash dump\n",
        "etc/systemd/system/multi-user.target.wants/kdump-tools.service": "",
        "usr/sbin/kexec": "#!/bin/sh\n",
        "usr/sbin/kdump-config": "#!/bin/sh\n",
        "usr/bin/makedumpfile": "#!/bin/sh\n",
        "proc/cmdline": "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-arm64 root=/dev/vda1 ro "
        "console=ttyAMA0 crashkernel=384M-:256M\n",
        "proc/sys/kernel/arch": "aarch64\n",
        "proc/meminfo": _meminfo(512 * 1024),
        "proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 125.00\nFeatures\t: fp asimd\n",
        "proc/iomem": "40000000-5fffffff : System RAM\n  50000000-5fffffff : Crash kernel\n",
        "proc/modules": "virtio_blk 28672 2 - Live 0xffff800001230000\n",
        "proc/kallsyms": kallsyms,
        "proc/device-tree/hypervisor/compatible": b"linux,kvm\0",
        "sys/kernel/kexec_crash_loaded": "1\n",
        "sys/kernel/kexec_crash_size": str(256 << 20) + "\n",
        **_sysctl_files(
            _base_sysctls(
                kernel__osrelease="6.1.0-28-arm64",
                kernel__unknown_nmi_panic="1",
                kernel__panic="10",
                kernel__panic_on_oops="1",
                kernel__sysrq="1",
            )
        ),
    }
    return write_tree(root, files, dirs=("var/crash",))


def debian12_arm64_text(root: Path) -> Path:
    """The trap worked around: /proc/kallsyms lists _text 64 KiB below _stext."""
    return _debian12_arm64(root, "ffff800008000000 T _text\n" + ARM64_KALLSYMS)


def debian12_arm64_notext(root: Path) -> Path:
    """The trap armed: no _text, yet kexec_crash_loaded = 1 (kexec -p exited 0)."""
    return _debian12_arm64(root, ARM64_KALLSYMS)


def debian12_arm64_hidden(root: Path) -> Path:
    """kallsyms as a non-root user sees it (kptr_restrict): every address 0."""
    hidden = "".join("0000000000000000" + line[16:] + "\n" for line in ARM64_KALLSYMS.splitlines())
    return _debian12_arm64(root, hidden)
