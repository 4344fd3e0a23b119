from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdiag.errors import ConfigError
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


def test_inputs_hash_differs_per_architecture(tmp_path: Path) -> None:
    debs = [Deb("makedumpfile", "1:1.7.2-1", tmp_path / "m.deb")]
    collector = tmp_path / "collect.sh"
    assert build._inputs_hash(debs, collector, "arm64") != build._inputs_hash(debs, collector)


def _kernel_tree(tmp_path: Path, dep: str, builtin: str) -> Path:
    moddir = tmp_path / "lib" / "modules" / "6.1.0-1-arm64"
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text(dep)
    (moddir / "modules.builtin").write_text(builtin)
    return tmp_path


def test_module_order_puts_dependencies_first_and_leaves_builtins_out(tmp_path: Path) -> None:
    kroot = _kernel_tree(
        tmp_path,
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz "
        "kernel/lib/crc16.ko.xz\n"
        "kernel/fs/jbd2/jbd2.ko.xz:\n"
        "kernel/fs/mbcache.ko.xz:\n"
        "kernel/lib/crc16.ko.xz:\n"
        "kernel/drivers/block/virtio_blk.ko.xz:\n"
        "kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz: "
        "kernel/drivers/misc/pvpanic/pvpanic.ko.xz\n"
        "kernel/drivers/misc/pvpanic/pvpanic.ko.xz:\n",
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_mmio.ko\n",
    )
    order = build.module_order(kroot, "6.1.0-1-arm64", ("virtio_mmio", "virtio_blk", "ext4"))
    assert order == ["virtio_blk", "jbd2", "mbcache", "crc16", "ext4"]
    assert build.module_order(kroot, "6.1.0-1-arm64", ("pvpanic-mmio", "pvpanic")) == [
        "pvpanic",
        "pvpanic-mmio",
    ]


def test_module_order_names_a_module_the_kernel_lacks(tmp_path: Path) -> None:
    kroot = _kernel_tree(tmp_path, "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\n", "")
    with pytest.raises(ConfigError, match=r"module jbd2 is neither built in nor in modules\.dep"):
        build.module_order(kroot, "6.1.0-1-arm64", ("ext4",))
