"""Readiness benchmark: how long the facts collector and doctor take.

Times collect.sh under busybox sh, dash and bash, the Python reader, and the checks, on the
live machine and on the hand-made Azure CentOS 6 tree (median of N runs).

    .venv/bin/python bench/readiness.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.readiness.trees import azure_centos6

from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks

COLLECT = Path(facts.__file__).with_name("collect.sh")
SHELLS = {"busybox sh": ["busybox", "sh"], "dash": ["dash"], "bash": ["bash", "--posix"]}


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = azure_centos6(Path(tmp) / "azure-centos6")
        for label, root in (("live", None), ("azure-centos6 tree", tree)):
            row: dict[str, float] = {}
            for name, cmd in SHELLS.items():
                argv = [*cmd, str(COLLECT)] + ([str(root)] if root else [])
                row[f"collect.sh ({name})"] = _median(
                    lambda argv=argv: subprocess.run(argv, capture_output=True, check=True),
                    args.runs,
                )
            path = str(root) if root else "/"
            row["python read_root"] = _median(lambda p=path: facts.read_root(p), args.runs)
            loaded = facts.read_root(path)
            row["checks"] = _median(lambda f=loaded: run_checks(f, "all"), args.runs)
            results[label] = row
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for label, row in results.items():
        print(label)
        for name, seconds in row.items():
            print(f"  {name:24} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
