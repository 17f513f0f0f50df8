"""cvbench commands: run, report, images, doctor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import UserError


def cmd_run(args) -> int:
    from bench.runner import Runner
    from bench.scenario import load_scenario

    scenario = load_scenario(args.scenario).with_overrides(
        reps=args.reps, runtimes=args.runtimes.split(",") if args.runtimes else None,
        quick=args.quick)
    return Runner(scenario, args.out, report=not args.no_report).run()


def cmd_report(args) -> int:
    from bench.report import build_report

    if not (Path(args.dir) / "records.jsonl").exists():
        raise UserError(f"{args.dir}: no records.jsonl here", fix="pass a folder written by cvbench run")
    print(build_report(Path(args.dir)))
    return 0


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
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="rebuild report.html and figures/ from records")
    report.add_argument("dir", type=Path)
    report.set_defaults(func=cmd_report)

    images = sub.add_parser("images", help="build, list or prune guest images")
    images.add_argument("action", choices=("build", "list", "prune"))
    images.add_argument("--all", action="store_true", help="prune: the current image too")
    images.set_defaults(func=cmd_images)

    doctor = sub.add_parser("doctor", help="what is usable here, and why not")
    doctor.add_argument("--clean", action="store_true", help="remove leftovers of crashed runs")
    doctor.add_argument("--fix", action="store_true",
                        help="install missing packages, register runsc, start dockerd (root)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"cvbench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
