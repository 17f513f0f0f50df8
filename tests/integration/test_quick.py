"""A --quick run (one instance per cell) is a smoke check, not evidence: no claim holds."""

import json

import pytest

from bench.report import verdicts
from bench.results import load_frame

from .helpers import REPO, cvbench, leftovers

pytestmark = pytest.mark.integration


def test_a_quick_run_supports_no_claim(tmp_path):
    # smoke.toml's runtimes with its two main workloads: every claim of the cell matrix has
    # both sides, one instance each
    smoke = (REPO / "scenarios" / "smoke.toml").read_text().split("[workloads.memory]")[0]
    scenario = tmp_path / "quick.toml"
    scenario.write_text(smoke.replace('name = "smoke"', 'name = "quick"'))
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--quick", "--out", out, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    environment = json.loads((out / "environment.json").read_text())
    found = verdicts.all_verdicts(load_frame(out), environment)
    statuses = {v.claim: v.status for v in found}
    assert verdicts.SUPPORTED not in statuses.values(), statuses
    assert verdicts.CONTRADICTED not in statuses.values(), statuses
    for claim in ("Containers start faster than VMs", "Containers use less CPU per instance than VMs",
                  "Containers share the host kernel; VMs and gVisor do not"):
        assert statuses[claim] == verdicts.INCONCLUSIVE, found
    assert next(v for v in found if v.claim == "Containers start faster than VMs").reason.startswith(
        "n too small: 1 measured instance(s) on a side")
    page = (out / "report.html").read_text()
    assert 'class="verdict supported"' not in page and "n &lt; 3" in page
    assert leftovers(environment["run"]) == []
