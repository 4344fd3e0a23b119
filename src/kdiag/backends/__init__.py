"""NMI backends: one module per hypervisor, BMC or cloud, behind :class:`Backend`.

Built-ins (``fake``, ``qmp``) and third-party plugins register in the ``kdiag.backends``
entry-point group and load through :func:`get_backend`.
"""

from kdiag.backends.base import (
    ENTRY_POINT_GROUP,
    NMI_ARCHITECTURES,
    Backend,
    BackendPool,
    InstanceState,
    NMIResult,
    Target,
    TargetSettings,
    available_backends,
    check_target,
    get_backend,
)

__all__ = (
    "ENTRY_POINT_GROUP",
    "NMI_ARCHITECTURES",
    "Backend",
    "BackendPool",
    "InstanceState",
    "NMIResult",
    "Target",
    "TargetSettings",
    "available_backends",
    "check_target",
    "get_backend",
)
