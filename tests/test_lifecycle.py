"""The one instance lifecycle: a Ctrl-C stays a Ctrl-C even when the release fails too."""

from dataclasses import dataclass

import pytest

from bench.cleanup import Cleanup
from bench.runtimes import Instance, Limits, RunContext, Runtime, Traits


@dataclass
class Stuck(Instance):
    """An instance whose release fails, as a libvirt partition still busy did."""

    def wait_gone(self, timeout: float) -> float:
        return 0.0

    def close(self) -> None:
        raise OSError(16, "Device or resource busy")


class StuckRuntime(Runtime):
    kind = "stuck"
    traits = Traits("process", shares_host_kernel=True)

    def check(self) -> None:
        pass

    def launch(self, command, limits, instance, needs=None, port=None) -> Stuck:
        inst = self._register(Stuck(name=instance, t_launch=0.0))
        with self._launching(inst):
            if command == "interrupt during launch":
                raise KeyboardInterrupt("signal SIGINT")
        return inst


@pytest.fixture
def runtime(tmp_path):
    return StuckRuntime("stuck", {}, RunContext("r", None, Cleanup(), tmp_path))


def test_a_ctrl_c_inside_the_instance_survives_a_failing_release(runtime):
    with pytest.raises(KeyboardInterrupt):
        with runtime.running("true", Limits(1, 64), "i1"):
            raise KeyboardInterrupt("signal SIGINT")
    assert len(runtime.context.cleanup) == 1  # still registered: the run's cleanup retries it
    assert runtime.context.cleanup.run_all() == ["stuck i1: [Errno 16] Device or resource busy"]


def test_a_ctrl_c_during_the_launch_survives_a_failing_release(runtime):
    with pytest.raises(KeyboardInterrupt):
        with runtime.running("interrupt during launch", Limits(1, 64), "i2"):
            pass
    assert len(runtime.context.cleanup) == 1


def test_a_failing_release_after_a_normal_run_fails_the_cell(runtime):
    with pytest.raises(OSError):
        with runtime.running("true", Limits(1, 64), "i3"):
            pass
