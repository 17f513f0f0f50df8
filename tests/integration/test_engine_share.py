"""dockerd's CPU over an instance's span is its own only where the engine ran nothing else
then: each record says how many other containers it ran (engine_other_containers), read
from the engine's event stream on the real dockerd."""

import threading

import docker
import pytest

from bench.images import ensure_image
from bench.runtimes.docker_events import ContainerActivity

from .helpers import cvbench, records

pytestmark = pytest.mark.integration

RUNC = """
name = "engine-share"
reps = 2
warmup = 0
[runtimes.runc]
kind = "docker"
[workloads.noop]
"""


def _others(tmp_path, name):
    scenario = tmp_path / "runc.toml"
    scenario.write_text(RUNC)
    result = cvbench("run", scenario, "--out", tmp_path / name, "--no-report", timeout=300)
    assert result.returncode == 0, result.stderr
    return [r["tags"]["engine_other_containers"] for r in records(tmp_path / name)
            if r["metric"] == "cpu.engine_seconds"]


def test_a_container_beside_the_run_is_counted_and_none_is_zero(tmp_path):
    assert _others(tmp_path, "alone") == [0, 0]
    client = docker.from_env()
    beside = client.containers.run(ensure_image().docker_tag, ["sleep", "120"], detach=True,
                                   network_mode="none", remove=True)
    try:
        assert _others(tmp_path, "beside") == [1, 1]  # running through every instance's span
    finally:
        beside.remove(force=True)


def test_closed_the_stream_leaves_no_thread():
    # The report drawn after a run forks its painter only where no other thread runs
    activity = ContainerActivity(docker.from_env())
    activity.close()
    assert [t for t in threading.enumerate() if t.name == "engine-events"] == []
