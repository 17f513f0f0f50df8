"""cvbench commands: run, report, compare, regress, images, doctor, lab."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from bench.errors import UserError


def cmd_run(args) -> int:
    with uncollected(args.program):
        from bench.session import Session
        from bench.scenario import load_scenario

        scenario = load_scenario(args.scenario).with_overrides(
            reps=args.reps, runtimes=args.runtimes.split(",") if args.runtimes else None,
            quick=args.quick)
        if any(runtime.kind == "docker" for runtime in scenario.runtimes):
            try:
                import docker  # noqa: F401  (here, uncollected: a docker runtime's check needs it)
            except ImportError:
                pass  # that check says what is missing
    if args.cluster:
        return fleet_of(args, scenario).run()
    if args.hosts:
        raise UserError("--hosts chooses hosts of a fleet", fix="pass --cluster ADDRESS too")
    return Session(scenario, args.out, report=not args.no_report,
                   before_report=_import_for_report if args.program else lambda: None).run()


def fleet_of(args, scenario):
    """The fleet run of `run/regress --cluster`; each host gets the same overrides."""
    from bench.fleet.driver import Fleet

    overrides = [*(["--reps", str(args.reps)] if getattr(args, "reps", None) else []),
                 *(["--runtimes", args.runtimes] if getattr(args, "runtimes", None) else []),
                 *(["--quick"] if getattr(args, "quick", False) else [])]
    return Fleet(scenario, args.cluster, args.out, args.hosts.split(",") if args.hosts else None,
                 overrides, report=not getattr(args, "no_report", False))


def cmd_report(args) -> int:
    if not (Path(args.dir) / "records.jsonl").exists():
        raise UserError(f"{args.dir}: no records.jsonl here", fix="pass a folder written by cvbench run")
    if args.program:
        _import_for_report()
    from bench.report import build_report

    try:
        print(build_report(Path(args.dir)))
    except OSError as exc:  # a full or read-only disk: say so, not a traceback
        raise UserError(f"cannot write the report in {args.dir}: {exc.strerror or exc}",
                        fix="free space there, or copy the folder elsewhere and report there") from None
    return 0


@contextmanager
def uncollected(program: bool):
    """In cvbench's own process, imports made with the garbage collector off, then frozen.

    Imports make hundreds of thousands of objects and no garbage, and the collector, run
    every 700 new objects, would walk them again and again: 0.1 s of a run's start (its
    modules and the Docker SDK), 0.15-0.3 s of a small report's. Frozen, they are left out
    of every later collection. Called from Python, nothing changes."""
    if not program:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _import_for_report() -> None:
    """Import what a report draws with before it starts, in cvbench's own process (`cvbench
    report`, and `cvbench run` once its instances are gone).

    The figures are PNGs on an Agg canvas: matplotlib's default backend is set to Agg
    (unless MPLBACKEND chose one), so nothing imports pyplot to look for a display.
    OpenBLAS starts one thread (unless OPENBLAS_NUM_THREADS says otherwise), not one per
    CPU, when numpy loads it (50 ms on 2 CPUs): a report's arrays are far too small for
    BLAS threads."""
    import importlib

    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with uncollected(True):
        for name in ("bench.report.fleet", "bench.report.html"):
            importlib.import_module(name)
        _import_matplotlib()  # here, before the painter forks workers: they start with it


def _import_matplotlib() -> None:
    """matplotlib's Figure and Agg canvas, without the property lists of its docstrings.

    Importing matplotlib.figure writes, for each of its hundred Artist classes, every
    settable property into the docstring of its set() method (matplotlib.artist.kwdoc): 40%
    of the import (0.18 s of 0.4 here) for text that only help() shows. This process only
    draws PNGs, so kwdoc gives an empty list while the import runs; what is drawn does not
    change (the report's PNGs are the same bytes)."""
    import matplotlib.artist

    kwdoc = getattr(matplotlib.artist, "kwdoc", None)
    if kwdoc is not None:
        matplotlib.artist.kwdoc = lambda artist: ""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    finally:
        if kwdoc is not None:
            matplotlib.artist.kwdoc = kwdoc


def compare_runs(base: Path, new: Path, thresholds=None, markdown=None, json_out=None,
                 force: bool = False) -> int:
    """Print the comparison, write the requested files; 1 on regression, else 0."""
    from rich.console import Console
    from rich.table import Table

    from bench import compare
    from bench.results import load_frame, read_environment

    for folder in (base, new):
        if not (Path(folder) / "records.jsonl").exists():
            raise UserError(f"{folder}: no records.jsonl here", fix="pass folders written by cvbench run")
    base_env, new_env = read_environment(base), read_environment(new)
    for folder, environment in ((base, base_env), (new, new_env)):
        if "fleet" in environment:  # one gate per host: cvbench regress --cluster
            raise UserError(f"{folder} holds a fleet's run: the hosts' numbers are not one sample",
                            fix=f"compare one host's folders, e.g. {Path(folder) / 'hosts' / 'NAME'}")
    why_not = compare.refusal(base_env, new_env)
    if why_not and not force:
        raise UserError(f"refusing to compare {base} and {new}: {why_not}",
                        fix="pass --force to compare them anyway")
    notes = ([f"compared despite {why_not} (--force)"] if why_not else []) + [
        f"environments differ: {d}" for d in compare.environment_differences(base_env, new_env)]
    changes = compare.compare_frames(load_frame(base), load_frame(new),
                                     compare.load_thresholds(thresholds))
    console = Console(width=None if sys.stdout.isatty() else 150)
    for note in notes:
        console.print(f"[yellow]warning:[/yellow] {note}")
    table = Table(title=f"{base} -> {new}: gated metrics (all of them in --json and --markdown)")
    for column in ("cell", "metric", "base", "new", "change [95% CI]", "p", "verdict"):
        table.add_column(column)
    style = {"regression": "bold red", "improvement": "green", "unjudged": "yellow"}
    for c in sorted(changes, key=lambda c: compare.ORDER[c.verdict]):
        if not c.gated and c.verdict != "changed":
            continue
        table.add_row(*compare.row(c), c.verdict, style=style.get(c.verdict))
    console.print(table)
    if markdown:
        Path(markdown).write_text(compare.to_markdown(changes, str(base), str(new), notes))
    if json_out:
        Path(json_out).write_text(compare.to_json(changes))
    regressions = [c for c in changes if c.verdict == "regression"]
    for c in regressions:
        console.print(f"[bold red]regression[/bold red] {c.cell} {c.metric}: {c.reason}")
    unjudged = [c for c in changes if c.verdict == "unjudged" and c.gated]
    if unjudged:
        console.print(f"[yellow]warning:[/yellow] {len(unjudged)} gated metric(s) not judged, too "
                      "few values (fewer than 2 a side): the gate says nothing about them")
    console.print(f"{len(regressions)} regression(s), "
                  f"{sum(c.verdict == 'improvement' for c in changes)} improvement(s) over "
                  f"{sum(c.gated for c in changes)} gated metrics")
    return 1 if regressions else 0


def cmd_compare(args) -> int:
    return compare_runs(args.base, args.new, args.thresholds, args.markdown, args.json, args.force)


def cmd_regress(args) -> int:
    """Run, gate against this machine's baseline; a run becomes the baseline only when every
    cell measured and the gate passed (the first run: when every cell measured), or by hand
    with --promote-run. With --cluster every host is gated against its own baseline."""
    from bench import regress
    from bench.session import Session
    from bench.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if args.promote_run:
        if not (Path(args.promote_run) / "records.jsonl").exists():
            raise UserError(f"{args.promote_run}: no records.jsonl here",
                            fix="pass a folder written by cvbench run, or a fleet's DIR/hosts/NAME")
        target = regress.promote(Path(args.promote_run), scenario.name, args.store,
                                 regress.machine_of_run(Path(args.promote_run)))
        print(f"promoted {args.promote_run} by hand to {target}")
        return 0
    if args.cluster:
        return regress_fleet(args, scenario)
    if args.hosts:
        raise UserError("--hosts chooses hosts of a fleet", fix="pass --cluster ADDRESS too")
    session = Session(scenario, args.out)
    code = session.run()
    if code not in (0, 1):
        return code
    return gate(session.out_dir, code, scenario.name, args)[0]


def regress_fleet(args, scenario) -> int:
    """Each host of the fleet gated against its own baseline (kept here, on the driver);
    the summary names the hosts that regressed."""
    from bench import regress
    from bench.fleet.driver import HOSTS

    fleet = fleet_of(args, scenario)
    code = fleet.run()
    if code == 130:
        return code
    outcomes = {}
    for host in fleet.hosts:
        run_dir = fleet.out_dir / HOSTS / host.name
        if host.status != "done" or host.exit_code not in (0, 1):  # as one machine's regress
            outcomes[host.name] = (max(code, 1), f"not gated: {host.status}, exit {host.exit_code} "
                                                 f"({host.reason})")
            continue
        print(f"\n== {host.name} ==")
        try:
            outcomes[host.name] = gate(run_dir, host.exit_code, scenario.name, args,
                                       regress.machine_of_run(run_dir))
        except UserError as exc:  # one host's refusal (another image, say) leaves the others
            outcomes[host.name] = (2, f"not gated: {exc}")
    print("\nfleet gate:")
    for name, (_, what) in outcomes.items():
        print(f"  {name}: {what}")
    if regressed := [name for name, (_, what) in outcomes.items() if what.startswith("regressed")]:
        print(f"regressed on {', '.join(regressed)}")
    return max([code, *(c for c, _ in outcomes.values())])


def gate(run_dir: Path, code: int, scenario_name: str, args, machine: str | None = None) -> tuple[int, str]:
    """A run against its machine's baseline: (exit code, what happened in a few words)."""
    from bench import regress

    baseline = regress.baseline_dir(scenario_name, args.store, machine)
    if not (baseline / "records.jsonl").exists():
        if code != 0:
            print(f"no baseline for {scenario_name} yet, and cells failed in this run: not "
                  "made the baseline (cvbench regress --promote-run DIR makes one by hand)")
            return code, "no baseline yet; cells failed, so not made one"
        target = regress.promote(run_dir, scenario_name, args.store, machine)
        print(f"no baseline for {scenario_name} on this machine yet: {target} is now the baseline")
        return code, f"no baseline yet: this run is now the baseline ({target})"
    verdict = compare_runs(baseline, run_dir, args.thresholds, run_dir / "compare.md",
                           run_dir / "compare.json")
    if args.promote:
        if verdict or code:
            print(f"not promoted: {run_dir} did not pass the gate "
                  f"({'regressions' if verdict else 'failed cells'}); "
                  "cvbench regress --promote-run DIR promotes a run by hand")
        else:
            print(f"promoted {run_dir} to {regress.promote(run_dir, scenario_name, args.store, machine)}")
    what = (f"regressed against {baseline}" if verdict
            else f"passed the gate against {baseline}" + ("; some cells failed" if code else ""))
    return max(verdict, code), what


def cmd_images(args) -> int:
    from bench import images

    if args.action == "build":
        image = images.ensure_image()
        print(f"{image.key}  {image.digest}  {image.directory}")
    elif args.action == "list":
        current = images.recipe_hash()
        for image in images.list_images():
            mark = "*" if image.key == current else " "
            print(f"{mark} {image.key}  {image.digest[:19]}  kernel {image.kernel_release}  "
                  f"built in {image.build_s:.0f} s  {image.directory}")
    else:
        for key in images.prune_images(keep_current=not args.all):
            print(f"removed {key}")
    return 0


def cmd_doctor(args) -> int:
    from bench.doctor import clean_leftovers, run_checks

    if args.clean:
        for line in clean_leftovers():
            print(line)
        return 0
    return run_checks(fix=args.fix)


def cmd_lab(args) -> int:
    from bench.lab.job import run_lab

    rc, out = run_lab(Path.cwd(), args.scenario, args.out, reps=args.reps, quick=args.quick,
                      tests=not args.no_tests, no_vms=args.no_vms, timeout_s=args.timeout)
    print(f"lab results: {out} (report: {out / 'report.html'}; console: {out / 'lab' / 'console.log'})")
    return rc


def add_fleet_arguments(parser) -> None:
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run on every benchmark host of this Ray cluster (cvbench[fleet])")
    parser.add_argument("--hosts", help="comma-separated fleet hosts: node names, label key=value "
                        "or node ids (default: every host with the cvbench_host resource)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario and write records and a report")
    run.add_argument("scenario", help="scenario TOML file, e.g. scenarios/smoke.toml")
    run.add_argument("--out", type=Path, help="results folder (default results/RUN_ID)")
    run.add_argument("--reps", type=int, help="measured repetitions per cell")
    run.add_argument("--runtimes", help="comma-separated subset of the scenario's runtimes")
    run.add_argument("--quick", action="store_true", help="1 repetition, no warm-up, short sizes")
    run.add_argument("--no-report", action="store_true", help="records only")
    add_fleet_arguments(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="rebuild report.html and figures/ from records")
    report.add_argument("dir", type=Path)
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="A/B: exit 1 when NEW regressed against BASE")
    compare.add_argument("base", type=Path)
    compare.add_argument("new", type=Path)
    compare.add_argument("--thresholds", type=Path, help="TOML: alpha, min_change, [metrics.NAME]")
    compare.add_argument("--markdown", type=Path, help="write a pull-request comment here")
    compare.add_argument("--json", type=Path, help="write every comparison here")
    compare.add_argument("--force", action="store_true",
                         help="compare runs of different scenarios or guest images")
    compare.set_defaults(func=cmd_compare)

    regress = sub.add_parser("regress", help="run a scenario and gate it against this machine's baseline")
    regress.add_argument("scenario", nargs="?", default="scenarios/regress.toml")
    regress.add_argument("--out", type=Path, help="results folder of the new run")
    regress.add_argument("--thresholds", type=Path, default=None)
    regress.add_argument("--promote", action="store_true",
                         help="make this run the new baseline if it passes the gate")
    regress.add_argument("--promote-run", type=Path, metavar="DIR",
                         help="make the run in DIR the baseline by hand, without running")
    regress.add_argument("--store", type=Path, default=Path(".benchmarks/cvbench"),
                         help="where baselines are kept, one folder per machine")
    add_fleet_arguments(regress)
    regress.set_defaults(func=cmd_regress)

    images = sub.add_parser("images", help="build, list or prune guest images")
    images.add_argument("action", choices=("build", "list", "prune"))
    images.add_argument("--all", action="store_true", help="prune: the current image too")
    images.set_defaults(func=cmd_images)

    doctor = sub.add_parser("doctor", help="what is usable here, and why not")
    doctor.add_argument("--clean", action="store_true", help="remove leftovers of crashed runs")
    doctor.add_argument("--fix", action="store_true",
                        help="install missing packages, register runsc, start dockerd (root)")
    doctor.set_defaults(func=cmd_doctor)
    lab = sub.add_parser("lab", help="run the lab scenario in a VM with systemd, cgroup v2 and "
                         "nested KVM (the host shape most users have), booted here under emulation")
    lab.add_argument("scenario", nargs="?", default="scenarios/lab.toml")
    lab.add_argument("--out", type=Path, help="results folder, inside this project (default results/lab-TIME)")
    lab.add_argument("--reps", type=int, help="measured repetitions per cell")
    lab.add_argument("--quick", action="store_true", help="1 repetition, no warm-up, short sizes")
    lab.add_argument("--no-tests", action="store_true", help="the scenario only, not the lab's tests")
    lab.add_argument("--no-vms", action="store_true",
                     help="leave VMs out (nested KVM under emulation is flaky: CI uses this)")
    lab.add_argument("--timeout", type=float, default=3600, help="seconds before the lab is stopped")
    lab.set_defaults(func=cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.program = argv is None  # cvbench itself, not a call from Python: its process ends here
    try:
        return args.func(args)
    except UserError as exc:
        print(f"cvbench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if args.program:
            # The process ends next: Python's last collection would walk every object made
            # (a quarter of a second of a small report) to free memory that exit frees anyway
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
