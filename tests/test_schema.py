"""Records carry their schema version; records written before it (tests/golden/
records_schema1: lines of a real smoke run, no "schema" key) still load and report."""

import json
import shutil

from bench.report import build_report
from bench.report.verdicts import all_verdicts
from bench.results import SCHEMA, Record, RecordStore, load_frame, read_records, upgrade


def test_a_new_record_says_its_schema(tmp_path):
    record = Record(run="r", scenario="s", cell="noop@native", workload="noop", runtime="native",
                    kind="native", rep=0, warmup=False, metric="startup.ready_s", value=0.02,
                    unit="s", t=1.0, image="sha256:x")
    assert SCHEMA == 2 and json.loads(record.to_json())["schema"] == 2
    store = RecordStore(tmp_path)
    store.append([record])
    store.close()
    assert read_records(tmp_path)[0]["schema"] == 2


def test_a_record_without_schema_is_schema_1():
    assert upgrade({"metric": "startup.ready_s"}) == {"metric": "startup.ready_s", "schema": 1}
    assert upgrade({"metric": "startup.ready_s", "schema": 2})["schema"] == 2


def test_old_records_load_and_build_a_report(golden, tmp_path):
    source = golden / "records_schema1" / "records.jsonl"
    assert all("schema" not in json.loads(line) for line in source.read_text().splitlines())
    shutil.copytree(source.parent, tmp_path / "run")
    frame = load_frame(tmp_path / "run")
    assert len(frame) == 67 and set(frame["schema"]) == {1}
    startup = all_verdicts(frame)[0]
    assert startup.numbers() == ["runc / qemu (emulated): 0.0238× n < 3; medians 225.9 ms vs "
                                 "9.47 s (n 1 vs 1; startup.ready_s, noop)"]
    page = build_report(tmp_path / "run")
    text = page.read_text()
    assert "noop@runc" in text and "cpu@native" in text
    assert (tmp_path / "run" / "figures" / "startup.png").exists()
