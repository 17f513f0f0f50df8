"""scenarios/matrix.toml on the real engines, workload by workload: every workload in
native, runc, runsc, podman, oci-runc, oci-runsc and qemu leaves its main metric, or an
error that says why, on both network paths for the serving ones."""

import pytest

from .helpers import records

pytestmark = pytest.mark.integration
RUNTIMES = ("native", "runc", "runsc", "podman", "oci-runc", "oci-runsc", "qemu")
# Guest-only workloads: every runtime can run them, so each must have a value.
GUEST_ONLY = ("cpu", "memory", "syscall", "fork", "disk", "disk-volume")
SERVING = ("net", "net-direct", "redis", "rr", "rr-direct")


@pytest.fixture(scope="module")
def run(smoke):
    out, _ = smoke
    return out, records(out)


def main_records(rows, cell):
    mine = [r for r in rows if r["cell"] == cell]
    assert mine, f"no record at all for {cell}"
    main = mine[0]["tags"].get("main_metric")
    return [r for r in mine if r["metric"] == main]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("workload", GUEST_ONLY)
def test_guest_only_workload_has_its_main_metric(run, workload, runtime):
    _, rows = run
    for main in main_records(rows, f"{workload}@{runtime}"):  # cpu: warm-up and 3 reps
        assert main["value"] is not None and main["value"] > 0, main.get("error")


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("workload", SERVING)
def test_serving_workload_has_a_value_or_says_why(run, workload, runtime):
    _, rows = run
    cell = [r for r in rows if r["cell"] == f"{workload}@{runtime}"]
    workload_rows = [r for r in cell if r["metric"].startswith("workload.")
                     and r["metric"] != "workload.exit_code"]
    assert workload_rows, f"{workload}@{runtime} left no workload record"
    for r in workload_rows:
        assert (r["value"] is not None) != bool(r.get("error")), r  # a value, or why not
    assert any(r["value"] for r in workload_rows), [r.get("error") for r in workload_rows]
    assert cell[0]["tags"]["net_path"]  # which network path this runtime used


def test_disk_says_how_it_wrote(run):
    _, rows = run
    for runtime in RUNTIMES:
        main = main_records(rows, f"disk@{runtime}")[0]
        assert main["tags"]["disk_backing"] and "direct_io" in main["tags"], main["tags"]


def test_disk_records_name_the_cache_and_the_platform(run):
    """The VM's disks bypass the host page cache for disk workloads (disk_cache auto), and
    every gVisor record names its platform as the engine registered it."""
    import docker

    from bench.runtimes.gvisor import platform_of

    _, rows = run
    registered = docker.from_env().info()["Runtimes"]
    for workload in ("disk", "disk-volume"):
        main = main_records(rows, f"{workload}@qemu")[0]
        assert main["tags"]["disk_cache"] == "none" and main["tags"]["host_page_cache"] is False
    assert {r["tags"]["disk_cache"] for r in rows if r["cell"] == "cpu@qemu"} == {"writeback"}
    runsc = [r for r in rows if r["runtime"] == "runsc" and r["value"] is not None]
    assert {r["tags"]["gvisor_platform"] for r in runsc} == \
        {platform_of(registered[r["tags"]["oci_runtime"]]) for r in runsc}


def test_kernel_sharing_by_boot_id(run):
    from bench.results import host_boot_id

    _, rows = run
    shared = {r["runtime"]: (r["value"], r["tags"]["boot_id"]) for r in rows
              if r["cell"] == f"noop@{r['runtime']}" and r["metric"] == "kernel.shared_with_host"}
    assert shared["native"] == shared["runc"] == shared["podman"] == shared["oci-runc"] \
        == (1.0, host_boot_id())
    assert shared["runsc"][0] == shared["oci-runsc"][0] == shared["qemu"][0] == 0.0
    assert host_boot_id() not in (shared["runsc"][1], shared["oci-runsc"][1], shared["qemu"][1])


def test_a_vm_runs_what_measures_no_boot_restored_and_boots_the_rest(run):
    _, rows = run
    starts = {(r["workload"], r["runtime"]): r["tags"].get("start", "cold") for r in rows}
    for workload in ("memory", "syscall", "fork", "disk"):
        assert starts[(workload, "qemu")] == "warm"
        assert starts[(workload, "qemu-microvm-fast")] == "cold"  # root on NVMe: no migration
    # a server in the guest: restored with its network, user networking or a tap link
    for workload in ("net", "redis", "rr", "net-direct", "rr-direct"):
        assert starts[(workload, "qemu")] == "warm"
    # the startup probe, cpu (the footprint where no idle runs), a volume of its own
    for workload in ("noop", "cpu", "disk-volume"):
        assert starts[(workload, "qemu")] == "cold"


def test_cpu_cost_per_kevent_is_derived(run):
    _, rows = run
    for runtime in RUNTIMES:
        derived = [r for r in rows if r["cell"] == f"cpu@{runtime}"
                   and r["metric"] == "workload.cpu_s_per_kevent"]
        assert len(derived) == 4  # one per instance: the warm-up and 3 reps
        assert all(r["value"] > 0 and r["unit"] == "s" for r in derived)


def test_network_paths_differ_where_the_runtime_has_two(run):
    _, rows = run

    def path(cell):
        return next(r["tags"]["net_path"] for r in rows if r["cell"] == cell)

    for runtime in ("runc", "qemu"):
        assert path(f"rr@{runtime}") != path(f"rr-direct@{runtime}")
    assert "host network" in path("rr-direct@runc") and "tap" in path("rr-direct@qemu")
    assert path("rr@native") == path("rr-direct@native") == "host loopback"


# The VMs whose paths into the guest are not all there: what they run has its value, the
# rest is skipped with the reason (the fast microVM: no initrd to load virtio-net and
# virtio-blk for a second disk). libvirt runs startup and cpu only in the matrix.
CAN_RUN = {"libvirt": ("cpu",), "qemu-microvm-fast": ("cpu", "memory", "syscall", "fork", "disk")}
ASKED = {"libvirt": ("cpu",), "qemu-microvm-fast": GUEST_ONLY + SERVING}


@pytest.mark.parametrize("runtime", CAN_RUN)
def test_a_vm_runs_what_it_can_and_says_why_not_the_rest(run, runtime):
    _, rows = run
    for workload in ASKED[runtime]:
        for main in main_records(rows, f"{workload}@{runtime}"):
            if workload in CAN_RUN[runtime]:
                assert main["value"] is not None and main["value"] > 0, (workload, main.get("error"))
            else:
                assert main["value"] is None and main["error"].startswith("skipped"), (workload, main)
