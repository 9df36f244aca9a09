"""The notebooks execute top to bottom (with the real CMS files beside the repo), and
are committed with their outputs (figures included), as users browse them."""

from __future__ import annotations

import pathlib

import pytest
from conftest import CORRECTIONS_DIR, require_shared

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
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
        outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not [o for o in outputs if o.get("output_type") == "error"]
        figures = [o for o in outputs if "image/png" in o.get("data", {})]
        assert figures, "no figure rendered (run notebooks/execute.py before committing)"
