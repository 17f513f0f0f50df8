"""Verdicts on the claims, on the recorded smoke run (containers vs a VM under TCG) and on
small synthetic frames where the answer is known."""

import json

import pandas as pd
import pytest

from bench.report import verdicts
from bench.report.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    INDICATIVE,
    MIN_N_CLAIM,
    NOT_MEASURED,
    SUPPORTED,
)
from bench.results import load_frame

HOST_KERNEL = "6.18.44-host"


@pytest.fixture
def smoke(golden):
    directory = golden / "run_smoke"
    environment = json.loads((directory / "environment.json").read_text())
    return load_frame(directory), environment


def by_claim(found: list[verdicts.Verdict]) -> dict[str, verdicts.Verdict]:
    keys = ["startup", "memory", "cpu", "kernel", "allocation", "isolation", "storage"]
    return dict(zip(keys, found, strict=True))


def rows(runtime, kind, metric, values, workload="noop", **tags):
    """Records of one cell as load_frame gives them, tags flattened to tag.<name>."""
    return [{"run": "r", "scenario": "s", "cell": f"{workload}@{runtime}", "workload": workload,
             "runtime": runtime, "kind": kind, "rep": rep, "warmup": False, "metric": metric,
             "value": value, "unit": "", "t": 0.0, "image": "i", "error": None,
             **{f"tag.{name}": v for name, v in tags.items()}}
            for rep, value in enumerate(values)]


def test_the_recorded_smoke_run_is_too_small_for_any_claim(smoke):
    """3 repetitions per cell and one VM instance that came through: too few for an interval
    on the VM side, and far too few for a claim; the VM was emulated."""
    frame, environment = smoke
    found = by_claim(verdicts.all_verdicts(frame, environment))
    for claim in ("startup", "memory", "cpu"):
        verdict = found[claim]
        assert verdict.status == INCONCLUSIVE, verdict
        assert verdict.reason.startswith("n too small: 1 measured instance(s) on a side"), verdict
        assert "too few values for a 95% CI of the ratio for" in verdict.reason
        assert all(" n < 3; medians" in c.describe() for c in verdict.comparisons)
        assert verdict.reason.endswith(verdicts.EMULATED_NOTE)
        assert all("qemu (emulated)" == c.reference for c in verdict.comparisons)
    startup = found["startup"]
    assert {c.runtime for c in startup.comparisons} == {"runc", "runsc"}
    assert {c.workload for c in startup.comparisons} == {"noop"}
    assert [(c.n, c.reference_n) for c in startup.comparisons] == [(3, 1), (3, 1)]
    assert "PSS" in found["memory"].reason  # says which memory view
    # The recorded run predates kernel.shared_with_host and has no scenario for the rest
    for claim in ("kernel", "allocation", "isolation", "storage"):
        assert found[claim].status == NOT_MEASURED
    assert "scenarios/isolation.toml" in found["isolation"].reason
    assert "scenarios/storage.toml" in found["storage"].reason
    assert "scenarios/allocation.toml" in found["allocation"].reason


STARTUP_RUNC = [0.25, 0.27, 0.24, 0.26, 0.25, 0.28]
STARTUP_VM = [1.1, 1.2, 1.05, 1.15, 1.1, 1.12]


def test_five_instances_a_side_on_kvm_support_a_claim():
    frame = pd.DataFrame(rows("runc", "docker", "startup.ready_s", STARTUP_RUNC[:MIN_N_CLAIM])
                         + rows("qemu", "qemu", "startup.ready_s", STARTUP_VM[:MIN_N_CLAIM]))
    verdict = verdicts.startup_verdict(frame, emulated=set())
    assert verdict.status == SUPPORTED, verdict
    (comparison,) = verdict.comparisons
    assert comparison.ratio.ci_high < 1 and (comparison.n, comparison.reference_n) == (5, 5)


def test_four_instances_a_side_are_too_few_whatever_the_interval():
    frame = pd.DataFrame(rows("runc", "docker", "startup.ready_s", STARTUP_RUNC[:4])
                         + rows("qemu", "qemu", "startup.ready_s", STARTUP_VM))
    verdict = verdicts.startup_verdict(frame, emulated=set())
    assert verdict.comparisons[0].ratio.ci_high < 1  # the interval alone would say supported
    assert verdict.status == INCONCLUSIVE
    assert verdict.reason.startswith("n too small: 4 measured instance(s)")


def test_an_emulated_vm_makes_a_claim_indicative_at_most():
    frame = pd.DataFrame(rows("runc", "docker", "startup.ready_s", STARTUP_RUNC)
                         + rows("qemu", "qemu", "startup.ready_s", STARTUP_VM))
    verdict = verdicts.startup_verdict(frame, emulated={"qemu"})
    assert verdict.status == INDICATIVE
    assert verdict.reason.startswith("supported on an emulated VM only: ")
    assert verdict.reason.endswith(verdicts.EMULATED_NOTE)
    reversed_ = pd.DataFrame(rows("runc", "docker", "startup.ready_s", STARTUP_VM)
                             + rows("qemu", "qemu", "startup.ready_s", STARTUP_RUNC))
    verdict = verdicts.startup_verdict(reversed_, emulated={"qemu"})
    assert verdict.status == INDICATIVE
    assert verdict.reason.startswith("contradicted on an emulated VM only: ")


def test_without_the_vm_nothing_is_measured(smoke):
    frame, environment = smoke
    found = by_claim(verdicts.all_verdicts(frame[frame["kind"] != "qemu"], environment))
    for claim in ("startup", "memory", "cpu"):
        assert found[claim].status == NOT_MEASURED
        assert "no VM value" in found[claim].reason
        assert "scenarios/smoke.toml" in found[claim].reason
        assert "emulat" not in found[claim].reason


def test_overlapping_samples_are_inconclusive():
    frame = pd.DataFrame(rows("runc", "docker", "startup.ready_s", [1.0, 1.2, 0.9, 1.1, 1.05])
                         + rows("qemu", "qemu", "startup.ready_s", [1.1, 0.95, 1.15, 1.0, 1.2]))
    verdict = verdicts.startup_verdict(frame, emulated=set())
    assert verdict.status == INCONCLUSIVE
    (comparison,) = verdict.comparisons
    assert comparison.ratio.ci_low < 1 < comparison.ratio.ci_high
    assert verdict.reason.startswith("measured, but the 95% CI of the ratio includes 1")
    assert "emulat" not in verdict.reason


def test_a_container_slower_than_the_vm_contradicts():
    frame = pd.DataFrame(rows("runc", "docker", "cpu.seconds", [2.0, 2.1, 1.9, 2.05, 2.0])
                         + rows("qemu", "qemu", "cpu.seconds", [1.0, 1.1, 0.9, 1.05, 1.0]))
    assert verdicts.cpu_verdict(frame, emulated=set()).status == CONTRADICTED


def test_a_container_is_charged_its_engine_cpu():
    """0.04 s in the container's cgroup looks cheaper than a 0.3 s VM; with the 0.3 s its
    engine spent for it the container costs more, and an instance beside others says so."""
    cgroup = [0.040, 0.041, 0.039, 0.042, 0.040]
    total = [0.34, 0.35, 0.33, 0.36, 0.34]
    vm = [0.30, 0.29, 0.31, 0.30, 0.30]
    old = pd.DataFrame(rows("runc", "docker", "cpu.seconds", cgroup)
                       + rows("qemu", "qemu", "cpu.seconds", vm))
    verdict = verdicts.cpu_verdict(old, emulated=set())
    assert verdict.status == SUPPORTED and "not recorded" in verdict.notes[-1]
    frame = pd.DataFrame(rows("runc", "docker", "cpu.seconds", cgroup)
                         + rows("runc", "docker", "cpu.total_seconds", total[:4],
                                engine_other_containers=0)
                         + rows("runc", "docker", "cpu.total_seconds", total[4:],
                                engine_other_containers=2)
                         + rows("qemu", "qemu", "cpu.seconds", vm)
                         + rows("qemu", "qemu", "cpu.total_seconds", vm))
    verdict = verdicts.cpu_verdict(frame, emulated=set())
    assert verdict.status == CONTRADICTED, verdict
    assert verdict.comparisons[0].metric == "cpu.total_seconds"
    assert verdict.notes == ("runc: in 1 of 5 instances the engine also ran other containers "
                             "(its CPU is not this instance's alone)",)


def test_startup_pools_workloads_when_there_is_no_noop():
    frame = pd.DataFrame(rows("runc", "docker", "startup.ready_s", [0.2, 0.21, 0.2], "cpu")
                         + rows("runc", "docker", "startup.ready_s", [0.22, 0.2], "idle")
                         + rows("qemu", "qemu", "startup.ready_s", [5.0, 5.2, 5.1, 5.0, 5.3], "cpu"))
    verdict = verdicts.startup_verdict(frame, emulated=set())
    assert verdict.status == SUPPORTED
    assert verdict.comparisons[0].n == 5 and "pooled" in verdict.comparisons[0].workload


def kernel_frame(runsc_value: float = 0.0, qemu_value: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        rows("native", "native", "kernel.shared_with_host", [1.0] * 5,
             kernel_release=HOST_KERNEL)
        + rows("runc", "docker", "kernel.shared_with_host", [1.0] * 5, oci_runtime="runc",
               kernel_release=HOST_KERNEL)
        + rows("runsc", "docker", "kernel.shared_with_host", [runsc_value] * 5,
               oci_runtime="runsc", kernel_release="4.4.0")
        + rows("qemu", "qemu", "kernel.shared_with_host", [qemu_value] * 5,
               kernel_release="6.1.0-56-cloud-amd64"))


def test_kernel_claim_supported_when_each_runtime_saw_the_expected_kernel():
    verdict = verdicts.kernel_verdict(kernel_frame(), {"host": {"kernel": HOST_KERNEL}})
    assert verdict.status == SUPPORTED
    notes = "\n".join(verdict.notes)
    assert f"runc: host kernel in 5 instances, kernel {HOST_KERNEL}" in notes
    assert "runsc: own kernel in 5 instances, kernel 4.4.0" in notes
    assert "qemu: own kernel" in notes and "6.1.0-56-cloud-amd64" in notes
    assert f"host kernel: {HOST_KERNEL}" in notes


def test_kernel_claim_needs_every_class_it_names_and_enough_instances():
    frame = kernel_frame()
    for runtime, named in (("qemu", "VM"), ("runsc", "gVisor"), ("runc", "container")):
        verdict = verdicts.kernel_verdict(frame[frame["runtime"] != runtime], {})
        assert verdict.status == NOT_MEASURED
        assert verdict.reason.startswith(f"not measured: this run has no {named} runtime")
    few = verdicts.kernel_verdict(frame[frame["rep"] < 4], {})
    assert few.status == INCONCLUSIVE and few.reason.startswith("n too small: 4 measured")
    emulated = verdicts.kernel_verdict(frame, {}, emulated={"qemu"})
    assert emulated.status == INDICATIVE


def test_kernel_claim_contradicted_by_a_vm_or_gvisor_on_the_host_kernel():
    for frame, culprit in ((kernel_frame(qemu_value=1.0), "qemu"),
                           (kernel_frame(runsc_value=1.0), "runsc")):
        verdict = verdicts.kernel_verdict(frame, {})
        assert verdict.status == CONTRADICTED
        assert verdict.reason.startswith(culprit)


def test_kernel_claim_contradicted_by_a_runc_container_on_its_own_kernel():
    frame = kernel_frame()
    frame.loc[(frame["runtime"] == "runc") & (frame["rep"] == 0), "value"] = 0.0
    verdict = verdicts.kernel_verdict(frame, {})
    assert verdict.status == CONTRADICTED
    assert any("runc: host kernel in some instances" in note for note in verdict.notes)


def test_oci_runtime_can_come_from_the_environment():
    frame = kernel_frame().drop(columns="tag.oci_runtime")
    environment = {"runtimes": {"runsc": {"kind": "docker", "oci_runtime": "runsc"}}}
    assert verdicts.kernel_verdict(frame, environment).status == SUPPORTED


def test_allocation_and_isolation_on_synthetic_scenarios():
    pss = "mem.pss_bytes"
    allocation = pd.DataFrame(
        rows("runc", "docker", pss, [20e6, 21e6, 20.5e6, 20.1e6, 20.6e6], "idle", memory_mib=256)
        + rows("runc", "docker", pss, [20.2e6, 20.8e6, 20.4e6, 20.3e6, 20.7e6], "idle",
               memory_mib=1024)
        + rows("qemu", "qemu", pss, [300e6, 305e6, 302e6, 301e6, 304e6], "idle", memory_mib=256)
        + rows("qemu", "qemu", pss, [1000e6, 1010e6, 1005e6, 1002e6, 1008e6], "idle",
               memory_mib=1024))
    verdict = verdicts.allocation_verdict(allocation, emulated={"qemu"})
    assert verdict.status == INDICATIVE, verdict
    assert verdicts.allocation_verdict(allocation, emulated=set()).status == SUPPORTED
    assert "emulat" in verdict.reason and any("MiB of PSS per MiB given" in n
                                              for n in verdict.notes)

    metric = "workload.events_per_s"

    def victim(runtime, kind, alone, beside):
        return (rows(runtime, kind, metric, alone, "cpu", aggressor="none", main_metric=metric)
                + rows(runtime, kind, metric, beside, "cpu", aggressor="cpu", main_metric=metric))

    alone = [1000, 1010, 990, 1005, 995]
    isolation = pd.DataFrame(victim("runc", "docker", alone, [600, 610, 590, 605, 595])
                             + victim("qemu", "qemu", alone, [950, 960, 955, 952, 958]))
    verdict = verdicts.isolation_verdict(isolation, emulated={"qemu"})
    assert verdict.status == INDICATIVE, verdict
    assert verdict.notes == ("VM lost less: cpu beside cpu: qemu (emulated) 5% [4, 5] vs runc 40% "
                             "[39, 41] lost",)
    assert verdicts.isolation_verdict(isolation, emulated=set()).status == SUPPORTED
    reversed_ = pd.DataFrame(victim("runc", "docker", alone, [950, 960, 955, 952, 958])
                             + victim("qemu", "qemu", alone, [600, 610, 590, 605, 595]))
    assert verdicts.isolation_verdict(reversed_, emulated=set()).status == CONTRADICTED
    three = pd.DataFrame(victim("runc", "docker", alone[:3], [600, 610, 590])
                         + victim("qemu", "qemu", alone[:3], [950, 960, 955]))
    assert verdicts.isolation_verdict(three, emulated=set()).status == INCONCLUSIVE


def test_verdicts_table_has_one_row_per_claim(smoke):
    frame, environment = smoke
    table = verdicts.table(verdicts.all_verdicts(frame, environment))
    assert list(table.columns) == ["claim", "verdict", "reason", "numbers"]
    assert len(table) == 7
