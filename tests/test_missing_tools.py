"""A host without an engine or a tool: a clear error that names it and the fix."""

import pytest

from bench import images
from bench.errors import UserError
from bench.runtimes.qemu import QemuRuntime


def test_missing_qemu_names_the_packages(monkeypatch):
    monkeypatch.setattr("bench.runtimes.qemu.shutil.which", lambda name: None)
    runtime = QemuRuntime("qemu", {o: p.default for o, p in QemuRuntime.OPTIONS.items()}, None)
    with pytest.raises(UserError) as err:
        runtime.check()
    assert "qemu-system-x86_64" in str(err.value)
    assert err.value.fix == "apt-get install qemu-system-x86 qemu-utils"


def test_missing_image_tool_names_the_package():
    with pytest.raises(UserError) as err:
        images.run_step(["mmdebstrap-not-installed", "--version"], "build the guest root")
    assert "mmdebstrap-not-installed is not installed" in str(err.value)
    assert "apt-get install mmdebstrap" in err.value.fix


def test_no_docker_engine_names_the_socket(monkeypatch):
    from bench.runtimes.docker import docker_client

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(UserError) as err:
        docker_client()
    assert "unix:///nonexistent/docker.sock" in str(err.value)
    assert "dockerd" in err.value.fix or "docker.io" in err.value.fix


def test_doctor_says_which_runtimes_are_usable():
    from bench.doctor import Check, runtime_lines

    names = ("root", "cgroups", "guest image", "mke2fs", "docker", "runsc", "runc", "podman",
             "qemu-system-x86_64", "qemu-img", "kvm", "libvirt")
    results = [Check(n, n not in ("runsc", "kvm", "libvirt"), "") for n in names]
    lines = runtime_lines(results)
    assert "native: usable" in lines and "docker runc: usable" in lines and "oci runc: usable" in lines
    assert any(line.startswith("docker runsc (gVisor): NOT usable: needs runsc") for line in lines)
    assert any(line.startswith("oci runsc (gVisor): NOT usable: needs runsc") for line in lines)
    assert any("EMULATED" in line for line in lines)
    assert any(line.startswith("libvirt: NOT usable: needs libvirt") for line in lines)
