"""Small formatters for scripts/demo-live.sh (reads kdiag's --json output on stdin)."""

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


if __name__ == "__main__":
    {"checks": checks, "key": key, "last-dump": last_dump, "audit": audit}[sys.argv[1]](
        *sys.argv[2:]
    )
