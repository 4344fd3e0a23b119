"""Read Linux crash dumps with the standard library: no vmlinux, no debuginfo.

>>> with kdiag.vmcore.open("vmcore") as dump:        # doctest: +SKIP
...     print(dump.format, dump.utsname.release)
...     print(kdiag.vmcore.format_dmesg(dump.kernel_log()), end="")

Formats: ELF (``/proc/vmcore``, ``makedumpfile -E``, QEMU ``elf``), makedumpfile's
kdump-compressed format (zlib, LZO, snappy, zstd), the flattened stream (``makedumpfile -F``,
QEMU ``kdump-*``), any of them as a zstd, gzip, xz or bzip2 file or from a stream
(:func:`open_stream`).  See ``docs/vmcore.md``.
"""

from kdiag.vmcore.dump import Dump, ProgressFn, open, open_source, open_stream
from kdiag.vmcore.model import CpuState, LogRecord, Utsname
from kdiag.vmcore.printk import format_dmesg
from kdiag.vmcore.vmcoreinfo import VmcoreInfo

__all__ = (
    "CpuState",
    "Dump",
    "LogRecord",
    "ProgressFn",
    "Utsname",
    "VmcoreInfo",
    "format_dmesg",
    "open",
    "open_source",
    "open_stream",
)
