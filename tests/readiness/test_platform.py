"""Hypervisor and cloud detection from DMI, sysfs and CPU hints (kdump-readiness.md §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kdiag.readiness import facts
from kdiag.readiness.platform import AZURE_ASSET_TAG, detect


def with_platform(tmp_path: Path, **changes: Any) -> facts.Facts:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    data = facts.read_root(tmp_path).to_json()  # a bare tree: no DMI, no hints
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section] = {**data[section], name: value}
        else:
            data[section] = value
    return facts.from_json(data)


@pytest.mark.parametrize(
    ("changes", "hypervisor", "cloud", "nmi"),
    [
        (
            {"dmi__sys_vendor": "Amazon EC2", "dmi__product_name": "m6i.large"},
            "kvm",
            "aws",
            "send-diagnostic-interrupt",
        ),
        (
            {"dmi__sys_vendor": "Amazon EC2", "dmi__product_name": "m5.metal"},
            "none",
            "aws",
            "send-diagnostic-interrupt",
        ),
        (
            {"hypervisor__sys_type": "xen", "hypervisor__sys_uuid": "ec2e1916-9099-7caf"},
            "xen",
            "aws",
            None,  # SendDiagnosticInterrupt is Nitro-only
        ),
        (
            {
                "dmi__sys_vendor": "Microsoft Corporation",
                "dmi__product_name": "Virtual Machine",
                "dmi__chassis_asset_tag": AZURE_ASSET_TAG,
            },
            "hyperv",
            "azure",
            "az serial-console send nmi",
        ),
        (
            {"dmi__sys_vendor": "Microsoft Corporation", "dmi__product_name": "Virtual Machine"},
            "hyperv",
            None,  # on-prem Hyper-V: no Azure tag
            "Debug-VM",
        ),
        (
            {"dmi__sys_vendor": "Google", "dmi__product_name": "Google Compute Engine"},
            "kvm",
            "gcp",
            "gcloud compute instances send-diagnostic-interrupt",
        ),
        (
            {"dmi__sys_vendor": "QEMU", "hypervisor__cpuinfo_flag": True},
            "qemu",
            None,
            "inject-nmi",
        ),
        ({"dmi__sys_vendor": "VMware, Inc."}, "vmware", None, "SendNMI"),
        ({"hypervisor__proc_xen": True}, "xen", None, "xl trigger"),
        ({"hv_modules": ["hv_vmbus"]}, "hyperv", None, "Debug-VM"),
        (
            {"dmi__sys_vendor": "Dell Inc.", "dmi__product_name": "PowerEdge R750"},
            "none",
            None,
            "ipmitool",
        ),
        ({"hypervisor__cpuinfo_flag": True}, "unknown", None, None),
        (
            {"dmi__chassis_asset_tag": "OracleCloud.com", "dmi__sys_vendor": "QEMU"},
            "qemu",
            "oci",
            "Send Diagnostic Interrupt",
        ),
    ],
)
def test_detect(
    tmp_path: Path,
    changes: dict[str, Any],
    hypervisor: str,
    cloud: str | None,
    nmi: str | None,
) -> None:
    plat = detect(with_platform(tmp_path, **changes))
    assert plat.hypervisor == hypervisor
    assert plat.cloud == cloud
    if nmi is None:
        assert plat.nmi_path is None
    else:
        assert plat.nmi_path is not None
        assert nmi in plat.nmi_path
