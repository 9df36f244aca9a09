"""Reading and validating correctionlib schema-v2 documents.

Parsing and validation are correctionlib's (its pydantic model); this module only
adds what its C++ loader accepts and its model does not: gzip detection by magic
bytes and bare JSON ``Infinity`` bin edges.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any

import pydantic
from correctionlib import schemav2

from ..errors import InvalidDocumentError
from .numbers import rapidjson_float

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_REPORTED_ERRORS = 5

DocumentSource = str | os.PathLike[str] | dict[str, Any] | schemav2.CorrectionSet


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.json`` or ``.json.gz`` file (gzip detected by content) into a dict."""
    with open(path, "rb") as stream:
        raw = stream.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    return parse_text(raw.decode("utf-8"), origin=os.fspath(path))


def parse_text(text: str, origin: str = "<string>") -> dict[str, Any]:
    """Parse JSON text as correctionlib does (numbers: see ``_numbers``).

    Python's parser accepts bare ``Infinity``/``NaN`` like rapidjson with the flag
    correctionlib sets.
    """
    # CMS files repeat their numbers (the JEC file: 37,558 distinct among 685,892):
    # each distinct spelling is converted once per document
    floats: dict[str, float] = {}

    def parse_float(spelling: str) -> float:
        value = floats.get(spelling)
        if value is None:
            value = floats[spelling] = rapidjson_float(spelling)
        return value

    try:
        data = json.loads(text, parse_float=parse_float)
    except json.JSONDecodeError as exc:
        raise InvalidDocumentError(f"{origin}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidDocumentError(f"{origin}: expected a CorrectionSet object, got {type(data)}")
    return data


def _spell_infinite_edges(node: Any) -> None:
    """Rewrite float ±inf bin edges as the strings the schema allows, in place.

    correctionlib's C++ loader accepts bare ``Infinity`` edges (five of the public
    CMS files use them); its pydantic model only behind a module-global switch,
    which we do not want to flip from a library.
    """
    if isinstance(node, dict):
        nodetype = node.get("nodetype")
        if nodetype == "binning":
            _spell_edge_list(node.get("edges"))
        elif nodetype == "multibinning":
            for axis in node.get("edges") or []:
                _spell_edge_list(axis)
        for value in node.values():
            if isinstance(value, dict | list):
                _spell_infinite_edges(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _spell_infinite_edges(item)


def _spell_edge_list(edges: Any) -> None:
    if isinstance(edges, list):
        for i, edge in enumerate(edges):
            if isinstance(edge, float) and math.isinf(edge):
                edges[i] = "+inf" if edge > 0 else "-inf"


def validate(data: dict[str, Any], origin: str = "<document>") -> schemav2.CorrectionSet:
    """Validate a plain dict against correctionlib's schema-v2 model."""
    version = data.get("schema_version")
    if version != 2:
        raise InvalidDocumentError(
            f"{origin}: corrax reads correctionlib schema version 2, got schema_version={version!r}"
        )
    _spell_infinite_edges(data)
    try:
        return schemav2.CorrectionSet.model_validate(data)
    except pydantic.ValidationError as exc:
        raise InvalidDocumentError(_summarise(exc, origin)) from None


def _summarise(exc: pydantic.ValidationError, origin: str) -> str:
    """The first few validation errors, each with its location in the document.

    pydantic reports every branch of every tagged union; the deepest location of each
    error is the informative part, so errors are listed from the most specific.
    """
    errors = sorted(exc.errors(), key=lambda err: -len(err["loc"]))
    lines = [f"{origin}: invalid correctionlib schema-v2 document ({exc.error_count()} errors)"]
    for err in errors[:_MAX_REPORTED_ERRORS]:
        location = ".".join(
            str(part)
            for part in err["loc"]
            if not str(part).startswith(("tagged-union", "function"))
        )
        lines.append(f"  at {location}: {err['msg']}")
    return "\n".join(lines)


def load(source: DocumentSource) -> schemav2.CorrectionSet:
    """Turn a path, a dict or a validated model into a validated ``schemav2.CorrectionSet``."""
    if isinstance(source, schemav2.CorrectionSet):
        return source
    if isinstance(source, dict):
        # a deep copy (we rewrite edges in place), whose floats are read like a file's
        return validate(parse_text(json.dumps(source), origin="<dict>"), origin="<dict>")
    if isinstance(source, str | os.PathLike):
        return validate(read_file(source), origin=os.fspath(source))
    raise TypeError(
        f"cannot read a correction set from {type(source).__name__}: "
        "give a path, a dict or a correctionlib.schemav2.CorrectionSet"
    )
