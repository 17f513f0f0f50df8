"""The lab: a VM that stands in for the host most users have (systemd, cgroup v2,
Docker's systemd cgroup driver, KVM), booted on this host under emulation.

QEMU's TCG with `-cpu max` exposes AMD SVM, so the lab gets a working nested
/dev/kvm even where the host's own KVM boots no stock guest. The lab runs cvbench
from the host's project tree (shared in over 9p) and writes its results there.
Its numbers show that a path works, never how fast it is.
"""
