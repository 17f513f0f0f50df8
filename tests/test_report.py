"""The report on a real smoke run (tests/golden/run_smoke: native, runc, runsc and qemu
under TCG, where some qemu instances failed), and on damaged or partial copies of it."""

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from bench.report import build_report, figures
from bench.report.html import likely_causes
from bench.results import load_frame, read_records

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(golden, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(golden / "run_smoke", target)
    return target


def records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "records.jsonl").read_text().splitlines()]


def write_records(directory: Path, rows: list[dict]) -> None:
    (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def edit_environment(directory: Path, **changes) -> None:
    path = directory / "environment.json"
    environment = json.loads(path.read_text())
    environment.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del environment[key]
    path.write_text(json.dumps(environment))


def referenced_images(page: Path) -> list[Path]:
    sources = re.findall(r'<img src="([^"]+)"', page.read_text())
    return [page.parent / src for src in sources]


def assert_valid_page(page: Path) -> str:
    assert page.name == "report.html" and page.exists()
    for image in referenced_images(page):
        assert image.read_bytes().startswith(PNG_SIGNATURE), image
        assert imread(image).ndim == 3  # decodes as a picture
    return page.read_text()


def test_report_of_a_real_run(run_dir):
    page = build_report(run_dir)
    text = assert_valid_page(page)
    images = {p.name for p in referenced_images(page)}
    assert images == {"startup.png", "startup_phases.png", "memory.png", "cpu_throughput.png"}
    assert "20261128T164855Z-vm" in text and "smoke" in text
    assert "Emulated, not virtualized" in text and "qemu (emulated)" in text
    assert "Failed cells" in text and "cpu@qemu" in text and "qemu-img" in text
    assert "ratio to native" in text
    assert "excluded from every statistic" in text  # warm-ups are mentioned
    assert 'src="http' not in text and "<link" not in text and "<script" not in text
    # The verdicts come first, the unstable cells after the summary table
    assert text.index(">Claims</h2>") < text.index(">Summary</h2>")
    # 3 repetitions and a VM that came through once: no claim holds, and the page says why
    assert 'class="verdict supported"' not in text and 'class="verdict inconclusive"' in text
    assert "n too small: 1 measured instance(s) on a side" in text
    assert "VM emulated: the VM side measures emulation" in text
    assert text.index(">Summary</h2>") < text.index(">Unstable cells</h2>")
    assert "too few repetitions (n = 3 &lt; 5)" in text


def test_report_is_rebuilt_the_same(run_dir):
    first = build_report(run_dir).read_text()
    assert build_report(run_dir).read_text() == first


def test_torn_last_line_still_builds(run_dir):
    path = run_dir / "records.jsonl"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) - 40])  # the crash happened mid-write
    assert_valid_page(build_report(run_dir))


def test_interrupted_run_with_missing_cells(run_dir):
    rows = records(run_dir)
    write_records(run_dir, rows[: len(rows) // 3])
    edit_environment(run_dir, interrupted=True, finished=None)
    text = assert_valid_page(build_report(run_dir))
    assert "interrupted" in text
    assert "Cells not measured" in text
    assert "no finish time recorded" in text


def test_run_without_native_has_no_ratios(run_dir):
    write_records(run_dir, [r for r in records(run_dir) if r["runtime"] != "native"])
    text = assert_valid_page(build_report(run_dir))
    assert "no native runtime" in text
    assert "ratio to" not in text


def test_unusable_runtime_and_all_failed_cells(run_dir):
    rows = [r for r in records(run_dir) if r["runtime"] != "qemu"]
    template = dict(rows[0], runtime="kata", kind="docker", tags={}, value=None,
                    metric="startup.ready_s", rep=0, warmup=False)
    why = "docker: runtime 'kata' is not registered with the engine"
    rows += [dict(template, cell=f"{w}@kata", workload=w, error=why) for w in ("noop", "cpu")]
    write_records(run_dir, rows)
    runtimes = json.loads((run_dir / "environment.json").read_text())["runtimes"]
    del runtimes["qemu"]
    edit_environment(run_dir, unusable_runtimes={"kata": why}, runtimes=runtimes)
    text = assert_valid_page(build_report(run_dir))
    assert "could not run here" in text and "not registered with the engine" in text
    assert "noop@kata" in text
    assert "Emulated, not virtualized" not in text  # qemu is gone


def test_empty_run_builds_a_page_without_figures(run_dir):
    (run_dir / "records.jsonl").write_text("")
    text = assert_valid_page(build_report(run_dir))
    assert "No measurements" in text and "No figures" in text


def test_missing_environment_still_builds(run_dir):
    (run_dir / "environment.json").unlink()
    text = assert_valid_page(build_report(run_dir))
    assert "20261128T164855Z-vm" in text  # the run id comes from the records then
    assert "qemu (emulated)" in text  # the records' tags say so too


def test_a_figure_without_data_is_removed_not_left_stale(run_dir):
    build_report(run_dir)
    write_records(run_dir, [r for r in records(run_dir) if r["workload"] != "cpu"])
    page = build_report(run_dir)
    assert not (run_dir / "figures" / "cpu_throughput.png").exists()
    assert "cpu_throughput.png" not in page.read_text()


def test_figures_skip_warmups_and_return_none_without_data(run_dir, tmp_path):
    frame = load_frame(run_dir)
    warmups_only = frame[frame["warmup"]]
    for draw in (figures.startup_figure, figures.phases_figure, figures.memory_figure,
                 figures.cpu_figure):
        assert draw(pd.DataFrame(), tmp_path / "x.png") is None
        assert draw(warmups_only, tmp_path / "x.png") is None
        assert draw(frame, tmp_path / "x.png") == tmp_path / "x.png"


def test_likely_causes_of_an_unstable_cell():
    assert likely_causes("cpu", "startup.ready_s", 3, False, 0) == [
        "too few repetitions (n = 3 < 5)"]
    assert likely_causes("cpu", "startup.ready_s", 10, False, 0) == [
        "a noisy host or CPU frequency scaling"]
    assert likely_causes("noop", "mem.pss_bytes", 10, True, 2) == [
        "noop exits right after READY, so its memory is one sample or none",
        "this runtime had failed instances in the run",
        "2 outliers (kept, marked in the table and plots)"]


# -- workloads: a real run of every workload (tests/golden/run_workloads) ---------------

from bench.report import overhead  # noqa: E402

WORKLOADS = ("cpu", "memory", "syscall", "fork", "disk", "net", "redis")


@pytest.fixture
def workloads_dir(golden, tmp_path) -> Path:
    target = tmp_path / "workloads"
    shutil.copytree(golden / "run_workloads", target)
    return target


def test_overhead_matrix_and_workload_sections(workloads_dir):
    page = build_report(workloads_dir)
    text = assert_valid_page(page)
    # The page opens with the claims (issue 5); the overhead matrix is the table right after.
    claims, matrix = text.index(">Claims</h2>"), text.index(">Overhead matrix</h2>")
    assert claims < matrix < text.index(">Summary</h2>")
    assert '<th class="emulated">qemu (emulated)</th>' in text
    images = {p.name for p in referenced_images(page)}
    for workload in WORKLOADS:
        assert f"<h3>{workload}</h3>" in text
        assert f"workload_{workload}.png" in images
    assert "workload.ns_per_syscall" in text and "(lower is better)" in text
    assert "net_path = docker bridge, port published on 127.0.0.1" in text


def test_matrix_ratios_are_runtime_over_native(workloads_dir):
    frame = load_frame(workloads_dir)
    matrix = overhead.overhead_matrix(frame, "native", {"qemu"})
    assert [c["name"] for c in matrix["columns"]] == ["runc", "runsc", "qemu"]
    rows = {row["workload"]: row for row in matrix["rows"]}
    assert set(rows) == set(WORKLOADS)
    assert rows["syscall"]["metric"] == "workload.ns_per_syscall" and rows["syscall"]["better"] == "lower"
    measured = frame[~frame["warmup"] & frame["value"].notna()]

    def median(workload, runtime, metric):
        return measured[(measured["workload"] == workload) & (measured["runtime"] == runtime)
                        & (measured["metric"] == metric)]["value"].median()

    metric = "workload.ns_per_syscall"
    expected = median("syscall", "runsc", metric) / median("syscall", "native", metric)
    assert rows["syscall"]["cells"][1]["text"] == f"{expected:.2f}×"
    # one instance per cell: a ratio, but no interval pretending to bound it
    assert rows["syscall"]["cells"][1]["ci"] == "n < 3"


def test_skipped_cell_is_listed_not_failed(workloads_dir):
    rows = records(workloads_dir)
    template = next(r for r in rows if r["cell"] == "net@runc")
    why = 'skipped: runtime runc-nonet has serve_network = "none" (no path from the host into the container)'
    rows.append(dict(template, cell="net@runc-nonet", runtime="runc-nonet", value=None,
                     metric="workload.host_to_guest_bytes_per_s", error=why))
    write_records(workloads_dir, rows)
    text = assert_valid_page(build_report(workloads_dir))
    assert "Skipped cells" in text and "net@runc-nonet" in text
    failed_box = text.split("<strong>Failed cells</strong>")[1].split("</table>")[0] \
        if "<strong>Failed cells</strong>" in text else ""
    assert "runc-nonet" not in failed_box
    assert 'band-skipped' in text


@pytest.mark.parametrize("metric, ratio, band", [
    ("workload.events_per_s", 0.98, "par"),        # a container runs CPU work at native speed
    ("workload.events_per_s", 0.1, "large"),       # ten times fewer events: 10x worse
    ("workload.ns_per_syscall", 80.0, "huge"),     # gVisor ptrace: system calls far dearer
    ("workload.ns_per_syscall", 0.5, "faster"),
    ("workload.lat_p99_s", 1.5, "mild"),
])
def test_slowdown_bands_follow_the_metric_direction(metric, ratio, band):
    assert overhead.band(overhead.slowdown(metric, ratio)) == band


# -- a mode's run: density, recorded before records carried a schema (tests/golden/run_density)


def test_a_density_run_shows_its_section_not_an_empty_summary(golden, tmp_path):
    target = tmp_path / "run_density"
    shutil.copytree(golden / "run_density", target)
    text = build_report(target).read_text()
    assert re.findall(r"<h2[^>]*>([^<]+)</h2>", text) == ["Claims", "Density", "Environment"]
    # 4 instances of each runtime at once: its finding names every runtime at N=4
    assert re.search(r"Finding:</strong> per idle instance the host paid \(PSS\) .* for qemu "
                     r"\(emulated\) \(N=4\)", text)
    assert (target / "figures" / "density.png").stat().st_size > 10_000


def test_the_contents_list_every_section_once_with_an_anchor_of_its_own():
    from bench.report.contents import with_contents

    page = with_contents("<h1>x</h1>\n<!-- contents -->\n<h2>Claims</h2><h2>Figures &amp; more</h2>"
                         "<h2>Claims</h2>")
    assert '<h2 id="claims">' in page and '<h2 id="claims-2">' in page
    assert '<h2 id="figures-more">Figures &amp; more</h2>' in page
    assert ('<nav class="toc"><strong>Contents:</strong> <a href="#claims">Claims</a> · '
            '<a href="#figures-more">Figures &amp; more</a> · <a href="#claims-2">Claims</a></nav>') in page


def test_damaged_lines_are_named_and_report_and_compare_go_on_with_the_rest(golden, tmp_path, capsys):
    from bench import cli

    run = tmp_path / "run"
    shutil.copytree(golden / "run_smoke", run)
    lines = (run / "records.jsonl").read_text().splitlines(keepends=True)
    lines[3] = lines[3][:40] + "\n"  # torn
    lines[7] = "[1, 2]\n"  # JSON, not a record
    lines[9] = "\x00\x00garbage\n"
    (run / "records.jsonl").write_text("".join(lines))
    assert cli.main(["report", str(run)]) == 0
    assert cli.main(["compare", str(run), str(run)]) == 0
    err = capsys.readouterr().err
    path = run / "records.jsonl"
    assert f"{path}:4: not JSON (Invalid control character at column 41): skipped" in err
    assert f"{path}:8: not a record (no cell or metric): skipped" in err
    assert f"{path}:10: not JSON (Expecting value at column 1): skipped" in err
    assert len(read_records(run)) == len(lines) - 3


@pytest.mark.parametrize("name", ["run_warm", "run_spectrum"])
def test_figures_drawn_by_worker_processes_are_the_ones_drawn_here(golden, tmp_path, monkeypatch, name):
    """Where the painter has workers (a host with CPUs to spare), the page and every PNG are
    the same as drawn in the report's own process."""
    from bench.report import painter

    for workers in (0, 2):
        shutil.copytree(golden / name, tmp_path / str(workers))
        monkeypatch.setattr(painter, "default_workers", lambda workers=workers: workers)
        build_report(tmp_path / str(workers))
    assert (tmp_path / "0" / "report.html").read_text() == (tmp_path / "2" / "report.html").read_text()
    here, there = (sorted((tmp_path / w / "figures").iterdir()) for w in ("0", "2"))
    assert here and [p.name for p in here] == [p.name for p in there]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, there))


def _drawn_where(frame, job, pause):
    import os
    import time

    time.sleep(pause)
    return job, os.getpid()


def test_the_painter_draws_the_jobs_no_worker_has_started_here_from_the_last_back():
    """With one worker busy on a slow first figure, this process draws the others, from
    the last back, and every figure reaches its `then` in the order it was asked for."""
    import os

    from bench.report.painter import Painter

    frame, placed = ["a frame"], []
    with Painter(frame, workers=1) as painter:
        for job in range(6):
            painter.draw(_drawn_where, frame, job, 1.0 if job == 0 else 0.0,
                         then=placed.append)
    assert [job for job, _ in placed] == list(range(6))
    where = [pid for _, pid in placed]
    assert where[0] != os.getpid() and where[-1] == os.getpid()
    here = where.index(os.getpid())  # the worker's jobs first, then this process's: no mix
    assert set(where[:here]) == {where[0]} and set(where[here:]) == {os.getpid()}


def test_two_cpus_get_one_worker_only_where_matplotlib_is_imported(monkeypatch):
    """A worker that imports matplotlib itself is slower than drawing here on 2 CPUs;
    one that starts with it (cvbench report imports it first) is faster."""
    import sys

    import matplotlib.figure  # noqa: F401

    from bench.report import painter

    monkeypatch.setattr(painter.os, "sched_getaffinity", lambda pid: {0, 1})
    assert painter.default_workers() == 1
    monkeypatch.delitem(sys.modules, "matplotlib.figure")
    assert painter.default_workers() == 0
    monkeypatch.setattr(painter.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert painter.default_workers() == painter.MAX_WORKERS


def test_the_command_and_the_page_s_tables_import_no_plotting_or_scipy():
    """matplotlib and scipy each take a second to import: the page's tables need neither
    (figures are drawn by figures.py, which imports matplotlib when it draws), and
    `cvbench --help` not even pandas."""
    import subprocess
    import sys

    def imported(statement: str) -> set[str]:
        code = f"import sys; {statement}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
        return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout.split())

    assert not imported("import bench.cli") & {"pandas", "numpy", "matplotlib", "scipy", "jinja2"}
    heavy = imported("import bench.report.html, bench.report.fleet, bench.report.sharing")
    assert "pandas" in heavy and not heavy & {"matplotlib", "scipy"}


@pytest.mark.parametrize("name", ["run_smoke", "run_workloads"])
def test_the_report_command_imports_its_own_way_and_writes_the_same_bytes(golden, tmp_path, name):
    """`cvbench report` imports for speed (issue 16): matplotlib with Agg preset, so no
    pyplot, and without its setters' property docstrings; OpenBLAS with one thread; the
    collector off, then its objects frozen. The page and every PNG are still the bytes
    build_report writes in an ordinary process (this one), and matplotlib's kwdoc is back
    once the import is done."""
    import subprocess
    import sys

    for where in ("command", "here"):
        shutil.copytree(golden / name, tmp_path / where)
    code = ("import os, sys, bench.cli; sys.argv = ['cvbench', 'report', sys.argv[1]]; "
            "code = bench.cli.main(); import matplotlib, matplotlib.artist as artist; "
            "print(code, os.environ['MPLBACKEND'], os.environ['OPENBLAS_NUM_THREADS'], "
            "matplotlib.get_backend(), artist.kwdoc.__name__, len(artist.kwdoc(artist.Artist)) > 100, "
            "sorted({'matplotlib.pyplot', 'scipy', 'rich', 'docker', 'requests'} & set(sys.modules)))")
    environment = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "OPENBLAS_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "command")], env=environment,
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "0 agg 1 agg kwdoc True []"
    build_report(tmp_path / "here")
    page, figures_dir = "report.html", Path("figures")
    assert (tmp_path / "command" / page).read_bytes() == (tmp_path / "here" / page).read_bytes()
    drawn = sorted(p.name for p in (tmp_path / "here" / figures_dir).iterdir())
    assert drawn == sorted(p.name for p in (tmp_path / "command" / figures_dir).iterdir())
    assert "startup.png" in drawn and "memory.png" in drawn
    for png in drawn:
        assert ((tmp_path / "command" / figures_dir / png).read_bytes()
                == (tmp_path / "here" / figures_dir / png).read_bytes()), png


def test_a_page_template_is_compiled_once_and_again_when_its_text_changes(tmp_path, monkeypatch):
    """Compiled templates are kept (70 ms of a small report's compile), checked against the
    template's text: an edited template is compiled afresh, never an old one's code used."""
    from jinja2 import Environment

    from bench.report import templating

    (tmp_path / "templates").mkdir()
    page = tmp_path / "templates" / "page.html"
    monkeypatch.setattr(templating, "TEMPLATES", tmp_path / "templates")
    monkeypatch.setattr(templating, "CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    compiled = []
    compile_ = Environment.compile
    monkeypatch.setattr(Environment, "compile",
                        lambda self, *args, **kw: compiled.append(args[1]) or compile_(self, *args, **kw))
    page.write_text("<p>{{ value }}</p>")
    assert templating.template("page.html").render(value="<a>") == "<p>&lt;a&gt;</p>"
    assert templating.template("page.html").render(value=1) == "<p>1</p>"
    assert compiled == ["page.html"]
    assert [p.name.startswith(f"cvbench-jinja2-{__import__('jinja2').__version__}-")
            for p in (tmp_path / "cache").iterdir()] == [True]
    page.write_text("<div>{{ value }}</div>")
    assert templating.template("page.html").render(value=2) == "<div>2</div>"
    assert compiled == ["page.html", "page.html"]


def test_a_page_template_is_compiled_where_its_cache_cannot_be_kept(tmp_path, monkeypatch):
    from bench.report import templating

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text("<p>{{ value }}</p>")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr(templating, "TEMPLATES", tmp_path / "templates")
    monkeypatch.setattr(templating, "CACHE_DIR", str(tmp_path / "not-a-folder"))
    for _ in range(2):  # neither kept nor found there: compiled each time
        assert templating.template("page.html").render(value=3) == "<p>3</p>"
    assert (tmp_path / "not-a-folder").read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "templates"]


def test_a_workload_asked_of_some_runtimes_is_missing_only_there():
    import pandas as pd

    from bench.report.html import missing_cells

    text = ('[runtimes.native]\nkind = "native"\n[runtimes.runc]\nkind = "docker"\n'
            '[workloads.noop]\n[workloads.fork]\nruntimes = ["native"]\n')
    environment = {"scenario_text": text, "runtimes": {"native": {}, "runc": {}}}
    frame = pd.DataFrame({"cell": ["noop@native", "noop@runc"], "runtime": ["native", "runc"],
                          "warmup": [False, False]})
    assert missing_cells(frame, environment) == ["fork@native"]
