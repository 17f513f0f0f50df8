"""cvbench's own hot paths as microbenchmarks: parsing and loading a large run."""

import shutil
from pathlib import Path

import pytest

from bench.results import load_frame, read_records

GOLDEN = Path(__file__).parent.parent / "tests" / "golden" / "run_smoke"
COPIES = 200  # the golden run holds ~450 records: about 90,000 in all


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    text = (GOLDEN / "records.jsonl").read_text()
    (folder / "records.jsonl").write_text(text * COPIES)
    shutil.copy(GOLDEN / "environment.json", folder)
    return folder


def test_parse_records(benchmark, large_run):
    rows = benchmark(read_records, large_run)
    benchmark.extra_info["records"] = len(rows)


def test_load_frame(benchmark, large_run):
    frame = benchmark.pedantic(load_frame, args=(large_run,), rounds=3, iterations=1)
    benchmark.extra_info["records"] = len(frame)
