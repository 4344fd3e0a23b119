from __future__ import annotations

import os
from pathlib import Path

from kdiag.lab import build
from kdiag.lab.debs import Deb


def test_prune_keeps_the_newest_builds(tmp_path: Path) -> None:
    for i in range(6):
        d = tmp_path / f"b{i}"
        d.mkdir()
        (d / "build.json").write_text("{}")
        os.utime(d, (1000 + i, 1000 + i))
    (tmp_path / ".in-progress").mkdir()
    build._prune(tmp_path, keep=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".in-progress", "b2", "b3", "b4", "b5"]


def test_inputs_hash_follows_package_versions_and_the_collector(tmp_path: Path) -> None:
    debs = [Deb("makedumpfile", "1:1.7.2-1", tmp_path / "m.deb")]
    collector = tmp_path / "collect.sh"
    base = build._inputs_hash(debs, collector)
    assert build._inputs_hash(debs, collector) == base
    newer = [Deb("makedumpfile", "1:1.7.3-1", tmp_path / "m.deb")]
    assert build._inputs_hash(newer, collector) != base
    collector.write_text("#!/bin/sh\necho '{}'\n")
    with_collector = build._inputs_hash(debs, collector)
    assert with_collector != base
    collector.write_text("#!/bin/sh\necho '{\"a\": 1}'\n")
    assert build._inputs_hash(debs, collector) != with_collector
