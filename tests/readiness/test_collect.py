"""collect.sh under busybox sh, dash and bash produces the same facts as the Python reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kdiag.readiness import facts
from tests.conftest import require_tool

COLLECT = Path(facts.__file__).with_name("collect.sh")
SHELLS = {"busybox": ["busybox", "sh"], "dash": ["dash"], "bash": ["bash", "--posix"]}


def run_collector(shell: str, root: Path | None, *, env_root: bool = False) -> dict[str, Any]:
    cmd = SHELLS[shell]
    require_tool(cmd[0])
    args = [*cmd, str(COLLECT)]
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    if root is not None:
        if env_root:
            env["KDIAG_ROOT"] = str(root)
        else:
            args.append(str(root))
    proc = subprocess.run(args, capture_output=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()
    data: dict[str, Any] = json.loads(proc.stdout.decode("utf-8", errors="replace"))
    return data


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """Free space changes between two reads of a live filesystem; everything else must not."""
    out = dict(data)
    out["dump_target"] = dict(data["dump_target"], free_kb=None)
    return out


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_collector_equals_python_reader(shell: str, any_tree: Path) -> None:
    sh_facts = facts.from_json(run_collector(shell, any_tree))
    py_facts = facts.read_root(any_tree)
    assert comparable(sh_facts.to_json()) == comparable(py_facts.to_json())
    free_sh = sh_facts.dump_target["free_kb"]
    free_py = py_facts.dump_target["free_kb"]
    assert isinstance(free_sh, int)
    assert isinstance(free_py, int)
    assert abs(free_sh - free_py) <= max(free_py // 100, 1024)


def test_root_from_environment(make_tree: Any) -> None:
    root = make_tree("azure-centos6")
    assert comparable(run_collector("busybox", root, env_root=True)) == comparable(
        run_collector("busybox", root)
    )


def test_escaping_round_trips_exact_bytes(make_tree: Any) -> None:
    root = make_tree("tricky")
    data = run_collector("busybox", root)
    original = (root / "etc/default/kdump-tools").read_bytes().decode()
    assert "\r\n" in original
    assert "\x01" in original
    assert data["files"]["/etc/default/kdump-tools"] == original
    assert data["cmdline"] == 'a="b c" \\x quote" \t tab'
    assert data["dmi"]["product_name"] == "Standard PC \\ (Q35)"
    assert data["dmi"]["board_asset_tag"] == ""
    assert data["files"]["/etc/default/grub.d/kdump-tools.cfg"] == ""
    # an absolute symlink inside the tree resolves inside the tree, not on the host
    assert data["files"]["/etc/sysctl.d/99-link.conf"] == "kernel.panic = 5\n"
    assert data["files"]['/etc/sysctl.d/20-we"ird\\name $x.conf'] == "kernel.sysrq = 1\n"
    assert data["hypervisor"]["cpuinfo_flag"] is False  # "hypervisor_x" is not the flag
    assert data["hypervisor"]["proc_xen"] is True
    assert data["hypervisor"]["device_tree"] == "linux,kvm"


def test_azure_tree_facts(make_tree: Any) -> None:
    data = run_collector("dash", make_tree("azure-centos6"))
    assert data["hv_modules"] == ["hv_netvsc", "hv_utils", "hv_storvsc", "hv_vmbus"]
    assert data["dmi"]["chassis_asset_tag"] == "7783-7084-3265-9085-8269-3286-77"
    assert data["sysctl"]["kernel.panic"] == "0"
    assert data["service"] == {"name": "kdump", "enabled": True, "active": None}
    assert data["iomem_crash_kernel"] == ["03000000-0affffff"]
    assert data["kernel_release"] == "2.6.32-754.35.1.el6.x86_64"
    assert data["tools"]["makedumpfile"] is True
    assert data["cpus"] == 2


def test_suse_dump_target_and_iomem(make_tree: Any) -> None:
    data = run_collector("bash", make_tree("suse15"))
    assert data["dump_target"]["path"] == "/var/crash"
    assert data["dump_target"]["probe"] == "/var/crash"
    assert data["iomem_crash_kernel"] == ["0f000000-1bcfffff", "a0000000-a47fffff"]
    assert data["efi"] is True


def test_live_system_matches() -> None:
    sh = comparable(run_collector("busybox", None))
    py = comparable(facts.read_root("/").to_json())
    # the collector runs with a minimal PATH; systemctl availability is the same either way
    assert sh == py


def test_print_collector_is_the_shipped_file() -> None:
    from kdiag.cli.main import run

    proc = subprocess.run(
        [".venv/bin/kdiag", "doctor", "--print-collector"],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout == COLLECT.read_bytes()
    assert callable(run)


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_root_with_spaces_and_glob_characters(shell: str, tmp_path: Path) -> None:
    from tests.readiness.trees import azure_centos6

    root = azure_centos6(tmp_path / "my root [1] *")
    sh_facts = run_collector(shell, root)
    assert comparable(sh_facts) == comparable(facts.read_root(root).to_json())
    assert "/etc/kdump.conf" in sh_facts["files"]
    assert sh_facts["service"]["enabled"] is True
