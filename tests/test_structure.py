"""The house rules of bench/: no import cycle, no module importing another's private name,
and a new runtime kind or mode is one class found through its registry."""

import ast
from pathlib import Path

import pandas as pd
import pytest

from bench import doctor
from bench.modes import MODES
from bench.modes.base import Mode
from bench.params import Param
from bench.report import data, verdicts
from bench.runtimes import KINDS, Runtime, Traits, phase_labels, traits_of
from bench.scenario import load_scenario

PACKAGE = Path(__file__).parent.parent / "bench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the bench modules it imports, at the top or inside a function alike."""
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
                for alias in node.names:  # `from bench.x import y` where y may be a module
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
        graph[name] = found & set(modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once, by a depth-first walk."""
    found, done = [], set()

    def walk(node, path):
        if node in path:
            cycle = path[path.index(node):]
            if sorted(cycle) not in [sorted(c) for c in found]:
                found.append(cycle)
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            walk(nxt, path + [node])
        done.add(node)

    for node in sorted(graph):
        walk(node, [])
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_checks_see_a_cycle_and_a_private_import():
    # the walk itself: a cycle of three, and one module importing nothing
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert "bench.session" in imports(MODULES)["bench.cli"]


def test_no_import_cycle_among_bench_modules():
    assert cycles(imports(MODULES)) == []


def test_no_module_imports_a_private_name_of_another():
    private = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench"):
                private += [f"{name} imports {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


def test_every_runtime_kind_declares_what_it_is():
    for kind, cls in KINDS.items():
        assert isinstance(cls.traits, Traits), kind
        assert cls.traits.isolation in ("process", "container", "sandbox", "vm"), kind
        assert cls.HOST_NEEDS, f"{kind}: cvbench doctor would not list it"
    assert [traits_of(k).side for k in ("native", "docker", "qemu")] == [None, "container", "VM"]
    # gVisor is a sandbox on its own kernel, still on the container side of the claims
    gvisor = traits_of("docker", {"oci_runtime": "runsc"})
    assert (gvisor.isolation, gvisor.shares_host_kernel, gvisor.side) == ("sandbox", False, "container")
    assert traits_of("firecracker") is None  # a record from a newer cvbench still loads
    # kinds that share a phase metric share its label in the registry and the figure
    assert phase_labels()["startup.create_s"] == "docker create / podman create"


class Jail(Runtime):
    """A runtime kind the project does not have: one class and one registry line."""

    kind = "jail"
    traits = Traits("container", shares_host_kernel=True, phases=(("startup.jail_s", "jail setup"),))
    HOST_NEEDS = {"jail": ("root",)}

    def check(self):
        pass

    def launch(self, command, limits, instance, needs=None, port=None):
        raise NotImplementedError


class Burst(Mode):
    """A mode the project does not have yet: one class and one registry line."""

    name = "burst"
    OPTIONS = {"size": Param(int, 8, "instances launched at once")}

    @classmethod
    def checked(cls, options):
        if options["size"] < 2:
            raise ValueError(f"size: a burst is 2 or more, got {options['size']}")
        return options


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(KINDS, "jail", Jail)
    monkeypatch.setitem(MODES, "burst", Burst)


def test_a_new_runtime_kind_and_mode_are_found_everywhere(tmp_path, registered):
    scenario = tmp_path / "burst.toml"
    scenario.write_text('name = "b"\n[mode]\nname = "burst"\nsize = 4\n'
                        '[runtimes.j]\nkind = "jail"\n[runtimes.vm]\nkind = "qemu"\n')
    loaded = load_scenario(scenario)
    assert loaded.mode == "burst" and loaded.mode_options == {"size": 4}
    assert loaded.workloads == ()  # a mode that builds its own guest commands
    scenario.write_text(scenario.read_text().replace("size = 4", "size = 1"))
    with pytest.raises(Exception, match="mode.size: a burst is 2 or more"):
        load_scenario(scenario)
    # the report asks the traits: its phase, and the container side of the claims
    assert data.phases().get("jail setup") == "startup.jail_s"
    assert data.sequential_phases("jail") == (("startup.jail_s", "jail setup"),)
    rows = pd.DataFrame({"runtime": ["j", "vm"], "kind": ["jail", "qemu"]})
    assert verdicts.runtimes_on_side(rows, verdicts.CONTAINER) == ["j"]
    needed = {name for kind in KINDS.values() for needs in kind.HOST_NEEDS.values() for name in needs}
    assert "jail: NOT usable: needs root (see above)" in doctor.runtime_lines(
        [doctor.Check(name, name != "root", "") for name in needed | {"kvm"}])


def test_user_strings_reach_processes_as_argv_never_through_a_shell():
    """Scenario values become arguments of a list, never text a host shell parses."""
    import re

    shell = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput\(")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if shell.search(line)]
    assert found == []
