"""kdiag lab: real Linux guests under QEMU with kdump armed, built from Debian packages.

from kdiag.lab import Lab
lab = Lab()
guest = lab.up(name="t1", profile="default", memory="512M", cpus=2)
guest.wait_ready(300)
guest.inject_nmi()
vmcore = guest.wait_dump(300)
guest.wait_ready(300)
guest.down()
"""

from kdiag.lab.build import BuildInfo
from kdiag.lab.guest import Guest, Lab
from kdiag.lab.profiles import PROFILES, TRIGGERS, Profile

__all__ = ("PROFILES", "TRIGGERS", "BuildInfo", "Guest", "Lab", "Profile")
