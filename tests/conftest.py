import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).parent.parent


@pytest.fixture
def golden() -> Path:
    return GOLDEN


def _engines_ready() -> str | None:
    """Why integration tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "integration tests need root (cgroups, chroot)"
    from bench.images import load_cached

    # mmdebstrap only where the guest image is not built yet (the lab carries it built)
    for tool in ("dockerd", "runsc", "qemu-system-x86_64", *(() if load_cached() else ("mmdebstrap",))):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"{tool} missing: run python -m bench.hostsetup (nox -s tests does)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "dockerd is not answering: run python -m bench.hostsetup"
    return None


def pytest_collection_modifyitems(config, items):
    why = _engines_ready()
    if why is None:
        return
    # Under CI a missing engine is a failure of the setup, not a reason to skip.
    if os.environ.get("CI"):
        raise pytest.UsageError(f"integration tests cannot run: {why}")
    skip = pytest.mark.skip(reason=why)
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
