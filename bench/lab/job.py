"""What the lab does: the lab scenario and the integration tests that read cgroups and
drive Docker and QEMU, run on the lab's host shape, results written to the shared tree."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.cleanup import signals_raise_interrupt
from bench.errors import UserError
from bench.lab.image import ensure_lab_image
from bench.lab.vm import run_in_lab
from bench.scenario import load_scenario

# Integration tests that read the instance cgroups and drive Docker and QEMU directly,
# without the smoke run (too slow under emulation).
LAB_TESTS = ["tests/integration/test_host_shape.py"]
SCENARIO = "scenarios/lab.toml"


def job_script(scenario: str, run_dir: str, lab_dir: str, reps: int | None, quick: bool,
               tests: list[str], runtimes: list[str] | None = None) -> str:
    """sh lines for inside.sh; runtimes: a subset of the scenario's, and then the tests
    leave VMs out too (CVBENCH_NO_VMS)."""
    # The report is drawn on the host afterwards: matplotlib under emulation takes minutes.
    run = f"python -m bench.cli run {scenario} --out {run_dir} --no-report"
    run += f" --reps {reps}" if reps else ""
    run += " --quick" if quick else ""
    run += f" --runtimes {','.join(runtimes)}" if runtimes else ""
    lines = ["rc=0", f"python -m bench.cli doctor | tee {lab_dir}/doctor.txt", f"{run} || rc=$?"]
    if tests:
        lines.append(("CVBENCH_NO_VMS=1 " if runtimes else "") +
                     f"python -m pytest -p no:cacheprovider -m integration -q -rA {' '.join(tests)} "
                     f"--junitxml={lab_dir}/pytest.xml || rc=$?")
    return "\n".join(lines + ["exit $rc", ""])


def run_lab(project: Path, scenario: str = SCENARIO, out: Path | None = None, reps: int | None = None,
            quick: bool = False, tests: bool = True, no_vms: bool = False,
            timeout_s: float = 3600) -> tuple[int, Path]:
    """Build (or reuse) the lab image, run the job in it; (exit code, run folder).

    no_vms: leave the VMs out. Nested KVM under the lab's emulation is not reliable enough
    to gate on (README, "Host shapes and the lab"): CI runs the lab without it."""
    project = project.resolve()
    if not (project / scenario).exists():
        raise UserError(f"{scenario}: no such scenario in {project}")
    runtimes = None
    if no_vms:
        runtimes = [r.name for r in load_scenario(project / scenario).runtimes if r.kind != "qemu"]
    out = (out or project / "results" / time.strftime("lab-%Y%m%dT%H%M%SZ", time.gmtime())).resolve()
    if not out.is_relative_to(project):
        raise UserError(f"{out}: the lab writes only inside the project tree it sees ({project})",
                        fix="pass --out under results/")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} already holds files", fix="choose another --out, or remove that folder")
    image = ensure_lab_image(project)
    started = time.monotonic()
    # The job's own files (job, console, doctor, pytest) wait beside the run folder, which
    # the run wants empty, and move into it as lab/ at the end.
    lab_dir = out.with_name(f".{out.name}.lab")
    job = job_script(scenario, str(out.relative_to(project)), str(lab_dir.relative_to(project)), reps,
                     quick, LAB_TESTS if tests else [], runtimes)
    rc = None
    try:
        with signals_raise_interrupt():  # SIGTERM as Ctrl-C: the lab VM is stopped either way
            rc = run_in_lab(image, project, lab_dir, job, timeout_s)
    finally:  # interrupted too: what the lab wrote stays with the run
        (lab_dir / "lab.json").write_text(json.dumps(
            {"image": image.key, "image_build_s": image.build_s,
             "lab_s": round(time.monotonic() - started, 1), "job_rc": rc}, indent=2) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        lab_dir.rename(out / "lab")
    if (out / "records.jsonl").exists():
        from bench.report import build_report

        print(f"[lab] report: {build_report(out)}", flush=True)
    if rc is None:
        print(f"[lab] the lab stopped without finishing its job: read {out / 'lab' / 'console.log'}")
        return 2, out
    return rc, out
