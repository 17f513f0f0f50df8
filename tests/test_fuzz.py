"""Fuzzed input (hypothesis): scenario files mutated from the real ones, the command line,
compare on damaged folders, and the agent's lines as the host reads them. Each either
works or fails with a clear error (exit 2, naming the file and the key); none gives a
traceback, makes a results folder or starts an instance."""

import json
import math
import re
import shutil
import time
import tomllib
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli
from bench.errors import UserError
from bench.agent import AgentLine, LineReader, Ready
from bench.errors import RuntimeFailure
from bench.scenario import load_scenario

REPO = Path(__file__).parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))
REAL = {path.name: tomllib.loads(path.read_text()) for path in SCENARIOS}
FUZZ = settings(max_examples=1000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "../../etc", "/tmp/x", "a/b", "..", "名前", "e\u0301", "\u202etxt", "x" * 300,
                     "con", "-rf", "$(reboot)", "`id`", "a;b", "%s%n"]))
any_value = st.recursive(
    st.one_of(st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
              st.sampled_from([0, -1, 10**12, 2**63 - 1]), st.floats(allow_nan=True), odd_text),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(odd_text, children, max_size=3)),
    max_leaves=6)


def paths(data: dict, prefix=()) -> list[tuple]:
    """Every key path of a nested dict: the places a mutation can hit."""
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += paths(value, (*prefix, key))
    return out


@st.composite
def mutated_scenario(draw) -> tuple[str, str, str | None]:
    """(file name, TOML text, the key the mutation hit or None)."""
    name = draw(st.sampled_from(sorted(REAL)))
    data = json.loads(json.dumps(REAL[name]))  # a deep copy
    where = draw(st.sampled_from(paths(data) or [("name",)]))
    parent = data
    for key in where[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["value", "unknown key", "rename", "delete", "duplicate table"]))
    key = where[-1]
    if how == "value":
        parent[key] = draw(any_value)
    elif how == "unknown key":
        key = draw(odd_text.filter(lambda k: k not in parent))
        parent[key] = draw(any_value)
    elif how == "rename":
        new = draw(odd_text.filter(lambda k: k not in parent))
        parent[new] = parent.pop(key)
        key = new
    else:
        parent.pop(key) if how == "delete" else None
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # a value TOML cannot hold (nan is fine, None is not)
        text = f"{key} = {json.dumps(str(parent.get(key)))}\n"
    if how == "duplicate table":
        text += "\n[runtimes.native]\nkind = \"native\"\n[runtimes.native]\n"
    return name, text, key if how == "unknown key" else None


@FUZZ
@given(case=mutated_scenario())
def test_a_mutated_scenario_loads_or_names_the_file_and_the_key(tmp_path_factory, case):
    name, text, key = case
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_text(text)
    try:
        load_scenario(path)
    except UserError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        # FILE: KEY: problem, or FILE: not valid TOML: where
        assert re.match(re.escape(f"{path}: ") + r"\S[^\n]*?: ", message), message
        if key is not None and "not valid TOML" not in message:
            assert key in message or repr(key) in message, message  # an unknown key is named


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_scenario())
def test_a_scenario_that_does_not_load_is_exit_2_and_no_folder(tmp_path_factory, case, capsys):
    name, text, _ = case
    folder = tmp_path_factory.mktemp("run")
    path = folder / name
    path.write_text(text)
    try:
        load_scenario(path)
        return  # it loads: running it is the engines' tests' job
    except UserError:
        pass
    out = folder / "out"
    capsys.readouterr()
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.startswith(f"cvbench: {path}: ")


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(odd_text, st.sampled_from(
    ["run", "report", "compare", "regress", "images", "doctor", "--reps", "-1", "0", "--runtimes",
     "--out", "--quick", "--hosts", "--cluster", "--thresholds", "--promote-run", "nosuch.toml",
     "scenarios/smoke.toml", "--force", "--json", "--markdown", "--all", "list"])), max_size=6))
def test_the_command_line_never_gives_a_traceback(argv, tmp_path_factory, capsys, monkeypatch):
    # nothing may run: the commands that would are stopped at their door
    monkeypatch.setattr("bench.session.Session.run", _refuse)
    monkeypatch.setattr("bench.fleet.driver.Fleet.run", _refuse)
    monkeypatch.setattr("bench.doctor.run_checks", lambda fix=False: 0)
    monkeypatch.setattr("bench.doctor.clean_leftovers", lambda: [])
    monkeypatch.setattr("bench.images.ensure_image", _refuse)
    monkeypatch.setattr("bench.images.prune_images", _refuse)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    (Path.cwd() / "scenarios").symlink_to(REPO / "scenarios")
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse: usage error, exit 2 (or --help, 0)
        code = exc.code
    except _Refused:  # it got as far as running: its arguments were taken
        code = 0
    assert code in (0, 1, 2)


class _Refused(Exception):
    pass


def _refuse(*args, **kwargs):
    raise _Refused


@FUZZ
@given(text=st.one_of(st.text(max_size=80), st.builds(
    lambda event, words: f"CVBENCH {event} {words}",
    st.sampled_from(["READY", "DONE", "SERVING", "WAITING"]), st.text(max_size=40))))
def test_any_line_a_guest_prints_is_read_or_refused_with_a_reason(text):
    line = AgentLine(0.0, text)
    if line.event is None:
        return
    event, _ = line.event
    try:
        if event == "READY":
            ready = Ready.of(line)
            assert math.isfinite(ready.uptime_s)
        elif event == "DONE":
            assert isinstance(line.exit_code, int)
    except RuntimeFailure as exc:
        assert "not the agent's" in str(exc)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(chunks=st.lists(st.binary(max_size=30), max_size=8))
def test_the_line_reader_splits_any_bytes_into_the_lines_they_hold(chunks):
    reader = LineReader(iter(chunks), "fuzz")
    deadline = time.monotonic() + 5
    got = []
    while True:
        try:
            got.append(reader._wait(lambda line: True, "a line", deadline).text)
        except RuntimeFailure as exc:
            assert "output ended" in str(exc)
            break
    data = b"".join(chunks)
    expected = [raw.decode("utf-8", "replace").rstrip("\r") for raw in data.split(b"\n")[:-1]]
    if data.split(b"\n")[-1]:
        expected.append(data.split(b"\n")[-1].decode("utf-8", "replace"))
    assert got == expected


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=40)), min_size=1, max_size=4),
       drop=st.sampled_from([None, "environment.json", "records.jsonl"]))
def test_compare_on_damaged_folders_compares_or_says_why(golden, tmp_path_factory, capsys, damage, drop):
    base = tmp_path_factory.mktemp("cmp") / "base"
    shutil.copytree(golden / "run_smoke", base)
    new = base.with_name("new")
    shutil.copytree(base, new)
    records = bytearray((new / "records.jsonl").read_bytes())
    for offset, junk in damage:  # bytes overwritten somewhere in the first lines
        records[offset:offset + len(junk)] = junk
    (new / "records.jsonl").write_bytes(bytes(records))
    if drop:
        (new / drop).unlink()
    capsys.readouterr()  # one capture serves every example: start this one's afresh
    code = cli.main(["compare", str(base), str(new)])
    assert code in (0, 1, 2)
    if code == 2:
        assert "\ncvbench: " in "\n" + capsys.readouterr().err
