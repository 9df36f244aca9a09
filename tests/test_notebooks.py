"""The notebooks execute top to bottom (with the real CMS files beside the repo), and
are committed with their outputs (figures included), as users browse them."""

from __future__ import annotations

import pathlib

import pytest
from conftest import CORRECTIONS_DIR, require_shared

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# executing the notebooks takes about 1.5 min (03 generates events and compiles the
# differentiable analysis): `make test-all` re-executes them; the default run checks
# their committed outputs, within the time budget of `make test`
SLOW = {p.name for p in NOTEBOOKS}
PARAMETERS = [
    pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
    for p in NOTEBOOKS
]


def _check_outputs(notebook) -> None:
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, "no figure rendered (run notebooks/execute.py before committing)"
    unexecuted = [c for c in notebook.cells if c.cell_type == "code" and c.execution_count is None]
    assert not unexecuted, "a code cell was not executed"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name in SLOW], ids=lambda p: p.name)
def test_committed_notebook_has_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    _check_outputs(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("path", PARAMETERS)
def test_notebook_executes(path, monkeypatch):
    require_shared(CORRECTIONS_DIR)
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CORRAX_DATA", str(CORRECTIONS_DIR))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    committed = nbformat.read(path, as_version=4)
    client.execute()
    for executed in (notebook, committed):
        _check_outputs(executed)
