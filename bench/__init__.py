"""cvbench: the same workload natively, in containers and in VMs, measured the same way."""

__version__ = "0.1.0"
