"""Hypervisor and cloud detection from readiness facts, and the NMI path each one offers.

Rules (kdump-readiness.md §8): ``/sys/hypervisor/type`` and ``/proc/xen`` for Xen; the VMBus
and ``hv_*`` modules for Hyper-V; DMI prefixes as systemd's ``virt.c`` reads them; the
``hypervisor`` CPU flag as a last hint.  Cloud: Azure's chassis asset tag
(cloud-init ``ChassisAssetTag.AZURE_CLOUD``), ``Amazon EC2`` DMI or an ``ec2`` Xen UUID,
``Google`` DMI, Oracle's asset tag, OpenStack's product name.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdiag.readiness.facts import Facts

__all__ = ("AZURE_ASSET_TAG", "Platform", "detect")

AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"

#: DMI prefixes (sys_vendor, product_name, board_vendor, bios_vendor) -> hypervisor.
_DMI_PREFIXES = (
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "kvm"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "virtualbox"),
    ("VirtualBox", "virtualbox"),
    ("Xen", "xen"),
    ("Bochs", "qemu"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "hyperv"),
    ("Google", "kvm"),
)


@dataclass(frozen=True)
class Platform:
    """Where the machine runs, and how an external NMI reaches it."""

    hypervisor: str  # kvm, qemu, xen, hyperv, vmware, virtualbox, bhyve, parallels, none, unknown
    cloud: str | None  # aws, azure, gcp, oci, openstack or None
    evidence: tuple[str, ...]
    nmi_path: str | None  # how to send the NMI, or None when no path is known
    nmi_note: str  # caveats (Nitro only, serial console prerequisites, ...)

    @property
    def is_hyperv(self) -> bool:
        return self.hypervisor == "hyperv" or self.cloud == "azure"

    def to_json(self) -> dict[str, object]:
        return {
            "hypervisor": self.hypervisor,
            "cloud": self.cloud,
            "evidence": list(self.evidence),
            "nmi_path": self.nmi_path,
            "nmi_note": self.nmi_note,
        }


def _dmi(facts: Facts, name: str) -> str:
    value = facts.dmi.get(name)
    return value.strip() if isinstance(value, str) else ""


def _hypervisor(facts: Facts, evidence: list[str]) -> str:
    hv = facts.hypervisor
    sys_type = hv.get("sys_type")
    if sys_type == "xen" or hv.get("proc_xen"):
        evidence.append("/sys/hypervisor/type or /proc/xen: xen")
        return "xen"
    if hv.get("vmbus") or facts.hv_modules:
        evidence.append(f"VMBus/Hyper-V modules: {', '.join(facts.hv_modules) or '/sys/bus/vmbus'}")
        return "hyperv"
    vendor = _dmi(facts, "sys_vendor")
    product = _dmi(facts, "product_name")
    if vendor == "Microsoft Corporation" and product == "Virtual Machine":
        evidence.append("DMI: Microsoft Corporation / Virtual Machine")
        return "hyperv"
    if vendor == "Amazon EC2" and product.endswith(".metal"):
        evidence.append(f"DMI: Amazon EC2 bare metal ({product})")
        return "none"
    for name in ("sys_vendor", "product_name", "board_vendor", "bios_vendor"):
        value = _dmi(facts, name)
        for prefix, result in _DMI_PREFIXES:
            if value.startswith(prefix):
                evidence.append(f"DMI {name}: {value}")
                return result
    dt = hv.get("device_tree")
    if isinstance(dt, str) and dt:
        evidence.append(f"device tree hypervisor: {dt}")
        return "kvm" if "kvm" in dt.lower() else "xen" if "xen" in dt.lower() else "unknown"
    if hv.get("cpuinfo_flag"):
        evidence.append("/proc/cpuinfo: hypervisor flag, vendor not identified")
        return "unknown"
    if vendor or product:
        evidence.append(f"DMI: {vendor} / {product}, no hypervisor flag")
        return "none"
    evidence.append("no hypervisor signal (no DMI, no CPU flag)")
    return "unknown"


def _cloud(facts: Facts, evidence: list[str]) -> str | None:
    tag = _dmi(facts, "chassis_asset_tag")
    vendor = _dmi(facts, "sys_vendor")
    product = _dmi(facts, "product_name")
    if tag == AZURE_ASSET_TAG:
        evidence.append(f"chassis asset tag {tag}: Azure")
        return "azure"
    uuid = facts.hypervisor.get("sys_uuid")
    if vendor == "Amazon EC2" or (isinstance(uuid, str) and uuid.lower().startswith("ec2")):
        evidence.append("DMI Amazon EC2 or ec2 Xen UUID: AWS")
        return "aws"
    if vendor.startswith("Google") or product.startswith("Google Compute Engine"):
        evidence.append("DMI Google: GCP")
        return "gcp"
    if tag == "OracleCloud.com":
        evidence.append("chassis asset tag OracleCloud.com: OCI")
        return "oci"
    if product.startswith("OpenStack"):
        evidence.append("DMI OpenStack")
        return "openstack"
    return None


def _nmi_path(hypervisor: str, cloud: str | None, facts: Facts) -> tuple[str | None, str]:
    if cloud == "aws":
        if hypervisor == "xen":
            return None, "SendDiagnosticInterrupt works on Nitro instances only; this is Xen"
        return (
            "aws ec2 send-diagnostic-interrupt --instance-id ID (or kdiag send)",
            "Nitro instance types; the instance must be running",
        )
    if cloud == "azure":
        return (
            "az serial-console send nmi -g RG -n VM",
            "needs boot diagnostics, serial console enabled for the subscription, Contributor",
        )
    if cloud == "gcp":
        return (
            "gcloud compute instances send-diagnostic-interrupt VM --zone ZONE",
            "needs compute.instances.sendDiagnosticInterrupt; fails during live migration",
        )
    if cloud == "oci":
        return "OCI console: Send Diagnostic Interrupt", "IAM manage instance-family"
    if cloud == "openstack":
        return "openstack server dump create SERVER", "Nova microversion >= 2.17; libvirt driver"
    paths = {
        "kvm": ("virsh inject-nmi DOMAIN, or QMP inject-nmi (kdiag backend qmp)", ""),
        "qemu": ("QMP inject-nmi (kdiag backend qmp) or virsh inject-nmi", ""),
        "xen": ("xl trigger DOMID nmi", "from dom0"),
        "hyperv": ("Debug-VM -Name VM -InjectNonMaskableInterrupt", "on the Hyper-V host"),
        "vmware": ("vSphere VirtualMachine.SendNMI", "privilege VirtualMachine.Interact"),
        "virtualbox": ("VBoxManage debugvm VM injectnmi", ""),
        "none": ("BMC: ipmitool chassis power diag, or Redfish ResetType Nmi", "bare metal"),
    }
    if hypervisor in paths:
        return paths[hypervisor]
    return None, "hypervisor not identified; no known NMI path"


def detect(facts: Facts) -> Platform:
    """The platform the facts describe."""
    evidence: list[str] = []
    hypervisor = _hypervisor(facts, evidence)
    cloud = _cloud(facts, evidence)
    if cloud == "azure" and hypervisor == "unknown":
        hypervisor = "hyperv"
    path, note = _nmi_path(hypervisor, cloud, facts)
    return Platform(hypervisor, cloud, tuple(evidence), path, note)
