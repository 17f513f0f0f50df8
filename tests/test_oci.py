"""The engine-less OCI runtime's bundle: what config.json asks of runc or runsc."""

import resource

from bench.runtimes import traits_of
from bench.runtimes.oci import CAPABILITIES, bundle_config


def test_bundle_runs_the_agent_below_the_instance_cgroup_with_dockers_privileges(tmp_path):
    config = bundle_config("sleep 1", "cvbench-x-1", "/cvbench/RUN/cvbench-x-1/container",
                           network=True, volume=None)
    assert config["process"]["args"] == ["/opt/cvbench/agent", "sleep 1"]
    assert config["linux"]["cgroupsPath"] == "/cvbench/RUN/cvbench-x-1/container"
    assert [n["type"] for n in config["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount",
                                                                 "network"]
    assert "resources" not in config["linux"]  # the instance's cgroup above holds the limits
    assert config["root"] == {"path": "rootfs", "readonly": False}  # an overlay of the image
    assert len(CAPABILITIES) == 14 and config["process"]["capabilities"]["bounding"] == CAPABILITIES
    # the open-file limits cvbench has: runc refuses a hard limit above the host's
    assert config["process"]["rlimits"][0]["hard"] == resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_host_network_has_no_network_namespace_and_a_volume_is_bound(tmp_path):
    config = bundle_config("true", "i", "/c", network=False, volume=tmp_path)
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]
    assert config["mounts"][-1] == {"destination": "/mnt/volume", "type": "bind",
                                    "source": str(tmp_path), "options": ["rbind", "rw"]}


def test_oci_runsc_is_a_sandbox_on_its_own_kernel():
    assert traits_of("oci", {"oci_runtime": "runc"}).shares_host_kernel
    runsc = traits_of("oci", {"oci_runtime": "runsc"})
    assert (runsc.isolation, runsc.shares_host_kernel, runsc.side) == ("sandbox", False, "container")
