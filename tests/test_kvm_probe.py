"""The KVM probe's answer is remembered only while what it depends on stays the same."""

from types import SimpleNamespace

import pytest

from bench.runtimes import qemu
from bench.runtimes.qemu import QemuRuntime, changed_conditions

HERE = {"qemu": "QEMU emulator version 7.2.22 (/usr/bin/qemu-system-x86_64, mtime 1)",
        "kernel": "6.18.44-fc-v657", "boot_id": "15b62711-ca4b-43e1-bd8b-0a4b56f62785"}


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A runtime whose probe boots nothing: it answers TCG, then KVM, and counts."""
    monkeypatch.setattr(qemu, "ACCEL_CACHE", tmp_path / "accel-probes.json")
    conditions = dict(HERE)
    monkeypatch.setattr(qemu, "kvm_conditions", lambda: dict(conditions))
    runtime = QemuRuntime("qemu", {"machine": "pc"}, SimpleNamespace(image=SimpleNamespace(key="k")))
    answers = iter([("tcg", "KVM guest did not boot: timeout"), ("kvm", "a KVM guest reached READY")])
    runtime.boots = 0

    def boot():
        runtime.boots += 1
        return next(answers)

    runtime._boot_with_kvm = boot
    return runtime, conditions


def test_a_failed_probe_is_remembered_while_nothing_changed(probe):
    runtime, _ = probe
    assert runtime._probe_kvm() == ("tcg", "KVM guest did not boot: timeout")
    accel, reason = runtime._probe_kvm()
    assert (accel, runtime.boots) == ("tcg", 1)
    assert reason.endswith("(remembered: same QEMU, kernel and boot)")


@pytest.mark.parametrize("change, why", [
    ({"qemu": "QEMU emulator version 8.0.0 (/usr/bin/qemu-system-x86_64, mtime 2)"}, "QEMU changed"),
    ({"kernel": "6.19.0"}, "host kernel changed"),
    ({"boot_id": "0c5e7a9e-3f7b-4b6e-9a51-8d2d8f1f6a10"}, "host rebooted"),
])
def test_a_failed_probe_is_retried_once_qemu_or_the_kernel_changed(probe, change, why):
    runtime, conditions = probe
    runtime._probe_kvm()
    conditions.update(change)
    assert runtime._probe_kvm() == ("kvm", f"a KVM guest reached READY (probed: {why})")
    assert runtime.boots == 2


def test_changed_conditions_in_words():
    assert changed_conditions(None, HERE) == ""
    assert changed_conditions(HERE, HERE) == ""
    assert changed_conditions(dict(HERE, kernel="x", boot_id="y"), HERE) == \
        "host kernel changed, host rebooted"
