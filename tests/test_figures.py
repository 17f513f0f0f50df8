"""The startup phases figure stacks only phases that follow one another."""

import pytest

from bench.report.figures import REST_LABEL, phase_segments
from bench.results import load_frame


def medians(frame, runtime):
    mine = frame[(frame["runtime"] == runtime) & ~frame["warmup"] & frame["value"].notna()]
    return mine.groupby("metric")["value"].median().to_dict(), mine["kind"].iloc[0]


def test_gvisor_guest_uptime_is_not_stacked_on_docker_start(golden):
    # a recorded run: runsc's sandbox uptime at READY (0.19 s) passed inside docker start
    # (0.36 s); stacked after it, the bar ran to 0.57 s, past READY at 0.40 s
    found, kind = medians(load_frame(golden / "run_workloads"), "runsc")
    segments = phase_segments(found, kind)
    assert [label for label, _ in segments] == ["docker create", "docker start", REST_LABEL]
    assert sum(width for _, width in segments) == pytest.approx(found["startup.ready_s"])


@pytest.mark.parametrize("runtime", ["native", "runc", "runsc", "qemu"])
def test_every_bar_ends_at_ready(golden, runtime):
    found, kind = medians(load_frame(golden / "run_workloads"), runtime)
    assert sum(w for _, w in phase_segments(found, kind)) == pytest.approx(found["startup.ready_s"])


def test_a_vm_stacks_its_guest_boot_after_the_vmm():
    found = {"startup.overlay_s": 0.013, "startup.vmm_s": 0.078, "startup.guest_uptime_s": 8.89,
             "startup.ready_s": 9.471}
    assert phase_segments(found, "qemu") == [
        ("qcow2 overlay", 0.013), ("QEMU spawn + QMP", 0.078),
        ("guest boot to READY (guest clock)", 8.89), (REST_LABEL, pytest.approx(0.49))]


def test_each_bar_value_is_written_inside_its_panel(golden, tmp_path, monkeypatch):
    # The memory figure of a matrix run (workload cpu, 9 runtimes, 3 instances each; its
    # memory records alone): libvirt's PSS of 379.3 MiB was written over the panel's top
    from bench.report import figures
    from bench.report.html import complete

    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig) or path)
    figures.memory_figure(complete(load_frame(golden / "run_matrix_memory")), tmp_path / "m.png")
    (fig,) = drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        top = ax.get_window_extent(renderer).y1
        labels = {t.get_text(): t.get_window_extent(renderer).y1 for t in ax.texts}
        assert len(labels) == 9
        assert {text: y for text, y in labels.items() if y > top} == {}, ax.get_title()
