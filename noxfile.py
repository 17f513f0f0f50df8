"""Sessions: bench (default scenario + report), tests, regress (CI gate), benchmarks
(pytest-benchmark), harness (cvbench's own cost), report, lab (a systemd + cgroup v2 + KVM
host in a VM), lint.

Each session first brings the host up (python -m bench.hostsetup): on a Debian-family
host as root it installs docker.io, runsc, QEMU and the image tools and starts dockerd;
elsewhere it names the exact command to run.
"""

from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _setup_host(session):
    session.run("python", "-m", "bench.hostsetup")


@nox.session
def bench(session):
    """Run scenarios/default.toml (or the scenario given after --) and write its report."""
    fleet = "--cluster" in session.posargs
    session.install("-e", ".[fleet]" if fleet else ".")
    if not fleet:  # a fleet's hosts set themselves up; the driver runs nothing
        _setup_host(session)
    args = session.posargs or ["scenarios/default.toml"]
    # Exit 1 means some cells failed: they are recorded and shown in the report, which was
    # still written; only a run that could not happen (2) or was interrupted fails here.
    session.run("cvbench", "run", *args, success_codes=[0, 1])


@nox.session
def tests(session):
    """Unit tests on golden data, integration tests on the real engines, benchmarks."""
    session.install("-e", ".[test,fleet]")
    session.run("python", "-m", "bench.hostsetup", "--tests")  # and Chromium for the report's test
    session.run("pytest", *session.posargs)


@nox.session
def regress(session):
    """Run scenarios/regress.toml and gate it against this machine's baseline (exit 1 on
    regression). The first run becomes the baseline; `nox -s regress -- --promote` renews it."""
    fleet = "--cluster" in session.posargs
    session.install("-e", ".[fleet]" if fleet else ".")
    if not fleet:
        _setup_host(session)
    session.run("cvbench", "regress", "scenarios/regress.toml", "--thresholds", "thresholds.toml",
                *session.posargs)


@nox.session
def benchmarks(session):
    """Startup of every runtime as pytest-benchmark rounds. Pass pytest-benchmark flags after --,
    e.g. --benchmark-autosave, --benchmark-compare, --benchmark-compare-fail=median:10%."""
    session.install("-e", ".[test]")
    _setup_host(session)
    session.run("pytest", "benchmarks", *session.posargs)


@nox.session
def harness(session):
    """cvbench's own cost: each thing it does timed beside the same work without it
    (benchmarks/harness.py); pass its flags after --, e.g. --scenarios smoke,default."""
    session.install("-e", ".")
    session.run("python", "-m", "bench.hostsetup", "--harness")  # and hyperfine
    session.run("python", "benchmarks/harness.py", *session.posargs)


@nox.session
def report(session):
    """Rebuild the report of a results folder (default: the newest under results/)."""
    session.install("-e", ".")
    runs = sorted(p for p in Path("results").iterdir() if (p / "records.jsonl").exists())
    target = session.posargs[0] if session.posargs else (str(runs[-1]) if runs else None)
    if target is None:
        session.error("no run under results/: run nox -s bench first")
    session.run("cvbench", "report", target)


@nox.session
def lab(session):
    """The host shape most users have (systemd, cgroup v2, Docker's systemd driver, KVM) in
    a VM booted here under emulation: scenarios/lab.toml and the lab's tests run inside it;
    results land under results/lab-TIME. Pass cvbench lab flags after --, e.g. --quick."""
    session.install("-e", ".")
    _setup_host(session)
    session.run("cvbench", "lab", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "bench", "tests", "noxfile.py")
