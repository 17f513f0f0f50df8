import pytest

from .helpers import cvbench


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """One run of scenarios/matrix.toml (every runtime, every workload), shared by the tests
    that read it: (folder, result)."""
    out = tmp_path_factory.mktemp("matrix") / "run"
    result = cvbench("run", "scenarios/matrix.toml", "--out", out, timeout=1500)
    print(result.stdout[-3000:], result.stderr[-3000:])
    return out, result
