"""Read a dump through libkdumpfile: run by Debian's /usr/bin/python3 (python3-libkdumpfile).

Used by the oracle tests as a separate process, so the test venv needs no system packages:
``/usr/bin/python3 kdumpfile_reads.py DUMP [--zero-excluded] < requests.json``.  Each request
is ``["phys" | "mphys" | "virt", address, size]`` (``mphys``: machine physical, read with no
address translation set up); the answer, one per request in order, is the bytes as hex, or
``"!"`` and the libkdumpfile exception's class name when the read fails.
``--zero-excluded`` sets libkdumpfile's ``file.zero_excluded``: pages the dump left out read
as zeros. The answer also holds the header fields as libkdumpfile reads them (``arch``,
``release``, ``page_size``, ``phys_base``, ``cpus``, ``vmcoreinfo``, ``uts``; a field it
cannot give is null). A dump libkdumpfile cannot open gives ``{"open_error": CLASS}``.
"""

import json
import sys

import kdumpfile
from kdumpfile.exceptions import KDumpBaseException


def _attr(dump: "kdumpfile.kdumpfile", key: str) -> object:
    try:
        value = dump.attr[key]
    except (KDumpBaseException, KeyError):  # libkdumpfile has no such attribute for this dump
        return None
    if isinstance(value, (int, str)):
        return value
    return bytes(value).decode("latin-1")  # a blob (VMCOREINFO)


def _facts(dump: "kdumpfile.kdumpfile") -> dict[str, object]:
    uts = ("sysname", "nodename", "release", "version", "machine", "domainname")
    return {
        "arch": _attr(dump, "arch.name"),
        "release": _attr(dump, "linux.uts.release"),
        "page_size": _attr(dump, "arch.page_size"),
        "phys_base": _attr(dump, "linux.phys_base"),
        "cpus": _attr(dump, "cpu.number"),
        "format": _attr(dump, "file.format"),
        "vmcoreinfo": _attr(dump, "linux.vmcoreinfo.raw"),
        "uts": {key: _attr(dump, f"linux.uts.{key}") for key in uts},
    }


def main() -> None:
    try:
        dump = kdumpfile.kdumpfile(sys.argv[1])
    except KDumpBaseException as exc:  # e.g. a flattened file, which 0.5.1 cannot open
        print(json.dumps({"open_error": type(exc).__name__}))
        return
    if "--zero-excluded" in sys.argv[2:]:
        dump.attr["file.zero_excluded"] = 1
    dump.attr["addrxlat.ostype"] = "linux"  # virtual reads through the kernel's page tables
    spaces = {
        "phys": kdumpfile.KDUMP_KPHYSADDR,
        "mphys": kdumpfile.KDUMP_MACHPHYSADDR,  # no address translation set up at all
        "virt": kdumpfile.KDUMP_KVADDR,
    }
    answers = []
    for space, address, size in json.load(sys.stdin):
        try:
            answers.append(bytes(dump.read(spaces[space], address, size)).hex())
        except KDumpBaseException as exc:  # every libkdumpfile failure is an answer, named
            answers.append("!" + type(exc).__name__)
    print(json.dumps(_facts(dump) | {"answers": answers}))


if __name__ == "__main__":
    main()
