"""Execute the notebooks in place, so that they are committed with their outputs.

``python notebooks/execute.py [NOTEBOOK ...]`` (default: every notebook here). The
real CMS files are read from ``CORRAX_DATA`` (default ``../shared/data/corrections``
beside the repository). The test suite re-executes the notebooks (without writing).
"""

from __future__ import annotations

import os
import pathlib
import sys

import nbclient
import nbformat

HERE = pathlib.Path(__file__).resolve().parent


def execute(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    nbformat.write(notebook, path)
    print(f"executed {path.name}")


def main(argv: list[str]) -> int:
    os.environ.setdefault("CORRAX_DATA", str(HERE.parents[1] / "shared" / "data" / "corrections"))
    paths = [pathlib.Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
