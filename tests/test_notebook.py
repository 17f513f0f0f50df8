"""notebooks/overhead.ipynb runs from top to bottom on the recorded smoke run."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "overhead.ipynb"


def test_overhead_notebook_runs_without_errors(golden, monkeypatch):
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        import ipykernel  # noqa: F401  (the kernel the notebook runs in)
    except ImportError as missing:
        pytest.skip(f"notebook test needs nbclient, nbformat and ipykernel: {missing}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "outputs are stored"
    # The kernel inherits the environment: it reads the run from CVBENCH_RUN, and draws
    # without a display
    monkeypatch.setenv("CVBENCH_RUN", str(golden / "run_smoke"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"a cell of {NOTEBOOK.name} failed:\n{error}")
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the plots drew
    # the verdicts: 3 repetitions are too few for any claim
    assert any("n too small" in str(output.get("data", {})) for output in outputs)
