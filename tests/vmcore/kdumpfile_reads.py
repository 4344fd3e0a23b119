"""Read a dump through libkdumpfile: run by Debian's /usr/bin/python3 (python3-libkdumpfile).

Used by the oracle tests as a separate process, so the test venv needs no system packages:
``/usr/bin/python3 kdumpfile_reads.py DUMP < requests.json``.  Each request is
``["phys" | "virt", address, size]``; the answer, one per request in order, is the bytes as
hex, or ``"!"`` and the libkdumpfile exception's class name when the read fails.  The
answer also names the dump's architecture and release as libkdumpfile reads them.
"""

import json
import sys

import kdumpfile
from kdumpfile.exceptions import KDumpBaseException


def main() -> None:
    dump = kdumpfile.kdumpfile(sys.argv[1])
    dump.attr["addrxlat.ostype"] = "linux"  # virtual reads through the kernel's page tables
    spaces = {"phys": kdumpfile.KDUMP_KPHYSADDR, "virt": kdumpfile.KDUMP_KVADDR}
    answers = []
    for space, address, size in json.load(sys.stdin):
        try:
            answers.append(bytes(dump.read(spaces[space], address, size)).hex())
        except KDumpBaseException as exc:  # every libkdumpfile failure is an answer, named
            answers.append("!" + type(exc).__name__)
    facts = {"arch": str(dump.attr["arch.name"]), "release": str(dump.attr["linux.uts.release"])}
    print(json.dumps(facts | {"answers": answers}))


if __name__ == "__main__":
    main()
