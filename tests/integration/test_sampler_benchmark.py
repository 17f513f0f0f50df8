"""What the 10 Hz sampler costs, measured with pytest-benchmark on real instances.

Nothing here asserts speed: the cost is reported (extra_info.core_percent_at_10hz)
and read from the benchmark table or --benchmark-json.
"""

import os
import subprocess
import time

import pytest

from bench.collect.cgroups import Cgroup
from bench.collect.processes import find_by_cmdline
from bench.collect.sampler import Sampler

pytestmark = pytest.mark.integration


@pytest.fixture
def native_instance():
    group = Cgroup.create(f"cvbench/bench-{os.getpid()}/idle", cpus=1, memory_bytes=256 * 2**20)
    proc = subprocess.Popen(group.enter_argv(["sleep", "120"]))
    time.sleep(0.2)
    yield group, []
    proc.kill()
    proc.wait()
    group.remove()
    Cgroup.create(f"cvbench/bench-{os.getpid()}").remove()


@pytest.fixture
def container_instance():
    name = f"cvbench-bench-{os.getpid()}"
    relpath = f"cvbench/bench-{os.getpid()}/{name}"
    group = Cgroup.create(relpath)
    from bench.images import ensure_image

    tag = f"cvbench/guest:{ensure_image().key}"
    container = subprocess.run(["docker", "run", "-d", "--name", name, "--label", "cvbench.run=bench",
                                "--cgroup-parent", "/" + relpath, tag, "sleep", "120"], check=True,
                               capture_output=True, text=True).stdout.strip()
    yield group, [find_by_cmdline("containerd-shim", container)]
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    group.remove()
    Cgroup.create(f"cvbench/bench-{os.getpid()}").remove()


def _bench_one_sample(benchmark, group, helpers):
    sampler = Sampler(group, lambda: helpers, hz=10)
    sample = benchmark(sampler.sample)
    assert sample is not None and sample.cgroup_working_set > 0 and sample.pss > 0
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["core_percent_at_10hz"] = round(mean * 10 * 100, 3)


def test_sampler_cost_native(benchmark, native_instance):
    _bench_one_sample(benchmark, *native_instance)


def test_sampler_cost_container_with_shim(benchmark, container_instance):
    _bench_one_sample(benchmark, *container_instance)
