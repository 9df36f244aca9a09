"""corrax never changes global configuration behind the user's back: JAX's (x64,
platform, dispatch), awkward's JAX registration, pyhf's backend."""

from __future__ import annotations

import ast
import pathlib

import corrax

SOURCE = pathlib.Path(corrax.__file__).parent
# the programs' own entry points, where 64-bit JAX is the program's explicit choice
PROGRAMS = {"agc/cli.py", "demo.py"}
CHANGES = {"jax.config.update", "ak.jax.register_and_check", "pyhf.set_backend"}


def _calls(path: pathlib.Path) -> list[str]:
    """The configuration-changing calls in a module: ``jax.config.update(...)``,
    ``ak.jax.register_and_check()``, ``pyhf.set_backend(...)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in CHANGES:
            found.append(f"{ast.unparse(node.func)} (line {node.lineno})")
    return found


def test_no_library_code_changes_jax_awkward_or_pyhf_configuration():
    found = {}
    for path in SOURCE.rglob("*.py"):
        name = str(path.relative_to(SOURCE))
        if name not in PROGRAMS and _calls(path):
            found[name] = _calls(path)
    # pyhf's backend is set only inside a scope that restores it (model.pyhf_jax_backend,
    # tested in test_model)
    assert set(found) <= {"agc/model.py"}, found
    assert all(call.startswith("pyhf.set_backend") for call in found.get("agc/model.py", []))
    assert _calls(SOURCE / "agc" / "cli.py"), "the scan finds the CLI's own explicit choice"
