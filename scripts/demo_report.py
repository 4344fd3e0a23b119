"""Small formatters for scripts/demo.sh and scripts/demo-live.sh (over kdiag's --json output)."""

import json
import sys


def checks() -> None:
    for c in json.load(sys.stdin)["checks"]:
        print(f"  {c['status']:5} {c['id']}")


def key(field: str, path: str) -> None:
    with open(path) as f:
        print(json.load(f)["AccessKey"][field])


def last_dump() -> None:
    saved = json.load(sys.stdin).get("dumps_saved") or []
    print(saved[-1] if saved else "")


def audit() -> None:
    for r in json.load(sys.stdin)["AuditLog"]:
        who = (r["principal"] or "-").rsplit("/", 1)[-1]
        print(
            f"  {r['time'][11:23]}  {who:8} {r['action']:24} {r['instance_id'] or '-':20}"
            f" {r['decision'] or '-':6} {r['outcome'] or '-':9} {r['error_code'] or '':22}"
            f" {r['latency_ms']:7.1f} ms"
        )


def row(name: str, start: str, end: str, path: str) -> None:
    """One tab-separated line of the closing table from ``kdiag analyze --json``."""
    with open(path) as f:
        panic = json.load(f)["panic"]
    signature = panic["signature"] or f"({panic.get('no_signature_reason') or 'none'})"
    cells = [name, panic["class"], panic["signature_id"] or "-", signature]
    print("\t".join([*cells, f"{float(end) - float(start):.3f}s"]))


def table(path: str) -> None:
    """The closing table: one line per dump, columns padded, never cut."""
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    head = ["DUMP", "CLASS", "ID", "SIGNATURE", "TIME"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for cells in [head, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip())


COMMANDS = {
    "checks": checks,
    "key": key,
    "last-dump": last_dump,
    "audit": audit,
    "row": row,
    "table": table,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
